"""
The backend leg switched to TLS by the proxy itself (C{tls_backend=always};
L{txvaurien.upgrade.BACKEND_OPTIONS}), for clients that speak in clear or
switch with the proxy alone: psycopg against PostgreSQL with C{ssl=on},
smtplib against aiosmtpd requiring C{STARTTLS}, on real sockets of
127.0.0.1.
"""

from __future__ import annotations

import smtplib
import ssl
from typing import Any, Generator

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from txvaurien.options import OptionError
from txvaurien.protocols.postgresql import PostgreSQL
from txvaurien.protocols.smtp import SMTP
from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import recordMessages
from txvaurien.test.servers import requireModule, sharedServer
from txvaurien.test.test_protocol_postgresql_integration import PASSWORD, startPostgres
from txvaurien.test.test_protocol_smtp_integration import client, message, startBackend
from txvaurien.test.tlshelpers import BackendTLSProxies, TestCertificates, sharedCertificates


def startSSLPostgres() -> defer.Deferred:
    certs = sharedCertificates("postgresql-ssl")
    return startPostgres(ssl=True, certificate=(certs.certFile, certs.keyFile))


#: What the server says of the session of the query's connection.
SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


class PostgreSQLBackendTLSTests(BackendTLSProxies, TestCase):
    """
    psycopg through a proxy with C{tls_backend=always}, against
    PostgreSQL with C{ssl=on}.
    """

    timeout = 120
    protocolName = "postgresql"

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.psycopg = requireModule("psycopg", "psycopg[binary]")
        self.certs = sharedCertificates("postgresql-ssl")
        self.server = yield sharedServer("postgresql-ssl", startSSLPostgres)

    def connect(self, port: int, sslmode: str, **kwargs: Any) -> Any:
        return self.psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", password=PASSWORD,
            dbname="postgres", connect_timeout=10, sslmode=sslmode, autocommit=True,
            **kwargs)

    def test_optionDeclared(self) -> None:
        """
        The C{postgresql} handler declares C{tls_backend}, off by default;
        a CA file that is not PEM is refused at start, even without a
        certificate for clients.
        """
        self.assertIn("tls_backend", PostgreSQL.options)
        self.assertFalse(PostgreSQL().tls.backendAlways)
        self.assertTrue(PostgreSQL({"tls_backend": "always"}).tls.backendAlways)
        notPEM = self.certs.write("not.pem", b"not a certificate")
        error = self.assertRaises(OptionError, PostgreSQL,
                                  {"tls_backend": "always", "tls_ca_file": notPEM})
        self.assertIn("tls-ca-file", str(error))

    @defer.inlineCallbacks
    def test_clearClientGetsTLSBackend(self) -> Generator[Any, Any, Any]:
        """
        A client with C{sslmode=disable} talks to the proxy in clear; the
        server sees a TLS session (C{pg_stat_ssl}); queries are framed: with
        C{dummy} they answer, with C{100:error} they fail with the proxy's
        SQLSTATE.
        """
        dummy = self.proxy()
        failing = self.proxy("100:error")
        messages = recordMessages(dummy)
        psycopg = self.psycopg

        def work() -> Any:
            with self.connect(dummy.port, "disable") as connection:
                ssl = connection.execute(SSL_IN_USE).fetchone()[0]
                result = ssl, connection.pgconn.ssl_in_use
            with self.connect(failing.port, "disable") as connection:
                try:
                    connection.execute("SELECT 1")
                except psycopg.Error as e:
                    return result + (e.sqlstate,)
            return result

        result = yield deferToThread(work)
        self.assertEqual(result, (True, False, "XX000"))
        self.assertIn(("request", "Query"), [(m.kind, m.meta.get("command")) for m in messages])

    @defer.inlineCallbacks
    def test_preferWithoutCertificateAnsweredN(self) -> Generator[Any, Any, Any]:
        """
        A client that asks for SSL (libpq's C{sslmode=prefer}) from a proxy
        without a certificate is answered C{N} by the proxy and goes on in
        clear; the backend leg is TLS all the same.
        """
        proxy = self.proxy()

        def work() -> Any:
            with self.connect(proxy.port, "prefer") as connection:
                return (connection.execute(SSL_IN_USE).fetchone()[0],
                        connection.pgconn.ssl_in_use)

        result = yield deferToThread(work)
        self.assertEqual(result, (True, False))

    @defer.inlineCallbacks
    def test_bothLegsWithCertificate(self) -> Generator[Any, Any, Any]:
        """
        With a certificate too, a client with C{sslmode=verify-full} gets
        the proxy's C{S} and TLS with the proxy, whose own TLS with the
        server was made before: both legs are TLS and queries answer
        (without channel binding, which cannot cross a proxy that
        terminates TLS).
        """
        proxyCert, proxyKey = self.certs.serverCertificate(
            ["localhost", "127.0.0.1"], prefix="proxy-backend-upgrade")
        proxy = self.proxy(tls_certificate=proxyCert, tls_key=proxyKey)

        def work() -> Any:
            with self.connect(proxy.port, "verify-full", sslrootcert=self.certs.caFile,
                              channel_binding="disable") as connection:
                return (connection.execute(SSL_IN_USE).fetchone()[0],
                        connection.pgconn.ssl_in_use,
                        connection.execute("SELECT 6 * 7").fetchone()[0])

        result = yield deferToThread(work)
        self.assertEqual(result, (True, True, 42))

    @defer.inlineCallbacks
    def test_untrustedServerIsFatal(self) -> Generator[Any, Any, Any]:
        """
        A server whose certificate does not chain to C{tls_ca_file}: the
        clear client's connection fails with the proxy's FATAL error
        naming the reason.
        """
        other = TestCertificates(self)
        proxy = self.proxy(tls_ca_file=other.caFile)
        text = yield deferToThread(self._failure, proxy.port)
        self.assertIn("txvaurien: could not connect to the backend", text)
        self.assertIn("certificate verify failed", text)

    @defer.inlineCallbacks
    def test_serverWithoutSSLIsFatal(self) -> Generator[Any, Any, Any]:
        """
        A server that answers C{N} to the proxy's SSLRequest: the client's
        connection fails with the proxy's FATAL error saying so.
        """
        server = yield startPostgres()
        self.addCleanup(server.stop)
        proxy = self.proxy(port=server.port)
        text = yield deferToThread(self._failure, proxy.port)
        self.assertIn("the server does not accept SSL", text)

    def _failure(self, port: int) -> str | None:
        try:
            self.connect(port, "disable").close()
        except self.psycopg.OperationalError as e:
            return str(e)
        return None


