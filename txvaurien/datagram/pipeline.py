# -*- test-case-name: txvaurien.test.test_datagram_pipeline -*-
"""
The faults one direction of a UDP session passes its datagrams through.

A datagram is one L{Frame} of one L{Message}, so a behavior's fault sees
it whole (C{first} and C{last} are both set).  L{Chain} is the datagram
counterpart of the stream proxy's Pipe: each L{DatagramStage} is an
L{IStage} for one fault, and the last one hands the frame to the session,
which sends it.

Most behaviors' faults work on datagrams unchanged (C{drop}, C{corrupt},
C{error}, C{transient}) or are written for them (C{duplicate},
C{reorder}, C{truncate}, C{rate_limit}).  C{delay} and C{latency} get a
datagram form here that delays each datagram on its own (so jitter
reorders them, as on a real network), C{blackout} and C{down} one that
drops every datagram.  Behaviors that act on what only streams have
(connection set-up, half-close, byte counts) are refused by
L{checkTable}.
"""

from __future__ import annotations

from typing import Any, Callable

from zope.interface import implementer

from txvaurien.behaviors.base import Fault, logDecision
from txvaurien.behaviors.latency import LatencyFault
from txvaurien.frames import BOTH, DOWNSTREAM, UPSTREAM, Frame, Message
from txvaurien.interfaces import IFault, IStage
from txvaurien.table import BehaviorTable, TableError

#: Datagrams a delaying fault holds at most; more are dropped (a UDP
#: source cannot be paused).
MAX_HELD = 10000


@implementer(IStage)
class DatagramStage:
    """
    One fault's place in a L{Chain}.

    Pausing the source means nothing for datagrams (a UDP socket cannot
    push back on its sender): faults that hold datagrams bound what they
    hold themselves, and L{pauseSource} and L{resumeSource} do nothing.

    @ivar fault: the L{IFault} here.
    @ivar next: the next stage, or L{None} if this one is last.
    """

    __slots__ = ("chain", "connection", "behavior", "direction", "message",
                 "fault", "next")

    def __init__(self, chain: "Chain", behavior: Any, message: Message | None) -> None:
        self.chain = chain
        self.connection = chain.session
        self.behavior = behavior
        self.direction = chain.direction
        self.message = message
        self.fault: Any = None
        self.next: DatagramStage | None = None

    def forward(self, frame: Frame) -> None:
        following = self.next
        if following is None:
            self.chain.session.deliver(self.direction, frame)
        else:
            following.fault.frameReceived(frame)

    def drop(self, frame: Frame) -> None:
        self.chain.session.dropped(self.direction, frame)

    def forwardEOF(self) -> None:
        pass

    def pauseSource(self) -> None:
        pass

    def resumeSource(self) -> None:
        pass


class Chain:
    """
    The faults of one direction of a session (connection scope), or of one
    request or its response (request scope), in table order.

    @ivar session: the L{txvaurien.datagram.session.DatagramSession}.
    @ivar direction: L{UPSTREAM} or L{DOWNSTREAM}.
    @ivar stages: the L{DatagramStage}s, first first.
    """

    def __init__(
        self,
        session: Any,
        direction: str,
        behaviors: tuple[Any, ...],
        message: Message | None = None,
    ) -> None:
        self.session = session
        self.direction = direction
        self.stages: list[DatagramStage] = []
        for behavior in behaviors:
            if behavior.settings.get("direction", BOTH) not in (direction, BOTH):
                continue
            stage = DatagramStage(self, behavior, message)
            fault = buildDatagramFault(behavior, stage)
            if fault is None:
                continue
            stage.fault = fault
            if self.stages:
                self.stages[-1].next = stage
            self.stages.append(stage)

    def __bool__(self) -> bool:
        return bool(self.stages)

    def receive(self, frame: Frame) -> None:
        """
        Pass C{frame} through the faults.
        """
        if self.stages:
            self.stages[0].fault.frameReceived(frame)
        else:
            self.session.deliver(self.direction, frame)

    def unlink(self) -> None:
        """
        The table changed: the faults let go of what they hold.
        """
        for stage in self.stages:
            stage.fault.unlink()

    def lost(self) -> None:
        """
        The session ended: the faults forget what they hold.
        """
        for stage in self.stages:
            stage.fault.connectionLost()


