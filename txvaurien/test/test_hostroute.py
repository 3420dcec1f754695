"""
Routing by the HTTP C{Host} (L{txvaurien.hostroute}): the C{host:}
backend's routes, its reading of the first request head in memory
(L{MemoryReactorClock}, L{StringTransport}), and real clients (urllib,
http.client, curl, plain and over TLS with a minted certificate per server
name) through a proxy in front of two real HTTP backends.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from typing import Any, Generator

from twisted.internet import defer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server
from zope.interface.verify import verifyObject

from txvaurien import tap
from txvaurien.endpoints import EndpointError, TCPBackend, checkProtocol, parseBackend
from txvaurien.frames import REQUEST
from txvaurien.hostroute import HostBackend, withoutPort
from txvaurien.interfaces import IFramer, IProtocolSession
from txvaurien.protocols._httpstream import HEAD_LIMIT
from txvaurien.test.helpers import Harness
from txvaurien.test.servers import listenBackend, requireBinary
from txvaurien.test.tlshelpers import (
    TestCertificates, curl, inThread, listenHTTPS, listenTLSProxy, pythonClient)
from txvaurien.tls.client import SNIBackend
from txvaurien.protocols.http import MISDIRECTED

ROUTES = "host:a.test=127.0.0.1:1001|b.test=127.0.0.1:1002|b.test:8080=127.0.0.1:1003"


class RoutesTests(SynchronousTestCase):
    """
    Parsing a C{host:} backend and choosing a route.
    """

    def setUp(self) -> None:
        from twisted.internet.testing import MemoryReactorClock

        self.reactor = MemoryReactorClock()

    def port(self, backend: HostBackend, host: str | None) -> int | None:
        chosen = backend.choose(host)
        return None if chosen is None else chosen.port

    def test_parsedWithEachRoute(self) -> None:
        """
        C{host:NAME=BACKEND|...} gives a L{HostBackend} with one parsed
        backend per (lower-cased) name; it needs the C{http} protocol.
        """
        backend = parseBackend(self.reactor, ROUTES.replace("a.test", "A.Test"))
        self.assertIsInstance(backend, HostBackend)
        self.assertEqual(sorted(backend.routes), ["a.test", "b.test", "b.test:8080"])
        self.assertIsInstance(backend.routes["a.test"], TCPBackend)
        self.assertEqual(backend.needsProtocol, "http")
        self.assertEqual(backend.describe(), {"routes": {
            "a.test": "127.0.0.1:1001", "b.test": "127.0.0.1:1002",
            "b.test:8080": "127.0.0.1:1003"}})

    def test_caseInsensitivePortIgnoredExactPortFirst(self) -> None:
        """
        Names match in any case; a C{Host} with a port matches a route
        with that port first, then the name without its port.
        """
        backend = parseBackend(self.reactor, ROUTES)
        self.assertEqual(self.port(backend, "A.TEST"), 1001)
        self.assertEqual(self.port(backend, "a.test:9999"), 1001)
        self.assertEqual(self.port(backend, "B.test:8080"), 1003)
        self.assertEqual(self.port(backend, "b.test:8081"), 1002)
        self.assertEqual(self.port(backend, "b.test."), 1002)

    def test_defaultRouteTakesOthersAndMissingHost(self) -> None:
        """
        Without C{*}, an unknown or missing C{Host} has no backend; with
        it, C{*} takes both.
        """
        backend = parseBackend(self.reactor, ROUTES)
        self.assertIsNone(backend.choose("c.test"))
        self.assertIsNone(backend.choose(None))
        backend = parseBackend(self.reactor, ROUTES + "|*=127.0.0.1:1009")
        self.assertEqual(self.port(backend, "c.test"), 1009)
        self.assertEqual(self.port(backend, None), 1009)

    def test_withoutPort(self) -> None:
        """
        The port and a trailing dot go; an IPv6 literal keeps its brackets.
        """
        self.assertEqual(withoutPort("a.test:80"), "a.test")
        self.assertEqual(withoutPort("[::1]:80"), "[::1]")
        self.assertEqual(withoutPort("a.test."), "a.test")
        self.assertEqual(withoutPort("a.test"), "a.test")

    def test_badRouteSyntax(self) -> None:
        """
        A route that is not C{NAME=BACKEND}, or whose backend is invalid,
        is refused naming it.
        """
        for text, named in (("host:a.test", "'a.test'"), ("host:=127.0.0.1:1", "'=127.0.0.1:1'"),
                            ("host:a.test=", "'a.test='"),
                            ("host:a.test=127.0.0.1:0", "must not be 0")):
            e = self.assertRaises(EndpointError, parseBackend, self.reactor, text)
            self.assertIn(named, str(e))

    def test_sniSharesTheRoutes(self) -> None:
        """
        An C{sni:} backend parses the same routes (the shared base) and
        needs no protocol, unless a route is C{host:}-routed.
        """
        backend = parseBackend(self.reactor, "sni:A.test=127.0.0.1:1001|*=127.0.0.1:1002")
        self.assertIsInstance(backend, SNIBackend)
        self.assertEqual(backend.choose("a.TEST").port, 1001)
        self.assertIsNone(backend.needsProtocol)
        checkProtocol(backend, "redis")
        nested = parseBackend(self.reactor, "sni:a.test=host:*=127.0.0.1:1")
        self.assertEqual(nested.needsProtocol, "http")

    def test_checkProtocolRefusesOthers(self) -> None:
        """
        L{checkProtocol} accepts a C{host:} backend for C{http} only,
        naming the protocol it needs.
        """
        backend = parseBackend(self.reactor, ROUTES)
        checkProtocol(backend, "http")
        e = self.assertRaises(EndpointError, checkProtocol, backend, "tcp")
        self.assertIn("needs --protocol http (not tcp)", str(e))


class StartupTests(TestCase):
    """
    C{twistd vaurien} refuses a C{host:} backend it cannot use.
    """

    timeout = 60

    def test_nonHTTPProtocolIsAUsageError(self) -> None:
        """
        With another protocol than C{http}, the options are refused with
        the reason.
        """
        options = tap.Options()
        e = self.assertRaises(UsageError, options.parseOptions, [
            "--backend", "host:a.test=127.0.0.1:1", "--protocol", "redis"])
        self.assertIn("routes by the HTTP Host header: it needs --protocol http (not redis)",
                      str(e))
        options = tap.Options()
        options.parseOptions(["--backend", "host:a.test=127.0.0.1:1", "--protocol", "http"])

    def test_badRouteIsAUsageError(self) -> None:
        """
        A malformed route is a usage error naming it.
        """
        options = tap.Options()
        e = self.assertRaises(UsageError, options.parseOptions, [
            "--backend", "host:a.test|b.test=127.0.0.1:1", "--protocol", "http"])
        self.assertIn("route 'a.test' in", str(e))

    @defer.inlineCallbacks
    def test_twistdExitsWithOne(self) -> Generator[Any, Any, None]:
        """
        A real C{twistd -n vaurien} with a C{host:} backend under
        C{--protocol tcp} exits with status 1 and prints the reason on one
        line, without a traceback.
        """
        from txvaurien.test.test_cli import runTwistd

        code, out = yield runTwistd(["--backend", "host:a.test=127.0.0.1:1"])
        self.assertEqual(code, 1, out)
        [line] = [line for line in out.splitlines() if "Host header" in line]
        self.assertIn("needs --protocol http (not tcp)", line)
        self.assertNotIn("Traceback", out)


def _get(host: str, extra: str = "") -> bytes:
    return "GET / HTTP/1.1\r\nHost: {}\r\n{}\r\n".format(host, extra).encode()


class InMemoryTests(SynchronousTestCase):
    """
    A proxy with a C{host:} backend on a L{MemoryReactorClock}: how the
    head is read, which backend is dialled, what the client gets.
    """

    def setUp(self) -> None:
        self.harness = Harness(protocol="http")
        self.harness.factory.backend = parseBackend(self.harness.reactor, ROUTES)
        self.harness.factory.connectTimeout = 10
        self.logs = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def dialled(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in self.harness.reactor.tcpClients]

    def test_headInPiecesChoosesBackendAndReachesItFirst(self) -> None:
        """
        The client is read while no backend is connected; once its head
        is whole, the client is paused, the backend its C{Host} names is
        dialled, and it gets every byte read, in order, before later ones.
        """
        client = self.harness.accept()
        self.assertEqual(client.transport.producerState, "producing")
        client.send(b"GET / HTTP/1.1\r\nHo")
        self.assertEqual(self.dialled(), [])
        client.send(b"st: B.test\r\n\r\nPOST")
        self.assertEqual(client.transport.producerState, "paused")
        self.assertEqual(self.dialled(), [("127.0.0.1", 1002)])
        self.assertNotIn("dataReceived", vars(client.protocol))
        backend = self.harness.backendConnects()
        # The start of the next head is held by the framer until it is whole.
        self.assertEqual(backend.received(), _get("B.test"))
        self.assertEqual(client.transport.producerState, "producing")
        client.send(b" /x HTTP/1.1\r\nHost: b.test\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(backend.received(),
                         b"POST /x HTTP/1.1\r\nHost: b.test\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.harness.reactor.getDelayedCalls(), [])

    def test_emptyLinesAndSplitEndOfHead(self) -> None:
        """
        Empty lines before the request, and an empty line that ends the
        head cut between two reads, are read like the framer reads them;
        the backend gets them all.
        """
        client = self.harness.accept()
        for piece in (b"\r\n", b"\r\nGET / HTTP/1.1\r\nHost: a.test\r", b"\n\r"):
            client.send(piece)
            self.assertEqual(self.dialled(), [])
        client.send(b"\n")
        self.assertEqual(self.dialled(), [("127.0.0.1", 1001)])
        backend = self.harness.backendConnects()
        self.assertEqual(backend.received(), b"\r\n\r\n" + _get("a.test"))

    def test_tlsListenerDialsOnNextTurnKeepingLaterBytes(self) -> None:
        """
        Behind a TLS listener (a transport that can C{hold}), which hands
        over all it decrypted in one read, the dial waits for the next turn
        and the bytes handed over after the head are kept, in order.
        """
        client = self.harness.accept()
        client.transport.hold = lambda: None
        client.send(_get("a.test"))
        client.send(b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertEqual(self.dialled(), [])
        self.harness.reactor.advance(0)
        self.assertEqual(self.dialled(), [("127.0.0.1", 1001)])
        backend = self.harness.backendConnects()
        self.assertEqual(backend.received(),
                         _get("a.test") + b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")

    def assertRefused(self, client: Any, reason: str) -> None:
        answer = client.received()
        self.assertTrue(answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), answer)
        self.assertIn(reason.encode(), answer)
        self.assertEqual(self.dialled(), [])
        self.assertTrue(client.transport.disconnecting)
        [event] = [e for e in self.logs if e.get("event") == "hostroute"]
        self.assertIn(reason, event["why"])

    def test_unknownHostGets502NamingIt(self) -> None:
        """
        A C{Host} no route takes gets the http handler's 502 naming it, a
        warning with the host as a field, and nothing is dialled.
        """
        client = self.harness.accept()
        client.send(_get("c.test"))
        self.assertRefused(client, "no backend for Host 'c.test'")
        [event] = [e for e in self.logs if e.get("event") == "hostroute"]
        self.assertEqual(event["host"], "c.test")

    def test_missingHostWithoutDefault(self) -> None:
        """
        A request without C{Host} and no C{*} route gets a 502 saying so.
        """
        client = self.harness.accept()
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        self.assertRefused(client, "no Host field and no * route")

    def test_malformedHead(self) -> None:
        """
        A head the parser refuses gets a 502 saying it is malformed.
        """
        client = self.harness.accept()
        client.send(b"NOT HTTP AT ALL\r\nHost: a.test\r\n\r\n")
        self.assertRefused(client, "malformed request head")

    def test_headTooLong(self) -> None:
        """
        A head longer than the http handler's limit gets a 502 saying so,
        as soon as the limit is passed.
        """
        client = self.harness.accept()
        client.send(b"GET / HTTP/1.1\r\nX: " + b"x" * HEAD_LIMIT)
        self.assertRefused(client, "no end of request head within {} bytes".format(HEAD_LIMIT))
        client.send(b"more")
        self.assertEqual(client.received(), b"")

    def test_endOfStreamBeforeHead(self) -> None:
        """
        A client that half-closes before a whole head gets a 502.
        """
        client = self.harness.accept()
        client.send(b"GET / HTTP/1.1\r\n")
        client.halfClose()
        self.assertRefused(client, "ended its stream before a full request head")

    def test_noHeadWithinTimeout(self) -> None:
        """
        A head that does not come within the connect timeout gets a 502.
        """
        client = self.harness.accept()
        client.send(b"GET / HTTP/1.1\r\n")
        self.harness.reactor.advance(10)
        self.assertRefused(client, "no full request head within 10s")

    def test_clientGoneLeavesNothingBehind(self) -> None:
        """
        A client that leaves while its head is read, or (behind TLS)
        between the head and the dial, cancels the attempt: no timer, no dial, its protocol
        restored, the connection finished.
        """
        client = self.harness.accept()
        client.send(b"GET / HTTP/1.1\r\n")
        client.lose()
        self.assertEqual(self.harness.reactor.getDelayedCalls(), [])
        self.assertNotIn("dataReceived", vars(client.protocol))
        self.assertEqual(self.harness.factory.connections, {})
        client = self.harness.accept()
        client.transport.hold = lambda: None
        client.send(_get("a.test"))
        client.lose()
        self.harness.reactor.advance(0)
        self.assertEqual(self.dialled(), [])
        self.assertEqual(self.harness.reactor.getDelayedCalls(), [])
        self.assertEqual(self.harness.factory.connections, {})

    def test_connectTimeoutCancelsDial(self) -> None:
        """
        Once dialled, the chosen backend's own attempt is what the
        connection cancels when it closes.
        """
        client = self.harness.accept()
        client.send(_get("a.test"))
        self.harness.reactor.advance(0)
        connection = client.protocol.connection
        [connector] = self.harness.reactor.connectors
        connection.close()
        self.assertTrue(connector.stoppedConnecting)
        client.lose()
        self.assertEqual(self.harness.factory.connections, {})

    def test_h11ParserRoutesToo(self) -> None:
        """
        With the h11 parser, the head is read with it and routed alike.
        """
        self.harness.handler.settings["parser"] = "h11"
        client = self.harness.accept()
        client.send(_get("b.test:8080"))
        self.harness.reactor.advance(0)
        self.assertEqual(self.dialled(), [("127.0.0.1", 1003)])

    def test_routedFramersAreFramers(self) -> None:
        """
        Once routed, the session's framers still provide L{IFramer}, and
        the session L{IProtocolSession}; a misdirected request is one
        empty request marked L{MISDIRECTED}, and what follows it is
        dropped.
        """
        client = self.harness.accept()
        client.send(_get("a.test"))
        self.harness.reactor.advance(0)
        session = client.protocol.connection.session
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)
        frames = session.upstream.feed(
            _get("a.test") + _get("b.test", "Content-Length: 5\r\n") + b"12")
        self.assertEqual([(f.message.kind, f.data, f.first, f.last) for f in frames], [
            (REQUEST, _get("a.test"), True, True), (REQUEST, b"", True, True)])
        self.assertEqual(frames[1].message.meta[MISDIRECTED], "b.test")
        self.assertEqual(session.upstream.feed(b"345" + _get("a.test")), [])
        self.assertEqual(session.upstream.finish(), [])

    def test_otherHostOnSameConnectionGets421(self) -> None:
        """
        After the first request, one for a host of another backend is not
        sent: the client gets 421 with C{Connection: close}, after the
        response owed before it, and the connection closes; one for the
        same backend goes through.
        """
        client = self.harness.accept()
        client.send(_get("a.test") + _get("A.TEST:80"))
        self.harness.reactor.advance(0)
        backend = self.harness.backendConnects()
        self.assertEqual(backend.received(), _get("a.test") + _get("A.TEST:80"))
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        backend.send(ok)
        client.send(_get("b.test", "Content-Length: 3\r\n") + b"abc" + _get("a.test"))
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), ok)
        backend.send(ok)
        answer = client.received()
        self.assertTrue(answer.startswith(ok + b"HTTP/1.1 421 Misdirected Request\r\n"), answer)
        self.assertIn(b"Connection: close\r\n", answer)
        self.assertIn(b"'b.test'", answer)
        self.harness.reactor.advance(0)
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(backend.received(), b"")


class _Named(resource.Resource):
    """
    Answers C{I am NAME} and counts the requests it got.
    """

    isLeaf = True

    def __init__(self, name: str) -> None:
        resource.Resource.__init__(self)
        self.name = name
        self.hosts: list[bytes] = []

    def render_GET(self, request: Any) -> bytes:
        self.hosts.append(request.getHeader(b"host") or b"")
        return "I am {}".format(self.name).encode()


def _urlopen(port: int, host: str) -> tuple[int, bytes]:
    request = urllib.request.Request("http://127.0.0.1:{}/".format(port), headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _oneConnection(port: int, hosts: list[str]) -> list[tuple[int, str | None, bytes]]:
    """
    Requests for C{hosts} on one http.client connection (stopping after a
    response that closes it).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers = []
    try:
        for host in hosts:
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            answers.append((response.status, response.getheader("Connection"), response.read()))
            if response.will_close:
                break
    finally:
        conn.close()
    return answers


