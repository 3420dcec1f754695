"""
Integration tests for Vaurien's behaviors: a real proxy on 127.0.0.1
(L{listenProxy}), a small real backend written here, and real client
sockets, on the trial reactor.

Clients are Twisted protocols driven by Deferreds, or a plain blocking
C{socket} in a worker thread where the test is about what the operating
system reports (C{ECONNRESET}).  Nothing sleeps: tests wait for events
(bytes arriving, connections ending) and the only clock readings are the
latency measurements of C{delay}.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable, Generator

from twisted.internet import task, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from txvaurien.randomness import RandomSource
from txvaurien.test import latencyprobe
from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import connect, whenFinished
from txvaurien.test.servers import listenBackend

_log = Logger(namespace="txvaurien.test.delay")


class BackendProtocol(Protocol):
    """
    One connection to L{Backend}: records what it receives and answers as
    its factory says.
    """

    factory: "Backend"
    transport: Any

    def connectionMade(self) -> None:
        self.received = b""
        self.reason: Failure | None = None
        self.lost: Deferred = Deferred()
        self.factory.connections.append(self)
        if not self.factory.connected.called:
            self.factory.connected.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        answer = self.factory.answer(data)
        if answer:
            self.transport.write(answer)
        waiting, self.factory.waiting = self.factory.waiting, []
        for d in waiting:
            d.callback(self)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.reason = reason
        self.lost.callback(None)


class Backend(ServerFactory):
    """
    A backend server for the tests: an echo server by default, or any
    function of the bytes received.

    @ivar connections: every L{BackendProtocol} accepted, in order.
    @ivar connected: fires with the first connection.
    """

    noisy = False

    def __init__(self, answer: Callable[[bytes], bytes] = lambda data: data) -> None:
        self.answer = answer
        self.connections: list[BackendProtocol] = []
        self.connected: Deferred = Deferred()
        self.waiting: list[Deferred] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = BackendProtocol()
        protocol.factory = self
        return protocol

    def nextData(self) -> Deferred:
        """
        Fire with the connection that receives the next bytes.
        """
        d: Deferred = Deferred()
        self.waiting.append(d)
        return d


class Client(Protocol):
    """
    A client that collects what it receives and can wait for a number of
    bytes or for the end of the connection.
    """

    transport: Any

    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None
        self.lost: Deferred = Deferred()
        self._want: tuple[int, Deferred] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._check()

    def waitFor(self, total: int) -> Deferred:
        """
        Fire once C{total} bytes in all have been received.
        """
        d: Deferred = Deferred()
        self._want = (total, d)
        self._check()
        return d

    def _check(self) -> None:
        if self._want is not None and len(self.received) >= self._want[0]:
            d = self._want[1]
            self._want = None
            d.callback(self.received)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.reason = reason
        if self._want is not None:
            d = self._want[1]
            self._want = None
            d.errback(reason)
        self.lost.callback(None)


def waitUntil(predicate: Callable[[], bool], timeout: float = 10.0) -> Deferred:
    """
    Check C{predicate} on every millisecond tick of the reactor until it
    holds; fail after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout

    def check() -> None:
        if predicate():
            loop.stop()
        elif time.monotonic() > deadline:
            raise AssertionError("condition not reached in {}s".format(timeout))

    loop = task.LoopingCall(check)
    return loop.start(0.001, now=True)


