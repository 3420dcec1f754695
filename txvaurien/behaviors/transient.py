# -*- test-case-name: txvaurien.test.test_behaviors_vaurien -*-
"""
The C{transient} behavior: a short outage, then recovery.
"""

from __future__ import annotations

from txvaurien.behaviors.base import logDecision
from txvaurien.behaviors.error import ERROR_OPTIONS, CountedErrors
from txvaurien.frames import BOTH
from txvaurien.interfaces import IStage
from txvaurien.options import Number


class Transient(CountedErrors):
    """
    Answer the first C{agitate} requests with the protocol's own error,
    like C{error}, then let every request through.

    The count is kept per proxy, across connections: with C{agitate} 1,
    the first request this behavior is chosen for fails and the retry
    succeeds, even when the client retries on a new connection.  That is
    what a retry policy needs to be tested against.  The control API can
    reset the count to start a new outage; rebuilding the behavior table
    resets it too.  C{agitate} 0 lets everything through.

    C{codes}, C{inject} and C{inject_size} mean what they mean for
    C{error}; with C{inject} it is the first C{agitate} responses that are
    spoiled.

    The default C{direction} is C{both}, as for C{error}.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:8080 \\
            --protocol http --behavior transient \\
            --behavior-transient-agitate 2 --behavior-transient-codes 503
    """

    name = "transient"
    defaultDirection = BOTH
    options = {
        "agitate": (
            "Requests, counted per proxy, answered with an error before "
            "requests pass",
            Number(int, 0),
            1,
        ),
        **ERROR_OPTIONS,
    }

    def fails(self, stage: IStage, index: int) -> bool:
        """
        Fail the first C{agitate}; let the rest pass, logging the recovery.
        """
        agitate = self.settings["agitate"]
        if index < agitate:
            return True
        if index == agitate:
            logDecision(stage, "recovered", agitate=agitate)
        return False
