"""
Base classes for behaviors and their faults.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.logger import LogLevel
from twisted.plugin import IPlugin
from zope.interface import implementer

from txvaurien import logs

from txvaurien.frames import BOTH, DIRECTIONS
from txvaurien.interfaces import IBehavior, IConnection, IFault, IStage
from txvaurien.journal import stageEvent
from txvaurien.match import MatchError
from txvaurien.match import parse as parseMatch
from txvaurien.options import Choice, Number, OptionType
from txvaurien.plugin import Configurable

_log = logs.logger("txvaurien.behaviors")


#: The options every behavior has, declared by L{commonOptions}.
COMMON_NAMES = ("direction", "toxicity", "match")


class MatchText(OptionType):
    """
    A C{match} option's value: checked when given, kept as text.
    """

    name = "match"

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        return OptionType.check(self, value)

    def parse(self, text: str) -> str | None:
        try:
            parseMatch(text)
        except MatchError as e:
            raise ValueError(str(e))
        return text if text.strip() else None


def commonOptions(direction: str) -> dict[str, tuple[str, Any, Any]]:
    """
    The options every behavior has, with C{direction} as the default
    direction.
    """
    return {
        "direction": (
            "Which way the behavior acts: upstream (client to backend), "
            "downstream (backend to client) or both",
            Choice(*DIRECTIONS),
            direction,
        ),
        "toxicity": (
            "Probability (0 to 1) that the behavior applies to a given "
            "connection, or request under request scope",
            Number(float, 0.0, 1.0),
            1.0,
        ),
        "match": (
            "Act only on requests (or, under connection scope, connections) "
            "that match: terms such as method=POST path=/api/* key~^user: "
            "client=10.0.0.0/8, all of which must hold (see Matching)",
            MatchText(),
            None,
        ),
    }


@implementer(IPlugin, IBehavior)
class Behavior(Configurable):
    """
    A base for behaviors.

    Subclasses set C{name}, their own C{options} and C{defaultDirection};
    the common C{direction}, C{toxicity} and C{match} options are added to
    C{options} when the class is defined.  They override
    L{connectionMade} to act on a connection as a whole and L{buildFault}
    to act on frames.

    An instance is also a Twisted plugin: a third-party package exposes
    C{myBehavior = MyBehavior()} in a C{twisted/plugins/} module.
    """

    defaultDirection: ClassVar[str] = BOTH
    #: The behavior scopes (C{"connection"}, C{"request"}) under which the
    #: behavior acts; under another, C{twistd vaurien} warns at start.
    scopes: ClassVar[tuple[str, ...]] = ("connection", "request")


    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = {
            name: spec
            for name, spec in cls.options.items()
            if name not in COMMON_NAMES
        }
        if cls.__dict__.get("inert"):
            cls.options = own
        else:
            cls.options = {**own, **commonOptions(cls.defaultDirection)}

    def connectionMade(self, connection: IConnection) -> Any:
        """
        Do nothing to the connection as a whole.
        """
        return None

    def buildFault(self, stage: IStage) -> IFault | None:
        """
        Act on no frames.
        """
        return None


@implementer(IFault)
class Fault:
    """
    A fault that forwards everything unchanged; subclasses override what
    they change.

    @ivar stage: the L{IStage} this fault sits in.
    @ivar settings: the behavior's live settings.
    """

    def __init__(self, stage: IStage) -> None:
        self.stage = stage
        self.settings = stage.behavior.settings

    def journal(self, action: str, message: Any = None, **figures: Any) -> None:
        """
        Record what this fault did (C{"delayed"}, C{ms=200}) as a journal
        event and an info log line.

        @param message: the message acted on, under connection scope
            (under request scope the stage's request is used).
        """
        stageEvent(self.stage, action, message, **figures)

    def frameReceived(self, frame: Any) -> None:
        self.stage.forward(frame)

    def eofReceived(self) -> None:
        self.stage.forwardEOF()

    def unlink(self) -> None:
        pass

    def connectionLost(self) -> None:
        pass


def logDecision(stage: IStage, decision: str, **fields: Any) -> None:
    """
    Log a random decision a fault made (a jitter sample, a dropped frame,
    a corrupted byte) as a structured debug event, so that two runs with
    the same seed can be compared.  Free when debug logging is off.

    @param stage: the fault's stage.
    @param decision: what was decided, in a few words.
    @param fields: the decision's parameters.
    """
    if not logs.isEnabled(LogLevel.debug):
        return
    connection = stage.connection
    message = stage.message
    _log.debug(
        "{proxy} #{cid} request {request} {behavior} {direction}: {decision}",
        proxy=connection.proxy.name,
        cid=connection.id,
        request=None if message is None else message.index,
        behavior=stage.behavior.name,
        direction=stage.direction,
        decision=decision,
        parameters=fields,
        event="decision",
    )
