"""
TLS to the backend (C{--backend tls:...}): verified by default, the
reason of a failed verification reaching the client in its protocol's
error, SNI, client certificates, the explicit opt-out; and the backend
strings' errors.
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txvaurien.endpoints import EndpointError, parseBackend
from txvaurien.test.servers import listenBackend, requireBinary
from txvaurien.test.tlshelpers import (
    TestCertificates, curl, exchange, get, inThread, listenHTTPS, listenTLSProxy,
    pythonClient)
from txvaurien.tls.client import ClientTLS, TLSBackend

PLAIN = "tcp:0:interface=127.0.0.1"


def _logged(case: TestCase) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    case.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def _texts(events: list[dict[str, Any]]) -> str:
    from twisted.logger import formatEvent

    return "\n".join(formatEvent(e) for e in events)


class BackendStringTests(TestCase):
    """
    Parsing C{--backend} values.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor

    def test_tcpWithoutPortSaysPortIsMissing(self) -> None:
        """
        C{tcp:host=x} names the missing port instead of raising a
        C{TypeError} about a constructor's arguments.
        """
        e = self.assertRaises(EndpointError, parseBackend, self.reactor, "tcp:host=x")
        self.assertIn("port is missing", str(e))
        self.assertIn("tcp:host=H:port=P", str(e))

    def test_tcpWithoutHostSaysHostIsMissing(self) -> None:
        """
        C{tcp:port=80} names the missing host.
        """
        e = self.assertRaises(EndpointError, parseBackend, self.reactor, "tcp:port=80")
        self.assertIn("host is missing", str(e))

    def test_tlsWithoutPortSaysPortIsMissing(self) -> None:
        """
        C{tls:host=x} names the missing port.
        """
        e = self.assertRaises(EndpointError, parseBackend, self.reactor, "tls:host=x")
        self.assertIn("port is missing", str(e))

    def test_tlsUnknownKeywordNamed(self) -> None:
        """
        An unknown keyword of a C{tls:} backend is named with the known ones.
        """
        e = self.assertRaises(EndpointError, parseBackend, self.reactor,
                              "tls:host=x:port=1:cafile=/nope")
        self.assertIn("cafile", str(e))
        self.assertIn("caFile", str(e))

    def test_tlsCAFileNotPEM(self) -> None:
        """
        A C{caFile} that holds no PEM certificate is refused, naming it.
        """
        certs = TestCertificates(self)
        path = certs.write("junk.pem", b"not a certificate")
        e = self.assertRaises(EndpointError, parseBackend, self.reactor,
                              "tls:host=x:port=1:caFile=" + path)
        self.assertIn("holds no PEM certificate", str(e))
        self.assertIn(path, str(e))

    def test_tlsBackendParsed(self) -> None:
        """
        C{tls:host=H:port=P} is a verified L{TLSBackend} sending C{H} as
        its server name; its creator provides
        L{IOpenSSLClientConnectionCreator}.
        """
        backend = parseBackend(self.reactor, "tls:host=example.test:port=443")
        self.assertIsInstance(backend, TLSBackend)
        self.assertEqual((backend.host, backend.port), ("example.test", 443))
        self.assertTrue(backend.creator.verify)
        self.assertEqual(backend.creator.sni, "example.test")
        self.assertTrue(verifyObject(IOpenSSLClientConnectionCreator, backend.creator))

    def test_describeShowsTLS(self) -> None:
        """
        C{describe()} says what the control API can show of a TLS backend:
        verification, trust, server name, no key material.
        """
        backend = parseBackend(self.reactor, "tls:host=api.test:port=443:alpn=http/1.1")
        self.assertEqual(backend.describe(), {
            "host": "api.test", "port": 443, "verify": True, "sni": "api.test",
            "alpn": ["http/1.1"], "trust": "system", "client_certificate": False})
        sni = parseBackend(self.reactor, "sni:a.test=127.0.0.1:1|*=127.0.0.1:2")
        self.assertEqual(sni.describe(), {"routes": {"a.test": "127.0.0.1:1",
                                                     "*": "127.0.0.1:2"}})

    def test_verifyOffWarnsLoudly(self) -> None:
        """
        C{verify=no} logs a warning saying verification is off, naming
        the backend.
        """
        events = _logged(self)
        text = "tls:host=warn.test:port=443:verify=no"
        backend = parseBackend(self.reactor, text)
        self.assertFalse(backend.creator.verify)
        self.assertIn("TLS VERIFICATION IS OFF for backend " + text, _texts(events))


