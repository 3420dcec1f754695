"""
Tests of L{txvaurien.testing.memory}: a client and a server protocol
connected through the chaos proxy in memory, on a fake clock.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IHalfCloseableProtocol, ITransport
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txvaurien.testing import ChaosUsageError, MemoryChaos, MemoryTransport


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


@implementer(IHalfCloseableProtocol)
class HalfCloseServer(Protocol):
    """
    Records reads and the end of its read side; writes C{b"bye"} and
    closes when its read side ends.
    """

    instances: list["HalfCloseServer"] = []

    def connectionMade(self) -> None:
        self.received = b""
        self.readEnded = False
        HalfCloseServer.instances.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def readConnectionLost(self) -> None:
        self.readEnded = True
        self.transport.write(b"bye")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class Recorder(Protocol):
    """
    A client: sends C{greeting} on connect, records what comes back and
    why the connection ended.
    """

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.received = b""
        self.reason: Failure | None = None
        self.made = False

    def connectionMade(self) -> None:
        self.made = True
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


class OneClient(ClientFactory):
    def __init__(self, protocol: Recorder) -> None:
        self.instance = protocol
        self.failed: Failure | None = None
        self.lost: Failure | None = None

    def buildProtocol(self, addr: Any) -> Recorder:
        self.instance.factory = self
        return self.instance

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed = reason

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.lost = reason


def connect(chaos: MemoryChaos, greeting: bytes = b"") -> tuple[Recorder, OneClient]:
    client = Recorder(greeting)
    factory = OneClient(client)
    chaos.reactor.connectTCP(chaos.host, chaos.port, factory)
    return client, factory


class MemoryChaosTests(SynchronousTestCase):
    """
    L{MemoryChaos} runs the proxy and its behaviors between in-memory
    connections.
    """

    def test_bytesRoundTripThroughProxy(self) -> None:
        """
        After L{MemoryChaos.flush}, the client's bytes reached the server
        through a proxied connection and the echo came back.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        client, _ = connect(chaos, b"hello")
        chaos.flush()
        self.assertEqual(client.received, b"hello")
        self.assertEqual(len(chaos.connections()), 1)
        self.assertEqual(chaos.reactor.tcpServers, [])

    def test_hangLetsClientTimeoutFireQuickly(self) -> None:
        """
        Under C{hang} nothing comes back; the client's own 30-second
        timeout (a C{callLater} on the fake reactor) fires after
        C{advance(30)}, well under a second of real time.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo), behavior="hang")
        client, _ = connect(chaos, b"hello")
        timedOut: list[float] = []
        chaos.reactor.callLater(30, lambda: timedOut.append(chaos.reactor.seconds()))
        started = time.monotonic()
        chaos.advance(29.9)
        self.assertEqual(timedOut, [])
        chaos.advance(0.2)
        elapsed = time.monotonic() - started
        self.assertEqual(client.received, b"")
        self.assertEqual(timedOut, [30.0])
        self.assertLess(elapsed, 1.0)

    def test_delayHoldsExactlySleep(self) -> None:
        """
        Under C{delay} with C{sleep=2} the echo is not back at 1.99
        seconds and is back at 2 (request delayed before the backend).
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo), behavior="delay",
                            behavior_options={"delay": {"sleep": 2.0}})
        client, _ = connect(chaos, b"hello")
        chaos.advance(1.99)
        self.assertEqual(client.received, b"")
        chaos.advance(0.01)
        self.assertEqual(client.received, b"hello")

    def test_resetPeerLooksLikeReset(self) -> None:
        """
        Under C{reset_peer} the client's connection ends with
        L{ConnectionLost} (a reset), not a clean L{ConnectionDone}, and its
        factory's C{clientConnectionLost} is told.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo), behavior="reset_peer")
        client, factory = connect(chaos, b"hello")
        chaos.flush()
        assert client.reason is not None and factory.lost is not None
        client.reason.trap(ConnectionLost)
        factory.lost.trap(ConnectionLost)
        self.assertEqual(chaos.connections(), [])

    def test_halfCloseReachesServer(self) -> None:
        """
        A client's half-close reaches a half-closeable server as
        C{readConnectionLost}; the server's answer and close come back
        through the proxy as a clean close.
        """
        HalfCloseServer.instances = []
        chaos = MemoryChaos(Factory.forProtocol(HalfCloseServer))
        client, _ = connect(chaos, b"data")
        chaos.flush()
        client.transport.loseWriteConnection()
        chaos.flush()
        server = HalfCloseServer.instances[0]
        self.assertEqual(server.received, b"data")
        self.assertTrue(server.readEnded)
        self.assertEqual(client.received, b"bye")
        assert client.reason is not None
        client.reason.trap(ConnectionDone)

    def test_downRefusesThenAccepts(self) -> None:
        """
        Inside C{down()} connecting fails with L{ConnectionRefusedError}
        and live connections are closed; after it, connecting works.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        live, _ = connect(chaos, b"x")
        chaos.flush()
        with chaos.down():
            refused, factory = connect(chaos)
            chaos.flush()
            assert factory.failed is not None
            factory.failed.trap(ConnectionRefusedError)
            self.assertFalse(refused.made)
            self.assertIsNotNone(live.reason)
        again, _ = connect(chaos, b"y")
        chaos.flush()
        self.assertEqual(again.received, b"y")

    def test_behaviorBlockRestores(self) -> None:
        """
        C{with chaos.behavior("hang")} hangs connections made inside it;
        after it, new connections pass.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        with chaos.behavior("hang"):
            hung, _ = connect(chaos, b"a")
            chaos.advance(10)
            self.assertEqual(hung.received, b"")
        passed, _ = connect(chaos, b"b")
        chaos.flush()
        self.assertEqual(passed.received, b"b")

    def test_toxicBlock(self) -> None:
        """
        A C{latency} toxic of 500 ms holds the echo for 500 ms of fake time
        inside the block only.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        with chaos.toxic("latency", latency=500):
            slow, _ = connect(chaos, b"a")
            chaos.advance(0.499)
            self.assertEqual(slow.received, b"")
            chaos.advance(0.001)
            self.assertEqual(slow.received, b"a")
        fast, _ = connect(chaos, b"b")
        chaos.flush()
        self.assertEqual(fast.received, b"b")

    def test_unknownBehaviorRefused(self) -> None:
        """
        An unknown behavior, at creation or later, is refused naming it.
        """
        e = self.assertRaises(ChaosUsageError, MemoryChaos, Factory.forProtocol(Echo),
                              behavior="hnag")
        self.assertIn("unknown behavior 'hnag'", str(e))
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        e = self.assertRaises(ChaosUsageError, chaos.set_behavior, "delay", slep=1)
        self.assertIn("slep: unknown option", str(e))

    def test_journalListsFaultsOrSaysWhy(self) -> None:
        """
        With the fault journal in this txvaurien, C{journal()} lists the
        reset C{reset_peer} made; without it, it raises
        L{NotImplementedError} naming the fault journal.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo), behavior="reset_peer")
        connect(chaos, b"hello")
        chaos.flush()
        try:
            import txvaurien.journal  # type: ignore[import-not-found, unused-ignore] # noqa: F401
        except ImportError:
            e = self.assertRaises(NotImplementedError, chaos.journal)
            self.assertIn("fault journal", str(e))
        else:
            events = chaos.journal()
            self.assertEqual([e["behavior"] for e in events], ["reset_peer"])

    def test_nothingListeningRefused(self) -> None:
        """
        A connection to a port nothing listens on fails with
        L{ConnectionRefusedError}.
        """
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        factory = OneClient(Recorder())
        chaos.reactor.connectTCP("127.0.0.1", 1, factory)
        chaos.flush()
        assert factory.failed is not None
        factory.failed.trap(ConnectionRefusedError)


class MemoryTransportTests(SynchronousTestCase):
    """
    L{MemoryTransport} on its own.
    """

    def pair(self) -> tuple[Recorder, Recorder, MemoryTransport, MemoryTransport]:
        from twisted.internet.address import IPv4Address

        a, b = Recorder(), Recorder()
        left, right = IPv4Address("TCP", "127.0.0.1", 1), IPv4Address("TCP", "127.0.0.1", 2)
        ta, tb = MemoryTransport(a, False, left, right), MemoryTransport(b, True, right, left)
        ta.other, tb.other = tb, ta
        a.makeConnection(ta)
        b.makeConnection(tb)
        return a, b, ta, tb

    def test_providesITransport(self) -> None:
        """
        L{MemoryTransport} provides L{ITransport}.
        """
        _, _, ta, _ = self.pair()
        verifyObject(ITransport, ta)

    def test_pausedReaderGetsNothing(self) -> None:
        """
        Bytes for a paused reader wait until it resumes.
        """
        a, b, ta, tb = self.pair()
        tb.pauseProducing()
        ta.write(b"x")
        self.assertFalse(ta.pump())
        self.assertEqual(b.received, b"")
        tb.resumeProducing()
        self.assertTrue(ta.pump())
        self.assertEqual(b.received, b"x")

    def test_abortDropsBufferedBytes(self) -> None:
        """
        C{abortConnection} loses buffered bytes: the aborting side ends with
        L{ConnectionAborted}, the peer with L{ConnectionLost}.
        """
        from twisted.internet.error import ConnectionAborted

        a, b, ta, tb = self.pair()
        ta.write(b"never")
        ta.abortConnection()
        ta.pump()
        self.assertEqual(b.received, b"")
        assert a.reason is not None and b.reason is not None
        a.reason.trap(ConnectionAborted)
        b.reason.trap(ConnectionLost)