def _thenClosed(port: int, first: str, second: str) -> tuple[int, int, bytes]:
    """
    Two requests on one socket, each sent once the previous answer is
    read; then what the socket reads next (C{b""}: closed by the proxy).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        statuses = []
        for host in (first, second):
            s.sendall(_get(host))
            response = http.client.HTTPResponse(s)
            response.begin()
            response.read()
            statuses.append(response.status)
        return statuses[0], statuses[1], s.recv(100)


class RealClientTests(TestCase):
    """
    Real clients through a proxy with C{--backend host:...} in front of
    two real HTTP backends.
    """

    timeout = 60

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.a, self.b = _Named("A"), _Named("B")
        self.portA = listenBackend(self, server.Site(self.a))
        self.portB = listenBackend(self, server.Site(self.b))

    def routes(self, default: bool = False) -> str:
        text = "host:a.test=127.0.0.1:{}|b.test=127.0.0.1:{}".format(self.portA, self.portB)
        return text + ("|*=127.0.0.1:{}".format(self.portB) if default else "")

    def proxy(self, default: bool = False, **kw: Any) -> defer.Deferred:
        backend = parseBackend(self.reactor, self.routes(default))
        return listenTLSProxy(self, backend, "tcp:0:interface=127.0.0.1", **kw)

    @defer.inlineCallbacks
    def test_urllibRoutesByHost(self) -> Generator[Any, Any, None]:
        """
        urllib with C{Host: a.test} reaches A and with C{Host: B.TEST:81}
        reaches B (any case, port ignored); C{c.test} gets a 502 naming it.
        """
        proxy = yield self.proxy()
        self.assertEqual((yield inThread(_urlopen, proxy.port, "a.test")), (200, b"I am A"))
        self.assertEqual((yield inThread(_urlopen, proxy.port, "B.TEST:81")), (200, b"I am B"))
        status, body = yield inThread(_urlopen, proxy.port, "c.test")
        self.assertEqual(status, 502)
        self.assertIn(b"no backend for Host 'c.test'", body)
        self.assertEqual((self.a.hosts, self.b.hosts), ([b"a.test"], [b"B.TEST:81"]))

    @defer.inlineCallbacks
    def test_curlRoutesAndDefault(self) -> Generator[Any, Any, None]:
        """
        curl with C{-H Host:} for each name reaches its backend; with a
        C{*} route an unknown name reaches the default.
        """
        requireBinary("curl", "curl")
        proxy = yield self.proxy(default=True)
        url = "http://127.0.0.1:{}/".format(proxy.port)
        for host, expected in (("a.test", b"I am A"), ("b.test", b"I am B"),
                               ("other.test", b"I am B")):
            out, err, code = yield curl("-H", "Host: " + host, url)
            self.assertEqual((code, out), (0, expected), err)

    @defer.inlineCallbacks
    def test_keepAliveSameHostWorks(self) -> Generator[Any, Any, None]:
        """
        Several requests on one connection for names of the same backend
        all get their answer, over one proxied connection.
        """
        proxy = yield self.proxy()
        answers = yield inThread(_oneConnection, proxy.port, ["a.test", "A.test:8000", "a.test"])
        self.assertEqual([a[0] for a in answers], [200, 200, 200])
        self.assertEqual(proxy.accepted, 1)
        self.assertEqual(len(self.a.hosts), 3)

    @defer.inlineCallbacks
    def test_keepAliveOtherHostGets421AndClose(self) -> Generator[Any, Any, None]:
        """
        On one http.client connection, a request for a name of another
        backend gets 421 with C{Connection: close}; the proxy then closes
        the socket, and B never sees the request.
        """
        proxy = yield self.proxy()
        answers = yield inThread(_oneConnection, proxy.port, ["a.test", "b.test", "a.test"])
        self.assertEqual([(s, c) for s, c, _ in answers], [(200, None), (421, "close")])
        self.assertIn(b"'b.test'", answers[1][2])
        self.assertEqual(self.b.hosts, [])
        first, second, after = yield inThread(_thenClosed, proxy.port, "a.test", "b.test")
        self.assertEqual((first, second, after), (200, 421, b""))

    @defer.inlineCallbacks
    def test_faultActsOnFirstRequest(self) -> Generator[Any, Any, None]:
        """
        With C{100:error}, the first request, read to choose the backend,
        gets the error behavior's reply and never reaches the backend.
        """
        proxy = yield self.proxy(behavior="100:error")
        status, body = yield inThread(_urlopen, proxy.port, "a.test")
        self.assertIn(status, (500, 501, 502, 503))
        self.assertIn(b"error injected", body)
        self.assertEqual(self.a.hosts, [])

    @defer.inlineCallbacks
    def test_delayActsOnFirstRequest(self) -> Generator[Any, Any, None]:
        """
        With C{100:delay} of 300ms, the first request is answered by its
        backend no sooner than the delay.
        """
        proxy = yield self.proxy(behavior="100:delay", settings={"delay": {"sleep": 0.3}})
        started = self.reactor.seconds()
        self.assertEqual((yield inThread(_urlopen, proxy.port, "b.test")), (200, b"I am B"))
        self.assertGreaterEqual(self.reactor.seconds() - started, 0.3)


class TLSTests(TestCase):
    """
    C{--proxy ssl:...:caCert=...} with a C{host:} backend: the proxy mints
    a certificate for each server name, the C{Host} picks the backend.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_curlOverTLSWithTwoNames(self) -> Generator[Any, Any, None]:
        """
        curl trusting the CA reaches C{a.test} and C{b.test} through one
        TLS listener, each routed to its backend by its C{Host}; a
        C{Host} that differs from the server name is routed by the
        C{Host}.
        """
        from twisted.internet import reactor

        requireBinary("curl", "curl")
        certs = TestCertificates(self)
        portA = listenBackend(self, server.Site(_Named("A")))
        portB = listenBackend(self, server.Site(_Named("B")))
        backend = parseBackend(reactor, "host:a.test=127.0.0.1:{}|b.test=127.0.0.1:{}".format(
            portA, portB))
        proxy = yield listenTLSProxy(
            self, backend, "ssl:0:interface=127.0.0.1:caCert={}:caKey={}".format(
                certs.caFile, certs.caKeyFile))
        for name, host, expected in (("a.test", None, b"I am A"), ("b.test", None, b"I am B"),
                                     ("a.test", "b.test", b"I am B")):
            extra = ["-H", "Host: " + host] if host else []
            out, err, code = yield curl(
                "--cacert", certs.caFile, *extra,
                "--resolve", "{}:{}:127.0.0.1".format(name, proxy.port),
                "https://{}:{}/".format(name, proxy.port))
            self.assertEqual((code, out), (0, expected), err)
        out, err, code = yield curl(
            "--cacert", certs.caFile, "-H", "Host: c.test",
            "--resolve", "a.test:{}:127.0.0.1".format(proxy.port),
            "https://a.test:{}/".format(proxy.port))
        self.assertEqual(code, 0, err)
        self.assertIn(b"no backend for Host 'c.test'", out)


