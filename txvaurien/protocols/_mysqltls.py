# -*- test-case-name: txvaurien.test.test_tls_backend_upgrade -*-
"""
MySQL's backend leg switched to TLS by the proxy itself
(C{tls_backend=always}; see L{txvaurien.upgrade.BACKEND_OPTIONS}), for
clients that speak in clear: a server with C{require_secure_transport}
reached by a client without TLS settings.

MySQL's client asks for TLS in its first packet, which the server numbers
1; the full handshake response then comes as packet 2.  A client in clear
sends its handshake response as packet 1, so the proxy:

  - checks that the greeting offers SSL (else the client gets an ERR in
    place of the greeting) and, without a certificate of its own for
    clients, takes C{CLIENT_SSL} out of the greeting the client sees;
  - sends the server an SSL request of its own (packet 1, the client's
    capabilities with C{CLIENT_SSL}), layers TLS on the backend leg and
    verifies it, holding the client's handshake response meanwhile;
  - then sends it on inside TLS with C{CLIENT_SSL} set, and shifts the
    sequence ids of every packet of the rest of the handshake by one:
    the server's down by one to the client, the client's up by one to
    the server, until the server's OK starts the command phase, where
    each command starts again from 0.

A client that asks for TLS itself (the handler has a certificate) is
upgraded on both legs as usual (L{txvaurien.upgrade}).
"""

from __future__ import annotations

from typing import Any, Callable

from txvaurien.frames import Frame
from txvaurien.protocols._mysqlpackets import CLIENT_PROTOCOL_41, CLIENT_SSL, _COMMAND_PHASE
from txvaurien.protocols._mysqlpg import int16
from txvaurien.protocols._standin import StandIn

#: The largest handshake packet the proxy reads whole (a greeting or
#: handshake response with connection attributes is a few hundred bytes).
MAX_PACKET = 64 * 1024


def _packet(framer: Any, standIn: StandIn, data: bytes,
            failed: Callable[[str], None]) -> tuple[bytes, bytes] | None:
    """
    The first whole packet of what C{framer} holds and C{data}, and what
    follows it, once it is whole (C{standIn} then gives way); L{None}
    until then (what there is held), or if it is longer than
    L{MAX_PACKET} (C{standIn} gives way, C{failed} is told why).
    """
    buffered = framer.held + data
    framer.held = b""
    if len(buffered) >= 4:
        end = 4 + (buffered[0] | buffered[1] << 8 | buffered[2] << 16)
        if end > MAX_PACKET:
            standIn.giveWay()
            failed("a handshake packet of {} bytes".format(end - 4))
            return None
        if len(buffered) >= end:
            standIn.giveWay()
            return buffered[:end], buffered[end:]
    framer.held = buffered
    return None


def _greetingCapabilities(packet: bytes) -> int | None:
    """
    The position of the lower capability flags in a greeting (protocol
    10), or L{None} if it is not one.
    """
    if len(packet) < 5 or packet[4] != 10:
        return None
    nul = packet.find(b"\x00", 5)
    if nul < 0 or nul + 1 + 4 + 8 + 1 + 2 > len(packet):
        return None
    return nul + 1 + 4 + 8 + 1


def prepare(session: Any) -> None:
    """
    With C{tls_backend=always}, read the greeting before the framer does.
    """
    downstream = session.downstream
    standIn = StandIn(downstream, lambda data: _greeting(session, standIn, data))


def _greeting(session: Any, standIn: StandIn, data: bytes) -> list[Frame]:
    connection = session.connection
    read = _packet(session.downstream, standIn, data, lambda why: connection.tlsUpgradeEnded(
        "the server's greeting is not MySQL's ({})".format(why)))
    if read is None:
        return []
    packet, rest = read
    pos = _greetingCapabilities(packet)
    if pos is None or not int16(packet, pos) & CLIENT_SSL:
        connection.tlsUpgradeEnded("the server does not offer SSL")
        return []
    if not session.handler.tls.enabled:
        # The proxy cannot give the client TLS: it does not offer it.
        flags = int16(packet, pos) & ~CLIENT_SSL
        packet = packet[:pos] + bytes((flags & 0xFF, flags >> 8)) + packet[pos + 2:]
    frames: list[Frame] = session.downstream.feed(packet + rest)
    upstream = session.upstream
    first = StandIn(upstream, lambda data: _response(session, first, data))
    return frames


