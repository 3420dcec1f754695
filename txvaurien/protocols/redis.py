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

from txvaurien.frames import UNANSWERED, DOWNSTREAM, PUSH, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection, IFramer, IProtocolSession
from txvaurien.options import OptionType
from txvaurien.protocols._resp import CAPTURE, INLINE_LIMIT, ProtocolError, ReplyScanner, RequestScanner
from txvaurien.protocols.base import Framer, ProtocolHandler, Session, oneLine

#: Commands answered by one reply per channel (or one per subscription,
#: for the unsubscribing ones given no channel).
PUBSUB_COMMANDS = {
    "SUBSCRIBE": b"subscribe",
    "PSUBSCRIBE": b"psubscribe",
    "SSUBSCRIBE": b"ssubscribe",
    "UNSUBSCRIBE": b"unsubscribe",
    "PUNSUBSCRIBE": b"punsubscribe",
    "SUNSUBSCRIBE": b"sunsubscribe",
}

#: The first element of the arrays a RESP2 server sends in subscribed
#: mode.
PUBSUB_KINDS = frozenset(PUBSUB_COMMANDS.values()) | {b"message", b"pmessage", b"smessage"}

#: After these commands the server streams replication data.
_REPLICATION = frozenset(["SYNC", "PSYNC"])

#: Commands the upstream fast path leaves to the general one.
_UNUSUAL = _REPLICATION | frozenset(["CLIENT"])

#: Commands whose reply changes how the next ones are framed.
_STATEFUL = frozenset(["HELLO", "RESET", "MONITOR"]) | _REPLICATION | frozenset(PUBSUB_COMMANDS)

_GT = ord(">")
_STAR = ord("*")
_PERCENT = ord("%")
_PLUS = ord("+")
_MINUS = ord("-")
_DIGITS = frozenset(b"0123456789")

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


def _fastCommand(data: bytes, pos: int) -> tuple[int, int, bytes] | None:
    """
    Scan a whole multi-bulk command starting at C{data[pos]} (a C{*}) in
    one go, the common case of a command that arrived in one piece.

    @return: the offset after it, its number of arguments and its first
        argument; or L{None} if it is incomplete or anything is unusual,
        for the general scanner to deal with.
    """
    find = data.find
    nl = find(b"\r\n", pos)
    count = data[pos + 1 : nl]
    if nl < 0 or nl - pos > 21 or not count.isdigit():
        return None
    argc = int(count)
    if not argc:
        return None
    p = nl + 2
    name = None
    for _ in range(argc):
        nl = find(b"\r\n", p)
        size = data[p + 1 : nl]
        if nl < 0 or data[p] != 36 or nl - p > 21 or not size.isdigit():
            return None
        start = nl + 2
        p = start + int(size)
        if data[p : p + 2] != b"\r\n":
            return None
        p += 2
        if name is None:
            if p - start > CAPTURE + 2:
                return None
            name = data[start : p - 2]
    assert name is not None
    return p, argc, name


#: The length line of each short bulk string, by its length.
_BULK_LINES = tuple(b"$%d" % size for size in range(1024))

#: Reads this long at most are split into lines in one go by the fast path.
_SPLIT_LIMIT = 64 * 1024


def _splitCommands(data: bytes) -> list[tuple[int, int, bytes]]:
    """
    Scan the whole multi-bulk commands at the start of C{data}, splitting
    it at every CRLF in one go: a bulk string holding a CRLF is cut there,
    its length no longer matches its length line, and the scan stops
    before it, as it does before anything unusual or incomplete.

    @return: for each command, the offset after it, its number of
        arguments and its first argument.
    """
    parts = data.split(b"\r\n")
    # The last part is not followed by a CRLF: it cannot end a command.
    last = len(parts) - 1
    lines = _BULK_LINES
    most = len(lines)
    commands: list[tuple[int, int, bytes]] = []
    end = i = 0
    while i < last:
        head = parts[i]
        count = head[1:]
        if head[:1] != b"*" or len(count) > 19 or not count.isdigit():
            return commands
        argc = int(count)
        stop = i + 1 + 2 * argc
        if not argc or stop > last:
            return commands
        name = parts[i + 2]
        if len(name) > CAPTURE:
            return commands
        end += len(head) + 2
        # Each argument's length line must say its length.
        for j in range(i + 1, stop, 2):
            line = parts[j]
            size = len(parts[j + 1])
            if line != (lines[size] if size < most else b"$%d" % size):
                return commands
            end += len(line) + size + 4
        commands.append((end, argc, name))
        i = stop
    return commands