class TLSBackendRouteTests(TestCase):
    """
    A route's backend may be a verified C{tls:} one.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_routeToTLSBackend(self) -> Generator[Any, Any, None]:
        """
        A request for C{secure.test} reaches an HTTPS backend through a
        C{tls:} route (verified against the test CA), with its head
        read by the proxy first; C{plain.test} reaches a plain one.
        """
        from twisted.internet import reactor

        certs = TestCertificates(self)
        secure = listenHTTPS(self, certs)
        plain = listenBackend(self, server.Site(_Named("plain")))
        backend = parseBackend(
            reactor, "host:secure.test=tls:host=localhost:port={}:caFile={}|"
            "plain.test=127.0.0.1:{}".format(secure, certs.caFile, plain))
        proxy = yield self.proxy(backend)
        self.assertEqual((yield inThread(_urlopen, proxy.port, "secure.test")),
                         (200, b"hello over TLS from secure.test"))
        self.assertEqual((yield inThread(_urlopen, proxy.port, "plain.test")),
                         (200, b"I am plain"))

    def proxy(self, backend: Any) -> defer.Deferred:
        return listenTLSProxy(self, backend, "tcp:0:interface=127.0.0.1")


class _Length(resource.Resource):
    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        return str(len(request.content.read())).encode()


class TLSBodyTests(TestCase):
    """
    The bytes a TLS listener decrypts in the same read as the first head
    reach the backend too, in order.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_bodyAfterHeadInSameReadKept(self) -> Generator[Any, Any, None]:
        """
        A first request of 200000 bytes of body, written at once over TLS,
        reaches its backend whole.
        """
        from twisted.internet import reactor

        certs = TestCertificates(self)
        port = listenBackend(self, server.Site(_Length()))
        backend = parseBackend(reactor, "host:a.test=127.0.0.1:{}".format(port))
        proxy = yield listenTLSProxy(
            self, backend, "ssl:0:interface=127.0.0.1:caCert={}:caKey={}".format(
                certs.caFile, certs.caKeyFile))
        # One write: several TLS records the proxy decrypts in one read.
        request = (b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 200000\r\n"
                   b"Connection: close\r\n\r\n" + b"x" * 200000)
        _, answer = yield inThread(pythonClient, proxy.port, certs.caFile,
                                   serverName="a.test", request=request)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
        self.assertTrue(answer.endswith(b"\r\n\r\n200000"), answer[-100:])


