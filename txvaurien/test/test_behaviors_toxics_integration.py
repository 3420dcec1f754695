"""
Integration tests for Toxiproxy's toxics and the behaviors beyond them:
real sockets on 127.0.0.1, the real proxy (L{listenProxy}) and backends
written here, on the trial reactor.

Timing tests measure wall-clock time with stated tolerances; nothing
sleeps: every wait is for an event.
"""

from __future__ import annotations

import errno
import hashlib
import random
import socket
import time
from typing import Any, Generator

from twisted.internet import defer, reactor as globalReactor, threads
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPullProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from txvaurien import logs
from txvaurien.test import latencyprobe
from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import connect
from txvaurien.test.servers import listenBackend

reactor: Any = globalReactor

MiB = 1024 * 1024
CHUNK = 256 * 1024


@implementer(IPullProducer)
class StreamSender:
    """
    Writes C{size} deterministic pseudo-random bytes (seeded with C{seed})
    as the transport asks for them, hashing them, then half-closes.
    """

    def __init__(self, transport: Any, size: int, seed: str) -> None:
        self.transport = transport
        self.remaining = size
        self.random = random.Random(seed)
        self.hash = hashlib.sha256()
        self.done = False

    def start(self) -> None:
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self.done:
            return
        size = min(CHUNK, self.remaining)
        data = self.random.randbytes(size)
        self.hash.update(data)
        self.remaining -= size
        self.transport.write(data)
        if not self.remaining:
            self.done = True
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def stopProducing(self) -> None:
        self.done = True


@implementer(IHalfCloseableProtocol)
class StreamPeer(Protocol):
    """
    One end of a two-way transfer: sends its stream, hashes what it
    receives, and closes once both directions are complete.

    @ivar received: a L{Deferred} fired with C{(bytes received, sha256
        of them)} at the end of the incoming stream.
    @ivar lost: a L{Deferred} fired when the connection is gone.
    """

    transport: Any

    def __init__(self, size: int, seed: str) -> None:
        self.size = size
        self.seed = seed
        self.count = 0
        self.hash = hashlib.sha256()
        self.received: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()
        self.eof = False

    def connectionMade(self) -> None:
        self.sender = StreamSender(self.transport, self.size, self.seed)
        self.sender.start()

    def dataReceived(self, data: bytes) -> None:
        self.count += len(data)
        self.hash.update(data)

    def readConnectionLost(self) -> None:
        self.eof = True
        self.received.callback((self.count, self.hash.hexdigest()))
        self._maybeClose()

    def writeConnectionLost(self) -> None:
        self._maybeClose()

    def _maybeClose(self) -> None:
        if self.eof and self.sender.done:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.received.called:
            self.received.errback(reason)
        self.lost.callback(None)


