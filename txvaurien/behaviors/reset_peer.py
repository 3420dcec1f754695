# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{reset_peer} behavior: the connection is reset (RST).
"""

from __future__ import annotations

from txvaurien.behaviors._timers import ConnectionTimerFault
from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Duration


class ResetPeerFault(ConnectionTimerFault):
    """
    Forwards frames unchanged; the fault that owns the connection's timer
    resets the connection C{timeout} milliseconds after it was made.
    """

    option = "timeout"

    def expire(self) -> None:
        self.journal("reset", ms=self.settings["timeout"])
        self.stage.connection.reset("reset_peer behavior")


class ResetPeer(Behavior):
    """
    Reset the connection C{timeout} milliseconds after the behavior starts
    acting on it.

    The proxy closes its socket to the client with SO_LINGER 0, so the
    client gets a TCP RST (C{ECONNRESET}, "connection reset by peer")
    instead of an orderly close, and data not yet sent is discarded; the
    backend connection is dropped.  With 0 the reset happens as soon as the backend connection is
    made.  The time counts from the moment the behavior starts acting: the
    backend connection is made, it is added to a live connection, or under
    request scope the request that drew it arrives.  Data flows normally
    until then.  A new C{timeout} set on a live proxy applies to live
    connections too (counted from the same start, within a second).

    Only connections (or requests) the behavior was drawn for are reset:
    with C{toxicity} 0.3, about 30% of them, and with 0 none (unlike
    Toxiproxy, whose reset ignored its toxicity).  Removing the behavior
    before the time is up cancels the reset.  The direction (downstream by
    default, like Toxiproxy's toxics) only says which Pipe's fault holds
    the timer.

    Example::

        twistd -n vaurien --backend 127.0.0.1:6379 --behavior 100:reset_peer \\
            --behavior-reset-peer-timeout 2000 --behavior-reset-peer-toxicity 0.5
    """

    name = "reset_peer"
    defaultDirection = DOWNSTREAM
    options = {
        "timeout": (
            "Milliseconds before the connection is reset (0: at once)",
            Duration("ms"),
            0.0,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return ResetPeerFault(stage)


__all__ = ["ResetPeer", "ResetPeerFault"]
