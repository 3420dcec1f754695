"""
Tests of the UDP proxy's addresses, options and service: C{twistd vaurien
--proxy udp:PORT --backend udp:host=H:port=P}, in process and as a child
process.
"""

from __future__ import annotations

import os
import re
import shlex
import textwrap
from typing import Any, Generator

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject
from twisted.application.service import IService

from txvaurien import tap
from txvaurien.datagram.addresses import AddressError, parseUDPBackend, parseUDPListen
from txvaurien.datagram.service import DatagramService, makeDatagramService
from txvaurien.service import makeProxyService
from txvaurien.test.controlhelpers import assertTwistdFails, spawnTwistd
from txvaurien.test.test_datagram_behaviors import registry
from txvaurien.test.test_datagram_integration import Client, Echo, poll
from txvaurien.table import buildTable

UDP_LISTENING = re.compile(rb"Proxy vaurien listening on 127\.0\.0\.1:(\d+), forwarding to udp:")


def parse(*args: str) -> Any:
    config = tap.Options()
    config.parseOptions(list(args))
    return config


class AddressTests(SynchronousTestCase):
    """
    C{udp:} listen and backend strings.
    """

    def test_listenForms(self) -> None:
        """
        C{udp:PORT} and C{udp:PORT:interface=HOST}, IPv6 escaped.
        """
        self.assertEqual(parseUDPListen("udp:5353"), (5353, ""))
        self.assertEqual(parseUDPListen("udp:0:interface=127.0.0.1"), (0, "127.0.0.1"))
        self.assertEqual(parseUDPListen("udp:53:interface=\\:\\:1"), (53, "::1"))

    def test_badListenRefused(self) -> None:
        """
        A port that is not a number, or a host name as interface, is
        refused with a message saying so.
        """
        e = self.assertRaises(AddressError, parseUDPListen, "udp:dns")
        self.assertIn("port 'dns' is not a number", str(e))
        e = self.assertRaises(AddressError, parseUDPListen, "udp:53:interface=localhost")
        self.assertIn("is not an IP address", str(e))

    def test_backendForms(self) -> None:
        """
        C{udp:host=H:port=P} and C{udp:H:P}.
        """
        backend = parseUDPBackend("udp:host=127.0.0.1:port=53")
        self.assertEqual((backend.host, backend.port, backend.interface),
                         ("127.0.0.1", 53, "0.0.0.0"))
        self.assertEqual(parseUDPBackend("udp:\\:\\:1:53").interface, "::")

    def test_backendNameRefused(self) -> None:
        """
        A backend host name is refused: it would have to be resolved.
        """
        e = self.assertRaises(AddressError, parseUDPBackend, "udp:host=localhost:port=53")
        self.assertIn("must be an IP address", str(e))
        e = self.assertRaises(AddressError, parseUDPBackend, "udp:host=127.0.0.1:port=0")
        self.assertIn("out of range", str(e))


class OptionsTests(SynchronousTestCase):
    """
    C{twistd vaurien} options for a UDP proxy.
    """

    def test_udpService(self) -> None:
        """
        A C{udp:} proxy and backend make a L{DatagramService} with the
        C{--udp-*} options.
        """
        config = parse("--proxy", "udp:0:interface=127.0.0.1",
                       "--backend", "udp:host=127.0.0.1:port=53", "--protocol", "dns",
                       "--udp-max-sessions", "7", "--udp-session-timeout", "2.5",
                       "--udp-max-datagram", "512", "--behavior", "50:drop")
        parent = tap.makeService(config, reactor)
        service = parent.getServiceNamed("proxy")
        self.assertIsInstance(service, DatagramService)
        verifyObject(IService, service)
        proxy = service.factory
        self.assertEqual((proxy.maxSessions, proxy.sessionTimeout, proxy.maxDatagram),
                         (7, 2.5, 512))
        self.assertEqual(proxy.handler.name, "dns")
        self.assertEqual(proxy.table.scope, "request")

    def test_streamBehaviorRefused(self) -> None:
        """
        A stream-only behavior on a UDP proxy is a usage error naming it.
        """
        e = self.assertRaises(
            UsageError, parse, "--proxy", "udp:5353",
            "--backend", "udp:host=127.0.0.1:port=53", "--behavior", "slow_open")
        self.assertIn("slow_open cannot act on a UDP proxy", str(e))

    def test_datagramBehaviorRefusedOnTCP(self) -> None:
        """
        C{reorder} on a TCP proxy is a usage error.
        """
        e = self.assertRaises(UsageError, parse, "--backend", "127.0.0.1:6379",
                              "--behavior", "reorder")
        self.assertIn("reorder acts on UDP datagrams only", str(e))

    def test_mismatchedTransportsRefused(self) -> None:
        """
        A UDP proxy needs a UDP backend, a TCP proxy a TCP one, and one
        proxy cannot mix both.
        """
        e = self.assertRaises(UsageError, parse, "--proxy", "udp:5353",
                              "--backend", "127.0.0.1:53")
        self.assertIn("needs a UDP backend", str(e))
        e = self.assertRaises(UsageError, parse, "--backend", "udp:host=127.0.0.1:port=53")
        self.assertIn("listen with --proxy udp:PORT", str(e))
        e = self.assertRaises(UsageError, parse, "--proxy", "udp:5353", "--proxy", "5354",
                              "--backend", "udp:host=127.0.0.1:port=53")
        self.assertIn("cannot be mixed", str(e))

    def test_badBackendIsUsageError(self) -> None:
        """
        A UDP backend with a host name is a usage error, not a traceback.
        """
        e = self.assertRaises(UsageError, parse, "--proxy", "udp:5353",
                              "--backend", "udp:host=dns.example:port=53")
        self.assertIn("must be an IP address", str(e))


