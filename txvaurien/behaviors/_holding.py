# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
What the time-based behaviors share: a fault that holds frames and lets
them go later, on the reactor's clock, in order, pausing its source while
it holds too much; and the helpers of faults that cut or draw at random.
(The timers of behaviors that act on the connection as a whole are in
L{txvaurien.behaviors._timers}.)
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from txvaurien.behaviors.base import Fault
from txvaurien.frames import Frame
from txvaurien.interfaces import IStage

#: Bytes a holding fault keeps before it pauses its source, unless its
#: subclass says otherwise.
DEFAULT_HOLD = 1024 * 1024

#: The most bytes one fault may hold, whatever its options say: the memory
#: bound the core keeps for a slow reader (a proxy's RSS grows by at most
#: 16 MiB however slowly a peer reads; see C{bench/bench.py}'s
#: backpressure workloads).
HOLD_BOUND = 16 * 1024 * 1024

#: Room under L{HOLD_BOUND} for what a source delivers after it was paused
#: (the rest of the read being handled: Twisted reads at most 64 KiB at a
#: time; a slicer cuts a read into slices all at once).
HOLD_HEADROOM = 1024 * 1024

#: The highest L{HoldingFault.holdLimit} a fault gets: a larger limit asked
#: for by a subclass is clamped to it.
MAX_HOLD_LIMIT = HOLD_BOUND - HOLD_HEADROOM

#: Seconds by which a timer may fire early through rounding: a frame due
#: that close to now is due.
SLACK = 1e-6


class HoldingFault(Fault):
    """
    A fault that holds frames and forwards them later, in the order they
    came, on the clock of its connection.

    Held frames wait in L{queue} as C{(due, frame)} pairs.  By default a
    frame leaves once the clock reaches its C{due} time, and a frame is
    never due before the one held ahead of it (L{enqueue} sees to it), so
    no frame overtakes another; subclasses with other rules (a token
    bucket, a minimum spacing) override L{release} and L{nextDue}.  The
    end of stream leaves once every held frame has left and the clock has
    reached the time L{eofDue} gives.

    While it holds more than L{holdLimit} bytes (clamped to
    L{MAX_HOLD_LIMIT}, whatever the subclass and its options ask for) the
    fault pauses its source, and it resumes it once it holds no more than
    that, so memory stays within L{HOLD_BOUND} however fast the source
    sends and whatever the options say.

    On L{unlink} every held frame and a pending end of stream leave at
    once; on L{connectionLost} they are forgotten.  The fault owns one
    timer at most, cancelled in both cases.

    @ivar clock: the connection's L{twisted.internet.interfaces.IReactorTime}.
    @ivar queue: the held C{(due, frame)} pairs, oldest first.
    @ivar held: bytes held.
    @ivar paused: whether this fault has paused its source.
    @ivar eofPending: whether the end of stream waits to be forwarded.
    @ivar timer: the pending L{twisted.internet.interfaces.IDelayedCall}.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.clock = stage.connection.clock
        self.queue: deque[tuple[float, Frame]] = deque()
        self.held = 0
        self.paused = False
        self.eofPending = False
        self.eofAt = 0.0
        self.timer: Any = None
        self.lost = False

    # What subclasses decide

    def holdLimit(self) -> int:
        """
        Bytes held beyond which the source is paused (before the clamp to
        L{MAX_HOLD_LIMIT}).
        """
        return DEFAULT_HOLD

    def pauseLimit(self) -> int:
        """
        Bytes held beyond which the source is paused: L{holdLimit}, at most
        L{MAX_HOLD_LIMIT}.
        """
        return min(self.holdLimit(), MAX_HOLD_LIMIT)

    def eofDue(self, now: float) -> float:
        """
        The earliest time the end of stream, received at C{now}, may leave
        (it also waits for every held frame): at once by default.
        """
        return now

    def nextDue(self) -> float | None:
        """
        When the next held frame may leave, or L{None} if none is held.
        """
        if self.queue:
            return self.queue[0][0]
        return None

    def release(self, now: float) -> None:
        """
        Forward the held frames that may leave at C{now}.
        """
        queue = self.queue
        now += SLACK
        while queue and queue[0][0] <= now and not self.lost:
            self.forwardHeld(queue.popleft()[1])

    # Holding

    def hold(self, frame: Frame, due: float) -> None:
        """
        Hold C{frame} until C{due}, behind every frame already held, and
        forward what may leave now.
        """
        self.enqueue(frame, due)
        self.run()

    def enqueue(self, frame: Frame, due: float) -> None:
        """
        Hold C{frame} until C{due} (or until the frame ahead of it is due,
        if that is later), behind every frame already held, and pause the
        source if that is too much; L{run} forwards it when it may leave.
        """
        queue = self.queue
        if queue and queue[-1][0] > due:
            due = queue[-1][0]
        queue.append((due, frame))
        self.held += len(frame.data)
        if not self.paused and self.held > self.pauseLimit():
            self.paused = True
            self.stage.pauseSource()

    def forwardHeld(self, frame: Frame) -> None:
        """
        Forward a frame that was held (and counted in L{held}).
        """
        self.held -= len(frame.data)
        self.stage.forward(frame)

    def run(self) -> None:
        """
        Forward what may leave now, then resume the source, forward the end
        of stream or set the timer, as the new state requires.
        """
        if self.lost:
            return
        now = self.clock.seconds()
        self.release(now)
        if self.lost:
            return
        if self.paused and self.held <= self.pauseLimit():
            self.paused = False
            self.stage.resumeSource()
        if not self.queue and self.eofPending and self.eofAt <= now + SLACK:
            self.eofPending = False
            self.stage.forwardEOF()
        if self.timer is not None:
            return
        due = self.nextDue()
        if due is None and self.eofPending and not self.queue:
            due = self.eofAt
        if due is not None:
            self.timer = self.clock.callLater(max(0.0, due - now), self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.run()

    def _cancel(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    # IFault

    def eofReceived(self) -> None:
        self.eofPending = True
        self.eofAt = self.eofDue(self.clock.seconds())
        self.run()

    def releaseAll(self) -> None:
        """
        Forward every held frame now, in order (for L{unlink}).
        """
        queue = self.queue
        while queue and not self.lost:
            self.forwardHeld(queue.popleft()[1])

    def unlink(self) -> None:
        self._cancel()
        self.releaseAll()
        if self.paused:
            self.paused = False
            self.stage.resumeSource()
        if self.eofPending and not self.lost:
            self.eofPending = False
            self.stage.forwardEOF()

    def connectionLost(self) -> None:
        self.lost = True
        self._cancel()
        self.queue.clear()
        self.held = 0
        self.eofPending = False


def piece(frame: Frame, start: int, end: int) -> Frame:
    """
    The bytes C{start:end} of C{frame}, as a frame that is its message's
    first only if it starts C{frame} and C{frame} was, and last only if it
    ends C{frame} and C{frame} was.
    """
    size = len(frame.data)
    if start == 0 and end >= size:
        return frame
    return Frame(
        frame.data[start:end],
        frame.message,
        frame.first and start == 0,
        frame.last and end >= size,
    )


def faultRandom(stage: IStage) -> random.Random:
    """
    A random stream for the fault being built at C{stage}, seeded from its
    connection's stream.

    Faults are built in an order the traffic fixes (the connection's
    start, then each request as it begins), so each gets the same seed from
    the same run; drawing from its own stream afterwards, a fault's
    decisions do not depend on how its draws interleave with other faults'
    (which depends on how the bytes were cut into reads).
    """
    return random.Random(stage.connection.random.getrandbits(64))