class StreamServerFactory(Factory):
    """
    Backend of two-way transfers: each connection is a L{StreamPeer}
    sending the C{"down"} stream.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.peers: list[StreamPeer] = []

    def buildProtocol(self, addr: Any) -> StreamPeer:
        peer = StreamPeer(self.size, "down")
        peer.factory = self
        self.peers.append(peer)
        return peer


class Echo(Protocol):
    """
    Writes back what it reads.
    """

    transport: Any

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Counter(Protocol):
    """
    Receives until C{total} bytes came, noting when the first and last
    bytes arrived.
    """

    transport: Any

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.first: tuple[float, int] | None = None
        self.done: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.started = time.perf_counter()

    def dataReceived(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, len(data))
        self.count += len(data)
        if self.count >= self.total and not self.done.called:
            self.done.callback(now)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


@implementer(IPullProducer)
class Blaster(Protocol):
    """
    A backend that sends C{factory.total} bytes to each client.
    """
    factory: Any

    transport: Any

    def connectionMade(self) -> None:
        self.remaining = self.factory.total
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        size = min(CHUNK, self.remaining)
        self.remaining -= size
        self.transport.write(b"b" * size)
        if not self.remaining:
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def stopProducing(self) -> None:
        pass


class Lines(Protocol):
    """
    A line server: answers each line with a 16-byte line.
    """

    transport: Any

    def connectionMade(self) -> None:
        self.buffer = b""
        self.count = 0

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for _ in lines:
            self.transport.write(b"value %09d\n" % self.count)
            self.count += 1


class LineClient(Protocol):
    """
    Sends C{count} requests at once and waits for C{count} 16-byte
    responses (counted in bytes: a corrupted newline does not matter).
    """

    transport: Any

    def __init__(self, count: int) -> None:
        self.count = count
        self.received = 0
        self.done: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"".join(b"get key-%d\n" % i for i in range(self.count)))

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= 16 * self.count and not self.done.called:
            self.done.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class IntegrationCase(TestCase):
    """
    Starts backends on the trial reactor, and connects clients.
    """

    timeout = 240

    def backend(self, factory: Any) -> int:
        return listenBackend(self, factory)

    def connect(self, port: int, protocol: Protocol) -> defer.Deferred:
        return connect(port, protocol)


class LatencyAccuracyTests(IntegrationCase):
    """
    The latency added by C{latency}, measured through the real C{twistd
    vaurien}: round trips to an echo backend, minus the median round trip
    through a proxy without the behavior, with the proxy, the backend and
    the client each in a process of its own (L{latencyprobe}).  The
    timers of a machine whose CPUs are busy with other work still fire
    late by several milliseconds now and then, which these tests see.
    """

    @defer.inlineCallbacks
    def _checkLatency(self, milliseconds: int, clients: int, count: int) -> Generator[Any, Any, Any]:
        # Clients spread evenly over one round trip, so that their timers do
        # not fire together (one late wake-up of the proxy would then spoil
        # several samples at once).
        seconds, _ = yield latencyprobe.addedLatency(
            self, ["--behavior", "100:dummy"],
            ["--behavior", "100:latency",
             "--behavior-latency-latency", str(milliseconds)],
            count, clients, milliseconds / 1000.0 / clients)
        self.assertEqual(len(seconds), clients * count)
        added = [a * 1000 for a in seconds]
        errors = [abs(a - milliseconds) for a in added]
        p99 = latencyprobe.percentile(errors, 0.99)
        # Never early (beyond timing noise), and within 5 ms at p99.
        self.assertGreater(min(added), milliseconds - 0.5, added)
        self.assertLessEqual(p99, 5.0, sorted(added))

    def test_latency50ms(self) -> Any:
        """
        At 50 ms, a round trip through the proxy is 50 ms longer than
        without the behavior, within 5 ms at the 99th percentile of 100
        round trips (5 s).
        """
        return self._checkLatency(50, 1, 100)

    def test_latency200ms(self) -> Any:
        """
        At 200 ms, within 5 ms at the 99th percentile of 100 round trips
        (4 clients, 50 ms apart: 5 s).
        """
        return self._checkLatency(200, 4, 25)


class BandwidthAccuracyTests(IntegrationCase):
    """
    The throughput allowed by C{bandwidth}, measured by a client.
    """

    @defer.inlineCallbacks
    def _measure(self, rate: str, total: int) -> Generator[Any, Any, Any]:
        blaster: Any = Factory.forProtocol(Blaster)
        blaster.total = total
        backendPort = self.backend(blaster)
        proxy = listenProxy(self, backendPort, "100:bandwidth",
                            settings={"bandwidth": {"rate": rate}})
        counter = Counter(total)
        yield self.connect(proxy.port, counter)
        last = yield counter.done
        counter.transport.loseConnection()
        yield counter.lost
        assert counter.first is not None
        firstAt, firstSize = counter.first
        measured = (total - firstSize) / (last - firstAt) / 1000.0
        overall = total / (last - counter.started) / 1000.0
        return measured, overall

    @defer.inlineCallbacks
    def test_rate10KBps(self) -> Generator[Any, Any, Any]:
        """
        At 10 KB/s, 50 KB take 5 s: the measured rate (after the first
        read) is within 5% of 10 KB/s, and so is the overall one.
        """
        measured, overall = yield self._measure("10", 50000)
        self.assertTrue(9.5 <= measured <= 10.5, measured)
        self.assertTrue(9.5 <= overall <= 10.5, overall)

    @defer.inlineCallbacks
    def test_rate10MBps(self) -> Generator[Any, Any, Any]:
        """
        At 10 MB/s, 50 MB take 5 s, within 5%.
        """
        measured, overall = yield self._measure("10000", 50000000)
        self.assertTrue(9500 <= measured <= 10500, measured)
        self.assertTrue(9500 <= overall <= 10500, overall)


class ResetPeerIntegrationTests(IntegrationCase):
    """
    C{reset_peer} sends a real TCP reset.
    """

    def _client(self, port: int, halfClose: bool) -> tuple[bytes, int | None]:
        """
        A blocking socket client (run in a thread): send, then read until
        the connection ends (half-closing once the echo is back if
        C{halfClose}); return what was read and the errno that ended it
        (L{None} for a clean end).
        """
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        got = b""
        try:
            sock.sendall(b"hello")
            while True:
                try:
                    data = sock.recv(65536)
                except OSError as e:
                    return got, e.errno
                if not data:
                    return got, None
                got += data
                if got == b"hello" and halfClose:
                    sock.shutdown(socket.SHUT_WR)
        finally:
            sock.close()

    @defer.inlineCallbacks
    def test_resetSeenAsECONNRESET(self) -> Generator[Any, Any, Any]:
        """
        After C{timeout}, a socket client's read fails with C{ECONNRESET}:
        the proxy sent a RST, not a FIN.
        """
        backendPort = self.backend(Factory.forProtocol(Echo))
        proxy = listenProxy(self, backendPort, "100:reset_peer",
                            settings={"reset_peer": {"timeout": "200"}})
        got, code = yield threads.deferToThread(self._client, proxy.port, False)
        self.assertEqual(code, errno.ECONNRESET)
        self.assertIn(got, (b"", b"hello"))

    @defer.inlineCallbacks
    def test_toxicityZeroNeverResets(self) -> Generator[Any, Any, Any]:
        """
        With toxicity 0 the same client gets its echo and a clean end of
        stream.
        """
        backendPort = self.backend(Factory.forProtocol(Echo))
        proxy = listenProxy(self, backendPort, "100:reset_peer",
                            settings={"reset_peer": {"timeout": "0", "toxicity": "0"}})
        got, code = yield threads.deferToThread(self._client, proxy.port, True)
        self.assertEqual((got, code), (b"hello", None))


class SlowReader(Protocol):
    """
    A client that does not read until told to, then reads to the end.

    @ivar lost: a L{Deferred} fired when the connection ends.
    @ivar reason: why it ended.
    """

    transport: Any

    def __init__(self) -> None:
        self.count = 0
        self.reason: Failure | None = None
        self.lost: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        self.count += len(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.lost.callback(None)


class NotifyingBlaster(Blaster):
    """
    A L{Blaster} that tells its factory when its connection is gone.
    """

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.gone.callback(None)


class CloseWhileFullTests(IntegrationCase):
    """
    A behavior that closes a connection while the client's side is
    backed up (its buffers full, the backend paused) really closes it.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_limitTimeClosesBackedUpConnection(self) -> Generator[Any, Any, Any]:
        """
        C{limit_time} fires while a client is not reading a large
        download; once the backend side is gone and the client reads
        again, it gets the bytes already sent and a clean end.
        """
        blaster: Any = Factory.forProtocol(NotifyingBlaster)
        blaster.total = 256 * MiB
        blaster.gone = defer.Deferred()
        backendPort = self.backend(blaster)
        proxy = listenProxy(self, backendPort, "100:limit_time",
                            settings={"limit_time": {"time": "300"}})
        reader = SlowReader()
        yield self.connect(proxy.port, reader)
        yield blaster.gone
        reader.transport.resumeProducing()
        yield reader.lost
        self.assertGreater(reader.count, 0)
        self.assertLess(reader.count, 256 * MiB)
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(ConnectionDone), reader.reason)


