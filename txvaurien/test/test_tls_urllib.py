"""
Python's urllib (with ALPN) through the proxy's TLS: termination,
origination, both at once, and the minting CA.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.web import server

from txvaurien.endpoints import parseBackend
from txvaurien.test.servers import listenBackend
from txvaurien.test.tlshelpers import Named, TestCertificates, inThread, listenHTTPS, listenTLSProxy


def fetch(url: str, cafile: str | None = None) -> tuple[int, bytes, str | None]:
    """
    GET C{url} with urllib, offering C{h2} and C{http/1.1} over ALPN.

    @return: status, body and the negotiated protocol (L{None} over
        plain HTTP).
    """
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(["h2", "http/1.1"])
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        sock = response.fp.raw._sock
        chosen = sock.selected_alpn_protocol() if hasattr(sock, "selected_alpn_protocol") else None
        return response.status, response.read(), chosen


class UrllibTests(TestCase):
    """
    urllib against real backends through the proxy.
    """

    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.certs = TestCertificates(self)
        self.terminate = "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
            self.certs.keyFile, self.certs.certFile)

    def plainBackend(self) -> Any:
        return parseBackend(self.reactor, "127.0.0.1:{}".format(
            listenBackend(self, server.Site(Named("plain")))))

    def tlsBackend(self) -> Any:
        return parseBackend(self.reactor, "tls:host=localhost:port={}:caFile={}".format(
            listenHTTPS(self, self.certs), self.certs.caFile))

    @defer.inlineCallbacks
    def test_termination(self) -> Generator[Any, Any, None]:
        """
        HTTPS to the proxy, HTTP to the backend: 200, C{http/1.1}.
        """
        proxy = yield listenTLSProxy(self, self.plainBackend(), self.terminate)
        status, body, chosen = yield inThread(
            fetch, "https://localhost:{}/".format(proxy.port), self.certs.caFile)
        self.assertEqual((status, body, chosen), (200, b"I am plain", "http/1.1"))

    @defer.inlineCallbacks
    def test_origination(self) -> Generator[Any, Any, None]:
        """
        HTTP to the proxy, verified HTTPS to the backend: 200.
        """
        proxy = yield listenTLSProxy(self, self.tlsBackend(), "tcp:0:interface=127.0.0.1")
        status, body, chosen = yield inThread(fetch, "http://127.0.0.1:{}/".format(proxy.port))
        self.assertEqual(status, 200)
        self.assertTrue(body.startswith(b"hello over TLS"), body)

    @defer.inlineCallbacks
    def test_bothAtOnce(self) -> Generator[Any, Any, None]:
        """
        HTTPS on both legs: 200, C{http/1.1}.
        """
        proxy = yield listenTLSProxy(self, self.tlsBackend(), self.terminate)
        status, body, chosen = yield inThread(
            fetch, "https://localhost:{}/".format(proxy.port), self.certs.caFile)
        self.assertEqual((status, chosen), (200, "http/1.1"))
        self.assertTrue(body.startswith(b"hello over TLS from localhost"), body)

    @defer.inlineCallbacks
    def test_mintingCA(self) -> Generator[Any, Any, None]:
        """
        A listener with a generated CA: urllib trusting that CA gets a
        certificate minted for C{localhost} and the backend's answer.
        """
        directory = os.path.join(self.certs.directory, "ca")
        proxy = yield listenTLSProxy(self, self.plainBackend(),
                                     "ssl:0:interface=127.0.0.1:caDir=" + directory)
        status, body, chosen = yield inThread(
            fetch, "https://localhost:{}/".format(proxy.port), os.path.join(directory, "ca.pem"))
        self.assertEqual((status, body, chosen), (200, b"I am plain", "http/1.1"))
