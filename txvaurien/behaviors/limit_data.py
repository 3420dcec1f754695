# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{limit_data} behavior: the connection closes after so many bytes.
"""

from __future__ import annotations

from txvaurien.behaviors._holding import piece
from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import DOWNSTREAM, Frame
from txvaurien.interfaces import IFault, IStage
from txvaurien.options import Number


class LimitDataFault(Fault):
    """
    Forwards the first C{bytes} bytes, then closes the connection and
    drops the rest.

    @ivar passed: bytes forwarded so far.
    @ivar done: whether the limit was reached.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.passed = 0
        self.done = False

    def frameReceived(self, frame: Frame) -> None:
        if self.done:
            self.stage.drop(frame)
            return
        size = len(frame.data)
        if not size:
            self.stage.forward(frame)
            return
        room = self.settings["bytes"] - self.passed
        if size < room:
            self.passed += size
            self.stage.forward(frame)
            return
        self.done = True
        if size == room:
            self.passed += size
            self.stage.forward(frame)
        else:
            room = max(0, room)
            if room:
                self.passed += room
                self.stage.forward(piece(frame, 0, room))
            self.stage.drop(piece(frame, room, size))
        connection = self.stage.connection
        self.journal("closed", frame.message, bytes=self.passed)
        connection.close("limit_data behavior")


class LimitData(Behavior):
    """
    Pass C{bytes} bytes, then close the connection.

    The bytes are counted in the behavior's direction (in each direction
    with C{direction=both}, and per request under request scope).  Once
    the count reaches C{bytes}, exactly that many have been forwarded: the
    proxy closes both sides cleanly (FIN, after what is buffered) and
    discards anything that comes after.  With 0, the connection closes
    when the first byte comes, which is not forwarded.  It acts downstream
    by default (responses are cut short), like Toxiproxy's toxics.

    Example::

        twistd -n vaurien --backend 127.0.0.1:8080 --behavior 100:limit_data \\
            --behavior-limit-data-bytes 65536
    """

    name = "limit_data"
    defaultDirection = DOWNSTREAM
    options = {
        "bytes": ("Bytes passed before the connection is closed", Number(int, 0), 1024),
    }

    def buildFault(self, stage: IStage) -> IFault:
        return LimitDataFault(stage)


__all__ = ["LimitData", "LimitDataFault"]
