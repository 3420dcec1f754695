# -*- test-case-name: txvaurien.test.test_behaviors_vaurien -*-
"""
The C{blackout} behavior: the server is gone.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import UPSTREAM, Frame
from txvaurien.interfaces import IConnection, IStage
from txvaurien.journal import connectionEvent


class BlackoutFault(Fault):
    """
    Under request scope: drops the request and cuts the connection when
    its first frame arrives; drops whatever of the request follows.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.cut = False

    def frameReceived(self, frame: Frame) -> None:
        self.stage.drop(frame)
        if not self.cut:
            self.cut = True
            self.journal("reset" if self.settings["reset"] else "closed")
            self.stage.behavior.cut(self.stage.connection)


class Blackout(Behavior):
    """
    Close the client's connection at once, without contacting the backend.

    Under connection scope (C{tcp}) the connection is closed as soon as it
    is accepted; the backend is never dialled.  Under request scope, the
    connection is cut when the first bytes of a request chosen for
    C{blackout} arrive: that request never reaches the backend (the
    backend connection, made when the client connected, is closed too),
    and responses not yet delivered are lost.

    By default the client sees a clean close (FIN).  With C{reset} it sees
    a TCP reset (RST): its next read or write fails with C{ECONNRESET}.

    The default C{direction} is C{upstream}, where requests come from;
    under connection scope it does not matter, and under request scope
    C{downstream} turns the behavior off.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:3306 \\
            --behavior 10:blackout --behavior-blackout-reset
    """

    name = "blackout"
    defaultDirection = UPSTREAM
    options = {
        "reset": (
            "Close with a TCP reset (RST) instead of a clean close (FIN)",
            bool,
            False,
        ),
    }

    def cut(self, connection: IConnection) -> None:
        """
        Close C{connection}, or reset it if C{reset} is set.
        """
        if self.settings["reset"]:
            connection.reset()
        else:
            connection.close()

    def connectionMade(self, connection: IConnection) -> Any:
        connectionEvent(self, connection, "reset" if self.settings["reset"] else "closed")
        self.cut(connection)
        return None

    def buildFault(self, stage: IStage) -> BlackoutFault | None:
        if stage.message is None or stage.direction != UPSTREAM:
            return None
        return BlackoutFault(stage)
