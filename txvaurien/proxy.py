# -*- test-case-name: txvaurien.test.test_proxy -*-
"""
The proxy core: where bytes flow.

::

    client -> ProxyServer --(upstream Pipe)--> ProxyClient -> backend
    client <- ProxyServer <-(downstream Pipe)- ProxyClient <- backend
                     `-------- Connection --------'

A L{ProxyServerFactory} accepts clients.  Each gets a L{ProxyServer} and a
L{Connection}, which keeps the client paused until a L{ProxyClientFactory}
has connected to the backend.  Then each direction is a L{Pipe}: registered
as the streaming producer of its sink transport, it pauses its source when
the sink is full, so a slow side throttles the fast one.

A Pipe with no fault and a passthrough protocol writes what it reads
straight to the sink, or has a L{txvaurien.splice.Splicer} move it inside
the kernel.  Otherwise its framer cuts the stream into frames that pass
through a chain of L{Stage}s, one per fault, to the sink, with a
L{txvaurien.sequencer.Sequencer} keeping messages in protocol order.

End of stream is carried across: EOF from one side becomes a half-close of
the other once its Pipe has delivered everything before it.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet.defer import CancelledError, Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs, splice
from txvaurien.frames import (
    CLOSE_AFTER,
    DOWNSTREAM,
    REQUEST,
    RESPONSE,
    UPSTREAM,
    Frame,
    Message,
)
from txvaurien.interfaces import IConnection, IStage
from txvaurien.randomness import RandomSource
from txvaurien.sequencer import Sequencer
from txvaurien.table import REQUEST as REQUEST_SCOPE

_log = logs.logger("txvaurien.proxy")

# Reasons a Pipe's source is paused; any one set keeps it paused.
_CONNECTING = 1
_SINK_FULL = 2
_SPLICE_BLOCKED = 4
_SEQUENCER_FULL = 8


@implementer(IStage)
class Stage:
    """
    A fault's place in a Pipe (L{IStage}).
    """

    __slots__ = ("pipe", "behavior", "message", "fault", "next", "paused")

    def __init__(self, pipe: Pipe, behavior: Any, message: Message | None) -> None:
        self.pipe = pipe
        self.behavior = behavior
        self.message = message
        self.fault: Any = None
        self.next: Stage | None = None
        self.paused = 0

    @property
    def direction(self) -> str:
        return self.pipe.direction

    @property
    def connection(self) -> Connection:
        return self.pipe.connection

    def forward(self, frame: Frame) -> None:
        nxt = self.next
        if nxt is None:
            self.pipe.emit(frame)
        else:
            nxt.fault.frameReceived(frame)

    def drop(self, frame: Frame) -> None:
        self.pipe.discard(frame)

    def forwardEOF(self) -> None:
        nxt = self.next
        if nxt is None:
            self.pipe.eofAtEnd()
        else:
            nxt.fault.eofReceived()

    def pauseSource(self) -> None:
        self.paused += 1
        self.pipe.pauseStage()

    def resumeSource(self) -> None:
        if self.paused:
            self.paused -= 1
            self.pipe.resumeStage()

    def release(self) -> None:
        """
        Undo this stage's outstanding pauses (its fault is leaving).
        """
        while self.paused:
            self.resumeSource()


def _chain(
    pipe: Pipe,
    behaviors: tuple[Any, ...],
    message: Message | None,
    reuse: dict[Any, Stage] | None = None,
) -> Sequence[Stage]:
    """
    Build the stages of C{behaviors} acting on C{pipe}'s direction, linked
    in order.

    @param reuse: stages of the chain being replaced, by behavior: a
        behavior still present keeps its stage and fault (and their state:
        counts, timers, held frames) instead of getting new ones.
    """
    if not behaviors:
        return ()
    stages: list[Stage] = []
    for behavior in behaviors:
        direction = behavior.settings.get("direction", "both")
        if direction != "both" and direction != pipe.direction:
            continue
        stage = reuse.pop(behavior, None) if reuse else None
        if stage is not None:
            stage.next = None
        else:
            stage = Stage(pipe, behavior, message)
            fault = behavior.buildFault(stage)
            if fault is None:
                continue
            stage.fault = fault
        if stages:
            stages[-1].next = stage
        stages.append(stage)
    return stages


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


@implementer(IPushProducer)
class Pipe:
    """
    One direction of a connection: from a source transport to a sink
    transport, through the faults acting on it.

    The Pipe is the streaming producer registered on its sink; it pauses
    and resumes its source for every reason it has (backend not connected
    yet, sink full, splice backlog, sequencer or fault holding too much).

    @ivar nbytes: bytes read from the source.
    @ivar fast: whether bytes go straight from source to sink.
    @ivar eof: whether the source has ended.
    @ivar done: whether the end of stream was delivered (the sink is
        half-closed).
    """

    __slots__ = (
        "connection",
        "direction",
        "_framer",
        "_direct",
        "source",
        "sink",
        "stages",
        "head",
        "sequencer",
        "nbytes",
        "fast",
        "eof",
        "eofPending",
        "eofForwarded",
        "done",
        "splicer",
        "_mask",
        "_stagePauses",
        "_paused",
    )

    def __init__(self, connection: Connection, direction: str) -> None:
        self.connection = connection
        self.direction = direction
        self._framer: Any = None
        self._direct = False
        self.source: Any = None
        self.sink: Any = None
        self.stages: Sequence[Stage] = ()
        self.head: Stage | None = None
        self.sequencer: Sequencer | None = None
        self.nbytes = 0
        self.fast = False
        self.eof = False
        self.eofPending = False
        self.eofForwarded = False
        self.done = False
        self.splicer: splice.Splicer | None = None
        self._mask = 0
        self._stagePauses = 0
        self._paused = False

    @property
    def framer(self) -> Any:
        """
        The session's framer for this direction, fetched when first needed
        (a connection on the fast path never needs it).
        """
        framer = self._framer
        if framer is None:
            framer = self._framer = getattr(self.connection.session, self.direction)
        return framer

    # Flow control

    def _update(self) -> None:
        paused = bool(self._mask or self._stagePauses)
        if paused == self._paused:
            return
        self._paused = paused
        source = self.source
        if source is None or self.eof or self.connection.closing:
            return
        if paused:
            source.pauseProducing()
        else:
            source.resumeProducing()

    def pause(self, reason: int) -> None:
        self._mask |= reason
        self._update()

    def resume(self, reason: int) -> None:
        self._mask &= ~reason
        self._update()

    def pauseStage(self) -> None:
        self._stagePauses += 1
        self._update()

    def resumeStage(self) -> None:
        self._stagePauses -= 1
        self._update()

    def pauseProducing(self) -> None:
        """
        The sink's buffer is full.
        """
        self.pause(_SINK_FULL)

    def resumeProducing(self) -> None:
        """
        The sink's buffer has drained.
        """
        self.resume(_SINK_FULL)

    def stopProducing(self) -> None:
        """
        The sink is gone; the Connection hears of it from its protocol.
        """

    def spliceBlocked(self, blocked: bool) -> None:
        """
        The splicer's sink cannot take more (C{True}) or can again.
        """
        if blocked:
            self.pause(_SPLICE_BLOCKED)
        else:
            self.resume(_SPLICE_BLOCKED)

    def _sequencerFull(self, full: bool) -> None:
        if full:
            self.pause(_SEQUENCER_FULL)
        else:
            self.resume(_SEQUENCER_FULL)

    # Wiring

    def setSource(self, transport: Any) -> None:
        self.source = transport
        if self._paused:
            transport.pauseProducing()

    def setSink(self, transport: Any) -> None:
        self.sink = transport
        self._direct = splice.eligible(transport)
        transport.registerProducer(self, True)

    def setStages(self, stages: Sequence[Stage]) -> None:
        """
        Replace the connection-scope chain.  Faults leaving are unlinked
        from the head on, so what they hold goes on, in order, before
        anything that enters the new chain.
        """
        old = self.stages
        self.stages = stages
        self.head = stages[0] if stages else None
        for stage in old:
            if stage not in stages:
                stage.fault.unlink()
                stage.release()
        self.refresh()

    def refresh(self) -> None:
        """
        Recompute whether bytes may bypass framing, and start or stop
        splicing accordingly.
        """
        connection = self.connection
        fast = (
            connection.session.passthrough
            and self.head is None
            and (self.sequencer is None or self.sequencer.idle)
            and not connection.requestScope
        )
        self.fast = fast
        splicer = self.splicer
        if splicer is None:
            return
        if fast and not splicer.active and not self.eof:
            if self.sink is not None and _sinkIdle(self.sink):
                splicer.start()
        elif not fast and splicer.active:
            splicer.stop()

    # Data in

    def dataReceived(self, data: bytes) -> None:
        """
        Bytes from the source.
        """
        self.nbytes += len(data)
        if self.fast:
            self._send(data)
            return
        connection = self.connection
        framer = self._framer
        if framer is None:
            framer = self.framer
        frames = framer.feed(data)
        if connection.inert():
            self._track(frames)
            # Nothing can act: the bytes may bypass framing from now on
            # if the session passes them through; otherwise the Pipe
            # stays off the fast path, as it was.
            if connection.session.passthrough and not self.eof:
                self.refresh()
            return
        for frame in frames:
            if connection.closing:
                # A fault closed the connection: what follows in this read
                # must not reach the other side.
                break
            self.route(frame)
        if not self.eof:
            self.refresh()

    def _track(self, frames: list[Frame]) -> None:
        """
        No fault can act on the connection: write the frames' bytes at
        once, and only keep what the framing is needed for (pairing
        responses with the requests sent, request latency).  The bytes
        are the frames', not the read's: a framer may rewrite some (HTTP's
        C{overwrite_host_header}).
        """
        if len(frames) == 1:
            data = frames[0].data
        elif frames:
            data = b"".join([frame.data for frame in frames])
        else:
            return
        if data:
            self._send(data)
        connection = self.connection
        if self.direction == UPSTREAM:
            session = connection.session
            now = connection.clock.seconds()
            for frame in frames:
                message = frame.message
                if frame.first and message.kind == REQUEST:
                    message.time = now
                    session.requestSent(message)
                    if message.expectsResponse and connection.downstream.sequencer:
                        connection.tracked.append(message)
        else:
            observe = connection.proxy.latencyObservers
            tracked = connection.tracked
            for frame in frames:
                message = frame.message
                if frame.last and message.kind == RESPONSE:
                    if tracked and tracked[0] is message.request:
                        tracked.popleft()
                    if observe:
                        connection.messageEnded(self, message)

    def _send(self, data: bytes) -> None:
        """
        Write to the sink: straight to its socket when nothing is queued
        before (saving a reactor turn per write), through the transport
        for whatever the socket does not take.
        """
        sink = self.sink
        if self._direct and sink.connected and not sink.disconnecting and _sinkIdle(sink):
            try:
                sent = sink.socket.send(data)
            except OSError:
                # The transport meets the error again and reports it.
                sent = 0
            if sent == len(data):
                return
            if sent:
                data = data[sent:]
        sink.write(data)

    def route(self, frame: Frame) -> None:
        """
        Send a frame into the chain that acts on it.
        """
        message = frame.message
        head = self.head
        if frame.first:
            self.connection.messageStarted(self, message)
        exchange = message.exchange
        if exchange is None and message.request is not None:
            exchange = message.request.exchange
        if exchange is not None:
            stages = exchange.stages.get(self.direction)
            head = stages[0] if stages else None
        if head is None:
            self.emit(frame)
        else:
            head.fault.frameReceived(frame)

    def _keyOf(self, message: Message) -> Message | None:
        if message.kind == RESPONSE:
            return message.request
        if self.direction == UPSTREAM:
            return message
        return None

    def emit(self, frame: Frame) -> None:
        """
        A frame came out of the chain: write it, in order.
        """
        sequencer = self.sequencer
        if sequencer is None:
            self._write(frame)
        else:
            sequencer.deliver(self._keyOf(frame.message), frame, True)
        if frame.last:
            self._messageEnded(frame.message)

    def discard(self, frame: Frame) -> None:
        """
        A fault dropped a frame.
        """
        sequencer = self.sequencer
        if sequencer is not None:
            sequencer.deliver(self._keyOf(frame.message), frame, False)
        if frame.last:
            self._messageEnded(frame.message)

    def _messageEnded(self, message: Message) -> None:
        self.connection.messageEnded(self, message)
        if self.eofPending and (self.sequencer is None or self.sequencer.idle):
            self.eofPending = False
            self._shutdownSink()

    def _write(self, frame: Frame) -> None:
        sink = self.sink
        if sink is None:
            return
        if self.splicer is not None and self.splicer.active:
            self.splicer.stop()
        if frame.data:
            self._send(frame.data)
        message = frame.message
        if frame.first and message.kind == REQUEST:
            self.connection.session.requestSent(message)
        elif frame.last and message.kind == RESPONSE:
            request = message.request
            why = message.meta.get(CLOSE_AFTER) or (
                request is not None and request.meta.get(CLOSE_AFTER))
            if why:
                self.connection.close(why)

    # End of stream

    def eofReceived(self) -> None:
        """
        The source ended its side.
        """
        if self.eof:
            return
        self.eof = True
        if not self.fast:
            for frame in self.framer.finish():
                self.route(frame)
        # Under request scope, the faults of exchanges still open hear of
        # it too (a hung request's fault closes when the client gives up);
        # what they do with it is theirs: the end of stream itself leaves
        # once every exchange is complete.
        for exchange in list(self.connection._exchanges or ()):
            stages = exchange.stages.get(self.direction)
            if stages:
                stages[0].fault.eofReceived()
        if self.head is None:
            self.eofAtEnd()
        else:
            self.head.fault.eofReceived()

    def eofAtEnd(self) -> None:
        """
        The end of stream came out of a chain (it may come out of several
        under request scope; the first counts).
        """
        if self.eofForwarded:
            return
        self.eofForwarded = True
        if self.sequencer is not None and not self.sequencer.idle:
            self.eofPending = True
            return
        self._shutdownSink()

    def releaseSink(self) -> None:
        """
        Stop being the sink's producer, before the sink is closed or
        half-closed: a Twisted transport whose buffer drains while its
        streaming producer is paused resumes the producer instead of
        carrying out a pending close.
        """
        sink = self.sink
        if sink is not None and getattr(sink, "producer", None) is self:
            sink.unregisterProducer()

    def _shutdownSink(self) -> None:
        splicer = self.splicer
        if splicer is not None and splicer.backlog:
            self.eofPending = True
            return
        if self.sink is not None:
            self.releaseSink()
            self.sink.loseWriteConnection()

    def spliceDrained(self) -> None:
        """
        The splicer wrote its whole backlog.
        """
        if self.eofPending and self.eof:
            self.eofPending = False
            self._shutdownSink()

    def sinkWriteClosed(self) -> None:
        """
        The sink's write side is shut: this direction is complete.
        """
        self.done = True
        self.connection.pipeDone()

    def stopAll(self) -> None:
        """
        The connection is gone: stop every fault and release resources.
        """
        for stage in self.stages:
            stage.fault.connectionLost()
        self.stages = ()
        self.head = None
        if self.sequencer is not None:
            self.sequencer.discardAll()
        if self.splicer is not None:
            self.splicer.release()


def _sinkIdle(transport: Any) -> bool:
    """
    Whether a transport's write buffer is empty, so spliced bytes cannot
    overtake buffered ones.
    """
    return not (
        getattr(transport, "_tempDataLen", 0)
        or len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    )


@implementer(IConnection)
class Connection:
    """
    One client and its backend connection (L{IConnection}).

    @ivar id: the connection's number within its proxy.
    @ivar client: the L{ProxyServer}.
    @ivar backend: the L{ProxyClient}, once connected.
    @ivar upstream: the client-to-backend L{Pipe}.
    @ivar downstream: the backend-to-client L{Pipe}.
    @ivar behaviors: the behaviors chosen for the whole connection.
    @ivar requestScope: whether behaviors are chosen per request.
    @ivar tracked: requests written while no fault could act (see
        L{inert}) whose responses have not ended yet, oldest first.
    """

    __slots__ = (
        "id",
        "proxy",
        "clock",
        "session",
        "client",
        "backend",
        "upstream",
        "downstream",
        "behaviors",
        "requestScope",
        "opened",
        "closing",
        "finished",
        "reason",
        "_random",
        "_timers",
        "_attempt",
        "_exchanges",
        "_clientLost",
        "_backendLost",
        "_idleSeen",
        "_idleSince",
        "tracked",
    )

    def __init__(self, proxy: ProxyServerFactory, client: ProxyServer, id: int) -> None:
        self.id = id
        self.proxy = proxy
        self.clock = proxy.reactor
        self.client = client
        self.backend: ProxyClient | None = None
        self.behaviors: tuple[Any, ...] = ()
        self.requestScope = proxy.table.scope == REQUEST_SCOPE
        self.opened = self.clock.seconds()
        self.closing = False
        self.finished = False
        self.reason: str | None = None
        self._random: Any = None
        self._timers: list[Any] | None = None
        self._attempt: Any = None
        self._exchanges: set[Exchange] | None = None
        self._clientLost = False
        self._backendLost = False
        self._idleSeen = 0
        self._idleSince = self.opened
        # A deque costs ~600 bytes: only protocols that pair responses
        # with requests need one.
        self.tracked: Any = deque() if proxy.handler.framesRequests else ()
        self.session = proxy.handler.buildSession(self)
        self.upstream = Pipe(self, UPSTREAM)
        self.downstream = Pipe(self, DOWNSTREAM)
        if proxy.handler.framesRequests:
            self.downstream.sequencer = Sequencer(
                self.downstream._write, self.downstream._sequencerFull
            )
            if self.requestScope:
                self.upstream.sequencer = Sequencer(
                    self.upstream._write, self.upstream._sequencerFull
                )

    def __repr__(self) -> str:
        return "<Connection {}#{}>".format(self.proxy.name, self.id)

    @property
    def random(self) -> Any:
        if self._random is None:
            self._random = self.proxy.random.stream(self.proxy.name, "connection", self.id)
        return self._random

    # Opening

    def start(self) -> None:
        """
        The client connected: choose behaviors, then reach the backend.
        """
        proxy = self.proxy
        proxy.connections.add(self)
        transport = self.client.transport
        self.upstream.pause(_CONNECTING)
        self.upstream.setSource(transport)
        self.downstream.setSink(transport)
        _noDelay(transport)
        if logs.isEnabled(LogLevel.debug):
            _log.debug(
                "{proxy} #{cid} accepted {peer}",
                proxy=proxy.name,
                cid=self.id,
                peer=_peer(transport),
            )
        if proxy.idleTimeout:
            self.callLater(proxy.idleTimeout / 4, self._checkIdle)
        waits = []
        if not self.requestScope:
            self.behaviors = self.choose(None)
            for behavior in self.behaviors:
                waits.append(maybeDeferred(behavior.connectionMade, self))
                if self.closing:
                    return
        pending = [d for d in waits if not d.called]
        if not pending:
            for d in waits:
                d.addErrback(self._behaviorFailed)
            self._connectBackend()
            return
        self._attempt = gathered = gatherResults(waits, consumeErrors=True)
        gathered.addCallbacks(lambda _: self._connectBackend(), self._behaviorFailed)

    def _behaviorFailed(self, reason: Failure) -> None:
        self._attempt = None
        if reason.check(CancelledError) or self.closing:
            self._maybeFinish()
            return
        _log.failure(
            "{proxy} #{cid} behavior failed at connection start",
            reason,
            proxy=self.proxy.name,
            cid=self.id,
        )
        self.close()

    def choose(self, request: Message | None) -> tuple[Any, ...]:
        """
        Draw behaviors from the proxy's table, and log the decision.
        """
        table = self.proxy.table
        behaviors = table.choose(None if table.inert else self.random)
        decisions = self.proxy.decisions
        for behavior in behaviors:
            decisions[behavior.name] = decisions.get(behavior.name, 0) + 1
        if logs.isEnabled(LogLevel.debug):
            _log.debug(
                "{proxy} #{cid} request {request}: {decision}",
                proxy=self.proxy.name,
                cid=self.id,
                request=None if request is None else request.index,
                decision="+".join(b.name for b in behaviors) or "dummy",
                behaviors=[(b.name, dict(b.settings)) for b in behaviors],
                event="decision",
            )
        return behaviors

    def _connectBackend(self) -> None:
        self._attempt = None
        if self.closing:
            return
        factory = ProxyClientFactory(self)
        self._attempt = self.proxy.backend.connect(
            factory, self.proxy.connectTimeout
        )

    def backendConnected(self, backend: ProxyClient) -> None:
        """
        The backend accepted: wire both Pipes and let bytes flow.
        """
        self._attempt = None
        if self.closing:
            _t(backend).loseConnection()
            return
        self.backend = backend
        transport = backend.transport
        _noDelay(transport)
        self.downstream.setSource(transport)
        self.upstream.setSink(transport)
        if self.proxy.splice and splice.available():
            client = self.client.transport
            if splice.eligible(client) and splice.eligible(transport):
                self.upstream.splicer = splice.Splicer(self.upstream, client, transport)
                self.downstream.splicer = splice.Splicer(self.downstream, transport, client)
        self._installStages()
        self.upstream.resume(_CONNECTING)

    def _installStages(self) -> None:
        for pipe in (self.upstream, self.downstream):
            reuse = {stage.behavior: stage for stage in pipe.stages}
            pipe.setStages(_chain(pipe, self.behaviors, None, reuse))

    def tableChanged(self) -> None:
        """
        The proxy's behavior table changed: under connection scope, choose
        again and replace the chains (faults leaving release what they
        hold).  Under request scope, the next request draws from the new
        table.
        """
        if self.closing or self.requestScope:
            return
        old, self.behaviors = self.behaviors, self.choose(None)
        if self.backend is not None:
            self._installStages()
        for behavior in self.behaviors:
            if behavior not in old and not self.closing:
                behavior.connectionMade(self)

    def backendFailed(self, reason: Failure) -> None:
        """
        The backend could not be reached.
        """
        self._attempt = None
        if self.closing:
            self._maybeFinish()
            return
        why = reason.getErrorMessage()
        self.reason = "backend unreachable: " + why
        self.proxy.backendFailures += 1
        _log.warn(
            "{proxy} #{cid} cannot reach backend {backend}: {why}",
            proxy=self.proxy.name,
            cid=self.id,
            backend=self.proxy.backend.description,
            why=why,
        )
        data = self.session.connectFailed(why)
        if data:
            _t(self.client).write(data)
        self._backendLost = True
        self.close()

    # Messages

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        """
        Under request scope, the exchanges whose faults are still at work
        (request, behaviors chosen for it).
        """
        return tuple(self._exchanges or ())

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

    def messageStarted(self, pipe: Pipe, message: Message) -> None:
        """
        A Pipe saw the first frame of C{message}: open its place in the
        output order and, under request scope, choose its behaviors.
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
            behaviors = self.choose(message)
            exchange = message.exchange = Exchange(message, behaviors)
            if behaviors:
                if self._exchanges is None:
                    self._exchanges = set()
                self._exchanges.add(exchange)
                for direction, side in ((UPSTREAM, self.upstream), (DOWNSTREAM, self.downstream)):
                    exchange.stages[direction] = _chain(side, behaviors, message)

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
        if exchange is not None and self._exchanges is not None:
            self._exchanges.discard(exchange)

    def reply(
        self, request: Message | None, data: bytes, close: bool = False,
        reason: str | None = None,
    ) -> None:
        """
        Send C{data} to the client as the response to C{request}, through
        the downstream faults and in protocol order; with C{close}, close
        the connection once it is written.
        """
        if self._clientLost:
            return
        meta: dict[str, Any] = {"synthetic": True}
        if close:
            meta[CLOSE_AFTER] = reason or "closed after a reply"
        message = Message(DOWNSTREAM, -1, RESPONSE, meta, request)
        self.downstream.route(Frame(data, message))

    # Timers

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """
        Schedule a call that is cancelled when the connection ends.
        """
        timers = self._timers
        if timers is None:
            timers = self._timers = []
        else:
            timers[:] = [t for t in timers if t.active()]
        call = self.clock.callLater(delay, f, *args, **kw)
        timers.append(call)
        return call

    def _checkIdle(self) -> None:
        """
        Check for traffic four times per idle period; close the connection
        once a whole period passed without any.
        """
        seen = self.upstream.nbytes + self.downstream.nbytes
        now = self.clock.seconds()
        if seen != self._idleSeen:
            self._idleSeen = seen
            self._idleSince = now
        elif now - self._idleSince >= self.proxy.idleTimeout:
            self.reason = "idle timeout"
            self.close()
            return
        self.callLater((self.proxy.idleTimeout or 0) / 4, self._checkIdle)

    # Closing

    def pipeDone(self) -> None:
        """
        A direction delivered its end of stream; when both have, close.
        """
        if self.upstream.done and self.downstream.done:
            self.close()

    def close(self, reason: str | None = None) -> None:
        """
        Close both sides after writing what is buffered.

        @param reason: why, for the log line that ends the connection.
        """
        self._closing(reason)
        if self.backend is not None:
            _t(self.backend).loseConnection()
        _t(self.client).loseConnection()
        self._maybeFinish()

    def reset(self, reason: str | None = None) -> None:
        """
        Reset the client (RST) and drop the backend.
        """
        self._closing(reason)
        if self.backend is not None:
            _abort(self.backend.transport)
        _abort(self.client.transport)
        self._maybeFinish()

    def abort(self, reason: str | None = None) -> None:
        """
        Drop both sides without writing what is buffered.
        """
        self.reset(reason)

    def _closing(self, reason: str | None = None) -> None:
        if reason is not None and self.reason is None:
            self.reason = reason
        if not self.closing:
            self.closing = True
            attempt, self._attempt = self._attempt, None
            if attempt is not None:
                attempt.cancel()
            for pipe in (self.upstream, self.downstream):
                pipe.releaseSink()
                if pipe.splicer is not None:
                    pipe.splicer.stop()

    def clientLost(self, reason: Failure) -> None:
        """
        The client transport is gone.
        """
        self._clientLost = True
        self._noteReason("client", reason)
        if self.backend is not None and not self._backendLost:
            self._closing()
            _t(self.backend).loseConnection()
        else:
            self._closing()
        self._maybeFinish()

    def backendLost(self, reason: Failure) -> None:
        """
        The backend transport is gone.
        """
        self._backendLost = True
        self._noteReason("backend", reason)
        if not self._clientLost:
            self._closing()
            _t(self.client).loseConnection()
        self._maybeFinish()

    def _noteReason(self, side: str, reason: Failure) -> None:
        if self.reason is None and not reason.check(ConnectionDone):
            self.reason = "{} {}".format(side, reason.getErrorMessage())

    def _maybeFinish(self) -> None:
        if self.finished or not self._clientLost:
            return
        if self.backend is not None and not self._backendLost:
            return
        if self._attempt is not None:
            return
        self.finished = True
        for call in self._timers or ():
            if call.active():
                call.cancel()
        self._timers = None
        self.upstream.stopAll()
        self.downstream.stopAll()
        for exchange in self._exchanges or ():
            for stages in exchange.stages.values():
                for stage in stages:
                    stage.fault.connectionLost()
        self._exchanges = None
        self.proxy.connectionFinished(self)


