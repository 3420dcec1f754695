# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
The reply side of the C{redis} handler (L{txvaurien.protocols.redis}):
L{ReplyFramer}, which pairs replies with commands and follows the
connection's state, and the tables of commands whose replies change it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from txvaurien.frames import DOWNSTREAM, PUSH, RESPONSE, UNANSWERED, Frame, Message
from txvaurien.interfaces import IFramer
from txvaurien.protocols._resp import INLINE_LIMIT, ProtocolError, ReplyScanner, fastReply
from txvaurien.protocols.base import Framer

if TYPE_CHECKING:
    from txvaurien.protocols.redis import RedisSession

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
            end = fastReply(data, pos, arrays)
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
