"""
TLS termination (C{--proxy ssl:...}) with real clients: ALPN answered by
the proxy and never a reason to fail a handshake, client certificates.
"""

from __future__ import annotations

from typing import Any, Generator

import ssl

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.web import server
from zope.interface.verify import verifyObject
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator

from txvaurien.endpoints import TCPBackend, listenDescription
from txvaurien.test.servers import listenBackend, requireBinary
from txvaurien.test.tlshelpers import (
    TestCertificates, _Hello, curl, get, inThread, listenTLSProxy, pythonClient)
from txvaurien.tls import PREFIX
from txvaurien.tls.metrics import METRICS
from txvaurien.tls.server import ServerTLS


class TerminationTests(TestCase):
    """
    A TLS listener in front of a plaintext HTTP backend.
    """

    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.certs = TestCertificates(self)
        port = listenBackend(self, server.Site(_Hello()))
        self.backend = TCPBackend(reactor, "127.0.0.1", port)
        self.listen = "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
            self.certs.keyFile, self.certs.certFile)

    def test_sslListenerGoesThroughTxvaurien(self) -> None:
        """
        An C{ssl:} value of C{--proxy} becomes the proxy's own TLS
        listener, which answers ALPN itself.
        """
        self.assertEqual(listenDescription("ssl:8443:privateKey=k.pem"),
                         PREFIX + ":8443:privateKey=k.pem")

    def test_serverTLSProvidesInterface(self) -> None:
        """
        L{ServerTLS} provides L{IOpenSSLServerConnectionCreator}.
        """
        from txvaurien.tls import certs

        chain, key = certs.loadKeyPair(self.certs.certFile, self.certs.keyFile)
        self.assertTrue(verifyObject(IOpenSSLServerConnectionCreator, ServerTLS(chain, key)))

    @defer.inlineCallbacks
    def test_alpnHttpAnsweredForHttpHandler(self) -> Generator[Any, Any, Any]:
        """
        A client offering C{h2} and C{http/1.1} to a proxy with the http
        handler negotiates C{http/1.1} and gets the backend's answer.
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "http")
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      ["h2", "http/1.1"], request=get())
        self.assertEqual(chosen, "http/1.1")
        self.assertIn(b"200 OK", body)
        self.assertIn(b"hello over TLS from localhost", body)

    @defer.inlineCallbacks
    def test_alpnWithoutOverlapDoesNotFailHandshake(self) -> Generator[Any, Any, Any]:
        """
        A client offering only protocols the proxy does not speak still
        completes its handshake, with no protocol negotiated.
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "http")
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      ["h2"], request=get())
        self.assertIsNone(chosen)
        self.assertIn(b"200 OK", body)

    @defer.inlineCallbacks
    def test_alpnOfferedToTcpHandlerDoesNotFailHandshake(self) -> Generator[Any, Any, Any]:
        """
        With the C{tcp} handler (which speaks no ALPN protocol), a client
        offering ALPN completes its handshake and its bytes go through.
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "tcp")
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      ["http/1.1"], request=get())
        self.assertIsNone(chosen)
        self.assertIn(b"hello over TLS", body)

    @defer.inlineCallbacks
    def test_curlWithAlpn(self) -> Generator[Any, Any, Any]:
        """
        curl (which offers ALPN) gets an HTTP/1.1 200 through the TLS
        listener, and the handshake is counted.
        """
        requireBinary("curl", "curl")
        before = METRICS.handshakes["server"]
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "http")
        out, err, code = yield curl(
            "--cacert", self.certs.caFile, "-w", "\n%{http_code} %{http_version}",
            "https://localhost:{}/".format(proxy.port))
        self.assertEqual(code, 0, err)
        self.assertTrue(out.endswith(b"200 1.1"), out)
        self.assertGreater(METRICS.handshakes["server"], before)

    @defer.inlineCallbacks
    def test_clientCertificateRequired(self) -> Generator[Any, Any, Any]:
        """
        With C{clientCA}, a client without a certificate is refused at the
        handshake and one with a certificate from that CA gets through.
        """
        listen = self.listen + ":clientCA=" + self.certs.clientCAFile
        proxy = yield listenTLSProxy(self, self.backend, listen, "http")
        chosen, body = yield inThread(
            pythonClient, proxy.port, self.certs.caFile, request=get(),
            certfile=self.certs.clientCertFile, keyfile=self.certs.clientKeyFile)
        self.assertIn(b"200 OK", body)
        failure = yield self.assertFailure(
            inThread(pythonClient, proxy.port, self.certs.caFile, request=get()),
            ssl.SSLError, ConnectionError)
        self.assertIn("CERTIFICATE_REQUIRED", str(failure).upper())

    @defer.inlineCallbacks
    def test_handshakeDoesNotWaitForBackend(self) -> Generator[Any, Any, None]:
        """
        The client's handshake proceeds while the backend is being
        connected: with the dial delayed by a second (C{slow_open}), a
        client with a half-second timeout completes its handshake, and its
        request is answered once the backend is there.
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "http",
                                     "100:slow_open", {"slow_open": {"delay": 1000.0}},
                                     scope="connection")
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      ["http/1.1"], timeout=0.5)
        self.assertEqual(chosen, "http/1.1")
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      request=get(), timeout=5.0)
        self.assertIn(b"200 OK", body)

    @defer.inlineCallbacks
    def test_eachHandshakeCountedOnce(self) -> Generator[Any, Any, None]:
        """
        Three client connections count three server-side handshakes (TLS
        1.3 session tickets are not counted as handshakes).
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "http")
        before = METRICS.handshakes["server"]
        for _ in range(3):
            yield inThread(pythonClient, proxy.port, self.certs.caFile, request=get())
        self.assertEqual(METRICS.handshakes["server"] - before, 3)
