# -*- test-case-name: txvaurien.test.test_behaviors_toxics -*-
"""
The C{slow_open} behavior: the backend connection is made late.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IConnection
from txvaurien.journal import connectionEvent
from txvaurien.options import Duration


class SlowOpen(Behavior):
    """
    Wait C{delay} milliseconds before connecting to the backend.

    The client's connection is accepted at once, but the proxy dials the
    backend only after the delay, so whatever the client sends meanwhile
    waits (the client is not read from), and a server that speaks first
    is silent that long: a slow connection set-up, which a client's connect
    timeout does not see.  A client that leaves during the delay cancels
    it, and the backend is never dialled.

    The backend connection is made once per client connection, so this
    acts under connection scope only: under C{--behavior-scope request},
    and on a live connection a change of the behavior table gives it to,
    it has no effect.  The direction is irrelevant (downstream by default,
    like Toxiproxy's toxics).

    Example::

        twistd -n vaurien --backend 127.0.0.1:3306 --behavior 50:slow_open \\
            --behavior-slow-open-delay 3000
    """

    name = "slow_open"
    defaultDirection = DOWNSTREAM
    scopes = ("connection",)
    options = {
        "delay": (
            "Delay before the backend connection is made, in milliseconds",
            Duration("ms"),
            1000.0,
        ),
    }

    def connectionMade(self, connection: IConnection) -> Deferred[Any] | None:
        delay = self.settings["delay"] / 1000.0
        if delay <= 0:
            return None
        connectionEvent(self, connection, "delayed connect", ms=self.settings["delay"])
        call: Any = None

        def cancel(d: Deferred[Any]) -> None:
            if call.active():
                call.cancel()

        waiting: Deferred[Any] = Deferred(cancel)
        call = connection.callLater(delay, waiting.callback, None)
        return waiting


__all__ = ["SlowOpen"]
