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
from twisted.internet.interfaces import IHandshakeListener
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from txvaurien.test.tlshelpers import TestCertificates, inThread
from txvaurien.tls import certs
from txvaurien.tls.server import ServerTLS
from txvaurien.tls.transport import TLSFactory


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


class HalfCloseTLSTests(TestCase):
    """
    A TLS listener made of L{TLSFactory} and L{ServerTLS}, real sockets.
    """

    timeout = 20

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.certs = TestCertificates(self)
        chain, key = certs.loadKeyPair(self.certs.certFile, self.certs.keyFile)
        self.recorder = Recorder()
        inner = protocol.Factory.forProtocol(lambda: self.recorder)
        port = reactor.listenTCP(0, TLSFactory(ServerTLS(chain, key), False, inner),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
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
