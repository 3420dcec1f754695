"""
Frames and messages: the units protocol handlers cut streams into and
behaviors act on.
"""

from __future__ import annotations

from typing import Any

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"
BOTH = "both"
DIRECTIONS = (UPSTREAM, DOWNSTREAM, BOTH)

REQUEST = "request"
RESPONSE = "response"
DATA = "data"
PUSH = "push"
GREETING = "greeting"

#: A key of L{Message.meta}: on a request (set by a session's
#: C{errorReply}) or on a response, the reason to close the connection
#: once that response has been written to the client.
CLOSE_AFTER = "closeAfter"

#: A key of L{Message.meta}, on an empty L{RESPONSE} a framer made up for
#: a request the backend never answered: the stream ended, or framing was
#: given up, while the request still waited (see
#: L{txvaurien.interfaces.IFramer.finish}).  Every handler uses this one
#: key.
UNANSWERED = "unanswered"


class Message:
    """
    One protocol unit of one direction: a request, its response, a push or
    greeting from the server, or (C{tcp}) a chunk of data.

    @ivar direction: L{UPSTREAM} or L{DOWNSTREAM}.
    @ivar index: the message's position in its direction, from 0.
    @ivar kind: L{REQUEST}, L{RESPONSE}, L{DATA}, L{PUSH} or L{GREETING}.
    @ivar meta: protocol metadata for matching and logs (C{"command"},
        C{"method"}, C{"path"}, ...).
    @ivar request: for a L{RESPONSE}, the request L{Message} it answers.
    @ivar expectsResponse: for a L{REQUEST}, whether the server answers it
        (memcache C{noreply} does not).
    @ivar exchange: the proxy's bookkeeping for a request's exchange
        (chosen behaviors, stages); protocol handlers leave it alone.
    @ivar time: for a request, when the proxy saw its first bytes
        (reactor seconds), for latency measurements.
    """

    __slots__ = (
        "direction",
        "index",
        "kind",
        "meta",
        "request",
        "expectsResponse",
        "exchange",
        "time",
    )

    def __init__(
        self,
        direction: str,
        index: int,
        kind: str,
        meta: dict[str, Any] | None = None,
        request: Message | None = None,
        expectsResponse: bool = True,
    ) -> None:
        self.direction = direction
        self.index = index
        self.kind = kind
        self.meta = meta if meta is not None else {}
        self.request = request
        self.expectsResponse = expectsResponse
        self.exchange: Any = None
        self.time = 0.0

    def __repr__(self) -> str:
        return "<Message {} {} #{} {!r}>".format(
            self.direction, self.kind, self.index, self.meta
        )


class Frame:
    """
    Some bytes of one message.

    @ivar data: the bytes.
    @ivar message: the L{Message} they belong to.
    @ivar first: C{True} on the message's first frame.
    @ivar last: C{True} on the message's last frame.
    """

    __slots__ = ("data", "message", "first", "last")

    def __init__(
        self, data: bytes, message: Message, first: bool = True, last: bool = True
    ) -> None:
        self.data = data
        self.message = message
        self.first = first
        self.last = last

    def __repr__(self) -> str:
        return "<Frame {!r} first={} last={} of {!r}>".format(
            self.data[:40], self.first, self.last, self.message
        )
