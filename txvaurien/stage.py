"""
A fault's place in a Pipe, and the chains of them.

A L{Stage} is to a fault what a transport is to a Twisted protocol: the
fault receives frames through C{frameReceived} and sends each on exactly
once, with L{Stage.forward} (to the next stage, or out of the Pipe) or
L{Stage.drop}.  L{chain} builds the stages of the behaviors acting on one
direction, in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from zope.interface import implementer

from txvaurien.frames import Frame, Message
from txvaurien.interfaces import IStage

if TYPE_CHECKING:
    from txvaurien.connection import Connection
    from txvaurien.pipe import Pipe


@implementer(IStage)
class Stage:
    """
    A fault's place in a Pipe (L{IStage}).
    """

    __slots__ = ("pipe", "behavior", "message", "fault", "next", "paused")

    def __init__(self, pipe: "Pipe", behavior: Any, message: Message | None) -> None:
        self.pipe = pipe
        self.behavior = behavior
        self.message = message
        self.fault: Any = None
        self.next: Stage | None = None
        self.paused = 0

    @property
    def direction(self) -> str:
        return self.pipe.direction

    @property
    def connection(self) -> "Connection":
        return self.pipe.connection

    def forward(self, frame: Frame) -> None:
        nxt = self.next
        if nxt is None:
            self.pipe.emit(frame)
        else:
            nxt.fault.frameReceived(frame)

    def drop(self, frame: Frame) -> None:
        self.pipe.discard(frame)

    def forwardEOF(self) -> None:
        nxt = self.next
        if nxt is None:
            self.pipe.eofAtEnd()
        else:
            nxt.fault.eofReceived()

    def pauseSource(self) -> None:
        self.paused += 1
        self.pipe.pauseStage()

    def resumeSource(self) -> None:
        if self.paused:
            self.paused -= 1
            self.pipe.resumeStage()

    def release(self) -> None:
        """
        Undo this stage's outstanding pauses (its fault is leaving).
        """
        while self.paused:
            self.resumeSource()


def chain(
    pipe: "Pipe",
    behaviors: tuple[Any, ...],
    message: Message | None,
    reuse: dict[Any, Stage] | None = None,
) -> Sequence[Stage]:
    """
    Build the stages of C{behaviors} acting on C{pipe}'s direction, linked
    in order.

    @param reuse: stages of the chain being replaced, by behavior: a
        behavior still present keeps its stage and fault (and their state:
        counts, timers, held frames) instead of getting new ones.
    """
    if not behaviors:
        return ()
    stages: list[Stage] = []
    for behavior in behaviors:
        direction = behavior.settings.get("direction", "both")
        if direction != "both" and direction != pipe.direction:
            continue
        stage = reuse.pop(behavior, None) if reuse else None
        if stage is not None:
            stage.next = None
        else:
            stage = Stage(pipe, behavior, message)
            fault = behavior.buildFault(stage)
            if fault is None:
                continue
            stage.fault = fault
        if stages:
            stages[-1].next = stage
        stages.append(stage)
    return stages


__all__ = ["Stage", "chain"]
