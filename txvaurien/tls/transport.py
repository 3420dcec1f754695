# -*- test-case-name: txvaurien.test.test_tls_termination -*-
"""
A TLS transport that half-closes, and handshakes while its reader is
paused.

Twisted's L{TLSMemoryBIOProtocol} has no C{loseWriteConnection}: the
proxy's half-close reached the TCP socket beneath it (through
C{ProtocolWrapper.__getattr__}), sending a FIN without TLS's
C{close_notify} and ahead of records still held back for aggregation.
L{HalfCloseTLS} sends what it holds, then C{close_notify}, then the FIN,
and keeps reading.

The proxy pauses its client until the backend is connected.  A TLS
client's handshake then waited for the backend's connection (and its own
handshake) to be over; L{HalfCloseTLS} goes on reading while its
application is paused but the handshake is not done, and holds back only
the decrypted bytes, so the two handshakes overlap.  L{HalfCloseTLS.hold}
stops the handshake itself (the C{tls_delay} behavior).

The peer's C{close_notify} ended the whole connection, replies still
held by faults on their way to the other side included; L{HalfCloseTLS}
reports it to the proxy as an end of stream.
"""

from __future__ import annotations

from typing import Any, Callable

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import connectionDone
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import _twisted


class WriteWindow:
    """
    Joins the writes of a burst into few TLS records without delaying the
    first: the first write after a quiet turn is encrypted at once, and
    what follows within the same reactor turn is joined and written on
    the next (or as soon as L{MAX_BUFFER} bytes wait).

    Twisted's aggregator holds even a lone write for a turn, which adds a
    reactor turn to every request and response the proxy relays over TLS.

    @cvar MAX_BUFFER: the most bytes held before they are written.
    """

    MAX_BUFFER = 64_000

    def __init__(self, write: Callable[[bytes], object], clock: Any) -> None:
        self._write = write
        self._clock = clock
        self._buffer: list[bytes] = []
        self._size = 0
        self._scheduled: Any = None

    def write(self, data: bytes) -> None:
        """
        Write C{data} now if it opens a burst, else with the rest of it.
        """
        if self._scheduled is None:
            self._scheduled = self._clock.callLater(0, self._windowEnded)
            self._write(data)
            return
        self._buffer.append(data)
        self._size += len(data)
        if self._size > self.MAX_BUFFER:
            self.flush()

    def _windowEnded(self) -> None:
        self._scheduled = None
        self.flush()

    def flush(self) -> None:
        """
        Write what is held.
        """
        if self._buffer:
            data = b"".join(self._buffer)
            del self._buffer[:]
            self._size = 0
            self._write(data)

    def close(self) -> None:
        """
        The connection is lost: write what is held (the TLS layer drops
        it if it cannot), and stop the window.
        """
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self.flush()