def _response(session: Any, standIn: StandIn, data: bytes) -> list[Frame]:
    """
    The client's first packet: an SSL request goes on as usual (both legs
    are upgraded); a handshake response in clear waits while the proxy
    switches the backend leg alone.
    """
    upstream = session.upstream
    connection = session.connection
    read = _packet(upstream, standIn, data, lambda why: connection.close(
        "the client's handshake response: {}".format(why)))
    if read is None:
        return []
    packet, rest = read
    if len(packet) < 4 + 9 or int16(packet, 4) & CLIENT_SSL:
        return upstream.feed(packet + rest)
    capabilities = int.from_bytes(packet[4:8], "little") | CLIENT_SSL
    if not capabilities & CLIENT_PROTOCOL_41 or len(packet) < 4 + 32:
        # Protocol 4.1 only: its SSL request takes 32 bytes.
        connection.tlsUpgradeEnded("the client does not speak protocol 4.1")
        return []
    # The SSL request is the response's first 32 bytes: capabilities,
    # packet size, character set, and the filler whose last 4 bytes are
    # MariaDB's extended capabilities.
    request = (b"\x20\x00\x00\x01" + capabilities.to_bytes(4, "little")
               + packet[8:4 + 32])
    session.backendShift = True
    session.heldResponse = packet[:4] + capabilities.to_bytes(4, "little") + packet[8:] + rest
    connection.backend.transport.write(request)
    session.handler.tls.startBackend(connection)
    return []


def ready(session: Any) -> None:
    """
    The backend leg is verified: send the held handshake response on, and
    shift the sequence ids of the rest of the handshake.
    """
    held, session.heldResponse = session.heldResponse, b""
    for framer, delta in ((session.upstream, 1), (session.downstream, -1)):
        Shift(session, framer, delta)
    pipe = session.connection.upstream
    # With CLIENT_SSL set, it is not an SSL request to pass through.
    session.upgrading = True
    try:
        pipe.deliverHeld(held)
    finally:
        session.upgrading = False


class Shift:
    """
    Stands in for a framer's feed during the rest of the handshake, adding
    C{delta} to every packet's sequence id, until the command phase.

    @ivar remaining: bytes of the current packet's body still to come.
    """

    def __init__(self, session: Any, framer: Any, delta: int) -> None:
        self.session = session
        self.framer = framer
        self.delta = delta
        self.remaining = 0
        self.partial = b""
        self.standIn = StandIn(framer, self.feed)

    def feed(self, data: bytes) -> list[Frame]:
        """
        Renumber the packets of C{data}, then frame them.
        """
        if self.session.phase == _COMMAND_PHASE and not self.remaining and not self.partial:
            self.standIn.giveWay()
            return self.framer.feed(data)
        data = self.partial + data
        self.partial = b""
        out = bytearray()
        pos = 0
        n = len(data)
        while pos < n:
            if self.remaining:
                step = min(self.remaining, n - pos)
                out += data[pos:pos + step]
                self.remaining -= step
                pos += step
                continue
            if n - pos < 4:
                self.partial = data[pos:]
                break
            self.remaining = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            out += data[pos:pos + 3]
            out.append((data[pos + 3] + self.delta) & 0xFF)
            pos += 4
        frames = self.standIn.passOn(bytes(out))
        if self.session.phase == _COMMAND_PHASE and not self.remaining and not self.partial:
            self.standIn.giveWay()
        return frames


__all__ = ["MAX_PACKET", "Shift", "prepare", "ready"]
