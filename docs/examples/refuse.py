"""
A third-party behavior: C{refuse} answers the requests whose command it
lists with the protocol's own error, instead of sending them to the
backend, as a server that refuses them would.
"""

from __future__ import annotations

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import REQUEST, Frame
from txvaurien.interfaces import IFault, IStage


class RefuseFault(Fault):
    """
    Drops the listed requests and answers each with the protocol's error;
    every other frame goes on unchanged.
    """

    def frameReceived(self, frame: Frame) -> None:
        message = frame.message
        if message.kind != REQUEST or message.meta.get("command") not in self.settings["commands"]:
            self.stage.forward(frame)
            return
        # Every frame leaves a fault exactly once: this one is dropped.
        self.stage.drop(frame)
        if frame.last:
            connection = self.stage.connection
            error = connection.session.errorReply(message, "refused by txvaurien")
            # The answer takes the request's place among the responses.
            connection.reply(message, error)


class Refuse(Behavior):
    """
    Answer the requests whose command is listed with the protocol's error.
    """

    name = "refuse"
    defaultDirection = "upstream"
    options = {
        "commands": ("Commands to refuse (upper case)", list[str], ["DEL"]),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return RefuseFault(stage)
