"""
What the C{redis} and C{memcache} framers share: numbering messages,
pairing responses with the requests the backend was really sent, and
giving up on framing when a stream turns out to be invalid.

Giving up means passing the rest of that direction through as L{DATA}
messages, one per chunk, after one warning in the log: the bytes still
flow unchanged, behaviors simply stop seeing requests and responses there.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from txvaurien import logs
from txvaurien.frames import DATA, RESPONSE, Frame, Message

_log = logs.logger("txvaurien.protocols")


class PairingFramer:
    """
    A base for the framers of one direction.

    @ivar session: the session owning this framer.
    @ivar direction: C{"upstream"} or C{"downstream"}.
    @ivar count: the index the next message gets.
    @ivar offset: bytes fed before the current chunk (for log messages).
    @ivar raw: whether framing was given up: every chunk is a L{DATA}
        message.
    """

    protocolName = "?"

    def __init__(self, session: Any, direction: str) -> None:
        self.session = session
        self.direction = direction
        self.count = 0
        self.offset = 0
        self.raw = False

    def newMessage(
        self,
        kind: str,
        meta: dict[str, Any],
        request: Message | None = None,
        expectsResponse: bool = True,
    ) -> Message:
        """
        A new message of this direction, numbered in order.
        """
        index = self.count
        self.count = index + 1
        return Message(self.direction, index, kind, meta, request, expectsResponse)

    def dataFrame(self, data: bytes) -> Frame:
        """
        A whole L{DATA} message (after framing was given up).
        """
        return Frame(data, self.newMessage(DATA, {}))

    def emptyResponse(self, request: Message) -> Frame:
        """
        A response without bytes, which completes C{request}'s place in the
        output when the backend will not answer it (it ended, or framing
        was given up) or answered it without a word (memcache quiet mode).
        """
        command = request.meta.get("command")
        message = self.newMessage(RESPONSE, {"command": command, "empty": True}, request)
        return Frame(b"", message, True, True)

    def flushSent(self, sent: deque[Message], frames: list[Frame]) -> None:
        """
        Complete every request still waiting for a response with an empty
        one.
        """
        while sent:
            frames.append(self.emptyResponse(sent.popleft()))

    def giveUp(self, offset: int, reason: str) -> None:
        """
        Stop framing this direction, and say so once in the log.

        @param offset: where in this direction's stream the input stopped
            making sense.
        """
        self.raw = True
        connection = self.session.connection
        proxy = getattr(connection, "proxy", None)
        _log.warn(
            "{proxy} #{cid} invalid {protocol} {direction} at byte {offset} ({reason}); "
            "the rest of this direction passes through unframed",
            proxy=getattr(proxy, "name", "?"),
            cid=getattr(connection, "id", "?"),
            protocol=self.protocolName,
            direction=self.direction,
            offset=offset,
            reason=reason,
            event="unframed",
        )
