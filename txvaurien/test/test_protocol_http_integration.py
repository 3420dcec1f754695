"""
Integration tests of the C{http} protocol handler on real sockets of
127.0.0.1: a twisted.web backend, and real clients (urllib, http.client,
curl) run in threads or processes so that the reactor keeps serving.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import urllib.error
import urllib.request
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web import resource, server

from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import TIMEOUT, Events, assertSeededSubset
from txvaurien.test.servers import inCI, listenBackend


class Backend(resource.Resource):
    """
    A twisted.web resource: C{GET /x} answers C{echo:/x}; C{/host} the
    C{Host} it was sent; C{/chunked} a chunked body; C{/big/N} N bytes;
    C{/die} half a response then a dropped connection; C{POST}/C{PUT}
    the size and SHA-256 of the body.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        path = request.path
        request.setHeader(b"content-type", b"text/plain")
        if path == b"/host":
            return request.getHeader(b"host") or b""
        if path == b"/chunked":
            request.write(b"part one, ")
            request.write(b"part two")
            request.finish()
            return server.NOT_DONE_YET
        if path.startswith(b"/big/"):
            size = int(path[5:])
            return bytes(i % 251 for i in range(size))
        if path == b"/die":
            request.setHeader(b"content-length", b"1000")
            request.write(b"only ten b")
            # Closed once the bytes so far are written, as when the
            # backend process dies.
            request.channel.transport.loseConnection()
            return server.NOT_DONE_YET
        return b"echo:" + path

    def render_POST(self, request: Any) -> bytes:
        data = request.content.read()
        return b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())

    render_PUT = render_POST


class TrackingSite(server.Site):
    """
    A L{server.Site} that knows its live connections, so a test can wait
    until they are all gone.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        server.Site.__init__(self, *args, **kwargs)
        self.live: dict[Any, defer.Deferred] = {}

    def buildProtocol(self, addr: Any) -> Any:
        channel = server.Site.buildProtocol(self, addr)
        lost: defer.Deferred = defer.Deferred()
        self.live[channel] = lost
        original = channel.connectionLost

        def connectionLost(reason: Any) -> None:
            original(reason)
            self.live.pop(channel, None)
            lost.callback(None)

        channel.connectionLost = connectionLost
        return channel

    def whenAllClosed(self) -> defer.Deferred:
        return defer.gatherResults(list(self.live.values()))


def startBackend(case: TestCase, site: Any = None) -> tuple[int, TrackingSite]:
    """
    Listen with a twisted.web site on an ephemeral port; at cleanup, stop
    listening and wait until its connections are closed.  Call this before
    L{listenProxy}, so that the proxy is drained first.
    """
    site = site or TrackingSite(Backend())
    site.noisy = False
    port: Any = reactor.listenTCP(0, site, interface="127.0.0.1")
    case.addCleanup(site.whenAllClosed)
    case.addCleanup(port.stopListening)
    return port.getHost().port, site


def requireCurl() -> str:
    path = shutil.which("curl")
    if path is None:
        if inCI():
            raise AssertionError("CI=true but curl not found (Debian package curl)")
        raise SkipTest("curl not found (Debian package curl)")
    return path


def get(port: int, path: str) -> tuple[int, bytes]:
    """
    C{GET} with urllib (blocking): the status and body.
    """
    with urllib.request.urlopen(
            "http://127.0.0.1:{}{}".format(port, path), timeout=TIMEOUT) as response:
        return response.status, response.read()


def sequential(port: int, count: int) -> list[tuple[int, bytes]]:
    """
    C{count} GETs in a row on one keep-alive http.client connection
    (blocking).
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    results = []
    try:
        for i in range(count):
            connection.request("GET", "/item/{}".format(i))
            response = connection.getresponse()
            results.append((response.status, response.read()))
    finally:
        connection.close()
    return results


