"""
Test-only plugins: a behavior that delays frames on the reactor's clock,
one that swallows requests and answers them with the protocol's error, and
a line-based protocol where each line is a request or a response.  They
show that the interfaces fit time-based behaviors and per-request
protocols before the real ones exist.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from zope.interface import implementer

from txvaurien.behaviors.base import Behavior, Fault
from txvaurien.frames import DATA, DOWNSTREAM, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IFramer, IProtocolSession
from txvaurien.options import Number
from txvaurien.protocols.base import ProtocolHandler


class SlowDownFault(Fault):
    """
    Holds each frame for C{seconds}, in order, and pauses the source while
    it holds more than C{hold} bytes.
    """

    def __init__(self, stage: Any) -> None:
        Fault.__init__(self, stage)
        self.clock = stage.connection.clock
        self.queue: deque[tuple[float, Frame]] = deque()
        self.held = 0
        self.paused = False
        self.eof = False
        self.timer: Any = None

    def _applies(self, frame: Frame) -> bool:
        only = self.settings["only"]
        return not only or frame.message.meta.get("command") == only or (
            frame.message.request is not None
            and frame.message.request.meta.get("command") == only
        )

    def frameReceived(self, frame: Frame) -> None:
        if not self.queue and not self._applies(frame):
            self.stage.forward(frame)
            return
        self.queue.append((self.clock.seconds() + self.settings["seconds"], frame))
        self.held += len(frame.data)
        if self.held > self.settings["hold"] and not self.paused:
            self.paused = True
            self.stage.pauseSource()
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is None and self.queue:
            delay = max(0.0, self.queue[0][0] - self.clock.seconds())
            self.timer = self.clock.callLater(delay, self._release)

    def _release(self) -> None:
        self.timer = None
        now = self.clock.seconds()
        while self.queue and self.queue[0][0] <= now:
            self._forwardOne()
        self._afterRelease()

    def _forwardOne(self) -> None:
        _, frame = self.queue.popleft()
        self.held -= len(frame.data)
        self.stage.forward(frame)

    def _afterRelease(self) -> None:
        if self.paused and self.held <= self.settings["hold"]:
            self.paused = False
            self.stage.resumeSource()
        if self.queue:
            self._schedule()
        elif self.eof:
            self.eof = False
            self.stage.forwardEOF()

    def eofReceived(self) -> None:
        if self.queue:
            self.eof = True
        else:
            self.stage.forwardEOF()

    def unlink(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.queue:
            self._forwardOne()
        self._afterRelease()

    def connectionLost(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class SlowDown(Behavior):
    """
    Test-only: delay frames by C{seconds} on the reactor's clock.
    """

    name = "slowdown"
    options = {
        "seconds": ("Seconds each frame is held", Number(float, 0), 1.0),
        "hold": ("Bytes held before the source is paused", Number(int, 0), 1024),
        "only": ("Delay only messages with this command (empty: all)", str, ""),
    }

    def buildFault(self, stage: Any) -> Any:
        return SlowDownFault(stage)


class SwallowFault(Fault):
    """
    Drops requests (or data) whose command matches, and answers them with
    the protocol's error reply.
    """

    def frameReceived(self, frame: Frame) -> None:
        message = frame.message
        if message.kind not in (REQUEST, DATA) or (
            self.settings["only"] and message.meta.get("command") != self.settings["only"]
        ):
            self.stage.forward(frame)
            return
        self.stage.drop(frame)
        if frame.last:
            connection = self.stage.connection
            request = message if message.kind == REQUEST else None
            connection.reply(request, connection.session.errorReply(request, "swallowed"))


class Swallow(Behavior):
    """
    Test-only: answer requests with an error instead of forwarding them.
    """

    name = "swallow"
    defaultDirection = UPSTREAM
    options = {"only": ("Swallow only this command (empty: all)", str, "")}

    def buildFault(self, stage: Any) -> Any:
        return SwallowFault(stage)


class Closer(Behavior):
    """
    Test-only: close the connection as soon as it is made.
    """

    name = "closer"
    options = {}

    def connectionMade(self, connection: Any) -> None:
        connection.close()


@implementer(IFramer)
class LineFramer:
    """
    Each line (ending with a newline) is one message.  Upstream lines are
    requests whose command is their first word; downstream lines are
    responses, paired in order with the requests the backend was sent.
    """

    def __init__(self, direction: str, session: "LineSession") -> None:
        self.direction = direction
        self.session = session
        self.current: Message | None = None
        self.count = 0

    def _start(self, data: bytes) -> Message:
        index, self.count = self.count, self.count + 1
        if self.direction == UPSTREAM:
            command = data.split(b" ", 1)[0].split(b"\n", 1)[0].decode("ascii", "replace")
            return Message(UPSTREAM, index, REQUEST, {"command": command})
        request = self.session.sent.popleft() if self.session.sent else None
        return Message(DOWNSTREAM, index, RESPONSE, {}, request)

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        position = 0
        while position < len(data):
            first = self.current is None
            if first:
                self.current = self._start(data[position:])
            end = data.find(b"\n", position)
            last = end >= 0
            stop = end + 1 if last else len(data)
            frames.append(Frame(data[position:stop], self.current, first, last))
            if last:
                self.current = None
            position = stop
        return frames

    def finish(self) -> list[Frame]:
        if self.current is None:
            return []
        message, self.current = self.current, None
        return [Frame(b"", message, False, True)]


@implementer(IProtocolSession)
class LineSession:
    serverSpeaksFirst = False
    passthrough = False

    def __init__(self, handler: Any, connection: Any) -> None:
        self.sent: deque[Message] = deque()
        self.upstream = LineFramer(UPSTREAM, self)
        self.downstream = LineFramer(DOWNSTREAM, self)

    def requestSent(self, request: Message) -> None:
        self.sent.append(request)

    def errorReply(
        self, request: Message | None, reason: str, code: int | None = None
    ) -> bytes:
        return "ERR {}\n".format(reason).encode("ascii")

    def connectFailed(self, reason: str) -> bytes:
        return b"ERR backend unavailable\n"


class Lines(ProtocolHandler):
    """
    Test-only: one request or response per line.
    """

    name = "lines"
    options = {}
    framesRequests = True
    sessionClass = LineSession
