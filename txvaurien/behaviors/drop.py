# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{drop} behavior: whole messages are lost, alone or in bursts.
"""

from __future__ import annotations

import random
from typing import Any

from txvaurien.behaviors._holding import faultRandom
from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import DOWNSTREAM, Frame, Message
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number


class DropFault(Fault):
    """
    Decides on the first frame of each message whether it is lost, and
    drops or forwards all of that message's frames accordingly.

    @ivar random: this fault's random stream.
    @ivar dropping: whether the message being received is lost.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.random = faultRandom(stage)
        self.dropping = False

    def frameReceived(self, frame: Frame) -> None:
        if frame.first:
            self.dropping = self.stage.behavior.decide(
                self.stage, frame.message, self.random)
            if self.dropping:
                self.journal("dropped", frame.message)
        if self.dropping:
            self.stage.drop(frame)
        else:
            self.stage.forward(frame)

    def connectionLost(self) -> None:
        self.stage.behavior.forget(self.stage)


class Drop(Behavior):
    """
    Swallow whole messages: each is lost with probability C{loss_rate},
    and losses come in bursts as C{correlation} grows.

    A message is a request or a response for framing protocols (under
    request scope, the one request or response of the exchange that drew
    the behavior), or a chunk of bytes for C{tcp}.  A lost message never
    reaches its peer, and nothing replaces it: a client whose request or
    response is lost waits for it until its own timeout, and on a
    pipelining connection the responses after a lost request wait too.
    This is most useful on message protocols; on C{tcp} it breaks the
    stream.

    Losses follow the simple Gilbert-Elliott model (as netem's correlated
    loss is meant to): whether a message is lost depends on whether the
    previous one in the same direction of the connection was.  After a
    loss the next one is lost with probability C{loss_rate + correlation *
    (1 - loss_rate)}, after a delivery with probability C{loss_rate * (1 -
    correlation)}.  So in the long run C{loss_rate} of the messages are
    lost, the correlation between successive outcomes is C{correlation},
    and bursts of losses last C{1 / ((1 - correlation) * (1 - loss_rate))}
    messages on average.  With C{correlation} 0 losses are independent;
    with 1 the first outcome repeats for ever.  Every outcome is logged as
    a decision.  It acts downstream by default (responses are lost), like
    Toxiproxy's toxics.

    Example::

        twistd -n vaurien --backend 127.0.0.1:6379 --protocol redis \\
            --behavior 100:drop --behavior-drop-loss-rate 0.05 \\
            --behavior-drop-correlation 0.5
    """

    name = "drop"
    defaultDirection = DOWNSTREAM
    options = {
        "loss_rate": (
            "Long-run fraction (0 to 1) of the messages that are lost",
            Number(float, 0.0, 1.0),
            0.1,
        ),
        "correlation": (
            "Correlation (0 to 1) between the fates of successive messages: "
            "0 for independent losses, higher for longer bursts",
            Number(float, 0.0, 1.0),
            0.0,
        ),
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        # Whether the last message of each (connection, direction) was
        # lost: faults of request scope live one exchange, the burst state
        # lives as long as the connection.
        self._lost: dict[tuple[Any, str], bool] = {}

    def decide(self, stage: IStage, message: Message, rng: random.Random) -> bool:
        """
        Whether C{message}, starting at C{stage}, is lost; logged.

        @param rng: the random stream of the fault that asks.
        """
        rate = self.settings["loss_rate"]
        correlation = self.settings["correlation"]
        key = (stage.connection, stage.direction)
        previous = self._lost.get(key)
        if previous is None:
            chance = rate
            self._prune(stage)
        elif previous:
            chance = rate + correlation * (1.0 - rate)
        else:
            chance = rate * (1.0 - correlation)
        if chance <= 0.0:
            lost = False
        elif chance >= 1.0:
            lost = True
        else:
            lost = rng.random() < chance
        self._lost[key] = lost
        logDecision(
            stage, "drop" if lost else "keep", message=message.index,
            chance=chance,
        )
        return lost

    def forget(self, stage: IStage) -> None:
        """
        C{stage}'s connection is gone: forget its state.
        """
        self._lost.pop((stage.connection, stage.direction), None)

    def _prune(self, stage: IStage) -> None:
        """
        Forget the connections that ended (under request scope no fault
        may be left to say so), once they outnumber the live ones.
        """
        live = getattr(stage.connection.proxy, "connections", None)
        if live is None or len(self._lost) <= 2 * len(live) + 16:
            return
        for key in [k for k in self._lost if k[0] not in live]:
            del self._lost[key]

    def buildFault(self, stage: IStage) -> IFault:
        return DropFault(stage)


__all__ = ["Drop", "DropFault"]