def rawExchange(port: int, data: bytes, expected: int) -> bytes:
    """
    Send C{data} on a plain socket and read until C{expected} bytes came
    back (blocking).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        received = b""
        while len(received) < expected:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


class ClientTests(TestCase):
    """
    Real clients work through C{--protocol http} with C{dummy}.
    """

    timeout = 60

    def setUp(self) -> None:
        self.backendPort, self.site = startBackend(self)

    @defer.inlineCallbacks
    def test_urllibGetAndPost(self) -> Generator[Any, Any, Any]:
        """
        urllib gets a resource and posts a body through the proxy, bytes
        intact.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")
        status, body = yield deferToThread(get, proxy.port, "/hello")
        self.assertEqual((status, body), (200, b"echo:/hello"))
        payload = os.urandom(300000)

        def post() -> bytes:
            request = urllib.request.Request(
                "http://127.0.0.1:{}/upload".format(proxy.port), data=payload, method="POST")
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.read()

        body = yield deferToThread(post)
        self.assertEqual(body, b"%d %s" % (len(payload),
                                           hashlib.sha256(payload).hexdigest().encode()))

    @defer.inlineCallbacks
    def test_keepAliveOneConnection(self) -> Generator[Any, Any, Any]:
        """
        http.client reuses one connection for 20 requests, each answered
        with its own body, and a chunked response and a HEAD in between.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")

        def run() -> list[Any]:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT)
            out: list[Any] = []
            try:
                for i in range(20):
                    connection.request("GET", "/k/{}".format(i))
                    out.append(connection.getresponse().read())
                connection.request("GET", "/chunked")
                response = connection.getresponse()
                out.append((response.getheader("transfer-encoding"), response.read()))
                connection.request("HEAD", "/k/head")
                response = connection.getresponse()
                out.append((response.status, response.read()))
                connection.request("GET", "/k/after")
                out.append(connection.getresponse().read())
            finally:
                connection.close()
            return out

        out = yield deferToThread(run)
        self.assertEqual(out[:20], [b"echo:/k/%d" % i for i in range(20)])
        self.assertEqual(out[20], ("chunked", b"part one, part two"))
        self.assertEqual(out[21], (200, b""))
        self.assertEqual(out[22], b"echo:/k/after")
        self.assertEqual(proxy.accepted, 1)

    @defer.inlineCallbacks
    def test_pipelining(self) -> Generator[Any, Any, Any]:
        """
        Three requests written at once (one with a chunked body) get their
        three responses, in order.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")
        requests = (b"GET /p/1 HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"POST /p/2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n0\r\n\r\n"
                    b"GET /p/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = yield deferToThread(rawExchange, proxy.port, requests, 10 ** 6)
        first = received.index(b"echo:/p/1")
        second = received.index(b"3 " + hashlib.sha256(b"abc").hexdigest().encode())
        third = received.index(b"echo:/p/3")
        self.assertTrue(first < second < third)
        self.assertEqual(received.count(b"HTTP/1.1 200 OK"), 3)

    @defer.inlineCallbacks
    def test_curlKeepAliveExpectAndChunkedUpload(self) -> Generator[Any, Any, Any]:
        """
        curl fetches two URLs on one connection, uploads with C{Expect:
        100-continue} (twisted.web answers 100 before the body) and with a
        chunked body.
        """
        curl = requireCurl()
        proxy = listenProxy(self, self.backendPort, protocol="http")
        base = "http://127.0.0.1:{}".format(proxy.port)
        out, err, code = yield getProcessOutputAndValue(
            curl, ["-sS", "-v", base + "/c/1", base + "/c/2"], env={})
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"echo:/c/1echo:/c/2")
        self.assertIn(b"Re-using existing connection", err)
        payload = os.urandom(70000)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(payload)
        digest = b"%d %s" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
        out, err, code = yield getProcessOutputAndValue(
            curl, ["-sS", "-v", "-H", "Expect: 100-continue", "--data-binary", "@" + path,
                   base + "/upload"], env={})
        self.assertEqual(code, 0, err)
        self.assertIn(b"HTTP/1.1 100 Continue", err)
        self.assertEqual(out, digest)
        out, err, code = yield getProcessOutputAndValue(
            curl, ["-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                   base + "/upload"], env={})
        self.assertEqual((code, out), (0, digest), err)

    @defer.inlineCallbacks
    def test_hostRewritten(self) -> Generator[Any, Any, Any]:
        """
        With C{overwrite_host_header}, the backend sees its own address in
        C{Host}; without it, the client's.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http",
                            protocolSettings={"overwrite_host_header": True})
        _, body = yield deferToThread(get, proxy.port, "/host")
        self.assertEqual(body, "127.0.0.1:{}".format(self.backendPort).encode())
        plain = listenProxy(self, self.backendPort, protocol="http")
        _, body = yield deferToThread(get, plain.port, "/host")
        self.assertEqual(body, "127.0.0.1:{}".format(plain.port).encode())

    @defer.inlineCallbacks
    def test_bigDownload(self) -> Generator[Any, Any, Any]:
        """
        A 20 MB response streams through intact.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")
        size = 20 * 1000 * 1000
        _, body = yield deferToThread(get, proxy.port, "/big/{}".format(size))
        self.assertEqual(len(body), size)
        self.assertEqual(hashlib.sha256(body).hexdigest(),
                         hashlib.sha256(bytes(i % 251 for i in range(size))).hexdigest())

    @defer.inlineCallbacks
    def test_responseDelimitedByClose(self) -> Generator[Any, Any, Any]:
        """
        A response with neither length nor chunked encoding ends when the
        backend ends its stream: with a backend that only half-closes, the
        end of stream reaches urllib only if the response was ended then;
        the connection is closed and logged once.
        """
        events = Events(self)
        body = b"streamed until the end " * 1000

        class UntilClose(protocol.Protocol):
            transport: Any

            def dataReceived(self, data: bytes) -> None:
                if b"\r\n\r\n" in data:
                    self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                    self.transport.write(body)
                    self.transport.loseWriteConnection()

        factory = protocol.ServerFactory.forProtocol(UntilClose)
        factory.noisy = False
        proxy = listenProxy(self, listenBackend(self, factory), protocol="http")
        status, received = yield deferToThread(get, proxy.port, "/")
        self.assertEqual((status, received), (200, body))
        yield events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_curlConnectTunnel(self) -> Generator[Any, Any, Any]:
        """
        curl opens a C{CONNECT} tunnel (C{--proxytunnel}) through the proxy
        to a backend that accepts it and then serves HTTP inside; after the
        200 the connection is passed through.
        """
        curl = requireCurl()
        site = TrackingSite(Backend())

        class ConnectThenHTTP(protocol.Protocol):
            inner: Any = None
            buffer = b""
            transport: Any

            def dataReceived(self, data: bytes) -> None:
                if self.inner is not None:
                    self.inner.dataReceived(data)
                    return
                self.buffer += data
                if b"\r\n\r\n" in self.buffer:
                    head, rest = self.buffer.split(b"\r\n\r\n", 1)
                    assert head.startswith(b"CONNECT "), head
                    self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self.inner = site.buildProtocol(None)
                    self.inner.makeConnection(self.transport)
                    if rest:
                        self.inner.dataReceived(rest)

            def connectionLost(self, reason: Any = None) -> None:
                if self.inner is not None:
                    self.inner.connectionLost(reason)

        factory = protocol.ServerFactory.forProtocol(ConnectThenHTTP)
        factory.noisy = False
        port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(site.whenAllClosed)
        self.addCleanup(port.stopListening)
        proxy = listenProxy(self, port.getHost().port, protocol="http")
        out, err, code = yield getProcessOutputAndValue(
            curl, ["-sS", "-p", "-x", "http://127.0.0.1:{}".format(proxy.port),
                   "http://inside.example:80/tunnelled"], env={})
        self.assertEqual((code, out), (0, b"echo:/tunnelled"), err)


class ErrorTests(TestCase):
    """
    Error replies are HTTP responses clients understand, and keep the
    connection usable.
    """

    timeout = 60

    def setUp(self) -> None:
        self.backendPort, self.site = startBackend(self)

    @defer.inlineCallbacks
    def test_swallowGives503(self) -> Generator[Any, Any, Any]:
        """
        A request answered by the proxy (test-only C{swallow}, no status
        asked) makes urllib raise L{urllib.error.HTTPError} with status
        503 and the proxy's text.
        """
        proxy = listenProxy(self, self.backendPort, behavior="100:swallow", protocol="http")
        failure = yield self.assertFailure(
            deferToThread(get, proxy.port, "/x"), urllib.error.HTTPError)
        self.assertEqual(failure.code, 503)
        self.assertEqual(failure.read(), b"txvaurien: swallowed\n")
        failure.close()

    @defer.inlineCallbacks
    def test_errorBehaviorStatus(self) -> Generator[Any, Any, Any]:
        """
        The C{error} behavior's status reaches urllib as the
        L{urllib.error.HTTPError} code.
        """
        proxy = listenProxy(self, self.backendPort, behavior="100:error", protocol="http",
                            settings={"error": {"codes": [418]}})
        failure = yield self.assertFailure(
            deferToThread(get, proxy.port, "/x"), urllib.error.HTTPError)
        self.assertEqual(failure.code, 418)
        failure.close()

    @defer.inlineCallbacks
    def requestScopeRun(self, behavior: str, seed: int,
                        settings: dict[str, Any] | None = None) -> Any:
        proxy = listenProxy(self, self.backendPort, behavior=behavior, protocol="http",
                            seed=seed, settings=settings)
        results = yield deferToThread(sequential, proxy.port, 100)
        self.assertEqual(proxy.accepted, 1)
        return proxy, results

    @defer.inlineCallbacks
    def test_requestScopeReproducible(self) -> Generator[Any, Any, Any]:
        """
        Under request scope, C{50:swallow} with a fixed seed fails the same
        subset of 100 sequential keep-alive requests on every run (another
        seed, another subset); the others get their own, correct body; all
        on one connection.
        """

        @defer.inlineCallbacks
        def failing(seed: int) -> Generator[Any, Any, Any]:
            _, results = yield self.requestScopeRun("50:swallow", seed)
            failing = {i for i, (status, _) in enumerate(results) if status != 200}
            for i, (status, body) in enumerate(results):
                if i in failing:
                    self.assertEqual((status, body), (503, b"txvaurien: swallowed\n"))
                else:
                    self.assertEqual(body, b"echo:/item/%d" % i)
            return failing

        yield assertSeededSubset(self, failing, 7, 8, low=25, high=75)

    @defer.inlineCallbacks
    def test_requestScopeWithErrorBehavior(self) -> Generator[Any, Any, Any]:
        """
        The same with the C{error} behavior: failures carry its status, the
        rest succeed, the subset repeats with the seed.
        """
        runs = []
        for _ in range(2):
            _, results = yield self.requestScopeRun(
                "50:error", 11, {"error": {"codes": [502, 504]}})
            for i, (status, body) in enumerate(results):
                if status == 200:
                    self.assertEqual(body, b"echo:/item/%d" % i)
                else:
                    self.assertIn(status, (502, 504))
            runs.append([status for status, _ in results])
        self.assertEqual(runs[0], runs[1])
        self.assertTrue(0 < runs[0].count(200) < 100)


class FailureTests(TestCase):
    """
    A backend dying mid-response and a client leaving mid-request free the
    connection and log it once.
    """

    timeout = 60

    def setUp(self) -> None:
        self.backendPort, self.site = startBackend(self)
        self.events = Events(self)

    @defer.inlineCallbacks
    def test_backendDiesMidResponse(self) -> Generator[Any, Any, Any]:
        """
        The backend closes its connection after 10 of 1000 announced bytes:
        http.client sees an incomplete read, and the proxy frees the
        connection and logs its end once, without a traceback.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")

        def fetch() -> bytes:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT)
            try:
                connection.request("GET", "/die")
                return connection.getresponse().read()
            finally:
                connection.close()

        failure = yield self.assertFailure(deferToThread(fetch), http.client.IncompleteRead)
        self.assertEqual(failure.partial, b"only ten b")
        yield self.events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_clientLeavesMidRequest(self) -> Generator[Any, Any, Any]:
        """
        A client that sends half a request body and closes: the proxy frees
        the connection and logs its end once, without a traceback.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")

        def halfRequest() -> None:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as s:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"
                          b"just 20 bytes so far")

        yield deferToThread(halfRequest)
        yield self.events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_clientResetsMidRequest(self) -> Generator[Any, Any, Any]:
        """
        The same with a reset (RST) instead of a close.
        """
        proxy = listenProxy(self, self.backendPort, protocol="http")

        def resetRequest() -> None:
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nxx")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()

        yield deferToThread(resetRequest)
        yield self.events.assertForgotten(proxy)
