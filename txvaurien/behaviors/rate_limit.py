# -*- test-case-name: txvaurien.test.test_datagram_behaviors -*-
"""
The C{rate_limit} behavior: a path that carries so many datagrams, or
bytes, a second.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number

#: Seconds by which a datagram may leave early through rounding.
SLACK = 1e-6


class RateLimitFault(Fault):
    """
    Paces datagrams: each takes C{1 / packets} seconds, and C{size /
    bytes} seconds, of the path (the longer of the two); up to C{burst}
    datagrams may leave back to back after a quiet time.  A datagram that
    cannot leave now waits in a queue of at most C{queue} datagrams, or is
    dropped when the queue is full.

    @ivar free: when the path is next free (reactor seconds).
    @ivar queue: the waiting C{(departure, frame)}, oldest first.
    @ivar timer: the pending departure.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.clock = stage.connection.clock
        self.free = float("-inf")
        self.queue: deque[tuple[float, Frame]] = deque()
        self.timer: Any = None

    def _cost(self, size: int) -> float:
        settings = self.settings
        packets, rate = settings["packets"], settings["bytes"]
        cost = 1.0 / packets if packets > 0 else 0.0
        if rate > 0:
            cost = max(cost, size / rate)
        return cost

    def frameReceived(self, frame: Frame) -> None:
        settings = self.settings
        now = self.clock.seconds()
        cost = self._cost(len(frame.data))
        if cost <= 0.0 and not self.queue:
            self.stage.forward(frame)
            return
        start = max(self.free, now - (settings["burst"] - 1) * cost)
        if start <= now + SLACK and not self.queue:
            self.free = start + cost
            self.stage.forward(frame)
            return
        if len(self.queue) >= settings["queue"]:
            self.stage.behavior.limited += 1
            logDecision(self.stage, "drop: over the rate", message=frame.message.index)
            self.stage.drop(frame)
            return
        departure = max(start, now)
        self.free = departure + cost
        self.queue.append((departure, frame))
        if self.timer is None:
            self.timer = self.clock.callLater(departure - now, self._depart)

    def _depart(self) -> None:
        self.timer = None
        now = self.clock.seconds() + SLACK
        queue = self.queue
        while queue and queue[0][0] <= now:
            self.stage.forward(queue.popleft()[1])
        if queue:
            self.timer = self.clock.callLater(
                max(0.0, queue[0][0] - self.clock.seconds()), self._depart)

    def _cancel(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def unlink(self) -> None:
        self._cancel()
        queue, self.queue = self.queue, deque()
        for _, frame in queue:
            self.stage.forward(frame)

    def connectionLost(self) -> None:
        self._cancel()
        self.queue.clear()


class RateLimit(Behavior):
    """
    Limit datagrams to C{packets} a second and C{bytes} a second (0: no
    limit on that count), per session and direction, as a slow or policed
    link does.

    Datagrams are spaced evenly: each takes the path for C{1 / packets}
    seconds or C{size / bytes} seconds, whichever is longer, and after a
    quiet time up to C{burst} datagrams may leave at once.  What exceeds
    the rate is dropped (C{queue} 0, the default, as a policer does) or
    waits in a queue of at most C{queue} datagrams and leaves in order at
    the rate (a shaper); what overflows the queue is dropped.  Dropped
    datagrams are logged as decisions and counted in the behavior's
    C{limited} count.

    Datagrams only (a UDP proxy); for TCP streams use C{bandwidth}.  It
    acts downstream by default.

    Example::

        twistd -n vaurien --proxy udp:9000 --backend udp:host=127.0.0.1:port=9001 \\
            --behavior 100:rate_limit --behavior-rate-limit-packets 100 \\
            --behavior-rate-limit-queue 50
    """

    name = "rate_limit"
    defaultDirection = DOWNSTREAM
    datagram = True
    datagramOnly = True
    options = {
        "packets": ("Datagrams per second (0: no limit)", Number(float, 0), 100.0),
        "bytes": ("Bytes per second (0: no limit)", Number(float, 0), 0.0),
        "burst": ("Datagrams that may leave back to back", Number(int, 1), 1),
        "queue": (
            "Datagrams over the rate that wait their turn (0: drop them)",
            Number(int, 0),
            0,
        ),
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        self.limited = 0

    def buildFault(self, stage: IStage) -> IFault | None:
        if not getattr(stage.connection, "datagram", False):
            # A stream proxy's table refuses it (see
            # txvaurien.datagram.pipeline.checkTable); inert otherwise.
            return None
        return RateLimitFault(stage)


__all__ = ["RateLimit", "RateLimitFault"]
