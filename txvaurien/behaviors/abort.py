# -*- test-case-name: txvaurien.test.test_behaviors_vaurien -*-
"""
The C{abort} behavior: the request was sent, the connection drops before
the answer comes back.
"""

from __future__ import annotations

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import DATA, DOWNSTREAM, RESPONSE, Frame
from txvaurien.interfaces import IStage


class AbortFault(Fault):
    """
    Downstream: drops the first response frame (under C{tcp}, the first
    bytes from the backend) and drops both connections.  Greetings and
    pushes, which answer nothing, pass.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.aborted = False

    def frameReceived(self, frame: Frame) -> None:
        if self.aborted:
            self.stage.drop(frame)
            return
        if frame.message.kind not in (RESPONSE, DATA):
            self.stage.forward(frame)
            return
        self.aborted = True
        self.journal("aborted", frame.message)
        self.stage.drop(frame)
        self.stage.connection.abort()


class Abort(Behavior):
    """
    Forward the request, then drop both connections before the response
    reaches the client.

    The backend receives the request and does its work; when its answer
    starts to arrive, the proxy drops it and aborts both connections (a
    TCP reset to the client and to the backend).  The client cannot tell
    whether its request was carried out, which is what makes retries of
    non-idempotent requests interesting.  Like a real connection drop, it
    loses whatever the proxy had not yet written to the client, responses
    to earlier pipelined requests included.

    Under C{tcp} the client's bytes go through, and the connection is
    aborted when the first bytes from the backend arrive, so a backend
    that speaks first (SMTP, MySQL) proxied as C{tcp} is aborted at its
    greeting; their own protocol handlers let the greeting through.  A
    request that expects no response (memcache C{noreply}) simply goes
    through.

    The default C{direction} is C{downstream}, where the response is
    caught; C{upstream} turns the behavior off.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:6379 \\
            --protocol redis --behavior 5:abort
    """

    name = "abort"
    defaultDirection = DOWNSTREAM
    options = {}

    def buildFault(self, stage: IStage) -> AbortFault | None:
        if stage.direction != DOWNSTREAM:
            return None
        return AbortFault(stage)
