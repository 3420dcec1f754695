# -*- test-case-name: txvaurien.test.test_tls_faults -*-
"""
The C{tls_old_version} behavior: the handshake offers only an old TLS.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IConnection
from txvaurien.options import Choice


class TLSOldVersion(Behavior):
    """
    Offer a client of a TLS listener only an old protocol version
    (C{TLSv1} or C{TLSv1.1}), as an outdated server would.

    A current client refuses it (Python: C{ssl.SSLError} "unsupported
    protocol" or "tlsv1 alert protocol version"; curl exits with 35); a
    client configured to accept it goes on.  Acts under connection scope,
    on TLS listeners only; the direction is irrelevant.

    Example::

        twistd -n vaurien --proxy ssl:8443:caDir=ca --backend 127.0.0.1:8080 \\
            --behavior 100:tls_old_version
    """

    name = "tls_old_version"
    defaultDirection = DOWNSTREAM
    options = {
        "version": ("The only protocol version offered: TLSv1 or TLSv1.1",
                    Choice("TLSv1", "TLSv1.1"), "TLSv1"),
    }

    def connectionMade(self, connection: IConnection) -> Any:
        from txvaurien.tls.faults import VersionFault, clientTLS
        from txvaurien.tls.server import setFault

        found = clientTLS(connection, self.name)
        if found is not None:
            tlsProtocol, server = found
            fault = VersionFault(self.settings["version"])
            fault.apply(tlsProtocol, server)
            setFault(tlsProtocol, fault)
        return None


__all__ = ["TLSOldVersion"]
