# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
What the behaviors that act on a connection after a while share: a timer
whose length is one of their options, read again while it runs, and the
fault that owns such a timer for the whole connection.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from txvaurien.behaviors._holding import SLACK
from txvaurien.behaviors.base import Fault
from txvaurien.frames import DOWNSTREAM, UPSTREAM
from txvaurien.interfaces import IStage

#: Seconds between two looks at the option of a L{Deadline}, so that a
#: shorter value set on a live proxy applies within that time.
RECHECK = 1.0


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


class ConnectionTimerFault(Fault):
    """
    A fault whose behavior acts on the whole connection once C{option}
    milliseconds have passed since the fault was built.

    Only the fault that L{owns the connection's timer<ownsConnectionTimer>}
    starts a L{Deadline}, so a behavior acting both ways acts once; it
    calls L{expire} when the deadline is reached.  Unlinking the fault, or
    losing the connection, cancels the deadline.  Frames pass unchanged
    unless a subclass says otherwise.

    @cvar option: the name of the option giving the time, in milliseconds.
    @cvar zeroIsNever: whether a time of 0 means never (else at once).
    @ivar deadline: the pending action (a L{Deadline}), or L{None}.
    """

    option: ClassVar[str]
    zeroIsNever: ClassVar[bool] = False

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.deadline: Deadline | None = None
        if ownsConnectionTimer(stage):
            self.deadline = Deadline(stage, self.option, self.expire, self.zeroIsNever)

    def expire(self) -> None:
        """
        Act on the connection: the time is up.
        """
        raise NotImplementedError()

    def _cancel(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()

    def unlink(self) -> None:
        self._cancel()

    def connectionLost(self) -> None:
        self._cancel()
