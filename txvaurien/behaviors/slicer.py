# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{slicer} behavior: data arrives in small pieces.
"""

from __future__ import annotations

from txvaurien.behaviors._holding import HOLD_BOUND, SLACK, HoldingFault, faultRandom, piece
from txvaurien.behaviors.base import Behavior, logDecision
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Duration, Number

#: Bytes held before the source is paused (at least two slices).
SLICER_HOLD = 1024 * 1024

#: The largest slice size and size variation accepted: the most bytes a
#: fault may hold (a slice is never held whole beyond it anyway).
MAX_SLICE = HOLD_BOUND


class SlicerFault(HoldingFault):
    """
    Cuts the stream into slices whose sizes are drawn at random, and
    forwards them at least C{delay} microseconds apart.

    The cut points are drawn along the stream, not per frame: a slice that
    a frame boundary interrupts goes on in the next frame, so the slices
    drawn do not depend on how the bytes happened to arrive (frame
    boundaries cut too).

    @ivar random: this fault's random stream.
    @ivar left: bytes left in the slice being cut.
    @ivar sent: when the last slice left, or L{None}.
    """

    def __init__(self, stage: IStage) -> None:
        HoldingFault.__init__(self, stage)
        self.random = faultRandom(stage)
        self.left = 0
        self.sent: float | None = None

    def holdLimit(self) -> int:
        return max(SLICER_HOLD, 2 * self.settings["average_size"])

    def _draw(self) -> int:
        settings = self.settings
        average = settings["average_size"]
        variation = settings["size_variation"]
        size = average
        if variation > 0:
            size = self.random.randint(
                average - variation, average + variation)
        size = max(1, size)
        logDecision(self.stage, "slice", size=size)
        return size

    def frameReceived(self, frame: Frame) -> None:
        data = frame.data
        end = len(data)
        if frame.first:
            self.journal("sliced", frame.message, average=self.settings["average_size"])
        if not end:
            self.hold(frame, 0.0)
            return
        position = 0
        pieces = []
        while position < end:
            if not self.left:
                self.left = self._draw()
            stop = min(end, position + self.left)
            self.left -= stop - position
            pieces.append(piece(frame, position, stop))
            position = stop
        for each in pieces:
            self.enqueue(each, 0.0)
        self.run()

    def _spacing(self) -> float:
        return self.settings["delay"] / 1e6

    def nextDue(self) -> float | None:
        if not self.queue:
            return None
        if self.sent is None:
            return self.clock.seconds()
        return self.sent + self._spacing()

    def release(self, now: float) -> None:
        queue = self.queue
        spacing = self._spacing()
        if spacing <= 0:
            while queue and not self.lost:
                self.forwardHeld(queue.popleft()[1])
            return
        # A timer set for sent + spacing may fire a rounding error early.
        if queue and (self.sent is None or self.sent + spacing <= now + SLACK):
            self.sent = now
            self.forwardHeld(queue.popleft()[1])


class Slicer(Behavior):
    """
    Cut the data into slices of about C{average_size} bytes, C{delay}
    microseconds apart.

    Slice sizes are drawn uniformly between C{average_size -
    size_variation} and C{average_size + size_variation} (at least one
    byte), from a random stream seeded from the connection's, along the
    stream: the same seed cuts the same bytes at the same places however
    they arrived (a frame boundary cuts too).  Consecutive slices leave at
    least C{delay} microseconds apart, each in its own reactor turn, so
    that each is written to the socket on its own (delays shorter than the
    reactor's timer resolution, about a millisecond, take that long).  With
    C{delay} 0 the slices leave at once, and are only seen apart by the
    faults after this one.  Every size drawn is logged as a decision.

    Up to 1 MiB, or two average slices, is held before the source is
    paused, and never more than 15 MiB whatever the options (the slices
    then go on in the next reads); sizes above 16 MiB are refused.  Under request scope,
    each request and each response is sliced on its own.  It acts
    downstream by default (clients get responses in pieces, which finds
    parsers that expect whole reads), like Toxiproxy's toxics.

    Example::

        twistd -n vaurien --backend 127.0.0.1:8080 --behavior 100:slicer \\
            --behavior-slicer-average-size 16 --behavior-slicer-size-variation 8 \\
            --behavior-slicer-delay 2000
    """

    name = "slicer"
    defaultDirection = DOWNSTREAM
    options = {
        "average_size": (
            "Average size of a slice, in bytes (at most 16 MiB, the memory "
            "bound of a fault)",
            Number(int, 1, MAX_SLICE),
            64,
        ),
        "size_variation": (
            "Slices are up to this many bytes smaller or larger than the "
            "average (at most 16 MiB, the memory bound of a fault)",
            Number(int, 0, MAX_SLICE),
            32,
        ),
        "delay": (
            "Time between two slices, in microseconds",
            Duration("us"),
            1000.0,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return SlicerFault(stage)


__all__ = ["Slicer", "SlicerFault", "MAX_SLICE"]
