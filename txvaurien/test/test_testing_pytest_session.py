"""
Tests of the pytest plugin's sessions as a whole: fifty proxies timed and
checked for leaks, clients that are not Twisted (psycopg against a real
PostgreSQL, asyncio), and the server's lifetime.  Scenario files run in a
real pytest session in a child process, as in L{test_testing_pytest}.
"""

from __future__ import annotations

import functools
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txvaurien.test.servers import requireModule, run
from txvaurien.test.test_testing_pytest import (
    CONFTEST,
    ROOT,
    pluginArguments,
    readLeaks,
    runPytest,
    scratchDirectory,
)

#: Fifty tests, each with its own proxy and a round trip through it.
FIFTY = '''
import pytest
from conftest import roundTrip


@pytest.mark.parametrize("n", range(50))
def test_ownProxy(n, proxy_of):
    assert roundTrip(proxy_of(seed=n)) == b"ping"
'''


@functools.lru_cache(maxsize=None)
def fiftyRun() -> tuple[subprocess.CompletedProcess[str], float, float, Any]:
    leaks = tempfile.mktemp(prefix="txvaurien-leaks-", suffix=".json")
    result, _, wall = runPytest(
        {"conftest.py": CONFTEST, "test_fifty.py": FIFTY}, "-q", env={"LEAKS": leaks})
    watched = readLeaks(leaks, result)
    session = float(re.search(r"50 passed in ([0-9.]+)s", result.stdout).group(1))
    return result, session, wall, watched


class SpeedAndCleanupTests(SynchronousTestCase):
    """
    A session of fifty tests, each making its own proxy.
    """

    def test_fiftyProxiesUnderTenSeconds(self) -> None:
        """
        The session (server start included) takes less than 10 seconds.
        """
        result, session, wall, _ = fiftyRun()
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertLess(session, 10.0, "session {:.2f}s, wall {:.2f}s".format(session, wall))

    def test_fiftyProxiesLeaveNothing(self) -> None:
        """
        After the session no child process is left, none of the fifty
        ports nor the control port accepts connections, the descriptors
        are those before the first proxy, and the server process is gone.
        """
        _, _, _, watched = fiftyRun()
        self.assertEqual(watched["children"], [])
        self.assertEqual(watched["checked"], 51)
        self.assertEqual(watched["listening"], [])
        self.assertEqual(watched["fdsAfter"], watched["fdsBefore"], watched["extra"])
        with self.assertRaises(ProcessLookupError):
            os.kill(watched["serverPids"][0], 0)
#: Clients that are not Twisted: psycopg against a real PostgreSQL, and
#: asyncio streams against the echo backend.
CLIENTS = '''
import asyncio, os
import psycopg
import pytest

PG = os.environ["PG_ADDRESS"]
PASSWORD = os.environ["PG_PASSWORD"]


def test_psycopgSeesErrorThenRecovers(chaos_proxy):
    proxy = chaos_proxy(PG, protocol="postgresql", seed=3)
    with psycopg.connect(host=proxy.host, port=proxy.port, user="postgres",
                         password=PASSWORD, dbname="postgres", autocommit=True) as db:
        assert db.execute("SELECT 1").fetchone() == (1,)
        with proxy.behavior("error"):
            with pytest.raises(psycopg.errors.InternalError) as caught:
                db.execute("SELECT 2")
            assert "txvaurien" in str(caught.value)
        assert db.execute("SELECT 3").fetchone() == (3,)


def test_asyncioStreamsThroughProxy(chaos_proxy, echo):
    proxy = chaos_proxy(echo)

    async def exchange():
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"ping")
        answer = await reader.readexactly(4)
        writer.close()
        await writer.wait_closed()
        return answer

    assert asyncio.run(exchange()) == b"ping"
    with proxy.down():
        with pytest.raises(ConnectionRefusedError):
            asyncio.run(exchange())
    with proxy.toxic("latency", latency=200):
        loop = asyncio.new_event_loop()
        started = loop.time()
        assert loop.run_until_complete(exchange()) == b"ping"
        assert loop.time() - started >= 0.2
        loop.close()
'''


class NonTwistedClientTests(TestCase):
    """
    The fixture works for psycopg (against a real PostgreSQL) and asyncio
    clients, run in a pytest session in a child process (the reactor keeps
    serving meanwhile).
    """

    timeout = 180

    @defer.inlineCallbacks
    def test_psycopgAndAsyncio(self) -> Generator[Any, Any, None]:
        """
        psycopg gets the PostgreSQL error C{error} makes up, then works
        again on the same connection; asyncio streams pass, are refused
        while the proxy is down, and are slowed by a latency toxic.
        """
        from txvaurien.test.servers import sharedServer
        from txvaurien.test.test_protocol_postgresql_integration import (
            PASSWORD,
            startPostgres,
        )

        requireModule("psycopg", "psycopg[binary]")
        requireModule("pytest", "pytest")
        server = yield sharedServer("postgres", startPostgres)
        directory = scratchDirectory()
        self.addCleanup(shutil.rmtree, directory, True)
        for name, text in {"conftest.py": CONFTEST, "test_clients.py": CLIENTS}.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(textwrap.dedent(text))
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [ROOT] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
        environment.pop("PYTEST_ADDOPTS", None)
        environment.update(PG_ADDRESS="127.0.0.1:{}".format(server.port), PG_PASSWORD=PASSWORD)
        output = yield run(
            [sys.executable, "-m", "pytest", *pluginArguments(), "-p", "no:cacheprovider",
             "-q", "-rA", "test_clients.py"], env=environment, path=directory)
        self.assertIn("2 passed", output)


class ServerLifetimeTests(SynchronousTestCase):
    """
    The session server never outlives the process that started it.
    """

    def test_serverExitsWhenParentKilled(self) -> None:
        """
        When the test process that started the server is killed with
        C{SIGKILL} (no cleanup runs), the server exits by itself: its
        standard input closes.
        """
        script = textwrap.dedent("""
            import os, signal, sys
            from txvaurien.testing import ChaosServer
            server = ChaosServer()
            server.start()
            print(server.pid, server.directory, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = ROOT
        result = subprocess.run([sys.executable, "-c", script], env=environment,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, -9, result.stderr)
        text, directory = result.stdout.split()
        pid = int(text)
        self.addCleanup(shutil.rmtree, directory, True)
        try:
            handle = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            ready, _, _ = select.select([handle], [], [], 30)
        finally:
            os.close(handle)
        self.assertEqual(ready, [handle], "server {} still running".format(pid))
        shutil.rmtree(directory, ignore_errors=True)


#: A test that fails on purpose after a fault was chosen.
DEBUG = '''
from conftest import roundTrip


def test_failsAfterDelay(proxy_of):
    proxy = proxy_of()
    with proxy.behavior("delay", sleep=0.01):
        roundTrip(proxy)
        assert False, "on purpose"
'''


class LogLevelTests(SynchronousTestCase):
    """
    C{--chaos-log-level}.
    """

    def test_debugShowsDecisionsInFailureReport(self) -> None:
        """
        With C{--chaos-log-level debug}, a failing test's C{txvaurien}
        section shows the proxy's decision for the connection.
        """
        result, _, _ = runPytest({"conftest.py": CONFTEST, "test_debug.py": DEBUG},
                                 "--chaos-log-level", "debug")
        self.assertIn("1 failed", result.stdout)
        section = result.stdout.split("Captured txvaurien call", 1)[1]
        self.assertRegex(section, r"proxy-1 #\d+ request None: delay")
