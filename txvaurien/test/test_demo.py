"""
Tests for L{txvaurien.demo}: the built-in demo backend.
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.client import FileBodyProducer
from io import BytesIO

from txvaurien.demo import DemoBackend, DemoService


class DemoTests(TestCase):
    """
    The demo backend serves its routes on 127.0.0.1.
    """

    def setUp(self) -> None:
        self.service = DemoService(reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.base = "http://127.0.0.1:{}".format(self.service.port.getHost().port)
        self.agent = Agent(reactor)

    @defer.inlineCallbacks
    def get(self, path: str, method: bytes = b"GET", body: bytes | None = None) -> Generator[Any, Any, Any]:
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        response = yield self.agent.request(
            method, (self.base + path).encode("ascii"), Headers(), producer)
        content = yield readBody(response)
        return response.code, content

    @defer.inlineCallbacks
    def test_routes(self) -> Generator[Any, Any, None]:
        """
        C{/} explains itself, C{/echo} echoes, C{/bytes/N} sends N bytes,
        C{/status/N} answers with status N, and bad arguments get a 400.
        """
        code, body = yield self.get("/")
        self.assertEqual(code, 200)
        self.assertIn(b"txvaurien demo backend", body)
        code, body = yield self.get("/echo", b"POST", b"ping" * 1000)
        self.assertEqual((code, body), (200, b"ping" * 1000))
        code, body = yield self.get("/bytes/300000")
        self.assertEqual((code, len(body)), (200, 300000))
        code, _ = yield self.get("/status/503")
        self.assertEqual(code, 503)
        code, _ = yield self.get("/bytes/-1")
        self.assertEqual(code, 400)
        code, _ = yield self.get("/status/99")
        self.assertEqual(code, 400)

    def test_stoppedDemoRefuses(self) -> None:
        """
        A demo backend whose service is stopped refuses connections through
        the factory's failure path.
        """
        stopped = DemoService(reactor)
        backend = DemoBackend(reactor, stopped)
        failures: list[Failure] = []

        class Factory:
            def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
                failures.append(reason)

        backend.connect(Factory(), 1.0)
        [failure] = failures
        self.assertTrue(failure.check(ConnectionRefusedError))
        self.assertEqual(backend.description, "demo (not started)")