class ControlTests(TestCase):
    """
    The control APIs take a C{host:} backend only for an C{http} proxy.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_putBackendNeedsHTTP(self) -> Generator[Any, Any, None]:
        """
        Vaurien's C{PUT /backend} answers 400 with the reason on a C{tcp}
        proxy; on an C{http} proxy it is taken, and C{GET /backend} shows
        each route.  Toxiproxy's C{POST /proxies} refuses it (its proxies
        frame C{tcp}).
        """
        from txvaurien.test.controlhelpers import Control

        routes = "host:a.test=127.0.0.1:1|*=127.0.0.1:2"
        control = Control(self, ["--backend", "127.0.0.1:1", "--proxy", "tcp:0:interface=127.0.0.1"])
        status, body = yield control.json("PUT", "/backend", {"backend": routes})
        self.assertEqual(status, 400)
        self.assertIn("needs --protocol http (not tcp)", str(body))
        status, body = yield control.json("POST", "/proxies", {
            "name": "web", "listen": "127.0.0.1:0", "upstream": routes})
        self.assertEqual(status, 400)
        self.assertIn("needs --protocol http", str(body))
        yield control.stop()
        control = Control(self, ["--backend", "127.0.0.1:1", "--protocol", "http",
                                 "--proxy", "tcp:0:interface=127.0.0.1"])
        status, body = yield control.json("PUT", "/backend", {"backend": routes})
        self.assertEqual(status, 200, body)
        status, body = yield control.json("GET", "/backend")
        self.assertEqual(body, {"backend": routes, "tls": {"routes": {
            "a.test": {"backend": "127.0.0.1:1", "tls": None},
            "*": {"backend": "127.0.0.1:2", "tls": None}}}})
