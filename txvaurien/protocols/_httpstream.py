# -*- test-case-name: txvaurien.test.test_protocol_http -*-
"""
What both HTTP framers of L{txvaurien.protocols._httpframing} share: the
limits, finding where a head ends, and L{_Framer}, the state machine of
message bodies (C{Content-Length}, chunked with trailers, until the end of
the stream) and the emission of frames.  Each direction's framer says only
what a head means for the messages that follow it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from zope.interface import implementer

from txvaurien import logs
from txvaurien.frames import DATA, Frame, Message
from txvaurien.interfaces import IFramer
from txvaurien.protocols._httpheads import H11, Head, HeadReader, InvalidHead, readHead
from txvaurien.protocols.base import UNFRAMED, Framer, SwitchingFramer

if TYPE_CHECKING:
    from txvaurien.protocols.http import HTTPSession

_log = logs.logger("txvaurien.protocols.http")

#: The longest head (start line and fields) read before the stream is
#: declared not HTTP.
HEAD_LIMIT = 64 * 1024
#: The longest chunk size line or trailer line.
LINE_LIMIT = 8 * 1024

# Framer states.
_HEAD = 0  # reading a head (the start of a message, or after a 1xx)
_LENGTH = 1  # body of known length; `remaining` bytes to go
_CHUNK_SIZE = 2  # reading a chunk size line
_CHUNK_DATA = 3  # chunk data; `remaining` bytes to go
_CHUNK_CR = 4  # the CRLF after chunk data
_CHUNK_LF = 5  # the LF after chunk data's CR
_TRAILER = 6  # trailer lines, until an empty one
_CLOSE = 100  # everything until the end of the stream is the current message
_DATA = UNFRAMED  # unframed: each chunk read is one DATA message
_CUT = 9  # end the current message here, then unframed

_HEX = frozenset(b"0123456789abcdefABCDEF")

#: Empty lines before a message are allowed; they belong to it.
_EMPTY_LINES = re.compile(rb"[\r\n]*")


def _emptyLines(data: bytes, pos: int) -> int:
    """
    The offset of the first byte at or after C{pos} that is not CR or LF.
    """
    match = _EMPTY_LINES.match(data, pos)
    return pos if match is None else match.end()


def findHeadEnd(data: bytes, start: int) -> int:
    """
    The offset just past the first empty line at or after C{start} in
    C{data}, or -1.  Line ends are CRLF or a bare LF.
    """
    crlf = data.find(b"\n\r\n", start)
    lf = data.find(b"\n\n", start, len(data) if crlf < 0 else crlf + 2)
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return -1


def _chunkSize(line: bytes) -> int:
    """
    The size on a chunk size line (without its line end).

    @raise InvalidHead: if there is none.
    """
    size = line.split(b";", 1)[0].strip(b" \t")
    if not size or len(size) > 16 or not _HEX.issuperset(size):
        raise InvalidHead("invalid chunk size line {!r}".format(line[:40]))
    return int(size, 16)


@implementer(IFramer)
class _Framer(SwitchingFramer):
    """
    What request and response framers share: the state machine of message
    bodies and the emission of frames.

    @ivar reader: the L{HeadReader} of a head that came in pieces.
    @ivar scanned: how many bytes of C{held} were searched for the end of
        the head and given to C{reader}.
    @ivar lead: how many of those are empty lines before the head.
    """

    request = True
    protocolName = "HTTP"
    lineLimit = HEAD_LIMIT
    log = _log
    #: What every read runs: each framer class gets its own copy.
    hot = ("feed", "_slowHead", "emit", "openMessage")

    def __init__(self, session: HTTPSession) -> None:
        Framer.__init__(self, session)
        self.state = _HEAD
        self.remaining = 0
        self.reader: HeadReader | None = None
        self.scanned = 0
        self.lead = 0
        self.parserName = session.parserName
        # lineLimit, read for every head: an instance attribute is the
        # quicker to read.
        self.headLimit = self.lineLimit
        self.settings = session.handler.settings
        # Whether _ended must be called (the request framer, once the
        # connection switched).
        self.hooked = False

    # Hooks for subclasses

    def _context(self) -> Head | None:
        """
        What the parser needs to know to read the next head (h11 needs the
        request a response answers).
        """
        return None

    def _head(self, head: bytes, parsed: Head) -> bytes:
        """
        A head was read: open or continue the message and set the state for
        what follows.

        @param head: the head's bytes.
        @param parsed: what they say.
        @return: the bytes to send for the head: C{head} itself, unless it
            is rewritten.
        @raise InvalidHead: if the head is not usable.
        """
        raise NotImplementedError()

    def _ended(self, message: Message) -> None:
        """
        C{message}'s last byte was framed.
        """

    def _invalid(self, why: str) -> None:
        """
        Bytes were not HTTP: change state so that the rest is unframed.
        """
        raise NotImplementedError()

    # Helpers

    def emit(self, frames: list[Frame], data: bytes, last: bool) -> None:
        """
        L{Framer.emit}, and after the last frame of a message: a
        head comes next (unless the stream is no longer framed), and
        L{_ended} is called.
        """
        message = self.message
        assert message is not None
        frames.append(Frame(data, message, self.first, last))
        self.first = False
        if last:
            self.message = None
            self.first = True
            if self.state not in (_CLOSE, _DATA, _CUT):
                self.state = _HEAD
            self._ended(message)

    def _switch(self, why: str) -> None:
        """
        The bytes from here on are not HTTP: log it (once) and change
        state; the loop of L{feed} goes on in the new state.
        """
        self.reader = None
        self.scanned = self.lead = 0
        self.logInvalid(why)
        self._invalid(why)

    # IFramer

    def feed(self, data: bytes) -> list[Frame]:
        """
        Frame the next bytes of the stream.
        """
        if self.held:
            data = self.held + data
            self.held = b""
        frames: list[Frame] = []
        n = len(data)
        pos = 0
        # The current message's bytes not yet framed are prefix + data[mark:pos].
        mark = 0
        prefix = b""
        while pos < n:
            state = self.state
            if state == _HEAD:
                end = -1
                if self.reader is None and data[pos] not in b"\r\n":
                    # Fast path: a whole head starts here.  llhttp refuses
                    # any bare LF, so with httptools a head it accepts
                    # ends at its first CRLF CRLF; h11 accepts bare LFs.
                    if self.parserName == H11:
                        end = findHeadEnd(data, pos)
                    else:
                        end = data.find(b"\r\n\r\n", pos, pos + self.headLimit)
                        if end >= 0:
                            end += 4
                    if end - pos > self.headLimit:
                        end = -1
                if end < 0:
                    pos, prefix, mark, done = self._slowHead(frames, data, pos, prefix, mark)
                    if done:
                        return frames
                    continue
                head = data[pos:end]
                try:
                    parsed = readHead(self.request, head, self.parserName,
                                      self._context() if self.parserName == H11 else None)
                    sent = self._head(head, parsed)
                except InvalidHead as e:
                    self._switch(str(e))
                    continue
                if sent is not head:
                    # The head is rewritten: frame the new bytes instead.
                    prefix = prefix + data[mark:pos] + sent
                    mark = end
                pos = end
                if self.state == _LENGTH:
                    remaining = self.remaining
                    if remaining <= n - pos:
                        # The whole message is here.
                        pos += remaining
                        self.remaining = 0
                        message = self.message
                        assert message is not None
                        frames.append(Frame(
                            prefix + data[mark:pos] if prefix else data[mark:pos],
                            message, self.first, True))
                        self.message = None
                        self.first = True
                        self.state = _HEAD
                        if self.hooked:
                            self._ended(message)
                        prefix = b""
                        mark = pos
                continue
            if state == _LENGTH:
                available = n - pos
                remaining = self.remaining
                if available < remaining:
                    self.remaining = remaining - available
                    pos = n
                    break
                pos += remaining
                self.remaining = 0
                self.emit(frames, prefix + data[mark:pos], True)
                prefix, mark = b"", pos
                continue
            if state == _CLOSE:
                pos = n
                break
            if state == _DATA:
                frames.append(Frame(data[pos:], self.openMessage(DATA, {}), True, True))
                self.message = None
                mark = pos = n
                break
            if state == _CUT:
                self.emit(frames, prefix + data[mark:pos], True)
                prefix, mark = b"", pos
                self.state = _DATA
                continue
            if state == _CHUNK_DATA:
                available = n - pos
                remaining = self.remaining
                if available < remaining:
                    self.remaining = remaining - available
                    pos = n
                    break
                pos += remaining
                self.remaining = 0
                self.state = _CHUNK_CR
                continue
            if state == _CHUNK_CR:
                byte = data[pos]
                if byte == 13:
                    pos += 1
                    self.state = _CHUNK_LF
                elif byte == 10:
                    pos += 1
                    self.state = _CHUNK_SIZE
                else:
                    self._switch("no CRLF after chunk data")
                continue
            if state == _CHUNK_LF:
                if data[pos] == 10:
                    pos += 1
                    self.state = _CHUNK_SIZE
                else:
                    self._switch("no LF after chunk data")
                continue
            # _CHUNK_SIZE or _TRAILER: a line.
            eol = data.find(b"\n", pos, pos + LINE_LIMIT + 1)
            if eol < 0:
                if n - pos > LINE_LIMIT:
                    self._switch("line longer than {} bytes in chunked body".format(LINE_LIMIT))
                    continue
                if pos > mark or prefix:
                    self.emit(frames, prefix + data[mark:pos], False)
                self.held = data[pos:]
                return frames
            line = data[pos:eol]
            if line.endswith(b"\r"):
                line = line[:-1]
            if state == _TRAILER:
                pos = eol + 1
                if not line:
                    self.emit(frames, prefix + data[mark:pos], True)
                    prefix, mark = b"", pos
                continue
            try:
                size = _chunkSize(line)
            except InvalidHead as e:
                self._switch(str(e))
                continue
            pos = eol + 1
            if size:
                self.state = _CHUNK_DATA
                self.remaining = size
            else:
                self.state = _TRAILER
        if self.message is not None and (pos > mark or prefix):
            self.emit(frames, prefix + data[mark:pos], False)
        return frames

    def _slowHead(
        self, frames: list[Frame], data: bytes, pos: int, prefix: bytes, mark: int
    ) -> tuple[int, bytes, int, bool]:
        """
        Read the head starting at C{pos} when it did not come whole, starts
        with empty lines or ends with bare LFs.

        @return: the new C{pos}, C{prefix} and C{mark} of L{feed}'s loop,
            and whether L{feed} must return (the head is incomplete and
            held).
        """
        n = len(data)
        seen = pos + self.scanned
        lead = self.lead
        if lead == self.scanned:
            # All seen so far were empty lines; there may be more.
            lead = _emptyLines(data, pos + lead) - pos
        end = findHeadEnd(data, max(pos + lead, seen - 2))
        reader = self.reader
        if reader is None:
            reader = self.reader = HeadReader(self.request, self.parserName)
        try:
            if end < 0:
                if n - pos > self.lineLimit:
                    raise InvalidHead("no end of head within {} bytes".format(self.lineLimit))
                reader.feedPartial(data[seen:])
                # Hold the incomplete head; an interim head already read
                # goes on at once.
                if pos > mark or prefix:
                    self.emit(frames, prefix + data[mark:pos], False)
                self.held = data[pos:]
                self.scanned = n - pos
                self.lead = lead
                return n, b"", n, True
            if end - pos > self.lineLimit:
                raise InvalidHead("head longer than {} bytes".format(self.lineLimit))
            self.reader = None
            self.scanned = self.lead = 0
            head = data[pos:end]
            context = self._context() if self.parserName == H11 else None
            sent = self._head(head, reader.finish(data[seen:end], head, context))
        except InvalidHead as e:
            self._switch(str(e))
            return pos, prefix, mark, False
        if sent is not head:
            prefix = prefix + data[mark:pos] + sent
            mark = end
        pos = end
        if self.state == _LENGTH and not self.remaining:
            # A message without a body ends with its head.
            self.emit(frames, prefix + data[mark:pos], True)
            return pos, b"", pos, False
        return pos, prefix, mark, False

    def finish(self) -> list[Frame]:
        self.reader = None
        self.scanned = self.lead = 0
        if self.message is not None:
            self.state = _CLOSE
        return Framer.finish(self)