class OriginationTests(TestCase):
    """
    A proxy speaking TLS to a real HTTPS backend.
    """

    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.certs = TestCertificates(self)

    def backend(self, text: str) -> Any:
        return parseBackend(self.reactor, text)

    @defer.inlineCallbacks
    def test_verifiedBackendReached(self) -> Generator[Any, Any, Any]:
        """
        A backend whose certificate chains to C{caFile} and names the host
        is reached; the server name sent is the host's.
        """
        requireBinary("curl", "curl")
        port = listenHTTPS(self, self.certs)
        backend = self.backend("tls:host=localhost:port={}:caFile={}".format(
            port, self.certs.caFile))
        proxy = yield listenTLSProxy(self, backend, PLAIN)
        out, err, code = yield curl("http://127.0.0.1:{}/".format(proxy.port))
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"hello over TLS from 127.0.0.1:" + str(proxy.port).encode())

    @defer.inlineCallbacks
    def test_untrustedBackendGives502NamingReason(self) -> Generator[Any, Any, Any]:
        """
        Verified against the system's roots, the test CA is unknown: the
        HTTP client gets a 502 naming the reason, a warning names the
        backend and the reason, and the failure is counted by reason.
        """
        events = _logged(self)
        port = listenHTTPS(self, self.certs)
        text = "tls:host=localhost:port={}".format(port)
        proxy = yield listenTLSProxy(self, self.backend(text), PLAIN)
        body = yield inThread(exchange, proxy.port, get())
        self.assertTrue(body.startswith(b"HTTP/1.1 502"), body)
        self.assertIn(b"certificate verify failed: unable to get local issuer", body)
        logged = _texts(events)
        self.assertIn("cannot reach backend " + text, logged)
        self.assertIn("unable to get local issuer certificate", logged)
        from txvaurien.tls.metrics import METRICS

        self.assertIn(("client", "certificate verify failed: unable to get local issuer "
                       "certificate (untrusted CA)"), METRICS.failures)

    @defer.inlineCallbacks
    def test_expiredBackendCertificateNamed(self) -> Generator[Any, Any, Any]:
        """
        An expired backend certificate is named as such in the 502.
        """
        files = self.certs.serverCertificate(["localhost"], days=(-10, -1))
        port = listenHTTPS(self, self.certs, files)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}:caFile={}".format(port, self.certs.caFile)), PLAIN)
        body = yield inThread(exchange, proxy.port, get())
        self.assertTrue(body.startswith(b"HTTP/1.1 502"), body)
        self.assertIn(b"certificate has expired", body)

    @defer.inlineCallbacks
    def test_wrongHostGives502NamingHost(self) -> Generator[Any, Any, Any]:
        """
        A certificate from a trusted CA for another name fails the
        service-identity check, and the 502 says which name was expected.
        """
        files = self.certs.serverCertificate(["other.test"])
        port = listenHTTPS(self, self.certs, files)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}:caFile={}".format(port, self.certs.caFile)), PLAIN)
        body = yield inThread(exchange, proxy.port, get())
        self.assertTrue(body.startswith(b"HTTP/1.1 502"), body)
        self.assertIn(b"does not name 'localhost'", body)

    @defer.inlineCallbacks
    def test_redisClientGetsErrNamingReason(self) -> Generator[Any, Any, Any]:
        """
        With the redis handler, the client gets a C{-ERR} line naming the
        verification failure.
        """
        port = listenHTTPS(self, self.certs)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}".format(port)), PLAIN, protocol="redis")
        reply = yield inThread(exchange, proxy.port)
        self.assertTrue(reply.startswith(b"-ERR"), reply)
        self.assertIn(b"certificate verify failed", reply)

    @defer.inlineCallbacks
    def test_smtpClientGets421NamingReason(self) -> Generator[Any, Any, Any]:
        """
        With the smtp handler, the client's greeting is a C{421} naming
        the verification failure.
        """
        port = listenHTTPS(self, self.certs)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}".format(port)), PLAIN, protocol="smtp")
        reply = yield inThread(exchange, proxy.port)
        self.assertTrue(reply.startswith(b"421 "), reply)
        self.assertIn(b"certificate verify failed", reply)

    @defer.inlineCallbacks
    def test_postgresqlClientGetsErrorResponseNamingReason(self) -> Generator[Any, Any, None]:
        """
        With the postgresql handler, the client reads an ErrorResponse
        (C{E}) naming the verification failure.
        """
        port = listenHTTPS(self, self.certs)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}".format(port)), PLAIN, protocol="postgresql")
        reply = yield inThread(exchange, proxy.port)
        self.assertEqual(reply[:1], b"E", reply)
        self.assertIn(b"certificate verify failed", reply)

    @defer.inlineCallbacks
    def test_mysqlClientGetsErrPacketNamingReason(self) -> Generator[Any, Any, None]:
        """
        With the mysql handler, the client reads an ERR packet (C{0xff}
        after the packet header) naming the verification failure.
        """
        port = listenHTTPS(self, self.certs)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}".format(port)), PLAIN, protocol="mysql")
        reply = yield inThread(exchange, proxy.port)
        self.assertEqual(reply[4:5], b"\xff", reply)
        self.assertIn(b"certificate verify failed", reply)

    @defer.inlineCallbacks
    def test_verifyOffReachesUntrustedBackend(self) -> Generator[Any, Any, Any]:
        """
        With C{verify=no}, an untrusted backend is reached.
        """
        port = listenHTTPS(self, self.certs)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}:verify=no".format(port)), PLAIN)
        body = yield inThread(exchange, proxy.port, get())
        self.assertTrue(body.startswith(b"HTTP/1.1 200"), body)

    @defer.inlineCallbacks
    def test_clientCertificatePresented(self) -> Generator[Any, Any, Any]:
        """
        A backend that requires a client certificate accepts the proxy's
        C{certificate}/C{privateKey}, and refuses it without one.  (Under
        TLS 1.3 the refusal comes after the handshake, so the client sees
        its connection closed, not a 502.)
        """
        port = listenHTTPS(self, self.certs, clientCA=self.certs.clientCAFile)
        base = "tls:host=localhost:port={}:caFile={}".format(port, self.certs.caFile)
        withCert = yield listenTLSProxy(self, self.backend(
            base + ":certificate={}:privateKey={}".format(
                self.certs.clientCertFile, self.certs.clientKeyFile)), PLAIN)
        body = yield inThread(exchange, withCert.port, get())
        self.assertTrue(body.startswith(b"HTTP/1.1 200"), body)
        without = yield listenTLSProxy(self, self.backend(base), PLAIN)
        body = yield inThread(exchange, without.port, get())
        self.assertFalse(body.startswith(b"HTTP/1.1 200"), body)

    @defer.inlineCallbacks
    def test_handshakeTimeoutGives502(self) -> Generator[Any, Any, Any]:
        """
        A backend that accepts TCP but never answers the hello fails the
        connection after the connect timeout, with a 502 saying so.
        """
        silent = protocol.Factory.forProtocol(protocol.Protocol)
        port = listenBackend(self, silent)
        proxy = yield listenTLSProxy(self, self.backend(
            "tls:host=localhost:port={}".format(port)), PLAIN)
        proxy.connectTimeout = 0.3
        body = yield inThread(exchange, proxy.port, get())
        self.assertTrue(body.startswith(b"HTTP/1.1 502"), body)
        self.assertIn(b"timed out", body)

    @defer.inlineCallbacks
    def test_terminationAndOriginationAtOnce(self) -> Generator[Any, Any, Any]:
        """
        TLS on both legs: curl (with ALPN) and Python's ssl reach the HTTPS
        backend through the proxy's own TLS.
        """
        requireBinary("curl", "curl")
        port = listenHTTPS(self, self.certs)
        backend = self.backend("tls:host=localhost:port={}:caFile={}".format(
            port, self.certs.caFile))
        listen = "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
            self.certs.keyFile, self.certs.certFile)
        proxy = yield listenTLSProxy(self, backend, listen)
        out, err, code = yield curl("--cacert", self.certs.caFile, "-w", " %{http_version}",
                                    "https://localhost:{}/".format(proxy.port))
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith(b"hello over TLS from localhost"), out)
        self.assertTrue(out.endswith(b" 1.1"), out)
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      ["http/1.1"], request=get())
        self.assertEqual(chosen, "http/1.1")
        self.assertIn(b"200 OK", body)


