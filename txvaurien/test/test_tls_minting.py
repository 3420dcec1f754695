"""
Certificates minted on the fly: a CA given or generated in a directory, a
certificate per server name (SNI) from a bounded cache, backends chosen by
server name; and the listener's bad input, at start and through a real
C{twistd}.
"""

from __future__ import annotations

from typing import Any, Generator

import os
import ssl
import sys

from twisted.internet import defer, utils
from twisted.trial.unittest import TestCase
from twisted.web import server

from txvaurien.endpoints import EndpointError, checkListen, parseBackend
from txvaurien.test.servers import listenBackend, requireBinary
from txvaurien.test.tlshelpers import (
    Named, TestCertificates, curl, get, inThread, listenTLSProxy, pythonClient)
from txvaurien.tls import certs
from txvaurien.tls.metrics import METRICS
from txvaurien.tls.server import ServerTLS


def _peerNames(port: int, cafile: str, name: str) -> list[str]:
    import socket

    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as s:
            cert = s.getpeercert()
    alt: Any = cert.get("subjectAltName", ())
    return [value for kind, value in alt if kind == "DNS"]


class MintingTests(TestCase):
    """
    A TLS listener with a minting CA.
    """

    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.certs = TestCertificates(self)
        port = listenBackend(self, server.Site(Named("plain")))
        self.plain = parseBackend(reactor, "127.0.0.1:{}".format(port))

    @defer.inlineCallbacks
    def test_caGeneratedInDirectoryAndMintsPerName(self) -> Generator[Any, Any, Any]:
        """
        With C{caDir}, a CA is generated there on first use; a client that
        trusts it reaches the proxy as C{a.test} and as C{b.test}, each
        shown a certificate for the name it asked for.
        """
        directory = os.path.join(self.certs.directory, "ca")
        proxy = yield listenTLSProxy(
            self, self.plain, "ssl:0:interface=127.0.0.1:caDir=" + directory)
        caFile = os.path.join(directory, "ca.pem")
        self.assertTrue(os.path.exists(caFile))
        self.assertEqual(os.stat(os.path.join(directory, "ca.key")).st_mode & 0o777, 0o600)
        for name in ("a.test", "b.test"):
            names = yield inThread(_peerNames, proxy.port, caFile, name)
            self.assertEqual(names, [name])
            chosen, body = yield inThread(pythonClient, proxy.port, caFile, ["http/1.1"],
                                          serverName=name, request=get(name))
            self.assertEqual(chosen, "http/1.1")
            self.assertIn(b"I am plain", body)

    def test_caDirectoryReused(self) -> None:
        """
        A second start with the same C{caDir} uses the CA made by the first.
        """
        directory = os.path.join(self.certs.directory, "ca")
        first = certs.CertificateAuthority.inDirectory(directory)
        second = certs.CertificateAuthority.inDirectory(directory)
        self.assertEqual(first.certificate, second.certificate)

    def test_mintedCacheIsBounded(self) -> None:
        """
        With C{cacheSize=2}, a third name evicts the least recently used
        one, and each new name is counted as minted once.
        """
        ca = certs.CertificateAuthority.generate()
        tls = ServerTLS(ca=ca, cacheSize=2)
        before = METRICS.minted
        a = tls.mintedContext("a.test")
        tls.mintedContext("b.test")
        self.assertIs(tls.mintedContext("a.test"), a)
        tls.mintedContext("c.test")
        self.assertEqual(list(tls._minted), ["a.test", "c.test"])
        self.assertEqual(METRICS.minted - before, 3)

    @defer.inlineCallbacks
    def test_curlWithSNIForTwoNames(self) -> Generator[Any, Any, Any]:
        """
        curl, trusting the given CA (C{caCert}/C{caKey}), reaches two host
        names through one listener, each routed by its server name to its
        own backend (C{sni:} backend).
        """
        requireBinary("curl", "curl")
        a = listenBackend(self, server.Site(Named("A")))
        b = listenBackend(self, server.Site(Named("B")))
        backend = parseBackend(self.reactor, "sni:a.test=127.0.0.1:{}|b.test=127.0.0.1:{}".format(
            a, b))
        proxy = yield listenTLSProxy(
            self, backend, "ssl:0:interface=127.0.0.1:caCert={}:caKey={}".format(
                self.certs.caFile, self.certs.caKeyFile))
        for name, expected in (("a.test", b"I am A"), ("b.test", b"I am B")):
            out, err, code = yield curl(
                "--cacert", self.certs.caFile,
                "--resolve", "{}:{}:127.0.0.1".format(name, proxy.port),
                "https://{}:{}/".format(name, proxy.port))
            self.assertEqual((code, out), (0, expected), err)

    @defer.inlineCallbacks
    def test_unknownServerNameRefusedWithAlert(self) -> Generator[Any, Any, Any]:
        """
        A server name no route names, without a C{*} route, is refused at
        the handshake with an C{unrecognized_name} alert (as a server
        without that virtual host does); a C{*} route would take it.
        """
        a = listenBackend(self, server.Site(Named("A")))
        backend = parseBackend(self.reactor, "sni:a.test=127.0.0.1:{}".format(a))
        proxy = yield listenTLSProxy(
            self, backend, "ssl:0:interface=127.0.0.1:caCert={}:caKey={}".format(
                self.certs.caFile, self.certs.caKeyFile))
        failure = yield self.assertFailure(
            inThread(pythonClient, proxy.port, self.certs.caFile,
                     serverName="c.test", request=get("c.test")), ssl.SSLError)
        self.assertIn("UNRECOGNIZED_NAME", str(failure))
        backend.routes["*"] = backend.routes["a.test"]
        chosen, body = yield inThread(pythonClient, proxy.port, self.certs.caFile,
                                      serverName="c.test", request=get("c.test"))
        self.assertIn(b"I am A", body)

    def test_sniRouteMalformed(self) -> None:
        """
        A route without C{=} is refused, naming it.
        """
        e = self.assertRaises(EndpointError, parseBackend, self.reactor, "sni:a.test")
        self.assertIn("'a.test'", str(e))


