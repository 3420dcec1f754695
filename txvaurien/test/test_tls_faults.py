"""
The TLS fault behaviors, each seen by real clients (Python's C{ssl},
curl) as the error it stands for.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any, Generator

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web import server
from zope.interface.verify import verifyObject

from txvaurien.behaviors.tls_alert import TLSAlert
from txvaurien.behaviors.tls_certificate import TLSCertificate
from txvaurien.behaviors.tls_delay import TLSDelay
from txvaurien.behaviors.tls_old_version import TLSOldVersion
from txvaurien.interfaces import IBehavior
from txvaurien.test.servers import listenBackend, requireBinary
from txvaurien.test.tlshelpers import (
    Named, TestCertificates, curl, get, inThread, listenTLSProxy, pythonClient)
from txvaurien.tls.faults import clientTLS
from txvaurien.tls.metrics import METRICS


def _handshake(port: int, cafile: str, timeout: float = 10.0, name: str = "localhost",
               oldVersions: bool = False) -> str:
    """
    Handshake with Python's ssl; return the negotiated version.
    """
    context = ssl.create_default_context(cafile=cafile)
    if oldVersions:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=name) as s:
            return str(s.version())


class TLSFaultTests(TestCase):
    """
    A TLS listener with a minting CA the clients trust, in front of a
    plain HTTP backend, with one TLS fault behavior at a time.
    """

    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.certs = TestCertificates(self)
        port = listenBackend(self, server.Site(Named("backend")))
        from txvaurien.endpoints import TCPBackend

        self.backend = TCPBackend(reactor, "127.0.0.1", port)
        self.listen = "ssl:0:interface=127.0.0.1:caCert={}:caKey={}".format(
            self.certs.caFile, self.certs.caKeyFile)

    def proxy(self, behavior: str, **settings: Any) -> defer.Deferred:
        name = behavior.partition(":")[2]
        return listenTLSProxy(self, self.backend, self.listen, "http", behavior,
                              {name: settings} if settings else None, scope="connection")

    @defer.inlineCallbacks
    def assertVerifyError(self, kind: str, message: str) -> Generator[Any, Any, Any]:
        proxy = yield self.proxy("100:tls_certificate", kind=kind)
        failure = yield self.assertFailure(
            inThread(_handshake, proxy.port, self.certs.caFile),
            ssl.SSLCertVerificationError)
        self.assertIn(message, failure.verify_message)

    def test_behaviorsProvideIBehavior(self) -> None:
        """
        Each TLS fault behavior provides L{IBehavior}.
        """
        for behavior in (TLSCertificate(), TLSDelay(), TLSAlert(), TLSOldVersion()):
            self.assertTrue(verifyObject(IBehavior, behavior))

    def test_expiredCertificate(self) -> None:
        """
        C{kind=expired}: Python's ssl says "certificate has expired".
        """
        return self.assertVerifyError("expired", "certificate has expired")

    def test_notYetValidCertificate(self) -> None:
        """
        C{kind=not_yet_valid}: "certificate is not yet valid".
        """
        return self.assertVerifyError("not_yet_valid", "certificate is not yet valid")

    def test_wrongHostCertificate(self) -> None:
        """
        C{kind=wrong_host}: a hostname mismatch for the name asked for.
        """
        return self.assertVerifyError("wrong_host", "Hostname mismatch")

    def test_selfSignedCertificate(self) -> None:
        """
        C{kind=self_signed}: "self-signed certificate".
        """
        return self.assertVerifyError("self_signed", "self-signed certificate")

    def test_untrustedCACertificate(self) -> None:
        """
        C{kind=untrusted_ca}: "unable to get local issuer certificate".
        """
        return self.assertVerifyError("untrusted_ca", "unable to get local issuer certificate")

    @defer.inlineCallbacks
    def test_curlRefusesExpiredCertificate(self) -> Generator[Any, Any, Any]:
        """
        curl refuses the expired certificate with exit code 60.
        """
        requireBinary("curl", "curl")
        proxy = yield self.proxy("100:tls_certificate", kind="expired")
        out, err, code = yield curl("--cacert", self.certs.caFile,
                                    "https://localhost:{}/".format(proxy.port))
        self.assertEqual(code, 60, err)
        self.assertIn(b"expired", err)

    @defer.inlineCallbacks
    def test_zeroToxicityLeavesCertificateAlone(self) -> Generator[Any, Any, Any]:
        """
        With C{toxicity=0} the behavior never applies: the handshake
        succeeds and the backend answers.
        """
        proxy = yield self.proxy("100:tls_certificate", kind="expired", toxicity=0.0)
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      request=get())
        self.assertIn(b"I am backend", body)

    @defer.inlineCallbacks
    def test_alertHandshakeFailure(self) -> Generator[Any, Any, Any]:
        """
        C{tls_alert} answers the hello with a C{handshake_failure} alert
        (curl exits with 35), counted as a failure by reason in the
        Prometheus metrics.
        """
        requireBinary("curl", "curl")
        key = ("server", "proxy sent handshake_failure")
        before = METRICS.failures.get(key, 0)
        proxy = yield self.proxy("100:tls_alert")
        failure = yield self.assertFailure(
            inThread(_handshake, proxy.port, self.certs.caFile), ssl.SSLError)
        self.assertIn("ALERT_HANDSHAKE_FAILURE", str(failure))
        out, err, code = yield curl("--cacert", self.certs.caFile,
                                    "https://localhost:{}/".format(proxy.port))
        self.assertEqual(code, 35, err)
        self.assertEqual(METRICS.failures.get(key, 0) - before, 2)
        self.assertIn('txvaurien_tls_handshake_failures_total{reason="proxy sent '
                      'handshake_failure",side="server"}', METRICS.prometheus())

    @defer.inlineCallbacks
    def test_alertChosen(self) -> Generator[Any, Any, Any]:
        """
        C{alert=internal_error} sends that alert.
        """
        proxy = yield self.proxy("100:tls_alert", alert="internal_error")
        failure = yield self.assertFailure(
            inThread(_handshake, proxy.port, self.certs.caFile), ssl.SSLError)
        self.assertIn("ALERT_INTERNAL_ERROR", str(failure))

    @defer.inlineCallbacks
    def test_delayTimesOutHandshake(self) -> Generator[Any, Any, Any]:
        """
        C{tls_delay} stalls the handshake: a client with a 0.5 s timeout
        times out in the handshake.
        """
        proxy = yield self.proxy("100:tls_delay", delay=5000.0)
        failure = yield self.assertFailure(
            inThread(_handshake, proxy.port, self.certs.caFile, 0.5), TimeoutError)
        self.assertIn("handshake", str(failure))

    @defer.inlineCallbacks
    def test_delayThenHandshake(self) -> Generator[Any, Any, Any]:
        """
        A client more patient than the delay completes its handshake
        after it.
        """
        proxy = yield self.proxy("100:tls_delay", delay=300.0)
        started = time.monotonic()
        version = yield inThread(_handshake, proxy.port, self.certs.caFile, 10.0)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertTrue(version.startswith("TLSv1"))

    @defer.inlineCallbacks
    def test_oldVersionRefusedByCurrentClient(self) -> Generator[Any, Any, Any]:
        """
        C{tls_old_version} offers only TLS 1.0: a default client refuses
        it, curl exits with 35, and a client that allows TLS 1.0 gets it.
        """
        requireBinary("curl", "curl")
        proxy = yield self.proxy("100:tls_old_version")
        failure = yield self.assertFailure(
            inThread(_handshake, proxy.port, self.certs.caFile), ssl.SSLError)
        self.assertRegex(str(failure), "UNSUPPORTED_PROTOCOL|PROTOCOL_VERSION|NO_PROTOCOLS")
        version = yield inThread(_handshake, proxy.port, self.certs.caFile, oldVersions=True)
        self.assertEqual(version, "TLSv1")
        out, err, code = yield curl("--cacert", self.certs.caFile,
                                    "https://localhost:{}/".format(proxy.port))
        self.assertEqual(code, 35, err)

    def test_plainListenerWarnsOnce(self) -> None:
        """
        On a connection that is not TLS, the TLS behaviors do nothing and
        say so once.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        class Plain:
            client = None

        self.assertIsNone(clientTLS(Plain(), "tls_test_once"))
        self.assertIsNone(clientTLS(Plain(), "tls_test_once"))
        warnings = [formatEvent(e) for e in events if "tls_test_once" in formatEvent(e)]
        self.assertEqual(len(warnings), 1)
        self.assertIn("does not terminate TLS", warnings[0])
