# -*- test-case-name: txvaurien.test.test_behaviors_vaurien -*-
"""
The C{hang} behavior: read the request, never answer.
"""

from __future__ import annotations

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import BOTH, UPSTREAM, Frame
from txvaurien.interfaces import IStage


class HangFault(Fault):
    """
    Swallows every frame of its direction and never passes its end of
    stream on.

    Upstream, an end of stream from the client means it gave up: the
    connection is closed.  Downstream, under request scope, the last frame
    of the response is kept (empty) for as long as the connection lives,
    so that the responses to later requests wait behind it instead of
    being taken for its answer.

    Nothing is held but that one empty frame, no timer runs, and the
    source is never paused, so a client that goes away is noticed at once.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.kept: Frame | None = None
        self.eof = False

    def frameReceived(self, frame: Frame) -> None:
        stage = self.stage
        if frame.first:
            self.journal("swallowed", frame.message)
        if (
            frame.last
            and stage.message is not None
            and stage.direction != UPSTREAM
            and self.kept is None
        ):
            self.kept = Frame(b"", frame.message, frame.first, True)
            return
        stage.drop(frame)

    def eofReceived(self) -> None:
        if self.stage.direction == UPSTREAM:
            self.stage.connection.close()
        else:
            self.eof = True

    def unlink(self) -> None:
        kept, self.kept = self.kept, None
        if kept is not None:
            self.stage.drop(kept)
        if self.eof:
            self.eof = False
            self.stage.forwardEOF()

    def connectionLost(self) -> None:
        self.kept = None


class Hang(Behavior):
    """
    Read the request and never answer: the client waits until it gives up.

    Upstream, every request (under C{tcp}, every byte) the client sends is
    read and thrown away; the backend never sees it.  Downstream, nothing
    the backend sends reaches the client, not even its end of stream.  The
    proxy keeps reading from the client, so the connection ends as soon as
    the client closes it: an end of stream from the client closes both
    connections.  No timer runs and nothing is buffered while it waits.

    Under request scope, the responses to requests sent after a hung one
    wait behind it, as they would behind a server stuck on that request,
    and the client's end of stream closes the connection there too.

    The default C{direction} is C{both}.  With C{downstream}, requests do
    reach the backend and only its answers are swallowed: the server did
    the work, the client never hears of it.  With C{upstream}, the backend
    never sees the requests, but a greeting it sends first still reaches
    the client.

    The backend connection is still made (and kept idle): a backend that
    closes idle connections ends the hang when it does.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:5432 \\
            --behavior 5:hang
    """

    name = "hang"
    defaultDirection = BOTH
    options = {}

    def buildFault(self, stage: IStage) -> HangFault:
        return HangFault(stage)