@implementer(IHalfCloseableProtocol)
class HalfCloseTLS(BufferingTLSTransport):
    """
    L{BufferingTLSTransport} with a real C{loseWriteConnection}, and the
    application's producer as its C{producer} (as on a TCP transport;
    without it, C{producer} named the TCP transport's and a producer that
    checks before unregistering never did, so C{loseConnection} waited
    for it forever).

    The peer's C{close_notify} is an end of stream, as a FIN is on TCP: an
    application that provides L{IHalfCloseableProtocol} hears of it in
    C{readConnectionLost} and may go on writing (the proxy still owes the
    peer's other side what its faults hold); the connection closes once
    this side has sent its own C{close_notify}.  Other applications see
    the connection closed, as with Twisted's own TLS.

    @ivar readClosed: whether the peer's C{close_notify} was read.
    @ivar writeClosed: whether this side sent its C{close_notify}.
    """

    _appPaused = False
    _held = 0
    readClosed = False
    writeClosed = False

    def __init__(self, factory: Any, wrappedProtocol: Any, _connectWrapped: bool = True) -> None:
        BufferingTLSTransport.__init__(self, factory, wrappedProtocol, _connectWrapped)
        self._aggregator = WriteWindow(  # type: ignore[assignment]
            TLSMemoryBIOProtocol.write.__get__(self), factory._clock)
        self.write = self._aggregator.write  # type: ignore[method-assign]

    @property
    def producer(self) -> Any:
        membrane = self._producer
        return None if membrane is None else membrane._producer

    # Reading: the socket is read while the handshake needs it, unless held;
    # decrypted bytes reach the application only when it is not paused.

    def _updateReading(self) -> None:
        raw: Any = self.transport
        if raw is None or self._lostTLSConnection:
            return
        if self._held or (self._appPaused and self._handshakeDone):
            raw.pauseProducing()
        else:
            raw.resumeProducing()

    def pauseProducing(self) -> None:
        """
        Deliver no more decrypted bytes; read only what the handshake
        still needs.
        """
        self._appPaused = True
        self._updateReading()

    def resumeProducing(self) -> None:
        """
        Read again, and deliver what was decrypted meanwhile on the next
        reactor turn (as a socket's reads come: never from inside the
        caller's own C{dataReceived}).
        """
        self._appPaused = False
        self._updateReading()
        if self._handshakeDone and self._pending is None:
            self._pending = self.factory._clock.callLater(0, self._deliverPending)

    _pending: Any = None

    def _deliverPending(self) -> None:
        self._pending = None
        if not (self._appPaused or self._lostTLSConnection or self._tlsConnection is None):
            self._flushReceiveBIO()

    def hold(self) -> None:
        """
        Stop reading the socket, handshake included, until L{release}.
        """
        self._held += 1
        self._updateReading()

    def release(self) -> None:
        """
        Undo one L{hold}.
        """
        self._held = max(0, self._held - 1)
        self._updateReading()

    def _checkHandshakeStatus(self) -> None:
        BufferingTLSTransport._checkHandshakeStatus(self)
        if self._handshakeDone and self._appPaused:
            self._updateReading()

    def _flushReceiveBIO(self) -> None:
        if self._appPaused and not self._lostTLSConnection:
            # Leave decrypted bytes in OpenSSL until the application
            # resumes; answer what the handshake asks meanwhile.
            self._flushSendBIO()
            return
        # TLSMemoryBIOProtocol's loop, but for the peer's close_notify.
        while not (self._lostTLSConnection or self.readClosed):
            try:
                data = self._tlsConnection.recv(2**15)
            except WantReadError:
                break
            except ZeroReturnError:
                if self._endOfStream():
                    break
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()

    def _endOfStream(self) -> bool:
        """
        The peer sent C{close_notify}: tell a half-closeable application
        its read side ended (closing the socket if this side already sent
        its own).

        @return: whether it was told (else the connection is closed).
        """
        application = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if application is None or self.disconnecting:
            return False
        self.readClosed = True
        if self.writeClosed:
            self._flushSendBIO()
            raw: Any = self.transport
            raw.loseConnection()
        application.readConnectionLost()
        return True

    def readConnectionLost(self) -> None:
        """
        The socket's read side ended (a FIN).  After C{close_notify} it
        says nothing new; without it (a truncated stream), the connection
        is closed, as Twisted's TLS does, its application told why.
        """
        if self.readClosed:
            return
        raw: Any = self.transport
        raw.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        The socket's write side was shut (after L{loseWriteConnection}).
        """

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
        self.writeClosed = True
        try:
            self._tlsConnection.shutdown()
        except Error:
            pass
        self._flushSendBIO()
        raw: Any = self.transport
        if self.readClosed:
            # Both ends said close_notify: nothing more can pass.
            raw.loseConnection()
        else:
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

    def connectionLost(self, reason: Any = connectionDone) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        BufferingTLSTransport.connectionLost(self, reason)

    #: Whether the transport beneath is a plain socket that records may be
    #: written to directly (L{_flushSendBIO}), known once connected.
    _direct = False

    def makeConnection(self, transport: Any) -> None:
        self._direct = _twisted.plainSocketTransport(transport)
        BufferingTLSTransport.makeConnection(self, transport)

    def _flushSendBIO(self) -> None:
        """
        Write what OpenSSL made to the socket: at once when nothing waits
        in the TCP transport before it (L{txvaurien._twisted.socketSend},
        saving a reactor turn per record), through the transport for what
        the socket does not take.
        """
        # The socket may be gone already: a TLS error on a half-closed
        # socket closes it at once, from inside the read loop.
        if self._tlsConnection is None:
            return
        try:
            data = self._tlsConnection.bio_read(2**15)
        except WantReadError:
            return
        raw: Any = self.transport
        if self._direct and _twisted.writable(raw):
            sent = _twisted.socketSend(raw, data)
            if sent == len(data):
                return
            data = data[sent:]
        raw.write(data)


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


__all__ = ["HalfCloseTLS", "TLSFactory", "WriteWindow"]
