"""
TLS in the control APIs: Vaurien's C{GET}/C{PUT /backend}, the C{tls}
object of Toxiproxy's proxies (our extension) and the C{--config} list,
through the real control API, with real TLS servers and clients on
127.0.0.1.  C{vaurienctl}, the Python client and the docs' examples are in
L{txvaurien.test.test_tls_api_tools}.
"""

from __future__ import annotations

import json
import os
from typing import Any, Generator

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from txvaurien.control.config import loadConfig
from txvaurien.test.controlhelpers import Control
from txvaurien.test.helpers import testRegistry
from txvaurien.test.tlshelpers import (
    TestCertificates,
    exchange,
    get,
    inThread,
    listenHTTPS,
    pythonClient,
)

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")


def _docExample(page: str, name: str) -> str:
    """
    The literal block after C{.. example: NAME} in a page of docs/, as
    text (its indentation removed).
    """
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        text = f.read()
    start = text.index(".. example: " + name)
    block = text.index("::\n\n", start) + 4
    lines = []
    for line in text[block:].splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip()


class _TLSControlCase(TestCase):
    """
    Certificates, an HTTPS backend signed by the test CA, and helpers.
    """

    timeout = 30

    def setUp(self) -> None:
        self.certs = TestCertificates(self)
        self.backend = listenHTTPS(self, self.certs)

    def tlsBody(self, name: str = "api", upstream: Any = None) -> dict[str, Any]:
        """
        A C{POST /proxies} body with both legs TLS, to the HTTPS backend.
        """
        return {"name": name, "listen": "127.0.0.1:0",
                "upstream": "localhost:{}".format(self.backend),
                "tls": {"listen": {"certKey": self.certs.certFile,
                                   "privateKey": self.certs.keyFile},
                        "upstream": upstream or {"caFile": self.certs.caFile}}}

    def control(self, *argv: str) -> Control:
        return Control(self, list(argv))

    @defer.inlineCallbacks
    def viaTLS(self, port: int) -> Generator[Any, Any, bytes]:
        """
        A GET through a TLS listener on C{port}, the client verifying it
        with the test CA; the bytes answered.
        """
        _, answer = yield inThread(pythonClient, port, self.certs.caFile, ["http/1.1"],
                                   request=get())
        return answer

    def viaTCP(self, port: int) -> defer.Deferred:
        """
        A GET through a plain listener on C{port}; fires with the answer.
        """
        return inThread(exchange, port, get())