def _t(protocol: Protocol) -> Any:
    """
    A connected protocol's transport.
    """
    assert protocol.transport is not None
    return protocol.transport


def _noDelay(transport: Any) -> None:
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except Exception:
            pass


def _abort(transport: Any) -> None:
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


def _peer(transport: Any) -> str:
    try:
        address = transport.getPeer()
    except Exception:
        return "?"
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return "{}:{}".format(host, port)
    return str(getattr(address, "name", address))


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
    @ivar connections: the live L{Connection}s.
    @ivar accepted: how many clients were accepted.
    @ivar backendFailures: how many backend connections failed.
    @ivar decisions: behavior name to how many times it was chosen.
    @ivar bytesUp: client-to-backend bytes of finished connections (live
        ones count theirs in their Pipes' C{nbytes}).
    @ivar bytesDown: backend-to-client bytes of finished connections.
    @ivar latencyObservers: callables given C{(connection, request,
        seconds)} each time the last frame of a response leaves the proxy,
        seconds measured from the request's first bytes.
    """

    protocol = ProxyServer
    noisy = False

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
        self.connections: set[Connection] = set()
        self.accepted = 0
        self.backendFailures = 0
        self.decisions: dict[str, int] = {}
        self.latencyObservers: list[Callable[[Connection, Message, float], None]] = []
        self.bytesUp = 0
        self.bytesDown = 0
        self._ids = itertools.count()
        self._drained: list[Deferred] = []

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
        self.connections.discard(connection)
        up, down = connection.upstream.nbytes, connection.downstream.nbytes
        self.bytesUp += up
        self.bytesDown += down
        if not logs.isEnabled(LogLevel.info):
            return self._notifyIdle()
        _log.info(
            "{proxy} #{cid} {peer} closed after {duration:.3f}s: "
            "{up} bytes up, {down} bytes down ({why})",
            proxy=self.name,
            cid=connection.id,
            peer=_peer(connection.client.transport),
            duration=self.reactor.seconds() - connection.opened,
            up=up,
            down=down,
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
        """
        self.table = table
        for connection in list(self.connections):
            connection.tableChanged()

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
    "Connection",
    "Pipe",
    "ProxyClient",
    "ProxyClientFactory",
    "ProxyServer",
    "ProxyServerFactory",
    "Stage",
]

