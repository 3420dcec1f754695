"""
Datagrams: a UDP chaos proxy.

A L{DatagramProxy<txvaurien.datagram.proxy.DatagramProxy>} listens on a UDP
port (L{twisted.internet.interfaces.IReactorUDP}).  Each client address
gets a L{session<txvaurien.datagram.session.DatagramSession>} with its own
connected backend socket, so replies go back to the right client; idle
sessions expire on the reactor's clock, and their number is bounded.  Each
datagram is one message, and the behaviors of the proxy's table act on it
(L{txvaurien.datagram.pipeline}).  L{makeDatagramService} builds the
L{twisted.application.service.IService} C{twistd vaurien --proxy udp:...}
runs.
"""

from txvaurien.datagram.addresses import (
    DATAGRAM_OPTIONS,
    UDPBackend,
    isDatagram,
    parseUDPBackend,
    parseUDPListen,
)
from txvaurien.datagram.proxy import DatagramProxy
from txvaurien.datagram.service import DatagramService, makeDatagramService

__all__ = [
    "DATAGRAM_OPTIONS",
    "DatagramProxy",
    "DatagramService",
    "UDPBackend",
    "isDatagram",
    "makeDatagramService",
    "parseUDPBackend",
    "parseUDPListen",
]
