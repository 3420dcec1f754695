# -*- test-case-name: txvaurien.test.test_testing_conformance -*-
"""
Conformance suites for extenders: mix L{BehaviorConformanceMixin} or
L{ProtocolConformanceMixin} into a L{twisted.trial.unittest.SynchronousTestCase}
and name your plugin; the suite checks the rules the interfaces state::

    class MyBehaviorConformance(BehaviorConformanceMixin, SynchronousTestCase):
        behavior = MyBehavior()
        settingsToCheck = [{}, {"sleep": 0.5}]

    class MyProtocolConformance(ProtocolConformanceMixin, SynchronousTestCase):
        handler = MyProtocol()
        conversation = [(UPSTREAM, b"GET k\\n"), (DOWNSTREAM, b"VALUE v\\n")]

Behaviors: every frame a fault receives leaves it exactly once
(C{forward} or C{drop}), unless the connection closes; C{unlink} releases
held frames at once, in order, cancels timers and resumes the source; the
fault's timers are cancelled when the connection is lost; the end of
stream passes through (or the fault closes the connection); every option
is declared with a description and a valid default; C{verifyObject} passes
for the behavior and its faults.

Protocol handlers: C{verifyObject} passes for the handler, its sessions and
framers; every option is declared with a default; framing never changes
bytes, however the stream is cut; each message's frames start with
C{first} and end with C{last}; C{finish} ends an open message; error
replies are bytes.

Faults run on a L{FakeConnection} (on a L{task.Clock}) through a
L{RecordingStage}, which you can use in your own tests too.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from zope.interface.verify import verifyObject

from txvaurien import options
from txvaurien.frames import DOWNSTREAM, REQUEST, UPSTREAM, Frame, Message
from txvaurien.interfaces import (
    IBehavior,
    IFault,
    IFramer,
    IProtocolHandler,
    IProtocolSession,
)
from txvaurien.testing.fakes import FakeConnection, FaultRun, RecordingStage

__all__ = [
    "BehaviorConformanceMixin",
    "FakeConnection",
    "FaultRun",
    "ProtocolConformanceMixin",
    "RecordingStage",
]

class BehaviorConformanceMixin:
    """
    Checks a behavior against the rules of L{IBehavior} and L{IFault}.

    @cvar behavior: the behavior (an instance; it is configured with each
        entry of L{settingsToCheck}).
    @cvar settingsToCheck: option values to check it with (C{direction}
        is set to C{both} unless given).
    """

    behavior: ClassVar[Any] = None
    settingsToCheck: ClassVar[list[dict[str, Any]]] = [{}]

    def _configured(self) -> list[Any]:
        result = []
        for settings in self.settingsToCheck:
            values = dict(settings)
            if "direction" in options.specs(self.behavior):
                values.setdefault("direction", "both")
            result.append(self.behavior.configure(values))
        return result

    def _runs(self) -> list[FaultRun]:
        runs = []
        for configured in self._configured():
            for requestScope in (False, True):
                for direction in (UPSTREAM, DOWNSTREAM):
                    run = FaultRun(configured, direction, requestScope)
                    if run.fault is not None:
                        runs.append(run)
        return runs

    def _where(self, run: FaultRun) -> str:
        return "{} {} under {} scope".format(
            run.behavior.name, run.stage.direction,
            "request" if run.request is not None else "connection")

    def test_behaviorProvidesIBehavior(self) -> None:
        """
        The behavior and its configured copies provide L{IBehavior}, with a
        name and every declared option in C{settings}.
        """
        test: Any = self
        verifyObject(IBehavior, self.behavior)
        test.assertTrue(isinstance(self.behavior.name, str) and self.behavior.name)
        for configured in self._configured():
            verifyObject(IBehavior, configured)
            test.assertEqual(set(configured.settings), set(options.specs(configured)))

    def test_optionsDeclaredWithDefaults(self) -> None:
        """
        Every option is declared as C{(description, type, default)} with a
        description and a default its type accepts.
        """
        _checkDeclarations(self, self.behavior)

    def test_faultsProvideIFault(self) -> None:
        """
        Every fault the behavior builds provides L{IFault}.
        """
        for run in self._runs():
            verifyObject(IFault, run.fault)

    def test_eachFrameLeavesExactlyOnce(self) -> None:
        """
        Fed frames, given time, then unlinked, the fault let every frame
        leave once: no frame forwarded or dropped twice, and one last frame
        out per message, unless the connection was closed.
        """
        test: Any = self
        for run in self._runs():
            run.feed()
            run.settle()
            run.unlink()
            where = self._where(run)
            seen: set[int] = set()
            for _, frame in run.outputs():
                test.assertNotIn(id(frame), seen, "{}: {!r} left twice".format(where, frame))
                seen.add(id(frame))
            if run.connection.closed is None:
                for message in {id(f.message): f.message for f in run.frames}.values():
                    lasts = [f for _, f in run.outputs() if f.message is message and f.last]
                    test.assertEqual(len(lasts), 1, "{}: {!r} ended {} times".format(
                        where, message, len(lasts)))

    def test_unlinkReleasesHeldFramesInOrder(self) -> None:
        """
        C{unlink} right after the frames arrive lets every held frame out
        at once, in the order received, cancels the fault's timers and
        undoes its pauses; nothing leaves afterwards.
        """
        test: Any = self
        for run in self._runs():
            run.feed()
            run.clock.advance(0.001)
            if run.connection.closed is not None:
                continue
            run.unlink()
            where = self._where(run)
            if run.connection.closed is not None:
                continue
            order = [run.frames.index(f) if f in run.frames else
                     max(i for i, g in enumerate(run.frames) if g.message is f.message)
                     for kind, f in run.outputs() if kind == "forward"]
            test.assertEqual(order, sorted(order), "{}: released out of order".format(where))
            for message in {id(f.message): f.message for f in run.frames}.values():
                test.assertTrue(
                    any(f.message is message and f.last for _, f in run.outputs()),
                    "{}: {!r} still held after unlink".format(where, message))
            test.assertEqual(run.newTimers(), [], "{}: timers left after unlink".format(where))
            test.assertEqual(run.stage.paused, 0, "{}: source left paused".format(where))
            count = len(run.stage.events)
            run.settle()
            test.assertEqual(len(run.stage.events), count,
                             "{}: frames left after unlink".format(where))

    def test_timersCancelledWhenConnectionLost(self) -> None:
        """
        Once the connection is lost (C{connectionLost}), none of the
        fault's timers is left and nothing leaves it any more.
        """
        test: Any = self
        for run in self._runs():
            run.feed()
            run.clock.advance(0.001)
            run.connection.lose()
            where = self._where(run)
            test.assertEqual(run.newTimers(), [], "{}: timers left after connectionLost"
                             .format(where))
            count = len(run.stage.events)
            run.settle()
            test.assertEqual(len(run.stage.events), count,
                             "{}: acted after connectionLost".format(where))

    def test_endOfStreamPassesThrough(self) -> None:
        """
        After the frames and the end of stream, given time and unlinked,
        the fault passed the end of stream on exactly once, after every
        frame it forwarded, or the connection was closed.
        """
        test: Any = self
        for run in self._runs():
            run.feed()
            if run.connection.closed is None:
                run.fault.eofReceived()
            run.settle()
            run.unlink()
            if run.connection.closed is not None:
                continue
            where = self._where(run)
            kinds = [k for k, _ in run.stage.events]
            test.assertEqual(kinds.count("eof"), 1, "{}: end of stream passed {} times"
                             .format(where, kinds.count("eof")))
            test.assertEqual(kinds[-1], "eof", "{}: frames after the end of stream"
                             .format(where))


def _checkDeclarations(test: Any, plugin: Any) -> None:
    """
    Every option of C{plugin} is C{(description, type, default)} with a
    description, a type L{txvaurien.options} knows, and a default that type
    accepts (L{None} stands for "unset", as C{--seed} has), and a plugin
    configured with nothing has every option at its default.
    """
    test.assertIsInstance(plugin.options, dict)
    for name, entry in plugin.options.items():
        test.assertTrue(isinstance(entry, tuple) and len(entry) == 3,
                        "{}: option {!r} is not (description, type, default)".format(
                            plugin.name, name))
        description = entry[0]
        test.assertTrue(isinstance(description, str) and description.strip(),
                        "{}: option {!r} has no description".format(plugin.name, name))
    try:
        options.specs(plugin)
    except (TypeError, ValueError) as e:
        test.fail("{}: {}".format(plugin.name, e))
    test.assertEqual(plugin.configure({}).settings, options.defaults(plugin))


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """
    C{data} cut at the given offsets.
    """
    points = [0] + sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    return [data[a:b] for a, b in zip(points[:-1], points[1:], strict=True)]


class ProtocolConformanceMixin:
    """
    Checks a protocol handler against the rules of L{IProtocolHandler},
    L{IProtocolSession} and L{IFramer}.

    @cvar handler: the handler (an instance).
    @cvar conversation: C{(direction, bytes)} steps of a typical exchange,
        in the order they happen on the wire.
    @cvar settings: option values to configure it with.
    """

    handler: ClassVar[Any] = None
    conversation: ClassVar[list[tuple[str, bytes]]] = []
    settings: ClassVar[dict[str, Any]] = {}

    def _session(self) -> Any:
        connection = FakeConnection()
        session = self.handler.configure(dict(self.settings)).buildSession(connection)
        connection.session = session
        return session

    def _frame(self, cutter: Any) -> dict[str, list[tuple[bytes, Frame]]]:
        """
        Run the conversation through a new session, each step cut by
        C{cutter(data)}; the frames of each direction, with the chunk fed.
        """
        session = self._session()
        out: dict[str, list[tuple[bytes, Frame]]] = {UPSTREAM: [], DOWNSTREAM: []}
        for direction, data in self.conversation:
            framer = session.upstream if direction == UPSTREAM else session.downstream
            for chunk in cutter(data):
                for frame in framer.feed(chunk):
                    out[direction].append((chunk, frame))
                    if (direction == UPSTREAM and frame.first
                            and frame.message.kind == REQUEST):
                        session.requestSent(frame.message)
        for direction in (UPSTREAM, DOWNSTREAM):
            framer = session.upstream if direction == UPSTREAM else session.downstream
            for frame in framer.finish():
                out[direction].append((b"", frame))
        return out

    def _cutters(self) -> list[Any]:
        rng = random.Random(1)
        return [
            lambda data: [data],
            lambda data: [data[i:i + 1] for i in range(len(data))],
            lambda data: cut(data, [rng.randrange(len(data) + 1) for _ in range(5)]),
            lambda data: cut(data, [rng.randrange(len(data) + 1) for _ in range(20)]),
        ]

    def test_handlerSessionFramersProvideInterfaces(self) -> None:
        """
        The handler provides L{IProtocolHandler}, its sessions
        L{IProtocolSession}, their framers L{IFramer}.
        """
        verifyObject(IProtocolHandler, self.handler)
        verifyObject(IProtocolHandler, self.handler.configure(dict(self.settings)))
        session = self._session()
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)

    def test_optionsDeclaredWithDefaults(self) -> None:
        """
        Every option is declared as C{(description, type, default)} with a
        description and a default its type accepts.
        """
        _checkDeclarations(self, self.handler)

    def test_framingNeverChangesBytes(self) -> None:
        """
        However each step is cut, the frames of each direction concatenate
        to exactly the bytes fed.
        """
        test: Any = self
        test.assertTrue(self.conversation, "give a conversation to check")
        for cutter in self._cutters():
            out = self._frame(cutter)
            for direction in (UPSTREAM, DOWNSTREAM):
                fed = b"".join(d for s, d in self.conversation if s == direction)
                test.assertEqual(b"".join(f.data for _, f in out[direction]), fed,
                                 "{} bytes changed by framing".format(direction))

    def test_messagesStartFirstAndEndLast(self) -> None:
        """
        Each message's frames begin with C{first} and end with C{last},
        none follows its last one, and messages of a direction are
        numbered in order.
        """
        test: Any = self
        for cutter in self._cutters():
            out = self._frame(cutter)
            for direction in (UPSTREAM, DOWNSTREAM):
                open_: Message | None = None
                ended: set[int] = set()
                indexes: list[int] = []
                for _, frame in out[direction]:
                    message = frame.message
                    test.assertEqual(message.direction, direction)
                    test.assertNotIn(id(message), ended,
                                     "{!r} has a frame after its last".format(message))
                    if open_ is None or message is not open_:
                        test.assertIsNone(open_, "{!r} interrupted by {!r}".format(
                            open_, message))
                        test.assertTrue(frame.first, "{!r} starts without first".format(
                            message))
                        indexes.append(message.index)
                    else:
                        test.assertFalse(frame.first)
                    open_ = None if frame.last else message
                    if frame.last:
                        ended.add(id(message))
                test.assertIsNone(open_, "finish() left {!r} open".format(open_))
                test.assertEqual(indexes, sorted(indexes))

    def test_errorRepliesAreBytes(self) -> None:
        """
        C{errorReply} (for a request and for none) and C{connectFailed}
        return bytes.
        """
        test: Any = self
        session = self._session()
        request = Message(UPSTREAM, 0, REQUEST, {})
        test.assertIsInstance(session.errorReply(request, "conformance", 503), bytes)
        test.assertIsInstance(session.errorReply(None, "conformance"), bytes)
        test.assertIsInstance(session.connectFailed("conformance"), bytes)
