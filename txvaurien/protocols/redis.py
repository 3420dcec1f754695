# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
The C{redis} protocol handler: RESP2 and RESP3, requests and replies.

Upstream, a frame is (part of) one command, multi-bulk or inline; its
metadata is the command name in upper case.  Downstream, a frame is (part
of) the reply to one command, paired in order with the commands the
backend was really sent, or of a push the server sent on its own (pub/sub
messages, client-side caching invalidations, C{MONITOR} lines).
"""

from __future__ import annotations

import re
from typing import Any

from zope.interface import implementer

from txvaurien.frames import REQUEST, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection, IFramer, IProtocolSession
from txvaurien.options import OptionType
from txvaurien.protocols._resp import (
    INLINE_LIMIT,
    SPLIT_LIMIT,
    ProtocolError,
    RequestScanner,
    fastCommand,
    splitCommands,
)
from txvaurien.protocols._redisreplies import (
    _REPLICATION,
    _UNUSUAL,
    PUBSUB_COMMANDS,
    PUBSUB_KINDS,
    ReplyFramer,
)
from txvaurien.protocols.base import Framer, ProtocolHandler, Session, oneLine

__all__ = ["PUBSUB_COMMANDS", "PUBSUB_KINDS", "ErrorCode", "Redis", "RedisSession",
           "ReplyFramer", "RequestFramer"]

_commandNames: dict[bytes, str] = {}


def _commandName(raw: bytes | None) -> str:
    """
    The upper-case text of a command name, cached: clients repeat a few
    names over and over.
    """
    if raw is None:
        return ""
    name = _commandNames.get(raw)
    if name is None:
        name = raw.decode("ascii", "replace").upper()
        if len(_commandNames) < 4096:
            _commandNames[raw] = name
    return name


@implementer(IFramer)
class RequestFramer(Framer):
    """
    Cuts a client's stream into commands.

    The first frame of a command waits until its name is known (and for
    C{CLIENT}, its first two arguments), a few dozen bytes at most; the
    rest of the command, however big its arguments, follows as it arrives.
    """

    protocolName = "RESP"
    lineLimit = INLINE_LIMIT

    def __init__(self, session: "RedisSession") -> None:
        Framer.__init__(self, session, UPSTREAM)
        self.scanner = RequestScanner()
        self.current: Message | None = None
        self.held = b""
        self.replyOff = False
        self.skipNext = False

    def _decidable(self) -> bool:
        """
        Whether enough of the command was scanned to open its message: its
        name and, for C{CLIENT}, the next two arguments, or an argument
        too long to capture (then it is no C{CLIENT REPLY}).
        """
        request = self.scanner.request
        argc = request.argc
        if argc is None or request.inline:
            return False
        args = request.args
        return len(args) >= min(argc, self.scanner.want) or None in args

    def _start(self) -> Message:
        """
        The message for the command being scanned, from what is known of
        it.
        """
        request = self.scanner.request
        args = request.args
        argc = request.argc
        if argc == 0:
            return self.newMessage(REQUEST, {"command": ""}, None, False)
        command = _commandName(args[0]) if args else ""
        meta: dict[str, Any] = {"command": command}
        expects = True
        if self.replyOff:
            expects = False
        elif self.skipNext:
            expects = False
            self.skipNext = False
        if command == "CLIENT" and len(args) >= 3 and _commandName(args[1]) == "REPLY":
            mode = _commandName(args[2])
            if mode == "ON":
                self.replyOff = False
                expects = True
            elif mode == "OFF":
                self.replyOff = True
                expects = False
            elif mode == "SKIP":
                self.skipNext = True
                expects = False
        elif command in PUBSUB_COMMANDS:
            meta["channels"] = (argc or 1) - 1
        return self.newMessage(REQUEST, meta, None, expects)

    def _ended(self, message: Message) -> None:
        if message.meta["command"] in _REPLICATION:
            # The replica's acknowledgements that follow get no reply.
            self.rawNext = True

    def feed(self, data: bytes) -> list[Frame]:
        n = len(data)
        self.offset += n
        if self.raw:
            return self.unframed(data)
        frames: list[Frame] = []
        pos = 0
        while pos < n:
            if (
                data[pos] == 42
                and self.current is None
                and not (self.held or self.rawNext or self.replyOff or self.skipNext)
            ):
                pos = self._fast(data, pos, frames)
                if pos >= n:
                    break
            pos = self._general(data, pos, frames)
        return frames

    def _fast(self, data: bytes, pos: int, frames: list[Frame]) -> int:
        """
        Frame the whole multi-bulk commands at C{data[pos:]} that need no
        special care, the common case, quickly.

        @return: where the general scanner takes over.
        """
        n = len(data)
        commands: list[tuple[int, int, bytes]]
        if not pos and n <= SPLIT_LIMIT:
            commands = splitCommands(data)
        else:
            commands = []
            p = pos
            while p < n and data[p] == 42:
                fast = fastCommand(data, p)
                if fast is None:
                    break
                commands.append(fast)
                p = fast[0]
        count = self.count
        append = frames.append
        names = _commandNames
        for end, argc, name in commands:
            command = names.get(name) or _commandName(name)
            if command in _UNUSUAL:
                break
            meta: dict[str, Any] = {"command": command}
            if command in PUBSUB_COMMANDS:
                meta["channels"] = argc - 1
            append(Frame(data if end == n and not pos else data[pos:end],
                         Message(UPSTREAM, count, REQUEST, meta)))
            count += 1
            pos = end
        self.count = count
        return pos

    def _general(self, data: bytes, pos: int, frames: list[Frame]) -> int:
        """
        Scan one command, or as much of it as C{data[pos:]} holds.

        @return: where the next command starts, or C{len(data)}.
        """
        n = len(data)
        current = self.current
        if current is None and not self.held and self.rawNext:
            self.raw = True
            frames.append(self.dataFrame(data[pos:]))
            return n
        start = pos
        try:
            end = self.scanner.scan(data, pos)
        except ProtocolError as e:
            self._invalid(data, start, e, frames)
            return n
        stop = n if end < 0 else end
        if current is None:
            if end < 0 and not self._decidable() and not self.tooLong(
                    len(self.held) + n - start):
                self.held += data[start:]
                return n
            current = self._start()
            chunk = self.held + data[start:stop] if self.held else data[start:stop]
            self.held = b""
            first = True
        else:
            chunk = data[start:stop]
            first = False
        if end < 0:
            self.current = current
            frames.append(Frame(chunk, current, first, False))
            return n
        self.current = None
        frames.append(Frame(chunk, current, first, True))
        self._ended(current)
        return end

    def _invalid(self, data: bytes, start: int, error: ProtocolError, frames: list[Frame]) -> None:
        at = error.offset
        current = self.current
        if current is not None:
            frames.append(Frame(data[start:at], current, False, True))
        elif self.held or at > start:
            frames.append(Frame(self.held + data[start:at], self._start(), True, True))
        self.current = None
        self.held = b""
        frames.extend(self.giveUp(self.offset - len(data) + at, error.reason, data[at:]))

    def finish(self) -> list[Frame]:
        if self.raw:
            return []
        if self.current is not None:
            current, self.current = self.current, None
            return [Frame(b"", current, False, True)]
        if self.held:
            held, self.held = self.held, b""
            return [Frame(held, self._start(), True, True)]
        return []


@implementer(IProtocolSession)
class RedisSession(Session):
    """
    One connection's RESP framing (L{IProtocolSession}): C{sent} holds the
    commands written to the backend that still wait for their reply.
    """

    handler: "Redis"

    def __init__(self, handler: "Redis", connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.upstream = RequestFramer(self)
        self.downstream = ReplyFramer(self)

    @property
    def passthrough(self) -> bool:
        """
        C{True} once both framers gave up framing (each on its own, see
        L{txvaurien.protocols.base.Framer.giveUp}).
        """
        return self.upstream.raw and self.downstream.raw

    def errorReply(
        self, request: Message | None, reason: str, code: int | None = None
    ) -> bytes:
        """
        A RESP error, C{-ERR <reason>} (the first word is the C{error_prefix}
        option).
        """
        if request is not None and not request.expectsResponse:
            return b""
        prefix = self.handler.settings["error_prefix"].encode("ascii")
        return b"-" + prefix + b" " + oneLine(reason) + b"\r\n"

    def connectFailed(self, reason: str) -> bytes:
        prefix = self.handler.settings["error_prefix"].encode("ascii")
        return b"-" + prefix + b" backend unavailable: " + oneLine(reason) + b"\r\n"


class ErrorCode(OptionType):
    """
    The first word of a RESP error: capitals, digits, C{_} or C{-}
    (C{ERR}, C{BUSY}, C{NOSCRIPT}).
    """

    name = "upper-case word"
    _word = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")

    def parse(self, text: str) -> str:
        word = text.strip()
        if not self._word.fullmatch(word):
            raise ValueError(
                "expected an upper-case word such as ERR or BUSY, got {!r}".format(text))
        return word


class Redis(ProtocolHandler):
    """
    Redis (RESP2 and RESP3): a frame is a command or part of one, a reply
    to a command or part of one, or a push.  Errors are RESP errors
    (C{-ERR ...}) that client libraries raise as their own error type.

    Replies are paired with commands through pipelining, pub/sub,
    MULTI/EXEC, C{HELLO 3}, C{CLIENT REPLY} and C{MONITOR}; the metadata
    of a command is its name in upper case (C{command}).

    Example::

        twistd -n vaurien --proxy 127.0.0.1:6380 --backend 127.0.0.1:6379 \\
            --protocol redis --behavior 10:error --seed 42
    """

    name = "redis"
    options = {
        "error_prefix": (
            "First word of the error replies the proxy makes up "
            "(ERR, BUSY, LOADING, READONLY, ...)",
            ErrorCode(),
            "ERR",
        ),
    }
    framesRequests = True
    sessionClass = RedisSession