class ByteExactTests(IntegrationCase):
    """
    64 MiB each way, at the same time, through each holding behavior and
    a chain of them, arrive byte for byte (SHA-256 compared).
    """

    size = 64 * MiB

    @defer.inlineCallbacks
    def _transfer(self, behavior: str, settings: dict[str, Any]) -> Generator[Any, Any, Any]:
        server = StreamServerFactory(self.size)
        backendPort = self.backend(server)
        proxy = listenProxy(self, backendPort, behavior, settings=settings)
        client = StreamPeer(self.size, "up")
        yield self.connect(proxy.port, client)
        clientCount, clientDigest = yield client.received
        [peer] = server.peers
        serverCount, serverDigest = yield peer.received
        yield client.lost
        yield peer.lost
        self.assertEqual(clientCount, self.size)
        self.assertEqual(serverCount, self.size)
        self.assertEqual(clientDigest, peer.sender.hash.hexdigest())
        self.assertEqual(serverDigest, client.sender.hash.hexdigest())

    def test_latency(self) -> Any:
        """
        Through C{latency} with jitter, both ways.
        """
        return self._transfer("100:latency", {"latency": {
            "latency": "20", "jitter": "10", "direction": "both"}})

    def test_bandwidth(self) -> Any:
        """
        Through C{bandwidth} at 200 MB/s, both ways.
        """
        return self._transfer("100:bandwidth", {"bandwidth": {
            "rate": "200000", "direction": "both"}})

    def test_slicer(self) -> Any:
        """
        Through C{slicer} (16 KiB +/- 8 KiB slices, 50 us apart), both
        ways.
        """
        return self._transfer("100:slicer", {"slicer": {
            "average_size": "16384", "size_variation": "8192", "delay": "50",
            "direction": "both"}})

    def test_chain(self) -> Any:
        """
        Through C{latency+bandwidth+slicer}, both ways.
        """
        return self._transfer("100:latency+bandwidth+slicer", {
            "latency": {"latency": "20", "jitter": "10", "direction": "both"},
            "bandwidth": {"rate": "200000", "direction": "both"},
            "slicer": {"average_size": "16384", "size_variation": "8192", "delay": "50",
                       "direction": "both"},
        })


