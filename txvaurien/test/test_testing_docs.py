"""
The four examples of C{docs/testing.rst} run exactly as printed: the page
includes them from C{docs/examples/}, and these tests run those files, with
pytest or trial in a child process (not blocking the reactor), against a
real redis-server for the redis-py one.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txvaurien.test.servers import requireModule, run
from txvaurien.test.test_protocol_redis_integration import startRedis
from txvaurien.test.test_testing_pytest import pluginArguments

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "docs", "examples")
FILES = ["testing_redis.py", "testing_requests.py", "testing_trial.py", "testing_memory.py"]


def environment(**more: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("PYTEST_ADDOPTS", None)
    env.update(more)
    return env


def pytest(example: str, **env: str) -> defer.Deferred:
    requireModule("pytest", "pytest")
    return run([sys.executable, "-m", "pytest", *pluginArguments(), "-p", "no:cacheprovider",
                "-q", example], env=environment(**env), path=EXAMPLES)


def trial(example: str) -> defer.Deferred:
    return run([sys.executable, "-m", "twisted.trial", example[:-3]],
               env=environment(), path=EXAMPLES)


class PageTests(SynchronousTestCase):
    """
    The page prints the example files.
    """

    def test_pageIncludesEveryExample(self) -> None:
        """
        C{docs/testing.rst} includes each of the four example files with
        C{literalinclude}, and each exists.
        """
        with open(os.path.join(ROOT, "docs", "testing.rst")) as f:
            included = re.findall(r"\.\. literalinclude:: examples/(\S+)", f.read())
        self.assertEqual(sorted(included), sorted(FILES))
        for name in FILES:
            self.assertTrue(os.path.exists(os.path.join(EXAMPLES, name)), name)


class ExampleTests(TestCase):
    """
    Each example passes when run as its docstring says.
    """

    timeout = 180

    @defer.inlineCallbacks
    def test_redisRetryUnderError(self) -> Generator[Any, Any, None]:
        """
        The pytest + redis-py example passes against a real redis-server.
        """
        requireModule("redis", "redis")
        server = yield startRedis(self)
        output = yield pytest("testing_redis.py",
                              REDIS_ADDRESS="127.0.0.1:{}".format(server.port))
        self.assertIn("2 passed", output)

    @defer.inlineCallbacks
    def test_requestsTimeoutUnderHang(self) -> Generator[Any, Any, None]:
        """
        The pytest + requests example passes.
        """
        requireModule("requests", "requests")
        output = yield pytest("testing_requests.py")
        self.assertIn("2 passed", output)

    @defer.inlineCallbacks
    def test_trialLatencyOnTestReactor(self) -> Generator[Any, Any, None]:
        """
        The trial + treq example passes.
        """
        requireModule("treq", "treq")
        output = yield trial("testing_trial.py")
        self.assertIn("PASSED (successes=2)", output)

    @defer.inlineCallbacks
    def test_memoryLineReceiverUnderResetPeer(self) -> Generator[Any, Any, None]:
        """
        The in-memory LineReceiver example passes.
        """
        output = yield trial("testing_memory.py")
        self.assertIn("PASSED (successes=2)", output)