class ResumptionTests(TestCase):
    """
    The proxy resumes its TLS sessions with a backend.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_secondConnectionResumesSession(self) -> Generator[Any, Any, None]:
        """
        The second connection to a backend that issues session tickets
        resumes the first one's session (a shorter handshake), and is
        still checked against the backend's name.
        """
        from OpenSSL.SSL import _lib
        from twisted.internet import reactor
        from twisted.web import server

        from txvaurien.endpoints import TCPBackend
        from txvaurien.test.tlshelpers import _Hello

        certs = TestCertificates(self)
        plain = listenBackend(self, server.Site(_Hello()))
        # A TLS server that issues tickets: txvaurien's own listener.
        tlsServer = yield listenTLSProxy(
            self, TCPBackend(reactor, "127.0.0.1", plain),
            "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
                certs.keyFile, certs.certFile))
        backend = parseBackend(reactor, "tls:host=localhost:port={}:caFile={}".format(
            tlsServer.port, certs.caFile))
        proxy = yield listenTLSProxy(self, backend, PLAIN)
        reused = []
        for _ in range(2):
            body = yield inThread(exchange, proxy.port, get())
            self.assertTrue(body.startswith(b"HTTP/1.1 200"), body)
            latest = backend.creator._latest
            reused.append(_lib.SSL_session_reused(latest._ssl))
        self.assertEqual(reused, [0, 1])


class ClientTLSTests(TestCase):
    """
    L{ClientTLS} on its own.
    """

    def test_addressHostSendsNoServerName(self) -> None:
        """
        An IP address is never sent as a server name (SNI forbids it).
        """
        self.assertIsNone(ClientTLS("127.0.0.1").sni)
        self.assertEqual(ClientTLS("127.0.0.1", sni="api.test").sni, "api.test")


class _ReplyAndClose(protocol.Protocol):
    """
    Answers the first bytes with C{"reply:"} and them, then closes (with
    C{close_notify}, over TLS).
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"reply:" + data)
        self.transport.loseConnection()


class BackendCloseTests(TestCase):
    """
    A TLS backend's C{close_notify} is an end of stream: what faults hold
    of its last bytes still reaches the client.
    """

    timeout = 20

    @defer.inlineCallbacks
    def test_heldReplySurvivesCloseNotify(self) -> Generator[Any, Any, Any]:
        """
        The backend answers and closes with C{close_notify} while C{delay}
        holds its answer: the client still gets the whole answer, then the
        end of the stream.
        """
        from twisted.internet import reactor, ssl

        certs = TestCertificates(self)
        with open(certs.certFile, "rb") as f, open(certs.keyFile, "rb") as k:
            options = ssl.PrivateCertificate.loadPEM(f.read() + k.read()).options()
        listening = reactor.listenSSL(0, protocol.Factory.forProtocol(_ReplyAndClose),
                                      options, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        backend = parseBackend(reactor, "tls:host=localhost:port={}:caFile={}".format(
            listening.getHost().port, certs.caFile))
        proxy = yield listenTLSProxy(self, backend, PLAIN, protocol="tcp",
                                     behavior="100:delay",
                                     settings={"delay": {"sleep": 0.2, "before": False}})
        received = yield inThread(exchange, proxy.port, b"ping")
        self.assertEqual(received, b"reply:ping")
