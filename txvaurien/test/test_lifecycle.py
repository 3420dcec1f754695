"""
Tests for L{txvaurien.lifecycle}: a connection's states, the half-closed
bound, the closing line's byte counts and how a new behavior table reaches
live connections.
"""

from __future__ import annotations

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from txvaurien import lifecycle
from txvaurien.lifecycle import (
    CLOSED,
    CLOSING,
    HALF_CLOSED,
    OPEN,
    OPENING,
    TRANSITIONS,
    LifecycleError,
)
from txvaurien.connection import Connection
from txvaurien.proxy import ADOPT_SLICE, HALF_CLOSED_TIMEOUT, ProxyServerFactory
from txvaurien.table import buildTable
from txvaurien.test.helpers import Harness


class StateTests(SynchronousTestCase):
    """
    The states a connection goes through.
    """

    def test_table(self) -> None:
        """
        Every state's moves lead to known states, C{CLOSED} is the only
        terminal state, and nothing leads back to C{OPENING}.
        """
        self.assertEqual(set(TRANSITIONS), {OPENING, OPEN, HALF_CLOSED, CLOSING, CLOSED})
        for state, moves in TRANSITIONS.items():
            self.assertTrue(moves <= set(TRANSITIONS), state)
            self.assertNotIn(OPENING, moves)
        self.assertEqual([s for s, m in TRANSITIONS.items() if not m], [CLOSED])

    def test_openingUntilBackendConnects(self) -> None:
        """
        An accepted client is C{OPENING} until the backend accepts, then
        C{OPEN}.
        """
        harness = Harness()
        client = harness.accept()
        connection = client.protocol.connection
        self.assertEqual(connection.state, OPENING)
        harness.backendConnects()
        self.assertEqual(connection.state, OPEN)
        self.assertFalse(connection.closing)

    def test_halfClosedThenClosed(self) -> None:
        """
        Once one direction delivered its end of stream the connection is
        C{HALF_CLOSED}; once the other has too, it closes and, both
        transports gone, is C{CLOSED} and no longer counted as live.
        """
        harness = Harness()
        client, backend = harness.pair()
        connection = client.protocol.connection
        client.halfClose()
        self.assertTrue(backend.transport.writeClosed)
        backend.protocol.writeConnectionLost()
        self.assertEqual(connection.state, HALF_CLOSED)
        backend.halfClose()
        client.protocol.writeConnectionLost()
        self.assertEqual(connection.state, CLOSING)
        self.assertTrue(client.transport.disconnecting)
        client.lose()
        backend.lose()
        self.assertEqual(connection.state, CLOSED)
        self.assertTrue(connection.finished)
        self.assertNotIn(connection, harness.factory.connections)

    def test_closingWaitsForBothSides(self) -> None:
        """
        A close moves to C{CLOSING}; the connection is C{CLOSED} only once
        both transports are gone.
        """
        harness = Harness()
        client, backend = harness.pair()
        connection = client.protocol.connection
        connection.close("test")
        self.assertEqual(connection.state, CLOSING)
        client.lose()
        self.assertEqual(connection.state, CLOSING)
        backend.lose()
        self.assertEqual(connection.state, CLOSED)
        self.assertEqual(connection.reason, "test")

    def test_closedIsFinal(self) -> None:
        """
        A closed connection cannot be moved again: closing it twice is a
        no-op, and a move the table refuses raises L{LifecycleError}.
        """
        harness = Harness()
        client, backend = harness.pair()
        connection = client.protocol.connection
        connection.close()
        client.lose()
        backend.lose()
        connection.close()
        self.assertEqual(connection.state, CLOSED)
        self.assertRaises(LifecycleError, connection._enter, OPEN)

    def test_clientLeavesWhileOpening(self) -> None:
        """
        A client that leaves before the backend answers cancels the dial,
        and the connection is C{CLOSED}.
        """
        harness = Harness()
        client = harness.accept()
        connection = client.protocol.connection
        client.lose()
        self.assertEqual(connection.state, CLOSED)


class HalfClosedBoundTests(SynchronousTestCase):
    """
    A half-closed connection without traffic is closed after
    C{halfClosedTimeout}.
    """

    def halfClosed(self, timeout: float | None = 10.0) -> tuple[Harness, object, object]:
        harness = Harness()
        harness.factory.halfClosedTimeout = timeout
        client, backend = harness.pair()
        client.halfClose()
        backend.protocol.writeConnectionLost()
        return harness, client, backend

    def test_default(self) -> None:
        """
        The bound is on by default.
        """
        self.assertEqual(Harness().factory.halfClosedTimeout, HALF_CLOSED_TIMEOUT)
        self.assertTrue(HALF_CLOSED_TIMEOUT > 0)

    def test_idleHalfClosedClosed(self) -> None:
        """
        A client that sent its FIN and whose backend never answers is
        closed within 1.25 periods, with the reason in the log line.
        """
        harness, client, backend = self.halfClosed(10.0)
        connection = client.protocol.connection
        harness.reactor.pump([1.0] * 9)
        self.assertFalse(client.transport.disconnecting)
        harness.reactor.pump([1.0] * 4)
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(connection.reason, "half-closed idle timeout")

    def test_trafficKeepsItOpen(self) -> None:
        """
        Bytes still flowing in the open direction keep a half-closed
        connection open.
        """
        harness, client, backend = self.halfClosed(10.0)
        for _ in range(10):
            harness.reactor.pump([1.0] * 5)
            backend.send(b"more")
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(client.received(), b"more" * 10)

    def test_noBound(self) -> None:
        """
        With C{None}, a half-closed connection is never closed for being
        idle, and no timer is left behind.
        """
        harness, client, backend = self.halfClosed(None)
        harness.reactor.pump([100.0] * 10)
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(harness.reactor.getDelayedCalls(), [])

    def test_openConnectionNotBounded(self) -> None:
        """
        The bound applies to half-closed connections only: an open idle
        one is left alone (that is C{idleTimeout}'s job).
        """
        harness = Harness()
        harness.factory.halfClosedTimeout = 1.0
        client, backend = harness.pair()
        harness.reactor.pump([1.0] * 10)
        self.assertFalse(client.transport.disconnecting)