def blockingRead(port: int) -> Any:
    """
    Connect a plain socket to C{127.0.0.1:port} and read once.

    @return: the bytes read, or C{"reset"} if the connection failed with
        C{ECONNRESET}: usually the read, but the reset may come so soon
        that the kernel reports it as the result of C{connect} already.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            return s.recv(1024)
    except ConnectionResetError:
        return "reset"


class DelayAccuracyTests(TestCase):
    """
    C{delay} adds the latency it is asked for, measured by a real client
    through the real C{twistd vaurien} to a real echo server, each in a
    process of its own (L{latencyprobe}: what the trial process does
    meanwhile is not measured).

    Each test makes 100 (50 ms) or 30 (200 ms) round trips of 32 bytes on
    one connection and compares them with the median of 21 round trips
    through a proxy with C{sleep} 0 (the same code path without the
    timer).  Tolerance: the 99th percentile (nearest rank: the second
    worst of 100, the worst of 30) of |added latency - target| is at most
    5 ms, and no round trip is more than 1 ms faster than the target (the
    timer never fires early).
    """

    timeout = 120

    @inlineCallbacks
    def _checkAccuracy(self, target: float, before: bool, count: int) -> Generator[Any, Any, Any]:
        delay = ["--behavior", "100:delay"]
        added, base = yield latencyprobe.addedLatency(
            self, [*delay, "--behavior-delay-sleep", "0"],
            [*delay, "--behavior-delay-sleep", repr(target),
             "--behavior-delay-before" if before else "--behavior-delay-no-before"],
            count)
        errors = [abs(a - target) for a in added]
        summary = "target {:.0f} ms, before={}: added min {:.2f} max {:.2f} ms, " \
            "p99 error {:.2f} ms (baseline {:.3f} ms, load average {:.2f})".format(
                target * 1000, before, min(added) * 1000, max(added) * 1000,
                latencyprobe.percentile(errors, 0.99) * 1000, base * 1000, os.getloadavg()[0])
        _log.info("delay accuracy: {summary}", summary=summary)
        self.assertEqual(len(added), count)
        self.assertLessEqual(latencyprobe.percentile(errors, 0.99), 0.005, summary)
        self.assertGreaterEqual(min(added), target - 0.001, summary)

    def test_before50ms(self) -> Deferred:
        """
        C{sleep} 0.05 before the request adds 50 ms (+-5 ms at p99).
        """
        return self._checkAccuracy(0.05, True, 100)

    def test_after50ms(self) -> Deferred:
        """
        C{sleep} 0.05 with C{before} off (the response is delayed) adds
        50 ms (+-5 ms at p99).
        """
        return self._checkAccuracy(0.05, False, 100)

    def test_before200ms(self) -> Deferred:
        """
        C{sleep} 0.2 before the request adds 200 ms (+-5 ms at p99).
        """
        return self._checkAccuracy(0.2, True, 30)

    def test_after200ms(self) -> Deferred:
        """
        C{sleep} 0.2 with C{before} off adds 200 ms (+-5 ms at p99).
        """
        return self._checkAccuracy(0.2, False, 30)


class DelaySideTests(TestCase):
    """
    Which side C{delay} holds, seen through the real proxy.
    """

    timeout = 60

    @inlineCallbacks
    def test_beforeDecidesWhichSideWaits(self) -> Generator[Any, Any, Any]:
        """
        With C{before} the backend gets the request late; with C{before}
        off it gets it at once and the client waits for the response.  The
        time the backend receives the request, seen from the client, tells
        which side was held.
        """
        for before, early in ((True, False), (False, True)):
            backend = Backend()
            port = listenBackend(self, backend)
            proxy = listenProxy(
                self, port, "delay",
                settings={"delay": {"sleep": 0.2, "before": before}})
            client = Client()
            yield connect(proxy.port, client)
            start = time.perf_counter()
            arrived = backend.nextData()
            client.transport.write(b"x")
            yield arrived
            atBackend = time.perf_counter() - start
            yield client.waitFor(1)
            atClient = time.perf_counter() - start
            self.assertEqual(atBackend < 0.1, early, (before, atBackend))
            self.assertGreaterEqual(atClient, 0.2)
            done = whenFinished(proxy)
            client.transport.loseConnection()
            yield done


class BlackoutIntegrationTests(TestCase):
    """
    C{blackout} as a real client sees it.
    """

    timeout = 30

    @inlineCallbacks
    def _read(self, reset: bool) -> Generator[Any, Any, Any]:
        backend = Backend()
        port = listenBackend(self, backend)
        proxy = listenProxy(
            self, port, "blackout", settings={"blackout": {"reset": reset}})
        finished = whenFinished(proxy)
        result = yield threads.deferToThread(blockingRead, proxy.port)
        yield finished
        self.assertEqual(backend.connections, [])
        self.assertEqual(proxy.connections, {})
        return result

    @inlineCallbacks
    def test_resetIsECONNRESET(self) -> Generator[Any, Any, Any]:
        """
        With C{reset}, the client's read fails with C{ECONNRESET}, and the
        backend is never contacted.
        """
        result = yield self._read(True)
        self.assertEqual(result, "reset")

    @inlineCallbacks
    def test_closeIsCleanEOF(self) -> Generator[Any, Any, Any]:
        """
        Without C{reset}, the client reads a clean end of stream.
        """
        result = yield self._read(False)
        self.assertEqual(result, b"")


class ErrorIntegrationTests(TestCase):
    """
    C{error} under C{tcp} with a real client.
    """

    timeout = 30

    @inlineCallbacks
    def test_randomBytesOfConfiguredSize(self) -> Generator[Any, Any, Any]:
        """
        Each chunk the client sends is answered with C{error_size} random
        bytes (those of the seeded connection stream); the backend gets
        nothing and the connection stays open for the next exchange.
        """
        backend = Backend()
        port = listenBackend(self, backend)
        proxy = listenProxy(
            self, port, "error", protocolSettings={"error_size": 100}, seed=42)
        client = Client()
        yield connect(proxy.port, client)
        client.transport.write(b"hello")
        yield client.waitFor(100)
        client.transport.write(b"again")
        yield client.waitFor(200)
        self.assertIsNone(client.reason)
        rng = RandomSource(42).stream(proxy.name, "connection", 0)
        expected = b""
        for _ in range(2):
            rng.choice([500, 501, 502, 503])
            expected += rng.randbytes(100)
        self.assertEqual(client.received, expected)
        finished = whenFinished(proxy)
        client.transport.loseConnection()
        yield finished
        self.assertEqual(len(client.received), 200)
        self.assertEqual([c.received for c in backend.connections], [b""])


class HangIntegrationTests(TestCase):
    """
    C{hang} with a real client.
    """

    timeout = 30

    @inlineCallbacks
    def test_waitsUntilClientCloses(self) -> Generator[Any, Any, Any]:
        """
        The proxy reads the request, but neither the client nor the backend
        receives anything; when the client closes, the proxy's connection
        ends and the backend connection is closed.
        """
        backend = Backend()
        port = listenBackend(self, backend)
        proxy = listenProxy(self, port, "hang")
        client = Client()
        yield connect(proxy.port, client)
        server = yield backend.connected
        client.transport.write(b"GET / HTTP/1.1\r\n\r\n")
        [connection] = proxy.connections
        yield waitUntil(lambda: connection.upstream.nbytes == 18)
        self.assertEqual(client.received, b"")
        self.assertEqual(server.received, b"")
        self.assertIsNone(client.reason)
        finished = whenFinished(proxy)
        client.transport.loseConnection()
        yield finished
        yield server.lost
        self.assertEqual(proxy.connections, {})
        self.assertEqual(client.received, b"")
        self.assertEqual(server.received, b"")


class AbortIntegrationTests(TestCase):
    """
    C{abort} with a real client and backend.
    """

    timeout = 30

    @inlineCallbacks
    def test_dropAfterBackendGotRequest(self) -> Generator[Any, Any, Any]:
        """
        The backend receives the whole request and answers; the client
        receives none of the answer and its connection is reset.
        """
        backend = Backend(lambda data: b"response to " + data)
        port = listenBackend(self, backend)
        proxy = listenProxy(self, port, "abort")
        finished = whenFinished(proxy)
        client = Client()
        yield connect(proxy.port, client)
        client.transport.write(b"do it once")
        yield client.lost
        reason = client.reason
        [server] = backend.connections
        yield server.lost
        yield finished
        self.assertEqual(server.received, b"do it once")
        self.assertEqual(client.received, b"")
        assert reason is not None and server.reason is not None
        self.assertTrue(reason.check(ConnectionLost), reason)
        self.assertTrue(server.reason.check(ConnectionLost), server.reason)