class SMTPBackendTLSTests(TestCase):
    """
    smtplib in clear through a proxy with C{tls_backend=always}, against
    aiosmtpd that requires C{STARTTLS} before C{MAIL}.
    """

    timeout = 60

    def setUp(self) -> None:
        self.certs = TestCertificates(self)

    def backend(self, tls: bool = True) -> tuple[int, Any]:
        if not tls:
            return startBackend(self)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.certFile, self.certs.keyFile)
        return startBackend(self, tls_context=context, require_starttls=True)

    def proxy(self, port: int, behavior: str = "100:dummy", caFile: str | None = None,
              **kwargs: Any) -> Any:
        return listenProxy(self, port, behavior, protocol="smtp", protocolSettings={
            "tls_backend": "always", "tls_ca_file": caFile or self.certs.caFile}, **kwargs)

    def send(self, port: int) -> Any:
        """
        Send one message in clear; return what went wrong, or L{None}.
        """
        try:
            with client(port) as smtp:
                smtp.send_message(message(1))
        except smtplib.SMTPException as e:
            return e
        return None

    def test_optionDeclared(self) -> None:
        """
        The C{smtp} handler declares C{tls_backend}, off by default.
        """
        self.assertIn("tls_backend", SMTP.options)
        self.assertFalse(SMTP().tls.backendAlways)

    @defer.inlineCallbacks
    def test_clearClientSendsThroughTLS(self) -> Generator[Any, Any, Any]:
        """
        The server refuses a client in clear (C{530}, it requires
        C{STARTTLS}); through the proxy, the same client gets the server's
        greeting and its message is delivered, and the replies to the
        proxy's own C{EHLO} and C{STARTTLS} never reach the client (its
        C{EHLO} answers inside TLS, without C{STARTTLS} on offer).
        """
        port, handler = self.backend()
        proxy = self.proxy(port)
        direct = yield deferToThread(self.send, port)
        self.assertIsInstance(direct, smtplib.SMTPSenderRefused)
        self.assertEqual(direct.smtp_code, 530)

        def work() -> Any:
            smtp = smtplib.SMTP(timeout=10)
            greeting = smtp.connect("127.0.0.1", proxy.port)
            with smtp:
                code, features = smtp.ehlo()
                smtp.send_message(message(2))
                return greeting, code, smtp.has_extn("starttls")

        greeting, code, offered = yield deferToThread(work)
        self.assertEqual(greeting[0], 220)
        self.assertIn(b"backend.example", greeting[1])
        self.assertEqual((code, offered), (250, False))
        self.assertEqual([m[1] for m in handler.messages], [["rcpt2@example.org"]])

    @defer.inlineCallbacks
    def test_framedAfterSwitch(self) -> Generator[Any, Any, Any]:
        """
        Commands are framed once the backend leg is TLS: C{error} matching
        C{MAIL} refuses the sender with its C{451}.
        """
        port, handler = self.backend()
        proxy = self.proxy(port, "100:error", settings={"error": {"match": "command=MAIL"}})
        error = yield deferToThread(self.send, proxy.port)
        self.assertIsInstance(error, smtplib.SMTPSenderRefused)
        self.assertEqual(error.smtp_code, 451)
        self.assertEqual(handler.messages, [])

    @defer.inlineCallbacks
    def test_noStartTLSOnOfferIs421(self) -> Generator[Any, Any, Any]:
        """
        A server that does not offer C{STARTTLS}: the client's greeting is
        C{421}, naming the reason.
        """
        port, handler = self.backend(tls=False)
        proxy = self.proxy(port)
        error = yield deferToThread(self.send, proxy.port)
        self.assertIsInstance(error, smtplib.SMTPConnectError)
        self.assertEqual(error.smtp_code, 421)
        self.assertIn(b"does not offer STARTTLS", error.smtp_error)

    @defer.inlineCallbacks
    def test_untrustedServerIs421(self) -> Generator[Any, Any, Any]:
        """
        A server whose certificate does not chain to C{tls_ca_file}: the
        client's greeting is C{421}, naming the verification failure.
        """
        port, handler = self.backend()
        proxy = self.proxy(port, caFile=TestCertificates(self).caFile)
        error = yield deferToThread(self.send, proxy.port)
        self.assertIsInstance(error, smtplib.SMTPConnectError)
        self.assertEqual(error.smtp_code, 421)
        self.assertIn(b"certificate verify failed", error.smtp_error)
        self.assertEqual(handler.messages, [])


__all__ = ["PostgreSQLBackendTLSTests", "SMTPBackendTLSTests"]
