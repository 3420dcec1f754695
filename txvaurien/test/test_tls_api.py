"""
TLS everywhere options go: Vaurien's C{GET}/C{PUT /backend}, the C{tls}
object of Toxiproxy's proxies (our extension), the C{--config} list,
C{vaurienctl} and the Python client, all through the real control API,
with real TLS servers and clients on 127.0.0.1, and the examples of
docs/api.rst and docs/tls.rst.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
from typing import Any, Generator

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from txvaurien import ctl
from txvaurien.client import BadRequest, Client
from txvaurien.control.config import loadConfig
from txvaurien.control.tlsconfig import listenOptions, upstreamOptions
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


class ClientTLSTests(_TLSControlCase):
    """
    C{vaurienctl} and L{txvaurien.client.Client} with TLS.
    """

    def ctl(self, control: Control, *argv: str) -> defer.Deferred:
        def run() -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            status = ctl.main(["--host", control.url, *argv], out, err)
            return status, out.getvalue(), err.getvalue()

        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_ctlCreatesTLSProxyAndShowsBackend(self) -> Generator[Any, Any, None]:
        """
        C{proxies create --cert-key --private-key --ca-file} makes a proxy
        with both legs TLS that serves a verifying client; C{get-backend}
        shows the upstream's verification, C{proxies show} the C{tls}
        object.
        """
        control = self.control()
        certs = self.certs
        status, out, err = yield self.ctl(
            control, "proxies", "create", "api", "--upstream",
            "localhost:{}".format(self.backend), "--ca-file", certs.caFile,
            "--cert-key", certs.certFile, "--private-key", certs.keyFile)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("    tls listen: certKey={}, privateKey={}\n".format(
            certs.certFile, certs.keyFile), out)
        self.assertIn("    tls upstream: verify=true, caFile={}\n".format(certs.caFile), out)
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS", answer)
        result = yield self.ctl(control, "--proxy", "api", "get-backend")
        self.assertEqual(result, (0, "localhost:{}\n    TLS, verify on, trust {}, server "
                                     "name localhost\n".format(self.backend, certs.caFile), ""))
        status, out, _ = yield self.ctl(control, "proxies", "show", "api")
        self.assertIn("    tls upstream: verify=true, caFile=", out)

    @defer.inlineCallbacks
    def test_ctlNoVerifyAndServerName(self) -> Generator[Any, Any, None]:
        """
        C{--no-verify --server-name N} sends C{{"verify": false,
        "serverName": N}}; C{--json get-backend} shows verification off.
        """
        control = self.control()
        status, out, err = yield self.ctl(
            control, "--json", "proxies", "create", "api", "--upstream",
            "127.0.0.1:{}".format(self.backend), "--no-verify", "--server-name", "a.test")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(json.loads(out)["tls"], {"upstream": {
            "verify": False, "serverName": "a.test"}})
        status, out, _ = yield self.ctl(control, "--proxy", "api", "--json", "get-backend")
        tls = json.loads(out)["tls"]
        self.assertEqual((tls["verify"], tls["server_name"], tls["trust"]),
                         (False, "a.test", None))
        result = yield self.ctl(control, "--proxy", "api", "get-backend")
        self.assertEqual(result[1].splitlines()[1],
                         "    TLS, verify OFF, server name a.test")

    @defer.inlineCallbacks
    def test_ctlRefusals(self) -> Generator[Any, Any, None]:
        """
        C{--private-key} without C{--cert-key} is a usage error (exit 2);
        a CA file that is not PEM is the server's 400 (exit 1) naming the
        field.
        """
        control = self.control()
        status, _, err = yield self.ctl(
            control, "proxies", "create", "api", "--upstream", "localhost:1",
            "--private-key", self.certs.keyFile)
        self.assertEqual((status, err), (2, "vaurienctl: --private-key needs --cert-key\n"))
        junk = self.certs.write("junk.pem", b"junk")
        status, _, err = yield self.ctl(
            control, "proxies", "create", "api", "--upstream", "localhost:1",
            "--ca-file", junk)
        self.assertEqual(status, 1)
        self.assertIn("HTTP 400: bad request body: tls.upstream.caFile: ", err)
        self.assertIn("holds no PEM certificate", err)

    @defer.inlineCallbacks
    def test_pythonClient(self) -> Generator[Any, Any, None]:
        """
        C{Client.create_proxy(..., tls=...)} makes a TLS proxy;
        C{get_backend_state} shows its TLS; a bad value raises
        L{BadRequest} with the server's message.
        """
        control = self.control()
        client = Client("127.0.0.1", control.port, proxy="api")
        body = self.tlsBody()

        def scenario() -> Any:
            made = client.create_proxy("api", body["upstream"], tls=body["tls"])
            state = client.get_backend_state()
            try:
                client.create_proxy("bad", "localhost:1", tls={"upstream": {"verify": "x"}})
            except BadRequest as e:
                refused = e.message
            return made, state, refused

        made, state, refused = yield threads.deferToThread(scenario)
        self.assertEqual(made["tls"]["listen"]["certKey"], self.certs.certFile)
        self.assertEqual(state["tls"]["trust"], self.certs.caFile)
        self.assertEqual(refused, "bad request body: tls.upstream.verify: "
                                  "expected true or false, got 'x'")
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS", answer)


class DocsExamplesTests(_TLSControlCase):
    """
    The TLS examples of docs/api.rst and docs/tls.rst work as shown.
    """

    def localFiles(self) -> dict[str, str]:
        certs = self.certs
        return {"cert.pem": certs.certFile, "key.pem": certs.keyFile, "ca.pem": certs.caFile}

    def substitute(self, value: Any, ports: dict[str, str]) -> Any:
        """
        C{value} with the documented file names, addresses and backend
        port (9443) replaced by the test's.
        """
        if isinstance(value, dict):
            return {k: self.substitute(v, ports) for k, v in value.items()}
        if isinstance(value, str):
            value = ports.get(value, value)
            return self.localFiles().get(value, value)
        if value == 9443:
            return self.backend
        return value

    def test_apiPageNamesEveryKey(self) -> None:
        """
        The C{tls} section of docs/api.rst names every key of
        C{tls.listen} and C{tls.upstream}, as their declarations make
        them.
        """
        with open(os.path.join(DOCS, "api.rst"), encoding="utf-8") as f:
            text = f.read()
        section = text[text.index("TLS on a proxy (our extension)"):
                       text.index("``POST /populate``\n~~~")]
        for name in [*listenOptions(), *upstreamOptions()]:
            self.assertIn("``{}``".format(name), section)
        self.assertNotIn("sni", upstreamOptions())

    @defer.inlineCallbacks
    def test_apiExampleCreatesTLSProxy(self) -> Generator[Any, Any, None]:
        """
        The C{tls} proxy of docs/api.rst, with the test's files and ports,
        is created and serves a verifying TLS client.
        """
        documented = json.loads(_docExample("api.rst", "tls-proxy"))
        body = self.substitute(documented, {
            "127.0.0.1:8443": "127.0.0.1:0", "localhost:9443": "localhost:{}".format(
                self.backend)})
        control = self.control()
        status, value = yield control.json("POST", "/proxies", body)
        self.assertEqual(status, 201, value)
        self.assertEqual(value["tls"]["upstream"], {"verify": True, **body["tls"]["upstream"]})
        answer = yield self.viaTLS(control.proxyPort(documented["name"]))
        self.assertIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_tlsPageCtlExampleSendsTheDocumentedObject(self) -> Generator[Any, Any, None]:
        """
        The C{vaurienctl} command of docs/tls.rst sends the C{tls} object
        shown after it and, with the test's files and ports, makes a proxy
        that serves.
        """
        command = _docExample("tls.rst", "vaurienctl-tls").replace("\\\n", " ")
        argv = shlex.split(command)[1:]
        self.assertEqual(argv[:2], ["--host", "http://127.0.0.1:8474"])
        args = ctl.buildParser().parse_args(argv)
        with open(os.path.join(DOCS, "tls.rst"), encoding="utf-8") as f:
            text = f.read()
        sent = re.search(r"sends::\n\n((?:    .*\n|\n)+)", text)
        assert sent is not None
        documented = json.loads(sent.group(1))
        self.assertEqual(ctl._tlsObject(args), documented["tls"])
        self.assertEqual((args.listen, args.upstream),
                         (documented["listen"], documented["upstream"]))
        control = self.control()
        ports = {"127.0.0.1:8443": "127.0.0.1:0",
                 "localhost:9443": "localhost:{}".format(self.backend)}
        local = [self.substitute(arg, ports) for arg in argv[2:]]
        err = io.StringIO()
        status = yield threads.deferToThread(
            ctl.main, ["--host", control.url, *local], io.StringIO(), err)
        self.assertEqual((status, err.getvalue()), (0, ""))
        answer = yield self.viaTLS(control.proxyPort("api"))
        self.assertIn(b"hello over TLS", answer)
        yield self.checkBackendExample(control)

    @defer.inlineCallbacks
    def checkBackendExample(self, control: Control) -> Generator[Any, Any, None]:
        """
        The C{get-backend} and C{GET /backend} answers of docs/tls.rst,
        with the test's files and port, are those of the proxy the
        documented command made.
        """
        example = _docExample("tls.rst", "tls-backend")
        ctlPart, curlPart = example.split("\n\n$ curl")
        lines = ctlPart.splitlines()
        self.assertTrue(lines[0].startswith("$ vaurienctl --host http://127.0.0.1:8474 "))
        expected = "\n".join(lines[1:]).replace("9443", str(self.backend)).replace(
            "ca.pem", self.certs.caFile) + "\n"
        out = io.StringIO()
        status = yield threads.deferToThread(
            ctl.main, ["--host", control.url, *shlex.split(lines[0])[4:]], out, io.StringIO())
        self.assertEqual((status, out.getvalue()), (0, expected))
        documented = json.loads(curlPart.split("\n", 1)[1])
        _, value = yield control.json("GET", "/backend?proxy=api")
        self.assertEqual(value, self.substitute(documented, {
            "localhost:9443": "localhost:{}".format(self.backend)}))
