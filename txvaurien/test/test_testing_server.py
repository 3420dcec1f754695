"""
Unit tests of the session server's pieces (L{txvaurien.testing.server}):
the route that makes proxies, and the log observer that says when the
server is ready.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.logger import ILogObserver, LogLevel
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from txvaurien.testing._core import newManager
from txvaurien.testing.handle import ChaosServer
from txvaurien.testing.server import READY, ReadyLog, TestingResource


class _Control(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return b"control"


def request(method: bytes, path: bytes, body: bytes = b"") -> DummyRequest:
    r = DummyRequest(path.lstrip(b"/").split(b"/"))
    r.method = method
    r.path = path
    r.content = io.BytesIO(body)
    return r


class TestingResourceTests(TestCase):
    """
    C{POST /testing/proxies}.
    """

    def setUp(self) -> None:
        self.manager = newManager(reactor)
        self.manager.startService()
        self.resource = TestingResource(_Control(), self.manager)

        def removeAll() -> Any:
            from twisted.internet.defer import gatherResults

            return gatherResults([self.manager.delete(n) for n in list(self.manager.proxies)])

        self.addCleanup(removeAll)

    def post(self, body: Any) -> tuple[int, Any]:
        r = request(b"POST", b"/testing/proxies",
                    body if isinstance(body, bytes) else json.dumps(body).encode())
        answer = self.resource.render(r)
        return r.responseCode or 200, json.loads(answer)

    def test_makesProxyWithProtocolAndSeed(self) -> None:
        """
        A valid body makes a listening proxy with that name, protocol,
        seed and behavior: C{201} and Toxiproxy's representation.
        """
        code, body = self.post({"name": "p", "upstream": "127.0.0.1:6379",
                                "protocol": "redis", "seed": 9, "behavior": "10:delay"})
        self.assertEqual(code, 201)
        self.assertEqual(body["name"], "p")
        self.assertRegex(body["listen"], r"^127\.0\.0\.1:[1-9][0-9]*$")
        factory = self.manager.get("p").factory
        self.assertEqual(factory.handler.name, "redis")
        self.assertEqual(factory.random.seed, 9)
        self.assertEqual(factory.table.spec, "10:delay")

    def test_badBodiesRefused(self) -> None:
        """
        A body that is not JSON, not an object, without a name, with a
        name holding C{/}, or with a bad upstream or protocol is a C{400}
        saying why.
        """
        cases = [
            (b"{", "Expecting"),
            ([1], "expected a JSON object"),
            ({"upstream": "127.0.0.1:1"}, "name"),
            ({"name": "a/b", "upstream": "127.0.0.1:1"}, "name"),
            ({"name": "a", "upstream": "nohost"}, "is not host:port"),
            ({"name": "a", "upstream": "127.0.0.1:1", "protocol": "redsi"},
             "unknown protocol 'redsi'"),
        ]
        for body, message in cases:
            code, answer = self.post(body)
            self.assertEqual(code, 400, body)
            self.assertIn(message, answer["error"])
        self.assertEqual(self.manager.proxies, {})

    def test_otherMethodsAndPaths(self) -> None:
        """
        Another method on the route is a C{405}; other paths go to the
        control API.
        """
        r = request(b"GET", b"/testing/proxies")
        self.resource.render(r)
        self.assertEqual(r.responseCode, 405)
        self.assertEqual(self.resource.render(request(b"GET", b"/proxies")), b"control")


class ReadyLogTests(TestCase):
    """
    L{ReadyLog}.
    """

    def test_providesILogObserver(self) -> None:
        """
        L{ReadyLog} provides L{ILogObserver}.
        """
        verifyObject(ILogObserver, ReadyLog(io.StringIO(), None))

    def test_standardOutputEndsAfterReadyLine(self) -> None:
        """
        Events go to the log file; standard output gets them until the
        ready line, then its reader sees the end of the stream.
        """
        read, write = os.pipe()
        stdout = os.fdopen(write, "w")
        log = io.StringIO()
        observer = ReadyLog(log, stdout)
        for text in ("starting", READY + "127.0.0.1:5 (APIs)", "after"):
            observer({"log_format": text.replace("{", "{{").replace("}", "}}"),
                      "log_level": LogLevel.info, "log_time": 0.0})
        with os.fdopen(read) as reader:
            seen = reader.read()
        stdout.close()
        self.assertIn("starting", seen)
        self.assertIn(READY + "127.0.0.1:5", seen)
        self.assertNotIn("after", seen)
        self.assertIn("after", log.getvalue())




class StartFailureTests(TestCase):
    """
    L{ChaosServer.start} when the server cannot start.
    """

    def script(self, body: str) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, 0o755)
        return path

    def test_exitBeforeReadyRaisesWithLog(self) -> None:
        """
        A server that exits before its control API listens makes
        C{start} raise L{RuntimeError} with what it wrote, and leaves
        nothing running.
        """
        server = ChaosServer(python=self.script("echo 'No module named twisted' >&2; exit 1"))
        e = self.assertRaises(RuntimeError, server.start)
        self.assertIn("exited before its control API listened", str(e))
        self.assertIn("No module named twisted", str(e))
        self.assertIsNone(server.pid)
        self.assertFalse(os.path.exists(server.directory))

    def test_silentServerTimesOut(self) -> None:
        """
        A server that says nothing within C{startTimeout} is killed, and
        C{start} says how long it waited.
        """
        server = ChaosServer(python=self.script("exec sleep 60"), startTimeout=0.2)
        e = self.assertRaises(RuntimeError, server.start)
        self.assertIn("did not start within 0.2s", str(e))
        self.assertIsNone(server.pid)
