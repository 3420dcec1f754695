# -*- test-case-name: txvaurien.test.test_behaviors_vaurien -*-
"""
The C{delay} behavior: hold requests, or their responses, for a while.
"""

from __future__ import annotations

from txvaurien.behaviors._holding import HoldingFault
from txvaurien.behaviors.base import Behavior
from txvaurien.frames import BOTH, DOWNSTREAM, UPSTREAM, Frame
from txvaurien.interfaces import IStage
from txvaurien.options import Duration


class DelayFault(HoldingFault):
    """
    Holds every frame of its direction for C{sleep} seconds after it
    arrived, in order, when that direction is the one C{before} names;
    passes frames straight on otherwise.

    The stream is shifted in time, not reshaped: each frame leaves exactly
    C{sleep} seconds after it came, so a request (or response) reaches its
    peer C{sleep} seconds late, from its first byte to its last.  While the
    fault holds more than L{holdLimit} bytes (1 MiB) it pauses its source,
    so a fast sender is slowed down instead of filling memory.  The end of
    stream follows the last held frame.
    """

    def _sleep(self) -> float:
        """
        How long a frame arriving now is held: C{sleep} on the direction
        C{before} names, no time on the other.
        """
        wanted = UPSTREAM if self.settings["before"] else DOWNSTREAM
        if self.stage.direction != wanted:
            return 0.0
        return max(0.0, self.settings["sleep"])

    def frameReceived(self, frame: Frame) -> None:
        sleep = self._sleep()
        if frame.first and sleep > 0.0:
            self.journal("delayed", frame.message, ms=round(sleep * 1000.0, 3))
        if not self.queue and sleep <= 0.0:
            self.stage.forward(frame)
        else:
            # Even when options changed under live traffic, no frame
            # overtakes those held before it: hold() sees to it.
            self.hold(frame, self.clock.seconds() + sleep)


class Delay(Behavior):
    """
    Delay each request before it reaches the backend, or each response
    before it reaches the client, by C{sleep} seconds.

    With C{before} (the default) the request is held: the backend sees it
    C{sleep} seconds late, as if the network to the server were slow.
    With C{before} off (C{--behavior-delay-no-before}) the request goes at
    once and the response is held instead: the server did its work, but
    the client hears of it late.  Either way the added latency of a round
    trip is C{sleep}.

    Under request scope (protocols that frame requests) only the requests
    chosen for C{delay}, or their responses, are held, and the requests
    and responses after them wait their turn.  Under connection scope
    (C{tcp}) every chunk of bytes in the chosen direction is held.  Each
    frame leaves C{sleep} seconds after it arrived, in order; a half-close
    follows the last held frame.  The fault holds at most 1 MiB before it
    stops reading from the sender.

    The default C{direction} is C{both}, so that C{before} alone picks the
    direction; restricting C{direction} to the other side turns the
    behavior into a pass-through.  Options are read when a frame arrives,
    so changing them affects live connections.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:6379 \\
            --behavior 20:delay --behavior-delay-sleep 0.25 \\
            --behavior-delay-no-before
    """

    name = "delay"
    defaultDirection = BOTH
    options = {
        "sleep": ("Seconds the request (or response) is held", Duration("s"), 1.0),
        "before": (
            "Delay the request before it reaches the backend; when off, "
            "delay the response before it reaches the client",
            bool,
            True,
        ),
    }

    def buildFault(self, stage: IStage) -> DelayFault:
        return DelayFault(stage)
