# -*- test-case-name: txvaurien.test.test_testing_conformance -*-
"""
Fakes for testing faults alone: an L{IConnection} on a L{Clock}
(L{FakeConnection}), an L{IStage} that records what its fault does
(L{RecordingStage}), and L{FaultRun}, one fault fed test frames, which the
conformance suites (L{txvaurien.testing.conformance}) are built on.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.task import Clock
from zope.interface import implementer

from txvaurien.frames import DATA, DOWNSTREAM, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection, IStage

#: How long (fake seconds) a run lets a fault's timers fire.
HORIZON = 3600.0


class _FakeProxy:
    name = "conformance"
    connections: set[Any] = set()


@implementer(IConnection)
class FakeConnection:
    """
    An L{IConnection} on a L{Clock} that records what faults ask of it.

    @ivar closed: C{None}, or how the connection was ended (C{"close"},
        C{"reset"}, C{"abort"}).
    @ivar replies: C{(request, data)} sent through L{reply}.
    @ivar faults: faults told of the end of the connection.
    """

    def __init__(self, clock: Clock | None = None, seed: int = 1, session: Any = None,
                 id: int = 0) -> None:
        self.id = id
        self.clock = clock if clock is not None else Clock()
        self.random = random.Random(seed)
        self.proxy = _FakeProxy()
        self.reason: str | None = None
        self.closed: str | None = None
        self.replies: list[tuple[Any, bytes]] = []
        self.faults: list[Any] = []
        self._timers: list[Any] = []
        if session is None:
            from txvaurien.protocols.tcp import TCP

            session = TCP().buildSession(self)
        self.session = session

    def callLater(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        call = self.clock.callLater(delay, f, *args, **kwargs)
        self._timers.append(call)
        return call

    def reply(self, request: Any, data: bytes, close: bool = False,
              reason: str | None = None) -> None:
        self.replies.append((request, data))
        if close:
            self.close(reason)

    def _end(self, how: str, reason: str | None) -> None:
        if self.reason is None:
            self.reason = reason
        if self.closed is None:
            self.closed = how
            self.clock.callLater(0, self.lose)

    def close(self, reason: str | None = None) -> None:
        self._end("close", reason)

    def reset(self, reason: str | None = None) -> None:
        self._end("reset", reason)

    def abort(self, reason: str | None = None) -> None:
        self._end("abort", reason)

    def lose(self) -> None:
        """
        The connection is gone: cancel its timers and tell every fault
        (C{connectionLost}), once.
        """
        for call in self._timers:
            if call.active():
                call.cancel()
        faults, self.faults = self.faults, []
        if self.closed is None:
            self.closed = "lost"
        for fault in faults:
            fault.connectionLost()


@implementer(IStage)
class RecordingStage:
    """
    An L{IStage} that records what its fault does.

    @ivar events: C{(kind, frame)} in order, C{kind} being C{"forward"},
        C{"drop"} or C{"eof"} (frame L{None}).
    @ivar paused: pause calls not yet undone.
    """

    def __init__(self, direction: str, connection: FakeConnection, behavior: Any,
                 message: Message | None = None) -> None:
        self.direction = direction
        self.connection = connection
        self.behavior = behavior
        self.message = message
        self.events: list[tuple[str, Frame | None]] = []
        self.paused = 0

    def forward(self, frame: Frame) -> None:
        self.events.append(("forward", frame))

    def drop(self, frame: Frame) -> None:
        self.events.append(("drop", frame))

    def forwardEOF(self) -> None:
        self.events.append(("eof", None))

    def pauseSource(self) -> None:
        self.paused += 1

    def resumeSource(self) -> None:
        self.paused -= 1


class FaultRun:
    """
    One fault of a behavior in one direction and scope, fed test frames.

    @ivar fault: the fault, or L{None} if the behavior builds none there
        (or closed the connection in C{connectionMade}).
    @ivar frames: the frames it is fed, in order.
    """

    def __init__(self, behavior: Any, direction: str, requestScope: bool, seed: int = 1):
        self.clock = Clock()
        self.connection = FakeConnection(self.clock, seed)
        self.behavior = behavior
        self.request: Message | None = None
        if requestScope:
            self.request = Message(UPSTREAM, 0, REQUEST, {"command": "GET"})
        else:
            # Chosen for the whole connection: told of it first.
            behavior.connectionMade(self.connection)
        self.stage = RecordingStage(direction, self.connection, behavior, self.request)
        self.fault: Any = None
        self.before: set[Any] = set()
        if self.connection.closed is None:
            self.before = set(self._active())
            self.fault = behavior.buildFault(self.stage)
            if self.fault is not None:
                self.connection.faults.append(self.fault)
        self.frames = self._frames(direction)

    def _frames(self, direction: str) -> list[Frame]:
        if self.request is not None:
            if direction == UPSTREAM:
                message = self.request
            else:
                message = Message(DOWNSTREAM, 0, RESPONSE, {}, self.request)
            return [Frame(b"first part ", message, True, False),
                    Frame(b"last part\n", message, False, True)]
        m = [Message(direction, i, DATA) for i in range(3)]
        return [Frame(b"aaaa", m[0]), Frame(b"bbbbbbbb", m[1]),
                Frame(b"cc", m[2], True, False), Frame(b"dd", m[2], False, True)]

    def _active(self) -> list[Any]:
        return [c for c in self.clock.getDelayedCalls() if c.active()]

    def newTimers(self) -> list[Any]:
        """
        Active delayed calls made since the fault was built.
        """
        return [c for c in self._active() if c not in self.before]

    def feed(self) -> None:
        """
        Give the fault every frame, in order, while the connection lives.
        """
        for frame in self.frames:
            if self.connection.closed is not None:
                return
            self.fault.frameReceived(frame)

    def settle(self, horizon: float = HORIZON) -> None:
        """
        Fire every timer due within C{horizon} fake seconds, in order.
        """
        end = self.clock.seconds() + horizon
        for _ in range(100000):
            due = [c.getTime() for c in self._active()]
            if not due or min(due) > end:
                return
            self.clock.advance(max(0.0, min(due) - self.clock.seconds()))

    def unlink(self) -> None:
        """
        Unlink the fault, as a change of behavior table does, unless the
        connection is closed.
        """
        if self.connection.closed is None:
            self.fault.unlink()
            self.connection.faults.remove(self.fault)

    def outputs(self) -> list[tuple[str, Frame]]:
        """
        C{(kind, frame)} for every frame the fault forwarded or dropped.
        """
        return [(k, f) for k, f in self.stage.events if f is not None]
