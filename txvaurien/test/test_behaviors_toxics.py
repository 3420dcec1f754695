"""
Tests for Toxiproxy's toxics and the behaviors beyond them (C{latency},
C{bandwidth}, C{slow_close}, C{timeout}, C{reset_peer}, C{slicer},
C{limit_data}, C{down}, C{slow_open}, C{limit_time}, C{corrupt},
C{drop}), in memory: a L{MemoryReactorClock}, string transports and the
real proxy core.

On the string transports a clean close (FIN) shows as C{disconnecting}
alone, a reset (RST, C{abortConnection}) as C{disconnected}.
"""

from __future__ import annotations

import hashlib
import shlex
import statistics
from typing import Any, ClassVar

from twisted.internet.error import ConnectionLost
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien import logs
from txvaurien.behaviors.bandwidth import MAX_HOLD, BandwidthFault
from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.behaviors.latency import LATENCY_HOLD, LatencyFault
from txvaurien.behaviors.slicer import SLICER_HOLD
from txvaurien.frames import DOWNSTREAM, UPSTREAM, Frame, Message
from txvaurien.interfaces import IBehavior, IFault
from txvaurien.options import OptionError
from txvaurien.table import CONNECTION_SCOPE, REQUEST_SCOPE, buildTable
from txvaurien.test.helpers import Harness, Side

NAMES = (
    "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
    "limit_data", "down", "slow_open", "limit_time", "corrupt", "drop",
)


class RecorderFault(Fault):
    """
    Records every frame that reaches it, then forwards it.
    """

    def frameReceived(self, frame: Frame) -> None:
        self.stage.behavior.frames.append(frame)
        self.stage.forward(frame)


class Recorder(Behavior):
    """
    Test-only: a behavior that records the frames a chain lets through, to
    check how a fault before it split them.
    """

    name = "recorder"
    options: ClassVar[dict[str, tuple[str, Any, Any]]] = {}
    defaultDirection = "both"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        self.frames: list[Frame] = []

    def buildFault(self, stage: Any) -> Any:
        return RecorderFault(stage)


def harness(
    spec: str,
    settings: dict[str, dict[str, Any]] | None = None,
    protocol: str = "tcp",
    scope: str = CONNECTION_SCOPE,
    seed: int = 1,
) -> Harness:
    """
    A L{Harness} whose table is C{spec}, which may use the C{recorder}.
    """
    h = Harness("100:dummy", protocol=protocol, scope=scope, seed=seed)
    h.registry.behaviors.add(Recorder())
    h.table = buildTable(spec, h.registry, settings, scope)
    h.factory.table = h.table
    return h


def activeCalls(h: Harness) -> list[Any]:
    """
    The delayed calls still pending on the harness's clock.
    """
    return [call for call in h.reactor.getDelayedCalls() if call.active()]


def recorded(h: Harness) -> list[Frame]:
    return h.table.behaviors["recorder"].frames


def fault(side: Side, direction: str = DOWNSTREAM, index: int = 0) -> Any:
    connection = side.protocol.connection
    pipe = connection.downstream if direction == DOWNSTREAM else connection.upstream
    return pipe.stages[index].fault


def drain(h: Harness, step: float = 0.001, limit: float = 60.0) -> None:
    """
    Advance the clock in small steps until no timer is left.
    """
    spent = 0.0
    while activeCalls(h) and spent < limit:
        h.reactor.advance(step)
        spent += step


