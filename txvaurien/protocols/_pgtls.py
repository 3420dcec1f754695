# -*- test-case-name: txvaurien.test.test_tls_backend_upgrade -*-
"""
PostgreSQL's backend leg switched to TLS by the proxy itself
(C{tls_backend=always}; see L{txvaurien.upgrade.BACKEND_OPTIONS}), for
clients that speak in clear or that switch with the proxy alone.

As soon as the backend connects, and before the client's first byte
passes, the proxy sends its own SSLRequest.  The server's C{S} is not the
client's to see: the backend leg is layered with TLS and verified, then
the client's bytes flow, inside TLS from the proxy on.  Any other answer
fails the connection with the session's FATAL error.

A client that then asks for TLS or GSS encryption itself is answered by
the proxy: C{S} when the handler has a certificate (the client leg is
upgraded alone), C{N} otherwise (the client goes on in clear, or gives up
if it requires TLS).  Either request is framed as its L{DATA} message,
without its bytes: the backend, past its own SSLRequest, never sees it.
"""

from __future__ import annotations

import struct
from typing import Any

from txvaurien.frames import DATA, Frame
from txvaurien.protocols._standin import StandIn

#: The codes of the requests for encryption (SSLRequest, GSSENCRequest).
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104

_NAMES = {SSL_REQUEST: "SSLRequest", GSSENC_REQUEST: "GSSENCRequest"}


#: The SASL mechanism that binds to the TLS channel, and the message and
#: authentication code that offer it.
_PLUS = b"SCRAM-SHA-256-PLUS\x00"
_AUTHENTICATION = 0x52
_SASL = 10
#: The largest authentication request held to be read whole.
_MAX_OFFER = 1024


def hideChannelBinding(framer: Any) -> None:
    """
    The proxy made the backend leg's TLS itself: unless the client
    switches to TLS with the proxy meanwhile, take C{SCRAM-SHA-256-PLUS}
    out of the server's SASL offer, the first message it sends from now
    on (the answer to the startup message).

    A server offers channel binding over TLS, and libpq refuses a server
    that offers it over a connection in clear (a sign that someone in
    between strips TLS, which the proxy does on purpose here).  Without
    the offer, a client in clear logs in with C{SCRAM-SHA-256}.  A client
    in TLS with the proxy cannot log in with SCRAM unless it sets
    C{channel_binding=disable}: it binds to the proxy's TLS session, or,
    offered no binding, says it could have, which the server takes for a
    downgrade.
    """
    standIn = StandIn(framer, lambda data: _offer(framer, standIn, data))


def _offer(framer: Any, standIn: StandIn, data: bytes) -> list[Frame]:
    buffered = framer.held + data
    if len(buffered) < 9:
        framer.held = buffered
        return []
    kind, length, code = struct.unpack_from("!BiI", buffered)
    if (kind == _AUTHENTICATION and code == _SASL and length < _MAX_OFFER
            and not framer.pg.clientTLS):
        end = 1 + length
        if len(buffered) < end:
            framer.held = buffered
            return []
        mechanisms = buffered[9:end]
        if mechanisms.startswith(_PLUS) or b"\x00" + _PLUS in mechanisms:
            kept = b"\x00".join(
                m for m in mechanisms.split(b"\x00") if m + b"\x00" != _PLUS)
            buffered = (struct.pack("!BiI", kind, 8 + len(kept), code) + kept
                        + buffered[end:])
    standIn.giveWay()
    framer.held = b""
    return framer.feed(buffered)


def prepareBackend(session: Any) -> bool:
    """
    With C{tls_backend=always}, ask the newly connected backend to switch
    to TLS before anything of the client's passes.

    @return: whether the session holds the client's bytes until the
        backend leg is verified.
    """
    if not session.handler.tls.backendAlways:
        return False
    connection = session.connection
    downstream = session.downstream
    standIn = StandIn(downstream, lambda data: backendAnswer(downstream, standIn, data))
    connection.backend.transport.write(struct.pack("!ii", 8, SSL_REQUEST))
    return True


def backendAnswer(framer: Any, standIn: StandIn, data: bytes) -> list[Frame]:
    """
    The backend's answer to the proxy's own SSLRequest: an C{S} alone
    layers TLS on the backend leg; anything else fails the connection.
    Nothing reaches the client.
    """
    standIn.giveWay()
    session = framer.pg
    connection = session.connection
    if data[:1] != b"S":
        connection.tlsUpgradeEnded(
            "the server does not accept SSL (it answered {!r} to the proxy's "
            "SSLRequest)".format(data[:1]))
        return []
    if len(data) > 1:
        # Bytes after the S cannot come from TLS (CVE-2021-23222).
        connection.tlsUpgradeEnded(
            "the server sent {} bytes after accepting SSL".format(len(data) - 1))
        return []
    session.backendTLS = True
    awaitClientRequest(session.upstream)
    hideChannelBinding(framer)
    session.handler.tls.startBackend(connection)
    return []


def awaitClientRequest(framer: Any) -> None:
    """
    Read the client's next message with L{clientRequest}.
    """
    standIn = StandIn(framer, lambda data: clientRequest(framer, standIn, data))


def clientRequest(framer: Any, standIn: StandIn, data: bytes) -> list[Frame]:
    """
    The client's first message once the backend leg is TLS: an SSLRequest
    or GSSENCRequest is the proxy's to answer; anything else is framed as
    usual.
    """
    buffered = framer.held + data
    if len(buffered) < 8:
        framer.held = buffered
        return []
    standIn.giveWay()
    length, code = struct.unpack_from("!ii", buffered)
    if length != 8 or code not in _NAMES:
        framer.held = b""
        return framer.feed(buffered)
    framer.held = b""
    session = framer.pg
    connection = session.connection
    accept = code == SSL_REQUEST and session.handler.tls.enabled
    name = _NAMES[code]
    message = framer.newMessage(DATA, {"command": name, "answer": "S" if accept else "N"})
    frames = [Frame(b"", message, True, True)]
    if len(buffered) > 8:
        # The client must wait for the answer (CVE-2021-23214).
        connection.close("the client sent {} bytes after its {}".format(
            len(buffered) - 8, name))
        return frames
    connection.client.transport.write(b"S" if accept else b"N")
    if accept:
        session.clientTLS = True
        session.handler.tls.startClient(connection)
    else:
        # Refused, the client may ask again (SSL after GSS encryption).
        awaitClientRequest(framer)
    return frames


__all__ = ["awaitClientRequest", "backendAnswer", "clientRequest", "hideChannelBinding",
           "prepareBackend"]
