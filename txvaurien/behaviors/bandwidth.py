# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{bandwidth} behavior: a slow link.
"""

from __future__ import annotations

from txvaurien.behaviors._holding import MAX_HOLD_LIMIT, HoldingFault, piece
from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number

#: Bytes in a KB, as Toxiproxy counts them.
KB = 1000

#: Seconds of traffic sent at a time: the bucket waits for this much (or
#: for the rest of the frame at its head) before it sends.
QUANTUM = 0.01

#: Seconds of traffic that may go at once after the link was idle.
IDLE_BURST = 0.02

#: Seconds of traffic the bucket may owe a backlog when its timer fired
#: late (a busy reactor), so that the average rate stays right.
BACKLOG_CAP = 0.5

#: Seconds of traffic held before the source is paused, within
#: L{MIN_HOLD} and L{MAX_HOLD} bytes.
HOLD_SECONDS = 0.1
MIN_HOLD = 64 * 1024
MAX_HOLD = MAX_HOLD_LIMIT

# Rounding slack, in bytes, so that a bucket the timer filled to the exact
# amount does not wait again for a rounding error.
_SLACK = 1e-6


class BandwidthFault(HoldingFault):
    """
    A token bucket on the clock: frames queue up and leave at C{rate},
    split where the bucket runs dry.

    @ivar offset: bytes of the frame at the head of the queue already sent.
    @ivar tokens: bytes that may be sent now (may be slightly negative).
    @ivar stamp: when L{tokens} was last brought up to date.
    @ivar backlogged: whether frames waited since then.
    """

    def __init__(self, stage: IStage) -> None:
        HoldingFault.__init__(self, stage)
        self.offset = 0
        self.tokens = self._quantum(self._rate())
        self.stamp = self.clock.seconds()
        self.backlogged = False

    def _rate(self) -> float:
        return float(self.settings["rate"]) * KB

    @staticmethod
    def _quantum(rate: float) -> int:
        # Whole bytes: a bucket holding a whole quantum can always send it,
        # so the timer never fires before it can (no busy loop).
        return max(1, int(rate * QUANTUM))

    def holdLimit(self) -> int:
        return int(min(MAX_HOLD, max(MIN_HOLD, self._rate() * HOLD_SECONDS)))

    def frameReceived(self, frame: Frame) -> None:
        if frame.first:
            self.journal("throttled", frame.message, rate=self.settings["rate"])
        self.hold(frame, 0.0)

    def _refill(self, now: float, rate: float) -> None:
        elapsed = now - self.stamp
        self.stamp = now
        if elapsed <= 0:
            return
        tokens = self.tokens + elapsed * rate
        cap = rate * (BACKLOG_CAP if self.backlogged else IDLE_BURST)
        cap = max(cap, self._quantum(rate))
        self.tokens = min(tokens, cap)

    def release(self, now: float) -> None:
        rate = self._rate()
        quantum = self._quantum(rate)
        self._refill(now, rate)
        queue = self.queue
        while queue and not self.lost:
            frame = queue[0][1]
            start = self.offset
            remaining = len(frame.data) - start
            if remaining <= 0:
                queue.popleft()
                self.offset = 0
                self.stage.forward(piece(frame, start, start))
                continue
            n = min(remaining, int(self.tokens + _SLACK))
            if n < min(remaining, quantum):
                break
            self.tokens -= n
            self.held -= n
            if n == remaining:
                queue.popleft()
                self.offset = 0
            else:
                self.offset = start + n
            self.stage.forward(piece(frame, start, start + n))
        self.backlogged = bool(queue)

    def nextDue(self) -> float | None:
        if not self.queue:
            return None
        rate = self._rate()
        remaining = len(self.queue[0][1].data) - self.offset
        need = min(remaining, self._quantum(rate))
        return self.stamp + max(0.0, need - self.tokens + _SLACK) / rate

    def releaseAll(self) -> None:
        queue = self.queue
        while queue and not self.lost:
            frame = queue.popleft()[1]
            start, self.offset = self.offset, 0
            self.held -= len(frame.data) - start
            self.stage.forward(piece(frame, start, len(frame.data)))


class Bandwidth(Behavior):
    """
    Limit the throughput to C{rate} KB/s (1 KB = 1000 bytes, as Toxiproxy).

    A token bucket on the reactor's clock: bytes queue up and leave every
    10 ms or so, as many as the rate allows, frames being split where the
    bucket runs dry (a request or response still leaves whole, in pieces).
    After an idle period up to 20 ms worth of traffic may leave at once;
    a timer that fires late is made up for, so the average rate holds,
    from 1 KB/s to 100 MB/s and beyond.

    While it holds more than 0.1 s of traffic (at least 64 KiB, at most
    15 MiB) the source is paused, so a fast sender is slowed down rather
    than buffered.  A rate of 0 is refused (it would stall the connection
    for ever; use C{timeout} for that).  Under request scope each request
    and each response has a bucket of its own.  It acts downstream by
    default (downloads are slow), like Toxiproxy's toxics.

    Example::

        twistd -n vaurien --backend 127.0.0.1:8080 --behavior 100:bandwidth \\
            --behavior-bandwidth-rate 56 --behavior-bandwidth-direction both
    """

    name = "bandwidth"
    defaultDirection = DOWNSTREAM
    options = {
        "rate": (
            "Throughput in KB per second (1 KB = 1000 bytes)",
            Number(float, 0, exclusiveMinimum=True),
            100.0,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return BandwidthFault(stage)


__all__ = ["Bandwidth", "BandwidthFault"]