class VaurienBackendTests(_TLSControlCase):
    """
    Vaurien's C{GET /backend} shows the backend leg's TLS; C{PUT /backend}
    takes a C{tls:} backend and refuses a bad one with the reason.
    """

    def tlsBackend(self, extra: str = "") -> str:
        return "tls:host=localhost:port={}:caFile={}{}".format(
            self.backend, self.certs.caFile, extra)

    @defer.inlineCallbacks
    def test_getBackendShowsTLS(self) -> Generator[Any, Any, None]:
        """
        With a C{--backend tls:...}, C{GET /backend} adds C{tls}: host,
        port, the server name sent, verification on, the CA file trusted,
        no client certificate.
        """
        backend = self.tlsBackend()
        control = self.control("--backend", backend, "--proxy", "tcp:0:interface=127.0.0.1")
        status, value = yield control.json("GET", "/backend")
        self.assertEqual((status, value), (200, {"backend": backend, "tls": {
            "host": "localhost", "port": self.backend, "verify": True,
            "server_name": "localhost", "alpn": [], "trust": self.certs.caFile,
            "client_certificate": False}}))
        answer = yield self.viaTCP(control.proxyPort())
        self.assertIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_plainBackendHasNoTLSField(self) -> Generator[Any, Any, None]:
        """
        A plain TCP backend's C{GET /backend} is Vaurien's, without C{tls}.
        """
        control = self.control("--backend", "127.0.0.1:1", "--proxy",
                               "tcp:0:interface=127.0.0.1")
        status, value = yield control.json("GET", "/backend")
        self.assertEqual((status, value), (200, {"backend": "127.0.0.1:1"}))

    @defer.inlineCallbacks
    def test_putTLSBackend(self) -> Generator[Any, Any, None]:
        """
        C{PUT /backend} with a C{tls:} backend with C{verify=no} and a
        client certificate: the next connection reaches the HTTPS backend,
        and C{GET /backend} shows verification off, no trust, a client
        certificate.
        """
        control = self.control("--backend", "127.0.0.1:1", "--proxy",
                               "tcp:0:interface=127.0.0.1")
        backend = "tls:host=127.0.0.1:port={}:verify=no:certificate={}:privateKey={}".format(
            self.backend, self.certs.clientCertFile, self.certs.clientKeyFile)
        status, value = yield control.json("PUT", "/backend", {"backend": backend})
        self.assertEqual((status, value), (200, {"status": "ok"}))
        _, value = yield control.json("GET", "/backend")
        self.assertEqual(value, {"backend": backend, "tls": {
            "host": "127.0.0.1", "port": self.backend, "verify": False, "server_name": None,
            "alpn": [], "trust": None, "client_certificate": True}})
        answer = yield self.viaTCP(control.proxyPort())
        self.assertIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_putSNIBackendShowsRoutes(self) -> Generator[Any, Any, None]:
        """
        An C{sni:} backend's C{tls} lists each route, with its own TLS
        (C{null} for a plain one).
        """
        control = self.control("--backend", "127.0.0.1:1", "--proxy",
                               "tcp:0:interface=127.0.0.1")
        backend = "sni:a.test={}|*=127.0.0.1:2".format(self.tlsBackend())
        status, _ = yield control.json("PUT", "/backend", {"backend": backend})
        self.assertEqual(status, 200)
        _, value = yield control.json("GET", "/backend")
        routes = value["tls"]["routes"]
        self.assertEqual(routes["*"], {"backend": "127.0.0.1:2", "tls": None})
        self.assertEqual(routes["a.test"]["backend"], self.tlsBackend())
        self.assertEqual(routes["a.test"]["tls"]["trust"], self.certs.caFile)

    @defer.inlineCallbacks
    def assertRefused(self, backend: str, says: str) -> Generator[Any, Any, None]:
        control = self.control("--backend", "127.0.0.1:1", "--proxy",
                               "tcp:0:interface=127.0.0.1")
        status, value = yield control.json("PUT", "/backend", {"backend": backend})
        self.assertEqual(status, 400, value)
        [error] = value["errors"]
        self.assertEqual((error["location"], error["name"]), ("body", "backend"))
        self.assertIn(says, error["description"])
        _, value = yield control.json("GET", "/backend")
        self.assertEqual(value, {"backend": "127.0.0.1:1"})

    def test_putBackendMissingCAFileIs400(self) -> defer.Deferred:
        """
        A C{tls:} backend whose C{caFile} does not exist is a 400 naming
        C{backend}, saying the file cannot be read; the backend is kept.
        """
        missing = os.path.join(self.certs.directory, "missing.pem")
        return self.assertRefused(
            "tls:host=localhost:port=1:caFile=" + missing,
            "cannot read CA file {}: No such file or directory".format(missing))

    def test_putBackendNotPEMCAFileIs400(self) -> defer.Deferred:
        """
        A C{caFile} that holds no PEM certificate is a 400 saying so.
        """
        junk = self.certs.write("junk.pem", b"not a certificate")
        return self.assertRefused("tls:host=localhost:port=1:caFile=" + junk,
                                  "CA file {} holds no PEM certificate".format(junk))

    def test_putBackendMismatchedClientKeyIs400(self) -> defer.Deferred:
        """
        A client certificate with a key that is not its own is a 400
        saying the key does not match.
        """
        return self.assertRefused(
            "tls:host=localhost:port=1:certificate={}:privateKey={}".format(
                self.certs.clientCertFile, self.certs.otherKey()),
            "does not match certificate")


