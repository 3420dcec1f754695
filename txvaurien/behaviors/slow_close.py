# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{slow_close} behavior: the end of a stream comes late.
"""

from __future__ import annotations

from txvaurien.behaviors._timers import Deadline
from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Duration


class SlowCloseFault(Fault):
    """
    Forwards frames at once and the end of stream C{delay} milliseconds
    after it came.

    @ivar deadline: the pending forwarding of the end of stream (a
        L{Deadline}), or L{None}.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.deadline: Deadline | None = None

    def eofReceived(self) -> None:
        if self.settings["delay"] <= 0:
            self.stage.forwardEOF()
            return
        self.journal("delayed close", ms=self.settings["delay"])
        self.deadline = Deadline(self.stage, "delay", self._forwardEOF)

    def _forwardEOF(self) -> None:
        self.stage.forwardEOF()

    def unlink(self) -> None:
        deadline, self.deadline = self.deadline, None
        if deadline is not None and not deadline.fired:
            deadline.cancel()
            self.stage.forwardEOF()

    def connectionLost(self) -> None:
        deadline, self.deadline = self.deadline, None
        if deadline is not None:
            deadline.cancel()


class SlowClose(Behavior):
    """
    Delay the end of a stream by C{delay} milliseconds.

    Data passes at once; when the source closes its side (a FIN, which is
    how a closing peer's close reaches the proxy), the other side sees the
    end of stream only C{delay} ms later, and the connection stays open
    meanwhile, as with a peer slow to close (a new C{delay} set on a live
    proxy applies to an end of stream already waiting, within a second).
    It acts downstream by default
    (the backend's close reaches the client late), like Toxiproxy's toxics.

    The end of stream passes through the faults of connection scope only:
    under C{--behavior-scope request} this behavior has no effect.

    Example::

        twistd -n vaurien --backend 127.0.0.1:8080 --behavior 100:slow_close \\
            --behavior-slow-close-delay 5000
    """

    name = "slow_close"
    defaultDirection = DOWNSTREAM
    scopes = ("connection",)
    options = {
        "delay": (
            "Delay before the end of stream is passed on, in milliseconds",
            Duration("ms"),
            1000.0,
        ),
    }

    def buildFault(self, stage: IStage) -> IFault | None:
        if stage.message is not None:
            return None
        return SlowCloseFault(stage)


__all__ = ["SlowClose", "SlowCloseFault"]
