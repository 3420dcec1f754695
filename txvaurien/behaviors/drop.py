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
    a decision.

    For the full Gilbert-Elliott model, as netem's C{loss gemodel p r 1-h
    1-k} has it, set C{good_to_bad} above 0: then a chain of two states
    decides, starting in the good state.  A message is lost with
    probability C{loss_good} in the good state and C{loss_bad} in the bad
    one; after each message the chain moves from good to bad with
    probability C{good_to_bad} and back with C{bad_to_good}, and
    C{loss_rate} and C{correlation} are not used.  Bad states last
    C{1 / bad_to_good} messages on average, and the long-run loss rate is
    C{(bad_to_good * loss_good + good_to_bad * loss_bad) / (good_to_bad +
    bad_to_good)}.  The C{correlation} model above is the special case
    C{loss_good} 0, C{loss_bad} 1, C{good_to_bad = loss_rate * (1 -
    correlation)}, C{bad_to_good = (1 - correlation) * (1 - loss_rate)}.
    On a UDP proxy each datagram is a message.  It acts downstream by default (responses are lost), like
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
        "good_to_bad": (
            "Gilbert-Elliott: probability (0 to 1) of moving from the good "
            "state to the bad one after each message; above 0 it replaces "
            "loss_rate and correlation by the four Gilbert-Elliott parameters",
            Number(float, 0.0, 1.0),
            0.0,
        ),
        "bad_to_good": (
            "Gilbert-Elliott: probability (0 to 1) of moving from the bad "
            "state back to the good one after each message",
            Number(float, 0.0, 1.0),
            1.0,
        ),
        "loss_good": (
            "Gilbert-Elliott: probability (0 to 1) that a message is lost "
            "in the good state",
            Number(float, 0.0, 1.0),
            0.0,
        ),
        "loss_bad": (
            "Gilbert-Elliott: probability (0 to 1) that a message is lost "
            "in the bad state",
            Number(float, 0.0, 1.0),
            1.0,
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
        if self.settings["good_to_bad"] > 0.0:
            return self._gilbertElliott(stage, message, rng)
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

    def _gilbertElliott(
        self, stage: IStage, message: Message, rng: random.Random
    ) -> bool:
        """
        Whether C{message} is lost under the full Gilbert-Elliott model: a
        chain of two states, good and bad, starting good, each with its own
        loss probability; the state moves after each message.  C{_lost}
        keeps the state (C{True} for bad) instead of the last outcome.
        """
        settings = self.settings
        key = (stage.connection, stage.direction)
        bad = self._lost.get(key)
        if bad is None:
            bad = False
            self._prune(stage)
        chance = settings["loss_bad"] if bad else settings["loss_good"]
        lost = chance >= 1.0 or (chance > 0.0 and rng.random() < chance)
        move = settings["bad_to_good"] if bad else settings["good_to_bad"]
        if move >= 1.0 or (move > 0.0 and rng.random() < move):
            bad = not bad
        self._lost[key] = bad
        logDecision(
            stage, "drop" if lost else "keep", message=message.index,
            chance=chance, state="bad" if bad else "good",
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