class SeedIntegrationTests(IntegrationCase):
    """
    Through real sockets (whose reads cut the traffic as they happen to),
    the same seed gives the same decisions.
    """

    spec = "25:latency,25:corrupt+slicer,25:latency+slicer+corrupt"
    settings = {
        "latency": {"latency": "5", "jitter": "4", "distribution": "pareto",
                    "direction": "both"},
        "corrupt": {"probability": "0.02", "direction": "downstream"},
        "slicer": {"average_size": "5", "size_variation": "4", "delay": "20",
                   "direction": "both"},
    }

    @defer.inlineCallbacks
    def _decisions(self, seed: int) -> Generator[Any, Any, Any]:
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        logs.setLevel("debug")
        try:
            backendPort = self.backend(Factory.forProtocol(Lines))
            proxy = listenProxy(self, backendPort, self.spec, protocol="lines",
                                settings=self.settings, scope="request", seed=seed)
            for _ in range(3):
                client = LineClient(40)
                yield self.connect(proxy.port, client)
                yield client.done
                client.transport.loseConnection()
                yield client.lost
        finally:
            logs.setLevel("info")
            globalLogPublisher.removeObserver(events)
        return sorted(
            repr((e.get("cid"), e.get("request"), e.get("behavior"), e.get("direction"),
                  e.get("decision"), e.get("parameters")))
            for e in events if e.get("event") == "decision")

    @defer.inlineCallbacks
    def test_sameSeedSameDecisions(self) -> Generator[Any, Any, Any]:
        """
        Two runs with seed 5 log the same decisions; seed 6 others.
        """
        first = yield self._decisions(5)
        self.assertGreater(len(first), 300)
        again = yield self._decisions(5)
        self.assertEqual(first, again)
        other = yield self._decisions(6)
        self.assertNotEqual(first, other)
