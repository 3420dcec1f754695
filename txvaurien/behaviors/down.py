# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{down} behavior: the service is down.
"""

from __future__ import annotations

from typing import Any, ClassVar

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import BOTH, Frame
from txvaurien.interfaces import IConnection, IFault, IStage
from txvaurien.journal import connectionEvent, stageEvent


class DownFault(Fault):
    """
    Drops every frame and the end of stream of a connection being closed.
    """

    def frameReceived(self, frame: Frame) -> None:
        self.stage.drop(frame)

    def eofReceived(self) -> None:
        pass


def _close(connection: IConnection) -> None:
    connection.close("down behavior")


class Down(Behavior):
    """
    Act as if the service were down: close every connection, without
    contacting the backend.

    A new connection is closed at once (FIN) and the backend is never
    dialled; a live connection is closed as soon as a change of the
    behavior table gives it this behavior, and what either side sends
    meanwhile is discarded.  Under request scope, the connection is closed
    when a request draws it, and that request is not forwarded.

    This maps Toxiproxy's C{enabled=false} onto a behavior, with one
    difference: the proxy's port still accepts connections (to close them
    at once), so clients see a connection closed rather than refused.  To
    really stop listening, disable the proxy through the control API,
    which unbinds its port until it is enabled again.  It acts in both
    directions by default: with another C{direction}, data going the other
    way is not discarded while the connection closes.

    Example::

        twistd -n vaurien --backend 127.0.0.1:6379 --behavior 100:down
    """

    name = "down"
    defaultDirection = BOTH
    options: ClassVar[dict[str, tuple[str, Any, Any]]] = {}

    def connectionMade(self, connection: IConnection) -> None:
        connectionEvent(self, connection, "closed")
        _close(connection)

    def buildFault(self, stage: IStage) -> IFault:
        if stage.message is not None:
            stageEvent(stage, "closed")
            _close(stage.connection)
        return DownFault(stage)


__all__ = ["Down", "DownFault"]
