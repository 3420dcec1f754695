"""
In-band TLS upgrades framed on both sides (L{txvaurien.upgrade}): SMTP's
C{STARTTLS} with smtplib against aiosmtpd with TLS, PostgreSQL's
C{SSLRequest} with psycopg against PostgreSQL with C{ssl=on} (MySQL's in
L{txvaurien.test.test_tls_mysql}), on real sockets of 127.0.0.1; the
options that choose between upgrade and passthrough, and their errors at
start.
"""

from __future__ import annotations

import smtplib
import ssl
from typing import Any, Generator

import struct

from cryptography import x509
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.threads import deferToThread
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txvaurien import tap
from txvaurien.interfaces import IUpgradableConnection
from txvaurien.options import OptionError
from txvaurien.protocols.postgresql import PostgreSQL
from txvaurien.protocols.smtp import SMTP
from txvaurien.test.helpers import Harness, listenProxy, testRegistry
from txvaurien.test.realclients import recordMessages
from txvaurien.test.servers import requireModule
from txvaurien.test.test_protocol_postgresql_integration import PASSWORD, startPostgres
from txvaurien.test.test_protocol_smtp_integration import client, message, startBackend
from txvaurien.test.servers import listenBackend
from txvaurien.test.tlshelpers import TestCertificates, exchange
from txvaurien.tls.transport import HalfCloseTLS
from txvaurien.upgrade import BackendGate, OptionalString


class OptionsTests(TestCase):
    """
    C{tls_upgrade} and the certificate options of the C{smtp} handler.
    """

    def setUp(self) -> None:
        self.certs = TestCertificates(self)

    def test_backendGateIsHandshakeListener(self) -> None:
        """
        L{BackendGate} provides L{IHandshakeListener}: the TLS transport
        tells it when the backend's handshake is over.
        """
        verifyObject(IHandshakeListener, BackendGate(protocol.Protocol(), None, print))

    def test_connectionIsUpgradable(self) -> None:
        """
        A stream L{txvaurien.connection.Connection} provides
        L{IUpgradableConnection}, what L{InbandTLS.start} calls.
        """
        connection = Harness().accept().protocol.connection
        verifyObject(IUpgradableConnection, connection)

    def test_optionalStringAcceptsNone(self) -> None:
        """
        L{OptionalString} takes text, and L{None} for "not given"; it
        refuses other values.
        """
        self.assertIsNone(OptionalString().check(None))
        self.assertEqual(OptionalString().check("cert.pem"), "cert.pem")
        self.assertRaises(ValueError, OptionalString().check, 3)

    def test_passthroughWithoutCertificate(self) -> None:
        """
        By default (C{auto}, no certificate) upgrades are passed through.
        """
        self.assertFalse(SMTP().tls.enabled)
        self.assertEqual(SMTP.options["tls_upgrade"][2], "auto")

    def test_certificateEnablesUpgrade(self) -> None:
        """
        With a certificate and its key, C{auto} upgrades; C{passthrough}
        still passes through.
        """
        given = {"tls_certificate": self.certs.certFile, "tls_key": self.certs.keyFile}
        self.assertTrue(SMTP().configure(given).tls.enabled)
        self.assertFalse(SMTP().configure(dict(given, tls_upgrade="passthrough")).tls.enabled)

    def test_caDirEnablesUpgrade(self) -> None:
        """
        A minting CA directory is a certificate too: C{auto} upgrades.
        """
        handler = SMTP().configure({"tls_ca_dir": self.mktemp()})
        self.assertTrue(handler.tls.enabled)
        self.assertIsNotNone(handler.tls.server.ca)

    def test_upgradeWithoutCertificateRefused(self) -> None:
        """
        C{tls_upgrade=upgrade} without a certificate is an option error
        naming the option and what to give.
        """
        e = self.assertRaises(OptionError, SMTP().configure, {"tls_upgrade": "upgrade"})
        self.assertIn("protocol-smtp-tls-upgrade", str(e))
        self.assertIn("tls_certificate", str(e))

    def test_missingCertificateRefused(self) -> None:
        """
        A certificate file that cannot be read is an option error naming
        the file.
        """
        missing = self.certs.directory + "/missing.pem"
        e = self.assertRaises(OptionError, SMTP().configure, {"tls_certificate": missing})
        self.assertIn("protocol-smtp-tls-certificate", str(e))
        self.assertIn(missing, str(e))

    def test_mismatchedKeyRefused(self) -> None:
        """
        A key that does not match the certificate is an option error.
        """
        self.assertRaises(OptionError, SMTP().configure, {
            "tls_certificate": self.certs.certFile, "tls_key": self.certs.otherKey()})

    def test_caFileNotPEMRefused(self) -> None:
        """
        A C{tls_ca_file} that holds no certificate is an option error
        naming it.
        """
        junk = self.certs.write("junk.pem", b"nope")
        e = self.assertRaises(OptionError, SMTP().configure, {
            "tls_certificate": self.certs.certFile, "tls_key": self.certs.keyFile,
            "tls_ca_file": junk})
        self.assertIn("protocol-smtp-tls-ca-file", str(e))

    def test_commandLineErrorAtStart(self) -> None:
        """
        On the command line, a missing certificate is a usage error (exit
        status 1) naming the flag.
        """
        options = tap.buildOptions(testRegistry())()
        e = self.assertRaises(UsageError, options.parseOptions, [
            "--backend", "127.0.0.1:25", "--protocol", "smtp",
            "--protocol-smtp-tls-certificate", "/nonexistent/cert.pem"])
        self.assertIn("tls-certificate", str(e))


