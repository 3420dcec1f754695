"""
Tests of the UDP proxy's sessions: one per client address, replies routed
back, idle expiry on the clock, the session bound, the datagram size
bound, ICMP unreachable, and the counters metrics read.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txvaurien.datagram.sockets import ConnectedSocket
from txvaurien.frames import DOWNSTREAM, UPSTREAM
from txvaurien.test.test_datagram_behaviors import CLIENT, Rig, registry
from txvaurien.table import buildTable

OTHER = ("127.0.0.1", 40001)


def warnings(case: Any) -> EventLoggingObserver:
    """
    Collect the events logged while C{case} runs.
    """
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    case.addCleanup(globalLogPublisher.removeObserver, events)
    return events


def texts(events: EventLoggingObserver) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in events]


class SessionTests(SynchronousTestCase):
    """
    Each client address has its own session and backend socket.
    """

    def test_sessionPerClientAddress(self) -> None:
        """
        Two clients get two backend sockets, connected to the backend, and
        each backend reply goes back to the client of its socket.
        """
        rig = Rig()
        rig.send(b"a1", CLIENT)
        rig.send(b"b1", OTHER)
        rig.send(b"a2", CLIENT)
        self.assertEqual(len(rig.sockets), 2)
        a, b = rig.sockets
        self.assertEqual((a.host, a.port), ("127.0.0.1", 5300))
        self.assertEqual(a.written, [b"a1", b"a2"])
        self.assertEqual(b.written, [b"b1"])
        b.reply(b"to b")
        a.reply(b"to a")
        self.assertEqual(rig.transport.written, [(b"to b", OTHER), (b"to a", CLIENT)])
        self.assertEqual(rig.proxy.accepted, 2)

    def test_fastPathWithoutFaults(self) -> None:
        """
        With no fault and an opaque protocol, a session forwards directly.
        """
        rig = Rig()
        rig.send(b"x")
        self.assertTrue(rig.proxy.sessions[CLIENT].fast)
        rig2 = Rig("100:drop")
        rig2.send(b"x")
        self.assertFalse(rig2.proxy.sessions[CLIENT].fast)

    def test_idleSessionExpires(self) -> None:
        """
        A session with no datagram either way for C{sessionTimeout}
        seconds ends and closes its socket; traffic either way keeps it.
        """
        rig = Rig(sessionTimeout=10.0)
        rig.send(b"x")
        rig.clock.advance(6)
        rig.backend().reply(b"y")
        rig.clock.advance(6)
        self.assertIn(CLIENT, rig.proxy.sessions)
        rig.clock.advance(4)
        self.assertEqual(rig.proxy.sessions, {})
        self.assertTrue(rig.backend().closed)
        self.assertEqual(rig.clock.getDelayedCalls(), [])
        rig.send(b"again")
        self.assertEqual(len(rig.sockets), 2)

    def test_memoryFlatOverManyClients(self) -> None:
        """
        10,000 client addresses, each sending once a second apart, leave
        no more sessions than fit in the timeout.
        """
        rig = Rig(sessionTimeout=5.0)
        most = 0
        for i in range(10000):
            rig.send(b"x", ("127.0.0.1", 10000 + i))
            rig.clock.advance(0.01)
            most = max(most, len(rig.proxy.sessions))
        self.assertLessEqual(most, 501)
        rig.clock.advance(5)
        self.assertEqual(rig.proxy.sessions, {})
        self.assertEqual(rig.proxy.connections, {})

    def test_sessionBoundRefusesAndCounts(self) -> None:
        """
        Beyond C{maxSessions}, datagrams of new clients are dropped, counted
        and logged once; known clients go on.
        """
        events = warnings(self)
        rig = Rig(maxSessions=1)
        rig.send(b"a", CLIENT)
        rig.send(b"b", OTHER)
        rig.send(b"c", OTHER)
        rig.send(b"d", CLIENT)
        self.assertEqual(rig.backend().written, [b"a", b"d"])
        self.assertEqual(len(rig.sockets), 1)
        self.assertEqual(rig.proxy.refused, 2)
        self.assertEqual(rig.proxy.counters()["sessions_refused"], 2)
        logged = [t for t in texts(events) if "the most allowed" in t]
        self.assertEqual(len(logged), 1)

    def test_oversizeDroppedAndCounted(self) -> None:
        """
        A datagram over C{maxDatagram} bytes is dropped, either way, and
        counted; the socket reads one byte more than the bound so that it
        can tell.
        """
        events = warnings(self)
        rig = Rig(maxDatagram=100)
        rig.send(b"x" * 101)
        rig.send(b"x" * 100)
        self.assertEqual(rig.backend().maxPacketSize, 101)
        self.assertEqual(rig.backend().written, [b"x" * 100])
        rig.backend().reply(b"y" * 101)
        self.assertEqual(rig.transport.written, [])
        self.assertEqual(rig.proxy.oversize, {UPSTREAM: 1, DOWNSTREAM: 1})
        self.assertEqual(len([t for t in texts(events) if "over the bound of 100" in t]), 2)

    def test_unreachableCounted(self) -> None:
        """
        ICMP unreachable from the backend is counted and logged once per
        session; the session stays.
        """
        events = warnings(self)
        rig = Rig()
        rig.send(b"x")
        rig.backend().refused()
        rig.backend().refused()
        self.assertEqual(rig.proxy.unreachable, 2)
        self.assertIn(CLIENT, rig.proxy.sessions)
        self.assertEqual(len([t for t in texts(events) if "unreachable" in t]), 1)

    def test_countersPerDirection(self) -> None:
        """
        Datagrams in, out and dropped are counted per direction.
        """
        rig = Rig("100:drop", {"drop": {"loss_rate": 1, "direction": "downstream"}})
        rig.send(b"q")
        rig.backend().reply(b"r")
        counters = rig.proxy.counters()
        self.assertEqual(counters["received"], {UPSTREAM: 1, DOWNSTREAM: 1})
        self.assertEqual(counters["sent"], {UPSTREAM: 1, DOWNSTREAM: 0})
        self.assertEqual(counters["dropped"], {UPSTREAM: 0, DOWNSTREAM: 1})
        self.assertEqual(rig.proxy.decisions, {"drop": 1})

    def test_errorAnswersWithRandomBytes(self) -> None:
        """
        C{error} on opaque datagrams answers each with the C{tcp} handler's
        random bytes instead of forwarding it.
        """
        rig = Rig("100:error")
        rig.send(b"q")
        self.assertEqual(rig.backend().written, [])
        self.assertEqual(len(rig.transport.to()[0]), 64)

    def test_tableChangeChoosesAgain(self) -> None:
        """
        After a table change a live session drops per the new table.
        """
        rig = Rig()
        rig.send(b"a")
        rig.proxy.setTable(buildTable("100:blackout", registry()))
        rig.send(b"b")
        self.assertEqual(rig.backend().written, [b"a"])

    def test_closeAllEndsSessions(self) -> None:
        """
        L{DatagramProxy.drain} ends every session.
        """
        rig = Rig()
        rig.send(b"a")
        rig.send(b"b", OTHER)
        rig.proxy.drain(5)
        self.assertEqual(rig.proxy.sessions, {})
        self.assertTrue(all(s.closed for s in rig.sockets))


class ConnectedSocketTests(TestCase):
    """
    L{ConnectedSocket} on real loopback sockets.
    """

    def test_icmpUnreachableReported(self) -> None:
        """
        Sending to a port nothing listens on reports C{refused} (the
        kernel's ICMP port unreachable), not an exception.
        """
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        refused: Deferred = Deferred()
        sock = ConnectedSocket(reactor, "127.0.0.1", port, "127.0.0.1", 2048,
                               lambda data: None, lambda: refused.callback(True))
        self.addCleanup(sock.close)
        sock.write(b"anyone?")
        return refused

    def test_echoThroughSocket(self) -> None:
        """
        A datagram written reaches the peer; the peer's reply is read.
        """
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        self.addCleanup(peer.close)
        got: Deferred = Deferred()
        sock = ConnectedSocket(reactor, "127.0.0.1", peer.getsockname()[1], "127.0.0.1",
                               2048, got.callback, lambda: None)
        self.addCleanup(sock.close)
        self.assertTrue(sock.write(b"ping"))
        data, addr = peer.recvfrom(100)
        self.assertEqual((data, addr), (b"ping", ("127.0.0.1", sock.getHost().port)))
        peer.sendto(b"pong", addr)
        return got.addCallback(self.assertEqual, b"pong")
