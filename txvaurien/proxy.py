# -*- test-case-name: txvaurien.test.test_proxy -*-
"""
The proxy's two protocol/factory pairs.

::

    client -> ProxyServer --(upstream Pipe)--> ProxyClient -> backend
    client <- ProxyServer <-(downstream Pipe)- ProxyClient <- backend
                     `-------- Connection --------'

A L{ProxyServerFactory} accepts clients.  Each gets a L{ProxyServer} and a
L{txvaurien.connection.Connection}, which keeps the client paused until a
L{ProxyClientFactory} has connected to the backend.  Then each direction is
a L{txvaurien.pipe.Pipe}.  Both protocols only hand events to their
Connection: bytes to a Pipe, end of stream and loss to its lifecycle
(L{txvaurien.lifecycle}).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs
from txvaurien.connection import Connection, _peer
from txvaurien.frames import Message
from txvaurien.pipe import ByteCount, Pipe
from txvaurien.randomness import RandomSource
from txvaurien.stage import Stage

_log = logs.logger("txvaurien.proxy")

#: How many live connections take a new behavior table per reactor turn.
ADOPT_SLICE = 50

#: Seconds a half-closed connection may stay without traffic, by default.
HALF_CLOSED_TIMEOUT = 300.0


@implementer(IHalfCloseableProtocol)
class ProxyServer(Protocol):
    """
    The client side of a proxied connection.

    @ivar connection: its L{Connection}.
    """

    connection: Connection

    def connectionMade(self) -> None:
        self.connection = self.factory.connectionMade(self)
        self.connection.start()

    def dataReceived(self, data: bytes) -> None:
        self.connection.upstream.dataReceived(data)

    def readConnectionLost(self) -> None:
        self.connection.upstream.eofReceived()

    def writeConnectionLost(self) -> None:
        self.connection.downstream.sinkWriteClosed()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.connection.clientLost(reason)


@implementer(IHalfCloseableProtocol)
class ProxyClient(Protocol):
    """
    The backend side of a proxied connection.
    """

    connection: Connection

    def connectionMade(self) -> None:
        self.connection.backendConnected(self)

    def dataReceived(self, data: bytes) -> None:
        self.connection.downstream.dataReceived(data)

    def readConnectionLost(self) -> None:
        self.connection.downstream.eofReceived()

    def writeConnectionLost(self) -> None:
        self.connection.upstream.sinkWriteClosed()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        if self.connection.backend is self:
            self.connection.backendLost(reason)


class ProxyClientFactory(ClientFactory):
    """
    Connects one L{Connection} to the backend.
    """

    noisy = False
    protocol = ProxyClient

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def buildProtocol(self, addr: Any) -> ProxyClient:
        protocol = ProxyClient()
        protocol.factory = self
        protocol.connection = self.connection
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.connection.backendFailed(reason)


class ProxyServerFactory(Factory):
    """
    Accepts clients and proxies each to the backend.

    @ivar name: the proxy's name, in logs and metrics.
    @ivar backend: where to connect (see L{txvaurien.endpoints}).
    @ivar handler: the configured L{txvaurien.interfaces.IProtocolHandler}.
    @ivar table: the L{txvaurien.table.BehaviorTable}.
    @ivar reactor: the reactor (and clock) to use.
    @ivar random: the L{RandomSource}.
    @ivar connectTimeout: seconds to wait for the backend.
    @ivar idleTimeout: seconds without traffic before a connection is
        closed, or L{None}.
    @ivar splice: whether to forward with C{splice(2)} where possible.
    @ivar halfClosedTimeout: seconds a half-closed connection (one
        direction ended) may go without traffic before it is closed, or
        L{None} for no bound.
    @ivar tableVersion: how many times the table was replaced.
    @ivar connections: the live L{Connection}s (the keys, oldest first).
    @ivar accepted: how many clients were accepted.
    @ivar backendFailures: how many backend connections failed.
    @ivar decisions: behavior name to how many times it was chosen.
    @ivar upCount: the L{ByteCount} of client-to-backend bytes of every
        connection, live ones included (C{bytesUp}).
    @ivar downCount: that of backend-to-client bytes (C{bytesDown}).
    @ivar latencyObservers: callables given C{(connection, request,
        seconds)} each time the last frame of a response leaves the proxy,
        seconds measured from the request's first bytes.
    """

    protocol = ProxyServer
    clientFactory = ProxyClientFactory
    noisy = False
    #: The L{txvaurien.journal.Journal} faults record their actions in, or
    #: L{None} (they are only logged).
    journal: Any = None
    #: The L{txvaurien.scenario} runner changing this proxy's table, if any.
    scenario: Any = None

    def __init__(
        self,
        backend: Any,
        handler: Any,
        table: Any,
        reactor: Any,
        random: RandomSource | None = None,
        name: str = "vaurien",
        connectTimeout: float = 30.0,
        idleTimeout: float | None = None,
        splice: bool = True,
        halfClosedTimeout: float | None = HALF_CLOSED_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.handler = handler
        self.table = table
        self.reactor = reactor
        self.random = random or RandomSource()
        self.name = name
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.splice = splice
        self.halfClosedTimeout = halfClosedTimeout
        self.tableVersion = 0
        self._pending: list[Connection] = []
        self._passVersion = 0
        self._adoptCall: Any = None
        # Ordered by start, which is id order: a listing pages through it
        # without sorting.
        self.connections: dict[Connection, None] = {}
        self.accepted = 0
        self.backendFailures = 0
        self.decisions: dict[str, int] = {}
        self.latencyObservers: list[Callable[[Connection, Message, float], None]] = []
        self.upCount = ByteCount()
        self.downCount = ByteCount()
        self._ids = itertools.count()
        self._drained: list[Deferred] = []

    @property
    def bytesUp(self) -> int:
        """
        Bytes read from clients, by every connection, live ones included.
        """
        return self.upCount.total

    @property
    def bytesDown(self) -> int:
        """
        Bytes read from the backend, by every connection, live ones
        included.
        """
        return self.downCount.total

    def connectionMade(self, protocol: ProxyServer) -> Connection:
        """
        Make the L{Connection} for a new client.
        """
        self.accepted += 1
        return Connection(self, protocol, next(self._ids))

    def connectionFinished(self, connection: Connection) -> None:
        """
        A connection ended; log it with its byte counts.
        """
        self.connections.pop(connection, None)
        up, down = connection.upstream.nbytes, connection.downstream.nbytes
        if not logs.isEnabled(LogLevel.info):
            return self._notifyIdle()
        _log.info(
            "{proxy} #{cid} {peer} closed after {duration:.3f}s: "
            "{up} bytes up, {down} bytes down, {injected} injected ({why})",
            proxy=self.name,
            cid=connection.id,
            peer=_peer(connection.client.transport),
            duration=self.reactor.seconds() - connection.opened,
            up=up,
            down=down,
            injected=connection.upstream.injected + connection.downstream.injected,
            why=connection.reason or "closed",
            event="closed",
        )
        self._notifyIdle()

    def _notifyIdle(self) -> None:
        if not self.connections:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def setTable(self, table: Any) -> None:
        """
        Use a new behavior table; live connections see the change.

        Connections take it in slices of L{ADOPT_SLICE} per reactor turn
        (the first slice at once), so a change costs the reactor the same
        whatever the number of live connections; a change made while
        earlier ones are still being taken starts no new work, and every
        connection ends with the newest table.
        """
        self.table = table
        self.tableVersion += 1
        if self._adoptCall is None:
            self._adoptSlice()

    def _adoptSlice(self) -> None:
        self._adoptCall = None
        version = self.tableVersion
        pending = self._pending
        if not pending:
            if self._passVersion == version:
                return
            self._passVersion = version
            pending = self._pending = list(self.connections)
        budget = ADOPT_SLICE
        seen = ADOPT_SLICE * 16
        while pending and budget and seen:
            connection = pending.pop()
            seen -= 1
            if connection.tableVersion != version and not connection.closing:
                budget -= 1
                connection.adoptTable()
        if pending or self._passVersion != self.tableVersion:
            self._adoptCall = self.reactor.callLater(0, self._adoptSlice)

    def closeAll(self) -> None:
        """
        Close every live connection (FIN, after buffered data).
        """
        for connection in list(self.connections):
            connection.reason = connection.reason or "proxy stopping"
            connection.close()

    def abortAll(self) -> None:
        """
        Drop every live connection at once.
        """
        for connection in list(self.connections):
            connection.reason = connection.reason or "proxy stopped"
            connection.abort()

    def whenIdle(self) -> Deferred:
        """
        A L{Deferred} that fires once no connection is left (at once if
        none is).
        """
        if not self.connections:
            return succeed(None)
        d: Deferred = Deferred()
        self._drained.append(d)
        return d

    def drain(self, grace: float) -> Deferred:
        """
        Let live connections finish for up to C{grace} seconds, then close
        them, and drop any still open a second later.

        @return: a L{Deferred} that fires when no connection is left.
        """
        if not self.connections:
            return succeed(None)
        d = self.whenIdle()
        if grace > 0:
            _log.info(
                "{proxy}: waiting up to {grace}s for {count} connections",
                proxy=self.name,
                grace=grace,
                count=len(self.connections),
            )
        closer = self.reactor.callLater(grace, self.closeAll)
        aborter = self.reactor.callLater(grace + 1.0, self.abortAll)

        def cancelTimers(result: Any) -> Any:
            for call in (closer, aborter):
                if call.active():
                    call.cancel()
            return result

        return d.addBoth(cancelTimers)




__all__ = [
    "ADOPT_SLICE",
    "Connection",
    "HALF_CLOSED_TIMEOUT",
    "Pipe",
    "ProxyClient",
    "ProxyClientFactory",
    "ProxyServer",
    "ProxyServerFactory",
    "Stage",
]
