# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
What the time-based behaviors share: a fault that holds frames and lets
them go later, on the reactor's clock, in order, pausing its source while
it holds too much; and the few helpers of behaviors that act on the
connection as a whole.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable

from txvaurien.behaviors.base import Fault
from txvaurien.frames import DOWNSTREAM, UPSTREAM, Frame
from txvaurien.interfaces import IStage

#: Bytes a holding fault keeps before it pauses its source, unless its
#: subclass says otherwise.
DEFAULT_HOLD = 1024 * 1024

#: Seconds by which a timer may fire early through rounding: a frame due
#: that close to now is due.
SLACK = 1e-6

#: Seconds between two looks at the option of a L{Deadline}, so that a
#: shorter value set on a live proxy applies within that time.
RECHECK = 1.0


class HoldingFault(Fault):
    """
    A fault that holds frames and forwards them later, in the order they
    came, on the clock of its connection.

    Held frames wait in L{queue} as C{(due, frame)} pairs.  By default a
    frame leaves once the clock reaches its C{due} time, and C{due} times
    never decrease, so no frame overtakes another; subclasses with other
    rules (a token bucket, a minimum spacing) override L{release} and
    L{nextDue}.  The end of stream leaves once every held frame has left
    and the clock has reached the time L{eofDue} gives.

    While it holds more than L{holdLimit} bytes the fault pauses its
    source, and it resumes it once it holds no more than that, so memory
    stays bounded however fast the source sends.

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
        Bytes held beyond which the source is paused.
        """
        return DEFAULT_HOLD

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
        self.queue.append((due, frame))
        self.held += len(frame.data)
        if not self.paused and self.held > self.holdLimit():
            self.paused = True
            self.stage.pauseSource()
        self.run()

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
        if self.paused and self.held <= self.holdLimit():
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


class Deadline:
    """
    A fault's timer whose length is one of its behavior's options, in
    milliseconds, read again whenever the timer is looked at: a value
    changed on a live proxy postpones the deadline or brings it forward
    (within L{RECHECK} seconds), counted from the same start.

    The timer is a connection timer (cancelled when the connection ends);
    the fault that owns it cancels it when it is unlinked.

    @ivar start: when the deadline started counting.
    @ivar fired: whether C{action} was called.
    """

    def __init__(
        self,
        stage: IStage,
        option: str,
        action: Callable[[], Any],
        zeroIsNever: bool = False,
    ) -> None:
        """
        @param option: the name of the option giving the length.
        @param action: called once the deadline is reached.
        @param zeroIsNever: whether a length of 0 means no deadline (else
            it means at once: in the next reactor turn).
        """
        self.stage = stage
        self.option = option
        self.action = action
        self.zeroIsNever = zeroIsNever
        self.start = stage.connection.clock.seconds()
        self.fired = False
        self.call: Any = None
        self._schedule(self.start)

    def _remaining(self, now: float) -> float | None:
        length = self.stage.behavior.settings[self.option]
        if length <= 0 and self.zeroIsNever:
            return None
        return self.start + length / 1000.0 - now

    def _schedule(self, now: float) -> None:
        remaining = self._remaining(now)
        wait = RECHECK if remaining is None else max(0.0, min(remaining, RECHECK))
        self.call = self.stage.connection.callLater(wait, self._check)

    def _check(self) -> None:
        self.call = None
        now = self.stage.connection.clock.seconds()
        remaining = self._remaining(now)
        if remaining is not None and remaining <= SLACK:
            self.fired = True
            self.action()
            return
        self._schedule(now)

    def cancel(self) -> None:
        """
        Stop waiting.
        """
        call, self.call = self.call, None
        if call is not None and call.active():
            call.cancel()


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


def ownsConnectionTimer(stage: IStage) -> bool:
    """
    Whether the fault at C{stage} is the one that acts on the connection as
    a whole for its behavior, so that a behavior acting in both directions
    closes or resets a connection once: the downstream fault, or the
    upstream one when the behavior acts upstream only.
    """
    direction = stage.behavior.settings.get("direction", DOWNSTREAM)
    if direction == UPSTREAM:
        return stage.direction == UPSTREAM
    return stage.direction == DOWNSTREAM
