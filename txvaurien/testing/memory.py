# -*- test-case-name: txvaurien.test.test_testing_memory -*-
"""
A chaos proxy in memory, for Twisted client code: your client protocol
talks to your server protocol through txvaurien's proxy and behaviors on a
fake reactor (L{MemoryReactorClock}) and in-memory transports (built on
L{twisted.test.iosim.FakeTransport}).  No sockets, no threads: minutes of
timeouts and retries take milliseconds.

Like C{treq.testing}, you hand the fake reactor to the code under test and
move bytes with L{MemoryChaos.flush} and time with L{MemoryChaos.advance}::

    chaos = MemoryChaos(EchoFactory(), behavior="hang")
    client = MyClient(chaos.reactor, chaos.host, chaos.port, timeout=5)
    d = client.ask(b"hello")
    chaos.advance(5)                 # the client's timeout fires
    failure = self.failureResultOf(d, TimeoutError)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport

from txvaurien.control.managed import ManagedProxy, baseOptions
from txvaurien.testing._core import (
    ChaosUsageError,
    addToxic,
    attachJournal,
    journalEvents,
    newManager,
    setBehavior,
)


class MemoryTransport(FakeTransport):
    """
    One end of an in-memory TCP connection: bytes written wait in
    C{stream} until L{MemoryChaos.flush} hands them to the peer; it honours
    C{pauseProducing} (nothing is delivered to a paused reader), half-close
    (C{loseWriteConnection}: the peer's L{IHalfCloseableProtocol} gets
    C{readConnectionLost}), a clean close (FIN after the buffered bytes)
    and C{abortConnection} (the peer sees L{ConnectionLost}, as after a TCP
    reset, and buffered bytes are lost).
    """

    paused = False
    writeClosed = False
    aborting = False
    eofSent = False
    readClosed = False

    def __init__(self, protocol: Any, isServer: bool, host: IPv4Address,
                 peer: IPv4Address) -> None:
        FakeTransport.__init__(self, protocol, isServer, host, peer)
        self.other: MemoryTransport | None = None
        self.connector: Any = None
        self.clientFactory: Any = None

    def write(self, data: bytes) -> None:
        if not (self.disconnecting or self.writeClosed or self.disconnected):
            self.stream.append(data)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.loseConnection()

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def abortConnection(self) -> None:
        self.aborting = True

    def _finish(self, reason: Exception) -> None:
        self.disconnected = True
        self.protocol.connectionLost(Failure(reason))
        if self.clientFactory is not None:
            lost = getattr(self.clientFactory, "clientConnectionLost", None)
            if lost is not None:
                lost(self.connector, Failure(reason))

    def pump(self) -> bool:
        """
        Move what this end wrote to the other end, and end-of-stream and
        closing across.

        @return: whether anything happened.
        """
        other = self.other
        assert other is not None
        if self.disconnected:
            return False
        if self.aborting:
            self.stream = []
            self._finish(ConnectionAborted())
            if not other.disconnected:
                other.stream = []
                other._finish(ConnectionLost("Connection reset by peer"))
            return True
        if self.stream:
            if other.disconnected:
                # Bytes sent to a closed socket get a reset back.
                self.stream = []
                self._finish(ConnectionLost("Connection reset by peer"))
                return True
            if not (other.paused or other.readClosed):
                data, self.stream = b"".join(self.stream), []
                other.protocol.dataReceived(data)
                return True
        if (self.disconnecting or self.writeClosed) and not self.stream and not self.eofSent:
            self.eofSent = True
            if not other.disconnected:
                if IHalfCloseableProtocol.providedBy(other.protocol):
                    other.readClosed = True
                    other.protocol.readConnectionLost()
                else:
                    other.disconnecting = True
            return True
        if self.eofSent and (self.disconnecting or other.eofSent or other.disconnected):
            self._finish(ConnectionDone())
            return True
        return False


class MemoryChaos:
    """
    A chaos proxy on a fake reactor, between clients that connect to
    L{host}:L{port} on L{reactor} and C{serverFactory}'s protocols.

    @ivar reactor: the L{MemoryReactorClock} to give to the code under
        test (for C{connectTCP}, endpoints and C{callLater}).
    @ivar host: the proxy's address, C{"127.0.0.1"}.
    @ivar port: the proxy's port, 6380 unless given.
    @ivar factory: the L{txvaurien.proxy.ProxyServerFactory}.
    """

    def __init__(
        self,
        serverFactory: Any,
        behavior: str = "100:dummy",
        protocol: str = "tcp",
        seed: int = 1,
        behavior_options: dict[str, dict[str, Any]] | None = None,
        scope: str = "auto",
        port: int = 6380,
        serverPort: int = 6379,
        reactor: MemoryReactorClock | None = None,
    ) -> None:
        """
        @param serverFactory: the server's protocol factory.
        @param behavior: the proxy's behavior table.
        @param protocol: the protocol handler (C{tcp}, C{redis}, ...).
        @param seed: the seed of the proxy's randomness.
        @raise ChaosUsageError: for an unknown behavior, option or protocol.
        """
        from twisted.python.usage import UsageError

        from txvaurien.service import makeProxyService

        self.reactor = reactor if reactor is not None else MemoryReactorClock()
        self.host = "127.0.0.1"
        self.port = port
        self.serverPort = serverPort
        self.serverFactory = serverFactory
        upstream = "{}:{}".format(self.host, serverPort)
        try:
            parent = makeProxyService(
                reactor=self.reactor, backend=upstream, proxy=["tcp:{}".format(port)],
                protocol=protocol, seed=seed, behavior=behavior,
                behavior_options=behavior_options or {}, behavior_scope=scope,
                splice=False, shutdown_grace=0.0)
        except (UsageError, ValueError, LookupError) as e:
            raise ChaosUsageError(str(e)) from None
        service = parent.getServiceNamed("proxy")
        self.factory = service.factory
        self._manager = newManager(self.reactor)
        self._proxy: ManagedProxy = self._manager.adopt(service, upstream, default=False)
        attachJournal(self.factory, self.reactor)
        self.listening = True
        self.transports: list[MemoryTransport] = []
        self._clientPorts = iter(range(40000, 65536))

    @property
    def address(self) -> str:
        """
        C{"host:port"} of the proxy.
        """
        return "{}:{}".format(self.host, self.port)

    # Moving bytes and time

    def flush(self) -> None:
        """
        Complete pending connections and move bytes, end-of-stream and
        closes, running calls due now, until nothing moves.
        """
        for _ in range(100000):
            self.reactor.advance(0)
            moved = self._connectPending()
            for transport in list(self.transports):
                moved = transport.pump() or moved
            self.transports = [t for t in self.transports
                               if not (t.disconnected and t.other is not None
                                       and t.other.disconnected)]
            if not moved:
                return
        raise RuntimeError("MemoryChaos.flush: traffic does not stop (a busy loop?)")

    def advance(self, seconds: float) -> None:
        """
        Move the clock C{seconds} forward, firing each timer at its time
        and flushing after each.
        """
        end = self.reactor.seconds() + seconds
        self.flush()
        while True:
            due = [c.getTime() for c in self.reactor.getDelayedCalls() if c.active()]
            now = self.reactor.seconds()
            if not due or min(due) > end:
                self.reactor.advance(max(0.0, end - now))
                self.flush()
                return
            self.reactor.advance(max(0.0, min(due) - now))
            self.flush()

    def _connectPending(self) -> bool:
        reactor = self.reactor
        if not reactor.tcpClients:
            return False
        pending = list(zip(reactor.tcpClients, reactor.connectors, strict=True))
        del reactor.tcpClients[:], reactor.connectors[:]
        for (host, port, factory, _, _), connector in pending:
            if connector.stoppedConnecting:
                continue
            if port == self.port and self.listening:
                serverFactory: Any = self.factory
            elif port == self.serverPort:
                serverFactory = self.serverFactory
            else:
                factory.clientConnectionFailed(
                    connector, Failure(ConnectionRefusedError("in memory: nothing listens")))
                continue
            clientAddress = IPv4Address("TCP", "127.0.0.1", next(self._clientPorts))
            serverAddress = IPv4Address("TCP", host, port)
            serverProtocol = serverFactory.buildProtocol(clientAddress)
            clientProtocol = factory.buildProtocol(serverAddress)
            if serverProtocol is None or clientProtocol is None:
                continue
            serverTransport = MemoryTransport(serverProtocol, True, serverAddress, clientAddress)
            clientTransport = MemoryTransport(clientProtocol, False, clientAddress, serverAddress)
            serverTransport.other, clientTransport.other = clientTransport, serverTransport
            clientTransport.connector, clientTransport.clientFactory = connector, factory
            self.transports += [clientTransport, serverTransport]
            serverProtocol.makeConnection(serverTransport)
            clientProtocol.makeConnection(clientTransport)
        return True

    # Chaos

    def set_behavior(self, name: str, **options: Any) -> None:
        """
        Give the proxy the behavior C{name} with C{options}.

        @raise ChaosUsageError: for an unknown behavior or option.
        """
        setBehavior(self._manager, self._proxy, name, options)

    @contextmanager
    def behavior(self, name: str, **options: Any) -> Iterator["MemoryChaos"]:
        """
        A context with the behavior C{name}; the previous one comes back on
        exit.
        """
        spec, previous = self._proxy.base.spec, baseOptions(self._proxy)
        self.set_behavior(name, **options)
        try:
            yield self
        finally:
            setBehavior(self._manager, self._proxy, spec, previous)

    @contextmanager
    def toxic(self, type: str, stream: str = "downstream", toxicity: float = 1.0,
              name: str | None = None, **attributes: Any) -> Iterator["MemoryChaos"]:
        """
        A context with a toxic of C{type}, removed on exit.
        """
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                "attributes": attributes}
        if name is not None:
            body["name"] = name
        toxicName = addToxic(self._manager, self._proxy, body)
        try:
            yield self
        finally:
            self._manager.removeToxic(self._proxy, toxicName)

    @contextmanager
    def down(self) -> Iterator["MemoryChaos"]:
        """
        A context in which connecting to the proxy is refused and its live
        connections are closed.
        """
        self.listening = False
        self.factory.closeAll()
        try:
            yield self
        finally:
            self.listening = True

    def connections(self) -> list[Any]:
        """
        The live L{txvaurien.proxy.Connection}s through the proxy.
        """
        return list(self.factory.connections)

    def journal(self) -> list[dict[str, Any]]:
        """
        The faults the proxy injected (its events in the fault journal,
        oldest first).

        @raise NotImplementedError: if this txvaurien has no journal.
        """
        return journalEvents(self.factory, self.factory.name)
