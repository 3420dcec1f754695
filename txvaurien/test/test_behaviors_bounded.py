"""
Every behavior keeps a connection's memory within the core's bound for a
slow reader (L{HOLD_BOUND}, 16 MiB), whatever its options say (issue 14,
B1).

Each built-in behavior, listed from the registry, gets hostile options
(every numeric option at its largest accepted value, or 10**12 where
there is none, except probabilities, which say how often, not how much;
C{direction} both), and a transfer larger than the bound
is driven through the real proxy core in memory, in each direction: the
source sends fresh 64 KiB chunks while the proxy lets it (a paused
transport gets nothing more), the clock moves on while it does not, and
the sink consumes what reaches it.  The peak of the memory the test's
process allocated meanwhile (C{tracemalloc}) must stay within the bound.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from txvaurien.behaviors._holding import HOLD_BOUND, MAX_HOLD_LIMIT, HoldingFault
from txvaurien.behaviors.slicer import MAX_SLICE
from txvaurien.frames import DOWNSTREAM, UPSTREAM
from txvaurien.options import Number, OptionError
from txvaurien.registry import Registry
from txvaurien.table import buildTable
from txvaurien.test.controlhelpers import EchoControlTestCase
from txvaurien.test.helpers import Harness, Side

#: The built-in behaviors, without third-party plugins.
BUILTINS = Registry.discover(thirdParty=False).behaviors

#: Bytes of each read the source delivers.
CHUNK = 64 * 1024

#: Bytes sent per direction: enough to exceed the bound.
TOTAL = HOLD_BOUND + 4 * 1024 * 1024

#: Clock steps (seconds) taken while the source is paused, and how many
#: in a row without progress end the transfer (a fault that holds for
#: ever).
STEP = 0.01
STALLED = 50

#: The value given to a numeric option without a maximum.
HUGE = 10 ** 12


def hostileSettings(behavior: Any) -> dict[str, str]:
    """
    Settings for C{behavior}: every numeric option at its maximum, or at
    L{HUGE} if it has none, and C{direction} both; the others, and
    probabilities (numbers of at most 1), as default.
    """
    settings = {}
    for name, (_description, kind, _default) in behavior.options.items():
        if name == "direction":
            settings[name] = "both"
        elif name == "toxicity":
            continue
        elif isinstance(kind, Number) and not (
                kind.maximum is not None and kind.maximum <= 1):
            value = kind.maximum if kind.maximum is not None else HUGE
            settings[name] = str(kind.kind(value))
    return settings


class _Discard:
    """
    A sink for a L{MemoryTransport}'s bytes that only counts them.
    """

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> None:
        self.count += len(data)


def _closed(side: Side | None) -> bool:
    return bool(side.transport.disconnecting or side.transport.disconnected)


def transfer(name: str, direction: str) -> dict[str, int]:
    """
    Drive L{TOTAL} bytes in C{direction} through behavior C{name} with
    L{hostileSettings}, and measure.

    A behavior that keeps the proxy from connecting to the backend
    (C{down}, C{slow_open}, ...) has no downstream source, and no upstream
    sink: the client alone sends.

    @return: C{sent} (bytes the source got to send), C{received} (bytes
        that reached the sink) and C{peak} (the peak of memory allocated
        meanwhile, above what was allocated before).
    """
    behavior = BUILTINS.get(name)
    h = Harness("100:" + name, settings={name: hostileSettings(behavior)})
    client = h.accept()
    backend = h.backendConnects() if h.reactor.tcpClients else None
    source, sink = (backend, client) if direction == DOWNSTREAM else (client, backend)
    discard = _Discard()
    if source is None:
        return {"sent": 0, "received": 0, "peak": 0}
    if sink is not None:
        sink.transport.io = discard  # type: ignore[assignment]
    sent = stalled = 0
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        while sent < TOTAL and stalled < STALLED:
            if _closed(source) or (sink is not None and _closed(sink)):
                break
            if source.transport.producerState == "paused":
                before = discard.count
                h.reactor.advance(STEP)
                stalled = stalled + 1 if discard.count == before else 0
                continue
            # Fresh bytes each time, as a socket's reads are: a fault that
            # holds them holds memory.
            source.send(bytes(CHUNK))
            sent += CHUNK
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return {"sent": sent, "received": discard.count, "peak": peak}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class BoundedMemoryTests(SynchronousTestCase):
    """
    Tests generated for every built-in behavior, and the bounds of the
    options that set how much a fault holds.
    """

    def assertBounded(self, name: str) -> None:
        """
        Behavior C{name}, with hostile options, keeps the memory a transfer
        in either direction allocates within L{HOLD_BOUND}.
        """
        for direction in (DOWNSTREAM, UPSTREAM):
            result = transfer(name, direction)
            self.assertLessEqual(
                result["peak"], HOLD_BOUND,
                "{} {}: peak {} bytes above the start ({} sent, {} received)".format(
                    name, direction, result["peak"], result["sent"], result["received"]))

    def test_everyBuiltinListed(self) -> None:
        """
        The generated tests cover the byte-holding behaviors, found by the
        class of the fault each builds.
        """
        holders = set()
        for behavior in BUILTINS:
            h = Harness("100:" + behavior.name, settings={
                behavior.name: {"direction": "both"} if "direction" in behavior.options
                else {}})
            client = h.accept()
            if h.reactor.tcpClients:
                h.backendConnects()
            for pipe in (client.protocol.connection.downstream,
                         client.protocol.connection.upstream):
                if any(isinstance(stage.fault, HoldingFault) for stage in pipe.stages):
                    holders.add(behavior.name)
        self.assertTrue({"slicer", "latency", "bandwidth", "delay"} <= holders, holders)
        for name in BUILTINS.names():
            self.assertTrue(hasattr(self, "test_{}StaysWithinTheBound".format(_camel(name))))

    def test_holdLimitClamped(self) -> None:
        """
        A fault whose options ask to hold more than L{MAX_HOLD_LIMIT}
        pauses its source beyond L{MAX_HOLD_LIMIT}, within the bound with
        room for one more read.
        """
        h = Harness("100:slicer", settings={"slicer": {
            "average_size": str(MAX_SLICE), "size_variation": "0"}})
        client, backend = h.pair()
        stage = client.protocol.connection.downstream.stages[0]
        self.assertGreater(stage.fault.holdLimit(), MAX_HOLD_LIMIT)
        self.assertEqual(stage.fault.pauseLimit(), MAX_HOLD_LIMIT)
        self.assertLessEqual(MAX_HOLD_LIMIT + CHUNK, HOLD_BOUND)

    def test_slicerSizesBounded(self) -> None:
        """
        A slice size or size variation above 16 MiB is refused, naming the
        bound; 16 MiB itself is accepted.
        """
        registry = Registry.discover(thirdParty=False)
        for option in ("average_size", "size_variation"):
            buildTable("100:slicer", registry, {"slicer": {option: str(MAX_SLICE)}})
            with self.assertRaises(OptionError) as raised:
                buildTable("100:slicer", registry, {"slicer": {option: "1000000000000"}})
            self.assertIn("<= {}".format(MAX_SLICE), str(raised.exception))


def _generated(name: str) -> Any:
    def test(self: BoundedMemoryTests) -> None:
        self.assertBounded(name)

    test.__doc__ = (
        "C{{{}}} with hostile options holds at most 16 MiB while more than "
        "that goes through it, downstream and upstream.".format(name))
    return test


for _name in BUILTINS.names():
    setattr(BoundedMemoryTests, "test_{}StaysWithinTheBound".format(_camel(_name)),
            _generated(_name))


class SlicerBoundsAPITests(EchoControlTestCase):
    """
    The control API refuses the slicer sizes the command line refuses.
    """

    @defer.inlineCallbacks
    def test_putBehaviorRefusesAbsurdSlice(self) -> Generator[Any, Any, None]:
        """
        C{PUT /behavior} with a slice size of 10**12 bytes answers 400 and
        names the option and the bound; the table is left as it was.
        """
        code, value = yield self.control.json("PUT", "/behavior", {
            "name": "slicer", "average_size": 10 ** 12, "size_variation": 0})
        self.assertEqual((code, value), (400, {"status": "error", "errors": [{
            "location": "body", "name": "average_size",
            "description": "expected integer >= 1 and <= {}, got {}".format(
                MAX_SLICE, 10 ** 12)}]}))
        _, value = yield self.control.json("GET", "/behavior")
        self.assertEqual(value["behavior"], "100:dummy")
