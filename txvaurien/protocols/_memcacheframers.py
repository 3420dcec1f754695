# -*- test-case-name: txvaurien.test.test_protocol_memcache -*-
"""
The memcache framers: L{CommandFramer} cuts a client's stream into
commands, L{ResponseFramer} a server's into the responses it pairs with
them (L{txvaurien.protocols.memcache}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from txvaurien.frames import UNANSWERED, DOWNSTREAM, PUSH, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IFramer
from txvaurien.protocols._memcachetext import (
    _BINARY,
    _ERRORS,
    _INT_MAX,
    _TLS_HANDSHAKE,
    LINE_LIMIT,
    LISTING,
    QUIET_CODES,
    RESPONSE_LINE_LIMIT,
    RETRIEVAL,
    _Invalid,
    _isListingEnd,
    _uint,
    parseCommand,
)
from txvaurien.protocols.base import Framer

if TYPE_CHECKING:
    from txvaurien.protocols.memcache import MemcacheSession


# Framer modes.
_LINE = 0
_DATA = 1
_SKIP = 2

# Response shapes.
_SINGLE = 0
_VALUES = 1
_LISTING = 2


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