class DatagramDelayFault(LatencyFault):
    """
    C{latency} (and C{delay}) for datagrams: each datagram is held for its
    own delay and leaves when it is due, whatever came before it, so with
    jitter a datagram may overtake an earlier one, as on a real path.

    At most L{MAX_HELD} datagrams are held; beyond that a datagram is
    dropped (and counted), since a UDP sender cannot be paused.

    @ivar pending: the held datagrams' timers, by frame.
    """

    def __init__(self, stage: IStage) -> None:
        LatencyFault.__init__(self, stage)
        self.pending: dict[Frame, Any] = {}

    def frameReceived(self, frame: Frame) -> None:
        delay = self.sample(frame.message)
        if delay <= 0.0:
            self.stage.forward(frame)
            return
        if len(self.pending) >= MAX_HELD:
            logDecision(self.stage, "drop: too many held", held=len(self.pending))
            self.stage.drop(frame)
            return
        self.pending[frame] = self.clock.callLater(delay, self._due, frame)

    def _due(self, frame: Frame) -> None:
        del self.pending[frame]
        self.stage.forward(frame)

    def unlink(self) -> None:
        pending = sorted(self.pending.items(), key=lambda item: item[1].getTime())
        self.pending = {}
        for frame, call in pending:
            call.cancel()
            self.stage.forward(frame)

    def connectionLost(self) -> None:
        pending, self.pending = self.pending, {}
        for call in pending.values():
            call.cancel()


class DatagramSleepFault(DatagramDelayFault):
    """
    C{delay} for datagrams: every datagram of the direction C{before}
    names is held C{sleep} seconds.
    """

    def sample(self, message: Message) -> float:
        wanted = UPSTREAM if self.settings["before"] else DOWNSTREAM
        if self.stage.direction != wanted:
            return 0.0
        return max(0.0, self.settings["sleep"])


class DropAllFault(Fault):
    """
    C{blackout} and C{down} for datagrams: no datagram gets through in the
    behavior's direction while it is chosen.
    """

    def frameReceived(self, frame: Frame) -> None:
        self.stage.drop(frame)


#: Behaviors whose datagram form is made here, by name.
ADAPTERS: dict[str, Callable[[IStage], IFault]] = {
    "latency": DatagramDelayFault,
    "delay": DatagramSleepFault,
    "blackout": DropAllFault,
    "down": DropAllFault,
}

#: Built-in behaviors whose own faults act per datagram.
NATIVE = frozenset(["drop", "corrupt", "error", "transient", "dummy"])

#: Built-in behaviors that only streams have, with what to use instead.
STREAM_ONLY = {
    "abort": "it resets TCP connections",
    "bandwidth": "it paces a byte stream; use rate_limit",
    "hang": "it holds a TCP connection open; use drop with loss_rate 1, or blackout",
    "limit_data": "it closes a TCP connection after some bytes",
    "limit_time": "it closes a TCP connection after some time",
    "reset_peer": "it resets TCP connections",
    "slicer": "it cuts a byte stream into pieces; use truncate",
    "slow_close": "it delays the close of a TCP connection",
    "slow_open": "it delays the TCP connection to the backend",
    "timeout": "it closes idle TCP connections",
}


def isDatagramBehavior(behavior: Any) -> bool:
    """
    Whether C{behavior} acts on datagrams: a datagram form is made here, its
    faults act per message, or it says so (C{datagram = True}).
    """
    return (
        behavior.name in ADAPTERS
        or behavior.name in NATIVE
        or bool(getattr(behavior, "datagram", False))
    )


def buildDatagramFault(behavior: Any, stage: IStage) -> IFault | None:
    """
    The fault of C{behavior} for a datagram stage.
    """
    adapter = ADAPTERS.get(behavior.name)
    if adapter is not None:
        return adapter(stage)
    fault: IFault | None = behavior.buildFault(stage)
    return fault


def checkTable(table: BehaviorTable, datagram: bool) -> None:
    """
    Refuse behaviors that have no meaning for the proxy's transport: stream
    behaviors on a UDP proxy, datagram-only ones (C{duplicate},
    C{reorder}, C{truncate}, C{rate_limit}) on a stream proxy.

    @param datagram: whether the table is a UDP proxy's.
    @raise TableError: naming the behavior and why.
    """
    for name, behavior in sorted(table.behaviors.items()):
        if datagram and not isDatagramBehavior(behavior):
            why = STREAM_ONLY.get(
                behavior.name, "it does not declare that it acts on datagrams")
            raise TableError(
                "behavior {} cannot act on a UDP proxy: {}".format(name, why))
        if not datagram and getattr(behavior, "datagramOnly", False):
            raise TableError(
                "behavior {} acts on UDP datagrams only (--proxy udp:PORT); "
                "it would break a TCP stream".format(name))


__all__ = [
    "ADAPTERS",
    "Chain",
    "DatagramDelayFault",
    "DatagramSleepFault",
    "DatagramStage",
    "DropAllFault",
    "MAX_HELD",
    "buildDatagramFault",
    "checkTable",
    "isDatagramBehavior",
]
