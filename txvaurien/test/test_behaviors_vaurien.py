"""
Unit tests for Vaurien's behaviors (C{delay}, C{error}, C{transient},
C{hang}, C{blackout}, C{abort}), in memory: a L{MemoryReactorClock} drives
time and string transports stand for the client and the backend.

C{tcp} shows connection scope (a frame is whatever arrived); the
test-only C{lines} protocol shows request scope (a frame is a line).  A
clean close is C{transport.disconnecting} without C{disconnected}; a reset
(RST, C{abortConnection}) sets C{disconnected} as well.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien import options
from txvaurien.behaviors.abort import Abort, AbortFault
from txvaurien.behaviors.blackout import Blackout, BlackoutFault
from txvaurien.behaviors.delay import Delay, DelayFault
from txvaurien.behaviors.error import Error, ErrorFault
from txvaurien.behaviors.hang import Hang, HangFault
from txvaurien.behaviors.transient import Transient
from txvaurien.frames import (
    DOWNSTREAM,
    GREETING,
    REQUEST,
    UPSTREAM,
    Frame,
    Message,
)
from txvaurien.interfaces import IBehavior, IFault
from txvaurien.options import OptionError
from txvaurien.proxy import Stage
from txvaurien.randomness import RandomSource
from txvaurien.table import CONNECTION_SCOPE, REQUEST_SCOPE, buildTable
from txvaurien.test.helpers import Harness, Side, testRegistry
from txvaurien.test.test_behaviors_toxics import DecisionLog, activeCalls, assertArrives

NAMES = ("delay", "error", "transient", "hang", "blackout", "abort")


def connectionRandom(harness: Harness, cid: int = 0) -> Any:
    """
    A fresh copy of the random stream connection C{cid} of the harness
    draws from, to predict its decisions.
    """
    return RandomSource(harness.factory.random.seed).stream(
        harness.factory.name, "connection", cid)


def closeBoth(client: Side, backend: Side | None = None) -> None:
    """
    Both transports report their connection gone, as the reactor would
    after the proxy closed them.
    """
    client.lose()
    if backend is not None:
        backend.lose()


class InterfaceTests(SynchronousTestCase):
    """
    Every behavior and every fault provides its interface.
    """

    def test_behaviorsProvideIBehavior(self) -> None:
        """
        The configured behaviors provide L{IBehavior}, with the common
        C{direction} and C{toxicity} options.
        """
        registry = testRegistry()
        for name in NAMES:
            behavior = registry.behaviors.get(name).configure({})
            verifyObject(IBehavior, behavior)
            self.assertEqual(behavior.name, name)
            self.assertIn("direction", behavior.settings)
            self.assertIn("toxicity", behavior.settings)

    def test_defaultDirections(self) -> None:
        """
        Each behavior's default direction is the documented one.
        """
        self.assertEqual(
            {cls.name: cls().settings["direction"]
             for cls in (Delay, Error, Transient, Hang, Blackout, Abort)},
            {"delay": "both", "error": "both", "transient": "both", "hang": "both",
             "blackout": "upstream", "abort": "downstream"})

    def test_faultsProvideIFault(self) -> None:
        """
        The faults the behaviors build provide L{IFault}; C{blackout}
        builds one only for a request going upstream and C{abort} only
        downstream.
        """
        harness = Harness(protocol="lines", scope=REQUEST_SCOPE)
        client, _ = harness.pair()
        connection = client.protocol.connection
        request = Message(UPSTREAM, 0, REQUEST)
        expected = [
            (Delay(), connection.upstream, None, DelayFault),
            (Error(), connection.upstream, None, ErrorFault),
            (Transient(), connection.downstream, None, ErrorFault),
            (Hang(), connection.upstream, None, HangFault),
            (Blackout(), connection.upstream, request, BlackoutFault),
            (Abort(), connection.downstream, None, AbortFault),
        ]
        for behavior, pipe, message, kind in expected:
            fault = behavior.buildFault(Stage(pipe, behavior, message))
            self.assertIsInstance(fault, kind)
            verifyObject(IFault, fault)
        self.assertIsNone(Blackout().buildFault(Stage(connection.upstream, Blackout(), None)))
        self.assertIsNone(
            Blackout().buildFault(Stage(connection.downstream, Blackout(), request)))
        self.assertIsNone(Abort().buildFault(Stage(connection.upstream, Abort(), None)))


class InvalidOptionTests(SynchronousTestCase):
    """
    Invalid option values are refused with a message naming the option.
    """

    def assertRefused(self, name: str, values: dict[str, Any], option: str) -> str:
        """
        Building a table of C{name} with C{values} fails with an
        L{OptionError} naming C{option}, and so does validating them.
        """
        registry = testRegistry()
        error = self.assertRaises(
            OptionError, buildTable, name, registry, {name: values})
        self.assertIn(option, error.name)
        self.assertIn(option, str(error))
        again = self.assertRaises(
            OptionError, options.validate, registry.behaviors.get(name), values)
        self.assertIn(option, str(again))
        return str(error)

    def test_negativeSleep(self) -> None:
        """
        A negative C{sleep} is refused, from text and from JSON.
        """
        message = self.assertRefused("delay", {"sleep": "-1"}, "sleep")
        self.assertIn(">= 0", message)
        self.assertRefused("delay", {"sleep": -0.001}, "sleep")
        self.assertRefused("delay", {"sleep": "soon"}, "sleep")

    def test_badBefore(self) -> None:
        """
        C{before} must be a boolean.
        """
        self.assertRefused("delay", {"before": "maybe"}, "before")
        self.assertRefused("delay", {"before": 2}, "before")

    def test_emptyCodes(self) -> None:
        """
        C{codes} needs at least one code.
        """
        message = self.assertRefused("error", {"codes": ""}, "codes")
        self.assertIn("at least one", message)
        self.assertRefused("error", {"codes": []}, "codes")
        self.assertRefused("transient", {"codes": []}, "codes")

    def test_nonIntegerCodes(self) -> None:
        """
        C{codes} are integers in the HTTP status space.
        """
        self.assertRefused("error", {"codes": "500,abc"}, "codes")
        self.assertRefused("error", {"codes": [500.5]}, "codes")
        self.assertRefused("error", {"codes": ["x"]}, "codes")
        self.assertRefused("error", {"codes": [600]}, "codes")
        self.assertRefused("error", {"codes": 500}, "codes")

    def test_negativeCounts(self) -> None:
        """
        C{warmup} and C{agitate} cannot be negative, and C{inject_size}
        must be at least 1.
        """
        self.assertRefused("error", {"warmup": "-1"}, "warmup")
        self.assertRefused("error", {"warmup": 1.5}, "warmup")
        self.assertRefused("transient", {"agitate": -1}, "agitate")
        self.assertRefused("error", {"inject_size": 0}, "inject_size")

    def test_badReset(self) -> None:
        """
        C{blackout}'s C{reset} must be a boolean.
        """
        self.assertRefused("blackout", {"reset": "RST"}, "reset")

    def test_edgeValuesAccepted(self) -> None:
        """
        C{sleep} 0, one code, C{warmup} 0 and C{agitate} 0 are valid.
        """
        table = buildTable(
            "delay+error+transient", testRegistry(),
            {"delay": {"sleep": "0"}, "error": {"codes": "418", "warmup": 0},
             "transient": {"agitate": "0"}})
        self.assertEqual(table.behaviors["delay"].settings["sleep"], 0.0)
        self.assertEqual(table.behaviors["error"].settings["codes"], [418])
        self.assertEqual(table.behaviors["transient"].settings["agitate"], 0)


class DelayConnectionScopeTests(SynchronousTestCase):
    """
    C{delay} under connection scope (C{tcp}): every chunk of the chosen
    direction is held C{sleep} seconds.
    """

    def test_requestHeldForSleep(self) -> None:
        """
        By default (C{before}) the client's bytes reach the backend exactly
        C{sleep} seconds later, and the backend's bytes come back at once.
        """
        harness = Harness("delay", settings={"delay": {"sleep": "0.5"}})
        client, backend = harness.pair()
        client.send(b"ping")
        self.assertEqual(backend.received(), b"")
        assertArrives(self, harness, backend, b"ping", 0.499, 0.001)
        backend.send(b"pong")
        self.assertEqual(client.received(), b"pong")

    def test_beforeOffDelaysResponse(self) -> None:
        """
        With C{before} off the request goes at once and the response is
        held C{sleep} seconds.
        """
        harness = Harness(
            "delay", settings={"delay": {"sleep": "2", "before": "false"}})
        client, backend = harness.pair()
        client.send(b"ping")
        self.assertEqual(backend.received(), b"ping")
        backend.send(b"pong")
        assertArrives(self, harness, client, b"pong", 1.999, 0.001)

    def test_shorterSleepDoesNotOvertake(self) -> None:
        """
        A chunk that arrives after C{sleep} was shortened on a live
        connection still leaves after the chunk held before it.
        """
        harness = Harness("delay", settings={"delay": {"sleep": "1"}})
        client, backend = harness.pair()
        client.send(b"a")
        harness.table.behaviors["delay"].settings["sleep"] = 0.25
        client.send(b"b")
        harness.reactor.advance(0.5)
        self.assertEqual(backend.received(), b"")
        harness.reactor.advance(0.5)
        self.assertEqual(backend.received(), b"ab")

    def test_eachChunkShiftedInOrder(self) -> None:
        """
        Each chunk leaves C{sleep} seconds after it arrived, and chunks
        keep their order.
        """
        harness = Harness("delay")
        client, backend = harness.pair()
        client.send(b"a")
        harness.reactor.advance(0.25)
        client.send(b"b")
        client.send(b"c")
        assertArrives(self, harness, backend, b"a", 0.625, 0.125)
        assertArrives(self, harness, backend, b"bc", 0.125, 0.125)

    def test_sleepZeroPassesAtOnce(self) -> None:
        """
        With C{sleep} 0 bytes pass at once and no timer is scheduled.
        """
        harness = Harness("delay", settings={"delay": {"sleep": 0}})
        client, backend = harness.pair()
        client.send(b"now")
        self.assertEqual(backend.received(), b"now")
        self.assertEqual(activeCalls(harness), [])

    def test_liveSettingsApply(self) -> None:
        """
        Changing C{before} and C{sleep} on the live behavior applies to the
        next chunks of a live connection.
        """
        harness = Harness("delay")
        client, backend = harness.pair()
        settings = harness.table.behaviors["delay"].settings
        settings["before"] = False
        settings["sleep"] = 0.25
        client.send(b"up")
        self.assertEqual(backend.received(), b"up")
        backend.send(b"down")
        self.assertEqual(client.received(), b"")
        harness.reactor.advance(0.25)
        self.assertEqual(client.received(), b"down")

    def test_holdsWithBackpressure(self) -> None:
        """
        Past 1 MiB held, the source is paused; it resumes once the held
        bytes have gone, and nothing is lost or reordered.
        """
        harness = Harness("delay")
        client, backend = harness.pair()
        chunk = b"x" * 65536
        for i in range(16):
            client.send(bytes([65 + i]) * 65536)
        self.assertEqual(client.transport.producerState, "producing")
        client.send(b"!")
        self.assertEqual(client.transport.producerState, "paused")
        harness.reactor.advance(1)
        received = backend.received()
        self.assertEqual(len(received), 16 * len(chunk) + 1)
        self.assertEqual(received[:65536], b"A" * 65536)
        self.assertEqual(received[-1:], b"!")
        self.assertEqual(client.transport.producerState, "producing")

    def test_eofFollowsHeldFrames(self) -> None:
        """
        A half-close from the client reaches the backend after the bytes
        held before it.
        """
        harness = Harness("delay")
        client, backend = harness.pair()
        client.send(b"bye")
        client.halfClose()
        self.assertFalse(backend.transport.writeClosed)
        harness.reactor.advance(1)
        self.assertEqual(backend.received(), b"bye")
        self.assertTrue(backend.transport.writeClosed)

    def test_unlinkReleasesHeld(self) -> None:
        """
        When the table changes, held bytes go on at once, in order, and the
        timer is cancelled.
        """
        harness = Harness("delay")
        client, backend = harness.pair()
        client.send(b"one ")
        client.send(b"two")
        harness.factory.setTable(buildTable("dummy", harness.registry))
        self.assertEqual(backend.received(), b"one two")
        self.assertEqual(activeCalls(harness), [])
        client.send(b" three")
        self.assertEqual(backend.received(), b" three")

    def test_clientLeavingCancelsTimers(self) -> None:
        """
        A client that leaves while bytes are held leaves no timer and no
        connection behind; the held bytes never reach the backend.
        """
        harness = Harness("delay")
        client, backend = harness.pair()
        client.send(b"held")
        client.lose(Failure(ConnectionLost()))
        backend.lose()
        self.assertEqual(activeCalls(harness), [])
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(backend.received(), b"")


class DelayRequestScopeTests(SynchronousTestCase):
    """
    C{delay} under request scope (C{lines}): only the requests chosen for
    it, or their responses, are held.
    """

    def setUp(self) -> None:
        self.log = DecisionLog(self)

    def _decision(self, index: int) -> str:
        [decision] = [e["decision"] for e in self.log.events
                      if e.get("event") == "decision" and e.get("request") == index
                      and e.get("behavior") is None]
        return decision

    def test_onlyChosenRequestsDelayed(self) -> None:
        """
        With C{50:delay}, a request chosen for C{delay} reaches the backend
        C{sleep} seconds late and one chosen for C{dummy} at once; their
        responses are not delayed.
        """
        harness = Harness(
            "50:delay", protocol="lines", scope=REQUEST_SCOPE,
            settings={"delay": {"sleep": "0.5"}})
        client, backend = harness.pair()
        seen = set()
        for i in range(12):
            line = b"get %d\n" % i
            client.send(line)
            decision = self._decision(i)
            seen.add(decision)
            if decision == "delay":
                self.assertEqual(backend.received(), b"")
                assertArrives(self, harness, backend, line, 0.499, 0.001)
            else:
                self.assertEqual(backend.received(), line)
            backend.send(b"R%d\n" % i)
            self.assertEqual(client.received(), b"R%d\n" % i)
        self.assertEqual(seen, {"delay", "dummy"})

    def test_requestFramesShifted(self) -> None:
        """
        A request arriving in two parts reaches the backend in two parts,
        each C{sleep} seconds after it came.
        """
        harness = Harness("delay", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get ")
        harness.reactor.advance(0.2)
        client.send(b"key\n")
        harness.reactor.advance(0.8)
        self.assertEqual(backend.received(), b"get ")
        harness.reactor.advance(0.2)
        self.assertEqual(backend.received(), b"key\n")

    def test_responseDelayedWithBeforeOff(self) -> None:
        """
        With C{before} off, the request goes at once and its response
        reaches the client C{sleep} seconds after the backend sent it; the
        response to a pipelined request without delay waits for it.
        """
        harness = Harness(
            "delay", protocol="lines", scope=REQUEST_SCOPE,
            settings={"delay": {"before": "no", "sleep": "1.5"}})
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"get a\n")
        harness.factory.setTable(buildTable("dummy", harness.registry, scope=REQUEST_SCOPE))
        client.send(b"get b\n")
        self.assertEqual(backend.received(), b"get b\n")
        backend.send(b"A\nB\n")
        assertArrives(self, harness, client, b"A\nB\n", 1.499, 0.001)


class ErrorTests(SynchronousTestCase):
    """
    C{error}: the protocol's error instead of the backend's answer.
    """

    def test_tcpChunkAnsweredWithRandomBytes(self) -> None:
        """
        Under C{tcp} each chunk from the client is dropped and answered with
        C{error_size} random bytes from the connection's random stream; the
        connection stays open and usable.
        """
        harness = Harness("error")
        harness.handler.settings["error_size"] = 10
        client, backend = harness.pair()
        rng = connectionRandom(harness)
        client.send(b"hello")
        rng.choice([500, 501, 502, 503])
        first = rng.randbytes(10)
        self.assertEqual(client.received(), first)
        client.send(b"again")
        rng.choice([500, 501, 502, 503])
        second = rng.randbytes(10)
        self.assertEqual(client.received(), second)
        self.assertNotEqual(first, second)
        self.assertEqual(backend.received(), b"")
        self.assertFalse(client.transport.disconnecting)
        backend.send(b"greeting")
        self.assertEqual(client.received(), b"greeting")
        client.halfClose()
        self.assertTrue(backend.transport.writeClosed)

    def test_requestAnsweredWithProtocolError(self) -> None:
        """
        Under request scope, the request never reaches the backend and the
        client gets the session's error reply.
        """
        harness = Harness("error", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), b"ERR error injected by txvaurien\n")
        self.assertFalse(client.transport.disconnecting)

    def test_replyAfterWholeRequest(self) -> None:
        """
        The error reply is sent once the whole request has arrived, and none
        of its parts reaches the backend.
        """
        harness = Harness("error", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get ")
        self.assertEqual(client.received(), b"")
        client.send(b"a\n")
        self.assertEqual(client.received(), b"ERR error injected by txvaurien\n")
        self.assertEqual(backend.received(), b"")

    def _codes(self, harness: Harness, client: Side, count: int) -> list[Any]:
        session = client.protocol.connection.session
        original = session.errorReply
        asked: list[Any] = []

        def recording(request: Any, reason: str, code: Any = None) -> bytes:
            asked.append((request.meta["command"], code))
            return original(request, reason, code)

        session.errorReply = recording
        client.send(b"".join(b"get%d x\n" % i for i in range(count)))
        return asked

    def test_codeDrawnFromCodes(self) -> None:
        """
        The session is asked for an error with a code drawn from C{codes}
        with the connection's random stream, for the request it answers.
        """
        harness = Harness(
            "error", protocol="lines", scope=REQUEST_SCOPE,
            settings={"error": {"codes": "500,502,503"}})
        client, backend = harness.pair()
        asked = self._codes(harness, client, 20)
        rng = connectionRandom(harness)
        expected = []
        for i in range(20):
            expected.append(("get%d" % i, rng.choice([500, 502, 503])))
        self.assertEqual(asked, expected)
        self.assertEqual({code for _, code in asked}, {500, 502, 503})

    def test_singleCode(self) -> None:
        """
        With one code, every error carries it.
        """
        harness = Harness(
            "error", protocol="lines", scope=REQUEST_SCOPE,
            settings={"error": {"codes": [429]}})
        client, backend = harness.pair()
        asked = self._codes(harness, client, 5)
        self.assertEqual([code for _, code in asked], [429] * 5)

    def test_connectionScopeActsPerRequest(self) -> None:
        """
        Under connection scope with a framing protocol, every request is
        answered with its own error, in order.
        """
        harness = Harness("error", protocol="lines", scope=CONNECTION_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\nget b\n")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), b"ERR error injected by txvaurien\n" * 2)

    def test_errorBetweenRealResponses(self) -> None:
        """
        Under request scope, the error takes the place of its request's
        response between the real responses before and after it.
        """
        harness = Harness("dummy", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        registry = harness.registry
        client.send(b"get a\n")
        harness.factory.setTable(buildTable("error", registry, scope=REQUEST_SCOPE))
        client.send(b"get b\n")
        harness.factory.setTable(buildTable("dummy", registry, scope=REQUEST_SCOPE))
        client.send(b"get c\n")
        self.assertEqual(backend.received(), b"get a\nget c\n")
        self.assertEqual(client.received(), b"")
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"A\nERR error injected by txvaurien\n")
        backend.send(b"C\n")
        self.assertEqual(client.received(), b"C\n")

    def test_warmupCountedPerProxy(self) -> None:
        """
        C{warmup} lets the first requests through, counted across the
        proxy's connections; C{reset} starts the count again.
        """
        harness = Harness(
            "error", protocol="lines", scope=REQUEST_SCOPE,
            settings={"error": {"warmup": "3"}})
        behavior = harness.table.behaviors["error"]
        client, backend = harness.pair()
        for i in range(2):
            client.send(b"get %d\n" % i)
            self.assertEqual(backend.received(), b"get %d\n" % i)
            backend.send(b"ok\n")
            self.assertEqual(client.received(), b"ok\n")
        other = harness.accept(40001)
        otherBackend = harness.backendConnects()
        other.send(b"get 2\n")
        self.assertEqual(otherBackend.received(), b"get 2\n")
        other.send(b"get 3\n")
        self.assertEqual(otherBackend.received(), b"")
        client.send(b"get 4\n")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), b"ERR error injected by txvaurien\n")
        self.assertEqual(behavior.seen, 5)
        behavior.reset()
        client.send(b"get 5\n")
        self.assertEqual(backend.received(), b"get 5\n")

    def test_warmupZeroFailsFirst(self) -> None:
        """
        With the default C{warmup} of 0 the very first request fails.
        """
        harness = Harness("error", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"first\n")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), b"ERR error injected by txvaurien\n")

    def test_injectSpoilsTcpResponse(self) -> None:
        """
        With C{inject} under C{tcp}, the client's bytes reach the backend
        and C{inject_size} random bytes are inserted at a random position
        of each chunk from the backend.
        """
        harness = Harness(
            "error", settings={"error": {"inject": "true", "inject_size": "8"}})
        client, backend = harness.pair()
        client.send(b"ping")
        self.assertEqual(backend.received(), b"ping")
        rng = connectionRandom(harness)
        for data in (b"0123456789", b"abc"):
            backend.send(data)
            position = rng.randint(0, len(data))
            junk = rng.randbytes(8)
            self.assertEqual(client.received(), data[:position] + junk + data[position:])

    def test_injectFirstNonEmptyFrameOnly(self) -> None:
        """
        Under request scope, C{inject} spoils the first part of the response
        only; the request reaches the backend untouched.
        """
        harness = Harness(
            "error", protocol="lines", scope=REQUEST_SCOPE,
            settings={"error": {"inject": True, "inject_size": 4}})
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"get a\n")
        backend.send(b"VALUE")
        spoiled = client.received()
        self.assertEqual(len(spoiled), 9)
        backend.send(b" end\n")
        self.assertEqual(client.received(), b" end\n")
        rng = connectionRandom(harness)
        position = rng.randint(0, 5)
        self.assertEqual(spoiled, b"VALUE"[:position] + rng.randbytes(4) + b"VALUE"[position:])

    def test_injectWarmupCountsResponses(self) -> None:
        """
        With C{inject}, C{warmup} counts responses: the first ones pass
        unspoiled.
        """
        harness = Harness(
            "error", protocol="lines", scope=REQUEST_SCOPE,
            settings={"error": {"inject": True, "warmup": 1}})
        client, backend = harness.pair()
        client.send(b"get a\nget b\n")
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"A\n")
        backend.send(b"B\n")
        self.assertEqual(len(client.received()), 64 + 2)

    def test_noReplyRequestPasses(self) -> None:
        """
        A request that expects no response is forwarded untouched and not
        counted: an error reply would break the protocol.
        """
        harness = Harness("error", protocol="lines", scope=CONNECTION_SCOPE)
        client, backend = harness.pair()
        connection = client.protocol.connection
        behavior = harness.table.behaviors["error"]
        fault = connection.upstream.head.fault
        message = Message(UPSTREAM, 0, REQUEST, {"command": "set"}, expectsResponse=False)
        fault.frameReceived(Frame(b"set k v noreply\n", message))
        self.assertEqual(backend.received(), b"set k v noreply\n")
        self.assertEqual(client.received(), b"")
        self.assertEqual(behavior.seen, 0)

    def test_clientLeavingLeavesNothing(self) -> None:
        """
        After errors, a client leaving frees the connection and leaves no
        timer.
        """
        harness = Harness("error", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        closeBoth(client, backend)
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(activeCalls(harness), [])


class TransientTests(SynchronousTestCase):
    """
    C{transient}: errors for the first C{agitate} requests, then recovery.
    """

    def test_firstRequestFailsThenRecovers(self) -> None:
        """
        By default the first request gets an error and the next ones pass,
        including on a new connection (the count is per proxy).
        """
        harness = Harness("transient", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), b"ERR transient injected by txvaurien\n")
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"get a\n")
        other = harness.accept(40001)
        otherBackend = harness.backendConnects()
        other.send(b"get b\n")
        self.assertEqual(otherBackend.received(), b"get b\n")

    def test_agitateAndReset(self) -> None:
        """
        C{agitate} requests fail; C{reset} starts a new outage.
        """
        harness = Harness(
            "transient", protocol="lines", scope=REQUEST_SCOPE,
            settings={"transient": {"agitate": "2"}})
        behavior = harness.table.behaviors["transient"]
        client, backend = harness.pair()
        client.send(b"get 1\nget 2\nget 3\n")
        self.assertEqual(backend.received(), b"get 3\n")
        self.assertEqual(client.received(), b"ERR transient injected by txvaurien\n" * 2)
        behavior.reset()
        backend.send(b"THREE\n")
        self.assertEqual(client.received(), b"THREE\n")
        client.send(b"get 4\n")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.received(), b"ERR transient injected by txvaurien\n")

    def test_agitateZeroPassesEverything(self) -> None:
        """
        With C{agitate} 0 nothing fails.
        """
        harness = Harness(
            "transient", settings={"transient": {"agitate": 0}})
        client, backend = harness.pair()
        client.send(b"hello")
        self.assertEqual(backend.received(), b"hello")
        self.assertEqual(client.received(), b"")

    def test_tcpFirstChunkOnly(self) -> None:
        """
        Under C{tcp} the first chunk is answered with random bytes and the
        next one is forwarded.
        """
        harness = Harness("transient")
        client, backend = harness.pair()
        client.send(b"one")
        self.assertEqual(len(client.received()), 64)
        client.send(b"two")
        self.assertEqual(backend.received(), b"two")
        self.assertEqual(client.received(), b"")


class HangTests(SynchronousTestCase):
    """
    C{hang}: read, never answer, never close, until the client gives up.
    """

    def test_tcpNothingAnswered(self) -> None:
        """
        Under C{tcp}, the client's bytes are read (the client is not
        paused) but never reach the backend; the backend's bytes and its end
        of stream never reach the client; no timer runs.
        """
        harness = Harness("hang")
        client, backend = harness.pair()
        client.send(b"request")
        client.send(b"more")
        self.assertEqual(backend.received(), b"")
        self.assertEqual(client.transport.producerState, "producing")
        backend.send(b"greeting")
        backend.halfClose()
        self.assertEqual(client.received(), b"")
        self.assertFalse(client.transport.writeClosed)
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(activeCalls(harness), [])
        harness.reactor.advance(3600)
        self.assertFalse(client.transport.disconnecting)

    def test_clientEndOfStreamCloses(self) -> None:
        """
        An end of stream from the client closes both connections cleanly,
        and the connection is forgotten once they are gone.
        """
        harness = Harness("hang")
        client, backend = harness.pair()
        client.send(b"request")
        client.halfClose()
        self.assertTrue(client.transport.disconnecting)
        self.assertFalse(client.transport.disconnected)
        self.assertTrue(backend.transport.disconnecting)
        self.assertFalse(backend.transport.writeClosed)
        closeBoth(client, backend)
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(activeCalls(harness), [])

    def test_clientResetFreesEverything(self) -> None:
        """
        A client that drops the connection (RST) has the backend closed and
        leaves nothing behind, timers included.
        """
        harness = Harness("hang", idleTimeout=None)
        client, backend = harness.pair()
        client.send(b"request")
        client.lose(Failure(ConnectionLost()))
        self.assertTrue(backend.transport.disconnecting)
        backend.lose()
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(activeCalls(harness), [])

    def test_requestScopeHungRequestNotForwarded(self) -> None:
        """
        Under request scope, a hung request never reaches the backend and
        the responses to later requests wait behind it.
        """
        harness = Harness("hang", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"")
        harness.factory.setTable(buildTable("dummy", harness.registry, scope=REQUEST_SCOPE))
        client.send(b"get b\n")
        self.assertEqual(backend.received(), b"get b\n")
        backend.send(b"B\n")
        self.assertEqual(client.received(), b"")
        self.assertFalse(client.transport.disconnecting)

    def test_downstreamOnlySwallowsAnswer(self) -> None:
        """
        With C{direction} downstream under request scope, the request
        reaches the backend, its answer is swallowed (not buffered), and
        the answer to the next request is not taken for it.
        """
        harness = Harness(
            "hang", protocol="lines", scope=REQUEST_SCOPE,
            settings={"hang": {"direction": "downstream"}})
        client, backend = harness.pair()
        client.send(b"incr a\n")
        harness.factory.setTable(buildTable("dummy", harness.registry, scope=REQUEST_SCOPE))
        client.send(b"get b\n")
        self.assertEqual(backend.received(), b"incr a\nget b\n")
        backend.send(b"1" * 1000 + b"\n")
        backend.send(b"B\n")
        self.assertEqual(client.received(), b"")
        self.assertEqual(client.protocol.connection.downstream.sequencer.buffered, 2)

    def test_requestScopeClientLeaving(self) -> None:
        """
        Under request scope, a client leaving a hung request frees the
        connection.
        """
        harness = Harness("hang", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        client.lose(Failure(ConnectionLost()))
        backend.lose()
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(activeCalls(harness), [])

    def test_requestScopeClientEndOfStream(self) -> None:
        """
        Under request scope, the client's end of stream after a hung
        request reaches the hung request's fault, which closes the
        connection: the client gave up.  Nothing is left behind.
        """
        harness = Harness("hang", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        client.halfClose()
        self.assertEqual(backend.received(), b"")
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(backend.transport.disconnecting)
        client.lose()
        backend.lose()
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(activeCalls(harness), [])

    def test_downstreamEndOfStreamKeptUnderRequestScope(self) -> None:
        """
        Under request scope, a backend end of stream reaching a hung
        response's fault does not close the connection: the client is left
        waiting.
        """
        harness = Harness("hang", protocol="lines", scope=REQUEST_SCOPE,
                          settings={"hang": {"direction": "downstream"}})
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertEqual(backend.received(), b"get a\n")
        backend.send(b"A\n")
        backend.halfClose()
        self.assertEqual(client.received(), b"")
        self.assertFalse(client.transport.disconnecting)
        self.assertFalse(client.transport.writeClosed)

    def test_unlinkPassesEndOfStream(self) -> None:
        """
        A backend end of stream swallowed by C{hang} goes on when the table
        changes.
        """
        harness = Harness("hang")
        client, backend = harness.pair()
        backend.halfClose()
        self.assertFalse(client.transport.writeClosed)
        harness.factory.setTable(buildTable("dummy", harness.registry))
        self.assertTrue(client.transport.writeClosed)


class BlackoutTests(SynchronousTestCase):
    """
    C{blackout}: the client's connection is closed without contacting the
    backend.
    """

    def test_closedCleanlyAtOnce(self) -> None:
        """
        Under connection scope, the client is closed cleanly (FIN) as soon
        as it connects, and the backend is never dialled.
        """
        harness = Harness("blackout")
        client = harness.accept()
        self.assertTrue(client.transport.disconnecting)
        self.assertFalse(client.transport.disconnected)
        self.assertEqual(harness.reactor.tcpClients, [])
        client.lose()
        self.assertEqual(harness.factory.connections, {})

    def test_resetSendsRST(self) -> None:
        """
        With C{reset}, the client's connection is aborted (RST).
        """
        harness = Harness("blackout", settings={"blackout": {"reset": "yes"}})
        client = harness.accept()
        self.assertTrue(client.transport.disconnected)
        self.assertEqual(harness.reactor.tcpClients, [])
        client.lose(Failure(ConnectionLost()))
        self.assertEqual(harness.factory.connections, {})

    def test_requestScopeCutsAtRequest(self) -> None:
        """
        Under request scope, the connection is closed when a request chosen
        for C{blackout} arrives; that request never reaches the backend.
        """
        harness = Harness("dummy", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"A\n")
        self.assertEqual(backend.received(), b"get a\n")
        harness.factory.setTable(buildTable("blackout", harness.registry, scope=REQUEST_SCOPE))
        client.send(b"get ")
        self.assertTrue(client.transport.disconnecting)
        self.assertFalse(client.transport.disconnected)
        self.assertTrue(backend.transport.disconnecting)
        client.send(b"b\n")
        self.assertEqual(backend.received(), b"")
        closeBoth(client, backend)
        self.assertEqual(harness.factory.connections, {})

    def test_requestScopePipelinedRequestsStop(self) -> None:
        """
        Under request scope, requests pipelined in the same read after a
        blacked-out one never reach the backend: the connection is closing.
        """
        # With seed 1, request 0 draws blackout and request 1 dummy.
        harness = Harness("50:blackout", protocol="lines", scope=REQUEST_SCOPE, seed=1)
        client, backend = harness.pair()
        client.send(b"x 0\nx 1\nx 2\n")
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(backend.received(), b"")
        self.assertEqual(harness.factory.decisions, {"blackout": 1})

    def test_requestScopeReset(self) -> None:
        """
        Under request scope with C{reset}, the client is reset and the
        backend dropped.
        """
        harness = Harness(
            "blackout", protocol="lines", scope=REQUEST_SCOPE,
            settings={"blackout": {"reset": True}})
        client, backend = harness.pair()
        client.send(b"get a\n")
        self.assertTrue(client.transport.disconnected)
        self.assertTrue(backend.transport.disconnected)
        self.assertEqual(backend.received(), b"")

    def test_tableChangeBlacksOutLiveConnection(self) -> None:
        """
        Under connection scope, a live connection that gets C{blackout}
        through a table change is closed.
        """
        harness = Harness()
        client, backend = harness.pair()
        harness.factory.setTable(buildTable("blackout", harness.registry))
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(backend.transport.disconnecting)


class AbortTests(SynchronousTestCase):
    """
    C{abort}: the request goes, the connection drops before the answer.
    """

    def test_tcpAbortAtBackendBytes(self) -> None:
        """
        Under C{tcp}, the client's bytes reach the backend; the backend's
        first bytes are dropped and both connections are aborted (RST).
        """
        harness = Harness("abort")
        client, backend = harness.pair()
        client.send(b"req")
        client.send(b"uest")
        self.assertEqual(backend.received(), b"request")
        self.assertFalse(client.transport.disconnecting)
        backend.send(b"response")
        self.assertEqual(client.received(), b"")
        self.assertTrue(client.transport.disconnected)
        self.assertTrue(backend.transport.disconnected)
        closeBoth(client, backend)
        self.assertEqual(harness.factory.connections, {})
        self.assertEqual(activeCalls(harness), [])

    def test_requestScopeAbortAtResponse(self) -> None:
        """
        Under request scope, the request reaches the backend and the first
        part of its response aborts both connections; nothing of it reaches
        the client.
        """
        harness = Harness("abort", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"incr a\n")
        self.assertEqual(backend.received(), b"incr a\n")
        backend.send(b"4")
        self.assertEqual(client.received(), b"")
        self.assertTrue(client.transport.disconnected)
        self.assertTrue(backend.transport.disconnected)

    def test_onlyChosenRequestAborted(self) -> None:
        """
        Responses to requests before the aborted one reach the client.
        """
        harness = Harness("dummy", protocol="lines", scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"get a\n")
        harness.factory.setTable(buildTable("abort", harness.registry, scope=REQUEST_SCOPE))
        client.send(b"get b\n")
        self.assertEqual(backend.received(), b"get a\nget b\n")
        backend.send(b"A\n")
        self.assertEqual(client.received(), b"A\n")
        self.assertFalse(client.transport.disconnecting)
        backend.send(b"B\n")
        self.assertEqual(client.received(), b"")
        self.assertTrue(client.transport.disconnected)

    def test_greetingPasses(self) -> None:
        """
        A greeting, which answers nothing, passes; the first response after
        it aborts.
        """
        harness = Harness("abort", protocol="lines", scope=CONNECTION_SCOPE)
        client, backend = harness.pair()
        fault = client.protocol.connection.downstream.head.fault
        fault.frameReceived(Frame(b"220 hello\n", Message(DOWNSTREAM, 0, GREETING)))
        self.assertEqual(client.received(), b"220 hello\n")
        self.assertFalse(client.transport.disconnecting)
        client.send(b"helo\n")
        backend.send(b"250 ok\n")
        self.assertEqual(client.received(), b"")
        self.assertTrue(client.transport.disconnected)

    def test_upstreamDirectionDisables(self) -> None:
        """
        With C{direction} upstream, C{abort} does nothing.
        """
        harness = Harness("abort", settings={"abort": {"direction": "upstream"}})
        client, backend = harness.pair()
        client.send(b"q")
        backend.send(b"a")
        self.assertEqual((backend.received(), client.received()), (b"q", b"a"))
        self.assertFalse(client.transport.disconnecting)
