"""
Integration tests of the proxy core on real sockets of 127.0.0.1: byte-exact
transfers with half-close, backpressure, and unreachable backends, through
both the splice(2) path and the ordinary transport path.
"""

from __future__ import annotations

import hashlib
import socket
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer

from txvaurien import splice
from txvaurien.test.helpers import listenProxy
from txvaurien.test.servers import listenBackend

MiB = 1024 * 1024


def pattern(offset: int, size: int) -> bytes:
    """
    C{size} bytes of a stream whose every 8-byte word is its own offset,
    starting at C{offset} (a multiple of 8): any loss, duplication or
    reordering shows.
    """
    assert offset % 8 == 0 and size % 8 == 0
    start = offset // 8
    return b"".join(i.to_bytes(8, "big") for i in range(start, start + size // 8))


@implementer(IPushProducer)
class Pusher:
    """
    Writes C{total} bytes of L{pattern} to a transport as fast as it takes
    them, then calls C{done}.

    @ivar pauses: how many times the transport paused it.
    """

    chunk = 256 * 1024

    def __init__(self, transport: Any, total: int, done: Any = None) -> None:
        self.transport = transport
        self.total = total
        self.sent = 0
        self.paused = False
        self.pauses = 0
        self.pausedEvent: defer.Deferred | None = None
        self.done = done
        self.hash = hashlib.sha256()

    def start(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.sent < self.total:
            size = min(self.chunk, self.total - self.sent)
            data = pattern(self.sent, size)
            self.hash.update(data)
            self.sent += size
            self.transport.write(data)
        if self.sent >= self.total and self.done is not None:
            done, self.done = self.done, None
            self.transport.unregisterProducer()
            done()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1
        event, self.pausedEvent = self.pausedEvent, None
        if event is not None:
            event.callback(None)

    def stopProducing(self) -> None:
        self.paused = True

    def whenPaused(self) -> defer.Deferred:
        """
        Fire at the next pause (at once if paused now).
        """
        if self.paused:
            return defer.succeed(None)
        self.pausedEvent = defer.Deferred()
        return self.pausedEvent


@implementer(IHalfCloseableProtocol)
class UploadThenDownloadBackend(protocol.Protocol):
    """
    Reads until the client half-closes, then answers with the hash of what
    it read and C{size} bytes of L{pattern}, and half-closes.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hash = hashlib.sha256()
        self.received = 0

    def dataReceived(self, data: bytes) -> None:
        self.hash.update(data)
        self.received += len(data)

    def readConnectionLost(self) -> None:
        self.transport.write(self.hash.digest())
        self.pusher = Pusher(self.transport, self.size, self.transport.loseWriteConnection)
        self.pusher.start()

    def writeConnectionLost(self) -> None:
        pass


@implementer(IHalfCloseableProtocol)
class UploadThenDownloadClient(protocol.Protocol):
    """
    Sends C{size} bytes, half-closes, then reads the backend's hash and its
    data until the backend half-closes.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = bytearray()
        self.hash = hashlib.sha256()
        self.received = 0
        self.finished: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.pusher = Pusher(self.transport, self.size, self.transport.loseWriteConnection)
        self.pusher.start()

    def dataReceived(self, data: bytes) -> None:
        if len(self.buffer) < 32:
            need = 32 - len(self.buffer)
            self.buffer += data[:need]
            data = data[need:]
        self.hash.update(data)
        self.received += len(data)

    def readConnectionLost(self) -> None:
        self.finished.callback(None)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        if not self.finished.called:
            self.finished.errback(reason)


class TransferTests(TestCase):
    """
    Byte-exact transfers through the proxy with half-close.
    """

    timeout = 120
    splice = True

    def setUp(self) -> None:
        if self.splice and not splice.available():
            raise SkipTest("splice(2) needs Linux")

    def backend(self, factory: protocol.Factory) -> int:
        return listenBackend(self, factory)

    @defer.inlineCallbacks
    def test_64MiBEachWayWithHalfClose(self) -> Generator[Any, Any, None]:
        """
        64 MiB uploaded then half-closed reach the backend exactly (its
        hash of what it read matches), and the backend's 64 MiB answer,
        sent after the client's half-close, reaches the client exactly and
        ends with the backend's half-close.
        """
        size = 64 * MiB
        backends: list[UploadThenDownloadBackend] = []
        connections: list[Any] = []

        def makeBackend() -> UploadThenDownloadBackend:
            backends.append(UploadThenDownloadBackend(size))
            connections.extend(proxy.connections)
            return backends[-1]

        proxy = listenProxy(
            self, self.backend(protocol.Factory.forProtocol(makeBackend)), splice=self.splice)
        client = UploadThenDownloadClient(size)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        yield client.finished
        [backend] = backends
        self.assertEqual(backend.received, size)
        self.assertEqual(bytes(client.buffer), client.pusher.hash.digest())
        self.assertEqual(client.received, size)
        self.assertEqual(client.hash.digest(), backend.pusher.hash.digest())
        yield proxy.whenIdle()
        [connection] = connections
        self.assertEqual(connection.upstream.nbytes, size)
        self.assertEqual(connection.downstream.nbytes, size + 32)
        self.assertEqual((proxy.bytesUp, proxy.bytesDown), (size, size + 32))
        self.assertEqual(connection.upstream.splicer is not None, self.splice)
        self.assertEqual(connection.downstream.splicer is not None, self.splice)


class TransferWithoutSpliceTests(TransferTests):
    """
    The same through the ordinary transport path.
    """

    splice = False


class Receiver(protocol.Protocol):
    """
    A client that checks every byte it gets against L{pattern}, and can
    stop and resume reading.
    """

    def __init__(self) -> None:
        self.offset = 0
        self.leftover = b""
        self.target = 0
        self.reached: defer.Deferred | None = None
        self.corrupt = False

    def dataReceived(self, data: bytes) -> None:
        data = self.leftover + data
        usable = len(data) - len(data) % 8
        if data[:usable] != pattern(self.offset, usable):
            self.corrupt = True
        self.offset += usable
        self.leftover = data[usable:]
        if self.reached is not None and self.offset >= self.target:
            self.transport.pauseProducing()
            reached, self.reached = self.reached, None
            reached.callback(None)

    def readUntil(self, target: int) -> defer.Deferred:
        """
        Read (resuming if paused) until C{target} bytes, then pause.
        """
        self.target = target
        self.reached = defer.Deferred()
        self.transport.resumeProducing()
        return self.reached


class BackpressureTests(TestCase):
    """
    A slow reader throttles a fast writer through the proxy, and the
    proxy's buffers stay bounded.
    """

    timeout = 120
    splice = True
    bound = MiB

    def setUp(self) -> None:
        if self.splice and not splice.available():
            raise SkipTest("splice(2) needs Linux")

    def proxyBuffered(self, proxy: Any) -> int:
        """
        Bytes the proxy holds in user space and in splice backlogs.
        """
        total = 0
        for connection in proxy.connections:
            for pipe in (connection.upstream, connection.downstream):
                if pipe.splicer is not None:
                    total += pipe.splicer.backlog
                for transport in (pipe.sink,):
                    if transport is not None:
                        total += len(transport.dataBuffer) - transport.offset
                        total += transport._tempDataLen
        return total

    @defer.inlineCallbacks
    def test_slowReaderThrottlesBackend(self) -> Generator[Any, Any, None]:
        """
        A client reading at about 8 MB/s (200 KiB every 25 ms, for 2 s)
        while the backend pushes as fast as it can: the proxy holds at most
        1 MiB at every sample, the backend gets at most 16 MiB ahead of the
        client (socket buffers included), and the client reads the
        backend's stream exactly.

        This is a wall-clock test by nature (a reader with a rate); without
        backpressure the proxy would read the backend at loopback speed and
        hold hundreds of MiB within the 2 s.
        """
        pushers: list[Pusher] = []
        started: defer.Deferred = defer.Deferred()

        class Source(protocol.Protocol):
            def connectionMade(self) -> None:
                pushers.append(Pusher(self.transport, 4096 * MiB))
                pushers[-1].start()
                started.callback(None)

        port = listenBackend(self, protocol.Factory.forProtocol(Source))
        proxy = listenProxy(self, port, splice=self.splice)
        receiver = Receiver()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: receiver))
        receiver.transport.pauseProducing()
        yield started
        worst = 0
        ahead = 0
        for tick in range(1, 81):
            yield task.deferLater(reactor, 0.025, lambda: None)
            worst = max(worst, self.proxyBuffered(proxy))
            ahead = max(ahead, pushers[0].sent - receiver.offset)
            yield receiver.readUntil(tick * 200 * 1024)
        self.assertFalse(receiver.corrupt)
        self.assertEqual(receiver.offset // (200 * 1024), 80)
        self.assertLessEqual(worst, self.bound)
        self.assertLessEqual(ahead, 16 * MiB)
        receiver.transport.loseConnection()


class BackpressureWithoutSpliceTests(BackpressureTests):
    """
    The same through the ordinary transport path.
    """

    splice = False


class Closed(protocol.Protocol):
    """
    A client that records what it receives and when it is closed.
    """

    def __init__(self) -> None:
        self.data = b""
        self.closed: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(reason.value)


class UnreachableBackendTests(TestCase):
    """
    A client of a proxy whose backend cannot be reached.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_refusedBackend(self) -> Generator[Any, Any, None]:
        """
        With nothing listening on the backend port, the client's connection
        is closed cleanly with no data, the failure is logged once, and the
        proxy forgets the connection.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            deadPort = s.getsockname()[1]
        proxy = listenProxy(self, deadPort)
        client = Closed()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        reason = yield client.closed
        self.assertEqual(client.data, b"")
        self.assertIsInstance(reason, ConnectionDone)
        yield proxy.whenIdle()
        warnings = [e for e in events if "cannot reach backend" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertIn("refused", warnings[0]["why"].lower())
        self.assertEqual(proxy.backendFailures, 1)


class PathSwitchTests(TestCase):
    """
    A live connection moves between the splice path and the framed path
    when the behavior table changes, without losing or reordering a byte.
    """

    timeout = 120

    def setUp(self) -> None:
        if not splice.available():
            raise SkipTest("splice(2) needs Linux")

    @defer.inlineCallbacks
    def test_switchingPathsKeepsStreamExact(self) -> Generator[Any, Any, None]:
        """
        While a backend pushes 64 MiB to a client that reads in bursts, the
        table alternates between dummy (spliced) and a clock-driven fault
        (framed): the client gets the backend's stream exactly, and at least
        one switch happened while bytes waited in a splice backlog.
        """
        from txvaurien.table import buildTable
        from txvaurien.test.helpers import testRegistry

        stops: list[int] = []
        splicers: list[splice.Splicer] = []
        original = splice.Splicer.stop
        originalStart = splice.Splicer.start

        def stop(self: splice.Splicer) -> None:
            stops.append(self.backlog)
            original(self)

        def start(self: splice.Splicer) -> None:
            splicers.append(self)
            originalStart(self)

        self.patch(splice.Splicer, "stop", stop)
        self.patch(splice.Splicer, "start", start)
        total = 64 * MiB
        pushers: list[Pusher] = []
        started: defer.Deferred = defer.Deferred()

        class Source(protocol.Protocol):
            def connectionMade(self) -> None:
                pushers.append(Pusher(self.transport, total, self.transport.loseConnection))
                pushers[-1].start()
                started.callback(None)

        port = listenBackend(self, protocol.Factory.forProtocol(Source))
        proxy = listenProxy(self, port)
        registry = testRegistry()
        tables = [
            buildTable("100:slowdown", registry,
                       {"slowdown": {"seconds": "0.005", "hold": str(MiB)}}),
            buildTable("100:dummy", registry),
        ]
        receiver = Receiver()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: receiver))
        receiver.transport.pauseProducing()
        yield started
        step = 4 * MiB
        for round in range(1, total // step + 1):
            yield task.deferLater(reactor, 0.02, lambda: None)
            if round % 2 == 0:
                # Leaving the splice path: give the backend, which pushes
                # into a paused client, up to a second to leave bytes in
                # the splice pipe (on a busy machine 20 ms may not do).
                for _ in range(100):
                    if any(s.active and s.backlog for s in splicers):
                        break
                    yield task.deferLater(reactor, 0.01, lambda: None)
            proxy.setTable(tables[round % 2])
            yield receiver.readUntil(round * step)
        self.assertFalse(receiver.corrupt)
        self.assertEqual(receiver.offset, total)
        self.assertTrue(any(stops), "no switch happened with a splice backlog: {}".format(stops))
        receiver.transport.loseConnection()
