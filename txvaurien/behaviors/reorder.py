# -*- test-case-name: txvaurien.test.test_datagram_behaviors -*-
"""
The C{reorder} behavior: a datagram arrives after later ones.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors._holding import faultRandom
from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import UPSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Duration, Number

#: Datagrams one fault holds at most; a datagram chosen beyond that passes.
MAX_HELD = 1000


class _Held:
    __slots__ = ("frame", "remaining", "timer")

    def __init__(self, frame: Frame, remaining: int) -> None:
        self.frame = frame
        self.remaining = remaining
        self.timer: Any = None


class ReorderFault(Fault):
    """
    Holds each datagram chosen with probability C{probability} until
    C{gap} later datagrams have been forwarded, or C{timeout} milliseconds
    have passed, whichever comes first.

    @ivar held: the held datagrams, oldest first.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.random = faultRandom(stage)
        self.held: list[_Held] = []

    def frameReceived(self, frame: Frame) -> None:
        settings = self.settings
        probability = settings["probability"]
        if probability > 0.0 and len(self.held) < MAX_HELD and (
                probability >= 1.0 or self.random.random() < probability):
            self._hold(frame, settings["gap"], settings["timeout"])
            return
        self.stage.forward(frame)
        due = []
        for entry in self.held:
            entry.remaining -= 1
            if entry.remaining <= 0:
                due.append(entry)
        for entry in due:
            self._release(entry)

    def _hold(self, frame: Frame, gap: int, timeout: float) -> None:
        entry = _Held(frame, gap)
        self.stage.behavior.reordered += 1
        logDecision(self.stage, "reorder", message=frame.message.index, gap=gap)
        if timeout > 0:
            entry.timer = self.stage.connection.callLater(
                timeout / 1000.0, self._release, entry)
        self.held.append(entry)

    def _release(self, entry: _Held) -> None:
        if entry not in self.held:
            return
        self.held.remove(entry)
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        self.stage.forward(entry.frame)

    def unlink(self) -> None:
        for entry in list(self.held):
            self._release(entry)

    def connectionLost(self) -> None:
        held, self.held = self.held, []
        for entry in held:
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()


class Reorder(Behavior):
    """
    Deliver datagrams out of order: each datagram is, with probability
    C{probability}, held back until the next C{gap} datagrams of its
    direction have gone past it, then sent.  A held datagram leaves after
    C{timeout} milliseconds at the latest (0: no limit), so the last one
    of a burst is not held for ever.  Nothing is lost or added.

    Datagrams only (a UDP proxy); a TCP stream cannot be reordered, and a
    TCP proxy refuses it.  Decisions come from the session's seeded random
    stream, are logged, and are counted in the behavior's C{reordered}
    count.  It acts upstream by default.

    Example::

        twistd -n vaurien --proxy udp:9000 --backend udp:host=127.0.0.1:port=9001 \\
            --behavior 100:reorder --behavior-reorder-probability 0.2 \\
            --behavior-reorder-gap 3
    """

    name = "reorder"
    defaultDirection = UPSTREAM
    datagram = True
    datagramOnly = True
    options = {
        "probability": (
            "Probability (0 to 1) that a datagram is held back",
            Number(float, 0.0, 1.0),
            0.1,
        ),
        "gap": ("Datagrams that overtake a held one", Number(int, 1), 1),
        "timeout": (
            "Longest time a datagram is held (0: until gap datagrams passed)",
            Duration("ms"),
            100.0,
        ),
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        self.reordered = 0

    def buildFault(self, stage: IStage) -> IFault | None:
        if not getattr(stage.connection, "datagram", False):
            # A stream proxy's table refuses it (see
            # txvaurien.datagram.pipeline.checkTable); inert otherwise.
            return None
        return ReorderFault(stage)


__all__ = ["Reorder", "ReorderFault"]
