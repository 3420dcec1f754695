# -*- test-case-name: txvaurien.test.test_datagram_behaviors -*-
"""
The C{duplicate} behavior: datagrams arrive more than once.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors._holding import faultRandom
from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import UPSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number


class DuplicateFault(Fault):
    """
    Forwards each datagram, and with probability C{probability} C{copies}
    more times right after it.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.random = faultRandom(stage)

    def frameReceived(self, frame: Frame) -> None:
        settings = self.settings
        self.stage.forward(frame)
        probability = settings["probability"]
        if probability <= 0.0 or (probability < 1.0 and self.random.random() >= probability):
            return
        copies = settings["copies"]
        self.stage.behavior.duplicated += copies
        logDecision(self.stage, "duplicate", message=frame.message.index, copies=copies)
        for _ in range(copies):
            self.stage.forward(frame)


class Duplicate(Behavior):
    """
    Send a datagram more than once: with probability C{probability}, each
    datagram is followed at once by C{copies} identical copies, as a
    network that duplicates packets does.

    Datagrams only (a UDP proxy, C{--proxy udp:PORT}): repeating bytes of
    a TCP stream would corrupt it, so a TCP proxy refuses this behavior.
    The decisions come from the session's seeded random stream, so a run
    with the same seed duplicates the same datagrams; each is logged as a
    decision and counted in the behavior's C{duplicated} count.  It acts
    upstream by default (the backend sees requests twice).

    Example::

        twistd -n vaurien --proxy udp:5353 --backend udp:host=127.0.0.1:port=53 \\
            --behavior 100:duplicate --behavior-duplicate-probability 0.05
    """

    name = "duplicate"
    defaultDirection = UPSTREAM
    datagram = True
    datagramOnly = True
    options = {
        "probability": (
            "Probability (0 to 1) that a datagram is duplicated",
            Number(float, 0.0, 1.0),
            0.1,
        ),
        "copies": ("Extra copies sent of a duplicated datagram", Number(int, 1, 100), 1),
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        self.duplicated = 0

    def buildFault(self, stage: IStage) -> IFault | None:
        if not getattr(stage.connection, "datagram", False):
            # A stream proxy's table refuses it (see
            # txvaurien.datagram.pipeline.checkTable); inert otherwise.
            return None
        return DuplicateFault(stage)


__all__ = ["Duplicate", "DuplicateFault"]
