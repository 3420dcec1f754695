# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{limit_time} behavior: connections live only so long.
"""

from __future__ import annotations

from txvaurien.behaviors._timers import ConnectionTimerFault
from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Duration


class LimitTimeFault(ConnectionTimerFault):
    """
    Forwards frames unchanged; the fault that owns the connection's timer
    closes the connection C{time} milliseconds after it was made.
    """

    option = "time"

    def expire(self) -> None:
        self.journal("closed", ms=self.settings["time"])
        self.stage.connection.close("limit_time behavior")


class LimitTime(Behavior):
    """
    Close connections C{time} milliseconds after the behavior starts
    acting on them.

    Data flows normally until then; then the proxy closes both sides
    cleanly (FIN, after what is buffered), as a load balancer or NAT that
    limits connection lifetimes would.  The time counts from the moment
    the behavior starts acting: the backend connection is made, it is
    added to a live connection, or under request scope the request that
    drew it arrives.  A new C{time} set on a live proxy applies to live
    connections too (counted from the same start, within a second).
    Removing the behavior in time cancels the close.
    The direction only says which Pipe's fault holds the timer
    (downstream by default, like Toxiproxy's toxics).

    Example::

        twistd -n vaurien --backend 127.0.0.1:5432 --behavior 100:limit_time \\
            --behavior-limit-time-time 60000
    """

    name = "limit_time"
    defaultDirection = DOWNSTREAM
    options = {
        "time": (
            "Milliseconds a connection may live before it is closed",
            Duration("ms"),
            10000.0,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return LimitTimeFault(stage)


__all__ = ["LimitTime", "LimitTimeFault"]
