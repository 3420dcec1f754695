# -*- test-case-name: txvaurien.test.test_protocol_base,txvaurien.test.test_ownmethods -*-
"""
Base classes for protocol handlers, their sessions and their framers.

Every built-in handler, and any third-party one that wants it, builds on
three classes here:

  - L{ProtocolHandler}: the plugin; it declares C{name}, C{options},
    C{framesRequests} and its C{sessionClass};

  - L{Session}: one connection; it keeps the requests the backend was
    sent and has not answered (C{sent}), knows when framing stopped
    (C{raw}) and says what an error looks like (C{errorReply});

  - L{Framer}: one direction of one connection; it numbers messages,
    answers what is owed at the end of the stream (L{Framer.answerPending}),
    bounds what it holds (L{Framer.lineLimit}) and gives up on a stream
    that is not the protocol (L{Framer.giveUp}).  A subclass only says how
    to cut its bytes (C{feed}, C{finish}).

The contract these implement is written down in L{txvaurien.interfaces}
(L{IFramer}, L{IProtocolSession}) and in C{docs/extending.rst}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from txvaurien import logs
from txvaurien.frames import DATA, DOWNSTREAM, RESPONSE, UNANSWERED, UPSTREAM, Frame, Message
from txvaurien.interfaces import (
    IConnection,
    IFramer,
    IProtocolHandler,
    IProtocolSession,
)
from txvaurien.plugin import Configurable
from txvaurien.protocols._ownmethods import HotMethods


def oneLine(reason: str) -> bytes:
    """
    C{reason} as the text of a one-line error reply: white space runs,
    line ends included, become single spaces.
    """
    return " ".join(reason.split()).encode("utf-8", "replace")


@implementer(IPlugin, IProtocolHandler)
class ProtocolHandler(Configurable):
    """
    A base for protocol handlers: subclasses set C{name}, C{options},
    C{framesRequests} and C{sessionClass}.
    """

    framesRequests: ClassVar[bool] = False
    sessionClass: ClassVar[Any] = None

    def buildSession(self, connection: IConnection) -> IProtocolSession:
        return self.sessionClass(self, connection)


@implementer(IFramer)
class ChunkFramer:
    """
    Each chunk of bytes is one L{DATA} message.
    """

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.count = 0

    def feed(self, data: bytes) -> list[Frame]:
        message = Message(self.direction, self.count, DATA)
        self.count += 1
        return [Frame(data, message)]

    def finish(self) -> list[Frame]:
        return []


@implementer(IFramer)
class Framer(HotMethods):
    """
    The base of every framer of the built-in handlers: what they share
    whatever the shape of their protocol (lines, heads and bodies,
    length-prefixed units).

    A subclass implements C{feed} (L{IFramer}; the default C{finish} keeps
    the contract for a framer that holds only C{held}), and may list
    in C{hot} the methods every read runs: each subclass then gets its own
    copy of those it inherits (L{txvaurien.protocols._ownmethods.HotMethods}), so
    that the two framers of a connection, fed in turns, do not share the
    interpreter's attribute caches.  The lists of all bases add up.

    @cvar protocolName: the protocol's name, in log messages.
    @cvar lineLimit: the most bytes the framer holds while it waits for
        the end of a line, head or header it needs to decide what a
        message is.  A stream that goes past it is not the protocol: the
        framer gives up (L{giveUp}) and the rest passes unframed (or, where
        what is held is valid but long, such as a redis argument, it opens
        the message with what it knows).
    @cvar hot: names of methods each subclass gets its own copy of.

    @ivar session: the session owning this framer.
    @ivar direction: L{UPSTREAM} or L{DOWNSTREAM}.
    @ivar count: the index the next message gets.
    @ivar offset: bytes fed so far (for log messages).
    @ivar raw: whether this framer gave up: every chunk is one L{DATA}
        message.
    @ivar rawNext: (upstream) whether to give up framing where the next
        request starts, because its response would not be framed.
    @ivar message: the message being framed, or L{None} between messages.
    @ivar first: whether the next frame of C{message} is its first.
    @ivar held: bytes read but not yet framed (an incomplete line or
        head, at most L{lineLimit}); they come before the next bytes fed.
    @ivar invalid: why the stream stopped being the protocol, or L{None}.
    """

    protocolName: ClassVar[str] = "?"
    lineLimit: ClassVar[int] = 64 * 1024
    hot: ClassVar[tuple[str, ...]] = ("newMessage",)

    #: The logger of framing events.
    log: ClassVar[Logger] = logs.logger("txvaurien.protocols")

    direction: str = UPSTREAM

    def __init__(self, session: Any, direction: str | None = None) -> None:
        self.session = session
        if direction is not None:
            self.direction = direction
        self.count = 0
        self.offset = 0
        self.raw = False
        self.rawNext = False
        self.message: Message | None = None
        self.first = True
        self.held = b""
        self.invalid: str | None = None

    def newMessage(
        self,
        kind: str,
        meta: dict[str, Any],
        request: Message | None = None,
        expectsResponse: bool = True,
    ) -> Message:
        """
        The next message of this direction, numbered in order.
        """
        index = self.count
        self.count = index + 1
        return Message(self.direction, index, kind, meta, request, expectsResponse)

    def openMessage(
        self, kind: str, meta: dict[str, Any], request: Message | None = None,
        expectsResponse: bool = True,
    ) -> Message:
        """
        Open the next message of this direction: L{emit} frames it.
        """
        # L{newMessage}, inlined: this runs for every message.
        index = self.count
        self.count = index + 1
        message = self.message = Message(
            self.direction, index, kind, meta, request, expectsResponse)
        self.first = True
        return message

    def emit(self, frames: list[Frame], data: bytes, last: bool) -> None:
        """
        Frame C{data} as the next bytes of the open message, its last ones
        if C{last}.
        """
        message = self.message
        assert message is not None
        frames.append(Frame(data, message, self.first, last))
        self.first = False
        if last:
            self.message = None
            self.first = True

    def dataFrame(self, data: bytes) -> Frame:
        """
        A whole L{DATA} message (after framing was given up).
        """
        return Frame(data, self.newMessage(DATA, {}))

    def unansweredMeta(self, request: Message) -> dict[str, Any]:
        """
        The metadata of the empty response L{answerPending} gives
        C{request}: C{{UNANSWERED: True}}.
        """
        return {UNANSWERED: True}

    def answerPending(self, frames: list[Frame]) -> None:
        """
        No framed response will come (the stream ended, or framing was
        given up): every request still waiting in C{session.sent} gets an
        empty response, marked L{UNANSWERED}, so that what follows is not
        held behind it.  Only a downstream framer owes them.
        """
        if self.direction != DOWNSTREAM:
            return
        sent = self.session.sent
        while sent:
            request = sent.popleft()
            message = self.newMessage(RESPONSE, self.unansweredMeta(request), request)
            frames.append(Frame(b"", message, True, True))

    def unframed(self, data: bytes) -> list[Frame]:
        """
        The frames of C{data} once framing was given up: what is owed
        (L{answerPending}), then C{data} as one L{DATA} message.
        """
        frames: list[Frame] = []
        self.answerPending(frames)
        if data:
            frames.append(self.dataFrame(data))
        return frames

    def tooLong(self, held: int) -> bool:
        """
        Whether holding C{held} bytes for one line, head or header goes
        past L{lineLimit}.
        """
        return held > self.lineLimit

    def logInvalid(self, why: str) -> None:
        """
        Say, once, that the stream stopped being the protocol (a warning,
        event C{invalid}), for framers that go on framing what they still
        can (the message in progress) rather than L{giveUp} at once.
        """
        if self.invalid is not None:
            return
        self.invalid = why
        connection = self.session.connection
        self.log.warn(
            "{proxy} #{cid} invalid {protocol} from the {side}: {why}; "
            "the rest of the {direction} stream passes unframed",
            proxy=connection.proxy.name,
            cid=connection.id,
            protocol=self.protocolName,
            side="client" if self.direction == UPSTREAM else "backend",
            why=why,
            direction=self.direction,
            event="invalid",
        )

    def logGiveUp(self, offset: int, reason: str) -> None:
        """
        Say, once per direction, that the stream stopped being the
        protocol (a warning, event C{unframed}).
        """
        connection = self.session.connection
        proxy = getattr(connection, "proxy", None)
        self.log.warn(
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

    def giveUp(self, offset: int, reason: str, rest: bytes) -> list[Frame]:
        """
        Stop framing this direction, and say so once in the log.  Once the
        responses are no longer framed, requests framed from now on would
        wait for responses that never come: the upstream framer gives up
        too, where its next request starts (its C{rawNext}).

        @param offset: where in this direction's stream the input stopped
            making sense.
        @param rest: the bytes of the current chunk from there on.
        @return: the frames of C{rest} (L{unframed}).
        """
        self.raw = True
        self.logGiveUp(offset, reason)
        if self.direction == DOWNSTREAM:
            self.session.upstream.rawNext = True
        return self.unframed(rest)

    @property
    def quiet(self) -> bool:
        """
        Whether this framer would frame every byte fed as it comes, holding
        nothing and owing nothing: then the proxy need not feed it.
        """
        return self.raw

    def feed(self, data: bytes) -> list[Frame]:
        """
        Cut the next bytes of this direction into frames (L{IFramer.feed}):
        what a subclass implements.
        """
        raise NotImplementedError()

    def stop(self) -> None:
        """
        (Upstream) the session left the protocol (L{Session.switch}): frame
        no request after the current one.
        """
        self.rawNext = True

    def finish(self) -> list[Frame]:
        """
        The stream ended (L{IFramer.finish}): what is held is framed, the
        open message ends, and every request still waiting for a response
        gets an empty one (L{answerPending}).
        """
        frames: list[Frame] = []
        held, self.held = self.held, b""
        if self.message is not None:
            self.emit(frames, held, True)
        elif held:
            frames.append(self.dataFrame(held))
        self.answerPending(frames)
        return frames


#: The state of a L{SwitchingFramer} that frames each chunk read as one
#: L{DATA} message, as it comes (the connection left the protocol).
UNFRAMED = 101


class SwitchingFramer(Framer):
    """
    A framer of a protocol the connection may leave as expected (HTTP's
    upgrades and C{CONNECT}, SMTP's C{STARTTLS}; L{Session.switch}), with
    a C{state} that is L{UNFRAMED} once the client's framer frames every
    chunk as it comes.
    """

    state: int

    @property
    def quiet(self) -> bool:
        """
        Whether the proxy may skip this framer: once the connection left
        the protocol, the client's framer once it is L{UNFRAMED} and holds
        nothing, the backend's at once (what it still frames runs until
        the end of the stream, and no byte depends on it).
        """
        if self.direction == DOWNSTREAM:
            return bool(self.session.raw)
        return bool(self.session.raw) and self.state == UNFRAMED and not self.held


@implementer(IProtocolSession)
class Session:
    """
    The base of every session of the built-in handlers
    (L{txvaurien.interfaces.IProtocolSession}): its downstream framer
    pairs each response with the oldest request the backend was sent and
    has not answered.

    Requests a fault swallowed never reach the backend, and requests that
    get no response (C{expectsResponse} false) are never answered: neither
    waits in C{sent}.

    A subclass builds its two framers (C{upstream}, C{downstream}) and
    says what its errors look like (C{errorReply}, C{connectFailed}).

    @cvar protocolName: the protocol's name, in log messages.
    @ivar handler: the protocol handler, whose C{settings} the session
        reads.
    @ivar connection: the L{IConnection}.
    @ivar sent: the requests written to the backend that still wait for
        their response, oldest first.
    @ivar raw: whether the connection left the protocol (L{stopFraming}).
    """

    serverSpeaksFirst = False
    protocolName: ClassVar[str] = "?"
    log: ClassVar[Logger] = logs.logger("txvaurien.protocols")

    upstream: Any
    downstream: Any

    def __init__(self, handler: Any, connection: IConnection) -> None:
        self.handler = handler
        self.connection = connection
        self.sent: deque[Message] = deque()
        self.raw = False

    def requestSent(self, request: Message) -> None:
        if request.expectsResponse:
            self.sent.append(request)

    def errorReply(self, request: Message | None, reason: str, code: int | None = None) -> bytes:
        """
        Bytes the client will parse as a protocol error answering
        C{request} (L{IProtocolSession.errorReply}): what a subclass
        implements.
        """
        raise NotImplementedError()

    def connectFailed(self, reason: str) -> bytes:
        """
        Nothing to send the client when the backend cannot be reached; a
        subclass may send an error the client understands.
        """
        return b""

    @property
    def passthrough(self) -> bool:
        """
        C{True} once the session stopped framing (C{raw}) and both framers
        are quiet (L{Framer.quiet}).  The proxy asks after every read: the
        flag is checked first.
        """
        return self.raw and self.upstream.quiet and self.downstream.quiet

    @property
    def switched(self) -> bool:
        """
        Whether the connection left the protocol (the same as C{raw}).
        """
        return self.raw

    def switch(self) -> None:
        """
        The connection leaves the protocol as expected (an upgrade,
        C{CONNECT}, C{STARTTLS}): the client's framer frames no request
        after the current one (its C{stop}), and the session is raw.
        """
        if self.raw:
            return
        self.raw = True
        self.upstream.stop()
        self.log.debug(
            "{proxy} #{cid} leaves {protocol}; the rest passes through",
            proxy=self.connection.proxy.name,
            cid=self.connection.id,
            protocol=self.protocolName,
        )

    def stopFraming(self, why: str, warn: bool = True) -> None:
        """
        Pass the rest of the connection through unframed.

        @param why: what happened, for the log.
        @param warn: whether it is a problem (bad input: a warning, event
            C{passthrough}) rather than an expected switch (TLS, an
            upgrade: a debug event C{unframed}).
        """
        if self.raw:
            return
        self.raw = True
        connection = self.connection
        proxy = getattr(connection, "proxy", None)
        fields = dict(
            proxy=getattr(proxy, "name", "?"),
            cid=getattr(connection, "id", "?"),
            protocol=self.protocolName,
            why=why,
        )
        if warn:
            self.log.warn(
                "{proxy} #{cid} {protocol}: {why}; passing the rest of the "
                "connection through unframed", event="passthrough", **fields)
        else:
            self.log.debug("{proxy} #{cid} {protocol}: {why}; passthrough from now on",
                           event="unframed", **fields)


__all__ = ["ChunkFramer", "Framer", "ProtocolHandler", "Session", "oneLine"]
