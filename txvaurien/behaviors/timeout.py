# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{timeout} behavior: nothing gets through, then the connection closes.
"""

from __future__ import annotations

from txvaurien.behaviors._timers import ConnectionTimerFault
from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Duration


class TimeoutFault(ConnectionTimerFault):
    """
    Drops every frame; the fault that owns the connection's timer closes
    it C{timeout} milliseconds after it was made (never, with 0).
    """

    option = "timeout"
    zeroIsNever = True

    def frameReceived(self, frame: Frame) -> None:
        self.stage.drop(frame)

    def expire(self) -> None:
        self.journal("closed", ms=self.settings["timeout"])
        self.stage.connection.close("timeout behavior")


class Timeout(Behavior):
    """
    Swallow all data, and close the connection after C{timeout}
    milliseconds; with 0, never close it (until a peer does, or the
    behavior is removed).  A new C{timeout} set on a live proxy applies to
    live connections too (counted from the same start, within a second).

    Every byte in the behavior's direction is discarded, so the receiving
    side waits for data that never comes, until the proxy closes both sides
    (FIN).  The time counts from the moment the behavior starts acting: the
    backend connection is made, it is added to a live connection, or under
    request scope the request that drew it arrives.  An end of stream
    still passes.  Removing the behavior lets data flow again.  It acts
    downstream by default (requests reach the backend, responses are lost),
    like Toxiproxy's toxics.

    Example::

        twistd -n vaurien --backend 127.0.0.1:5432 --behavior 10:timeout \\
            --behavior-timeout-timeout 30000
    """

    name = "timeout"
    defaultDirection = DOWNSTREAM
    options = {
        "timeout": (
            "Milliseconds before the connection is closed (0: never)",
            Duration("ms"),
            1000.0,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return TimeoutFault(stage)


__all__ = ["Timeout", "TimeoutFault"]
