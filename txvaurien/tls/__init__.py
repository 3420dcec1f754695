"""
TLS for txvaurien: terminating clients' TLS (C{--proxy ssl:...}),
originating TLS to backends (C{--backend tls:...}), minting certificates
on the fly, and the handshake faults of the C{tls_*} behaviors.

  - L{txvaurien.tls.certs}: loading, checking and minting certificates;
  - L{txvaurien.tls.server}: the listener side (ALPN, SNI, mTLS);
  - L{txvaurien.tls.client}: the backend side (connecting and checking
    the handshake), and backends chosen by SNI;
  - L{txvaurien.tls.creator}: each backend connection's TLS
    (verification, SNI, client certificates);
  - L{txvaurien.tls.metrics}: handshake counters.

This module stays cheap to import: Twisted imports it to list endpoint
plugins (L{ServerParser}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer

#: The endpoint type C{ssl:} listeners are given to.
PREFIX = "txvaurien-tls"


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ServerParser:
    """
    The C{txvaurien-tls:} server endpoint parser, loading
    L{txvaurien.tls.server} only when used.
    """

    prefix = PREFIX

    def parseStreamServer(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:
        from txvaurien.tls.server import TLSServerParser

        return TLSServerParser().parseStreamServer(reactor, *args, **kwargs)


__all__ = ["PREFIX", "ServerParser"]
