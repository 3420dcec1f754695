# -*- test-case-name: txvaurien.test.test_protocol_memcache -*-
"""
The C{memcache} protocol handler: memcached's text protocol, classic and
meta commands.

Upstream, a frame is (part of) one command: its line and, for storage
commands, its data block.  Downstream, a frame is (part of) the response to
one command, paired in order with the commands the backend was really
sent: one line, a line and a data block (C{VA}), or many lines up to
C{END} (retrieval, C{stats}).
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from txvaurien.frames import UNANSWERED, DOWNSTREAM, PUSH, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection, IFramer, IProtocolSession
from txvaurien.options import Choice
from txvaurien.protocols.base import Framer, ProtocolHandler, Session, oneLine

#: Longest command line read before the command is known to be valid;
#: memcached itself closes a connection whose line grows past a few KiB
#: unless it is a multi-key C{get}.
LINE_LIMIT = 8192

#: Longest part of a response line looked at.
RESPONSE_LINE_LIMIT = 4096

#: Longest key memcached accepts.
KEY_LIMIT = 250

_INT_MAX = 2**31 - 1

#: Storage commands and their number of words (without and with
#: C{noreply}).
STORAGE = {
    b"set": (5, 6),
    b"add": (5, 6),
    b"replace": (5, 6),
    b"append": (5, 6),
    b"prepend": (5, 6),
    b"cas": (6, 7),
}

#: Retrieval commands: their response is C{VALUE} items up to C{END}.
RETRIEVAL = frozenset([b"get", b"gets", b"gat", b"gats"])

#: Commands whose response is lines up to C{END} (or a one-line status).
LISTING = frozenset([b"stats", b"lru_crawler"])

#: Commands that honour a final C{noreply}, with the numbers of words
#: memcached accepts for them (with a wrong number it answers C{ERROR},
#: C{noreply} or not).
NOREPLY = {
    b"set": (5, 6),
    b"add": (5, 6),
    b"replace": (5, 6),
    b"append": (5, 6),
    b"prepend": (5, 6),
    b"cas": (6, 7),
    b"incr": (3, 4),
    b"decr": (3, 4),
    b"delete": (2, 4),
    b"touch": (3, 4),
    b"flush_all": (1, 3),
    b"verbosity": (2, 3),
    b"cache_memlimit": (2, 3),
}

#: Commands whose second word is a key (the third for C{gat}, C{gats}).
KEYED = frozenset(
    list(STORAGE)
    + [b"get", b"gets", b"gat", b"gats", b"incr", b"decr", b"delete", b"touch"]
    + [b"mg", b"ms", b"md", b"ma", b"me"]
)

#: Meta commands: for each, the codes a quiet (C{q}) request still gets.
QUIET_CODES = {
    b"mg": frozenset([b"VA", b"HD"]),
    b"ms": frozenset([b"NS", b"EX", b"NF"]),
    b"md": frozenset([b"EX", b"NF"]),
    b"ma": frozenset([b"NF", b"NS", b"EX"]),
}

#: Lines that end a C{stats} or C{lru_crawler} listing (C{mgdump} ends
#: with C{EN}).
_LISTING_END = frozenset([b"END", b"EN", b"ERROR", b"OK", b"RESET"])
_LISTING_END_PREFIXES = (b"CLIENT_ERROR", b"SERVER_ERROR", b"BUSY", b"BADCLASS")

#: Error responses any command may get.
_ERRORS = frozenset([b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"])

#: The first byte of a binary protocol packet (request, response).
_BINARY = frozenset([0x80, 0x81])

#: The first byte of a TLS handshake record.
_TLS_HANDSHAKE = 0x16

# Framer modes.
_LINE = 0
_DATA = 1
_SKIP = 2

# Response shapes.
_SINGLE = 0
_VALUES = 1
_LISTING = 2


class _Invalid(ValueError):
    """
    The stream is not the text protocol; C{offset} is where it stopped
    making sense, in the current chunk.
    """

    def __init__(self, offset: int, reason: str) -> None:
        ValueError.__init__(self, reason)
        self.offset = offset
        self.reason = reason


def _uint(token: bytes, limit: int) -> int | None:
    if not token.isdigit():
        return None
    value = int(token)
    return value if value <= limit else None


def _sint(token: bytes) -> bool:
    body = token[1:] if token[:1] == b"-" else token
    return body.isdigit() and -(2**31) <= int(token) < 2**31


def _text(token: bytes) -> str:
    return token.decode("ascii", "replace")


def parseCommand(line: bytes) -> tuple[dict[str, Any], bool, int | None]:
    """
    Read a command line the way memcached does.

    @param line: the line without its line end.
    @return: the request's metadata, whether it expects a response, and
        the size of the data block that follows (without its CRLF), or
        L{None} if none does.
    """
    words = [w for w in line.split(b" ") if w]
    if not words:
        return {"command": ""}, True, None
    command = words[0]
    meta: dict[str, Any] = {"command": _text(command)}
    count = len(words)
    if command in KEYED:
        index = 2 if command in (b"gat", b"gats") else 1
        if count > index:
            meta["key"] = _text(words[index])
    expects = True
    size: int | None = None
    accepted = NOREPLY.get(command)
    if accepted is not None and accepted[0] <= count <= accepted[1]:
        expects = words[-1] != b"noreply"
    if command in STORAGE:
        if count in STORAGE[command] and len(words[1]) <= KEY_LIMIT:
            length = _uint(words[4], _INT_MAX - 2)
            valid = (
                _uint(words[2], 2**32 - 1) is not None
                and _sint(words[3])
                and length is not None
                and (command != b"cas" or _uint(words[5], 2**64 - 1) is not None)
            )
            if valid:
                size = length
    elif command in QUIET_CODES or command == b"me":
        flags = words[3:] if command == b"ms" else words[2:]
        if command == b"ms" and count >= 3 and len(words[1]) <= KEY_LIMIT:
            size = _uint(words[2], _INT_MAX - 2)
        if b"q" in flags and command != b"me":
            meta["quiet"] = True
            for flag in flags:
                if flag[:1] == b"O":
                    meta["opaque"] = _text(flag)
                elif flag == b"k":
                    meta["returnKey"] = True
    elif command == b"quit":
        expects = False
    return meta, expects, size


class _Framer(Framer):
    """
    What both memcache framers share.

    @ivar mode: L{_LINE} (reading a line), L{_DATA} (C{left} bytes of a
        data block and its CRLF to go) or L{_SKIP} (the rest of a line).
    @ivar current: the message being framed, or L{None} between messages.
    @ivar first: whether the next frame of C{current} is its first.
    @ivar held: the start of a line whose end has not arrived.
    """

    protocolName = "memcache text protocol"
    lineLimit = LINE_LIMIT
    #: What every message runs: each framer class gets its own copy.
    hot = ("_end", "_partial")

    def __init__(self, session: "MemcacheSession", direction: str) -> None:
        Framer.__init__(self, session, direction)
        self.mode = _LINE
        self.current: Message | None = None
        self.first = False
        self.held = b""
        self.left = 0

    def unansweredMeta(self, request: Message) -> dict[str, Any]:
        """
        L{UNANSWERED}, the command, and C{empty} (the key this handler
        used before).
        """
        return {"command": request.meta.get("command"), "empty": True, UNANSWERED: True}

    def _end(self, frames: list[Frame], chunk: bytes) -> None:
        """
        The current message ends with C{chunk}.
        """
        current = self.current
        assert current is not None
        frames.append(Frame(chunk, current, self.first, True))
        self.current = None

    def _partial(self, frames: list[Frame], prefix: bytes, chunk: bytes) -> None:
        """
        The current message, if any, goes on with C{prefix + chunk}, the
        rest of a read.
        """
        if self.current is not None and (chunk or prefix):
            frames.append(Frame(prefix + chunk, self.current, self.first, False))
            self.first = False


@implementer(IFramer)
class CommandFramer(_Framer):
    """
    Cuts a client's stream into commands.

    The first frame of a command waits for its whole line (at most
    L{LINE_LIMIT} bytes, or just the command word for a long multi-key
    C{get}); a data block follows as it arrives.
    """

    def __init__(self, session: "MemcacheSession") -> None:
        _Framer.__init__(self, session, UPSTREAM)

    def _start(self, line: bytes, complete: bool) -> Message:
        if line.endswith(b"\r") and complete:
            line = line[:-1]
        meta, expects, size = parseCommand(line)
        if complete and size is not None:
            self.mode = _DATA
            self.left = size + 2
        return self.newMessage(REQUEST, meta, None, expects)

    def feed(self, data: bytes) -> list[Frame]:
        n = len(data)
        self.offset += n
        if self.raw:
            return self.unframed(data)
        frames: list[Frame] = []
        pos = 0
        seg = 0
        prefix = b""
        try:
            while pos < n:
                mode = self.mode
                if mode == _DATA:
                    left = self.left
                    take = n - pos if n - pos < left else left
                    pos += take
                    self.left = left - take
                    if self.left:
                        break
                    self._end(frames, prefix + data[seg:pos])
                    prefix = b""
                    seg = pos
                    self.mode = _LINE
                    continue
                if mode == _SKIP:
                    nl = data.find(b"\n", pos)
                    if nl < 0:
                        pos = n
                        break
                    pos = nl + 1
                    self._end(frames, prefix + data[seg:pos])
                    prefix = b""
                    seg = pos
                    self.mode = _LINE
                    continue
                # A command starts here (after what is held).
                held = self.held
                if not held and self.rawNext:
                    self.raw = True
                    frames.append(self.dataFrame(data[pos:]))
                    pos = seg = n
                    break
                if not held and data[pos] in _BINARY:
                    raise _Invalid(pos, "binary protocol")
                if not held and data[pos] == _TLS_HANDSHAKE:
                    raise _Invalid(pos, "TLS handshake")
                nl = data.find(b"\n", pos)
                if nl < 0:
                    if len(held) + n - pos <= self.lineLimit:
                        self.held = held + data[pos:]
                        pos = seg = n
                        break
                    line = (held + data[pos : pos + self.lineLimit])[:self.lineLimit]
                    complete = False
                else:
                    if len(held) + nl - pos > self.lineLimit:
                        line = (held + data[pos : pos + self.lineLimit])[:self.lineLimit]
                        complete = False
                    else:
                        line = held + data[pos:nl] if held else data[pos:nl]
                        complete = True
                if not complete:
                    words = line.split(b" ", 1)
                    if words[0] not in RETRIEVAL:
                        raise _Invalid(pos, "command line too long")
                self.held = b""
                self.current = self._start(line, complete)
                self.first = True
                prefix = held
                seg = pos
                if not complete:
                    self.mode = _SKIP
                    continue
                pos = nl + 1
                if self.mode == _LINE:
                    self._end(frames, prefix + data[seg:pos])
                    prefix = b""
                    seg = pos
        except _Invalid as e:
            self._invalid(data, seg, prefix, e, frames)
            return frames
        self._partial(frames, prefix, data[seg:])
        return frames

    def _invalid(
        self, data: bytes, seg: int, prefix: bytes, error: _Invalid, frames: list[Frame]
    ) -> None:
        # The offending command, from its start (which may be held), is
        # passed through as data.
        start = error.offset
        if self.current is not None:
            self._end(frames, prefix + data[seg:start])
        held, self.held = self.held, b""
        frames.extend(self.giveUp(self.offset - len(data) + start - len(held), error.reason,
                                  held + data[start:]))

    def finish(self) -> list[Frame]:
        if self.raw:
            return []
        if self.current is not None:
            current, self.current = self.current, None
            return [Frame(b"", current, self.first, True)]
        if self.held:
            held, self.held = self.held, b""
            return [Frame(held, self._start(held, False), True, True)]
        return []


def _isListingEnd(line: bytes) -> bool:
    return line in _LISTING_END or line.startswith(_LISTING_END_PREFIXES)


@implementer(IFramer)
class ResponseFramer(_Framer):
    """
    Cuts a server's stream into responses.

    The first frame of a response waits for its first line (at most
    L{RESPONSE_LINE_LIMIT} bytes are looked at), which tells which
    request it answers: a quiet meta request (C{q} flag) gets no response
    when it succeeds, so a response whose code such a request cannot get
    (or that lacks its opaque token or key) means it succeeded, and it is
    given an empty response.
    """

    lineLimit = RESPONSE_LINE_LIMIT

    def __init__(self, session: "MemcacheSession") -> None:
        _Framer.__init__(self, session, DOWNSTREAM)
        self.sent = session.sent
        self.shape = _SINGLE
        self.line = b""
        self.absorb: Message | None = None

    def emptyResponse(self, request: Message) -> Frame:
        """
        A response without bytes, for a quiet request that succeeded
        without a word.
        """
        command = request.meta.get("command")
        message = self.newMessage(RESPONSE, {"command": command, "empty": True}, request)
        return Frame(b"", message, True, True)

    def _couldAnswer(self, request: Message, code: bytes, words: list[bytes]) -> bool:
        """
        Whether a quiet request could have got the response whose first
        line is C{words}.
        """
        if code in _ERRORS:
            return True
        meta = request.meta
        command = meta["command"].encode("ascii", "replace")
        if code not in QUIET_CODES.get(command, ()):
            return False
        opaque = meta.get("opaque")
        if opaque is not None and opaque.encode("ascii", "replace") not in words:
            return False
        if meta.get("returnKey"):
            key = meta.get("key")
            if key is not None and b"k" + key.encode("ascii", "replace") not in words:
                return False
        return True

    def _classify(self, line: bytes, frames: list[Frame]) -> Message:
        """
        Pair the response whose first line is C{line} with its request.
        """
        words = line.split(b" ")
        code = words[0]
        sent = self.sent
        while sent:
            request = sent[0]
            if not request.meta.get("quiet"):
                break
            if code != b"MN" and self._couldAnswer(request, code, words):
                break
            # It succeeded quietly.
            frames.append(self.emptyResponse(sent.popleft()))
        if not sent:
            self.shape = _SINGLE
            return self.newMessage(PUSH, {"unsolicited": True})
        request = sent.popleft()
        command = request.meta["command"]
        raw = command.encode("ascii", "replace")
        if raw in RETRIEVAL:
            self.shape = _VALUES
        elif raw in LISTING:
            self.shape = _LISTING
        else:
            self.shape = _SINGLE
        return self.newMessage(RESPONSE, {"command": command}, request)

    def _lineDone(self, line: bytes, at: int) -> bool:
        """
        A whole line of the current response was read.

        @return: whether the response is complete.
        """
        shape = self.shape
        if shape == _SINGLE:
            if line.startswith(b"VA ") and self.current is not None and self.current.kind == RESPONSE:
                self._dataBlock(line, 1, at)
                return False
            current = self.current
            if (
                line == b"OK"
                and current is not None
                and current.kind == RESPONSE
                and current.meta["command"] == "watch"
            ):
                # Log lines follow for as long as the connection lasts.
                self.absorb = current
            return True
        if shape == _VALUES:
            if line.startswith(b"VALUE "):
                self._dataBlock(line, 3, at)
                return False
            return True
        return _isListingEnd(line)

    def _dataBlock(self, line: bytes, index: int, at: int) -> None:
        words = line.split(b" ")
        size = _uint(words[index], _INT_MAX) if len(words) > index else None
        if size is None:
            raise _Invalid(at, "no valid size in {!r}".format(line[:64]))
        self.mode = _DATA
        self.left = size + 2

    def feed(self, data: bytes) -> list[Frame]:
        n = len(data)
        self.offset += n
        if self.raw:
            return self.unframed(data)
        if self.absorb is not None:
            return [Frame(data, self.absorb, False, False)]
        frames: list[Frame] = []
        pos = 0
        seg = 0
        prefix = b""
        try:
            while pos < n:
                if self.mode == _DATA:
                    left = self.left
                    take = n - pos if n - pos < left else left
                    pos += take
                    self.left = left - take
                    if self.left:
                        break
                    self.mode = _LINE
                    if self.shape == _SINGLE:
                        self._end(frames, prefix + data[seg:pos])
                        prefix = b""
                        seg = pos
                    continue
                nl = data.find(b"\n", pos)
                end = n if nl < 0 else nl
                line = self.line
                if len(line) < self.lineLimit:
                    line = self.line = line + data[pos : min(end, pos + self.lineLimit - len(line))]
                if self.current is None:
                    if not self.held and not line and pos < n and data[pos] in _BINARY:
                        raise _Invalid(pos, "binary protocol")
                    if nl < 0 and len(line) < self.lineLimit:
                        self.held += data[pos:]
                        pos = seg = n
                        break
                    head = line[:-1] if nl >= 0 and line.endswith(b"\r") else line
                    self.current = self._classify(head, frames)
                    self.first = True
                    prefix = self.held
                    self.held = b""
                    seg = pos
                if nl < 0:
                    pos = n
                    break
                pos = nl + 1
                self.line = b""
                if line.endswith(b"\r"):
                    line = line[:-1]
                if self._lineDone(line, nl):
                    if self.absorb is not None:
                        pos = n
                        break
                    self._end(frames, prefix + data[seg:pos])
                    prefix = b""
                    seg = pos
        except _Invalid as e:
            self._invalid(data, seg, prefix, e, frames)
            return frames
        self._partial(frames, prefix, data[seg:])
        return frames

    def _invalid(
        self, data: bytes, seg: int, prefix: bytes, error: _Invalid, frames: list[Frame]
    ) -> None:
        at = error.offset
        if self.current is not None:
            self._end(frames, prefix + data[seg:at])
        elif self.held:
            frames.append(self.dataFrame(self.held))
        self.held = b""
        self.line = b""
        frames.extend(self.giveUp(self.offset - len(data) + at, error.reason, data[at:]))

    def finish(self) -> list[Frame]:
        frames: list[Frame] = []
        if self.absorb is not None:
            absorb, self.absorb = self.absorb, None
            self.current = None
            frames.append(Frame(b"", absorb, False, True))
        elif self.current is not None:
            current, self.current = self.current, None
            frames.append(Frame(b"", current, self.first, True))
        elif self.held:
            held, self.held = self.held, b""
            line = self.line
            self.line = b""
            message = self._classify(line, frames)
            frames.append(Frame(held, message, True, True))
        if not self.raw:
            self.answerPending(frames)
        return frames


@implementer(IProtocolSession)
class MemcacheSession(Session):
    """
    One connection's memcache framing (L{IProtocolSession}): C{sent} holds
    the commands written to the backend that still wait for their
    response.
    """

    handler: "Memcache"

    def __init__(self, handler: "Memcache", connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.upstream = CommandFramer(self)
        self.downstream = ResponseFramer(self)

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
        C{SERVER_ERROR <reason>} (or the C{error} option's kind); nothing
        for a C{noreply} command, whose client reads no response.
        """
        if request is not None and not request.expectsResponse:
            return b""
        if request is not None:
            self._settleQuiet(request)
        kind = self.handler.settings["error"]
        if kind == "ERROR":
            return b"ERROR\r\n"
        return kind.encode("ascii") + b" " + oneLine(reason) + b"\r\n"

    def _settleQuiet(self, request: Message) -> None:
        """
        C{request} is answered by the proxy, so the backend never sees it.
        If the backend was only sent quiet requests since, nothing may
        ever come from it to show they succeeded: take them as having
        succeeded now, so the answer to C{request} is not held behind
        them.
        """
        sent = self.sent
        if not sent or request in sent:
            return
        if not all(r.meta.get("quiet") for r in sent):
            return
        quiet = list(sent)
        sent.clear()
        for r in quiet:
            self.connection.reply(r, b"")

    def connectFailed(self, reason: str) -> bytes:
        return b"SERVER_ERROR backend unavailable: " + oneLine(reason) + b"\r\n"


class Memcache(ProtocolHandler):
    """
    memcached's text protocol: a frame is a command or part of one, or a
    response or part of one.  Errors are C{SERVER_ERROR} lines, which
    client libraries raise as a server error.

    Classic commands (storage with data blocks, C{noreply}, multi-key
    retrieval, C{stats}) and meta commands (C{mg}, C{ms}, C{md}, C{ma},
    C{mn}, quiet mode) are paired with their responses; the metadata of a
    command is its name (C{command}) and first key (C{key}).

    Example::

        twistd -n vaurien --proxy 127.0.0.1:11212 --backend 127.0.0.1:11211 \\
            --protocol memcache --behavior 10:error --seed 42
    """

    name = "memcache"
    options = {
        "error": (
            "Kind of error line the proxy makes up: SERVER_ERROR, CLIENT_ERROR "
            "(both followed by the reason) or ERROR",
            Choice("SERVER_ERROR", "CLIENT_ERROR", "ERROR"),
            "SERVER_ERROR",
        ),
    }
    framesRequests = True
    sessionClass = MemcacheSession
