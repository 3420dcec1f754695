# -*- test-case-name: txvaurien.test.test_protocol_mysql,txvaurien.test.test_protocol_postgresql -*-
"""
What the C{mysql} and C{postgresql} protocol handlers share: a streaming
framer for length-prefixed units, the SQL verb of a statement, and the
SQLSTATE option type.

Both protocols send units (MySQL packets, PostgreSQL messages) made of a
small header that gives the length of a body.  L{UnitFramer} walks a
stream unit by unit and cuts it into frames at message boundaries, without
ever holding more than a unit's header and the first L{PREFIX} bytes of
its body (what a subclass needs to classify the unit): bodies stream
through as they arrive, so a large result set or a large query is never
buffered.
"""

from __future__ import annotations

from typing import Any

from txvaurien.frames import DATA, DOWNSTREAM, Frame, Message
from txvaurien.options import OptionType
from txvaurien.protocols.base import Framer

#: How many bytes of a unit's body a framer looks at (and may hold) before
#: it decides what the unit is.
PREFIX = 256

#: Statements remembered per connection (prepared statement verbs).
STATEMENTS = 4096


class SQLState(OptionType):
    """
    A five-character SQLSTATE: digits and upper-case ASCII letters
    (C{HY000}, C{XX000}, C{08006}).
    """

    name = "SQLSTATE (5 digits or upper-case letters)"

    def parse(self, text: str) -> str:
        value = text.strip()
        if len(value) != 5 or not all(c.isdigit() or "A" <= c <= "Z" for c in value):
            raise ValueError("expected {}, got {!r}".format(self.name, text))
        return value


_SPACE = frozenset(b" \t\r\n\f\v(;")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def sqlVerb(text: bytes, hashComments: bool = False) -> str:
    """
    The first keyword of an SQL statement, upper-cased (C{"SELECT"},
    C{"INSERT"}), skipping white space, opening parentheses and comments;
    MySQL's executable comments (C{/*!40101 SET ...*/}) count as SQL.

    @param text: the start of the statement (it may be cut anywhere).
    @param hashComments: whether C{#} starts a comment (MySQL).
    @return: the verb, or C{""} if C{text} does not start with one.
    """
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif text.startswith(b"--", i) or (hashComments and c == 0x23):
            end = text.find(b"\n", i)
            if end < 0:
                return ""
            i = end + 1
        elif text.startswith(b"/*", i):
            if text.startswith(b"/*!", i) or text.startswith(b"/*M!", i):
                i += 3 if text[i + 2] == 0x21 else 4
                while i < n and 0x30 <= text[i] <= 0x39:
                    i += 1
                continue
            end = text.find(b"*/", i + 2)
            if end < 0:
                return ""
            i = end + 2
        else:
            break
    j = i
    while j < n and j - i < 32 and text[j] in _WORD:
        j += 1
    return text[i:j].decode("ascii").upper()


def remember(statements: dict[Any, str], key: Any, verb: str) -> None:
    """
    Remember the verb of a prepared statement, forgetting the oldest one
    past L{STATEMENTS} (a client may prepare without ever closing).
    """
    statements.pop(key, None)
    statements[key] = verb
    if len(statements) > STATEMENTS:
        del statements[next(iter(statements))]


