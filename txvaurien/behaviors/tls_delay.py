# -*- test-case-name: txvaurien.test.test_tls_faults -*-
"""
The C{tls_delay} behavior: the handshake stalls.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IConnection
from txvaurien.options import Duration


class TLSDelay(Behavior):
    """
    Hold a TLS client's hello for C{delay} milliseconds before answering
    it (C{0}: never): the TCP connection is accepted at once, the
    handshake stalls.

    A client with a handshake timeout shorter than the delay gives up
    (Python: C{TimeoutError} "_ssl.c: The handshake operation timed out";
    curl exits with 28 under C{--max-time}); a patient one goes on, and
    the backend is dialled after the delay.  On a plain listener the
    proxy stays silent as long (like C{slow_open}).  Acts under connection
    scope; the direction is irrelevant.

    Example::

        twistd -n vaurien --proxy ssl:8443:caDir=ca --backend 127.0.0.1:8080 \\
            --behavior 20:tls_delay --behavior-tls-delay-delay 10000
    """

    name = "tls_delay"
    defaultDirection = DOWNSTREAM
    options = {
        "delay": ("How long the handshake stalls (0: for ever)",
                  Duration("ms"), 5000.0),
    }

    def connectionMade(self, connection: IConnection) -> Any:
        delay = self.settings["delay"] / 1000.0
        tlsProtocol: Any = getattr(getattr(connection, "client", None), "transport", None)
        if hasattr(tlsProtocol, "hold"):
            # Stop reading the hello; the backend is dialled meanwhile.
            tlsProtocol.hold()
            if delay > 0:
                connection.callLater(delay, tlsProtocol.release)
            return None
        # A plain listener: delay the dial, as slow_open does (the proxy
        # reads nothing from its client until the backend is connected).
        calls: list[Any] = []

        def cancel(d: Deferred[Any]) -> None:
            for call in calls:
                if call.active():
                    call.cancel()

        waiting: Deferred[Any] = Deferred(cancel)
        if delay > 0:
            calls.append(connection.callLater(delay, waiting.callback, None))
        return waiting


__all__ = ["TLSDelay"]
