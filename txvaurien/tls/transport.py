# -*- test-case-name: txvaurien.test.test_tls_termination -*-
"""
A TLS transport that half-closes.

Twisted's L{TLSMemoryBIOProtocol} has no C{loseWriteConnection}: the
proxy's half-close reached the TCP socket beneath it (through
C{ProtocolWrapper.__getattr__}), sending a FIN without TLS's
C{close_notify} and ahead of records still held back for aggregation.
L{HalfCloseTLS} sends what it holds, then C{close_notify}, then the FIN,
and keeps reading.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory


class HalfCloseTLS(BufferingTLSTransport):
    """
    L{BufferingTLSTransport} with a real C{loseWriteConnection}, and the
    application's producer as its C{producer} (as on a TCP transport;
    without it, C{producer} named the TCP transport's and a producer that
    checks before unregistering never did, so C{loseConnection} waited
    for it forever).
    """

    @property
    def producer(self) -> Any:
        membrane = self._producer
        return None if membrane is None else membrane._producer

    def loseWriteConnection(self) -> None:
        """
        Flush, send C{close_notify} and shut the socket's write side; the
        peer's bytes are still read.
        """
        if self._lostTLSConnection or self._tlsConnection is None or self.disconnecting:
            return
        if not self._handshakeDone or self._appSendBuffer:
            # Nothing can be said cleanly before the handshake: close.
            self.loseConnection()
            return
        self._aggregator.flush()
        try:
            self._tlsConnection.shutdown()
        except Error:
            pass
        self._flushSendBIO()
        raw: Any = self.transport
        raw.loseWriteConnection()

    def useContext(self, context: Any) -> None:
        """
        Make this connection's TLS from C{context} instead, before its
        handshake has begun (protocol versions are fixed when the OpenSSL
        connection is made, so a context switched to later, for the
        server name, cannot change them).
        """
        from OpenSSL.SSL import Connection

        assert not self._handshakeDone
        connection = Connection(context, None)
        factory: Any = self.factory
        if factory._isClient:
            connection.set_connect_state()
        else:
            connection.set_accept_state()
        connection.set_app_data(self)
        self._tlsConnection = connection

    def _flushSendBIO(self) -> None:
        # The socket may be gone already: a TLS error on a half-closed
        # socket closes it at once, from inside the read loop.
        if self._tlsConnection is None:
            return
        BufferingTLSTransport._flushSendBIO(self)


class TLSFactory(TLSMemoryBIOFactory):
    """
    A L{TLSMemoryBIOFactory} whose connections are L{HalfCloseTLS}.

    @ivar creator: the connection creator (L{txvaurien.tls.server.ServerTLS}
        or L{txvaurien.tls.client.ClientTLS}).
    """

    protocol = HalfCloseTLS

    def __init__(self, creator: Any, isClient: bool, wrappedFactory: Any) -> None:
        TLSMemoryBIOFactory.__init__(self, creator, isClient, wrappedFactory)
        self.creator = creator
        self._isClient = isClient


__all__ = ["HalfCloseTLS", "TLSFactory"]
