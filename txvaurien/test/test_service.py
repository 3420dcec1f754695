"""
Tests for L{txvaurien.service}: embedding a chaos proxy in a Twisted
application, and stopping it gracefully.
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.application.service import MultiService
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.protocols.basic import LineReceiver
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from txvaurien.config import ConfigurationError
from txvaurien.service import ProxyService, _pinPort, makeProxyService
from txvaurien.test.servers import listenBackend


class Echo(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line)


class Client(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.waiting: defer.Deferred | None = None
        self.closed: defer.Deferred = defer.Deferred()

    def ask(self, line: bytes) -> defer.Deferred:
        self.waiting = defer.Deferred()
        self.sendLine(line)
        return self.waiting

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.callback(line)

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(None)


class EmbeddingTests(TestCase):
    """
    A proxy service inside an application's own L{MultiService}, on the
    real reactor.
    """

    timeout = 30

    def setUp(self) -> None:
        self.backendPort = listenBackend(self, protocol.Factory.forProtocol(Echo))

    def makeApplication(self, **values: Any) -> tuple[MultiService, ProxyService]:
        application = MultiService()
        service = makeProxyService(
            backend="127.0.0.1:{}".format(self.backendPort),
            proxy=["tcp:0:interface=127.0.0.1"],
            log_level="warn",
            **values)
        service.setServiceParent(application)
        application.startService()
        self.addCleanup(lambda: application.running and application.stopService())
        proxy = service.getServiceNamed("proxy")
        return application, proxy

    @defer.inlineCallbacks
    def connect(self, proxy: ProxyService) -> Generator[Any, Any, Any]:
        client = Client()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.addresses[0].port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        return client

    @defer.inlineCallbacks
    def test_embeddedProxyForwards(self) -> Generator[Any, Any, None]:
        """
        A service from L{makeProxyService}, added to an application's
        MultiService, proxies to the backend with the behaviors and options
        given as keyword arguments.
        """
        _, proxy = self.makeApplication(
            behavior="100:dummy", timeout=3)
        self.assertEqual(proxy.factory.connectTimeout, 3.0)
        client = yield self.connect(proxy)
        answer = yield client.ask(b"hello embedded")
        self.assertEqual(answer, b"hello embedded")
        client.transport.loseConnection()
        yield client.closed

    def test_badValuesRefused(self) -> None:
        """
        Keyword arguments are checked like the command line, and refused
        with the library's own L{ConfigurationError} (a L{ValueError}), not
        the command line's L{UsageError}.
        """
        for values in [{"timeout": 0}, {"behavior": "101:dummy"}, {"bakend": "h:2"}]:
            with self.assertRaises(ConfigurationError) as caught:
                makeProxyService(backend="h:1", **values)
            self.assertIsInstance(caught.exception, ValueError)
            self.assertNotIsInstance(caught.exception, UsageError)

    @defer.inlineCallbacks
    def test_stopLetsConnectionsFinish(self) -> Generator[Any, Any, None]:
        """
        Stopping the service closes its port at once, but a live connection
        keeps working during the grace period; the stop completes when it
        closes.
        """
        application, proxy = self.makeApplication(shutdown_grace=20)
        client = yield self.connect(proxy)
        port = proxy.addresses[0].port
        stopped = application.stopService()
        self.assertNoResult(stopped)
        answer = yield client.ask(b"still served")
        self.assertEqual(answer, b"still served")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        yield self.assertFailure(
            endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol)),
            ConnectionRefusedError)
        client.transport.loseConnection()
        yield stopped

    @defer.inlineCallbacks
    def test_stopClosesAfterGrace(self) -> Generator[Any, Any, None]:
        """
        A connection still open when the grace period ends is closed by the
        proxy.
        """
        application, proxy = self.makeApplication(shutdown_grace=0.2)
        client = yield self.connect(proxy)
        yield application.stopService()
        yield client.closed

    @defer.inlineCallbacks
    def test_restartListensOnSamePort(self) -> Generator[Any, Any, None]:
        """
        After C{stopListening}, C{startListening} binds the port it had,
        even if it was first given as port 0.
        """
        _, proxy = self.makeApplication()
        port = proxy.addresses[0].port
        yield proxy.stopListening()
        self.assertEqual(proxy.ports, [])
        proxy.startListening()
        self.assertEqual(proxy.addresses[0].port, port)
        client = yield self.connect(proxy)
        answer = yield client.ask(b"again")
        self.assertEqual(answer, b"again")
        client.transport.loseConnection()
        yield client.closed


class PinPortTests(TestCase):
    """
    L{_pinPort} fixes an ephemeral TCP port in an endpoint string.
    """

    def test_pinPort(self) -> None:
        """
        Port 0, positional or keyword, is replaced; other endpoints are left
        alone.
        """
        self.assertEqual(_pinPort("tcp:0:interface=127.0.0.1", 4242),
                         "tcp:4242:interface=127.0.0.1")
        self.assertEqual(_pinPort("tcp6:port=0:interface=\\:\\:1", 4242),
                         "tcp6:port=4242:interface=\\:\\:1")
        self.assertEqual(_pinPort("tcp:8000", 8000), "tcp:8000")
        self.assertEqual(_pinPort("unix:/tmp/x", None), "unix:/tmp/x")


class EnabledTests(TestCase):
    """
    L{ProxyService.enabled}.
    """

    def test_disabledDoesNotListen(self) -> None:
        """
        A disabled service starts without listening; C{startListening}
        binds later.
        """
        from twisted.internet.testing import MemoryReactorClock

        from txvaurien.test.helpers import Harness

        memory = MemoryReactorClock()
        service = ProxyService(Harness().factory, ["tcp:7001"], memory)
        service.enabled = False
        service.startService()
        self.assertEqual((memory.tcpServers, service.ports), ([], []))
        service.startListening()
        self.assertEqual([p[0] for p in memory.tcpServers], [7001])