class DecisionLog:
    """
    Collects the C{decision} events logged while a test runs, with debug
    logging on.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events = EventLoggingObserver()
        globalLogPublisher.addObserver(self.events)
        case.addCleanup(globalLogPublisher.removeObserver, self.events)
        logs.setLevel("debug")
        case.addCleanup(logs.setLevel, "info")

    def decisions(self, behavior: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.events
            if e.get("event") == "decision" and e.get("log_namespace") == "txvaurien.behaviors"
            and (behavior is None or e.get("behavior") == behavior)
        ]

    def all(self) -> list[tuple[Any, ...]]:
        """
        Every decision, table choices included, as comparable tuples.
        """
        return [
            (e.get("cid"), e.get("request"), e.get("behavior"), e.get("direction"),
             e.get("decision"), repr(e.get("parameters")))
            for e in self.events if e.get("event") == "decision"
        ]


class Case(SynchronousTestCase):
    """
    A test case with C{assertNear} (trial's C{assertAlmostEqual} has no
    C{delta}).
    """

    def assertNear(self, value: float, expected: float, delta: float) -> None:
        if not abs(value - expected) <= delta:
            self.fail("{!r} is not within {!r} of {!r}".format(value, delta, expected))


def assertFIN(case: SynchronousTestCase, side: Side) -> None:
    case.assertTrue(side.transport.disconnecting, "not closed")
    case.assertFalse(side.transport.disconnected, "reset instead of closed")


def assertOpen(case: SynchronousTestCase, side: Side) -> None:
    case.assertFalse(side.transport.disconnecting, "closed")
    case.assertFalse(side.transport.disconnected, "reset")


def assertClosesAfter(
    case: SynchronousTestCase, h: Harness, wait: float, rest: float, *sides: Side,
) -> None:
    """
    C{sides} stay open for the next C{wait} seconds on the harness's clock,
    and are closed (FIN) C{rest} seconds after that.
    """
    h.reactor.advance(wait)
    for side in sides:
        assertOpen(case, side)
    h.reactor.advance(rest)
    for side in sides:
        assertFIN(case, side)


def assertArrives(
    case: SynchronousTestCase, h: Harness, side: Side, data: bytes,
    wait: float, rest: float,
) -> None:
    """
    Nothing more reaches C{side} in the next C{wait} seconds on the
    harness's clock, and exactly C{data} does C{rest} seconds after that.
    """
    h.reactor.advance(wait)
    case.assertEqual(side.received(), b"")
    h.reactor.advance(rest)
    case.assertEqual(side.received(), data)


class InterfaceTests(Case):
    """
    Every behavior provides L{IBehavior}, and its faults L{IFault}.
    """

    def test_behaviorsProvideIBehavior(self) -> None:
        """
        Each behavior is found by the registry under its name, provides
        L{IBehavior}, and its docstring has an example command line.
        """
        registry = Harness().registry
        for name in NAMES:
            behavior = registry.behaviors.get(name)
            self.assertEqual(behavior.name, name)
            verifyObject(IBehavior, behavior)
            self.assertIn("Example::", type(behavior).__doc__)
            self.assertIn("twistd -n vaurien", type(behavior).__doc__)
            self.assertIn("direction", behavior.settings)
            self.assertIn("toxicity", behavior.settings)

    def test_examplesParse(self) -> None:
        """
        The example command line in each behavior's docstring is accepted
        by C{twistd vaurien}'s options and selects that behavior.
        """
        from txvaurien import tap

        registry = Harness().registry
        for name in NAMES:
            doc = type(registry.behaviors.get(name)).__doc__ or ""
            example = doc.split("Example::", 1)[1].strip().split("\n\n", 1)[0]
            argv = shlex.split(example.replace("\\\n", " "))
            self.assertEqual(argv[:3], ["twistd", "-n", "vaurien"])
            options = tap.Options()
            options.parseOptions(argv[3:])
            self.assertIn(name, options["behavior"])

    def test_faultsProvideIFault(self) -> None:
        """
        The faults the frame-acting behaviors build provide L{IFault}.
        """
        for name in NAMES:
            if name in ("down", "slow_open"):
                continue
            h = harness("100:" + name, {name: {"direction": "both"}})
            client, backend = h.pair()
            for direction in (UPSTREAM, DOWNSTREAM):
                verifyObject(IFault, fault(client, direction))

    def test_downFaultProvidesIFault(self) -> None:
        """
        C{down}'s fault, built when a live connection gets it, provides
        L{IFault}; C{slow_open} builds no fault.
        """
        h = harness("100:dummy")
        client, backend = h.pair()
        h.factory.setTable(buildTable("100:down", h.registry))
        verifyObject(IFault, fault(client))
        h2 = harness("100:slow_open", {"slow_open": {"delay": "0"}})
        client2, _ = h2.pair()
        self.assertEqual(client2.protocol.connection.downstream.stages, [])


class InvalidOptionTests(Case):
    """
    Invalid option values are refused with an error naming the behavior,
    the option and what was expected.
    """

    cases = [
        ("latency", "latency", "-1", "number >= 0"),
        ("latency", "jitter", "-0.5", "number >= 0"),
        ("latency", "distribution", "gamma", "uniform, normal, pareto"),
        ("bandwidth", "rate", "0", "number > 0"),
        ("bandwidth", "rate", "-10", "number > 0"),
        ("bandwidth", "rate", "fast", "number > 0"),
        ("slow_close", "delay", "-1", "number >= 0"),
        ("timeout", "timeout", "-1", "number >= 0"),
        ("reset_peer", "timeout", "-5", "number >= 0"),
        ("slicer", "average_size", "0", "integer >= 1"),
        ("slicer", "average_size", "1.5", "integer >= 1"),
        ("slicer", "size_variation", "-1", "integer >= 0"),
        ("slicer", "delay", "-1", "number >= 0"),
        ("limit_data", "bytes", "-1", "integer >= 0"),
        ("limit_data", "bytes", "ten", "integer >= 0"),
        ("slow_open", "delay", "-1", "number >= 0"),
        ("limit_time", "time", "-1", "number >= 0"),
        ("corrupt", "probability", "1.5", "<= 1.0"),
        ("corrupt", "probability", "-0.1", ">= 0.0"),
        ("drop", "loss_rate", "2", "<= 1.0"),
        ("drop", "correlation", "-1", ">= 0.0"),
        ("latency", "direction", "sideways", "upstream, downstream, both"),
        ("drop", "toxicity", "1.1", "<= 1.0"),
    ]

    def test_invalidValuesRefused(self) -> None:
        """
        Each invalid value (text, as from the command line) raises
        L{OptionError} whose message names the behavior and option, the
        value, and the accepted type.
        """
        registry = Harness().registry
        for behavior, option, value, expected in self.cases:
            with self.assertRaises(OptionError) as caught:
                buildTable("100:" + behavior, registry, {behavior: {option: value}})
            message = str(caught.exception)
            self.assertIn("behavior {} option {}".format(behavior, option), message)
            self.assertIn(expected, message)
            self.assertIn(value, message)

    def test_rateZeroAsJSON(self) -> None:
        """
        A JSON rate of 0 (control API) is refused too, not taken as a
        stall.
        """
        registry = Harness().registry
        with self.assertRaises(OptionError) as caught:
            buildTable("100:bandwidth", registry, {"bandwidth": {"rate": 0}})
        self.assertIn("rate", str(caught.exception))

    def test_edgeValuesAccepted(self) -> None:
        """
        The edge values are accepted: zero delays, limits and
        probabilities, probabilities of 1, a tiny rate.
        """
        registry = Harness().registry
        for behavior, values in [
            ("latency", {"latency": "0", "jitter": "0"}),
            ("bandwidth", {"rate": "0.001"}),
            ("slow_close", {"delay": "0"}),
            ("timeout", {"timeout": "0"}),
            ("reset_peer", {"timeout": "0"}),
            ("slicer", {"average_size": "1", "size_variation": "0", "delay": "0"}),
            ("limit_data", {"bytes": "0"}),
            ("slow_open", {"delay": "0"}),
            ("limit_time", {"time": "0"}),
            ("corrupt", {"probability": "0"}),
            ("corrupt", {"probability": "1"}),
            ("drop", {"loss_rate": "1", "correlation": "1"}),
        ]:
            table = buildTable("100:" + behavior, registry, {behavior: values})
            configured = table.behaviors[behavior]
            for option, value in values.items():
                self.assertEqual(configured.settings[option], float(value))


class LatencyTests(Case):
    """
    C{latency}: frames held on the clock, in order, with backpressure.
    """

    def test_downstreamDelayedByLatency(self) -> None:
        """
        By default responses are delayed by C{latency} milliseconds, to the
        tick, and requests are not.
        """
        h = harness("100:latency", {"latency": {"latency": "100"}})
        client, backend = h.pair()
        client.send(b"ping")
        self.assertEqual(backend.received(), b"ping")
        backend.send(b"pong")
        assertArrives(self, h, client, b"pong", 0.0999, 0.0001)
        self.assertEqual(activeCalls(h), [])

    def test_bothDirections(self) -> None:
        """
        With C{direction=both}, each way is delayed.
        """
        h = harness("100:latency", {"latency": {"latency": "50", "direction": "both"}})
        client, backend = h.pair()
        client.send(b"ping")
        backend.send(b"pong")
        h.reactor.advance(0.049)
        self.assertEqual((backend.received(), client.received()), (b"", b""))
        h.reactor.advance(0.001)
        self.assertEqual((backend.received(), client.received()), (b"ping", b"pong"))

    def test_eachFrameHeldFromItsArrival(self) -> None:
        """
        Frames arriving at different times each leave C{latency} after
        their own arrival.
        """
        h = harness("100:latency", {"latency": {"latency": "10"}})
        client, backend = h.pair()
        backend.send(b"a")
        h.reactor.advance(0.004)
        backend.send(b"b")
        h.reactor.advance(0.006)
        self.assertEqual(client.received(), b"a")
        assertArrives(self, h, client, b"b", 0.003, 0.001)

    def test_zeroLatencyForwardsAtOnce(self) -> None:
        """
        With latency 0 and no jitter, frames go through without a timer.
        """
        h = harness("100:latency", {"latency": {"latency": "0"}})
        client, backend = h.pair()
        backend.send(b"now")
        self.assertEqual(client.received(), b"now")
        self.assertEqual(activeCalls(h), [])

    def test_orderKeptWithJitter(self) -> None:
        """
        With a jitter larger than the gap between frames, each frame leaves
        at its own due time or, if that is earlier, together with the frame
        before it: never before it.  The delays drawn are logged.
        """
        log = DecisionLog(self)
        h = harness("100:latency", {"latency": {"latency": "50", "jitter": "40"}})
        client, backend = h.pair()
        step = 0.0005
        sent: list[tuple[float, bytes]] = []
        arrivals: dict[int, float] = {}
        got = b""
        expected = b""
        for i in range(60):
            chunk = b"<%03d>" % i
            sent.append((h.reactor.seconds(), chunk))
            backend.send(chunk)
            expected += chunk
            for _ in range(4):
                h.reactor.advance(step)
                got += client.received()
                self.assertTrue(expected.startswith(got))
                for j in range(len(got) // 5):
                    arrivals.setdefault(j, h.reactor.seconds())
        while len(got) < len(expected):
            h.reactor.advance(step)
            got += client.received()
            self.assertTrue(expected.startswith(got))
            for j in range(len(got) // 5):
                arrivals.setdefault(j, h.reactor.seconds())
        delays = [e["parameters"]["delay"] / 1000.0 for e in log.decisions("latency")]
        self.assertEqual(len(delays), 60)
        self.assertTrue(all(0.010 <= d <= 0.090 for d in delays))
        due = 0.0
        overtaken = 0
        for i, ((at, _), delay) in enumerate(zip(sent, delays)):
            own = at + delay
            if own < due:
                overtaken += 1
            due = max(due, own)
            self.assertTrue(due <= arrivals[i] < due + step + 1e-9,
                            (i, due, arrivals[i]))
        # The jitter really reordered due times, which the fault undid.
        self.assertGreater(overtaken, 10)

    def _samples(self, distribution: str, latency: float, jitter: float) -> list[float]:
        h = harness("100:latency", {"latency": {
            "latency": str(latency), "jitter": str(jitter), "distribution": distribution}})
        client, _ = h.pair()
        latencyFault = fault(client)
        self.assertIsInstance(latencyFault, LatencyFault)
        return [
            latencyFault.sample(Message(DOWNSTREAM, i, "data")) * 1000
            for i in range(4000)
        ]

    def test_uniformDistribution(self) -> None:
        """
        C{uniform} delays lie between C{latency - jitter} and C{latency +
        jitter}, spread over that range, with mean C{latency}.
        """
        samples = self._samples("uniform", 100, 20)
        self.assertTrue(all(80 <= s <= 120 for s in samples))
        self.assertLess(min(samples), 81)
        self.assertGreater(max(samples), 119)
        self.assertNear(statistics.mean(samples), 100, delta=1.0)

    def test_normalDistribution(self) -> None:
        """
        C{normal} delays have mean C{latency} and standard deviation
        C{jitter}, so some fall outside C{latency +/- jitter}.
        """
        samples = self._samples("normal", 100, 20)
        self.assertNear(statistics.mean(samples), 100, delta=1.5)
        self.assertNear(statistics.pstdev(samples), 20, delta=1.5)
        outside = sum(1 for s in samples if abs(s - 100) > 20)
        self.assertTrue(0.25 < outside / len(samples) < 0.39, outside)

    def test_paretoDistribution(self) -> None:
        """
        C{pareto} delays are never below C{latency}; the extra delay has a
        heavy tail: median C{jitter * (sqrt(2) - 1)}, and about 1 in 25
        above C{4 * jitter}.
        """
        samples = self._samples("pareto", 100, 20)
        self.assertTrue(all(s >= 100 for s in samples))
        self.assertNear(statistics.median(samples), 100 + 20 * (2 ** 0.5 - 1),
                               delta=1.0)
        tail = sum(1 for s in samples if s > 180)
        self.assertTrue(100 < tail < 220, tail)

    def test_negativeDelaysCountAsZero(self) -> None:
        """
        A normal jitter larger than the latency gives no negative delay:
        those frames leave at once.
        """
        samples = self._samples("normal", 5, 50)
        self.assertEqual(min(samples), 0.0)
        self.assertGreater(sum(1 for s in samples if s == 0.0), 1000)

    def test_jitterDrawsAreSeeded(self) -> None:
        """
        The same seed gives the same delays; another seed other delays.
        """
        def draws(seed: int) -> list[float]:
            h = harness("100:latency", {"latency": {"jitter": "30"}}, seed=seed)
            client, _ = h.pair()
            latencyFault = fault(client)
            return [latencyFault.sample(Message(DOWNSTREAM, i, "data")) for i in range(20)]
        self.assertEqual(draws(3), draws(3))
        self.assertNotEqual(draws(3), draws(4))

    def test_perMessageDelay(self) -> None:
        """
        The delay is drawn once per message: the later frames of a line
        (C{lines} protocol) keep its delay, and only one draw is logged
        for it.
        """
        log = DecisionLog(self)
        h = harness("100:latency", {"latency": {"latency": "10", "jitter": "5"}},
                    protocol="lines")
        client, backend = h.pair()
        client.send(b"get\n")
        backend.send(b"first ")
        h.reactor.advance(0.002)
        backend.send(b"half\n")
        [decision] = log.decisions("latency")
        delay = decision["parameters"]["delay"] / 1000.0
        assertArrives(self, h, client, b"first ", delay - 0.002 - 0.0001, 0.0001)
        h.reactor.advance(0.002)
        self.assertEqual(client.received(), b"half\n")

    def test_requestScopeDelaysDrawnExchanges(self) -> None:
        """
        Under request scope only the exchanges that drew C{latency} are
        delayed (requests and responses with C{direction=both}); requests
        reach the backend, and responses the client, in order.
        """
        h = harness("50:latency", {"latency": {"latency": "100", "direction": "both"}},
                    protocol="lines", scope=REQUEST_SCOPE, seed=2)
        client, backend = h.pair()
        requests = [b"get %d\n" % i for i in range(20)]
        client.send(b"".join(requests))
        early = backend.received()
        self.assertTrue(0 < len(early) < len(b"".join(requests)), early)
        h.reactor.advance(0.1)
        seen = early + backend.received()
        # A delayed request is not overtaken by the next one.
        self.assertEqual(seen, b"".join(requests))
        backend.send(b"".join(b"re " + line + b"\n" for line in seen.splitlines()))
        h.reactor.advance(0.1)
        got = client.received()
        self.assertEqual(got, b"".join(b"re " + line + b"\n" for line in seen.splitlines()))

    def test_settingChangeAppliesToNextFrame(self) -> None:
        """
        Changing C{latency} on a live proxy applies to the next frame.
        """
        h = harness("100:latency", {"latency": {"latency": "100"}})
        client, backend = h.pair()
        h.table.behaviors["latency"].settings["latency"] = 10.0
        backend.send(b"quick")
        h.reactor.advance(0.010)
        self.assertEqual(client.received(), b"quick")

    def test_eofFollowsHeldFrames(self) -> None:
        """
        The end of stream is delayed like data, after the frames before
        it.
        """
        h = harness("100:latency", {"latency": {"latency": "100"}})
        client, backend = h.pair()
        backend.send(b"bye")
        h.reactor.advance(0.05)
        backend.halfClose()
        h.reactor.advance(0.05)
        self.assertEqual(client.received(), b"bye")
        self.assertFalse(client.transport.writeClosed)
        h.reactor.advance(0.05)
        self.assertTrue(client.transport.writeClosed)

    def test_eofAloneDelayed(self) -> None:
        """
        An end of stream with nothing held is delayed by the latency too.
        """
        h = harness("100:latency", {"latency": {"latency": "30"}})
        client, backend = h.pair()
        backend.halfClose()
        h.reactor.advance(0.029)
        self.assertFalse(client.transport.writeClosed)
        h.reactor.advance(0.001)
        self.assertTrue(client.transport.writeClosed)

    def test_backpressure(self) -> None:
        """
        Holding more than L{LATENCY_HOLD} bytes pauses the source (the
        backend); once they leave it is resumed.
        """
        h = harness("100:latency", {"latency": {"latency": "100"}})
        client, backend = h.pair()
        backend.send(b"x" * (LATENCY_HOLD // 2))
        self.assertEqual(backend.transport.producerState, "producing")
        h.reactor.advance(0.05)
        backend.send(b"y" * (LATENCY_HOLD // 2 + 1))
        self.assertEqual(backend.transport.producerState, "paused")
        h.reactor.advance(0.05)
        self.assertEqual(backend.transport.producerState, "producing")
        self.assertEqual(len(client.received()), LATENCY_HOLD // 2)
        h.reactor.advance(0.05)
        self.assertEqual(len(client.received()), LATENCY_HOLD // 2 + 1)

    def test_eofUnregistersPipeFirst(self) -> None:
        """
        A fault that passes the end of stream on from a timer unregisters
        the Pipe as the sink's producer before the half-close (a transport
        whose paused producer is still registered would resume it instead
        of half-closing).
        """
        h = harness("100:latency", {"latency": {"latency": "10"}})
        client, backend = h.pair()
        connection = client.protocol.connection
        backend.send(b"data")
        backend.halfClose()
        self.assertIs(client.transport.producer, connection.downstream)
        h.reactor.advance(0.01)
        self.assertIsNone(client.transport.producer)
        self.assertTrue(client.transport.writeClosed)
        self.assertIs(backend.transport.producer, connection.upstream)

    def test_unlinkReleasesHeldFrames(self) -> None:
        """
        When the table changes, frames held are forwarded at once, in
        order, the pending end of stream follows, the timer is cancelled
        and the source resumed.
        """
        h = harness("100:latency", {"latency": {"latency": "100"}})
        client, backend = h.pair()
        backend.send(b"one ")
        backend.send(b"x" * LATENCY_HOLD)
        backend.halfClose()
        self.assertEqual(backend.transport.producerState, "paused")
        h.factory.setTable(buildTable("100:dummy", h.registry))
        self.assertEqual(client.received(), b"one " + b"x" * LATENCY_HOLD)
        self.assertTrue(client.transport.writeClosed)
        self.assertEqual(activeCalls(h), [])

    def test_unlinkResumesSource(self) -> None:
        """
        A fault paused for holding too much resumes its source when it is
        unlinked.
        """
        h = harness("100:latency")
        client, backend = h.pair()
        backend.send(b"x" * (LATENCY_HOLD + 1))
        self.assertEqual(backend.transport.producerState, "paused")
        h.factory.setTable(buildTable("100:dummy", h.registry))
        self.assertEqual(backend.transport.producerState, "producing")

    def test_connectionLostCancelsTimer(self) -> None:
        """
        When the connection goes, held frames are dropped and the timer
        cancelled.
        """
        h = harness("100:latency")
        client, backend = h.pair()
        backend.send(b"held")
        client.lose(Failure(ConnectionLost()))
        backend.lose()
        self.assertEqual(activeCalls(h), [])
        self.assertEqual(client.received(), b"")


class BandwidthTests(Case):
    """
    C{bandwidth}: a token bucket on the clock.
    """

    def setUp(self) -> None:
        self.h = harness("100:bandwidth+recorder", {"bandwidth": {"rate": "1"}})
        self.client, self.backend = self.h.pair()

    def test_rateOnClock(self) -> None:
        """
        At 1 KB/s, 10 ms worth of bytes leave at once, then 1000 bytes per
        second (within one 10 ms quantum), until all are through.
        """
        self.backend.send(b"z" * 3000)
        self.assertEqual(len(self.client.received()), 10)
        total = 10
        for second in (1, 2):
            self.h.reactor.pump([0.001] * 1000)
            total += len(self.client.received())
            self.assertTrue(10 + 1000 * second - 11 <= total <= 10 + 1000 * second,
                            (second, total))
        self.h.reactor.pump([0.001] * 1020)
        total += len(self.client.received())
        self.assertEqual(total, 3000)
        self.assertEqual(activeCalls(self.h), [])

    def test_fractionalRateNoBusyLoop(self) -> None:
        """
        A rate whose 10 ms quantum is not a whole number of bytes (1234.5
        bytes per second) keeps one timer at a time, never due now, and
        delivers on time.
        """
        h = harness("100:bandwidth", {"bandwidth": {"rate": "1.2345"}})
        client, backend = h.pair()
        backend.send(b"f" * 2481)
        total = len(client.received())
        self.assertEqual(total, 12)
        for _ in range(2000):
            h.reactor.advance(0.001)
            calls = activeCalls(h)
            self.assertLessEqual(len(calls), 1)
            for call in calls:
                self.assertGreater(call.getTime(), h.reactor.seconds())
            total += len(client.received())
        self.assertTrue(12 + 2469 - 13 <= total <= 12 + 2469, total)
        h.reactor.pump([0.001] * 20)
        self.assertEqual(total + len(client.received()), 2481)

    def test_kilobyteIsThousandBytes(self) -> None:
        """
        C{rate} counts KB of 1000 bytes: at 8 KB/s, 16000 bytes (beyond
        the first 10 ms worth) take 2 s.
        """
        h = harness("100:bandwidth", {"bandwidth": {"rate": "8"}})
        client, backend = h.pair()
        backend.send(b"q" * 16080)
        total = len(client.received())
        self.assertEqual(total, 80)
        h.reactor.pump([0.001] * 1980)
        total += len(client.received())
        self.assertLess(total, 16080)
        h.reactor.pump([0.001] * 40)
        total += len(client.received())
        self.assertEqual(total, 16080)
        self.assertEqual(activeCalls(h), [])

    def test_splitFramesKeepFlags(self) -> None:
        """
        A frame split where the bucket runs dry becomes pieces: only the
        first is its message's first, only the last its last, and their
        bytes are the frame's.
        """
        self.backend.send(b"0123456789" * 5)
        self.h.reactor.pump([0.01] * 10)
        frames = recorded(self.h)
        self.assertGreater(len(frames), 2)
        self.assertEqual(b"".join(f.data for f in frames), b"0123456789" * 5)
        self.assertEqual([f.first for f in frames], [True] + [False] * (len(frames) - 1))
        self.assertEqual([f.last for f in frames], [False] * (len(frames) - 1) + [True])
        self.assertEqual({id(f.message) for f in frames}, {id(frames[0].message)})

    def test_lateTimerMadeUp(self) -> None:
        """
        A timer that fires late (a busy reactor) sends what accrued
        meanwhile, so the average rate holds.
        """
        self.backend.send(b"z" * 3000)
        self.assertEqual(len(self.client.received()), 10)
        self.h.reactor.advance(0.3)
        self.assertEqual(len(self.client.received()), 300)

    def test_idleBurstBounded(self) -> None:
        """
        After an idle period, only 20 ms worth leave at once.
        """
        self.backend.send(b"a" * 10)
        self.assertEqual(len(self.client.received()), 10)
        self.h.reactor.advance(5)
        self.backend.send(b"b" * 100)
        self.assertEqual(self.client.received(), b"b" * 20)

    def test_backpressure(self) -> None:
        """
        Holding more than 0.1 s of traffic (64 KiB at least) pauses the
        source, which resumes once the backlog is under it again.
        """
        h = harness("100:bandwidth", {"bandwidth": {"rate": "100"}})
        client, backend = h.pair()
        self.assertEqual(fault(client).holdLimit(), 65536)
        backend.send(b"m" * 70000)
        self.assertEqual(backend.transport.producerState, "paused")
        h.reactor.pump([0.01] * 3)
        self.assertEqual(backend.transport.producerState, "paused")
        h.reactor.pump([0.01] * 3)
        self.assertEqual(backend.transport.producerState, "producing")

    def test_holdLimitScalesWithRate(self) -> None:
        """
        The hold limit is 0.1 s of traffic within 64 KiB and 15 MiB.
        """
        for rate, limit in [("1", 65536), ("1000", 100000),
                            ("100000", 10000000), ("1000000", MAX_HOLD)]:
            h = harness("100:bandwidth", {"bandwidth": {"rate": rate}})
            client, _ = h.pair()
            self.assertIsInstance(fault(client), BandwidthFault)
            self.assertEqual(fault(client).holdLimit(), limit)

    def test_rateChangeApplies(self) -> None:
        """
        A live rate change applies from the next release.
        """
        self.backend.send(b"z" * 30000)
        self.client.received()
        self.h.table.behaviors["bandwidth"].settings["rate"] = 10.0
        self.h.reactor.pump([0.001] * 1000)
        received = len(self.client.received())
        self.assertTrue(10000 - 110 <= received <= 10000 + 10, received)

    def test_highRateExact(self) -> None:
        """
        At 100 MB/s, 10 MB take 0.1 s on the clock (within 10 ms).
        """
        h = harness("100:bandwidth", {"bandwidth": {"rate": "100000"}})
        client, backend = h.pair()
        for _ in range(10):
            backend.send(b"h" * 1000000)
        received = len(client.received())
        h.reactor.pump([0.001] * 89)
        received += len(client.received())
        self.assertLess(received, 10000000)
        h.reactor.pump([0.001] * 12)
        received += len(client.received())
        self.assertEqual(received, 10000000)

    def test_eofAfterBacklog(self) -> None:
        """
        The end of stream is passed on once the backlog has left.
        """
        self.backend.send(b"z" * 100)
        self.backend.halfClose()
        self.assertFalse(self.client.transport.writeClosed)
        self.h.reactor.pump([0.01] * 9)
        self.assertFalse(self.client.transport.writeClosed)
        self.h.reactor.pump([0.01] * 2)
        self.assertEqual(len(self.client.received()), 100)
        self.assertTrue(self.client.transport.writeClosed)

    def test_unlinkReleasesRest(self) -> None:
        """
        On a table change the rest of a partly sent frame and the frames
        behind it leave at once, with their flags.
        """
        self.backend.send(b"0123456789abcdef")
        self.backend.send(b"tail")
        self.assertEqual(self.client.received(), b"0123456789")
        self.h.factory.setTable(buildTable("100:dummy", self.h.registry))
        self.assertEqual(self.client.received(), b"abcdeftail")
        frames = recorded(self.h)
        self.assertEqual([(f.data, f.first, f.last) for f in frames],
                         [(b"0123456789", True, False), (b"abcdef", False, True),
                          (b"tail", True, True)])
        self.assertEqual(activeCalls(self.h), [])

    def test_upstreamUntouchedByDefault(self) -> None:
        """
        By default only the downstream direction is throttled.
        """
        self.client.send(b"u" * 5000)
        self.assertEqual(len(self.backend.received()), 5000)


class SlowCloseTests(Case):
    """
    C{slow_close}: the end of stream comes C{delay} ms late.
    """

    def test_eofDelayed(self) -> None:
        """
        Data passes at once; the backend's end of stream reaches the
        client C{delay} ms later, and the connection stays open meanwhile.
        """
        h = harness("100:slow_close", {"slow_close": {"delay": "500"}})
        client, backend = h.pair()
        backend.send(b"last words")
        self.assertEqual(client.received(), b"last words")
        backend.halfClose()
        h.reactor.advance(0.499)
        self.assertFalse(client.transport.writeClosed)
        assertOpen(self, client)
        h.reactor.advance(0.001)
        self.assertTrue(client.transport.writeClosed)

    def test_liveDelayChange(self) -> None:
        """
        A longer C{delay} set while an end of stream waits postpones it.
        """
        h = harness("100:slow_close", {"slow_close": {"delay": "500"}})
        client, backend = h.pair()
        backend.halfClose()
        h.table.behaviors["slow_close"].settings["delay"] = 800.0
        h.reactor.advance(0.799)
        self.assertFalse(client.transport.writeClosed)
        h.reactor.advance(0.001)
        self.assertTrue(client.transport.writeClosed)

    def test_upstreamEofNotDelayed(self) -> None:
        """
        By default the client's end of stream passes at once.
        """
        h = harness("100:slow_close")
        client, backend = h.pair()
        client.halfClose()
        self.assertTrue(backend.transport.writeClosed)

    def test_zeroDelay(self) -> None:
        """
        With 0 the end of stream passes at once.
        """
        h = harness("100:slow_close", {"slow_close": {"delay": "0"}})
        client, backend = h.pair()
        backend.halfClose()
        self.assertTrue(client.transport.writeClosed)

    def test_unlinkForwardsEof(self) -> None:
        """
        When the behavior is removed, a delayed end of stream passes at
        once and its timer is cancelled.
        """
        h = harness("100:slow_close")
        client, backend = h.pair()
        backend.halfClose()
        h.factory.setTable(buildTable("100:dummy", h.registry))
        self.assertTrue(client.transport.writeClosed)
        self.assertEqual(activeCalls(h), [])

    def test_connectionLostCancelsTimer(self) -> None:
        """
        A connection lost while the end of stream waits leaves no timer.
        """
        h = harness("100:slow_close")
        client, backend = h.pair()
        backend.halfClose()
        client.lose(Failure(ConnectionLost()))
        backend.lose()
        self.assertEqual(activeCalls(h), [])

    def test_noEffectUnderRequestScope(self) -> None:
        """
        Under request scope, where the end of stream does not pass through
        faults, the behavior builds none: responses and the end of stream
        pass at once.
        """
        h = harness("100:slow_close", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = h.pair()
        client.send(b"get\n")
        backend.send(b"ok\n")
        self.assertEqual(client.received(), b"ok\n")
        backend.halfClose()
        self.assertTrue(client.transport.writeClosed)
        self.assertEqual(activeCalls(h), [])


class TimeoutTests(Case):
    """
    C{timeout}: data swallowed, then a clean close.
    """

    def test_swallowThenClose(self) -> None:
        """
        Responses are dropped, requests pass; after C{timeout} ms both
        sides are closed with a FIN.
        """
        h = harness("100:timeout", {"timeout": {"timeout": "2000"}})
        client, backend = h.pair()
        client.send(b"request")
        self.assertEqual(backend.received(), b"request")
        backend.send(b"response")
        self.assertEqual(client.received(), b"")
        assertClosesAfter(self, h, 1.999, 0.001, client, backend)
        self.assertEqual(client.protocol.connection.reason, "timeout behavior")

    def test_zeroHoldsForever(self) -> None:
        """
        With 0, data is swallowed and the connection never closed by the
        behavior; set to 5000 later (live), the connection is closed
        within a second, its 5 s being long past.
        """
        h = harness("100:timeout", {"timeout": {"timeout": "0"}})
        client, backend = h.pair()
        backend.send(b"lost")
        for _ in range(3600):
            h.reactor.advance(1)
        self.assertEqual(client.received(), b"")
        assertOpen(self, client)
        self.assertEqual(len(activeCalls(h)), 1)
        h.table.behaviors["timeout"].settings["timeout"] = 5000.0
        h.reactor.advance(1)
        assertFIN(self, client)

    def test_liveTimeoutChange(self) -> None:
        """
        A longer C{timeout} set while a connection waits postpones its
        close; a shorter one brings it forward (counted from the same
        start), at the next look at the option, within a second.
        """
        h = harness("100:timeout", {"timeout": {"timeout": "2000"}})
        client, backend = h.pair()
        h.table.behaviors["timeout"].settings["timeout"] = 3000.0
        assertClosesAfter(self, h, 2.5, 0.5, client)
        h2 = harness("100:timeout", {"timeout": {"timeout": "10000"}})
        client2, _ = h2.pair()
        h2.reactor.advance(2)
        h2.table.behaviors["timeout"].settings["timeout"] = 2500.0
        # Deadlines look at their option once a second: at 3 s here.
        assertClosesAfter(self, h2, 0.999, 0.001, client2)

    def test_bothDirectionsOneTimer(self) -> None:
        """
        With C{direction=both}, both ways are swallowed and one timer
        closes the connection.
        """
        h = harness("100:timeout", {"timeout": {"direction": "both"}})
        client, backend = h.pair()
        self.assertEqual(len(activeCalls(h)), 1)
        client.send(b"up")
        backend.send(b"down")
        self.assertEqual((client.received(), backend.received()), (b"", b""))
        h.reactor.advance(1)
        assertFIN(self, client)

    def test_eofPasses(self) -> None:
        """
        The end of stream is passed on.
        """
        h = harness("100:timeout")
        client, backend = h.pair()
        backend.send(b"dropped")
        backend.halfClose()
        self.assertTrue(client.transport.writeClosed)

    def test_removalRestoresFlow(self) -> None:
        """
        Removing the behavior cancels the close and lets data flow.
        """
        h = harness("100:timeout")
        client, backend = h.pair()
        h.factory.setTable(buildTable("100:dummy", h.registry))
        self.assertEqual(activeCalls(h), [])
        backend.send(b"flows")
        self.assertEqual(client.received(), b"flows")
        h.reactor.advance(10)
        assertOpen(self, client)

    def test_requestScopeDropsResponse(self) -> None:
        """
        Under request scope, the response to a request that drew the
        behavior is dropped and the connection closes C{timeout} ms after
        that request began.
        """
        h = harness("100:timeout", {"timeout": {"timeout": "300"}},
                    protocol="lines", scope=REQUEST_SCOPE)
        client, backend = h.pair()
        h.reactor.advance(5)
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"get a\n")
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"")
        assertClosesAfter(self, h, 0.299, 0.001, client)


class ResetPeerTests(Case):
    """
    C{reset_peer}: a TCP reset after C{timeout} ms.
    """

    def test_resetAfterTimeout(self) -> None:
        """
        Data flows until C{timeout}; then the client is reset (RST: the
        transport aborted, not closed) and the backend dropped.
        """
        h = harness("100:reset_peer", {"reset_peer": {"timeout": "500"}})
        client, backend = h.pair()
        client.send(b"hello")
        backend.send(b"world")
        self.assertEqual((backend.received(), client.received()), (b"hello", b"world"))
        h.reactor.advance(0.499)
        assertOpen(self, client)
        h.reactor.advance(0.001)
        self.assertTrue(client.transport.disconnected)
        self.assertTrue(backend.transport.disconnected)
        self.assertEqual(client.protocol.connection.reason, "reset_peer behavior")

    def test_zeroResetsAtOnce(self) -> None:
        """
        With 0 the connection is reset in the reactor turn after the
        backend connection is made.
        """
        h = harness("100:reset_peer")
        client, backend = h.pair()
        h.reactor.advance(0)
        self.assertTrue(client.transport.disconnected)

    def test_toxicityRespected(self) -> None:
        """
        Only connections the behavior was drawn for are reset: none with
        toxicity 0, exactly the drawn ones (about half) with 0.5.
        """
        for toxicity, low, high in (("0", 0, 0), ("0.5", 25, 55)):
            h = harness("100:reset_peer", {"reset_peer": {"toxicity": toxicity}})
            pairs = [h.pair() for _ in range(80)]
            h.reactor.advance(1)
            reset = [c.transport.disconnected for c, _ in pairs]
            drawn = [bool(c.protocol.connection.behaviors) for c, _ in pairs]
            self.assertEqual(reset, drawn)
            self.assertTrue(low <= sum(reset) <= high, (toxicity, sum(reset)))
            for c, _ in pairs:
                if not c.transport.disconnected:
                    assertOpen(self, c)

    def test_liveTimeoutChange(self) -> None:
        """
        A longer C{timeout} set on a live proxy postpones the reset of a
        live connection.
        """
        h = harness("100:reset_peer", {"reset_peer": {"timeout": "500"}})
        client, backend = h.pair()
        h.table.behaviors["reset_peer"].settings["timeout"] = 1500.0
        h.reactor.advance(1.499)
        assertOpen(self, client)
        h.reactor.advance(0.001)
        self.assertTrue(client.transport.disconnected)

    def test_oneTimerBothDirections(self) -> None:
        """
        With C{direction=both} one timer resets the connection once.
        """
        h = harness("100:reset_peer", {"reset_peer": {"direction": "both", "timeout": "10"}})
        client, backend = h.pair()
        self.assertEqual(len(activeCalls(h)), 1)

    def test_removalCancelsReset(self) -> None:
        """
        Removing the behavior before the time is up cancels the reset.
        """
        h = harness("100:reset_peer", {"reset_peer": {"timeout": "100"}})
        client, backend = h.pair()
        h.factory.setTable(buildTable("100:dummy", h.registry))
        h.reactor.advance(1)
        assertOpen(self, client)
        self.assertEqual(activeCalls(h), [])


class SlicerTests(Case):
    """
    C{slicer}: the stream cut into slices, spaced on the clock.
    """

    def test_fixedSizes(self) -> None:
        """
        With no variation, a frame is cut every C{average_size} bytes; the
        pieces keep the frame's first and last flags at its ends.
        """
        h = harness("100:slicer+recorder", {"slicer": {
            "average_size": "10", "size_variation": "0", "delay": "0"}})
        client, backend = h.pair()
        data = bytes(range(35))
        backend.send(data)
        self.assertEqual(client.received(), data)
        frames = recorded(h)
        self.assertEqual([len(f.data) for f in frames], [10, 10, 10, 5])
        self.assertEqual([(f.first, f.last) for f in frames],
                         [(True, False), (False, False), (False, False), (False, True)])

    def test_cutsFollowStreamNotFrames(self) -> None:
        """
        A slice interrupted by a frame boundary goes on in the next frame:
        frames of 7 and 8 bytes are cut 7 | 3, 5.
        """
        h = harness("100:slicer+recorder", {"slicer": {
            "average_size": "10", "size_variation": "0", "delay": "0"}})
        client, backend = h.pair()
        backend.send(b"a" * 7)
        backend.send(b"b" * 8)
        self.assertEqual([f.data for f in recorded(h)], [b"a" * 7, b"b" * 3, b"b" * 5])

    def test_delayBetweenSlices(self) -> None:
        """
        Slices leave C{delay} microseconds apart, the first at once.
        """
        h = harness("100:slicer", {"slicer": {
            "average_size": "4", "size_variation": "0", "delay": "2000"}})
        client, backend = h.pair()
        backend.send(b"abcdefghij")
        self.assertEqual(client.received(), b"abcd")
        assertArrives(self, h, client, b"efgh", 0.0019, 0.0001)
        h.reactor.advance(0.002)
        self.assertEqual(client.received(), b"ij")
        h.reactor.advance(0.0005)
        backend.send(b"kl")
        self.assertEqual(client.received(), b"")
        h.reactor.advance(0.0015)
        self.assertEqual(client.received(), b"kl")
        self.assertEqual(activeCalls(h), [])

    def test_sizesDrawnAndLogged(self) -> None:
        """
        Slice sizes are drawn within C{average_size +/- size_variation},
        use the whole range, and each one is logged.
        """
        log = DecisionLog(self)
        h = harness("100:slicer+recorder", {"slicer": {
            "average_size": "20", "size_variation": "15", "delay": "0"}})
        client, backend = h.pair()
        backend.send(b"s" * 20000)
        sizes = [len(f.data) for f in recorded(h)]
        self.assertEqual(sum(sizes), 20000)
        self.assertTrue(all(5 <= s <= 35 for s in sizes[:-1]))
        self.assertEqual(min(sizes[:-1]), 5)
        self.assertEqual(max(sizes), 35)
        self.assertNear(statistics.mean(sizes), 20, delta=1)
        logged = [e["parameters"]["size"] for e in log.decisions("slicer")]
        self.assertEqual(logged[:-1], sizes[:-1])

    def test_variationLargerThanAverage(self) -> None:
        """
        Sizes drawn at or below zero become one byte.
        """
        h = harness("100:slicer+recorder", {"slicer": {
            "average_size": "2", "size_variation": "5", "delay": "0"}})
        client, backend = h.pair()
        backend.send(b"v" * 2000)
        sizes = [len(f.data) for f in recorded(h)]
        self.assertEqual(sum(sizes), 2000)
        self.assertEqual(min(sizes), 1)
        self.assertLessEqual(max(sizes), 7)

    def test_chunkingIndependent(self) -> None:
        """
        With the same seed the stream is cut at the same places whether it
        arrived in one read or in many.
        """
        def cuts(chunks: list[int]) -> set[int]:
            h = harness("100:slicer+recorder", {"slicer": {
                "average_size": "50", "size_variation": "40", "delay": "0"}})
            client, backend = h.pair()
            data = bytes(range(256)) * 40
            position = 0
            for size in chunks:
                backend.send(data[position:position + size])
                position += size
            self.assertEqual(client.received(), data)
            offsets, at = set(), 0
            for f in recorded(h):
                at += len(f.data)
                offsets.add(at)
            return offsets
        chunks = [1000, 3, 7000, 237, 2000]
        boundaries = {sum(chunks[:i + 1]) for i in range(len(chunks))}
        one = cuts([10240]) - boundaries
        many = cuts(chunks) - boundaries
        self.assertGreater(len(one), 100)
        self.assertEqual(one, many)

    def test_backpressureAndUnlink(self) -> None:
        """
        Holding more than 1 MiB pauses the source; removing the behavior
        sends every slice at once and resumes it.
        """
        h = harness("100:slicer", {"slicer": {
            "average_size": "65536", "size_variation": "0", "delay": "1000"}})
        client, backend = h.pair()
        data = hashlib.sha256(b"seed").digest() * (SLICER_HOLD // 16)
        backend.send(data)
        self.assertEqual(backend.transport.producerState, "paused")
        h.reactor.pump([0.001] * 5)
        self.assertEqual(len(client.received()), 6 * 65536)
        h.factory.setTable(buildTable("100:dummy", h.registry))
        self.assertEqual(backend.transport.producerState, "producing")
        self.assertEqual(len(client.received()), len(data) - 6 * 65536)
        self.assertEqual(activeCalls(h), [])

    def test_eofAfterSlices(self) -> None:
        """
        The end of stream follows the last slice.
        """
        h = harness("100:slicer", {"slicer": {
            "average_size": "1", "size_variation": "0", "delay": "1000"}})
        client, backend = h.pair()
        backend.send(b"abc")
        backend.halfClose()
        h.reactor.advance(0.001)
        self.assertFalse(client.transport.writeClosed)
        h.reactor.advance(0.001)
        self.assertEqual(client.received(), b"abc")
        self.assertTrue(client.transport.writeClosed)


class LimitDataTests(Case):
    """
    C{limit_data}: exactly C{bytes} bytes, then a clean close.
    """

    def test_limitThenClose(self) -> None:
        """
        The first C{bytes} bytes pass, the frame crossing the limit is cut,
        both sides are closed (FIN) and later data is dropped.
        """
        h = harness("100:limit_data+recorder", {"limit_data": {"bytes": "10"}})
        client, backend = h.pair()
        backend.send(b"123456")
        assertOpen(self, client)
        backend.send(b"7890abc")
        self.assertEqual(client.received(), b"1234567890")
        assertFIN(self, client)
        assertFIN(self, backend)
        backend.send(b"more")
        self.assertEqual(client.received(), b"")
        self.assertEqual([(f.data, f.first, f.last) for f in recorded(h)],
                         [(b"123456", True, True), (b"7890", True, False)])

    def test_exactLimitClosesAtOnce(self) -> None:
        """
        Reaching the limit exactly closes the connection without waiting
        for more.
        """
        h = harness("100:limit_data", {"limit_data": {"bytes": "4"}})
        client, backend = h.pair()
        backend.send(b"four")
        self.assertEqual(client.received(), b"four")
        assertFIN(self, client)

    def test_zeroClosesOnFirstByte(self) -> None:
        """
        With 0, the first data closes the connection and is not forwarded.
        """
        h = harness("100:limit_data", {"limit_data": {"bytes": "0"}})
        client, backend = h.pair()
        assertOpen(self, client)
        backend.send(b"x")
        self.assertEqual(client.received(), b"")
        assertFIN(self, client)

    def test_upstreamCountedWhenAsked(self) -> None:
        """
        With C{direction=upstream}, the client's bytes are counted and the
        backend's are not.
        """
        h = harness("100:limit_data", {"limit_data": {"bytes": "5", "direction": "upstream"}})
        client, backend = h.pair()
        backend.send(b"a long greeting")
        self.assertEqual(client.received(), b"a long greeting")
        client.send(b"abcdefg")
        self.assertEqual(backend.received(), b"abcde")
        assertFIN(self, backend)


class DownTests(Case):
    """
    C{down}: connections closed, the backend never dialled.
    """

    def test_newConnectionClosed(self) -> None:
        """
        A new connection is closed at once (FIN), without dialling the
        backend.
        """
        h = harness("100:down")
        client = h.accept()
        assertFIN(self, client)
        self.assertEqual(h.reactor.tcpClients, [])
        client.lose()
        self.assertEqual(h.factory.connections, {})

    def test_liveConnectionsClosed(self) -> None:
        """
        Live connections are closed when a table change gives them the
        behavior, and what comes meanwhile is dropped.
        """
        h = harness("100:dummy")
        pairs = [h.pair() for _ in range(3)]
        h.factory.setTable(buildTable("100:down", h.registry))
        for client, backend in pairs:
            assertFIN(self, client)
            assertFIN(self, backend)
            backend.send(b"late")
            client.send(b"late")
            self.assertEqual((client.received(), backend.received()), (b"", b""))

    def test_requestScope(self) -> None:
        """
        Under request scope, a request that draws C{down} closes the
        connection and is not forwarded.
        """
        h = harness("100:down", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = h.pair()
        assertOpen(self, client)
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"")
        assertFIN(self, client)
        assertFIN(self, backend)


class SlowOpenTests(Case):
    """
    C{slow_open}: the backend is dialled late.
    """

    def test_dialDelayed(self) -> None:
        """
        The backend is dialled C{delay} ms after the client connected; the
        client is not read from meanwhile.
        """
        h = harness("100:slow_open", {"slow_open": {"delay": "500"}})
        client = h.accept()
        self.assertEqual(h.reactor.tcpClients, [])
        self.assertEqual(client.transport.producerState, "paused")
        h.reactor.advance(0.499)
        self.assertEqual(h.reactor.tcpClients, [])
        h.reactor.advance(0.001)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        backend = h.backendConnects()
        self.assertEqual(client.transport.producerState, "producing")
        client.send(b"hi")
        self.assertEqual(backend.received(), b"hi")

    def test_zeroDialsAtOnce(self) -> None:
        """
        With 0 the backend is dialled at once.
        """
        h = harness("100:slow_open", {"slow_open": {"delay": "0"}})
        h.accept()
        self.assertEqual(len(h.reactor.tcpClients), 1)

    def test_clientLeavingCancels(self) -> None:
        """
        A client leaving during the delay cancels it: no dial, no timer,
        the connection forgotten.
        """
        h = harness("100:slow_open")
        client = h.accept()
        client.lose()
        self.assertEqual(activeCalls(h), [])
        h.reactor.advance(5)
        self.assertEqual(h.reactor.tcpClients, [])
        self.assertEqual(h.factory.connections, {})

    def test_liveConnectionUnaffected(self) -> None:
        """
        Given to a live connection by a table change, it changes nothing,
        and its timer ends with the connection.
        """
        h = harness("100:dummy")
        client, backend = h.pair()
        h.factory.setTable(buildTable("100:slow_open", h.registry))
        client.send(b"still")
        self.assertEqual(backend.received(), b"still")
        client.lose()
        backend.lose()
        self.assertEqual(activeCalls(h), [])


class LimitTimeTests(Case):
    """
    C{limit_time}: connections closed after C{time} ms.
    """

    def test_closedAfterTime(self) -> None:
        """
        Data flows until C{time}; then both sides are closed (FIN).
        """
        h = harness("100:limit_time", {"limit_time": {"time": "1500"}})
        client, backend = h.pair()
        h.reactor.advance(1.499)
        client.send(b"ok")
        self.assertEqual(backend.received(), b"ok")
        assertOpen(self, client)
        h.reactor.advance(0.001)
        assertFIN(self, client)
        assertFIN(self, backend)
        self.assertEqual(client.protocol.connection.reason, "limit_time behavior")

    def test_closeUnregistersPipes(self) -> None:
        """
        Before closing, the Pipes are unregistered as their sinks'
        producers (a transport whose paused producer is still registered
        would resume it instead of closing once its buffer drains).
        """
        h = harness("100:limit_time", {"limit_time": {"time": "100"}})
        client, backend = h.pair()
        self.assertIsNotNone(client.transport.producer)
        h.reactor.advance(0.1)
        assertFIN(self, client)
        self.assertIsNone(client.transport.producer)
        self.assertIsNone(backend.transport.producer)

    def test_oneTimerBothDirections(self) -> None:
        """
        With C{direction=both}, one timer.
        """
        h = harness("100:limit_time", {"limit_time": {"direction": "both"}})
        h.pair()
        self.assertEqual(len(activeCalls(h)), 1)

    def test_liveTimeChange(self) -> None:
        """
        A shorter C{time} set on a live proxy applies to live connections,
        within a second.
        """
        h = harness("100:limit_time", {"limit_time": {"time": "60000"}})
        client, backend = h.pair()
        h.reactor.advance(10)
        h.table.behaviors["limit_time"].settings["time"] = 5000.0
        assertOpen(self, client)
        h.reactor.advance(1)
        assertFIN(self, client)

    def test_removalCancels(self) -> None:
        """
        Removing the behavior in time cancels the close.
        """
        h = harness("100:limit_time", {"limit_time": {"time": "100"}})
        client, backend = h.pair()
        h.factory.setTable(buildTable("100:dummy", h.registry))
        h.reactor.advance(1)
        assertOpen(self, client)


class CorruptTests(Case):
    """
    C{corrupt}: one bit flipped in bytes chosen with C{probability}.
    """

    def _flips(self, sent: bytes, got: bytes) -> list[tuple[int, int]]:
        self.assertEqual(len(sent), len(got))
        flips = []
        for i, (a, b) in enumerate(zip(sent, got)):
            if a != b:
                self.assertEqual(bin(a ^ b).count("1"), 1)
                flips.append((i, (a ^ b).bit_length() - 1))
        return flips

    def test_probabilityOneFlipsEveryByte(self) -> None:
        """
        With 1 every byte has exactly one bit flipped.
        """
        h = harness("100:corrupt", {"corrupt": {"probability": "1"}})
        client, backend = h.pair()
        data = bytes(range(256)) * 4
        backend.send(data)
        self.assertEqual(len(self._flips(data, client.received())), len(data))

    def test_probabilityZeroChangesNothing(self) -> None:
        """
        With 0 the bytes pass unchanged and nothing is drawn or logged.
        """
        log = DecisionLog(self)
        h = harness("100:corrupt", {"corrupt": {"probability": "0"}})
        client, backend = h.pair()
        backend.send(b"intact" * 1000)
        self.assertEqual(client.received(), b"intact" * 1000)
        self.assertEqual(log.decisions("corrupt"), [])

    def test_rateAndLog(self) -> None:
        """
        With 0.01, about 1% of a megabyte is corrupted (within 5 standard
        deviations), only downstream by default, and each flip is logged
        with its offset and bit.
        """
        log = DecisionLog(self)
        h = harness("100:corrupt", {"corrupt": {"probability": "0.01"}})
        client, backend = h.pair()
        data = bytes(1000000)
        client.send(data[:1000])
        self.assertEqual(backend.received(), data[:1000])
        for i in range(0, len(data), 65536):
            backend.send(data[i:i + 65536])
        flips = self._flips(data, client.received())
        self.assertTrue(10000 - 500 <= len(flips) <= 10000 + 500, len(flips))
        logged = [(e["parameters"]["offset"], e["parameters"]["bit"])
                  for e in log.decisions("corrupt")]
        self.assertEqual(logged, flips)
        self.assertEqual({bit for _, bit in flips}, set(range(8)))

    def test_chunkingIndependentAndSeeded(self) -> None:
        """
        The same seed corrupts the same bytes, the same way, whatever the
        chunking; another seed corrupts others.
        """
        data = bytes(200000)

        def corrupted(seed: int, chunk: int) -> bytes:
            h = harness("100:corrupt", {"corrupt": {"probability": "0.001"}}, seed=seed)
            client, backend = h.pair()
            for i in range(0, len(data), chunk):
                backend.send(data[i:i + chunk])
            return client.received()
        one = corrupted(5, len(data))
        self.assertNotEqual(one, data)
        self.assertEqual(one, corrupted(5, 777))
        self.assertNotEqual(one, corrupted(6, len(data)))

    def test_flagsKept(self) -> None:
        """
        A corrupted frame keeps its message and flags.
        """
        h = harness("100:corrupt+recorder", {"corrupt": {"probability": "1"}},
                    protocol="lines")
        client, backend = h.pair()
        client.send(b"get\n")
        backend.send(b"partial")
        [frame] = [f for f in recorded(h) if f.message.direction == DOWNSTREAM]
        self.assertEqual((frame.first, frame.last), (True, False))
        self.assertEqual(len(frame.data), 7)


class DropTests(Case):
    """
    C{drop}: whole messages lost, alone or in bursts.
    """

    def _fates(self, settings: dict[str, str], count: int = 20000, seed: int = 1) -> list[bool]:
        """
        Send C{count} numbered chunks from the backend; say which were
        lost.
        """
        h = harness("100:drop", {"drop": settings}, seed=seed)
        client, backend = h.pair()
        for i in range(count):
            backend.send(b"%06d" % i)
        got = client.received()
        kept = {int(got[i:i + 6]) for i in range(0, len(got), 6)}
        return [i not in kept for i in range(count)]

    def test_extremes(self) -> None:
        """
        A loss rate of 1 drops everything, 0 nothing.
        """
        self.assertTrue(all(self._fates({"loss_rate": "1"}, 100)))
        self.assertFalse(any(self._fates({"loss_rate": "0", "correlation": "0.9"}, 100)))

    def test_independentLosses(self) -> None:
        """
        Without correlation, about C{loss_rate} of the messages are lost,
        and a loss says nothing about the next one.
        """
        fates = self._fates({"loss_rate": "0.3"})
        rate = sum(fates) / len(fates)
        self.assertNear(rate, 0.3, delta=0.02)
        afterLoss = [b for a, b in zip(fates, fates[1:]) if a]
        self.assertNear(sum(afterLoss) / len(afterLoss), 0.3, delta=0.03)

    def test_burstLosses(self) -> None:
        """
        With correlation 0.8 the long-run loss rate is still C{loss_rate},
        but a loss is followed by another with probability 0.86 and bursts
        last about 1 / (0.2 * 0.7) = 7.1 messages.
        """
        fates = self._fates({"loss_rate": "0.3", "correlation": "0.8"}, 40000)
        self.assertNear(sum(fates) / len(fates), 0.3, delta=0.03)
        afterLoss = [b for a, b in zip(fates, fates[1:]) if a]
        self.assertNear(sum(afterLoss) / len(afterLoss), 0.86, delta=0.02)
        bursts, run = [], 0
        for lost in fates:
            if lost:
                run += 1
            elif run:
                bursts.append(run)
                run = 0
        self.assertNear(statistics.mean(bursts), 1 / (0.2 * 0.7), delta=0.7)

    def test_decisionsLogged(self) -> None:
        """
        Every message's fate is logged, with the message index.
        """
        log = DecisionLog(self)
        fates = self._fates({"loss_rate": "0.5"}, 50)
        logged = [(e["parameters"]["message"], e["decision"]) for e in log.decisions("drop")]
        self.assertEqual(logged, [(i, "drop" if lost else "keep")
                                  for i, lost in enumerate(fates)])

    def test_wholeResponsesUnderRequestScope(self) -> None:
        """
        Under request scope a lost response is dropped whole (all its
        frames), and the next responses are delivered; with correlation 1
        the fate is kept from one request to the next, on each connection.
        """
        h = harness("100:drop", {"drop": {"loss_rate": "0.5", "correlation": "1"}},
                    protocol="lines", scope=REQUEST_SCOPE, seed=3)
        fates = []
        for _ in range(12):
            client, backend = h.pair()
            client.send(b"get a\nget b\nget c\n")
            backend.send(b"resp")
            backend.send(b"onse A\nB\nC\n")
            got = client.received()
            self.assertIn(got, (b"", b"response A\nB\nC\n"))
            fates.append(got == b"")
        self.assertIn(True, fates)
        self.assertIn(False, fates)

    def test_requestScopeStateForgotten(self) -> None:
        """
        The per-connection burst state of ended connections is forgotten.
        """
        h = harness("100:drop", {"drop": {"loss_rate": "0.5"}}, protocol="lines",
                    scope=REQUEST_SCOPE)
        behavior = h.table.behaviors["drop"]
        for _ in range(100):
            client, backend = h.pair()
            client.send(b"get\n")
            backend.send(b"x\n")
            client.lose()
            backend.lose()
        self.assertLessEqual(len(behavior._lost), 19)


class SeedTests(Case):
    """
    The same seed and traffic give the same decisions, for a mix of every
    random behavior.
    """

    spec = "20:latency,20:drop,20:corrupt+slicer,20:latency+drop+corrupt"
    settings = {
        "latency": {"latency": "20", "jitter": "15", "distribution": "normal",
                    "direction": "both"},
        "drop": {"loss_rate": "0.3", "correlation": "0.5", "direction": "downstream"},
        "corrupt": {"probability": "0.05", "direction": "both"},
        "slicer": {"average_size": "4", "size_variation": "3", "delay": "100",
                   "direction": "both"},
    }

    def _scenario(self, seed: int, chunks: int) -> tuple[list[tuple[Any, ...]], bytes]:
        log = DecisionLog(self)
        h = harness(self.spec, self.settings, protocol="lines", scope=REQUEST_SCOPE, seed=seed)
        received = b""
        for c in range(3):
            client, backend = h.pair()
            requests = b"".join(b"get key%d-%d\n" % (c, i) for i in range(30))
            for i in range(0, len(requests), chunks):
                client.send(requests[i:i + chunks])
            drain(h)
            got = backend.received()
            responses = b"".join(b"value %d\n" % i for i in range(got.count(b"\n")))
            for i in range(0, len(responses), chunks):
                backend.send(responses[i:i + chunks])
            drain(h)
            received += client.received()
        return log.all(), received

    def test_sameSeedSameDecisions(self) -> None:
        """
        Two runs with the same seed log the same decisions (table choices,
        delays, drops, corruptions, slices) and deliver the same bytes;
        another seed gives other decisions.
        """
        first, data = self._scenario(11, 1000)
        kinds = {d[4] for d in first if d[2] is not None}
        self.assertEqual(kinds, {"latency", "drop", "keep", "corrupt", "slice"})
        self.assertGreater(len(first), 200)
        again, dataAgain = self._scenario(11, 1000)
        self.assertEqual(first, again)
        self.assertEqual(data, dataAgain)
        other, _ = self._scenario(12, 1000)
        self.assertNotEqual(first, other)

    def test_decisionsIndependentOfChunking(self) -> None:
        """
        The same traffic cut into other reads gives the same decisions:
        they are drawn per message or along the stream, each fault from
        its own seeded stream.
        """
        first, data = self._scenario(11, 1000)
        chopped, choppedData = self._scenario(11, 7)
        self.assertEqual(sorted(map(repr, first)), sorted(map(repr, chopped)))
        self.assertEqual(data, choppedData)
