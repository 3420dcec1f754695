"""
MySQL's in-band TLS upgrade (the client's SSL request) framed on both
sides: PyMySQL with C{ssl} through a proxy that upgrades, against MariaDB
with TLS; and the backend leg switched by the proxy alone
(C{tls_backend=always}) for PyMySQL in clear, against MariaDB with
C{require_secure_transport}; on real sockets of 127.0.0.1.
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any, Generator

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from txvaurien.protocols.mysql import CLIENT_PROTOCOL_41, CLIENT_SSL, MySQL
from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import recordMessages
from txvaurien.test.servers import requireBinary, requireModule, run, sharedServer
from txvaurien.test.test_protocol_mysql_integration import (
    ED_PASSWORD,
    ED_USER,
    PASSWORD,
    USER,
    startMariaDB,
)
from txvaurien.test.tlshelpers import BackendTLSProxies, TestCertificates, sharedCertificates
from txvaurien.tls.transport import HalfCloseTLS

#: CLIENT_LONG_PASSWORD | CLIENT_SECURE_CONNECTION, with PROTOCOL_41 and SSL.
_SSL_CAPABILITIES = 0x1 | 0x8000 | CLIENT_PROTOCOL_41 | CLIENT_SSL


def _readPacket(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            raise EOFError("closed in a packet header")
        header += chunk
    length = header[0] | header[1] << 8 | header[2] << 16
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise EOFError("closed in a packet")
        body += chunk
    return body


def handshakeInOneWrite(port: int, caFile: str) -> dict[str, Any]:
    """
    Read the greeting, then send an SSL request and the TLS client hello
    in one write (as a client that does not wait may), and finish the
    handshake over memory BIOs.  Blocking: run it in a thread.

    @return: the certificate the proxy showed (C{getpeercert()}).
    """
    context = ssl.create_default_context(cafile=caFile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        _readPacket(sock)
        body = struct.pack("<IIB", _SSL_CAPABILITIES, 1 << 24, 33) + b"\x00" * 23
        request = struct.pack("<I", len(body))[:3] + b"\x01" + body
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(request + outgoing.read())
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    sock.sendall(pending)
                data = sock.recv(65536)
                if not data:
                    raise EOFError("closed during the handshake")
                incoming.write(data)
        pending = outgoing.read()
        if pending:
            sock.sendall(pending)
        return tls.getpeercert()


class MySQLUpgradeTests(TestCase):
    """
    PyMySQL with C{ssl} (the CA and the host name verified) through a
    proxy that upgrades the SSL request, against MariaDB with TLS.
    """

    timeout = 120

    def setUp(self) -> None:
        self.pymysql = requireModule("pymysql", "PyMySQL")
        self.certs = TestCertificates(self)
        # The proxy shows its own certificate, distinct from the server's.
        self.proxyCert, self.proxyKey = self.certs.serverCertificate(
            ["localhost", "127.0.0.1"], prefix="proxy")

    def proxy(self, port: int, behavior: str = "100:dummy", **settings: Any) -> Any:
        protocolSettings = {"tls_certificate": self.proxyCert, "tls_key": self.proxyKey,
                            "tls_ca_file": self.certs.caFile}
        protocolSettings.update(settings)
        return listenProxy(self, port, behavior, protocol="mysql",
                           protocolSettings=protocolSettings)

    def connect(self, port: int) -> Any:
        """
        A blocking PyMySQL connection over TLS, verifying the CA and the
        name C{127.0.0.1} (call it in a thread).
        """
        return self.pymysql.connect(
            host="127.0.0.1", port=port, user=USER, password=PASSWORD,
            database="txvaurien", connect_timeout=10, read_timeout=30,
            ssl_ca=self.certs.caFile, ssl_verify_cert=True, ssl_verify_identity=True)

    def test_optionsDeclared(self) -> None:
        """
        The C{mysql} handler declares the upgrade options, and passes
        through by default.
        """
        self.assertIn("tls_upgrade", MySQL.options)
        self.assertIn("tls_ca_file", MySQL.options)
        self.assertFalse(MySQL().tls.enabled)
        self.assertTrue(MySQL({"tls_certificate": self.proxyCert,
                               "tls_key": self.proxyKey}).tls.enabled)

    @defer.inlineCallbacks
    def test_framedInsideTLS(self) -> Generator[Any, Any, Any]:
        """
        PyMySQL verifies the proxy's certificate, the proxy verifies
        MariaDB's, and MariaDB sees a TLS session; commands are framed
        inside TLS: with C{dummy} a query answers, and with C{100:error}
        it fails with the proxy's ERR packet, read inside TLS.
        """
        server = yield startMariaDB(ssl=True, certificate=(self.certs.certFile,
                                                           self.certs.keyFile))
        self.addCleanup(server.stop)
        dummy = self.proxy(server.port)
        failing = self.proxy(server.port, "100:error")
        messages = recordMessages(dummy)
        failed = recordMessages(failing)
        pymysql = self.pymysql

        def work() -> Any:
            with self.connect(dummy.port) as connection:
                cursor = connection.cursor()
                cursor.execute("SELECT 6 * 7")
                value = cursor.fetchall()
                cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
                version = cursor.fetchall()[0][1]
                shown = dict(item[0] for item in connection._sock.getpeercert()["subject"])
                [proxied] = dummy.connections
                layered = (isinstance(proxied.client.transport, HalfCloseTLS)
                           and isinstance(proxied.backend.transport, HalfCloseTLS))
                result = value, version, shown["commonName"], layered
            # PyMySQL's first command (SET NAMES, as it connects) fails.
            connection = pymysql.connections.Connection(
                host="127.0.0.1", port=failing.port, user=USER, password=PASSWORD,
                database="txvaurien", connect_timeout=10, read_timeout=30,
                ssl_ca=self.certs.caFile, ssl_verify_identity=True, defer_connect=True)
            try:
                connection.connect()
            except pymysql.OperationalError as e:
                return result + (e.args[0],)
            finally:
                connection.close() if connection.open else None
            return result

        value, version, commonName, layered, code = yield deferToThread(work)
        self.assertEqual(value, ((42,),))
        self.assertTrue(version.startswith("TLS"), version)
        self.assertEqual(commonName, "localhost")
        self.assertTrue(layered)
        self.assertEqual(code, 1105)
        for recorded in (messages, failed):
            kinds = [(m.kind, m.meta.get("ssl"), m.meta.get("upgraded")) for m in recorded[:2]]
            self.assertEqual(kinds, [("greeting", None, None), ("data", True, True)])
        self.assertEqual([m.meta.get("command") for m in failed if m.kind == "request"],
                         ["COM_QUERY"])
        self.assertIn(("request", "COM_QUERY"),
                      [(m.kind, m.meta.get("command")) for m in messages])
        self.assertFalse(any(m.meta.get("unframed") for m in messages))

    @defer.inlineCallbacks
    def test_proxyCertificateShown(self) -> Generator[Any, Any, Any]:
        """
        The proxy answers the client's handshake with C{tls_certificate},
        not the server's: a client that trusts only the test CA sees the
        proxy's certificate (its own serial number).
        """
        server = yield startMariaDB(ssl=True, certificate=(self.certs.certFile,
                                                           self.certs.keyFile))
        self.addCleanup(server.stop)
        proxy = self.proxy(server.port)
        shown = yield deferToThread(handshakeInOneWrite, proxy.port, self.certs.caFile)
        with open(self.proxyCert, "rb") as f:
            from cryptography import x509

            serial = x509.load_pem_x509_certificate(f.read()).serial_number
        self.assertEqual(int(shown["serialNumber"], 16), serial)

    @defer.inlineCallbacks
    def test_untrustedServerIsErrorInsideTLS(self) -> Generator[Any, Any, Any]:
        """
        A MariaDB whose certificate does not chain to C{tls_ca_file}:
        PyMySQL's connection fails with the proxy's C{connect_error_code}
        naming the reason, read inside TLS (numbered as the answer to the
        handshake response, so PyMySQL reports it rather than a lost
        connection).
        """
        server = yield startMariaDB(ssl=True)
        self.addCleanup(server.stop)
        proxy = self.proxy(server.port)
        pymysql = self.pymysql

        def work() -> Any:
            try:
                self.connect(proxy.port).close()
            except pymysql.OperationalError as e:
                return e.args
            return None

        args = yield deferToThread(work)
        self.assertIsNotNone(args)
        code, text = args
        self.assertEqual(code, 2003)
        self.assertIn("certificate verify failed", text)


def startSecureMariaDB() -> defer.Deferred:
    certs = sharedCertificates("mariadb-secure")
    return startMariaDB(ssl=True, certificate=(certs.certFile, certs.keyFile),
                        extra=["--require-secure-transport=ON"])


class MySQLBackendTLSTests(BackendTLSProxies, TestCase):
    """
    PyMySQL in clear through a proxy with C{tls_backend=always}, against
    MariaDB that refuses connections without TLS.
    """

    timeout = 120
    protocolName = "mysql"

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.pymysql = requireModule("pymysql", "PyMySQL")
        self.certs = sharedCertificates("mariadb-secure")
        self.server = yield sharedServer("mariadb-secure", startSecureMariaDB)

    def connect(self, port: int, user: str = USER, password: str = PASSWORD,
                **kwargs: Any) -> Any:
        return self.pymysql.connect(
            host="127.0.0.1", port=port, user=user, password=password,
            database="txvaurien", connect_timeout=10, read_timeout=30, **kwargs)

    def failure(self, port: int, **kwargs: Any) -> Any:
        """
        The error args of connecting to C{port} (in a thread), or L{None}.
        """
        try:
            self.connect(port, **kwargs).close()
        except self.pymysql.MySQLError as e:
            return e.args
        return None

    def test_optionDeclared(self) -> None:
        """
        The C{mysql} handler declares C{tls_backend}, off by default.
        """
        self.assertIn("tls_backend", MySQL.options)
        self.assertFalse(MySQL().tls.backendAlways)
        self.assertTrue(MySQL({"tls_backend": "always"}).tls.backendAlways)

    @defer.inlineCallbacks
    def test_clearClientGetsTLSBackend(self) -> Generator[Any, Any, Any]:
        """
        The server refuses PyMySQL in clear; through the proxy the same
        client logs in (with C{mysql_native_password}, and with
        C{ed25519}, whose authentication switch adds packets each way to
        renumber) and the server's session is TLS.  The greeting the
        client sees does not offer SSL (the proxy has no certificate to
        give), so PyMySQL's default (TLS if offered, from PyMySQL 2 on)
        goes in clear too.
        """
        proxy = self.proxy()
        messages = recordMessages(proxy)
        # The same login fails in clear (MariaDB says "Access denied") and
        # works over TLS.
        clear = yield deferToThread(self.failure, self.server.port, ssl_disabled=True)
        self.assertIsNotNone(clear)
        secure = yield deferToThread(self.failure, self.server.port, ssl_ca=self.certs.caFile)
        self.assertIsNone(secure)

        def work() -> Any:
            results = []
            for user, password, disabled in ((USER, PASSWORD, True),
                                             (ED_USER, ED_PASSWORD, True),
                                             (USER, PASSWORD, False)):
                with self.connect(proxy.port, user, password,
                                  ssl_disabled=disabled) as connection:
                    cursor = connection.cursor()
                    cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
                    version = cursor.fetchall()[0][1]
                    cursor.execute("SELECT 6 * 7")
                    results.append((version[:3], cursor.fetchall(),
                                    bool(connection.server_capabilities & CLIENT_SSL),
                                    isinstance(connection._sock, ssl.SSLSocket)))
            return results

        results = yield deferToThread(work)
        self.assertEqual(results, [("TLS", ((42,),), False, False)] * 3)
        self.assertIn(("request", "COM_QUERY"),
                      [(m.kind, m.meta.get("command")) for m in messages])

    @defer.inlineCallbacks
    def test_mariadbClientInClear(self) -> Generator[Any, Any, Any]:
        """
        The C{mariadb} client (MariaDB Connector/C, which clears
        C{CLIENT_MYSQL} and sends MariaDB's extended capabilities) with
        C{--ssl=0} logs in through the proxy, and the server's session is
        TLS.
        """
        mariadb = requireBinary("mariadb", "mariadb-client")
        proxy = self.proxy()
        output = yield run([
            mariadb, "-h127.0.0.1", "-P%d" % proxy.port, "-u" + USER, "-p" + PASSWORD,
            "--ssl=0", "-Dtxvaurien", "--batch", "--skip-column-names", "-e",
            "SELECT variable_value LIKE 'TLS%' FROM information_schema.session_status "
            "WHERE variable_name = 'Ssl_version'; SELECT seq FROM seq_1_to_3"])
        self.assertEqual(output, "1\n1\n2\n3\n")

    @defer.inlineCallbacks
    def test_errorAfterSwitch(self) -> Generator[Any, Any, Any]:
        """
        Commands are framed once the handshake is over: C{100:error}
        answers PyMySQL's first command with the proxy's ERR packet.
        """
        proxy = self.proxy("100:error")
        args = yield deferToThread(self.failure, proxy.port)
        self.assertEqual(args, (1105, "error injected by txvaurien"))

    @defer.inlineCallbacks
    def test_sslClientUpgradedOnBothLegs(self) -> Generator[Any, Any, Any]:
        """
        With a certificate too, the greeting offers SSL and a client that
        asks for it is upgraded on both legs, as without C{tls_backend}.
        """
        proxyCert, proxyKey = self.certs.serverCertificate(
            ["localhost", "127.0.0.1"], prefix="proxy-mysql-backend")
        proxy = self.proxy(tls_certificate=proxyCert, tls_key=proxyKey)

        def work() -> Any:
            with self.connect(proxy.port, ssl_ca=self.certs.caFile,
                              ssl_verify_identity=True) as connection:
                cursor = connection.cursor()
                cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
                return (cursor.fetchall()[0][1][:3],
                        isinstance(connection._sock, ssl.SSLSocket))

        result = yield deferToThread(work)
        self.assertEqual(result, ("TLS", True))

    @defer.inlineCallbacks
    def test_untrustedServerIsErr(self) -> Generator[Any, Any, Any]:
        """
        A server whose certificate does not chain to C{tls_ca_file}: the
        client's login fails with the proxy's ERR naming the reason,
        numbered as the answer to its handshake response (so PyMySQL
        reports it rather than a lost connection).
        """
        proxy = self.proxy(tls_ca_file=TestCertificates(self).caFile)
        args = yield deferToThread(self.failure, proxy.port)
        self.assertIsNotNone(args)
        self.assertEqual(args[0], 2003)
        self.assertIn("certificate verify failed", args[1])

    @defer.inlineCallbacks
    def test_serverWithoutSSLIsErr(self) -> Generator[Any, Any, Any]:
        """
        A server whose greeting does not offer SSL: the client gets an
        ERR in place of the greeting, saying so.
        """
        server = yield startMariaDB()
        self.addCleanup(server.stop)
        proxy = self.proxy(port=server.port)
        args = yield deferToThread(self.failure, proxy.port)
        self.assertIsNotNone(args)
        self.assertEqual(args[0], 2003)
        self.assertIn("the server does not offer SSL", args[1])


__all__ = ["MySQLBackendTLSTests", "MySQLUpgradeTests", "handshakeInOneWrite"]