class SMTPUpgradeTests(TestCase):
    """
    smtplib's C{starttls()} through a proxy that upgrades: the client
    talks TLS with the proxy, the proxy with aiosmtpd, and SMTP is framed
    in between.
    """

    timeout = 90

    def setUp(self) -> None:
        self.certs = TestCertificates(self)
        backendContext = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        backendContext.load_cert_chain(self.certs.certFile, self.certs.keyFile)
        self.port, self.handler = startBackend(self, tls_context=backendContext)
        # The proxy shows its own certificate, distinct from the backend's.
        self.proxyCert, self.proxyKey = self.certs.serverCertificate(
            ["localhost", "127.0.0.1"], prefix="proxy")
        self.clientContext = ssl.create_default_context(cafile=self.certs.caFile)

    def proxy(self, caFile: str | None = None, **kwargs: Any) -> Any:
        settings = {
            "tls_certificate": self.proxyCert,
            "tls_key": self.proxyKey,
            "tls_ca_file": caFile or self.certs.caFile,
        }
        return listenProxy(self, self.port, protocol="smtp", protocolSettings=settings,
                           **kwargs)

    def starttls(self, port: int) -> smtplib.SMTP:
        smtp = client(port)
        smtp.ehlo()
        smtp.starttls(context=self.clientContext)
        return smtp

    @defer.inlineCallbacks
    def test_messageSentThroughUpgrade(self) -> Generator[Any, Any, Any]:
        """
        After C{starttls()}, the client sees the proxy's certificate, both
        legs of the proxy are TLS, the session still frames (it is not
        passthrough) and a message reaches aiosmtpd intact.
        """
        proxy = self.proxy()
        smtp = yield deferToThread(self.starttls, proxy.port)
        try:
            peer = x509.load_der_x509_certificate(smtp.sock.getpeercert(True))
            with open(self.proxyCert, "rb") as f:
                self.assertEqual(peer, x509.load_pem_x509_certificate(f.read()))
            code, _ = yield deferToThread(smtp.ehlo)
            self.assertEqual(code, 250)
            yield deferToThread(smtp.send_message, message(3))
            [connection] = proxy.connections
            self.assertIsInstance(connection.client.transport, HalfCloseTLS)
            self.assertIsInstance(connection.backend.transport, HalfCloseTLS)
            self.assertFalse(connection.session.passthrough)
            self.assertGreater(connection.upstream.framer.count, 4)
        finally:
            yield deferToThread(smtp.quit)
        [(_, rcpts, content)] = self.handler.messages
        self.assertEqual(rcpts, ["rcpt3@example.org"])
        self.assertIn(b"\n.leading dot", content.replace(b"\r\n", b"\n"))

    @defer.inlineCallbacks
    def test_errorReplyInsideTLS(self) -> Generator[Any, Any, Any]:
        """
        With C{error} matching C{MAIL}, smtplib sees the proxy's 451 reply
        inside TLS (L{smtplib.SMTPSenderRefused}), and the connection goes
        on: C{NOOP} is answered.
        """
        proxy = self.proxy(behavior="100:error",
                           settings={"error": {"match": "command=MAIL"}})

        def send(smtp: smtplib.SMTP) -> Any:
            smtp.ehlo()
            try:
                smtp.send_message(message(1))
            except smtplib.SMTPSenderRefused as e:
                return e.smtp_code, isinstance(smtp.sock, ssl.SSLSocket), smtp.noop()[0]
            return None

        smtp = yield deferToThread(self.starttls, proxy.port)
        try:
            result = yield deferToThread(send, smtp)
        finally:
            yield deferToThread(smtp.quit)
        self.assertEqual(result, (451, True, 250))
        self.assertEqual(self.handler.messages, [])

    @defer.inlineCallbacks
    def test_upgradeWaitsForDelayedReply(self) -> Generator[Any, Any, Any]:
        """
        With C{delay} holding the backend's C{220} to C{STARTTLS} for
        0.3 s, the switch waits until the C{220} is written: the handshake
        succeeds and a message goes through.
        """
        proxy = self.proxy(behavior="100:delay", settings={"delay": {
            "sleep": 0.3, "before": False, "match": "command=STARTTLS"}})
        smtp = yield deferToThread(self.starttls, proxy.port)
        try:
            self.assertIsInstance(smtp.sock, ssl.SSLSocket)
            yield deferToThread(smtp.ehlo)
            yield deferToThread(smtp.send_message, message(5))
        finally:
            yield deferToThread(smtp.quit)
        [(_, rcpts, _)] = self.handler.messages
        self.assertEqual(rcpts, ["rcpt5@example.org"])
        self.assertEqual(proxy.decisions.get("delay"), 1)

    @defer.inlineCallbacks
    def test_untrustedBackendNamedInsideTLS(self) -> Generator[Any, Any, Any]:
        """
        A backend whose certificate does not chain to C{tls_ca_file}: the
        client's next command gets a C{421} inside TLS naming the reason.
        """
        proxy = self.proxy(caFile=self.certs.clientCAFile)

        def ehlo() -> Any:
            smtp = self.starttls(proxy.port)
            try:
                return smtp.ehlo(), isinstance(smtp.sock, ssl.SSLSocket)
            finally:
                smtp.close()

        (code, text), secure = yield deferToThread(ehlo)
        self.assertEqual(code, 421)
        self.assertTrue(secure)
        self.assertIn(b"certificate verify failed", text)
        self.assertIn(b"untrusted CA", text)

    @defer.inlineCallbacks
    def test_passthroughOption(self) -> Generator[Any, Any, Any]:
        """
        With C{tls_upgrade=passthrough}, the proxy copies the encrypted
        bytes: the client sees the backend's certificate, and the session
        is passthrough.
        """
        proxy = listenProxy(self, self.port, protocol="smtp", protocolSettings={
            "tls_certificate": self.proxyCert, "tls_key": self.proxyKey,
            "tls_upgrade": "passthrough"})
        smtp = yield deferToThread(self.starttls, proxy.port)
        try:
            peer = x509.load_der_x509_certificate(smtp.sock.getpeercert(True))
            with open(self.certs.certFile, "rb") as f:
                self.assertEqual(peer, x509.load_pem_x509_certificate(f.read()))
            yield deferToThread(smtp.ehlo)
            [connection] = proxy.connections
            self.assertTrue(connection.session.passthrough)
        finally:
            yield deferToThread(smtp.quit)


