"""
The conformance suites of L{txvaurien.testing.conformance} run on every
behavior and protocol handler txvaurien ships, listed from the registry
(not from a hand-kept list), and shown to catch plugins that break the
rules.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import DOWNSTREAM, UPSTREAM, Frame
from txvaurien.interfaces import IConnection, IStage
from txvaurien.options import Number
from txvaurien.protocols.base import ProtocolHandler
from txvaurien.registry import Registry
from txvaurien.test import test_protocol_mysql as my
from txvaurien.test import test_protocol_postgresql as pg
from txvaurien.testing.conformance import (
    BehaviorConformanceMixin,
    FakeConnection,
    ProtocolConformanceMixin,
    RecordingStage,
)

REGISTRY = Registry.discover(thirdParty=False)

#: More option values to check some behaviors with, beyond their defaults.
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "delay": [{}, {"before": False}],
    "error": [{}, {"inject": True}],
    "transient": [{}, {"inject": True}],
    "slicer": [{}, {"delay": 5}],
    "latency": [{}, {"jitter": 50}],
    "reset_peer": [{}, {"timeout": 100}],
}

def _tcpDNS(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


#: A typical exchange of each protocol, in wire order.
CONVERSATIONS: dict[str, list[tuple[str, bytes]]] = {
    "tcp": [(UPSTREAM, b"hello\r\n" * 50), (DOWNSTREAM, b"\x00\xffworld" * 40)],
    "http": [
        (UPSTREAM, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        (DOWNSTREAM, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        (UPSTREAM, b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"),
        (DOWNSTREAM, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\n"),
    ],
    "redis": [
        (UPSTREAM, b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"
                   b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        (DOWNSTREAM, b"+PONG\r\n+OK\r\n$5\r\nvalue\r\n"),
    ],
    "memcache": [
        (UPSTREAM, b"set k 0 0 5\r\nhello\r\nget k\r\n"),
        (DOWNSTREAM, b"STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n"),
    ],
    "smtp": [
        (DOWNSTREAM, b"220 mail ESMTP\r\n"),
        (UPSTREAM, b"EHLO client\r\n"),
        (DOWNSTREAM, b"250-mail\r\n250 SIZE 1000\r\n"),
        (UPSTREAM, b"MAIL FROM:<a@b>\r\n"),
        (DOWNSTREAM, b"250 OK\r\n"),
        (UPSTREAM, b"QUIT\r\n"),
        (DOWNSTREAM, b"221 bye\r\n"),
    ],
    "mysql": [
        (DOWNSTREAM, my.greeting()),
        (UPSTREAM, my.handshakeResponse()),
        (DOWNSTREAM, my.ok(2)),
        (UPSTREAM, my.query(b"SELECT 1")),
        (DOWNSTREAM, my.resultSet(1, 1, 2)[0]),
        (UPSTREAM, my.query(b"DO 1")),
        (DOWNSTREAM, my.ok(1)),
    ],
    # DNS over TCP (a two-byte length, then the message): a query for
    # example.com A and its answer.
    "dns": [
        (UPSTREAM, _tcpDNS(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                           b"\x07example\x03com\x00\x00\x01\x00\x01")),
        (DOWNSTREAM, _tcpDNS(b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
                             b"\x07example\x03com\x00\x00\x01\x00\x01"
                             b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04"
                             b"\x01\x02\x03\x04")),
    ],
    "postgresql": [
        (UPSTREAM, pg.startup()),
        (DOWNSTREAM, pg.AUTH_OK + pg.PARAMETER + pg.KEY + pg.Z()),
        (UPSTREAM, pg.Q(b"SELECT 1")),
        (DOWNSTREAM, pg.ROW_DESCRIPTION + pg.message(b"D", b"\x00\x01\x00\x00\x00\x011")
         + pg.message(b"C", b"SELECT 1\x00") + pg.Z()),
        (UPSTREAM, pg.P(b"SELECT 2") + pg.B() + pg.E + pg.S),
        (DOWNSTREAM, pg.PARSED + pg.message(b"2", b"") + pg.message(b"C", b"SELECT 1\x00")
         + pg.Z()),
    ],
}


def _className(name: str, suffix: str) -> str:
    return "".join(part.title() for part in name.split("_")) + suffix


for _behavior in REGISTRY.behaviors:
    _name = _className(_behavior.name, "BehaviorConformanceTests")
    globals()[_name] = type(_name, (BehaviorConformanceMixin, SynchronousTestCase), {
        "behavior": _behavior,
        "settingsToCheck": SETTINGS.get(_behavior.name, [{}]),
        "__doc__": "The conformance suite on the built-in behavior {!r}.".format(
            _behavior.name),
    })

for _handler in REGISTRY.protocols:
    _name = _className(_handler.name, "ProtocolConformanceTests")
    globals()[_name] = type(_name, (ProtocolConformanceMixin, SynchronousTestCase), {
        "handler": _handler,
        "conversation": CONVERSATIONS.get(_handler.name, []),
        "__doc__": "The conformance suite on the built-in protocol {!r}.".format(
            _handler.name),
    })


class CoverageTests(SynchronousTestCase):
    """
    The suite covers every built-in.
    """

    def test_everyBuiltInChecked(self) -> None:
        """
        Every behavior and protocol the registry lists has a conformance
        test case in this module, and every protocol a conversation.
        """
        for behavior in REGISTRY.behaviors.names():
            self.assertIn(_className(behavior, "BehaviorConformanceTests"), globals())
        for protocol in REGISTRY.protocols.names():
            self.assertIn(_className(protocol, "ProtocolConformanceTests"), globals())
            self.assertTrue(CONVERSATIONS.get(protocol), protocol)
        self.assertGreaterEqual(len(REGISTRY.behaviors.names()), 19)


# Plugins that break a rule each, to show the suite catches them.


class _TwiceFault(Fault):
    def frameReceived(self, frame: Frame) -> None:
        self.stage.forward(frame)
        self.stage.forward(frame)


class _Twice(Behavior):
    name = "twice"
    options = {}

    def buildFault(self, stage: Any) -> Any:
        return _TwiceFault(stage)


class _HoardFault(Fault):
    """
    Holds frames until a timer fires, and forgets them (and the timer) on
    unlink and connectionLost.
    """

    def __init__(self, stage: Any) -> None:
        Fault.__init__(self, stage)
        self.held: list[Frame] = []
        self.timer: Any = None

    def frameReceived(self, frame: Frame) -> None:
        self.held.append(frame)
        if self.timer is None:
            self.timer = self.stage.connection.clock.callLater(10, self.release)

    def release(self) -> None:
        held, self.held = self.held, []
        for frame in held:
            self.stage.forward(frame)


class _Hoard(Behavior):
    name = "hoard"
    options = {}

    def buildFault(self, stage: Any) -> Any:
        return _HoardFault(stage)


class _EOFEater(Behavior):
    name = "eof_eater"
    options = {}

    def buildFault(self, stage: Any) -> Any:
        fault = Fault(stage)
        fault.eofReceived = lambda: None  # type: ignore[method-assign]
        return fault


class _BadDefault(Behavior):
    name = "bad_default"
    options = {"size": ("Bytes", Number(int, 1), 0)}


class _NoDescription(Behavior):
    name = "no_description"
    options = {"size": ("", int, 1)}


class _Rewriting(ProtocolHandler):
    """
    A protocol whose framer upper-cases what it frames.
    """

    name = "rewriting"
    options = {}
    framesRequests = False

    def buildSession(self, connection: Any) -> Any:
        from txvaurien.protocols.tcp import TCP

        session = TCP().buildSession(connection)
        framer = session.upstream
        feed = framer.feed
        framer.feed = lambda data: [
            Frame(f.data.upper(), f.message, f.first, f.last) for f in feed(data)]
        return session


def _failures(case: type, method: str) -> list[Any]:
    """
    Run one test of C{case}; the failures and errors it had.
    """
    from twisted.trial.reporter import TestResult

    result = TestResult()
    case(method).run(result)
    return result.failures + result.errors


class SuiteCatchesBreakageTests(SynchronousTestCase):
    """
    Each rule's test fails for a plugin that breaks that rule.
    """

    def behaviorCase(self, behavior: Any) -> type:
        return type("Case", (BehaviorConformanceMixin, SynchronousTestCase),
                    {"behavior": behavior})

    def test_frameForwardedTwiceCaught(self) -> None:
        """
        A fault that forwards each frame twice fails
        C{test_eachFrameLeavesExactlyOnce}.
        """
        failures = _failures(self.behaviorCase(_Twice()), "test_eachFrameLeavesExactlyOnce")
        self.assertEqual(len(failures), 1)
        self.assertIn("left twice", str(failures[0][1]))

    def test_heldFramesOnUnlinkCaught(self) -> None:
        """
        A fault that keeps its frames and its timer on unlink fails
        C{test_unlinkReleasesHeldFramesInOrder}, and its timer left after
        C{connectionLost} fails C{test_timersCancelledWhenConnectionLost}.
        """
        case = self.behaviorCase(_Hoard())
        failures = _failures(case, "test_unlinkReleasesHeldFramesInOrder")
        self.assertEqual(len(failures), 1)
        self.assertIn("still held after unlink", str(failures[0][1]))
        failures = _failures(case, "test_timersCancelledWhenConnectionLost")
        self.assertEqual(len(failures), 1)
        self.assertIn("timers left after connectionLost", str(failures[0][1]))

    def test_swallowedEndOfStreamCaught(self) -> None:
        """
        A fault that never passes the end of stream on fails
        C{test_endOfStreamPassesThrough}.
        """
        failures = _failures(self.behaviorCase(_EOFEater()), "test_endOfStreamPassesThrough")
        self.assertEqual(len(failures), 1)
        self.assertIn("end of stream passed 0 times", str(failures[0][1]))

    def test_badDeclarationsCaught(self) -> None:
        """
        An option whose default its type refuses, or without a
        description, fails C{test_optionsDeclaredWithDefaults}.
        """
        behavior = _BadDefault.__new__(_BadDefault)  # its defaults cannot be computed
        failures = _failures(self.behaviorCase(behavior), "test_optionsDeclaredWithDefaults")
        self.assertEqual(len(failures), 1)
        self.assertIn("default of option 'size' is invalid", str(failures[0][1]))
        failures = _failures(self.behaviorCase(_NoDescription()),
                             "test_optionsDeclaredWithDefaults")
        self.assertEqual(len(failures), 1)
        self.assertIn("option 'size' has no description", str(failures[0][1]))

    def test_framingThatChangesBytesCaught(self) -> None:
        """
        A framer that changes bytes fails C{test_framingNeverChangesBytes}.
        """
        case = type("Case", (ProtocolConformanceMixin, SynchronousTestCase), {
            "handler": _Rewriting(), "conversation": [(UPSTREAM, b"abc")]})
        failures = _failures(case, "test_framingNeverChangesBytes")
        self.assertEqual(len(failures), 1)
        self.assertIn("upstream bytes changed by framing", str(failures[0][1]))


class FakesTests(SynchronousTestCase):
    """
    The fakes the suites run faults on.
    """

    def test_fakesProvideInterfaces(self) -> None:
        """
        L{FakeConnection} provides L{IConnection} and L{RecordingStage}
        L{IStage}.
        """
        connection = FakeConnection()
        verifyObject(IConnection, connection)
        verifyObject(IStage, RecordingStage(UPSTREAM, connection, REGISTRY.behaviors.get("delay")))

    def test_closeTellsFaultsOnceAndCancelsTimers(self) -> None:
        """
        Closing a L{FakeConnection} cancels its timers and tells its faults
        (on the next turn, as the reactor would) exactly once, keeping the
        first reason.
        """
        connection = FakeConnection()
        told: list[str] = []
        fault = type("F", (), {"connectionLost": lambda self: told.append("lost")})()
        connection.faults.append(fault)
        timer = connection.callLater(5, told.append, "fired")
        connection.reset("first")
        connection.close("second")
        self.assertEqual((connection.closed, connection.reason), ("reset", "first"))
        self.assertEqual(told, [])
        connection.clock.advance(0)
        self.assertEqual(told, ["lost"])
        self.assertFalse(timer.active())
        connection.clock.advance(10)
        self.assertEqual(told, ["lost"])
