"""
Clock-driven tests of the behaviors acting on datagrams, through a
L{DatagramProxy} on a L{MemoryReactorClock}: datagrams from clients are fed
to the proxy, and what reaches the (fake) backend socket and the client
transport is read back.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.datagram.addresses import UDPBackend
from txvaurien.datagram.pipeline import Chain, DatagramStage, checkTable
from txvaurien.datagram.proxy import DatagramProxy
from txvaurien.frames import DOWNSTREAM, UPSTREAM
from txvaurien.interfaces import IBehavior, IConnection, IFault, IStage
from txvaurien.randomness import RandomSource
from txvaurien.registry import Registry
from txvaurien.table import CONNECTION_SCOPE, REQUEST_SCOPE, TableError, buildTable

CLIENT = ("127.0.0.1", 40000)
_registry: Registry | None = None


def registry() -> Registry:
    """
    The built-in plugins (discovered once).
    """
    global _registry
    if _registry is None:
        _registry = Registry.discover(thirdParty=False)
    return _registry


class FakeSocket:
    """
    A session's backend socket in memory: records what is written;
    L{reply} plays a datagram from the backend.
    """

    def __init__(self, reactor: Any, host: str, port: int, interface: str,
                 maxPacketSize: int, received: Any, refused: Any) -> None:
        self.host = host
        self.port = port
        self.maxPacketSize = maxPacketSize
        self.received = received
        self.refused = refused
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> bool:
        self.written.append(data)
        return True

    def reply(self, data: bytes) -> None:
        self.received(data)

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    """
    The listening port in memory: records C{(data, address)} written.
    """

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.written.append((data, addr))

    def to(self, address: Any = CLIENT) -> list[bytes]:
        return [data for data, addr in self.written if addr == address]


class Rig:
    """
    A L{DatagramProxy} on a clock, with fake sockets.

    @ivar sockets: the backend sockets sessions made, in order.
    """

    def __init__(self, spec: str = "100:dummy", settings: Any = None,
                 protocol: str = "tcp", seed: int = 1,
                 protocolSettings: Any = None, **kwargs: Any) -> None:
        handler = registry().protocols.get(protocol).configure(protocolSettings or {})
        scope = REQUEST_SCOPE if handler.framesRequests else CONNECTION_SCOPE
        table = buildTable(spec, registry(), settings or {}, scope)
        self.clock = MemoryReactorClock()
        self.proxy = DatagramProxy(
            UDPBackend("127.0.0.1", 5300), handler, table, self.clock,
            RandomSource(seed), "test", **kwargs)
        self.sockets: list[FakeSocket] = []
        self.proxy.socketFactory = self._socket
        self.transport = FakeTransport()
        self.proxy.transport = self.transport  # type: ignore[assignment]

    def _socket(self, *args: Any) -> FakeSocket:
        self.sockets.append(FakeSocket(*args))
        return self.sockets[-1]

    def send(self, data: bytes, address: Any = CLIENT) -> None:
        self.proxy.datagramReceived(data, address)

    def sendMany(self, count: int, spacing: float = 0.0) -> None:
        """
        Send C{count} datagrams numbered from 0 (4-byte big-endian).
        """
        for i in range(count):
            self.send(i.to_bytes(4, "big"))
            if spacing:
                self.clock.advance(spacing)

    def backend(self, index: int = 0) -> FakeSocket:
        return self.sockets[index]

    def numbers(self, datagrams: list[bytes]) -> list[int]:
        return [int.from_bytes(d[:4], "big") for d in datagrams]

    def behavior(self, name: str) -> Any:
        return self.proxy.table.behaviors[name]


class InterfaceTests(SynchronousTestCase):
    """
    The datagram path's objects provide the interfaces faults rely on.
    """

    def test_sessionAndStageProvideInterfaces(self) -> None:
        """
        A session is an L{IConnection}, a stage an L{IStage}, and every
        datagram behavior's fault an L{IFault}.
        """
        names = ["drop", "corrupt", "latency", "delay", "blackout", "duplicate",
                 "reorder", "truncate", "rate_limit"]
        rig = Rig("100:" + "+".join(names), {n: {"direction": "both"} for n in names})
        rig.send(b"x")
        session = rig.proxy.sessions[CLIENT]
        verifyObject(IConnection, session)
        assert session.up is not None
        self.assertEqual(len(session.up.stages), len(names))
        for stage in session.up.stages:
            verifyObject(IStage, stage)
            verifyObject(IFault, stage.fault)

    def test_newBehaviorsProvideIBehavior(self) -> None:
        """
        C{duplicate}, C{reorder}, C{truncate} and C{rate_limit} are
        L{IBehavior}s.
        """
        for name in ("duplicate", "reorder", "truncate", "rate_limit"):
            verifyObject(IBehavior, registry().behaviors.get(name))

    def test_newBehaviorsInertOnStreams(self) -> None:
        """
        On a stream connection (no C{datagram} attribute) the datagram-only
        behaviors build no fault.
        """
        class Stream:
            pass

        class Stage:
            connection = Stream()

        for name in ("duplicate", "reorder", "truncate", "rate_limit"):
            self.assertIsNone(registry().behaviors.get(name).buildFault(Stage()))


class CheckTableTests(SynchronousTestCase):
    """
    L{checkTable} refuses behaviors that mean nothing on the transport.
    """

    def test_streamBehaviorRefusedForUDP(self) -> None:
        """
        C{slow_open} on a UDP proxy is refused, saying why.
        """
        table = buildTable("100:slow_open", registry())
        e = self.assertRaises(TableError, checkTable, table, True)
        self.assertIn("slow_open cannot act on a UDP proxy", str(e))
        self.assertIn("TCP connection", str(e))

    def test_bandwidthSuggestsRateLimit(self) -> None:
        """
        C{bandwidth} on a UDP proxy is refused with C{rate_limit} suggested.
        """
        table = buildTable("100:bandwidth", registry())
        e = self.assertRaises(TableError, checkTable, table, True)
        self.assertIn("use rate_limit", str(e))

    def test_datagramOnlyRefusedForTCP(self) -> None:
        """
        C{duplicate} on a TCP proxy is refused.
        """
        table = buildTable("50:duplicate", registry())
        e = self.assertRaises(TableError, checkTable, table, False)
        self.assertIn("duplicate acts on UDP datagrams only", str(e))

    def test_datagramBehaviorsAccepted(self) -> None:
        """
        Every datagram behavior passes for UDP.
        """
        checkTable(buildTable(
            "10:drop,10:corrupt,10:latency,10:delay,10:blackout,10:down,10:error,"
            "10:duplicate,10:reorder+truncate,10:rate_limit", registry()), True)


class DropTests(SynchronousTestCase):
    """
    C{drop} loses datagrams, alone or in Gilbert-Elliott bursts.
    """

    def lost(self, settings: dict[str, Any], count: int = 10000, seed: int = 1) -> list[int]:
        rig = Rig("100:drop", {"drop": {"direction": "upstream", **settings}}, seed=seed)
        rig.sendMany(count)
        delivered = set(rig.numbers(rig.backend().written))
        self.assertEqual(rig.proxy.droppedCount[UPSTREAM], count - len(delivered))
        return [i for i in range(count) if i not in delivered]

    def test_lossRateIndependent(self) -> None:
        """
        C{loss_rate} 0.3 loses 30% of 10,000 datagrams, within 3 points.
        """
        assertNear(self, len(self.lost({"loss_rate": 0.3})) / 10000, 0.3, 0.03)

    def test_sameSeedSameLosses(self) -> None:
        """
        The same seed loses the same datagrams; another seed others.
        """
        first = self.lost({"loss_rate": 0.2}, 2000, seed=7)
        self.assertEqual(first, self.lost({"loss_rate": 0.2}, 2000, seed=7))
        self.assertNotEqual(first, self.lost({"loss_rate": 0.2}, 2000, seed=8))

    def test_gilbertElliottBursts(self) -> None:
        """
        With the full model (loss 1 in the bad state, 0 in the good one)
        bursts last C{1 / bad_to_good} datagrams on average and the
        long-run rate is C{good_to_bad / (good_to_bad + bad_to_good)}.
        """
        lost = self.lost({"good_to_bad": 0.05, "bad_to_good": 0.25}, 20000)
        bursts = bursts_(lost)
        assertNear(self, sum(bursts) / len(bursts), 4.0, 0.4)
        assertNear(self, len(lost) / 20000, 0.05 / 0.30, 0.03)

    def test_gilbertElliottLossInBothStates(self) -> None:
        """
        With losses in both states, the long-run rate is
        C{(r * loss_good + p * loss_bad) / (p + r)}.
        """
        p, r, good, bad = 0.1, 0.3, 0.02, 0.6
        lost = self.lost({"good_to_bad": p, "bad_to_good": r,
                          "loss_good": good, "loss_bad": bad}, 20000)
        assertNear(self, len(lost) / 20000, (r * good + p * bad) / (p + r), 0.03)

    def test_correlationKeepsItsMeaning(self) -> None:
        """
        The C{correlation} model still gives C{loss_rate} in the long run,
        with bursts of C{1 / ((1 - c) * (1 - loss_rate))} datagrams.
        """
        lost = self.lost({"loss_rate": 0.2, "correlation": 0.5}, 20000)
        bursts = bursts_(lost)
        assertNear(self, len(lost) / 20000, 0.2, 0.03)
        assertNear(self, sum(bursts) / len(bursts), 1 / (0.5 * 0.8), 0.3)


def assertNear(case: Any, value: float, target: float, delta: float) -> None:
    """
    Fail C{case} unless C{value} is within C{delta} of C{target}.
    """
    if abs(value - target) > delta:
        case.fail("{!r} is not within {} of {!r}".format(value, delta, target))


def bursts_(lost: list[int]) -> list[int]:
    """
    The lengths of the runs of consecutive numbers in C{lost}.
    """
    runs: list[int] = []
    previous = None
    for n in lost:
        if previous is not None and n == previous + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        previous = n
    return runs


class DelayTests(SynchronousTestCase):
    """
    C{latency} and C{delay} hold each datagram on the clock.
    """

    def test_latencyHoldsEachDatagram(self) -> None:
        """
        With C{latency} 100 ms, a datagram reaches the backend 100 ms after
        it came, not before.
        """
        rig = Rig("100:latency", {"latency": {"latency": 100, "direction": "upstream"}})
        rig.send(b"one")
        rig.clock.advance(0.099)
        self.assertEqual(rig.backend().written, [])
        rig.clock.advance(0.001)
        self.assertEqual(rig.backend().written, [b"one"])

    def test_jitterReorders(self) -> None:
        """
        With a jitter as large as the spacing, datagrams overtake each
        other, and none is lost.
        """
        rig = Rig("100:latency", {"latency": {
            "latency": 50, "jitter": 40, "distribution": "uniform",
            "direction": "upstream"}})
        rig.sendMany(200, spacing=0.005)
        rig.clock.advance(1)
        numbers = rig.numbers(rig.backend().written)
        self.assertEqual(sorted(numbers), list(range(200)))
        self.assertNotEqual(numbers, list(range(200)))

    def test_paretoAndNormalDelaysAtLeastZero(self) -> None:
        """
        C{normal} and C{pareto} jitter deliver every datagram, C{pareto}
        never before C{latency}.
        """
        for distribution in ("normal", "pareto"):
            rig = Rig("100:latency", {"latency": {
                "latency": 20, "jitter": 30, "distribution": distribution,
                "direction": "upstream"}})
            rig.sendMany(100)
            if distribution == "pareto":
                rig.clock.advance(0.0199)
                self.assertEqual(rig.backend().written, [])
            rig.clock.advance(100)
            self.assertEqual(len(rig.backend().written), 100)

    def test_delayHoldsRequestsBefore(self) -> None:
        """
        C{delay} with C{before} holds client datagrams C{sleep} seconds and
        lets replies through at once.
        """
        rig = Rig("100:delay", {"delay": {"sleep": 0.5}})
        rig.send(b"q")
        rig.backend().reply(b"r")
        self.assertEqual(rig.transport.to(), [b"r"])
        self.assertEqual(rig.backend().written, [])
        rig.clock.advance(0.5)
        self.assertEqual(rig.backend().written, [b"q"])

    def test_sessionEndForgetsHeld(self) -> None:
        """
        A session that expires drops what it holds and leaves no timer.
        """
        rig = Rig("100:latency", {"latency": {"latency": 5000, "direction": "upstream"}},
                  sessionTimeout=1.0)
        rig.send(b"x")
        rig.clock.advance(1.0)
        self.assertEqual(rig.proxy.sessions, {})
        self.assertEqual([c for c in rig.clock.getDelayedCalls() if c.active()], [])


class DuplicateTests(SynchronousTestCase):
    """
    C{duplicate} sends datagrams more than once.
    """

    def test_copies(self) -> None:
        """
        With probability 1 and 2 copies, each datagram is sent 3 times.
        """
        rig = Rig("100:duplicate", {"duplicate": {"probability": 1, "copies": 2}})
        rig.send(b"a")
        self.assertEqual(rig.backend().written, [b"a", b"a", b"a"])
        self.assertEqual(rig.behavior("duplicate").duplicated, 2)

    def test_countedExactlyUnderSeed(self) -> None:
        """
        The datagrams sent are those received plus the behavior's count,
        and the same seed duplicates the same datagrams.
        """
        def run(seed: int) -> list[int]:
            rig = Rig("100:duplicate", {"duplicate": {"probability": 0.1}}, seed=seed)
            rig.sendMany(2000)
            written = rig.numbers(rig.backend().written)
            self.assertEqual(len(written), 2000 + rig.behavior("duplicate").duplicated)
            self.assertEqual(rig.proxy.sent[UPSTREAM], len(written))
            return [n for n in set(written) if written.count(n) > 1]

        twice = run(3)
        assertNear(self, len(twice) / 2000, 0.1, 0.03)
        self.assertEqual(sorted(twice), sorted(run(3)))


class ReorderTests(SynchronousTestCase):
    """
    C{reorder} holds datagrams behind the next ones.
    """

    def test_heldBehindNextGap(self) -> None:
        """
        Every held datagram arrives right after the C{gap} datagrams that
        followed it, and each one counted arrives late.
        """
        rig = Rig("100:reorder", {"reorder": {"probability": 0.2, "gap": 2, "timeout": 0}})
        rig.sendMany(2000)
        fault = rig.proxy.sessions[CLIENT].up.stages[0].fault
        stillHeld = len(fault.held)
        numbers = rig.numbers(rig.backend().written)
        late = [n for i, n in enumerate(numbers) if any(m > n for m in numbers[max(0, i - 10):i])]
        self.assertEqual(len(late), rig.behavior("reorder").reordered - stillHeld)
        self.assertEqual(len(numbers) + stillHeld, 2000)
        assertNear(self, rig.behavior("reorder").reordered / 2000, 0.2, 0.03)

    def test_timeoutReleases(self) -> None:
        """
        A held datagram with nothing after it leaves after C{timeout} ms.
        """
        rig = Rig("100:reorder", {"reorder": {"probability": 1, "timeout": 100}})
        rig.send(b"a")
        rig.send(b"b")
        rig.clock.advance(0.099)
        self.assertEqual(rig.backend().written, [])
        rig.clock.advance(0.001)
        self.assertEqual(rig.backend().written, [b"a", b"b"])

    def test_tableChangeReleases(self) -> None:
        """
        Removing the behavior releases what it holds, in order.
        """
        rig = Rig("100:reorder", {"reorder": {"probability": 1, "timeout": 0}})
        rig.send(b"a")
        rig.send(b"b")
        rig.proxy.setTable(buildTable("100:dummy", registry()))
        self.assertEqual(rig.backend().written, [b"a", b"b"])
        rig.send(b"c")
        self.assertEqual(rig.backend().written, [b"a", b"b", b"c"])


class CorruptTests(SynchronousTestCase):
    """
    C{corrupt} flips bits in datagrams.
    """

    def test_flipsOneBitPerChosenByte(self) -> None:
        """
        With probability 1 every byte of every datagram has exactly one bit
        flipped, and the datagram keeps its length.
        """
        rig = Rig("100:corrupt", {"corrupt": {"probability": 1}})
        rig.send(b"\x00" * 10)
        rig.backend().reply(b"\xff" * 10)
        reply = rig.transport.to()[0]
        self.assertEqual(len(reply), 10)
        self.assertTrue(all(bin(b ^ 0xFF).count("1") == 1 for b in reply))
        self.assertEqual(rig.backend().written, [b"\x00" * 10])


class RateLimitTests(SynchronousTestCase):
    """
    C{rate_limit} paces datagrams, dropping or queueing the excess.
    """

    def test_excessDropped(self) -> None:
        """
        At 10 datagrams/s without a queue, of 5 sent at once 1 passes and 4
        are dropped; 100 ms later one more passes.
        """
        rig = Rig("100:rate_limit", {"rate_limit": {"packets": 10, "direction": "upstream"}})
        rig.sendMany(5)
        self.assertEqual(len(rig.backend().written), 1)
        self.assertEqual(rig.proxy.droppedCount[UPSTREAM], 4)
        self.assertEqual(rig.behavior("rate_limit").limited, 4)
        rig.clock.advance(0.1)
        rig.send(b"late")
        self.assertEqual(rig.backend().written[-1], b"late")

    def test_queueWithinBound(self) -> None:
        """
        With a queue of 2, of 5 sent at once 1 passes, 2 leave at the rate
        and 2 are dropped.
        """
        rig = Rig("100:rate_limit", {"rate_limit": {
            "packets": 10, "queue": 2, "direction": "upstream"}})
        rig.sendMany(5)
        self.assertEqual(rig.numbers(rig.backend().written), [0])
        rig.clock.advance(0.1)
        self.assertEqual(rig.numbers(rig.backend().written), [0, 1])
        rig.clock.advance(0.1)
        self.assertEqual(rig.numbers(rig.backend().written), [0, 1, 2])
        self.assertEqual(rig.proxy.droppedCount[UPSTREAM], 2)

    def test_bytesPerSecond(self) -> None:
        """
        At 1,000 bytes/s, 500-byte datagrams pass two a second.
        """
        rig = Rig("100:rate_limit", {"rate_limit": {
            "packets": 0, "bytes": 1000, "direction": "upstream"}})
        for _ in range(20):
            rig.send(b"x" * 500)
            rig.clock.advance(0.1)
        self.assertEqual(len(rig.backend().written), 4)

    def test_burst(self) -> None:
        """
        With C{burst} 3, three datagrams pass back to back after a quiet
        time.
        """
        rig = Rig("100:rate_limit", {"rate_limit": {
            "packets": 10, "burst": 3, "direction": "upstream"}})
        rig.clock.advance(10)
        rig.sendMany(5)
        self.assertEqual(len(rig.backend().written), 3)


class BlackoutTests(SynchronousTestCase):
    """
    C{blackout} and C{down} let no datagram through while chosen.
    """

    def test_blackoutWindow(self) -> None:
        """
        While C{blackout} is in the table nothing reaches the backend; once
        it is removed, datagrams flow again.
        """
        rig = Rig("100:blackout")
        rig.sendMany(3)
        self.assertEqual(rig.backend().written, [])
        self.assertEqual(rig.proxy.droppedCount[UPSTREAM], 3)
        rig.proxy.setTable(buildTable("100:dummy", registry()))
        rig.send(b"after")
        self.assertEqual(rig.backend().written, [b"after"])

    def test_downDropsReplies(self) -> None:
        """
        C{down} in both directions drops the backend's replies too.
        """
        rig = Rig("100:down")
        rig.send(b"q")
        rig.backend().reply(b"r")
        self.assertEqual(rig.transport.written, [])
        self.assertEqual(rig.proxy.droppedCount, {UPSTREAM: 1, DOWNSTREAM: 1})


class TruncateTests(SynchronousTestCase):
    """
    C{truncate} cuts datagrams short.
    """

    def test_cutToSize(self) -> None:
        """
        Replies longer than C{size} keep their first C{size} bytes; shorter
        ones pass whole.
        """
        rig = Rig("100:truncate", {"truncate": {"size": 4}})
        rig.send(b"q")
        rig.backend().reply(b"0123456789")
        rig.backend().reply(b"abc")
        self.assertEqual(rig.transport.to(), [b"0123", b"abc"])
        self.assertEqual(rig.behavior("truncate").truncated, 1)


class ChainTests(SynchronousTestCase):
    """
    L{Chain} builds stages only for behaviors of its direction.
    """

    def test_directionFilters(self) -> None:
        """
        A downstream-only behavior has no stage upstream.
        """
        rig = Rig("100:truncate")
        rig.send(b"q")
        session = rig.proxy.sessions[CLIENT]
        self.assertIsNone(session.up)
        self.assertIsInstance(session.down, Chain)
        self.assertIsInstance(session.down.stages[0], DatagramStage)
