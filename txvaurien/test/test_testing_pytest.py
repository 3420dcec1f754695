"""
Tests of the pytest plugin (L{txvaurien.testing.pytest_plugin}): real
pytest sessions run in a child process on scenario files, with real
sockets, and their results read back (JUnit XML, terminal output, and a
JSON file the scenarios' conftest writes).

pytest is not a dependency of txvaurien; these tests need it installed
(C{tox.ini} lists it) and fail under CI without it.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txvaurien.test.servers import requireModule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The conftest of every scenario directory: an echo backend in a thread,
#: and a watch on descriptors, child processes and ports, written to
#: $LEAKS when the session ends (after the plugin's server stopped).
CONFTEST = '''
import json, os, socket, socketserver, threading
import pytest

PORTS = []


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture(scope="session")
def echo():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield "127.0.0.1:{}".format(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def roundTrip(proxy, data=b"ping", timeout=5.0):
    with socket.create_connection((proxy.host, proxy.port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def describe(fd):
    try:
        return "{} -> {}".format(fd, os.readlink("/proc/self/fd/" + fd))
    except OSError:
        return fd


def children():
    found = []
    for task in os.listdir("/proc/self/task"):
        with open("/proc/self/task/{}/children".format(task)) as f:
            found += f.read().split()
    return found


FDS = []


def pytest_sessionstart(session):
    FDS[:] = sorted(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="session", autouse=True)
def leakWatch(request):
    before = FDS
    yield
    ports = []
    for port in PORTS:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            ports.append(port)
        except OSError:
            pass
        finally:
            s.close()
    path = os.environ.get("LEAKS")
    after = sorted(os.listdir("/proc/self/fd"))
    if path:
        with open(path, "w") as f:
            json.dump({"fdsBefore": before, "fdsAfter": after,
                       "extra": [describe(fd) for fd in after if fd not in before],
                       "children": children(), "listening": ports, "checked": len(PORTS),
                       "serverPids": SERVER_PIDS}, f)


SERVER_PIDS = []


@pytest.fixture
def proxy_of(chaos_proxy, chaos_server, echo):
    if chaos_server.pid not in SERVER_PIDS:
        SERVER_PIDS.append(chaos_server.pid)
        PORTS.append(chaos_server.client.port)

    def make(**kwargs):
        proxy = chaos_proxy(echo, **kwargs)
        PORTS.append(proxy.port)
        return proxy

    return make
'''

#: Scenarios that must pass, one per promise of the plugin.
BEHAVIORS = '''
import socket, time
import pytest
from conftest import roundTrip, PORTS
from txvaurien.testing import ChaosUsageError


def test_handleShape(proxy_of):
    proxy = proxy_of()
    assert proxy.host == "127.0.0.1"
    assert isinstance(proxy.port, int) and proxy.port > 0
    assert proxy.address == "127.0.0.1:{}".format(proxy.port)
    assert proxy.url == "http://127.0.0.1:{}".format(proxy.port)
    assert roundTrip(proxy) == b"ping"
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as live:
        live.sendall(b"x")
        assert live.recv(1) == b"x"
        assert len(proxy.connections()) == 1


def test_behaviorSetThenRestored(proxy_of, chaos_server):
    proxy = proxy_of(behavior="100:delay", behavior_options={"delay": {"sleep": 0.01}})
    client = chaos_server.client
    control = client.__class__(client.host, client.port, proxy=proxy.name)
    before = control.get_behavior_state()
    assert before["behavior"] == "100:delay" and before["options"]["sleep"] == 0.01
    with proxy.behavior("error"):
        assert control.get_behavior_state()["behavior"] == "error"
        assert roundTrip(proxy, b"x" * 4) != b"xxxx"
    assert control.get_behavior_state() == before
    assert roundTrip(proxy) == b"ping"


def test_behaviorRestoredAfterException(proxy_of):
    proxy = proxy_of()
    with pytest.raises(ZeroDivisionError):
        with proxy.behavior("error"):
            1 / 0
    assert roundTrip(proxy) == b"ping"


def test_toxicAddsLatencyThenGoes(proxy_of):
    proxy = proxy_of()
    roundTrip(proxy)
    with proxy.toxic("latency", latency=300, jitter=0, stream="downstream", toxicity=1.0):
        started = time.monotonic()
        assert roundTrip(proxy) == b"ping"
        slow = time.monotonic() - started
    started = time.monotonic()
    assert roundTrip(proxy) == b"ping"
    fast = time.monotonic() - started
    assert slow >= 0.3, slow
    assert fast < slow / 2, (fast, slow)


def test_downRefusesThenComesBack(proxy_of):
    proxy = proxy_of()
    live = socket.create_connection((proxy.host, proxy.port), timeout=5)
    live.sendall(b"a")
    assert live.recv(1) == b"a"
    with proxy.down():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((proxy.host, proxy.port), timeout=5)
        assert live.recv(1) == b""
    live.close()
    assert roundTrip(proxy) == b"ping"


def test_portOfEarlierTestFreed(proxy_of):
    earlier = PORTS[-1]
    s = socket.socket()
    with pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", earlier))
    s.close()


def test_seedAndProtocolReachServer(proxy_of, chaos_server):
    proxy = proxy_of(protocol="redis", seed=42)
    log = chaos_server.log()
    assert "Proxy {} listening on {}".format(proxy.name, proxy.address) in log
    assert "(protocol redis, behavior 100:dummy, seed 42)" in log


def test_journalOrClearMessage(proxy_of, chaos_server):
    proxy = proxy_of()
    other = proxy_of()
    with proxy.behavior("error"):
        roundTrip(proxy)
    with other.behavior("reset_peer"):
        with pytest.raises(OSError):  # reset: ECONNRESET, or EPIPE on send
            roundTrip(other)
    import urllib.request, urllib.error
    try:
        urllib.request.urlopen(chaos_server.url + "/events").read()
        served = True
    except urllib.error.HTTPError as e:
        served = e.code not in (404, 405)
    if served:
        events = proxy.journal()
        assert events and {e["behavior"] for e in events} == {"error"}
        assert {e["proxy"] for e in events} == {proxy.name}
    else:
        with pytest.raises(NotImplementedError, match="fault journal"):
            proxy.journal()


def test_failsWithServerLog(proxy_of):
    proxy = proxy_of()
    with proxy.behavior("delay", sleep=0.01):
        assert roundTrip(proxy) == b"not what comes back"
'''

def scratchDirectory() -> str:
    """
    A new directory for a pytest session's files; the caller removes it.
    """
    return tempfile.mkdtemp(prefix="txvaurien-pytest-")


def pluginArguments() -> list[str]:
    """
    C{-p txvaurien.testing.pytest_plugin}, unless an installed txvaurien
    registers the plugin already through its entry point.
    """
    from importlib.metadata import entry_points

    installed = any(e.value == "txvaurien.testing.pytest_plugin"
                    for e in entry_points(group="pytest11"))
    return [] if installed else ["-p", "txvaurien.testing.pytest_plugin"]


def runPytest(files: dict[str, str], *args: str, env: dict[str, str] | None = None
              ) -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]], float]:
    """
    Run pytest with the plugin on C{files} in a new directory, removed
    afterwards.

    @return: the completed process (output in C{stdout}), each test's
        outcome (L{outcomes}), and the wall-clock seconds the run took.
    """
    requireModule("pytest", "pytest")
    directory = scratchDirectory()
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(textwrap.dedent(text))
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
    environment.pop("PYTEST_ADDOPTS", None)
    environment.update(env or {})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *pluginArguments(), "-p", "no:cacheprovider",
         "--junitxml", os.path.join(directory, "junit.xml"), *args],
        cwd=directory, env=environment, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    wall = time.monotonic() - started
    try:
        found = outcomes(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return result, found, wall


def readLeaks(path: str, result: subprocess.CompletedProcess[str]) -> Any:
    """
    What the scenarios' conftest wrote to C{path} at the end of the
    session (and remove it).

    @raise AssertionError: with the session's output, if it wrote nothing.
    """
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        raise AssertionError("the session wrote no leak report:\n" + result.stdout) from None
    finally:
        if os.path.exists(path):
            os.unlink(path)


def outcomes(directory: str) -> dict[str, tuple[str, str]]:
    """
    Each test's outcome (C{passed}, C{failure}, C{error}, C{skipped}) and
    message, from the JUnit XML of a run.
    """
    path = os.path.join(directory, "junit.xml")
    if not os.path.exists(path):
        return {}
    tree = ET.parse(path)
    found: dict[str, tuple[str, str]] = {}
    for case in tree.iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                message = (child.get("message") or "") + "\n" + (child.text or "")
        found[case.get("name", "")] = (outcome, message)
    return found


@functools.lru_cache(maxsize=None)
def behaviorsRun() -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]], Any]:
    leaks = tempfile.mktemp(prefix="txvaurien-leaks-", suffix=".json")
    result, found, _ = runPytest(
        {"conftest.py": CONFTEST, "test_behaviors.py": BEHAVIORS}, "-p", "no:randomly",
        env={"LEAKS": leaks})
    return result, found, readLeaks(leaks, result)


class PluginTests(SynchronousTestCase):
    """
    What the C{chaos_proxy} fixture promises, each checked by a scenario
    of a real pytest session.
    """

    def assertPassed(self, name: str) -> None:
        result, found, _ = behaviorsRun()
        self.assertIn(name, found, result.stdout)
        self.assertEqual(found[name][0], "passed", found[name][1])

    def test_handleHasHostPortAddressURL(self) -> None:
        """
        A proxy's handle has C{host}, C{port}, C{address} (C{host:port})
        and C{url}, bytes round-trip through it, and C{connections()}
        lists a live connection.
        """
        self.assertPassed("test_handleShape")

    def test_behaviorSetThenRestored(self) -> None:
        """
        C{with proxy.behavior("error")} breaks the traffic inside the block;
        afterwards the proxy has its previous behavior and options again
        and the traffic passes.
        """
        self.assertPassed("test_behaviorSetThenRestored")

    def test_behaviorRestoredAfterException(self) -> None:
        """
        The previous behavior is restored when the block raises.
        """
        self.assertPassed("test_behaviorRestoredAfterException")

    def test_toxicAppliesInsideBlockOnly(self) -> None:
        """
        C{with proxy.toxic("latency", latency=300)} makes a round trip last
        at least 300 ms inside the block, and less than half that after.
        """
        self.assertPassed("test_toxicAddsLatencyThenGoes")

    def test_downRefusesConnections(self) -> None:
        """
        Inside C{with proxy.down()}, connecting is refused and live
        connections are closed; after it, the same port accepts again.
        """
        self.assertPassed("test_downRefusesThenComesBack")

    def test_teardownFreesPort(self) -> None:
        """
        The port of the previous test's proxy refuses connections: the
        proxy was removed at teardown.
        """
        self.assertPassed("test_portOfEarlierTestFreed")

    def test_protocolAndSeedReachServer(self) -> None:
        """
        C{protocol} and C{seed} are those of the proxy the server made.
        """
        self.assertPassed("test_seedAndProtocolReachServer")

    def test_journalAnswersOrSaysWhy(self) -> None:
        """
        C{proxy.journal()} returns the events if the server serves
        C{GET /events}, or raises L{NotImplementedError} saying that the
        fault journal is missing.
        """
        self.assertPassed("test_journalOrClearMessage")

    def test_failingTestGetsServerLog(self) -> None:
        """
        A failing test's report has a C{txvaurien} section with the
        server's log lines of that test (its proxy listening, its behavior
        set), and none of the earlier tests' proxies.
        """
        result, found, _ = behaviorsRun()
        self.assertEqual(found["test_failsWithServerLog"][0], "failure")
        output = result.stdout
        section = output.split("Captured txvaurien call", 1)[1].split("short test summary")[0]
        self.assertIn("listening on 127.0.0.1:", section)
        self.assertIn(": behavior set to 100:delay", section)
        self.assertNotIn("Proxy proxy-1 listening", section)

    def test_noProcessPortOrDescriptorLeft(self) -> None:
        """
        After the session, the server process is gone and reaped, no child
        process is left, every proxy port and the control port refuse
        connections, and the test process has the descriptors it had
        before the first proxy.
        """
        _, _, watched = behaviorsRun()
        self.assertEqual(watched["children"], [])
        self.assertEqual(watched["listening"], [])
        self.assertGreater(watched["checked"], 5)
        self.assertEqual(watched["fdsAfter"], watched["fdsBefore"], watched["extra"])
        self.assertEqual(len(watched["serverPids"]), 1)
        with self.assertRaises(ProcessLookupError):
            os.kill(watched["serverPids"][0], 0)


class RegistrationTests(SynchronousTestCase):
    """
    How pytest finds the plugin.
    """

    def test_entryPointNamesPlugin(self) -> None:
        """
        C{setup.py} registers L{txvaurien.testing.pytest_plugin} under the
        C{pytest11} entry point, and that module defines the fixtures.
        """
        with open(os.path.join(ROOT, "setup.py")) as f:
            tree = ast.parse(f.read())
        entryPoints: Any = None
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "entry_points":
                entryPoints = ast.literal_eval(node.value)
        self.assertIsNotNone(entryPoints)
        self.assertEqual(entryPoints["pytest11"], ["txvaurien = txvaurien.testing.pytest_plugin"])
        requireModule("pytest", "pytest")
        from txvaurien.testing import pytest_plugin

        self.assertTrue(callable(pytest_plugin.chaos_proxy))
        self.assertTrue(callable(pytest_plugin.chaos_server))

    def test_importingTestingNeedsNoPytest(self) -> None:
        """
        Importing L{txvaurien.testing} does not import pytest.
        """
        result = subprocess.run(
            [sys.executable, "-c",
             "import sys, txvaurien.testing; print('pytest' in sys.modules)"],
            cwd=ROOT, capture_output=True, text=True, check=True)
        self.assertEqual(result.stdout.strip(), "False")