class UnitFramer(Framer):
    """
    Cuts a stream of length-prefixed units into frames: the
    L{txvaurien.protocols.base.Framer} of MySQL and PostgreSQL.

    A subclass reads a unit's header (L{_header}) and, with the header and
    the first C{min(length, PREFIX)} bytes of the body available, says
    which message the unit belongs to and whether it ends it (L{_unit}).
    Once the session stops framing, each chunk is one L{DATA} message.

    What it holds (C{held}) is bounded by the protocol: a unit's header and
    at most L{PREFIX} bytes of its body.

    @ivar switching: set by a subclass to be called (L{_unitDone}) when the
        current unit's body has passed, to switch to raw there.
    """

    #: What every read runs: each framer class gets its own copy.
    hot = ("feed", "_skip", "_close", "_unitEnded")
    #: A unit's header and the start of its body, at most.
    lineLimit = 16 + PREFIX

    def __init__(self, direction: str, session: Any) -> None:
        Framer.__init__(self, session, direction)
        self.inBody = False
        self.remaining = 0
        self.ends = False
        self.switching = False

    @property
    def clean(self) -> bool:
        """
        Nothing held and no message open (for the downstream framer: no
        response owed either).
        """
        return not self.held and self.message is None and not (
            self.direction == DOWNSTREAM and self.session.sent
        )

    @property
    def quiet(self) -> bool:
        """
        Once the session stopped framing, and this framer is L{clean}.
        """
        return bool(self.session.raw) and self.clean

    # Subclass hooks

    def _header(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        """
        Read the header of the unit starting at C{data[pos]} (at least that
        byte is there; the chunk ends at C{n}).

        @return: the header's size and the body's length; a size of 0 if
            the header is not all there yet; a length of -1 if the stream
            cannot be followed (after calling L{txvaurien.protocols.base.Session.stopFraming}).
        """
        raise NotImplementedError()

    def _unit(self, data: bytes, pos: int, size: int, length: int) -> tuple[Message, bool] | None:
        """
        Classify the unit at C{data[pos]} (header of C{size} bytes, body of
        C{length}, at least C{min(length, PREFIX)} of which are available).

        @return: the message it belongs to (L{message} to continue it, or a
            new one) and whether it is the message's last unit; or L{None}
            if the stream cannot be followed.
        """
        raise NotImplementedError()

    def _unitDone(self) -> None:
        """
        The body of a unit after which C{switching} was set ended: the
        session may stop framing now.
        """

    def _skip(self, data: bytes, pos: int, n: int) -> int:
        """
        With a message open and C{data[pos]} at a unit's header: step over
        the complete units from there that L{_unit} would only add to the
        message (result rows), faster than one by one.

        @return: the position of the first unit not stepped over.
        """
        return pos

    # IFramer

    def _close(self, frames: list[Frame], data: bytes) -> None:
        """
        End the open message with C{data}.
        """
        message = self.message
        if message is not None:
            frames.append(Frame(data, message, self.first, True))
            self.message = None
            self.first = True
        elif data:
            frames.append(Frame(data, self.newMessage(DATA, {})))
        self.inBody = False
        self.remaining = 0

    def _raw(self, frames: list[Frame], data: bytes) -> None:
        self.answerPending(frames)
        if data:
            frames.append(Frame(data, self.newMessage(DATA, {"unframed": True})))

    def _unitEnded(self, frames: list[Frame], data: bytes, start: int, pos: int) -> int:
        """
        The unit ending at C{pos} ended: end its message if it was the last
        unit, let the subclass switch to raw.

        @return: where the next frame starts, or -1 if the rest of C{data}
            was passed on unframed.
        """
        if self.ends:
            self._close(frames, data[start:pos])
            start = pos
        if self.switching:
            self.switching = False
            self._unitDone()
            if self.session.raw:
                self._close(frames, data[start:pos])
                self._raw(frames, data[pos:])
                return -1
        return start

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        if self.held:
            data = self.held + data
            self.held = b""
        session = self.session
        if session.raw:
            if self.message is not None:
                self._close(frames, b"")
            self._raw(frames, data)
            return frames
        n = len(data)
        pos = start = 0
        if self.inBody:
            remaining = self.remaining
            if remaining > n:
                self.remaining = remaining - n
                pos = n
            else:
                pos = remaining
                self.remaining = 0
                self.inBody = False
                start = self._unitEnded(frames, data, start, pos)
                if start < 0:
                    return frames
        header = self._header
        unit = self._unit
        while pos < n:
            if self.message is not None:
                pos = self._skip(data, pos, n)
                if pos >= n:
                    break
            size, length = header(data, pos, n)
            if not size:
                break
            if length < 0:
                self._close(frames, data[start:pos])
                self._raw(frames, data[pos:])
                return frames
            if n - pos - size < (length if length < PREFIX else PREFIX):
                break
            classified = unit(data, pos, size, length)
            if classified is None:
                self._close(frames, data[start:pos])
                self._raw(frames, data[pos:])
                return frames
            message, self.ends = classified
            if message is not self.message:
                if self.message is not None:
                    self._close(frames, data[start:pos])
                self.message = message
                self.first = True
                start = pos
            end = pos + size + length
            if end > n:
                self.inBody = True
                self.remaining = end - n
                pos = n
                break
            pos = end
            if self.ends or self.switching:
                start = self._unitEnded(frames, data, start, pos)
                if start < 0:
                    return frames
        if pos < n:
            self.held = data[pos:]
        if start < pos:
            current = self.message
            if current is None:  # Every unit belongs to a message; never None here.
                current = self.message = self.newMessage(DATA, {})
            frames.append(Frame(data[start:pos], current, self.first, False))
            self.first = False
        return frames

    def finish(self) -> list[Frame]:
        frames: list[Frame] = []
        data, self.held = self.held, b""
        if self.message is not None:
            self._close(frames, data)
            data = b""
        self._raw(frames, data)
        return frames


#: The L{UnitFramer} methods every read runs: each concrete framer class
#: gets its own copy (L{txvaurien.protocols._ownmethods}).
HOT_METHODS = UnitFramer.hot + Framer.hot


def int16(data: bytes, pos: int) -> int:
    """
    A little-endian 16-bit integer.
    """
    return data[pos] | data[pos + 1] << 8


def int32be(data: bytes, pos: int) -> int:
    """
    A big-endian 32-bit integer.
    """
    return data[pos] << 24 | data[pos + 1] << 16 | data[pos + 2] << 8 | data[pos + 3]
