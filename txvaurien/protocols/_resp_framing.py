"""
What the C{redis} and C{memcache} handlers share: framers that number
messages, pair responses with the requests the backend was really sent,
and give up on framing when a stream turns out to be invalid; their
session; and the text of the error replies they make up.

Giving up means passing the rest of that direction through as L{DATA}
messages, one per chunk, after one warning in the log: the bytes still
flow unchanged, behaviors simply stop seeing requests and responses there.
"""

from __future__ import annotations

from typing import Any

from txvaurien import logs
from txvaurien.frames import DATA, DOWNSTREAM, RESPONSE, Frame, Message
from txvaurien.protocols.base import PairingSession

_log = logs.logger("txvaurien.protocols")


def oneLine(reason: str) -> bytes:
    """
    C{reason} as the text of a one-line error reply: white space runs,
    line ends included, become single spaces.
    """
    return " ".join(reason.split()).encode("utf-8", "replace")


class PairingFramer:
    """
    A base for the framers of one direction.

    @ivar session: the session owning this framer.
    @ivar direction: C{"upstream"} or C{"downstream"}.
    @ivar count: the index the next message gets.
    @ivar offset: bytes fed so far, the current chunk included (for log
        messages).
    @ivar raw: whether framing was given up: every chunk is a L{DATA}
        message.
    @ivar rawNext: (upstream) whether to give up framing where the next
        request starts, because its response would not be framed.
    """

    protocolName = "?"

    def __init__(self, session: Any, direction: str) -> None:
        self.session = session
        self.direction = direction
        self.count = 0
        self.offset = 0
        self.raw = False
        self.rawNext = False

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

    def flushSent(self, frames: list[Frame]) -> None:
        """
        Complete every request still waiting for a response with an empty
        one.
        """
        sent = self.session.sent
        while sent:
            frames.append(self.emptyResponse(sent.popleft()))

    def unframed(self, data: bytes) -> list[Frame]:
        """
        The frames of C{data} once framing was given up: downstream, an
        empty response for each request still waiting (no framed response
        will come), then C{data} as one L{DATA} message.
        """
        frames: list[Frame] = []
        if self.direction == DOWNSTREAM:
            self.flushSent(frames)
        if data:
            frames.append(self.dataFrame(data))
        return frames

    def giveUp(self, offset: int, reason: str, rest: bytes) -> list[Frame]:
        """
        Stop framing this direction, and say so once in the log.  Once the
        responses are no longer framed, requests framed from now on would
        wait for responses that never come: the upstream framer gives up
        too, where its next request starts.

        @param offset: where in this direction's stream the input stopped
            making sense.
        @param rest: the bytes of the current chunk from there on.
        @return: the frames of C{rest} (L{unframed}).
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
        if self.direction == DOWNSTREAM:
            self.session.upstream.rawNext = True
        return self.unframed(rest)


class Session(PairingSession):
    """
    A session of two L{PairingFramer}s: it is passthrough once both gave
    up framing.
    """

    upstream: PairingFramer
    downstream: PairingFramer

    @property
    def passthrough(self) -> bool:
        return self.upstream.raw and self.downstream.raw
