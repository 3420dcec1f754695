"""
The C{dns} handler against a real DNS server (Twisted Names, C{twistd dns}
with a zone file the test writes) and real clients: C{dig} (Debian's
C{bind9-dnsutils}) and Twisted's resolver, through the UDP proxy and,
for DNS over TCP, through the stream proxy.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any, Generator

from twisted.internet import defer, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.names import client, error as dnserror
from twisted.trial.unittest import TestCase

from txvaurien.datagram.service import makeDatagramService
from txvaurien.frames import UPSTREAM
from txvaurien.test.controlhelpers import TWISTD, childEnvironment
from txvaurien.test.helpers import listenProxy
from txvaurien.test.servers import ServerProcess, requireBinary, waitForPort
from txvaurien.test.test_datagram_behaviors import registry
from txvaurien.table import buildTable

ZONE = """\
$ORIGIN example.com.
$TTL 300
@   IN SOA ns1.example.com. admin.example.com. 1 3600 600 86400 300
@   IN NS ns1.example.com.
ns1 IN A 127.0.0.1
www IN A 192.0.2.10
"""


def freePort() -> int:
    """
    A port free for both UDP and TCP on 127.0.0.1 (DNS serves both on one
    port).
    """
    while True:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        return port


class DNSCase(TestCase):
    """
    A Twisted Names server for example.com, started for each test.
    """

    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        self.dig = requireBinary("dig", "bind9-dnsutils")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        zone = os.path.join(directory, "example.com.zone")
        with open(zone, "w") as f:
            f.write(ZONE)
        self.serverPort = freePort()
        process = ServerProcess(reactor, [
            sys.executable, "-c", TWISTD, "-n", "--pidfile=", "dns",
            "-i", "127.0.0.1", "-p", str(self.serverPort), "--bindzone", zone,
        ], env=childEnvironment(), path=directory)
        process.start()
        self.addCleanup(process.stop)
        yield waitForPort(reactor, self.serverPort, process=process)

    def udpProxy(self, spec: str = "100:dummy", settings: Any = None,
                 port: int = 0, **protocolSettings: Any) -> Any:
        """
        A UDP proxy with the C{dns} handler in front of the server.
        """
        handler = registry().protocols.get("dns").configure(protocolSettings)
        table = buildTable(spec, registry(), settings or {}, "request")
        service = makeDatagramService(
            ["udp:{}:interface=127.0.0.1".format(port)],
            "udp:127.0.0.1:{}".format(self.serverPort), handler, table, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.proxyPort = service.addresses[0].port
        return service.factory

    @inlineCallbacks
    def digAt(self, port: int, *args: str) -> Generator[Any, Any, tuple[str, int]]:
        """
        Run dig against 127.0.0.1:C{port}; its output and exit status.
        """
        out, err, code = yield getProcessOutputAndValue(
            self.dig, ["-p", str(port), "@127.0.0.1", *args], env=os.environ)
        return (out + err).decode("utf-8", "replace"), code


class DigTests(DNSCase):
    """
    dig through the UDP proxy.
    """

    @inlineCallbacks
    def test_noFaultAnswers(self) -> Generator[Any, Any, None]:
        """
        Without faults dig gets the zone's answer through the proxy.
        """
        self.udpProxy()
        output, code = yield self.digAt(self.proxyPort, "+short", "www.example.com", "A")
        self.assertEqual((output.strip(), code), ("192.0.2.10", 0))

    @inlineCallbacks
    def test_digSeesServfail(self) -> Generator[Any, Any, None]:
        """
        C{error} with the default rcode: dig sees SERVFAIL.
        """
        self.udpProxy("100:error")
        output, _ = yield self.digAt(self.proxyPort, "www.example.com", "A")
        self.assertIn("status: SERVFAIL", output)

    @inlineCallbacks
    def test_digSeesNxdomainForMatchingNameOnly(self) -> Generator[Any, Any, None]:
        """
        C{error} with C{nxdomain} on C{www.*}: dig sees NXDOMAIN for
        www.example.com and the real answer for ns1.example.com.
        """
        self.udpProxy("100:error", rcode="nxdomain", match_name=["www.*"])
        output, _ = yield self.digAt(self.proxyPort, "www.example.com", "A")
        self.assertIn("status: NXDOMAIN", output)
        output, _ = yield self.digAt(self.proxyPort, "+short", "ns1.example.com", "A")
        self.assertEqual(output.strip(), "127.0.0.1")

    @inlineCallbacks
    def test_truncationMakesDigRetryOverTCP(self) -> Generator[Any, Any, None]:
        """
        C{truncated} over UDP makes dig retry over TCP, on the same port,
        where the stream proxy with the same handler passes the query and
        dig gets the answer.
        """
        port = freePort()
        self.udpProxy("100:error", port=port, rcode="truncated")
        stream = listenProxy(self, self.serverPort, protocol="dns")
        tcp = reactor.listenTCP(port, stream, interface="127.0.0.1")
        self.addCleanup(tcp.stopListening)
        output, code = yield self.digAt(port, "www.example.com", "A")
        self.assertIn("Truncated, retrying in TCP mode", output)
        self.assertIn("192.0.2.10", output)
        self.assertIn("(TCP)", output)
        self.assertEqual(code, 0)

    @inlineCallbacks
    def test_dropMakesDigTimeOutAndRetry(self) -> Generator[Any, Any, None]:
        """
        C{drop} of every query: dig times out, retries once (C{+tries=2}),
        and both queries were dropped by the proxy.
        """
        proxy = self.udpProxy("100:drop", {"drop": {"loss_rate": 1, "direction": "upstream"}})
        output, code = yield self.digAt(self.proxyPort, "+tries=2", "+timeout=1",
                                        "www.example.com", "A")
        self.assertIn("timed out", output)
        self.assertNotEqual(code, 0)
        self.assertEqual(proxy.received[UPSTREAM], 2)
        self.assertEqual(proxy.droppedCount[UPSTREAM], 2)

    @inlineCallbacks
    def test_dnsOverTCPThroughStreamProxy(self) -> Generator[Any, Any, None]:
        """
        dig +tcp through the stream proxy with C{error}: SERVFAIL, framed
        by the two-byte length.
        """
        stream = listenProxy(self, self.serverPort, "100:error", protocol="dns")
        output, _ = yield self.digAt(stream.port, "+tcp", "www.example.com", "A")
        self.assertIn("status: SERVFAIL", output)


class ResolverTests(DNSCase):
    """
    Twisted's resolver through the UDP proxy.
    """

    def resolver(self) -> Any:
        return client.Resolver(servers=[("127.0.0.1", self.proxyPort)], reactor=reactor)

    @inlineCallbacks
    def test_answerAndNxdomain(self) -> Generator[Any, Any, None]:
        """
        A query not matched gets the zone's answer; a matched one fails
        with the resolver's NXDOMAIN error.
        """
        self.udpProxy("100:error", rcode="nxdomain", match_type=["AAAA"])
        address = yield self.resolver().getHostByName("www.example.com")
        self.assertEqual(address, "192.0.2.10")
        yield self.assertFailure(self.resolver().lookupIPV6Address("www.example.com"),
                                 dnserror.DomainError)

    @inlineCallbacks
    def test_dropTimesOutAfterRetry(self) -> Generator[Any, Any, None]:
        """
        With every query dropped the resolver times out after retrying
        (two timeouts, two queries seen by the proxy).
        """
        proxy = self.udpProxy("100:drop", {"drop": {"loss_rate": 1, "direction": "upstream"}})
        yield self.assertFailure(
            self.resolver().lookupAddress("www.example.com", timeout=(0.3, 0.3)),
            defer.TimeoutError)
        self.assertEqual(proxy.droppedCount[UPSTREAM], 2)