class ClosingLineTests(SynchronousTestCase):
    """
    The log line that ends a connection.
    """

    def test_injectedBytesCounted(self) -> None:
        """
        Bytes a fault wrote in place of the backend's are counted as
        injected in the closing line (C{tcp}'s error sends 64 bytes).
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        harness = Harness("100:error")
        client, backend = harness.pair()
        client.send(b"hello")
        self.assertEqual(len(client.received()), 64)
        client.lose()
        backend.lose()
        closed = [e for e in events if e.get("event") == "closed"]
        self.assertEqual(len(closed), 1)
        self.assertEqual(closed[0]["injected"], 64)
        self.assertIn("64 injected", closed[0]["log_format"].format(**closed[0]))


def current(harness: Harness, connections: list) -> int:
    """
    How many of C{connections} have the proxy's newest table.
    """
    version = harness.factory.tableVersion
    return sum(1 for c in connections if c.tableVersion == version)


class TableAdoptionTests(SynchronousTestCase):
    """
    A new table reaches live connections in bounded slices.
    """

    def connections(self, harness: Harness, count: int) -> list[object]:
        result = []
        for port in range(count):
            client = harness.accept(40000 + port)
            harness.backendConnects()
            result.append(client.protocol.connection)
        return result

    def current(self, harness: Harness, connections: list) -> int:
        return current(harness, connections)

    def test_fewConnectionsAtOnce(self) -> None:
        """
        With no more than a slice of live connections, all take the new
        table before C{setTable} returns.
        """
        harness = Harness()
        connections = self.connections(harness, 3)
        harness.factory.setTable(buildTable("100:latency", harness.registry))
        self.assertEqual(self.current(harness, connections), 3)
        self.assertEqual(
            [b.name for b in connections[0].behaviors], ["latency"])

    def test_slices(self) -> None:
        """
        With more, C{setTable} itself adopts one slice, and each reactor
        turn one more, until every connection has the table.
        """
        count = ADOPT_SLICE * 2 + 7
        harness = Harness()
        connections = self.connections(harness, count)
        factory = harness.factory
        perTurn = []
        original = ProxyServerFactory._adoptSlice

        def adoptSlice(self: ProxyServerFactory) -> None:
            before = current(harness, connections)
            original(self)
            perTurn.append(current(harness, connections) - before)

        self.patch(ProxyServerFactory, "_adoptSlice", adoptSlice)
        factory.setTable(buildTable("100:latency", harness.registry))
        self.assertEqual(perTurn, [ADOPT_SLICE])
        [call] = harness.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), harness.reactor.seconds())
        harness.reactor.advance(0)
        self.assertEqual(perTurn, [ADOPT_SLICE, ADOPT_SLICE, 7])
        self.assertEqual(self.current(harness, connections), count)
        self.assertEqual(harness.reactor.getDelayedCalls(), [])
        self.assertTrue(all(
            [b.name for b in c.behaviors] == ["latency"] for c in connections))

    def test_changesDuringAPass(self) -> None:
        """
        Changes made while a pass is under way cost no adoption of their
        own, and every connection ends with the newest table.
        """
        count = ADOPT_SLICE * 3
        harness = Harness()
        connections = self.connections(harness, count)
        adopted = []
        original = Connection.tableChanged

        def tableChanged(connection: Connection) -> None:
            adopted.append(connection)
            original(connection)

        self.patch(Connection, "tableChanged", tableChanged)
        harness.factory.setTable(buildTable("100:latency", harness.registry))
        for _ in range(50):
            harness.factory.setTable(buildTable("100:dummy", harness.registry))
        self.assertEqual(len(adopted), ADOPT_SLICE)
        for _ in range(10):
            harness.reactor.advance(0)
        self.assertEqual(self.current(harness, connections), count)
        self.assertTrue(all(c.behaviors == () or [b.name for b in c.behaviors] == ["dummy"]
                            for c in connections))
        self.assertTrue(len(adopted) <= count * 2)


class ModuleTests(SynchronousTestCase):
    """
    The module's public names.
    """

    def test_exports(self) -> None:
        """
        The states and the mixin are exported.
        """
        for name in ("OPENING", "OPEN", "HALF_CLOSED", "CLOSING", "CLOSED", "LifecycleMixin"):
            self.assertIn(name, lifecycle.__all__)
