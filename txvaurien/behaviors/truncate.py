# -*- test-case-name: txvaurien.test.test_datagram_behaviors -*-
"""
The C{truncate} behavior: datagrams are cut short.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors._holding import faultRandom
from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number


class TruncateFault(Fault):
    """
    Forwards only the first C{size} bytes of each datagram chosen with
    probability C{probability}.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.random = faultRandom(stage)

    def frameReceived(self, frame: Frame) -> None:
        settings = self.settings
        size = settings["size"]
        probability = settings["probability"]
        if len(frame.data) <= size or probability <= 0.0 or (
                probability < 1.0 and self.random.random() >= probability):
            self.stage.forward(frame)
            return
        self.stage.behavior.truncated += 1
        logDecision(self.stage, "truncate", message=frame.message.index,
                    size=len(frame.data), kept=size)
        self.stage.forward(Frame(frame.data[:size], frame.message, frame.first, frame.last))


class Truncate(Behavior):
    """
    Cut datagrams short: each datagram longer than C{size} bytes is, with
    probability C{probability}, forwarded with only its first C{size}
    bytes, as a path with a small MTU or a buggy middlebox would.

    Datagrams only (a UDP proxy); a TCP proxy refuses it (use C{slicer}
    or C{limit_data} for streams).  Decisions come from the session's
    seeded random stream, are logged, and are counted in the behavior's
    C{truncated} count.  It acts downstream by default (replies are cut).

    Example::

        twistd -n vaurien --proxy udp:5353 --backend udp:host=127.0.0.1:port=53 \\
            --behavior 100:truncate --behavior-truncate-size 12
    """

    name = "truncate"
    defaultDirection = DOWNSTREAM
    datagram = True
    datagramOnly = True
    options = {
        "size": ("Bytes kept of a truncated datagram", Number(int, 0), 512),
        "probability": (
            "Probability (0 to 1) that a datagram longer than size is truncated",
            Number(float, 0.0, 1.0),
            1.0,
        ),
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        self.truncated = 0

    def buildFault(self, stage: IStage) -> IFault | None:
        if not getattr(stage.connection, "datagram", False):
            # A stream proxy's table refuses it (see
            # txvaurien.datagram.pipeline.checkTable); inert otherwise.
            return None
        return TruncateFault(stage)


__all__ = ["Truncate", "TruncateFault"]
