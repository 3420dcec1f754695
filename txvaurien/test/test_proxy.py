"""
Tests for L{txvaurien.proxy}, in memory: a L{MemoryReactorClock}, string
transports, and the test-only plugins of L{txvaurien.test.plugins}.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost, ConnectionRefusedError, TimeoutError
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien import logs
from txvaurien.interfaces import IConnection, IStage
from txvaurien.proxy import Stage
from txvaurien.table import REQUEST_SCOPE, BehaviorTable, buildTable
from txvaurien.test.helpers import Harness


class ProxyCoreTests(SynchronousTestCase):
    """
    The connection lifecycle with no fault: pausing, producers, bytes,
    half-close and closing.
    """

    def test_connectionProvidesIConnection(self) -> None:
        """
        A L{Connection} provides L{IConnection} and its Pipes provide
        L{IPushProducer}.
        """
        harness = Harness()
        client = harness.accept()
        connection = client.protocol.connection
        verifyObject(IConnection, connection)
        verifyObject(IPushProducer, connection.upstream)
        verifyObject(IPushProducer, connection.downstream)

    def test_clientPausedUntilBackendConnects(self) -> None:
        """
        The client's transport is paused as soon as it connects and resumed
        once the backend accepts; the backend is dialled with the configured
        host, port and connect timeout.
        """
        harness = Harness()
        harness.factory.connectTimeout = 7.5
        client = harness.accept()
        self.assertEqual(client.transport.producerState, "paused")
        [(host, port, _, timeout, _)] = harness.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 6379, 7.5))
        harness.backendConnects()
        self.assertEqual(client.transport.producerState, "producing")

    def test_registersPipesAsProducers(self) -> None:
        """
        Each transport's producer is the Pipe that writes to it, registered
        as a streaming producer.
        """
        harness = Harness()
        client, backend = harness.pair()
        connection = client.protocol.connection
        self.assertIs(client.transport.producer, connection.downstream)
        self.assertIs(backend.transport.producer, connection.upstream)
        self.assertTrue(client.transport.streaming)
        self.assertTrue(backend.transport.streaming)

    def test_setsNoDelay(self) -> None:
        """
        TCP_NODELAY is set on both sockets, so small writes are not held
        back by the proxy.
        """
        client, backend = Harness().pair()
        self.assertTrue(client.transport.noDelay)
        self.assertTrue(backend.transport.noDelay)

    def test_bytesFlowBothWays(self) -> None:
        """
        Bytes from the client reach the backend and bytes from the backend
        reach the client, unchanged, and are counted.
        """
        client, backend = Harness().pair()
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        backend.send(b"HTTP/1.0 200 OK\r\n\r\nhello")
        self.assertEqual(backend.received(), b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(client.received(), b"HTTP/1.0 200 OK\r\n\r\nhello")
        connection = client.protocol.connection
        self.assertEqual(connection.upstream.nbytes, 18)
        self.assertEqual(connection.downstream.nbytes, 24)

    def test_fullSinkPausesSource(self) -> None:
        """
        When a sink's buffer fills it pauses its producer, the Pipe, which
        pauses the other side's transport; resuming undoes it.
        """
        client, backend = Harness().pair()
        client.transport.producer.pauseProducing()
        self.assertEqual(backend.transport.producerState, "paused")
        self.assertEqual(client.transport.producerState, "producing")
        client.transport.producer.resumeProducing()
        self.assertEqual(backend.transport.producerState, "producing")
        backend.transport.producer.pauseProducing()
        self.assertEqual(client.transport.producerState, "paused")

    def test_halfCloseFromClientReachesBackend(self) -> None:
        """
        A client that half-closes after its request has the backend's write
        side closed, and still receives the whole response; then the proxy
        half-closes the client, and once both directions are done it closes
        both connections.
        """
        client, backend = Harness().pair()
        client.send(b"request")
        client.halfClose()
        self.assertEqual(backend.received(), b"request")
        self.assertTrue(backend.transport.writeClosed)
        self.assertFalse(client.transport.writeClosed)
        backend.send(b"response, part 1; ")
        backend.send(b"part 2")
        self.assertEqual(client.received(), b"response, part 1; part 2")
        backend.halfClose()
        self.assertTrue(client.transport.writeClosed)
        self.assertFalse(client.transport.disconnecting)
        backend.protocol.writeConnectionLost()
        client.protocol.writeConnectionLost()
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(backend.transport.disconnecting)

    def test_halfCloseFromBackendReachesClient(self) -> None:
        """
        A backend that half-closes first has the client's write side
        closed while the client can still send.
        """
        client, backend = Harness().pair()
        backend.send(b"greeting")
        backend.halfClose()
        self.assertTrue(client.transport.writeClosed)
        client.send(b"late data")
        self.assertEqual(backend.received(), b"late data")
        self.assertFalse(backend.transport.writeClosed)

    def test_sourceNotResumedAfterEOF(self) -> None:
        """
        Once a source has ended, the Pipe never resumes it (a resumed
        transport would read its EOF again).
        """
        client, backend = Harness().pair()
        upstream = client.protocol.connection.upstream
        client.halfClose()
        upstream.pauseProducing()
        client.transport.producerState = "sentinel"
        upstream.resumeProducing()
        self.assertEqual(client.transport.producerState, "sentinel")

    def test_producerUnregisteredBeforeClosing(self) -> None:
        """
        A Pipe stops being its sink's producer before the sink is
        half-closed or closed: a Twisted transport whose paused producer
        is still registered resumes it instead of closing when its buffer
        drains, and the FIN would never be sent.
        """
        client, backend = Harness().pair()
        client.halfClose()
        self.assertTrue(backend.transport.writeClosed)
        self.assertIsNone(backend.transport.producer)
        self.assertIsNotNone(client.transport.producer)
        client.protocol.connection.close()
        self.assertIsNone(client.transport.producer)
        self.assertTrue(client.transport.disconnecting)

    def test_backendLostClosesClient(self) -> None:
        """
        When the backend connection is lost, the client is closed after its
        buffered data, and the connection is forgotten once both are gone.
        """
        harness = Harness()
        client, backend = harness.pair()
        backend.lose(Failure(ConnectionLost()))
        self.assertTrue(client.transport.disconnecting)
        self.assertFalse(client.transport.disconnected)
        self.assertEqual(len(harness.factory.connections), 1)
        client.lose()
        self.assertEqual(harness.factory.connections, {})

    def test_clientLostClosesBackend(self) -> None:
        """
        When the client goes, the backend is closed.
        """
        harness = Harness()
        client, backend = harness.pair()
        client.lose(Failure(ConnectionLost()))
        self.assertTrue(backend.transport.disconnecting)
        backend.lose()
        self.assertEqual(harness.factory.connections, {})


class BackendFailureTests(SynchronousTestCase):
    """
    What a client sees when the backend cannot be reached.
    """

    def setUp(self) -> None:
        self.events = EventLoggingObserver()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)

    def _backendWarnings(self) -> list[dict]:
        return [e for e in self.events if e.get("log_namespace") == "txvaurien.proxy"
                and "cannot reach backend" in e.get("log_format", "")]

    def test_refusedClosesClientAndLogsOnce(self) -> None:
        """
        A refused backend connection closes the client cleanly (no bytes
        for C{tcp}), is logged once with the reason, and leaves nothing
        behind once the client is gone.
        """
        harness = Harness()
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError("nobody home")))
        self.assertTrue(client.transport.disconnecting)
        self.assertFalse(client.transport.disconnected)
        self.assertEqual(client.received(), b"")
        [event] = self._backendWarnings()
        self.assertIn("nobody home", event["why"])
        self.assertEqual(harness.factory.backendFailures, 1)
        client.lose()
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(len(self._backendWarnings()), 1)

    def test_timeoutIsReported(self) -> None:
        """
        A connect timeout is a failure like any other, with its reason.
        """
        harness = Harness()
        client = harness.accept()
        harness.backendFails(Failure(TimeoutError()))
        self.assertTrue(client.transport.disconnecting)
        [event] = self._backendWarnings()
        self.assertIn("timeout", event["why"].lower())

    def test_protocolErrorSentOnFailure(self) -> None:
        """
        A protocol handler's C{connectFailed} bytes are sent to the client
        before it is closed.
        """
        harness = Harness(protocol="lines")
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError()))
        self.assertEqual(client.received(), b"ERR backend unavailable\n")
        self.assertTrue(client.transport.disconnecting)

    def test_clientLeavingWhileConnectingCancelsAttempt(self) -> None:
        """
        A client that disconnects while the backend connection is being
        made has the attempt stopped, and the connection is forgotten.
        """
        harness = Harness()
        client = harness.accept()
        client.lose()
        self.assertTrue(harness.reactor.connectors[0].stoppedConnecting)
        self.assertEqual(harness.factory.connections, {})

    def test_lateBackendAfterClientLeftIsClosed(self) -> None:
        """
        A backend connection completing after the client left is closed at
        once.
        """
        harness = Harness()
        client = harness.accept()
        client.lose()
        backend = harness.backendConnects()
        self.assertTrue(backend.transport.disconnecting)


class FaultTests(SynchronousTestCase):
    """
    Faults on the Pipes, with the test-only C{slowdown} behavior that holds
    frames on the clock.
    """

    def test_stageProvidesIStage(self) -> None:
        """
        The stages faults are given provide L{IStage}.
        """
        harness = Harness("100:slowdown")
        client, _ = harness.pair()
        stage = client.protocol.connection.upstream.head
        self.assertIsInstance(stage, Stage)
        verifyObject(IStage, stage)

    def test_framesDelayedOnClock(self) -> None:
        """
        With C{slowdown}, bytes reach the other side only once the clock
        has advanced by the configured delay, in both directions.
        """
        harness = Harness("100:slowdown", settings={"slowdown": {"seconds": "2"}})
        client, backend = harness.pair()
        client.send(b"ping")
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(1.9)
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(0.1)
        self.assertEqual(backend.received(), b"ping")
        backend.send(b"pong")
        harness.reactor.advance(2)
        self.assertEqual(client.received(), b"pong")

    def test_directionLimitsFault(self) -> None:
        """
        A behavior whose direction is C{upstream} has no fault downstream.
        """
        harness = Harness(
            "100:slowdown", settings={"slowdown": {"direction": "upstream"}})
        client, backend = harness.pair()
        backend.send(b"pong")
        self.assertEqual(client.received(), b"pong")
        client.send(b"ping")
        self.assertEqual(backend.received(), b"")

    def test_holdingFaultPausesSource(self) -> None:
        """
        A fault holding more than it should pauses the source; releasing
        the frames resumes it.
        """
        harness = Harness("100:slowdown", settings={"slowdown": {"hold": 4}})
        client, backend = harness.pair()
        client.send(b"12345")
        self.assertEqual(client.transport.producerState, "paused")
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"12345")
        self.assertEqual(client.transport.producerState, "producing")

    def test_eofWaitsForHeldFrames(self) -> None:
        """
        A half-close reaches the backend only after the frames held before
        it.
        """
        harness = Harness("100:slowdown")
        client, backend = harness.pair()
        client.send(b"last words")
        client.halfClose()
        self.assertFalse(backend.transport.writeClosed)
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"last words")
        self.assertTrue(backend.transport.writeClosed)

    def test_tableChangeReachesLiveConnection(self) -> None:
        """
        A new behavior table applies to live connections: frames already
        held are released, in order, ahead of later ones.
        """
        harness = Harness("100:slowdown")
        client, backend = harness.pair()
        client.send(b"held ")
        harness.factory.setTable(buildTable("100:dummy", harness.registry))
        self.assertEqual(backend.received(), b"held ")
        client.send(b"direct")
        self.assertEqual(backend.received(), b"direct")
        harness.factory.setTable(buildTable("100:slowdown", harness.registry))
        client.send(b"slow again")
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"slow again")

    def test_connectionMadeCanClose(self) -> None:
        """
        A behavior that closes the connection in C{connectionMade} stops the
        backend from ever being dialled.
        """
        harness = Harness("100:closer")
        client = harness.accept()
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(harness.reactor.tcpClients, [])
        client.lose()
        self.assertEqual(harness.factory.connections, {})

    def test_timersCancelledOnClose(self) -> None:
        """
        Timers of faults and of the connection are cancelled when it ends.
        """
        harness = Harness("100:slowdown", idleTimeout=30)
        client, backend = harness.pair()
        client.send(b"held")
        self.assertTrue(harness.reactor.getDelayedCalls())
        client.lose(Failure(ConnectionLost()))
        backend.lose()
        self.assertEqual(
            [c for c in harness.reactor.getDelayedCalls() if c.active()], [])


class RequestScopeTests(SynchronousTestCase):
    """
    Per-request behaviors with the test-only C{lines} protocol.
    """

    def test_delayedRequestNotOvertaken(self) -> None:
        """
        Under request scope, a request delayed by its fault is not
        overtaken by the next one, which had no delay.
        """
        harness = Harness(
            "100:slowdown", protocol="lines", scope=REQUEST_SCOPE,
            settings={"slowdown": {"only": "slow"}})
        client, backend = harness.pair()
        client.send(b"slow 1\nfast 2\n")
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"slow 1\nfast 2\n")

    def test_responseUsesItsRequestBehavior(self) -> None:
        """
        Under request scope, a response goes through the faults chosen for
        its request: only the response to the slow request is delayed, and
        the next response waits for it.
        """
        harness = Harness(
            "100:slowdown", protocol="lines", scope=REQUEST_SCOPE,
            settings={"slowdown": {"only": "slow", "direction": "downstream"}})
        client, backend = harness.pair()
        client.send(b"slow 1\nfast 2\n")
        self.assertEqual(backend.received(), b"slow 1\nfast 2\n")
        backend.send(b"one\ntwo\n")
        self.assertEqual(client.received(), b"")
        harness.reactor.advance(1)
        self.assertEqual(client.received(), b"one\ntwo\n")

    def test_replyTakesTheResponsePlace(self) -> None:
        """
        A request a fault answers with an error is not sent to the backend,
        and the error reaches the client between the responses to the
        requests before and after it.
        """
        harness = Harness(
            "100:swallow", protocol="lines", scope=REQUEST_SCOPE,
            settings={"swallow": {"only": "bad"}})
        client, backend = harness.pair()
        client.send(b"get a\nbad b\nget c\n")
        self.assertEqual(backend.received(), b"get a\nget c\n")
        self.assertEqual(client.received(), b"")
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"A\nERR swallowed\n")
        backend.send(b"C\n")
        self.assertEqual(client.received(), b"C\n")

    def test_responsesPairedWithRequestsSent(self) -> None:
        """
        The session hears of requests as they are written, so responses are
        paired with the requests the backend saw.
        """
        harness = Harness(
            "100:swallow", protocol="lines", scope=REQUEST_SCOPE,
            settings={"swallow": {"only": "bad"}})
        client, backend = harness.pair()
        client.send(b"bad x\nget y\n")
        backend.send(b"Y\n")
        session = client.protocol.connection.session
        self.assertEqual(client.received(), b"ERR swallowed\nY\n")
        self.assertEqual(len(session.sent), 0)

    def test_eofAfterPendingResponses(self) -> None:
        """
        Under request scope, the end of stream waits for delayed requests.
        """
        harness = Harness(
            "100:slowdown", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"a\n")
        client.halfClose()
        self.assertFalse(backend.transport.writeClosed)
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"a\n")
        self.assertTrue(backend.transport.writeClosed)


class DecisionTests(SynchronousTestCase):
    """
    Behavior choices are drawn from the seeded per-connection stream and
    logged.
    """

    def _decisions(self, seed: int) -> list[tuple[int, object, str]]:
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        logs.setLevel("debug")
        self.addCleanup(logs.setLevel, "info")
        harness = Harness(
            "50:swallow", protocol="lines", scope=REQUEST_SCOPE, seed=seed)
        client, _ = harness.pair()
        client.send(b"".join(b"get %d\n" % i for i in range(40)))
        return [(e["cid"], e["request"], e["decision"]) for e in events
                if e.get("event") == "decision"]

    def test_sameSeedSameDecisions(self) -> None:
        """
        The same seed and traffic give the same logged decisions; a
        different seed gives different ones.
        """
        first = self._decisions(7)
        self.assertEqual(len(first), 40)
        self.assertEqual(first, self._decisions(7))
        self.assertNotEqual(first, self._decisions(8))
        self.assertEqual({d for _, _, d in first}, {"swallow", "dummy"})


class TimeoutAndDrainTests(SynchronousTestCase):
    """
    Idle timeout and graceful draining.
    """

    def test_idleConnectionClosed(self) -> None:
        """
        With an idle timeout, a connection without traffic is closed within
        1.25 idle periods, and one with traffic is not.
        """
        harness = Harness(idleTimeout=10)
        client, backend = harness.pair()
        for _ in range(5):
            harness.reactor.pump([0.5] * 10)
            client.send(b"x")
        harness.reactor.pump([0.5] * 19)
        self.assertFalse(client.transport.disconnecting)
        harness.reactor.pump([0.5] * 6)
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.protocol.connection.reason, "idle timeout")

    def test_drainLetsConnectionsFinish(self) -> None:
        """
        C{drain} fires once the last connection is gone, without closing
        connections that finish within the grace period.
        """
        harness = Harness()
        client, backend = harness.pair()
        d = harness.factory.drain(10)
        self.assertNoResult(d)
        harness.reactor.advance(5)
        self.assertFalse(client.transport.disconnecting)
        client.lose()
        backend.lose()
        self.successResultOf(d)

    def test_drainClosesAfterGrace(self) -> None:
        """
        Connections still open after the grace period are closed.
        """
        harness = Harness()
        client, backend = harness.pair()
        d = harness.factory.drain(3)
        harness.reactor.advance(3)
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(backend.transport.disconnecting)
        client.lose()
        backend.lose()
        self.successResultOf(d)


class ObservationTests(SynchronousTestCase):
    """
    What the factory exposes for metrics.
    """

    def test_decisionsCounted(self) -> None:
        """
        Each time a behavior is chosen, its count goes up.
        """
        harness = Harness("100:swallow", protocol="lines", scope=REQUEST_SCOPE)
        client, _ = harness.pair()
        client.send(b"a\nb\nc\n")
        self.assertEqual(harness.factory.decisions, {"swallow": 3})

    def test_latencyObserved(self) -> None:
        """
        Latency observers get each request with the seconds between its
        first bytes and the end of its response.
        """
        harness = Harness(protocol="lines", scope=REQUEST_SCOPE)
        seen: list[tuple[bytes, float]] = []
        harness.factory.latencyObservers.append(
            lambda connection, request, seconds: seen.append((request.meta["command"], seconds)))
        client, backend = harness.pair()
        client.send(b"get x\n")
        harness.reactor.advance(0.25)
        backend.send(b"X\n")
        self.assertEqual(seen, [("get", 0.25)])


class ReplyAndCloseTests(SynchronousTestCase):
    """
    L{Connection.reply} with C{close}.
    """

    def test_closeAfterReplyWaitsForItsTurn(self) -> None:
        """
        A reply with C{close} takes its request's place, and the connection
        closes right after it is written, not before.
        """
        harness = Harness("100:swallow", protocol="lines", scope=REQUEST_SCOPE,
                          settings={"swallow": {"only": "none"}})
        client, backend = harness.pair()
        connection = client.protocol.connection
        client.send(b"get a\nget b\n")
        self.assertEqual(backend.received(), b"get a\nget b\n")
        request = connection.session.sent[1]
        connection.reply(request, b"bye\n", close=True, reason="test says bye")
        self.assertFalse(client.transport.disconnecting)
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"A\nbye\n")
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(connection.reason, "test says bye")


class TableChangeTests(SynchronousTestCase):
    """
    How live connections take a new behavior table.
    """

    def test_unchangedBehaviorKeepsItsFault(self) -> None:
        """
        A behavior present in both the old and the new table keeps its
        fault on a live connection, with the frames it holds; one that is
        added gets a new fault after it.
        """
        harness = Harness("100:slowdown")
        client, backend = harness.pair()
        slowdown = harness.table.behaviors["slowdown"]
        swallow = harness.registry.behaviors.get("swallow").configure({})
        connection = client.protocol.connection
        fault = connection.upstream.head.fault
        client.send(b"held")
        harness.factory.setTable(BehaviorTable("both", [(100, [slowdown, swallow])]))
        self.assertIs(connection.upstream.head.fault, fault)
        self.assertEqual(
            [s.behavior.name for s in connection.upstream.stages], ["slowdown", "swallow"])
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"")
        # The error reply goes through the downstream slowdown too.
        self.assertEqual(client.received(), b"")
        harness.reactor.advance(1)
        self.assertEqual(len(client.received()), 64)

    def test_changeWhileConnecting(self) -> None:
        """
        A table change while the backend is being dialled is the one the
        connection uses once it is connected.
        """
        harness = Harness("100:dummy")
        client = harness.accept()
        harness.factory.setTable(buildTable("100:slowdown", harness.registry))
        backend = harness.backendConnects()
        client.send(b"late")
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"late")