def _fastScalar(data: bytes, pos: int) -> int:
    """
    The offset after the simple string, error, integer or bulk string at
    C{data[pos]}, or C{-1} if it is anything else or incomplete.
    """
    t = data[pos : pos + 1]
    if t == b"$":
        nl = data.find(b"\r\n", pos)
        size = data[pos + 1 : nl]
        if nl < 0 or nl - pos > 21:
            return -1
        if size.isdigit():
            end = nl + 2 + int(size)
            if data[end : end + 2] != b"\r\n":
                return -1
            return end + 2
        return nl + 2 if size == b"-1" else -1
    if t == b"+" or t == b":" or t == b"-":
        nl = data.find(b"\n", pos)
        return -1 if nl < 0 else nl + 1
    return -1


def _fastReply(data: bytes, pos: int, arrays: bool) -> int:
    """
    The offset after the whole reply at C{data[pos]}, if it is a scalar
    (L{_fastScalar}) or, when C{arrays} is true, an array of scalars;
    C{-1} for anything else, for the general scanner to deal with.
    """
    t = data[pos]
    if t == 43 or t == 58:
        # A simple string or an integer.
        nl = data.find(b"\n", pos)
        return -1 if nl < 0 else nl + 1
    if t != 42:
        return _fastScalar(data, pos)
    if not arrays:
        return -1
    nl = data.find(b"\r\n", pos)
    if nl < 0 or nl - pos > 21:
        return -1
    count = data[pos + 1 : nl]
    if not count.isdigit():
        return -1 if count != b"-1" else nl + 2
    p = nl + 2
    for _ in range(int(count)):
        p = _fastScalar(data, p)
        if p < 0:
            return -1
    return p


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
        if not pos and n <= _SPLIT_LIMIT:
            commands = _splitCommands(data)
        else:
            commands = []
            p = pos
            while p < n and data[p] == 42:
                fast = _fastCommand(data, p)
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


class _Subscription:
    """
    A reply to a (un)subscribe command in progress: one reply per channel.
    """

    __slots__ = ("message", "kind", "remaining")

    def __init__(self, message: Message, kind: bytes, remaining: int) -> None:
        self.message = message
        self.kind = kind
        self.remaining = remaining


