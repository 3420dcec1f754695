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
from twisted.logger import formatEvent, globalLogPublisher
from io import BytesIO

from txvaurien.demo import DemoBackend, DemoService
from txvaurien.test.controlhelpers import PROXY_LISTENING, spawnTwistd


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
    def test_accessLogIsTheDemos(self) -> Generator[Any, Any, None]:
        """
        A request to the demo backend is logged once, in the
        C{txvaurien.demo.access} namespace and as "demo backend: ...", with
        structured fields; no anonymous combined-log line is written.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        code, _ = yield self.get("/status/418")
        self.assertEqual(code, 418)
        access = [e for e in events if e.get("log_namespace") == "txvaurien.demo.access"]
        self.assertEqual(len(access), 1, events)
        self.assertEqual((access[0]["method"], access[0]["uri"], access[0]["code"]),
                         ("GET", "/status/418", 418))
        self.assertTrue(formatEvent(access[0]).startswith("demo backend: GET /status/418 418"))
        others = [formatEvent(e) for e in events if e not in access]
        self.assertFalse([text for text in others if "/status/418" in text], others)

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


class DemoProtocolTests(TestCase):
    """
    C{--backend demo} frames its traffic as HTTP unless told otherwise.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_demoErrorIsParseableHTTP(self) -> Generator[Any, Any, None]:
        """
        C{twistd vaurien --backend demo --behavior 100:error} (no
        C{--protocol}) answers a real HTTP client with an HTTP error status
        it can parse, not raw bytes.
        """
        port, output = yield spawnTwistd(self, [
            "--backend", "demo", "--behavior", "100:error", "--seed", "1",
            "--proxy", "tcp:0:interface=127.0.0.1", "--shutdown-grace", "0"], PROXY_LISTENING)
        self.assertIn(b"protocol http", output.output)
        response = yield Agent(reactor).request(
            b"GET", "http://127.0.0.1:{}/".format(port).encode("ascii"))
        yield readBody(response).addErrback(lambda _: None)
        self.assertIn(response.code, (500, 501, 502, 503))

    @defer.inlineCallbacks
    def test_explicitProtocolWins(self) -> Generator[Any, Any, None]:
        """
        C{--protocol tcp} with C{--backend demo} keeps the raw tcp framing.
        """
        _, output = yield spawnTwistd(self, [
            "--backend", "demo", "--protocol", "tcp", "--seed", "1",
            "--proxy", "tcp:0:interface=127.0.0.1", "--shutdown-grace", "0"], PROXY_LISTENING)
        self.assertIn(b"protocol tcp", output.output)
