# -*- test-case-name: txvaurien.test.test_proxy -*-
"""
One direction of a proxied connection: L{Pipe}.

A Pipe reads from a source transport and writes to a sink transport.  It
is the streaming producer registered on its sink and pauses its source for
any of several reasons at once (L{CONNECTING}, L{SINK_FULL},
L{SPLICE_BLOCKED}, L{SEQUENCER_FULL}, and the faults' own pauses), resuming
it only when none is left.

Its route is one of:

  - I{fast}: a passthrough session and nothing that can act: reads are
    written straight to the sink (or spliced in the kernel);
  - I{tracking}: a framing session and nothing that can act
    (L{txvaurien.connection.Connection.inert}): reads are written as they
    come and the framer only keeps its state;
  - I{routed}: frames go through the chain of L{txvaurien.stage.Stage}s that
    acts on them, then through the L{txvaurien.sequencer.Sequencer}.

Writes to the sink go to its socket at once when nothing is queued before
them (L{txvaurien._twisted}), through the transport otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from txvaurien import _twisted, splice
from txvaurien.frames import CLOSE_AFTER, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.sequencer import Sequencer
from txvaurien.stage import Stage

if TYPE_CHECKING:
    from txvaurien.connection import Connection

#: Reasons a Pipe's source is paused; any one set keeps it paused.
CONNECTING = 1
SINK_FULL = 2
SPLICE_BLOCKED = 4
SEQUENCER_FULL = 8

#: A read at least this large on the fast path means bulk (Twisted reads
#: 64 KiB at a time): the Pipe hands its sockets to its splicer.  Small
#: messages stay on plain writes, which add less latency than two
#: splice(2) calls per read.
BULK_READ = 32 * 1024

#: A Pipe's paths (see the module docstring): chosen by L{Pipe.choose}
#: when something changes, not after every read.
FAST = "fast"
TRACKING = "tracking"
ROUTED = "routed"



class ByteCount:
    """
    Bytes read in one direction by every connection of a proxy, live ones
    included, counted as they are read (so that reading the total costs
    nothing per live connection).

    @ivar total: the bytes.
    """

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0


@implementer(IPushProducer)
class Pipe:
    """
    One direction of a connection: from a source transport to a sink
    transport, through the faults acting on it.

    The Pipe is the streaming producer registered on its sink; it pauses
    and resumes its source for every reason it has (backend not connected
    yet, sink full, splice backlog, sequencer or fault holding too much).

    @ivar nbytes: bytes read from the source.
    @ivar count: the proxy's L{ByteCount} of this direction, which every
        read adds to as well.
    @ivar spliceable: whether both transports are plain sockets that a
        L{splice.Splicer} may drive (it is made on the first bulk read).
    @ivar injected: bytes written to the sink that no source sent (replies
        made up by faults, a protocol's error for an unreachable backend).
    @ivar fast: whether bytes go straight from source to sink.
    @ivar path: L{FAST}, L{TRACKING} or L{ROUTED}.
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
        "count",
        "injected",
        "fast",
        "path",
        "_passthrough",
        "eof",
        "eofPending",
        "eofForwarded",
        "done",
        "splicer",
        "spliceable",
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
        proxy = connection.proxy
        self.count = proxy.upCount if direction == UPSTREAM else proxy.downCount
        self.injected = 0
        self.fast = False
        self.path = ROUTED
        self._passthrough = False
        self.eof = False
        self.eofPending = False
        self.eofForwarded = False
        self.done = False
        self.splicer: splice.Splicer | None = None
        self.spliceable = False
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
        self.pause(SINK_FULL)

    def resumeProducing(self) -> None:
        """
        The sink's buffer has drained.
        """
        self.resume(SINK_FULL)

    def stopProducing(self) -> None:
        """
        The sink is gone; the Connection hears of it from its protocol.
        """

    def spliceBlocked(self, blocked: bool) -> None:
        """
        The splicer's sink cannot take more (C{True}) or can again.
        """
        if blocked:
            self.pause(SPLICE_BLOCKED)
        else:
            self.resume(SPLICE_BLOCKED)

    def _sequencerFull(self, full: bool) -> None:
        if full:
            self.pause(SEQUENCER_FULL)
        else:
            self.resume(SEQUENCER_FULL)

    # Wiring

    def setSource(self, transport: Any) -> None:
        self.source = transport
        if self._paused:
            transport.pauseProducing()

    def setSink(self, transport: Any) -> None:
        self.sink = transport
        self._direct = _twisted.plainSocketTransport(transport)
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
        self.connection.reroute()

    def choose(self, inert: bool) -> None:
        """
        Choose this Pipe's path, and start or stop splicing accordingly.
        Called whenever something it depends on changes: a chain is set,
        an exchange opens or ends, a sequencer becomes idle or busy, the
        table changes, the session starts passing bytes through.

        @param inert: whether no fault can act on the connection (see
            L{txvaurien.ordering.OrderingMixin.inert}).
        """
        connection = self.connection
        passthrough = self._passthrough = connection.session.passthrough
        fast = (
            passthrough
            and self.head is None
            and (self.sequencer is None or self.sequencer.idle)
            and not connection.requestScope
        )
        self.fast = fast
        self.path = FAST if fast else TRACKING if inert else ROUTED
        splicer = self.splicer
        if splicer is not None and not fast and splicer.active:
            splicer.stop()

    def _spliceBulk(self) -> None:
        """
        The fast path sees bulk: let the splicer move it, once nothing is
        queued in the sink (spliced bytes must not overtake buffered
        ones).  The splicer gives the sockets back when reads get small.
        """
        splicer = self.splicer
        if splicer is None:
            # Made on the first bulk read: most connections never see one.
            splicer = self.splicer = splice.Splicer(self, self.source, self.sink)
        if (
            not splicer.active
            and not self.eof
            and not self.connection.closing
            and _twisted.sinkIdle(self.sink)
        ):
            splicer.start()

    # Data in

    def dataReceived(self, data: bytes) -> None:
        """
        Bytes from the source.
        """
        n = len(data)
        self.nbytes += n
        self.count.total += n
        path = self.path
        if path is FAST:
            self._send(data)
            if len(data) >= BULK_READ and self.spliceable:
                self._spliceBulk()
            return
        connection = self.connection
        framer = self._framer
        if framer is None:
            framer = self.framer
        frames = framer.feed(data)
        if path is TRACKING:
            self._track(frames)
        else:
            for frame in frames:
                if connection.closing:
                    # A fault closed the connection: what follows in this
                    # read must not reach the other side.
                    break
                self.route(frame)
        # The one change no event reports: the session may have switched
        # to passing bytes through (after a TLS upgrade, say).
        if connection.session.passthrough and not self._passthrough and not self.eof:
            connection.reroute()

    def deliverHeld(self, data: bytes) -> None:
        """
        Deliver bytes read (and counted) earlier, which a session held
        while it had its own say with the backend: as if just read, but
        not counted again.
        """
        n = len(data)
        self.nbytes -= n
        self.count.total -= n
        self.dataReceived(data)

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
        if self._direct and _twisted.writable(sink):
            sent = _twisted.socketSend(sink, data)
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
            self.connection.messageStarted(self, message, frame.data)
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


__all__ = [
    "Pipe", "FAST", "TRACKING", "ROUTED",
    "CONNECTING", "SINK_FULL", "SPLICE_BLOCKED", "SEQUENCER_FULL",
]
