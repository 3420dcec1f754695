"""
In-memory harness for the proxy core: a L{MemoryReactorClock}, a client
connection on a L{MemoryTransport}, and the backend connection the proxy
asked the reactor for, completed by hand.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from txvaurien.endpoints import TCPBackend
from txvaurien.proxy import ProxyServerFactory
from txvaurien.randomness import RandomSource
from txvaurien.registry import Registry
from txvaurien.table import CONNECTION_SCOPE, buildTable
from txvaurien.test import plugins


class MemoryTransport(StringTransport):
    """
    A L{StringTransport} that records half-closes and TCP_NODELAY.
    """

    writeClosed = False
    noDelay = False

    def __init__(self, port: int = 40000) -> None:
        StringTransport.__init__(
            self, peerAddress=IPv4Address("TCP", "127.0.0.1", port), lenient=True
        )

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled


def testRegistry() -> Registry:
    """
    The built-ins plus the test-only plugins, and no third-party ones.
    """
    registry = Registry.discover(thirdParty=False)
    for behavior in (plugins.SlowDown(), plugins.Swallow(), plugins.Closer()):
        registry.behaviors.add(behavior)
    registry.protocols.add(plugins.Lines())
    return registry


class Side:
    """
    One end of a proxied connection in memory: a protocol and its
    transport.
    """

    def __init__(self, protocol: Any, transport: MemoryTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def received(self) -> bytes:
        """
        What the proxy wrote to this side so far (and forget it).
        """
        value = self.transport.value()
        self.transport.clear()
        return value

    def halfClose(self) -> None:
        self.protocol.readConnectionLost()

    def lose(self, reason: Failure | None = None) -> None:
        self.protocol.connectionLost(reason or Failure(ConnectionDone()))


class Harness:
    """
    A proxy running on a L{MemoryReactorClock}.
    """

    def __init__(
        self,
        behavior: str = "100:dummy",
        protocol: str = "tcp",
        scope: str = CONNECTION_SCOPE,
        settings: dict[str, dict[str, Any]] | None = None,
        seed: int = 1,
        idleTimeout: float | None = None,
    ) -> None:
        self.reactor = MemoryReactorClock()
        self.registry = testRegistry()
        self.handler = self.registry.protocols.get(protocol).configure({})
        self.table = buildTable(behavior, self.registry, settings, scope)
        self.factory = ProxyServerFactory(
            TCPBackend(self.reactor, "127.0.0.1", 6379),
            self.handler,
            self.table,
            self.reactor,
            RandomSource(seed),
            idleTimeout=idleTimeout,
        )

    def accept(self, port: int = 40000) -> Side:
        """
        A client connects.
        """
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        transport = MemoryTransport(port)
        protocol.makeConnection(transport)
        return Side(protocol, transport)

    def backendConnects(self, index: int = -1) -> Side:
        """
        The backend accepts the proxy's connection attempt number C{index}.
        """
        factory = self.reactor.tcpClients[index][2]
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6379))
        transport = MemoryTransport(6379)
        protocol.makeConnection(transport)
        return Side(protocol, transport)

    def backendFails(self, reason: Failure, index: int = -1) -> None:
        """
        The proxy's connection attempt number C{index} fails.
        """
        connector = self.reactor.connectors[index]
        self.reactor.tcpClients[index][2].clientConnectionFailed(connector, reason)

    def pair(self) -> tuple[Side, Side]:
        """
        A client connected and its backend connection made.
        """
        client = self.accept()
        return client, self.backendConnects()


def listenProxy(
    case: Any,
    backendPort: int,
    behavior: str = "100:dummy",
    protocol: str = "tcp",
    settings: dict[str, dict[str, Any]] | None = None,
    protocolSettings: dict[str, Any] | None = None,
    scope: str | None = None,
    seed: int = 1,
    splice: bool = True,
    reactor: Any = None,
) -> Any:
    """
    Run a proxy on the real reactor, listening on an ephemeral port of
    127.0.0.1 and forwarding to C{127.0.0.1:backendPort}; it is stopped
    (port closed, connections dropped) when the test ends.

    @param case: the running L{twisted.trial.unittest.TestCase}.
    @param settings: behavior name to option values.
    @param scope: C{"connection"}, C{"request"} or L{None} for the
        protocol's default.
    @return: the L{ProxyServerFactory}; its C{port} attribute is the port
        number to connect to.
    """
    if reactor is None:
        from twisted.internet import reactor
    registry = testRegistry()
    handler = registry.protocols.get(protocol).configure(protocolSettings or {})
    if scope is None:
        scope = "request" if handler.framesRequests else CONNECTION_SCOPE
    table = buildTable(behavior, registry, settings, scope)
    factory = ProxyServerFactory(
        TCPBackend(reactor, "127.0.0.1", backendPort), handler, table, reactor,
        RandomSource(seed), splice=splice)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    factory.port = port.getHost().port
    case.addCleanup(port.stopListening)
    case.addCleanup(lambda: factory.drain(0))
    return factory
