"""
UDP proxies through the HTTP control API: Toxiproxy's C{POST /proxies}
with our C{"protocol": "udp"} extension field, toxics on them, stream-only
behaviors refused with a 400, and their metrics on C{/metrics}; and
C{twistd vaurien --http} in front of a UDP backend.
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txvaurien.test.controlhelpers import Control
from txvaurien.test.test_datagram_integration import Client, Echo, poll


class ToxiproxyUDPTests(TestCase):
    """
    A bare control server making a UDP proxy in front of a UDP echo server.
    """

    def setUp(self) -> None:
        self.echo = reactor.listenUDP(0, Echo(), interface="127.0.0.1")
        self.addCleanup(self.echo.stopListening)
        self.control = Control(self, [])
        self.upstream = "127.0.0.1:{}".format(self.echo.getHost().port)

    @inlineCallbacks
    def test_createRelayAndRefuse(self) -> Generator[Any, Any, None]:
        """
        C{POST /proxies} with C{"protocol": "udp"} makes a proxy that relays
        datagrams and shows the field back; a latency toxic is accepted, a
        stream-only one (C{slicer}) gets a 400 naming the reason; an
        unknown protocol gets a 400; C{/metrics} counts the datagrams.
        """
        status, body = yield self.control.json("POST", "/proxies", {
            "name": "dns", "listen": "127.0.0.1:0", "upstream": self.upstream,
            "protocol": "udp"})
        self.assertEqual(status, 201, body)
        self.assertEqual(body["protocol"], "udp")
        status, listed = yield self.control.json("GET", "/proxies/dns")
        self.assertEqual(listed["protocol"], "udp")
        host, port = listed["listen"].rsplit(":", 1)
        client = Client((host, int(port)))
        clientPort = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(clientPort.stopListening)
        client.send(7)
        yield poll(lambda: client.received)
        self.assertEqual(client.received, [7])
        status, body = yield self.control.json("POST", "/proxies/dns/toxics", {
            "type": "latency", "attributes": {"latency": 1}})
        self.assertEqual(status, 200, body)
        status, body = yield self.control.json("POST", "/proxies/dns/toxics", {
            "type": "slicer", "name": "cut", "attributes": {"average_size": 100}})
        self.assertEqual(status, 400, body)
        self.assertIn("slicer", body["error"])
        status, body = yield self.control.json("POST", "/proxies", {
            "name": "bad", "listen": "127.0.0.1:0", "upstream": self.upstream,
            "protocol": "sctp"})
        self.assertEqual(status, 400, body)
        self.assertIn("sctp", body["error"])
        status, _, metrics = yield self.control.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"dns", metrics)
        self.assertIn(b"datagram", metrics)
        self.assertIn(b"txvaurien_tls_", metrics)


class TwistdUDPTests(TestCase):
    """
    C{--http} with a UDP C{--backend}.
    """

    @inlineCallbacks
    def test_controlPlaneAdoptsUDPProxy(self) -> Generator[Any, Any, None]:
        """
        With C{--http}, the control plane lists the UDP proxy
        C{--backend} describes, as C{"protocol": "udp"}.
        """
        echo = reactor.listenUDP(0, Echo(), interface="127.0.0.1")
        self.addCleanup(echo.stopListening)
        control = Control(self, [
            "--proxy", "udp:0:interface=127.0.0.1",
            "--backend", "udp:host=127.0.0.1:port={}".format(echo.getHost().port)])
        status, proxies = yield control.json("GET", "/proxies")
        self.assertEqual(status, 200)
        self.assertEqual(proxies["vaurien"]["protocol"], "udp")