class PostgreSQLUpgradeTests(TestCase):
    """
    psycopg with C{sslmode=verify-full} through a proxy that upgrades the
    SSLRequest, against PostgreSQL with C{ssl=on}.
    """

    timeout = 120

    def test_optionsDeclared(self) -> None:
        """
        The C{postgresql} handler declares the upgrade options, and passes
        through by default.
        """
        self.assertIn("tls_upgrade", PostgreSQL.options)
        self.assertFalse(PostgreSQL().tls.enabled)

    @defer.inlineCallbacks
    def test_framedInsideTLS(self) -> Generator[Any, Any, Any]:
        """
        psycopg verifies the proxy's certificate (C{verify-full}; SCRAM
        without channel binding, which would bind to the proxy's
        certificate and be refused by the server); the proxy verifies
        PostgreSQL's; queries are framed inside TLS: with
        C{dummy} a query answers, and with C{100:error} it fails with the
        proxy's SQLSTATE, its error read inside TLS.
        """
        psycopg = requireModule("psycopg", "psycopg[binary]")
        certs = TestCertificates(self)
        server = yield startPostgres(ssl=True, certificate=(certs.certFile, certs.keyFile))
        self.addCleanup(server.stop)
        proxyCert, proxyKey = certs.serverCertificate(["localhost", "127.0.0.1"], prefix="proxy")
        settings = {"tls_certificate": proxyCert, "tls_key": proxyKey,
                    "tls_ca_file": certs.caFile}
        dummy = listenProxy(self, server.port, protocol="postgresql",
                            protocolSettings=settings)
        failing = listenProxy(self, server.port, "100:error", protocol="postgresql",
                              protocolSettings=settings)
        messages = recordMessages(dummy)

        def connect(port: int) -> Any:
            return psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", password=PASSWORD,
                dbname="postgres", connect_timeout=10, sslmode="verify-full",
                sslrootcert=certs.caFile, channel_binding="disable")

        def work() -> Any:
            with connect(dummy.port) as connection:
                value = connection.execute("SELECT 6 * 7").fetchone()[0]
                [proxied] = dummy.connections
                layered = (isinstance(proxied.client.transport, HalfCloseTLS)
                           and isinstance(proxied.backend.transport, HalfCloseTLS))
                result = value, connection.pgconn.ssl_in_use, layered
            with connect(failing.port) as connection:
                try:
                    connection.execute("SELECT 1")
                except psycopg.Error as e:
                    return result + (e.sqlstate, connection.pgconn.ssl_in_use)
            return result

        result = yield deferToThread(work)
        self.assertEqual(result, (42, True, True, "XX000", True))
        commands = [(m.kind, m.meta.get("command")) for m in messages]
        self.assertEqual(commands[:2], [("data", "SSLRequest"), ("data", "SSLResponse")])
        self.assertIn(("data", "StartupMessage"), commands)
        self.assertIn(("request", "Query"), commands)

    @defer.inlineCallbacks
    def test_bytesAfterAcceptanceClose(self) -> Generator[Any, Any, Any]:
        """
        A backend that sends bytes after its C{S} (CVE-2021-23222: they
        cannot be TLS) gets the connection closed: the client receives
        nothing, neither the C{S} nor the injected bytes.
        """
        class Injecting(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                self.transport.write(b"SZ\x00\x00\x00\x05I")

        certs = TestCertificates(self)
        port = listenBackend(self, protocol.Factory.forProtocol(Injecting))
        proxy = listenProxy(self, port, protocol="postgresql", protocolSettings={
            "tls_certificate": certs.certFile, "tls_key": certs.keyFile})
        sslRequest = struct.pack("!ii", 8, 80877103)
        received = yield deferToThread(exchange, proxy.port, sslRequest)
        self.assertEqual(received, b"")

    @defer.inlineCallbacks
    def test_untrustedBackendIsFatalErrorInsideTLS(self) -> Generator[Any, Any, Any]:
        """
        A PostgreSQL whose certificate does not chain to C{tls_ca_file}:
        psycopg's connection fails with the proxy's FATAL error naming the
        reason, read inside TLS.
        """
        psycopg = requireModule("psycopg", "psycopg[binary]")
        certs = TestCertificates(self)
        server = yield startPostgres(ssl=True)
        self.addCleanup(server.stop)
        proxy = listenProxy(self, server.port, protocol="postgresql", protocolSettings={
            "tls_certificate": certs.certFile, "tls_key": certs.keyFile,
            "tls_ca_file": certs.caFile})

        def work() -> Any:
            try:
                psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres",
                                password=PASSWORD, dbname="postgres", connect_timeout=10,
                                sslmode="verify-full", sslrootcert=certs.caFile).close()
            except psycopg.OperationalError as e:
                return str(e)
            return None

        text = yield deferToThread(work)
        self.assertIsNotNone(text)
        self.assertIn("txvaurien: could not connect to the backend", text)
        self.assertIn("certificate verify failed", text)


__all__ = ["OptionsTests", "PostgreSQLUpgradeTests", "SMTPUpgradeTests"]
