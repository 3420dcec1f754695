"""
TLS through the control APIs: a proxy created with a TLS listener and a
TLS upstream serves, and the listener's and upstream's bad files get a
400 naming the reason.
"""

from __future__ import annotations

import json
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from txvaurien.test.controlhelpers import Control
from txvaurien.test.tlshelpers import TestCertificates, get, inThread, listenHTTPS, pythonClient


class TLSControlTests(TestCase):
    """
    Toxiproxy's C{POST /proxies} with TLS endpoint strings.
    """

    timeout = 30

    def setUp(self) -> None:
        self.certs = TestCertificates(self)
        self.control = Control(self, [])

    @defer.inlineCallbacks
    def test_createTLSProxy(self) -> Generator[Any, Any, None]:
        """
        A proxy created with an C{ssl:} listen and a verified C{tls:}
        upstream answers a TLS client with the backend's answer.
        """
        port = listenHTTPS(self, self.certs)
        body = {
            "name": "tls", "listen": "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
                self.certs.keyFile, self.certs.certFile),
            "upstream": "tls:host=localhost:port={}:caFile={}".format(port, self.certs.caFile),
        }
        code, _, content = yield self.control.request("POST", "/proxies", body)
        self.assertEqual(code, 201, content)
        proxyPort = self.control.proxyPort("tls")
        chosen, answer = yield inThread(pythonClient, proxyPort, self.certs.caFile,
                                        ["http/1.1"], request=get())
        self.assertIn(b"200 OK", answer)
        self.assertIn(b"hello over TLS", answer)

    @defer.inlineCallbacks
    def test_mismatchedKeyIs400(self) -> Generator[Any, Any, None]:
        """
        A listener whose key does not match its certificate gets a 400
        naming the reason, and no proxy is made.
        """
        body = {"name": "bad", "listen": "ssl:0:privateKey={}:certKey={}".format(
            self.certs.otherKey(), self.certs.certFile), "upstream": "127.0.0.1:1"}
        code, _, content = yield self.control.request("POST", "/proxies", body)
        self.assertEqual(code, 400, content)
        self.assertIn("does not match certificate", json.loads(content)["error"])
        code, _, _ = yield self.control.request("GET", "/proxies/bad")
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_upstreamCAFileNotPEMIs400(self) -> Generator[Any, Any, None]:
        """
        A TLS upstream whose C{caFile} is not PEM gets a 400 naming it.
        """
        junk = self.certs.write("junk.pem", b"junk")
        body = {"name": "bad", "listen": "127.0.0.1:0",
                "upstream": "tls:host=localhost:port=1:caFile=" + junk}
        code, _, content = yield self.control.request("POST", "/proxies", body)
        self.assertEqual(code, 400, content)
        self.assertIn("holds no PEM certificate", json.loads(content)["error"])
