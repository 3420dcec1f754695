# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{corrupt} behavior: bits flip in transit.
"""

from __future__ import annotations

import math

from txvaurien.behaviors._holding import faultRandom
from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number


class CorruptFault(Fault):
    """
    Flips one bit in each byte chosen with probability C{probability}.

    Rather than one draw per byte, it draws the number of clean bytes
    before the next corrupted one (a geometric variable), so big frames
    cost little, and the positions chosen along the stream do not depend
    on how its bytes were cut into frames.

    @ivar random: this fault's random stream.
    @ivar offset: bytes of this direction seen so far.
    @ivar skip: clean bytes left before the next corrupted one, or L{None}
        if not drawn yet.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.random = faultRandom(stage)
        self.offset = 0
        self.skip: int | None = None

    def _gap(self, probability: float) -> int:
        if probability >= 1.0:
            return 0
        u = self.random.random()
        return int(math.log1p(-u) / math.log1p(-probability))

    def frameReceived(self, frame: Frame) -> None:
        data = frame.data
        size = len(data)
        probability = self.settings["probability"]
        if probability <= 0:
            self.skip = None
            self.offset += size
            self.stage.forward(frame)
            return
        if self.skip is None:
            self.skip = self._gap(probability)
        position = self.skip
        if position >= size:
            self.skip = position - size
            self.offset += size
            self.stage.forward(frame)
            return
        rng = self.random
        corrupted = bytearray(data)
        while position < size:
            bit = rng.randrange(8)
            corrupted[position] ^= 1 << bit
            logDecision(self.stage, "corrupt", offset=self.offset + position, bit=bit)
            position += 1 + self._gap(probability)
        self.skip = position - size
        self.journal("corrupted", frame.message, offset=self.offset)
        self.offset += size
        self.stage.forward(Frame(bytes(corrupted), frame.message, frame.first, frame.last))


class Corrupt(Behavior):
    """
    Flip one random bit of each byte with probability C{probability}.

    The corrupted bytes and bits are drawn from a random stream seeded
    from the connection's, along the stream: with the same seed the same
    bytes of a connection are corrupted however they arrived, and each one
    is logged as a decision (with its offset in the stream).  Drawing the
    gaps between corrupted bytes rather than one number per byte keeps it
    cheap on big transfers.  Nothing else changes: no byte is added or
    removed, and message boundaries are kept (for a framing protocol the
    proxy found them before the corruption, but the peer may not).  It
    acts downstream by default (responses are corrupted), like Toxiproxy's
    toxics.

    Example::

        twistd -n vaurien --backend 127.0.0.1:11211 --behavior 5:corrupt \\
            --behavior-corrupt-probability 0.001 --seed 42
    """

    name = "corrupt"
    defaultDirection = DOWNSTREAM
    options = {
        "probability": (
            "Probability (0 to 1) that a given byte has one bit flipped",
            Number(float, 0.0, 1.0),
            0.01,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return CorruptFault(stage)


__all__ = ["Corrupt", "CorruptFault"]
