"""
Tests for L{txvaurien.control.channel}: the control API answers
over-limit requests at once and cuts slow clients.
"""

from __future__ import annotations

import json
from typing import Any, Generator

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from txvaurien.control.channel import LINGER, MAX_HEADERS
from txvaurien.control.resource import (
    MAX_BODY,
    ControlResource,
    ControlSite,
    bearerMatches,
)
from txvaurien.test.controlhelpers import Control
from txvaurien.test.rawhttp import RawClient, connectRaw


def _site(requestTimeout: float = 5.0, idleTimeout: float = 60.0) -> tuple[Any, Any, Clock]:
    """
    A control site with no routes on a L{Clock}, and one connection to it
    on a L{StringTransport}.

    @return: the channel, its transport and the clock.
    """
    clock = Clock()
    site = ControlSite(ControlResource([]), requestTimeout, idleTimeout, reactor=clock)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport, clock


class DeadlineTests(TestCase):
    """
    Each request must arrive whole within the request timeout; an idle
    connection is closed after the idle timeout.  Driven by a L{Clock}.
    """

    def test_slowlorisCut(self) -> None:
        """
        A client that sends one byte a second is answered C{408} and
        disconnected when the request timeout passes, although it never
        stops sending.
        """
        channel, transport, clock = _site(requestTimeout=5.0)
        for byte in b"GET /version HTTP/1.1\r\n":
            channel.dataReceived(bytes([byte]))
            if clock.seconds() >= 5.0:
                break
            self.assertFalse(transport.disconnecting, clock.seconds())
            clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_deadlinePerRequest(self) -> None:
        """
        The deadline is per request: two requests on one connection, each
        sent within the timeout, are both answered even though together
        they take longer.
        """
        channel, transport, clock = _site(requestTimeout=5.0)
        for _ in range(2):
            channel.dataReceived(b"GET /nosuch HTTP/1.1\r\n")
            clock.advance(4)
            channel.dataReceived(b"Host: x\r\n\r\n")
            clock.advance(4)
        self.assertEqual(transport.value().count(b"HTTP/1.1 404 Not Found"), 2)
        self.assertNotIn(b"408", transport.value())
        self.assertFalse(transport.disconnecting)

    def test_idleConnectionClosed(self) -> None:
        """
        A connection that sends nothing is closed after the idle timeout,
        and not before.
        """
        channel, transport, clock = _site(idleTimeout=30.0)
        clock.advance(29)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_refusedConnectionStopsLingering(self) -> None:
        """
        A refused connection is closed for good after L{LINGER} seconds,
        whatever its client still sends.
        """
        channel, transport, clock = _site()
        channel.dataReceived(b"POST /proxies HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                             % (MAX_BODY + 1))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        channel.dataReceived(b"x" * 1000)
        clock.advance(LINGER)
        self.assertTrue(transport.disconnecting)


class LimitTests(TestCase):
    """
    Over-limit requests on real sockets get an answer at once.
    """

    timeout = 30

    def setUp(self) -> None:
        self.control = Control(self, ["--http-request-timeout", "0.5"])

    @defer.inlineCallbacks
    def send(self, head: bytes, **kw: Any) -> Generator[Any, Any, Any]:
        client = RawClient(head, **kw)
        yield connectRaw(self.control.port, client)
        yield client.closed
        return client

    @defer.inlineCallbacks
    def test_oversizedLengthAnsweredAtOnce(self) -> Generator[Any, Any, None]:
        """
        A C{Content-Length} over 1 MiB with no body is answered C{413} at
        once, in each API's error shape, and the connection is closed:
        nothing waits for the body, which never comes.
        """
        for path, expected in [
            (b"/proxies", {"error": "request body larger than 1048576 bytes",
                           "status": 413}),
            (b"/behavior", {"status": "error", "errors": [{
                "location": "body", "name": "body",
                "description": "request body larger than 1048576 bytes"}]}),
        ]:
            client = yield self.send(
                b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % (MAX_BODY + 1))
            head, _, body = client.answer.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 413 Payload Too Large"), head)
            self.assertEqual(json.loads(body), expected)
            # Answered before the request timeout (0.5 s) could have fired.
            self.assertNotIn(b"408", client.answer)

    @defer.inlineCallbacks
    def test_expectContinueRefused(self) -> Generator[Any, Any, None]:
        """
        A client that asks C{Expect: 100-continue} for a body over the
        limit gets the C{413} instead of a C{100 Continue}.
        """
        client = yield self.send(
            b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * MAX_BODY))
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 413 "), client.answer[:40])
        self.assertNotIn(b"100 Continue", client.answer)

    @defer.inlineCallbacks
    def test_hugeHeaderAnswered431(self) -> Generator[Any, Any, None]:
        """
        A 100 KB header is answered C{431}, and the client reads the
        answer (the server lingers instead of resetting the connection).
        """
        client = yield self.send(
            b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        self.assertTrue(
            client.answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"),
            client.answer[:60])

    @defer.inlineCallbacks
    def test_manyHeadersAnswered431(self) -> Generator[Any, Any, None]:
        """
        Headers each short but over L{MAX_HEADERS} bytes together are
        answered C{431}.
        """
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100)
                           for i in range(2 * MAX_HEADERS // 100))
        client = yield self.send(b"GET /version HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 431 "), client.answer[:60])

    @defer.inlineCallbacks
    def test_slowlorisCutOnRealSocket(self) -> Generator[Any, Any, None]:
        """
        With C{--http-request-timeout 0.5}, a client trickling a request
        one byte every 0.1 s is answered C{408} and disconnected about
        0.5 s after its first byte (tolerance: 0.4 to 5 s, for a loaded
        machine), long before its request would be complete.
        """
        request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
        client = yield self.send(b"", trickle=request, interval=0.1)
        elapsed = (client.closedAt or 0) - client.startedAt
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:40])
        self.assertLess(client.sent, len(request))
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 5.0)

    @defer.inlineCallbacks
    def test_normalRequestsStillServed(self) -> Generator[Any, Any, None]:
        """
        Requests within every limit are served as before, on the same
        connection one after the other.
        """
        for _ in range(3):
            code, _, _ = yield self.control.request("GET", "/version")
            self.assertEqual(code, 200)


class BearerTests(TestCase):
    """
    L{bearerMatches} reads an C{Authorization} header.
    """

    def test_schemeCaseInsensitive(self) -> None:
        """
        The scheme matches in any case; the token exactly.
        """
        for header in [b"Bearer t0k", b"bearer t0k", b"BEARER t0k", b"  Bearer   t0k "]:
            self.assertTrue(bearerMatches(header, "t0k"), header)
        refused: list[bytes | None] = [
            None, b"", b"Bearer", b"Bearer T0K", b"Basic t0k", b"Bearert0k"]
        for given in refused:
            self.assertFalse(bearerMatches(given, "t0k"), given)