class ToxiproxyTLSObjectTests(_TLSControlCase):
    """
    The C{tls} object of C{POST /proxies}, C{GET /proxies/NAME},
    C{/populate}, C{PATCH} and the C{--config} list.
    """

    @defer.inlineCallbacks
    def test_createWithTLSObject(self) -> Generator[Any, Any, None]:
        """
        A proxy created with both legs TLS answers a verifying TLS client
        with the HTTPS backend's answer; its JSON keeps Toxiproxy's
        C{host:port} fields and shows C{tls} with C{verify} filled in.
        """
        control = self.control()
        status, value = yield control.json("POST", "/proxies", self.tlsBody())
        self.assertEqual(status, 201, value)
        self.assertEqual(value["upstream"], "localhost:{}".format(self.backend))
        self.assertRegex(value["listen"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(value["tls"], {
            "listen": {"certKey": self.certs.certFile, "privateKey": self.certs.keyFile},
            "upstream": {"verify": True, "caFile": self.certs.caFile}})
        _, shown = yield control.json("GET", "/proxies/api")
        self.assertEqual(shown, value)
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS from localhost", answer)

    @defer.inlineCallbacks
    def test_plainProxyHasNoTLSField(self) -> Generator[Any, Any, None]:
        """
        A proxy without C{tls} (and one with C{"tls": null}) is plain TCP
        and its JSON has Toxiproxy's fields only.
        """
        control = self.control()
        for name, extra in (("plain", {}), ("null", {"tls": None})):
            status, value = yield control.json("POST", "/proxies", {
                "name": name, "upstream": "127.0.0.1:1", **extra})
            self.assertEqual(status, 201, value)
            self.assertEqual(sorted(value), ["Logger", "enabled", "listen", "name",
                                             "toxics", "upstream"])

    @defer.inlineCallbacks
    def test_upstreamOnlyWithServerName(self) -> Generator[Any, Any, None]:
        """
        C{tls.upstream} alone: a plain listener, TLS to C{127.0.0.1}
        asking for and verifying C{localhost}; Vaurien's C{GET
        /backend?proxy=NAME} shows that server name.
        """
        control = self.control()
        body = {"name": "up", "upstream": "127.0.0.1:{}".format(self.backend),
                "tls": {"upstream": {"caFile": self.certs.caFile, "serverName": "localhost"}}}
        status, value = yield control.json("POST", "/proxies", body)
        self.assertEqual(status, 201, value)
        self.assertEqual(value["tls"], {"upstream": {
            "verify": True, "caFile": self.certs.caFile, "serverName": "localhost"}})
        answer = yield self.viaTCP(control.proxyPort("up"))
        self.assertIn(b"hello over TLS", answer)
        _, backend = yield control.json("GET", "/backend?proxy=up")
        self.assertEqual((backend["tls"]["server_name"], backend["tls"]["verify"]),
                         ("localhost", True))

    @defer.inlineCallbacks
    def test_verifyFalseAcceptsUntrustedBackend(self) -> Generator[Any, Any, None]:
        """
        C{"upstream": {"verify": false}} reaches a backend whose CA the
        proxy does not trust; C{"upstream": true} (the system's CAs)
        refuses it: the client's connection is closed without an answer.
        """
        control = self.control()
        body = {"name": "off", "upstream": "localhost:{}".format(self.backend),
                "tls": {"upstream": {"verify": False}}}
        status, value = yield control.json("POST", "/proxies", body)
        self.assertEqual(status, 201, value)
        answer = yield self.viaTCP(control.proxyPort("off"))
        self.assertIn(b"hello over TLS", answer)
        body = {"name": "on", "upstream": "localhost:{}".format(self.backend),
                "tls": {"upstream": True}}
        status, value = yield control.json("POST", "/proxies", body)
        self.assertEqual((status, value["tls"]), (201, {"upstream": {"verify": True}}))
        answer = yield self.viaTCP(control.proxyPort("on"))
        self.assertNotIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_badValuesAre400NamingTheField(self) -> Generator[Any, Any, None]:
        """
        Each bad C{tls} value is a 400 whose message starts with the field
        at fault and says why, and no proxy is made.
        """
        missing = os.path.join(self.certs.directory, "missing.pem")
        junk = self.certs.write("junk.pem", b"junk")
        certs = self.certs
        cases: list[tuple[Any, str, str]] = [
            ("yes", "", "tls: expected an object with listen and/or upstream, got \"yes\""),
            ({"upstream": {}, "down": {}}, "", "tls.down: unknown field; known: listen, upstream"),
            ({"upstream": 5}, "", "tls.upstream: expected an object or true, got 5"),
            ({"upstream": {"cafile": certs.caFile}}, "", "tls.upstream.cafile: unknown option"),
            ({"upstream": {"verify": 3}}, "", "tls.upstream.verify: expected true or false"),
            ({"upstream": {"alpn": 3}}, "", "tls.upstream.alpn: expected a list of strings"),
            ({"upstream": {"caFile": missing}}, "",
             "tls.upstream.caFile: cannot read CA file"),
            ({"upstream": {"caFile": junk}}, "",
             "tls.upstream.caFile: CA file {} holds no PEM certificate".format(junk)),
            ({"upstream": {}}, "tcp:host=localhost:port=1",
             "tls.upstream: upstream must be host:port, got 'tcp:host=localhost:port=1'"),
            ({"listen": {"serverName": "x"}}, "", "tls.listen: give certKey and privateKey"),
            ({"listen": True}, "", "tls.listen: expected an object, got true"),
            ({"listen": {"certKey": certs.certFile, "privateKey": certs.otherKey()}}, "",
             "tls.listen.privateKey: private key "),
            ({"listen": {"certKey": junk}}, "", "tls.listen.certKey: "),
        ]
        control = self.control()
        for tls, upstream, says in cases:
            body = {"name": "bad", "upstream": upstream or "localhost:1", "tls": tls}
            status, value = yield control.json("POST", "/proxies", body)
            self.assertEqual(status, 400, (tls, value))
            self.assertTrue(value["error"].startswith("bad request body: " + says),
                            (tls, value["error"]))
        _, value = yield control.json("POST", "/proxies", {
            "name": "bad", "upstream": "127.0.0.1:1", "protocol": "udp",
            "tls": {"upstream": {}}})
        self.assertEqual(value, {"error": "bad request body: tls: a udp proxy cannot use TLS",
                                 "status": 400})
        status, _ = yield control.json("GET", "/proxies/bad")
        self.assertEqual(status, 404)

    @defer.inlineCallbacks
    def test_missingCAFileMessage(self) -> Generator[Any, Any, None]:
        """
        A missing C{tls.upstream.caFile} is a 400 naming the field, the
        path and the reason, in one line.
        """
        control = self.control()
        missing = os.path.join(self.certs.directory, "missing.pem")
        body = {"name": "bad", "upstream": "localhost:1",
                "tls": {"upstream": {"caFile": missing}}}
        _, value = yield control.json("POST", "/proxies", body)
        self.assertEqual(value["error"], (
            "bad request body: tls.upstream.caFile: cannot read CA file {}: "
            "No such file or directory").format(missing))

    @defer.inlineCallbacks
    def test_populateKeepsSameTLSAndReplacesOther(self) -> Generator[Any, Any, None]:
        """
        C{POST /populate} keeps a proxy whose entry has the same C{tls}
        as the proxy's JSON shows it (same port) and replaces one whose
        C{tls} differs, which then serves with the new one.
        """
        control = self.control()
        entry = self.tlsBody()
        status, value = yield control.json("POST", "/populate", [entry])
        self.assertEqual(status, 201, value)
        port = control.proxyPort("api")
        entry["listen"] = value["proxies"][0]["listen"]
        entry["tls"] = value["proxies"][0]["tls"]  # as shown: with "verify": true
        yield control.json("POST", "/populate", [entry])
        self.assertEqual(control.proxyPort("api"), port)
        self.assertEqual(control.manager.get("api").tls.upstream, {"caFile": self.certs.caFile})
        changed = self.tlsBody(upstream={"verify": False})
        changed["listen"] = entry["listen"]
        status, value = yield control.json("POST", "/populate", [changed])
        self.assertEqual(status, 201, value)
        self.assertEqual(value["proxies"][0]["tls"]["upstream"], {"verify": False})
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_patchUpstreamKeepsTLS(self) -> Generator[Any, Any, None]:
        """
        C{PATCH /proxies/NAME} with a new C{upstream} keeps both TLS legs:
        the proxy reaches the second HTTPS backend over verified TLS.
        """
        control = self.control()
        yield control.json("POST", "/proxies", self.tlsBody())
        other = listenHTTPS(self, self.certs)
        status, value = yield control.json("PATCH", "/proxies/api", {
            "upstream": "localhost:{}".format(other)})
        self.assertEqual(status, 200, value)
        self.assertIn("listen", value["tls"])
        _, backend = yield control.json("GET", "/backend?proxy=api")
        self.assertEqual((backend["tls"]["port"], backend["tls"]["trust"]),
                         (other, self.certs.caFile))
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_patchWithOtherTLSIs400(self) -> Generator[Any, Any, None]:
        """
        C{PATCH /proxies/NAME} with a C{tls} other than the proxy's is a
        400 naming C{tls} and the proxy is unchanged; the proxy's own
        C{tls}, as C{GET} shows it, is accepted.
        """
        control = self.control()
        _, made = yield control.json("POST", "/proxies", self.tlsBody())
        status, value = yield control.json("PATCH", "/proxies/api", {
            "tls": {"upstream": {"verify": False}}})
        self.assertEqual((status, value), (400, {"error": (
            "bad request body: tls: a proxy's tls cannot be changed; delete the proxy "
            "and create it again"), "status": 400}))
        status, value = yield control.json("PATCH", "/proxies/api", {
            "tls": made["tls"], "enabled": False})
        self.assertEqual((status, value["tls"], value["enabled"]), (200, made["tls"], False))

    @defer.inlineCallbacks
    def test_putBackendDropsUpstreamTLS(self) -> Generator[Any, Any, None]:
        """
        Vaurien's C{PUT /backend} on a proxy made with C{tls.upstream}
        replaces the backend, and its JSON no longer claims a TLS upstream.
        """
        control = self.control()
        yield control.json("POST", "/proxies", self.tlsBody())
        status, _ = yield control.json("PUT", "/backend?proxy=api",
                                       {"backend": "127.0.0.1:1"})
        self.assertEqual(status, 200)
        _, value = yield control.json("GET", "/proxies/api")
        self.assertEqual(list(value["tls"]), ["listen"])

    @defer.inlineCallbacks
    def test_configFileWithTLS(self) -> Generator[Any, Any, None]:
        """
        A C{--config} JSON list entry with C{tls} makes a TLS proxy at
        start.
        """
        path = self.certs.write("proxies.json", json.dumps([self.tlsBody()]).encode())
        control = self.control("--config", path)
        _, value = yield control.json("GET", "/proxies/api")
        self.assertEqual(value["tls"]["upstream"]["caFile"], self.certs.caFile)
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS", answer)

    def test_configFileWithBadTLSRefused(self) -> None:
        """
        A C{--config} list whose C{tls} names a missing CA file is refused
        at start, naming the file, the entry's field and the reason.
        """
        body = self.tlsBody(upstream={"caFile": "/nonexistent/ca.pem"})
        path = self.certs.write("proxies.json", json.dumps([body]).encode())
        with self.assertRaises(ValueError) as caught:
            loadConfig(reactor, testRegistry(), path)
        self.assertIn("tls.upstream.caFile", str(caught.exception))
        self.assertIn(path, str(caught.exception))