class BadListenerInputTests(TestCase):
    """
    A TLS listener's files are checked before it listens.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.certs = TestCertificates(self)

    def assertListenError(self, keywords: str, *expected: str) -> None:
        e = self.assertRaises(EndpointError, checkListen, self.reactor, "ssl:0:" + keywords)
        for text in expected:
            self.assertIn(text, str(e))
        self.assertNotIn("\n", str(e))

    def test_missingKey(self) -> None:
        """
        A key file that does not exist is named.
        """
        missing = os.path.join(self.certs.directory, "nope.key")
        self.assertListenError("privateKey={}:certKey={}".format(missing, self.certs.certFile),
                               "cannot read private key", missing)

    def test_unreadableKey(self) -> None:
        """
        A key file that cannot be read is named (skipped as root, who reads
        everything).
        """
        if os.getuid() == 0:
            path = self.certs.directory  # a directory: unreadable as a file
        else:
            path = self.certs.write("locked.key", b"x")
            os.chmod(path, 0)
        self.assertListenError("privateKey={}:certKey={}".format(path, self.certs.certFile),
                               "cannot read private key", path)

    def test_keyNotMatchingCertificate(self) -> None:
        """
        A key that is not the certificate's is refused, naming both files.
        """
        other = self.certs.otherKey()
        self.assertListenError("privateKey={}:certKey={}".format(other, self.certs.certFile),
                               "does not match", other, self.certs.certFile)

    def test_caNotPEM(self) -> None:
        """
        A CA file that is not PEM is refused, naming it.
        """
        junk = self.certs.write("junk.pem", b"\x00\x01 not pem")
        self.assertListenError("caCert={}:caKey={}".format(junk, self.certs.caKeyFile),
                               "holds no PEM certificate", junk)

    def test_clientCANotPEM(self) -> None:
        """
        A C{clientCA} file that is not PEM is refused, naming it.
        """
        junk = self.certs.write("junk.pem", b"nope")
        self.assertListenError("privateKey={}:certKey={}:clientCA={}".format(
            self.certs.keyFile, self.certs.certFile, junk), "client CA file", junk)

    def test_expiredCA(self) -> None:
        """
        An expired CA is refused, saying when it expired.
        """
        cert, key = self.certs.expiredCA()
        self.assertListenError("caCert={}:caKey={}".format(cert, key), "expired on", cert)

    def test_noCertificateNorCA(self) -> None:
        """
        A TLS listener with neither a certificate nor a CA says what to give.
        """
        self.assertListenError("interface=127.0.0.1", "give privateKey")

    @defer.inlineCallbacks
    def test_twistdExitsWithOneLineError(self) -> Generator[Any, Any, Any]:
        """
        Through a real C{twistd}, a key that does not match its
        certificate stops the start with exit status 1 and the reason.
        """
        from txvaurien.test.controlhelpers import childEnvironment, twistdArguments

        other = self.certs.otherKey()
        out, err, code = yield utils.getProcessOutputAndValue(
            sys.executable,
            twistdArguments(["--proxy", "ssl:0:privateKey={}:certKey={}".format(
                other, self.certs.certFile), "--backend", "127.0.0.1:1"]),
            env=childEnvironment(), path=os.getcwd())
        self.assertEqual(code, 1, out + err)
        lines = [line for line in (out + err).decode().splitlines()
                 if "does not match certificate" in line]
        self.assertEqual(len(lines), 1, out + err)
        self.assertIn(other, lines[0])
