"""
L{txvaurien.tls.transport.HalfCloseTLS}: the handshake goes on while the
application is paused, decrypted bytes wait for it, C{hold} stops the
handshake itself, and a half-close sends C{close_notify} and keeps reading.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Generator

from twisted.internet import defer, protocol, task
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txvaurien.test.tlshelpers import TestCertificates, inThread
from txvaurien.tls import certs
from txvaurien.tls.server import ServerTLS
from txvaurien.tls.transport import HalfCloseTLS, TLSFactory, WriteWindow


@implementer(IHandshakeListener)
class Recorder(protocol.Protocol):
    """
    Pauses its transport at once (as the proxy does until the backend is
    connected) and records what it is given.
    """

    def __init__(self) -> None:
        self.received = b""
        self.handshaken: defer.Deferred = defer.Deferred()
        self.got: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()

    def handshakeCompleted(self) -> None:
        self.handshaken.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.got.called:
            self.got.callback(None)


def listenRecorder(case: TestCase, recorder: Recorder) -> tuple[TestCertificates, Any, int]:
    """
    A TLS listener made of L{TLSFactory} and L{ServerTLS} on an ephemeral
    port of 127.0.0.1, whose every connection is C{recorder}, until the
    test ends.

    @return: its certificates, its L{ServerTLS} and its port.
    """
    from twisted.internet import reactor

    made = TestCertificates(case)
    chain, key = certs.loadKeyPair(made.certFile, made.keyFile)
    creator = ServerTLS(chain, key)
    inner = protocol.Factory.forProtocol(lambda: recorder)
    port = reactor.listenTCP(0, TLSFactory(creator, False, inner), interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return made, creator, port.getHost().port


class HalfCloseTLSTests(TestCase):
    """
    A TLS listener made of L{TLSFactory} and L{ServerTLS}, real sockets.
    """

    timeout = 20

    def setUp(self) -> None:
        self.recorder = Recorder()
        self.certs, self.creator, self.port = listenRecorder(self, self.recorder)
        self.sockets: list[Any] = []
        self.addCleanup(lambda: [s.close() for s in self.sockets])

    def connect(self, timeout: float = 5.0) -> Any:
        context = ssl.create_default_context(cafile=self.certs.caFile)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s = context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        self.sockets.append(s)
        return s

    @defer.inlineCallbacks
    def test_handshakeWhilePausedAndBytesHeld(self) -> Generator[Any, Any, None]:
        """
        With its application paused, the listener completes the handshake
        and holds the decrypted bytes; resumed, it delivers them on the
        next reactor turn, not from inside C{resumeProducing}.
        """
        from twisted.internet import reactor

        client = yield inThread(self.connect)
        yield self.recorder.handshaken
        yield inThread(client.sendall, b"hello")
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.recorder.received, b"")
        self.recorder.transport.resumeProducing()
        self.assertEqual(self.recorder.received, b"")
        yield self.recorder.got
        self.assertEqual(self.recorder.received, b"hello")

    @defer.inlineCallbacks
    def test_holdStopsHandshake(self) -> Generator[Any, Any, None]:
        """
        C{hold} stops the handshake until C{release}.
        """
        from twisted.internet import reactor

        original = self.recorder.connectionMade

        def connectionMade() -> None:
            original()
            self.recorder.transport.hold()

        self.recorder.connectionMade = connectionMade  # type: ignore[method-assign]
        connected = inThread(self.connect, 10.0)
        yield task.deferLater(reactor, 0.5, lambda: None)
        self.assertFalse(self.recorder.handshaken.called)
        self.assertFalse(connected.called)
        self.recorder.transport.release()
        yield self.recorder.handshaken
        yield connected

    @defer.inlineCallbacks
    def test_halfCloseSendsCloseNotifyAndKeepsReading(self) -> Generator[Any, Any, None]:
        """
        C{loseWriteConnection} sends C{close_notify} (the client reads a
        clean end of stream) and bytes sent afterwards still arrive.
        """
        client = yield inThread(self.connect)
        yield self.recorder.handshaken
        transport: Any = self.recorder.transport
        transport.resumeProducing()
        transport.write(b"bye")
        transport.loseWriteConnection()

        def readToEnd() -> bytes:
            data = b""
            while True:
                try:
                    more = client.recv(100)
                except ssl.SSLEOFError:
                    return data + b"<eof without close_notify>"
                if not more:
                    return data + b"<close_notify>"
                data += more

        received = yield inThread(readToEnd)
        self.assertEqual(received, b"bye<close_notify>")
        yield inThread(client.sendall, b"after")
        yield self.recorder.got
        self.assertEqual(self.recorder.received, b"after")


@implementer(IHalfCloseableProtocol)
class HalfCloseRecorder(Recorder):
    """
    A L{Recorder} that is told of ends of stream and answers one with
    C{"after eof"}, then half-closes.
    """

    ends = 0
    lost: Any = None

    def connectionMade(self) -> None:
        pass

    def readConnectionLost(self) -> None:
        self.ends += 1
        self.transport.write(b"after eof")
        self.transport.loseWriteConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = reason


def closeNotifyThenRead(port: int, caFile: str) -> tuple[bytes, str]:
    """
    Handshake over memory BIOs, send C{"request"} and C{close_notify},
    then read what the server still sends until its own C{close_notify}.
    Blocking: run it in a thread.

    @return: the bytes read, and how the stream ended.
    """
    context = ssl.create_default_context(cafile=caFile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def pump() -> bool:
            pending = outgoing.read()
            if pending:
                sock.sendall(pending)
            data = sock.recv(65536)
            if not data:
                incoming.write_eof()
                return False
            incoming.write(data)
            return True

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if not pump():
                    return received, "closed during the handshake"
        tls.write(b"request")
        try:
            tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())
        while True:
            try:
                received += tls.read(65536)
                continue
            except ssl.SSLZeroReturnError:
                return received, "close_notify"
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                return received, "error: {}".format(e)
            if not pump():
                try:
                    received += tls.read(65536)
                except ssl.SSLZeroReturnError:
                    return received, "close_notify"
                except ssl.SSLError as e:
                    return received, "eof: {}".format(e)
                return received, "eof"


class CloseNotifyTests(TestCase):
    """
    The peer's C{close_notify} is an end of stream for a half-closeable
    application, which may go on writing.
    """

    timeout = 20

    def setUp(self) -> None:
        self.recorder = HalfCloseRecorder()
        self.certs, self.creator, self.port = listenRecorder(self, self.recorder)

    def test_transportIsHalfCloseable(self) -> None:
        """
        L{HalfCloseTLS} provides L{IHalfCloseableProtocol}, so that the TCP
        transport beneath reports a FIN instead of closing at once.
        """
        verifyObject(IHalfCloseableProtocol, HalfCloseTLS(
            TLSFactory(self.creator, False, protocol.Factory()), protocol.Protocol()))

    @defer.inlineCallbacks
    def test_closeNotifyIsEndOfStream(self) -> Generator[Any, Any, None]:
        """
        A client's C{close_notify} reaches the application as
        C{readConnectionLost}, once, after the bytes before it; what the
        application writes afterwards reaches the client, followed by the
        application's own C{close_notify}, and the connection then closes.
        """
        received, ended = yield inThread(closeNotifyThenRead, self.port, self.certs.caFile)
        self.assertEqual((received, ended), (b"after eof", "close_notify"))
        self.assertEqual(self.recorder.received, b"request")
        self.assertEqual(self.recorder.ends, 1)
        while self.recorder.lost is None:
            yield task.deferLater(self._reactor(), 0.01, lambda: None)

    def _reactor(self) -> Any:
        from twisted.internet import reactor

        return reactor


class WriteWindowTests(TestCase):
    """
    L{WriteWindow}: the first write of a burst goes at once, the rest of
    the burst is joined and written on the next reactor turn.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.written: list[bytes] = []
        self.window = WriteWindow(self.written.append, self.clock)

    def test_firstWriteAtOnce(self) -> None:
        """
        A write after a quiet turn is written at once.
        """
        self.window.write(b"request")
        self.assertEqual(self.written, [b"request"])

    def test_burstJoinedOnNextTurn(self) -> None:
        """
        Writes that follow the first within the same turn are held, then
        written together when the turn ends; the next write opens a new
        window and goes at once.
        """
        for data in (b"a", b"b", b"c"):
            self.window.write(data)
        self.assertEqual(self.written, [b"a"])
        self.clock.advance(0)
        self.assertEqual(self.written, [b"a", b"bc"])
        self.window.write(b"d")
        self.assertEqual(self.written, [b"a", b"bc", b"d"])

    def test_bufferBounded(self) -> None:
        """
        Held bytes are written as soon as they exceed C{MAX_BUFFER}, not
        held until the turn ends.
        """
        self.window.write(b"x")
        big = b"y" * (WriteWindow.MAX_BUFFER + 1)
        self.window.write(big)
        self.assertEqual(self.written, [b"x", big])

    def test_closeFlushesAndStops(self) -> None:
        """
        C{close} writes what is held and cancels the pending turn.
        """
        self.window.write(b"a")
        self.window.write(b"b")
        self.window.close()
        self.assertEqual(self.written, [b"a", b"b"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
