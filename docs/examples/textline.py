"""
A third-party protocol handler: C{textline}, for services that speak one
line per request and one line per response (many in-house key-value and
command services do), with errors written C{ERR <reason>}.

Requests are framed by line; each response line is paired with the oldest
request the backend was sent and has not answered; a line longer than
C{lineLimit} is not this protocol, and the rest of that direction passes
through unframed.
"""

from __future__ import annotations

from typing import Any

from txvaurien.frames import DOWNSTREAM, PUSH, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.protocols.base import Framer, ProtocolHandler, Session, oneLine


class LineFramer(Framer):
    """
    Cuts one direction into lines: each complete line is one message.
    """

    protocolName = "textline"
    lineLimit = 4096
    hot = ("feed",)

    def feed(self, data: bytes) -> list[Frame]:
        self.offset += len(data)
        if self.raw:
            return self.unframed(data)
        frames: list[Frame] = []
        if self.held:
            data, self.held = self.held + data, b""
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                if self.tooLong(len(data) - pos):
                    where = self.offset - len(data) + pos
                    return frames + self.giveUp(where, "line too long", data[pos:])
                # Hold the start of a line until its end arrives.
                self.held = data[pos:]
                break
            line = data[pos:end + 1]
            self.openLine(line)
            self.emit(frames, line, True)
            pos = end + 1
        return frames

    def openLine(self, line: bytes) -> Message:
        """
        Open the message the complete C{line} is.
        """
        raise NotImplementedError()


class RequestFramer(LineFramer):
    """
    A request's metadata is its first word, upper-cased: C{command}.
    """

    def openLine(self, line: bytes) -> Message:
        words = line.split(None, 1)
        command = words[0].decode("ascii", "replace").upper() if words else ""
        return self.openMessage(REQUEST, {"command": command})


class ResponseFramer(LineFramer):
    """
    A response answers the oldest request the backend was sent; a line
    nobody asked for is a push.
    """

    def openLine(self, line: bytes) -> Message:
        sent = self.session.sent
        if not sent:
            return self.openMessage(PUSH, {})
        request = sent.popleft()
        return self.openMessage(RESPONSE, {"command": request.meta["command"]}, request)


class TextLineSession(Session):
    """
    One connection: its two framers, and what its errors look like.
    """

    protocolName = "textline"

    def __init__(self, handler: Any, connection: Any) -> None:
        Session.__init__(self, handler, connection)
        self.upstream = RequestFramer(self, UPSTREAM)
        self.downstream = ResponseFramer(self, DOWNSTREAM)

    def errorReply(self, request: Message | None, reason: str, code: int | None = None) -> bytes:
        return b"ERR " + oneLine(reason) + b"\r\n"

    def connectFailed(self, reason: str) -> bytes:
        return b"ERR backend unavailable: " + oneLine(reason) + b"\r\n"


class TextLine(ProtocolHandler):
    """
    One line per request, one line per response; errors are C{ERR <reason>}.
    """

    name = "textline"
    options = {}
    framesRequests = True
    sessionClass = TextLineSession
