"""
TLS in C{vaurienctl} and L{txvaurien.client.Client}, through a real
control API with real TLS servers and clients, and the TLS examples of
docs/api.rst and docs/tls.rst run as shown.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
from typing import Any, Generator

from twisted.internet import defer, threads

from txvaurien import _ctlcommands, ctl
from txvaurien.client import BadRequest, Client
from txvaurien.control.tlsconfig import listenOptions, upstreamOptions
from txvaurien.test.controlhelpers import Control
from txvaurien.test.test_tls_api import DOCS, _docExample, _TLSControlCase


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
        self.assertEqual(_ctlcommands._tlsObject(args), documented["tls"])
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