class ServiceTests(TestCase):
    """
    The service on the real reactor.
    """

    @inlineCallbacks
    def test_listensLogsAndForwards(self) -> Generator[Any, Any, None]:
        """
        Started, the service binds, logs the same line as the TCP proxy
        (with the bound port), and relays datagrams; stopped, it ends its
        sessions.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        echo = reactor.listenUDP(0, Echo(), interface="127.0.0.1")
        self.addCleanup(echo.stopListening)
        service = makeDatagramService(
            ["udp:0:interface=127.0.0.1"], "udp:127.0.0.1:{}".format(echo.getHost().port),
            registry().protocols.get("tcp"), buildTable("100:dummy", registry()), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = service.addresses[0].port
        lines = [formatEvent(e) for e in events]
        self.assertIn(
            "Proxy vaurien listening on 127.0.0.1:{}, forwarding to udp:127.0.0.1:{}".format(
                port, echo.getHost().port),
            "\n".join(lines))
        client = Client(("127.0.0.1", port))
        clientPort = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(clientPort.stopListening)
        client.send(42)
        yield poll(lambda: client.received == [42])
        yield service.stopService()
        self.assertEqual(service.factory.sessions, {})

    def test_embedding(self) -> None:
        """
        L{makeProxyService} takes the same C{udp:} options.
        """
        parent = makeProxyService(
            reactor, proxy=["udp:0:interface=127.0.0.1"],
            backend="udp:host=127.0.0.1:port=53", behavior="100:duplicate",
            udp_max_sessions=3)
        service = parent.getServiceNamed("proxy")
        self.assertEqual(service.factory.maxSessions, 3)


class TwistdTests(TestCase):
    """
    C{twistd -n vaurien} with a UDP proxy, as a child process.
    """

    timeout = 60

    @inlineCallbacks
    def test_twistdRelaysDatagrams(self) -> Generator[Any, Any, None]:
        """
        The child logs its listening line, then relays datagrams to the
        echo server.
        """
        echo = reactor.listenUDP(0, Echo(), interface="127.0.0.1")
        self.addCleanup(echo.stopListening)
        port, _ = yield spawnTwistd(self, [
            "--proxy", "udp:0:interface=127.0.0.1",
            "--backend", "udp:host=127.0.0.1:port={}".format(echo.getHost().port),
        ], UDP_LISTENING)
        client = Client(("127.0.0.1", port))
        clientPort = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(clientPort.stopListening)
        client.send(7)
        yield poll(lambda: client.received == [7])

    def test_twistdRefusesStreamBehavior(self) -> Any:
        """
        A stream behavior on a UDP proxy makes twistd exit with an error
        naming it, and no traceback.
        """
        return assertTwistdFails(self, [
            "--proxy", "udp:0:interface=127.0.0.1",
            "--backend", "udp:host=127.0.0.1:port=53", "--behavior", "20:hang",
        ], b"hang cannot act on a UDP proxy")


DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs", "datagrams.rst")


def commands(text: str) -> list[list[str]]:
    """
    The arguments after C{vaurien} of every C{twistd ... vaurien} command
    in C{text}, continuation lines joined.
    """
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip().lstrip("$ ")
        if not line.startswith("twistd"):
            continue
        words = shlex.split(line.split("#")[0].rstrip("& "))
        found.append(words[words.index("vaurien") + 1:])
    return found


class DocsTests(SynchronousTestCase):
    """
    The examples of docs/datagrams.rst and of the datagram behaviors'
    docstrings are valid.
    """

    def test_commandLinesParse(self) -> None:
        """
        Every C{twistd vaurien} command of the page parses, except the one
        shown failing, which fails with the message shown.
        """
        with open(DOCS) as f:
            text = f.read()
        found = commands(text)
        self.assertGreaterEqual(len(found), 7)
        for args in found:
            if "20:slicer" in args:
                e = self.assertRaises(UsageError, parse, *args)
                self.assertIn("behavior slicer cannot act on a UDP proxy: it cuts a byte "
                              "stream into pieces; use truncate", str(e))
            else:
                parse(*args)

    def test_docstringExamplesParse(self) -> None:
        """
        The examples in the docstrings of the datagram behaviors and of
        the dns handler parse.
        """
        import inspect
        from txvaurien.behaviors import drop, duplicate, rate_limit, reorder, truncate
        from txvaurien.protocols import dns

        for obj in (drop.Drop, duplicate.Duplicate, rate_limit.RateLimit,
                    reorder.Reorder, truncate.Truncate, dns.DNS):
            for args in commands(inspect.getdoc(obj) or ""):
                parse(*args)

    def test_pythonExampleRuns(self) -> None:
        """
        The embedding example builds a service bound to nothing yet.
        """
        with open(DOCS) as f:
            text = f.read()
        block = text.split(".. code-block:: python\n", 1)[1].split("\nPerformance", 1)[0]
        code = textwrap.dedent(block)
        namespace: dict[str, Any] = {}
        exec(compile(code, DOCS, "exec"), namespace)
        service = namespace["service"]
        self.assertIsInstance(service, DatagramService)
        self.assertEqual(service.factory.sessionTimeout, 30.0)
        self.assertEqual(service.factory.handler.settings["rcode"], "nxdomain")
