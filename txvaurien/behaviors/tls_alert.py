# -*- test-case-name: txvaurien.test.test_tls_faults -*-
"""
The C{tls_alert} behavior: the handshake is aborted with a TLS alert.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IConnection
from txvaurien.options import Choice
from txvaurien.tls.metrics import ALERTS


class TLSAlert(Behavior):
    """
    Answer a TLS client's hello with a fatal alert (C{handshake_failure}
    by default, or any other, such as C{internal_error},
    C{protocol_version}, C{unrecognized_name}, C{access_denied}) and close
    the connection: the backend is never dialled.

    The client reports the alert (Python: C{ssl.SSLError}
    "SSLV3_ALERT_HANDSHAKE_FAILURE"; curl exits with 35).  Acts under
    connection scope, on TLS listeners only; the direction is irrelevant.

    Example::

        twistd -n vaurien --proxy ssl:8443:privateKey=key.pem:certKey=cert.pem \\
            --backend 127.0.0.1:8080 --behavior 10:tls_alert \\
            --behavior-tls-alert-alert internal_error
    """

    name = "tls_alert"
    defaultDirection = DOWNSTREAM
    options = {
        "alert": ("The fatal alert sent", Choice(*sorted(
            name for name in ALERTS.values() if name != "close_notify")),
            "handshake_failure"),
    }

    def connectionMade(self, connection: IConnection) -> Any:
        from txvaurien.tls.faults import clientTLS
        from txvaurien.tls.server import refuse, whenServerName

        found = clientTLS(connection, self.name)
        if found is None:
            return None
        tlsProtocol = found[0]
        alert = self.settings["alert"]
        # Answer the client's hello (read while the proxy waits).
        whenServerName(tlsProtocol, lambda name: refuse(tlsProtocol, alert))
        # Never dial the backend; the client's leaving cancels this.
        return Deferred()


__all__ = ["TLSAlert"]
