# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{latency} behavior: every frame arrives late.
"""

from __future__ import annotations

from txvaurien.behaviors._holding import MAX_HOLD_LIMIT, HoldingFault, faultRandom
from txvaurien.behaviors.base import Behavior, logDecision
from txvaurien.frames import DOWNSTREAM, Frame, Message
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Choice, Duration

#: Bytes one direction of one connection may hold before the source is
#: paused: the most any holding fault may (15 MiB, so that the memory stays
#: within the core's 16 MiB bound).  A delayed stream keeps its throughput
#: times its latency in flight, so this caps the throughput through
#: C{latency} at this many bytes per delay (about 157 MB/s at 100 ms).
LATENCY_HOLD = MAX_HOLD_LIMIT

#: The shape of the C{pareto} distribution: with 2, the added delay's mean
#: is C{jitter} and its variance is infinite (a heavy tail).
PARETO_SHAPE = 2.0

DISTRIBUTIONS = ("uniform", "normal", "pareto")


class LatencyFault(HoldingFault):
    """
    Holds each frame for the latency, on the clock; a frame never leaves
    before the one ahead of it, whatever the jitter.

    @ivar random: this fault's random stream.
    @ivar delay: the delay, in seconds, of the message being received.
    @ivar last: the time the last frame held is due.
    """

    def __init__(self, stage: IStage) -> None:
        HoldingFault.__init__(self, stage)
        self.random = faultRandom(stage)
        self.delay = 0.0
        self.last = 0.0

    def holdLimit(self) -> int:
        return LATENCY_HOLD

    def sample(self, message: Message) -> float:
        """
        Draw the delay of C{message}, in seconds, and log it.
        """
        settings = self.settings
        latency = settings["latency"]
        jitter = settings["jitter"]
        if jitter <= 0:
            return latency / 1000.0
        distribution = settings["distribution"]
        rng = self.random
        if distribution == "normal":
            ms = rng.gauss(latency, jitter)
        elif distribution == "pareto":
            ms = latency + jitter * (rng.paretovariate(PARETO_SHAPE) - 1.0)
        else:
            ms = latency + rng.uniform(-jitter, jitter)
        ms = max(0.0, ms)
        logDecision(
            self.stage, "latency", delay=ms, message=message.index,
            distribution=distribution,
        )
        return ms / 1000.0

    def frameReceived(self, frame: Frame) -> None:
        if frame.first:
            self.delay = self.sample(frame.message)
            self.journal("delayed", frame.message, ms=round(self.delay * 1000.0, 3))
        now = self.clock.seconds()
        due = now + self.delay
        if due < self.last:
            due = self.last
        self.last = due
        if due <= now and not self.queue:
            self.stage.forward(frame)
        else:
            self.hold(frame, due)

    def eofDue(self, now: float) -> float:
        return max(now + self.settings["latency"] / 1000.0, self.last)


class Latency(Behavior):
    """
    Delay every frame by C{latency} milliseconds, give or take C{jitter}.

    Each message (a request or response for framing protocols, each chunk
    of bytes for C{tcp}) is held on the reactor's clock for a delay drawn
    from C{distribution}, then forwarded; all the frames of a message get
    its delay.  Messages stay in order: one whose delay is shorter than its
    predecessor's leaves right after it.  The end of stream is delayed by
    C{latency} too (and follows the last frame).

      - C{uniform}: between C{latency - jitter} and C{latency + jitter}
        (as Toxiproxy);
      - C{normal}: mean C{latency}, standard deviation C{jitter};
      - C{pareto}: at least C{latency}, plus a heavy-tailed extra delay
        whose mean is C{jitter} (Pareto of shape 2): mostly small, now and
        then very long.

    Delays below zero count as zero.  With a jitter, every delay drawn is
    logged as a decision.

    A delayed stream keeps its throughput times its latency in flight.
    Up to 15 MiB per direction of a connection are held, so at 100 ms the
    throughput can reach about 157 MB/s; beyond that the source is paused
    until frames have left (under request scope, the limit applies to each
    request and each response).  It acts downstream by default (responses
    are late), like Toxiproxy's toxics; C{direction=both} delays both ways.

    Example::

        twistd -n vaurien --backend 127.0.0.1:6379 --behavior 100:latency \\
            --behavior-latency-latency 200 --behavior-latency-jitter 50 \\
            --behavior-latency-distribution normal
    """

    name = "latency"
    defaultDirection = DOWNSTREAM
    options = {
        "latency": ("Delay added to each frame, in milliseconds", Duration("ms"), 100.0),
        "jitter": (
            "Variation of the delay, in milliseconds (see distribution)",
            Duration("ms"),
            0.0,
        ),
        "distribution": (
            "How the delay varies: uniform (latency +/- jitter), normal "
            "(standard deviation jitter) or pareto (heavy tail above latency)",
            Choice(*DISTRIBUTIONS),
            "uniform",
        ),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return LatencyFault(stage)


__all__ = ["Latency", "LatencyFault", "LATENCY_HOLD"]
