"""
UDP proxies in the control plane: created with Toxiproxy's C{"protocol":
"udp"} (L{createDatagramProxy}), toxics on them, enabling and disabling,
Vaurien's connection list, and the metrics.
"""

from __future__ import annotations

from typing import Any, Generator

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txvaurien.control.errors import ApiError
from txvaurien.control.managed import ProxyDefaults
from txvaurien.control.manager import ProxyManager
from txvaurien.control.metrics import Metrics
from txvaurien.control.toxics import buildToxic
from txvaurien.control.vaurien_api import describeConnections
from txvaurien.datagram.control import (
    checkBehaviors,
    createDatagramProxy,
    protocolField,
    udpListen,
    udpUpstream,
)
from txvaurien.datagram.metrics import DatagramCollector
from txvaurien.frames import UPSTREAM
from txvaurien.randomness import RandomSource
from txvaurien.test.test_datagram_behaviors import registry
from txvaurien.test.test_datagram_integration import Client, Echo, poll


class ControlTests(TestCase):
    """
    A running L{ProxyManager} with a UDP proxy in front of an echo server.
    """

    def setUp(self) -> None:
        self.echo = reactor.listenUDP(0, Echo(), interface="127.0.0.1")
        self.addCleanup(self.echo.stopListening)
        self.manager = ProxyManager(ProxyDefaults(reactor, registry(), RandomSource(1)))
        self.manager.startService()
        self.addCleanup(self.manager.stopService)
        self.proxy = createDatagramProxy(
            self.manager, "udp_echo", "127.0.0.1:0",
            "127.0.0.1:{}".format(self.echo.getHost().port))

    def client(self) -> Client:
        host, port = self.proxy.listen.rsplit(":", 1)
        client = Client((host, int(port)))
        port_ = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port_.stopListening)
        return client

    @inlineCallbacks
    def test_createdProxyRelays(self) -> Generator[Any, Any, None]:
        """
        The proxy binds at once, says C{"protocol": "udp"} in its JSON, and
        relays datagrams.
        """
        self.assertIn(self.proxy, self.manager.proxies.values())
        self.assertTrue(self.proxy.enabled)
        self.assertNotEqual(self.proxy.listen, "127.0.0.1:0")
        self.assertEqual({**self.proxy.asJSON(), **protocolField(self.proxy)}["protocol"], "udp")
        client = self.client()
        client.send(1)
        yield poll(lambda: client.received == [1])

    @inlineCallbacks
    def test_toxicActsOnDatagrams(self) -> Generator[Any, Any, None]:
        """
        A C{drop} toxic upstream with loss 1 drops every datagram; removed,
        datagrams flow again.
        """
        toxic = buildToxic(registry(), {
            "name": "loss", "type": "drop", "stream": "upstream",
            "attributes": {"loss_rate": 1}}, set())
        checkBehaviors(self.proxy, [toxic.behavior])
        self.manager.addToxic(self.proxy, toxic)
        client = self.client()
        client.send(1)
        yield poll(lambda: self.proxy.factory.droppedCount[UPSTREAM] == 1)
        self.manager.removeToxic(self.proxy, "loss")
        client.send(2)
        yield poll(lambda: client.received == [2])

    def test_streamToxicRefused(self) -> None:
        """
        A C{bandwidth} toxic is refused for a UDP proxy with a 400 saying
        why.
        """
        toxic = buildToxic(registry(), {"type": "bandwidth", "attributes": {"rate": 100}}, set())
        e = self.assertRaises(ApiError, checkBehaviors, self.proxy, [toxic.behavior])
        self.assertEqual(e.status, 400)
        self.assertIn("bandwidth cannot act on UDP proxy udp_echo: it paces a byte "
                      "stream; use rate_limit", e.message)

    @inlineCallbacks
    def test_disableUnbindsAndEndsSessions(self) -> Generator[Any, Any, None]:
        """
        Disabled, the proxy unbinds and ends its sessions; enabled again it
        binds the same port.
        """
        client = self.client()
        client.send(1)
        yield poll(lambda: client.received == [1])
        listen = self.proxy.listen
        yield self.manager.setEnabled(self.proxy, False)
        self.assertEqual(self.proxy.factory.sessions, {})
        self.assertEqual(self.proxy.service.ports, [])
        yield self.manager.setEnabled(self.proxy, True)
        self.assertEqual(self.proxy.listen, listen)
        client.send(2)
        yield poll(lambda: client.received == [1, 2])

    @inlineCallbacks
    def test_vaurienConnectionsAndMetrics(self) -> Generator[Any, Any, None]:
        """
        Vaurien's connection list shows the session's peer, and the
        metrics count datagrams per direction and outcome, next to the
        control server's own metrics.
        """
        client = self.client()
        for n in range(3):
            client.send(n)
        yield poll(lambda: len(client.received) == 3)
        (connection,), more = describeConnections(self.proxy)
        self.assertFalse(more)
        self.assertEqual(connection["peer"].split(":")[0], "127.0.0.1")
        self.assertEqual(connection["scope"], "connection")
        text = Metrics(self.manager).render()[0].decode()
        self.assertIn('txvaurien_proxy_bytes_total{direction="upstream",proxy="udp_echo"} 48.0',
                      text)
        metrics = CollectorRegistry()
        metrics.register(DatagramCollector(self.manager))
        text = generate_latest(metrics).decode()
        self.assertIn('txvaurien_udp_datagrams_total{direction="upstream",outcome="received",'
                      'proxy="udp_echo"} 3.0', text)
        self.assertIn('txvaurien_udp_datagrams_total{direction="downstream",outcome="sent",'
                      'proxy="udp_echo"} 3.0', text)
        self.assertIn('txvaurien_udp_sessions_active{proxy="udp_echo"} 1.0', text)

    def test_nameTakenAndBadAddresses(self) -> None:
        """
        A taken name is a 409; a bad listen or upstream a 400 naming the
        field.
        """
        e = self.assertRaises(ApiError, createDatagramProxy, self.manager, "udp_echo",
                              "127.0.0.1:0", "127.0.0.1:53")
        self.assertEqual(e.status, 409)
        e = self.assertRaises(ApiError, udpUpstream, "localhost:53")
        self.assertEqual(e.status, 400)
        self.assertIn("upstream: ", e.message)
        self.assertIn("must be an IP address", e.message)
        e = self.assertRaises(ApiError, udpListen, "nowhere")
        self.assertIn("listen: expected HOST:PORT", e.message)
        self.assertEqual(udpListen(":5353"), "udp:5353:interface=127.0.0.1")
        self.assertEqual(udpListen("[::1]:53"), "udp:53:interface=\\:\\:1")
