# -*- test-case-name: txvaurien.test.test_proxy -*-
"""
The order of exchanges on a connection.

A request and its response make an exchange.  Under request scope an
L{Exchange} holds the behaviors chosen for one request and its stages in
both directions.  L{OrderingMixin} gives L{txvaurien.connection.Connection}
the bookkeeping that keeps protocol order: it opens each message's place in
its Pipe's L{txvaurien.sequencer.Sequencer} (a slot per request upstream
under request scope, a slot per expected response downstream), pairs the
responses of requests written while nothing could act (C{tracked}) with
their places once a fault may act again, and says when the connection is
I{inert} (nothing can act on it).

Pairing itself (which response answers which request) is the protocol
session's: it learns of each request written through C{requestSent}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from txvaurien.frames import REQUEST, RESPONSE, UPSTREAM, DOWNSTREAM, Message
from txvaurien.stage import Stage, chain

if TYPE_CHECKING:
    from txvaurien.pipe import Pipe


class Exchange:
    """
    Under request scope: one request, the behaviors chosen for it and its
    stages in both directions.
    """

    __slots__ = ("request", "behaviors", "stages")

    def __init__(self, request: Message, behaviors: tuple[Any, ...]) -> None:
        self.request = request
        self.behaviors = behaviors
        self.stages: dict[str, Sequence[Stage]] = {}



class OrderingMixin:
    """
    The exchange bookkeeping of a L{txvaurien.connection.Connection}; the
    connection provides C{upstream}, C{downstream}, C{tracked},
    C{_exchanges}, C{requestScope}, C{proxy}, C{clock} and C{choose}.
    """

    if not TYPE_CHECKING:
        __slots__ = ()

    upstream: Pipe
    downstream: Pipe
    tracked: Any
    requestScope: bool
    proxy: Any
    clock: Any
    _exchanges: set[Exchange] | None

    def choose(self, request: Message | None, head: bytes | None = None) -> tuple[Any, ...]:
        raise NotImplementedError()


    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        """
        Under request scope, the exchanges whose faults are still at work
        (request, behaviors chosen for it).
        """
        return tuple(self._exchanges or ())

    def reroute(self) -> None:
        """
        Something a Pipe's path depends on changed: choose both paths
        again.
        """
        inert = self.inert()
        self.upstream.choose(inert)
        self.downstream.choose(inert)

    def sequencerIdle(self, idle: bool) -> None:
        """
        A sequencer became idle (C{True}) or busy.
        """
        self.reroute()

    def inert(self) -> bool:
        """
        Whether no fault can act on this connection now: none on either
        Pipe, no exchange open, nothing waiting for its turn, and, under
        request scope, a table that never chooses one.
        """
        upstream = self.upstream
        downstream = self.downstream
        if upstream.head is not None or downstream.head is not None or self._exchanges:
            return False
        sequencer = upstream.sequencer
        if sequencer is not None and not sequencer.idle:
            return False
        sequencer = downstream.sequencer
        if sequencer is not None and not sequencer.idle:
            return False
        return not self.requestScope or self.proxy.table.inert

    def messageStarted(self, pipe: Pipe, message: Message, head: bytes = b"") -> None:
        """
        A Pipe saw the first frame of C{message}: open its place in the
        output order and, under request scope, choose its behaviors.

        @param head: the bytes of that first frame (what a behavior's
            C{match} may read beyond the framer's metadata).
        """
        if pipe.direction != UPSTREAM:
            return
        message.time = self.clock.seconds()
        tracked = self.tracked
        if tracked:
            # Requests sent while no fault could act are still waiting for
            # their responses: their places come first.
            for request in tracked:
                self.downstream.sequencer.open(request)  # type: ignore[union-attr]
            tracked.clear()
        upstreamSequencer = self.upstream.sequencer
        if upstreamSequencer is not None:
            upstreamSequencer.open(message)
        if message.kind != REQUEST:
            return
        if message.expectsResponse and self.downstream.sequencer is not None:
            self.downstream.sequencer.open(message)
        if self.requestScope:
            behaviors = self.choose(message, head)
            exchange = message.exchange = Exchange(message, behaviors)
            if behaviors:
                exchanges = self._exchanges
                if exchanges is None:
                    exchanges = self._exchanges = set()
                first = not exchanges
                exchanges.add(exchange)
                for direction, side in ((UPSTREAM, self.upstream), (DOWNSTREAM, self.downstream)):
                    exchange.stages[direction] = chain(side, behaviors, message)
                if first:
                    self.reroute()

    def messageEnded(self, pipe: Pipe, message: Message) -> None:
        """
        The last frame of C{message} left its chain.
        """
        if message.kind == RESPONSE and message.request is not None:
            request = message.request
            observers = self.proxy.latencyObservers
            if observers:
                elapsed = self.clock.seconds() - request.time
                for observe in observers:
                    observe(self, request, elapsed)
            exchange = request.exchange
        elif message.kind == REQUEST and not message.expectsResponse:
            exchange = message.exchange
        else:
            return
        exchanges = self._exchanges
        if exchange is not None and exchanges:
            exchanges.discard(exchange)
            if not exchanges:
                self.reroute()



__all__ = ["Exchange", "OrderingMixin"]