@implementer(IFramer)
class ReplyFramer(Framer):
    """
    Cuts a server's stream into replies and pushes.

    It follows the connection's state as the replies show it: the protocol
    version (C{HELLO}), the number of subscriptions (in RESP2 a subscribed
    connection receives messages as plain arrays), C{MONITOR}, C{RESET},
    and replication (C{SYNC}, C{PSYNC}: the rest of the stream is one
    response).
    """

    protocolName = "RESP"
    lineLimit = INLINE_LIMIT

    def __init__(self, session: "RedisSession") -> None:
        Framer.__init__(self, session, DOWNSTREAM)
        self.sent = session.sent
        self.scanner = ReplyScanner()
        self.current: Message | None = None
        self.currentFirst = False
        self.held = b""
        self.protocol = 2
        self.channels = 0
        self.patterns = 0
        self.shardChannels = 0
        self.monitoring = False
        self.subscription: _Subscription | None = None
        self.absorb: Message | None = None

    @property
    def subscribed(self) -> bool:
        """
        Whether the connection has any subscription (RESP2 subscribed mode).
        """
        return bool(self.channels or self.patterns or self.shardChannels)

    def unansweredMeta(self, request: Message) -> dict[str, Any]:
        """
        L{UNANSWERED}, the command, and C{empty} (the key this handler
        used before).
        """
        return {"command": request.meta.get("command"), "empty": True, UNANSWERED: True}

    def _expectedKind(self) -> bytes | None:
        """
        The kind of confirmation the oldest unanswered command would get,
        if it is a (un)subscribe command.
        """
        if self.subscription is not None:
            return self.subscription.kind
        if self.sent:
            return PUBSUB_COMMANDS.get(self.sent[0].meta.get("command"))  # type: ignore[arg-type]
        return None

    def _classify(self, complete: bool, force: bool = False) -> tuple[Message, bool] | None:
        """
        Decide which message the reply being scanned belongs to.

        @param complete: whether the reply was scanned to its end.
        @param force: decide even if not enough of it was seen.
        @return: the message and whether this is its first frame, or
            L{None} to wait for more bytes.
        """
        scanner = self.scanner
        # A reply led by an attribute is taken as it starts, so that the
        # decision does not depend on how much of it arrived.
        rtype = None if scanner.prefixed else scanner.rtype
        kind: bytes | None = None
        confirmation = False
        if rtype == _GT or (
            rtype == _STAR
            and self.protocol == 2
            and (self.subscribed or self._expectedKind() is not None)
        ):
            elements = scanner.elements
            if not elements:
                if not (complete or force):
                    return None
            else:
                first = elements[0]
                kind = first.lower() if first is not None else None
            expected = self._expectedKind()
            if kind is not None and kind == expected:
                confirmation = True
            elif rtype == _GT or (self.subscribed and kind in PUBSUB_KINDS):
                return self.newMessage(PUSH, {"push": _text(kind)}), True
        elif self.monitoring and rtype == _PLUS:
            head1 = scanner.head1
            if head1 is None and not (complete or force):
                return None
            if head1 in _DIGITS:
                return self.newMessage(PUSH, {"push": "monitor"}), True
        subscription = self.subscription
        if subscription is not None:
            if confirmation:
                return subscription.message, False
            # Not a confirmation: the subscription reply is over.
            self.subscription = None
            self._pendingEnd = subscription.message
        if not self.sent:
            return self.newMessage(PUSH, {"push": _text(kind), "unsolicited": True}), True
        request = self.sent.popleft()
        command = request.meta["command"]
        message = self.newMessage(RESPONSE, {"command": command}, request)
        if confirmation:
            assert kind is not None
            count = request.meta.get("channels") or 0
            if not count:
                # Unsubscribing from everything: one reply per subscription.
                if kind == b"unsubscribe":
                    count = self.channels
                elif kind == b"punsubscribe":
                    count = self.patterns
                elif kind == b"sunsubscribe":
                    count = self.shardChannels
                count = max(1, count)
            self.subscription = _Subscription(message, kind, count)
        elif command in _REPLICATION and rtype != _MINUS and rtype is not None:
            self.absorb = message
        return message, True

    def _confirmed(self, kind: bytes | None) -> None:
        """
        Update the subscription counts from a (un)subscribe confirmation.
        """
        elements = self.scanner.elements
        if kind is None or len(elements) < 3 or elements[2] is None:
            return
        try:
            total = int(elements[2])
        except ValueError:
            return
        if kind in (b"subscribe", b"unsubscribe"):
            self.channels = max(0, total - self.patterns)
        elif kind in (b"psubscribe", b"punsubscribe"):
            self.patterns = max(0, total - self.channels)
        elif kind in (b"ssubscribe", b"sunsubscribe"):
            self.shardChannels = max(0, total)

    def _replyEnded(self, message: Message) -> bool:
        """
        A whole reply of C{message} was scanned: follow the connection's
        state.

        @return: whether C{message} ends with it.
        """
        scanner = self.scanner
        if message.kind == PUSH:
            push = message.meta.get("push")
            if push is not None and push.encode("ascii") in PUBSUB_COMMANDS.values():
                self._confirmed(push.encode("ascii"))
            return True
        subscription = self.subscription
        if subscription is not None and subscription.message is message:
            self._confirmed(subscription.kind)
            subscription.remaining -= 1
            if subscription.remaining > 0:
                return False
            self.subscription = None
            return True
        command = message.meta.get("command")
        rtype = scanner.rtype
        if command == "HELLO":
            if rtype == _PERCENT:
                self.protocol = 3
            elif rtype == _STAR:
                self.protocol = 2
        elif command == "RESET" and rtype == _PLUS:
            self.protocol = 2
            self.channels = self.patterns = self.shardChannels = 0
            self.monitoring = False
        elif command == "MONITOR" and rtype == _PLUS:
            self.monitoring = True
        return True

    def feed(self, data: bytes) -> list[Frame]:
        n = len(data)
        self.offset += n
        if self.raw:
            return self.unframed(data)
        if self.absorb is not None:
            return [Frame(data, self.absorb, False, False)]
        frames: list[Frame] = []
        pos = 0
        while pos < n:
            if (
                self.current is None
                and self.sent
                and not self.held
                and self.subscription is None
                and not self.monitoring
            ):
                pos = self._fast(data, pos, frames)
                if pos >= n:
                    break
            pos = self._general(data, pos, frames)
        return frames

    def _fast(self, data: bytes, pos: int, frames: list[Frame]) -> int:
        """
        Frame the whole replies at C{data[pos:]} that answer commands
        needing no special care with scalars or flat arrays, the common
        case, quickly.

        @return: where the general scanner takes over.
        """
        n = len(data)
        sent = self.sent
        count = self.count
        append = frames.append
        arrays = self.protocol == 3 or not self.subscribed
        while pos < n and sent:
            request = sent[0]
            command = request.meta["command"]
            if command in _STATEFUL:
                break
            end = _fastReply(data, pos, arrays)
            if end < 0:
                break
            sent.popleft()
            append(Frame(data if end == n and not pos else data[pos:end],
                         Message(DOWNSTREAM, count, RESPONSE, {"command": command}, request)))
            count += 1
            pos = end
        self.count = count
        return pos

    def _general(self, data: bytes, pos: int, frames: list[Frame]) -> int:
        """
        Scan one reply, or as much of it as C{data[pos:]} holds.

        @return: where the next reply starts, or C{len(data)}.
        """
        n = len(data)
        scanner = self.scanner
        start = pos
        try:
            end = scanner.scan(data, pos)
        except ProtocolError as e:
            self._invalid(data, start, e, frames)
            return n
        stop = n if end < 0 else end
        current = self.current
        if current is None:
            self._pendingEnd = None
            decision = self._classify(end >= 0)
            if decision is None:
                self.held += data[start:]
                return n
            if self._pendingEnd is not None:
                frames.append(Frame(b"", self._pendingEnd, False, True))
            current, first = decision
            if self.absorb is not None:
                frames.append(Frame(self.held + data[start:], current, True, False))
                self.held = b""
                return n
            chunk = self.held + data[start:stop] if self.held else data[start:stop]
            self.held = b""
        else:
            first = self.currentFirst
            chunk = data[start:stop]
        if end < 0:
            self.current = current
            self.currentFirst = False
            frames.append(Frame(chunk, current, first, False))
            return n
        self.current = None
        frames.append(Frame(chunk, current, first, self._replyEnded(current)))
        scanner.begin()
        return end

    def _invalid(self, data: bytes, start: int, error: ProtocolError, frames: list[Frame]) -> None:
        at = error.offset
        current = self.current
        if current is not None:
            frames.append(Frame(data[start:at], current, self.currentFirst, True))
        elif self.held or at > start:
            self._pendingEnd = None
            message, first = self._classify(False, True)  # type: ignore[misc]
            if self._pendingEnd is not None:
                frames.append(Frame(b"", self._pendingEnd, False, True))
            frames.append(Frame(self.held + data[start:at], message, first, True))
            current = message
        subscription = self.subscription
        if subscription is not None and subscription.message is not current:
            frames.append(Frame(b"", subscription.message, False, True))
        self.subscription = None
        self.current = None
        self.held = b""
        self.absorb = None
        frames.extend(self.giveUp(self.offset - len(data) + at, error.reason, data[at:]))

    def finish(self) -> list[Frame]:
        frames: list[Frame] = []
        if self.absorb is not None:
            absorb, self.absorb = self.absorb, None
            frames.append(Frame(b"", absorb, False, True))
        elif self.current is not None:
            current, self.current = self.current, None
            if self.subscription is not None and self.subscription.message is current:
                self.subscription = None
            frames.append(Frame(b"", current, self.currentFirst, True))
        elif self.held:
            self._pendingEnd = None
            message, first = self._classify(False, True)  # type: ignore[misc]
            if self._pendingEnd is not None:
                frames.append(Frame(b"", self._pendingEnd, False, True))
            frames.append(Frame(self.held, message, first, True))
            self.held = b""
            if self.subscription is not None and self.subscription.message is message:
                self.subscription = None
        if self.subscription is not None:
            frames.append(Frame(b"", self.subscription.message, False, True))
            self.subscription = None
        self.absorb = None
        # No reply will come for what is still waiting.
        self.answerPending(frames)
        return frames

    _pendingEnd: Message | None = None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii", "replace")


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
