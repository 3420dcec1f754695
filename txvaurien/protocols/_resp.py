# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
All the scanning of RESP, the Redis serialization protocol, used by
L{txvaurien.protocols.redis}: the fast paths that take whole commands and
simple replies that arrived in one piece in one go, and the incremental
scanners that take everything else.

A scanner never copies a value: it finds where each one ends, whatever the
chunking, so that a big bulk string passes through in as many pieces as it
arrived in.  It keeps just enough state to resume in the middle of any
token, and captures the few small values the framers classify messages
by (a request's command name, a push's kind).

Both scanners raise L{ProtocolError} with the offset of the byte at which
the stream stopped being valid.  That offset depends only on the bytes,
never on how they were split into chunks.
"""

from __future__ import annotations

#: Longest captured value (command names, push kinds, counts).
CAPTURE = 64

#: Longest length or count line accepted (C{$}, C{*}, ... and digits).
NUMBER_LIMIT = 24

#: Longest inline command Redis accepts (C{PROTO_INLINE_MAX_SIZE}).
INLINE_LIMIT = 64 * 1024

_CR = 13
_LF = 10
_STAR = ord("*")
_DOLLAR = ord("$")
_SEMI = ord(";")
_DOT = ord(".")
_PIPE = ord("|")
_TLS_HANDSHAKE = 0x16
_QUESTION = b"?"

#: Types whose value is the rest of their line.
LINE_TYPES = frozenset(b"+-:,#_(")
#: Types followed by a length and that many bytes.
BULK_TYPES = frozenset(b"$=!")
#: Aggregate types and how many elements each unit of their count means.
AGGREGATE_TYPES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}

# Scanner modes.
_TYPE = 0
_LINE = 1
_NUMBER = 2
_PAYLOAD = 3


class ProtocolError(ValueError):
    """
    The stream is not valid RESP.

    @ivar offset: the offset, in the data passed to C{scan}, of the first
        byte that cannot be part of a valid stream.
    @ivar reason: what is wrong, for the log.
    """

    def __init__(self, offset: int, reason: str) -> None:
        ValueError.__init__(self, "{} at offset {}".format(reason, offset))
        self.offset = offset
        self.reason = reason


def _number(body: bytes) -> int | None:
    """
    Read a RESP length or count: an optional minus sign and ASCII digits.
    """
    if not body or not (body.isdigit() or (body[0] == 45 and body[1:].isdigit())):
        return None
    return int(body)


class _Scanner:
    """
    What both scanners share: reading a length or count line, and stepping
    over a payload (a bulk string or an argument) and the CRLF after it.

    @ivar numBuf: the start of a length or count line whose end has not
        arrived.
    @ivar left: the bytes of the current payload still to come, its CRLF
        included.
    @ivar capture: whether to capture the current payload.
    @ivar capBuf: what was captured of it so far.
    """

    __slots__ = ("mode", "numBuf", "left", "capture", "capBuf")

    mode: int
    numBuf: bytes
    left: int
    capture: bool
    capBuf: bytes

    def _numberLine(self, data: bytes, pos: int, what: str) -> tuple[int, bytes]:
        """
        Read a length or count line (its text, after the type byte).

        @param what: what the line gives, for error messages.
        @return: the offset after the line and its text without the line
            end, or C{(-1, b"")} if the line has not ended yet (everything
            was consumed).
        @raise ProtocolError: if the line is too long or not ended by CRLF.
        """
        nl = data.find(b"\n", pos)
        have = len(self.numBuf)
        if nl < 0:
            if have + len(data) - pos > NUMBER_LIMIT:
                raise ProtocolError(pos + NUMBER_LIMIT - have, what + " line too long")
            self.numBuf += data[pos:]
            return -1, b""
        if have + nl - pos > NUMBER_LIMIT:
            raise ProtocolError(pos + NUMBER_LIMIT - have, what + " line too long")
        text = self.numBuf + data[pos:nl]
        self.numBuf = b""
        if not text.endswith(b"\r"):
            raise ProtocolError(nl, what + " line not ended by CRLF")
        return nl + 1, text[:-1]

    def _payload(self, data: bytes, pos: int, what: str) -> int:
        """
        Step over what C{data[pos:]} holds of the current payload, checking
        that its CRLF is one and capturing its start if C{capture}.

        @param what: what the payload is, for error messages.
        @return: the offset after what was stepped over; C{left} is 0 if
            the payload ended there.
        @raise ProtocolError: if the payload is not followed by CRLF.
        """
        left = self.left
        avail = len(data) - pos
        take = avail if avail < left else left
        # The last two bytes of a payload are its CRLF.
        body = left - 2
        if take > body:
            start = body if body > 0 else 0
            expected = b"\r\n"[2 - left + start : 2 - left + take]
            got = data[pos + start : pos + take]
            if got != expected:
                for i in range(len(got)):
                    if got[i] != expected[i]:
                        raise ProtocolError(pos + start + i, what + " not followed by CRLF")
        if self.capture and body > 0:
            self.capBuf += data[pos : pos + min(take, body)]
        self.left = left - take
        return pos + take


class ReplyScanner(_Scanner):
    """
    Finds the end of each top-level RESP2 or RESP3 value a server sends:
    simple strings, errors, integers, doubles, booleans, nulls, big
    numbers, bulk strings, bulk errors, verbatim strings, arrays, maps,
    sets, pushes and attributes, nested to any depth, and the streamed
    forms (C{$?} with C{;} chunks, C{*?} and the like ended by C{.}).

    An attribute (C{|}) belongs to the value that follows it.

    For the value being scanned it records:

      - C{rtype}: the type byte of the value (after any attribute), or
        L{None} until it is known;
      - C{elements}: the first three direct elements of a top-level
        aggregate, each as L{bytes} when it is a short string or number,
        else L{None};
      - C{head1}: the first byte of a top-level line value (C{+OK} gives
        C{ord("O")}), or L{None} until it arrived;
      - C{prefixed}: whether the value starts with an attribute.
    """

    __slots__ = (
        "stack",
        "attrs",
        "numType",
        "endMarker",
        "streaming",
        "rtype",
        "elements",
        "index",
        "head1",
        "line",
        "prefixed",
    )

    def __init__(self) -> None:
        self.stack: list[int] = []
        self.attrs: list[bool] = []
        self.mode = _TYPE
        self.numType = 0
        self.numBuf = b""
        self.left = 0
        self.capture = False
        self.capBuf = b""
        self.endMarker = False
        self.streaming = False
        self.begin()

    def begin(self) -> None:
        """
        Forget what was recorded about the previous top-level value.
        """
        self.rtype: int | None = None
        self.elements: list[bytes | None] = []
        self.index = 0
        self.head1: int | None = None
        self.line: bytes | None = None
        self.prefixed = False

    @property
    def idle(self) -> bool:
        """
        Whether the scanner is between two top-level values.
        """
        return self.mode == _TYPE and not self.stack and not self.streaming

    def _capturing(self) -> bool:
        """
        Whether the element starting now is a direct element of the
        top-level aggregate worth capturing.
        """
        return (
            len(self.stack) == 1
            and not self.attrs[0]
            and self.index < 3
        )

    def _done(self) -> bool:
        """
        A value ended: count it in its parent, closing every aggregate it
        completes.

        @return: whether the top-level value is complete.
        """
        stack = self.stack
        attrs = self.attrs
        while stack:
            if len(stack) == 1 and not attrs[0]:
                self.index += 1
            remaining = stack[-1]
            if remaining < 0:
                return False
            remaining -= 1
            if remaining:
                stack[-1] = remaining
                return False
            stack.pop()
            if attrs.pop():
                # An attribute is a prefix of the value that follows it,
                # which is the element its parent counts.
                return False
        return True

    def _open(self, count: int, attribute: bool) -> bool:
        """
        An aggregate header was read.

        @return: whether the top-level value is complete (an empty or null
            aggregate is a whole value).
        """
        if count == 0:
            if attribute:
                return False
            return self._done()
        self.stack.append(count)
        self.attrs.append(attribute)
        return False

    def scan(self, data: bytes, pos: int = 0) -> int:
        """
        Scan C{data} from C{pos}.

        @return: the offset just after the end of the current top-level
            value, or C{-1} if C{data} ended first (everything was
            consumed; call again with the next chunk).
        @raise ProtocolError: if the stream is invalid.
        """
        n = len(data)
        while pos < n:
            mode = self.mode
            if mode == _PAYLOAD:
                pos = self._payload(data, pos, "bulk string")
                if self.left:
                    return -1
                self.mode = _TYPE
                if self.streaming:
                    continue
                if self.capture:
                    self.elements.append(self.capBuf)
                    self.capture = False
                if self._done():
                    return pos
                continue
            if mode == _TYPE:
                t = data[pos]
                if self.streaming:
                    if t != _SEMI:
                        raise ProtocolError(pos, "expected a ';' chunk of a streamed string")
                    self.numType = t
                    self.numBuf = b""
                    self.mode = _NUMBER
                    pos += 1
                    continue
                if t in LINE_TYPES:
                    stack = self.stack
                    if not stack:
                        self.rtype = t
                        self.capture = True
                        if pos + 1 < n:
                            self.head1 = data[pos + 1]
                    else:
                        self.capture = self._capturing()
                    self.capBuf = b""
                    self.endMarker = False
                    self.mode = _LINE
                    pos += 1
                    continue
                if t in BULK_TYPES or t in AGGREGATE_TYPES:
                    if not self.stack:
                        if t != _PIPE:
                            self.rtype = t
                        elif self.rtype is None:
                            self.prefixed = True
                    self.numType = t
                    self.numBuf = b""
                    self.mode = _NUMBER
                    pos += 1
                    continue
                if t == _DOT and self.stack and self.stack[-1] < 0:
                    self.capture = False
                    self.endMarker = True
                    self.mode = _LINE
                    pos += 1
                    continue
                raise ProtocolError(pos, "unexpected type byte {!r}".format(bytes([t])))
            if mode == _LINE:
                if self.head1 is None and not self.stack and self.rtype is not None:
                    self.head1 = data[pos]
                nl = data.find(b"\n", pos)
                if nl < 0:
                    if self.capture and len(self.capBuf) <= CAPTURE + 1:
                        self.capBuf += data[pos : pos + CAPTURE + 2]
                    return -1
                if self.capture:
                    self.capture = False
                    line = self.capBuf + data[pos : min(nl, pos + CAPTURE + 2)]
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    captured = line if len(line) <= CAPTURE else None
                    if self.stack:
                        self.elements.append(captured)
                    else:
                        self.line = captured
                pos = nl + 1
                self.mode = _TYPE
                if self.endMarker:
                    self.endMarker = False
                    self.stack.pop()
                    if self.attrs.pop():
                        continue
                if self._done():
                    return pos
                continue
            # _NUMBER
            pos, digits = self._numberLine(data, pos, "length")
            if pos < 0:
                return -1
            nl = pos - 1
            t = self.numType
            self.mode = _TYPE
            if t == _SEMI:
                size = _number(digits)
                if size is None or size < 0:
                    raise ProtocolError(nl, "invalid streamed chunk length")
                if size == 0:
                    self.streaming = False
                    if self._done():
                        return pos
                    continue
                self.left = size + 2
                self.mode = _PAYLOAD
                continue
            if digits == _QUESTION:
                if t == _DOLLAR:
                    if self.stack and self._capturing():
                        self.elements.append(None)
                    self.capture = False
                    self.streaming = True
                    continue
                if t in AGGREGATE_TYPES:
                    if t != _PIPE and self.stack and self._capturing():
                        self.elements.append(None)
                    self._open(-1, t == _PIPE)
                    continue
                raise ProtocolError(nl, "streamed form not allowed for this type")
            size = _number(digits)
            if size is None:
                raise ProtocolError(nl, "invalid length {!r}".format(digits[:NUMBER_LIMIT]))
            if size < 0:
                if size != -1 or t == _PIPE:
                    raise ProtocolError(nl, "invalid negative length")
                # A RESP2 null bulk string or null array.
                if self.stack and self._capturing():
                    self.elements.append(None)
                if self._done():
                    return pos
                continue
            if t in BULK_TYPES:
                self.capture = bool(self.stack) and size <= CAPTURE and self._capturing()
                if not self.capture and self.stack and self._capturing():
                    self.elements.append(None)
                self.capBuf = b""
                self.left = size + 2
                self.mode = _PAYLOAD
                continue
            # An aggregate.
            if t != _PIPE and self.stack and self._capturing():
                self.elements.append(None)
            if self._open(size * AGGREGATE_TYPES[t], t == _PIPE):
                return pos
        return -1


class Request:
    """
    What a L{RequestScanner} learned about the request being scanned.

    @ivar argc: the number of arguments including the command, or L{None}
        until known.
    @ivar args: the first arguments, each L{bytes} when short enough to
        capture, else L{None}.
    @ivar inline: whether the request is an inline command.
    """

    __slots__ = ("argc", "args", "inline")

    def __init__(self) -> None:
        self.argc: int | None = None
        self.args: list[bytes | None] = []
        self.inline = False


# Request scanner modes.
_START = 0
_COUNT = 1
_BULKTYPE = 2
_BULKLEN = 3
_ARGUMENT = 4
_INLINE = 5


class RequestScanner(_Scanner):
    """
    Finds the end of each request a Redis client sends: a multi-bulk
    command (C{*<n>} then C{n} bulk strings) or an inline command (a line
    of words).  It follows the server's own reading rules: a count of zero
    or less is a request with no command, an inline line ends at LF, and
    an inline command longer than 64 KiB is refused.

    @ivar want: how many leading arguments to capture.
    @ivar request: the L{Request} being scanned.
    """

    __slots__ = ("remaining", "inlineBuf", "want", "request")

    def __init__(self) -> None:
        self.mode = _START
        self.numBuf = b""
        self.left = 0
        self.remaining = 0
        self.capture = False
        self.capBuf = b""
        self.inlineBuf = b""
        self.want = 1
        self.request = Request()

    @property
    def idle(self) -> bool:
        """
        Whether the scanner is between two requests.
        """
        return self.mode == _START

    def _number(self, data: bytes, pos: int, what: str) -> tuple[int, int | None]:
        """
        Read a count or length line.

        @return: the offset after it and the number, or C{(-1, None)} if
            the line is not complete yet.
        """
        end, text = self._numberLine(data, pos, what)
        if end < 0:
            return -1, None
        value = _number(text)
        if value is None:
            raise ProtocolError(end - 1, "invalid " + what)
        return end, value

    def scan(self, data: bytes, pos: int = 0) -> int:
        """
        Scan C{data} from C{pos}.

        @return: the offset just after the end of the current request, or
            C{-1} if C{data} ended first.
        @raise ProtocolError: if the stream is invalid.
        """
        n = len(data)
        while pos < n:
            mode = self.mode
            if mode == _ARGUMENT:
                pos = self._payload(data, pos, "argument")
                if self.left:
                    return -1
                if self.capture:
                    args = self.request.args
                    args.append(self.capBuf)
                    self.capture = False
                    if len(args) == 1 and self.capBuf.upper() == b"CLIENT":
                        # CLIENT REPLY changes which requests get a reply.
                        self.want = 3
                self.remaining -= 1
                if not self.remaining:
                    self.mode = _START
                    return pos
                self.mode = _BULKTYPE
                continue
            if mode == _START:
                self.request = Request()
                self.want = 1
                if data[pos] == _TLS_HANDSHAKE:
                    # No command starts with this byte; a TLS client hello
                    # does, and might hold no LF to end an "inline command".
                    raise ProtocolError(pos, "TLS handshake")
                if data[pos] == _STAR:
                    self.mode = _COUNT
                    pos += 1
                    continue
                self.request.inline = True
                self.inlineBuf = b""
                self.mode = _INLINE
                continue
            if mode == _BULKTYPE:
                if data[pos] != _DOLLAR:
                    raise ProtocolError(pos, "expected '$' before an argument")
                self.mode = _BULKLEN
                pos += 1
                continue
            if mode == _BULKLEN:
                end, size = self._number(data, pos, "argument length")
                if end < 0:
                    return -1
                assert size is not None
                if size < 0:
                    raise ProtocolError(end - 1, "negative argument length")
                pos = end
                self.capture = len(self.request.args) < self.want and size <= CAPTURE
                if not self.capture and len(self.request.args) < self.want:
                    self.request.args.append(None)
                self.capBuf = b""
                self.left = size + 2
                self.mode = _ARGUMENT
                continue
            if mode == _COUNT:
                end, count = self._number(data, pos, "argument count")
                if end < 0:
                    return -1
                assert count is not None
                pos = end
                if count <= 0:
                    self.request.argc = 0
                    self.mode = _START
                    return pos
                self.request.argc = count
                self.remaining = count
                self.mode = _BULKTYPE
                continue
            # _INLINE
            nl = data.find(b"\n", pos)
            have = len(self.inlineBuf)
            if nl < 0:
                if have + n - pos > INLINE_LIMIT:
                    raise ProtocolError(pos + INLINE_LIMIT - have, "inline command too long")
                self.inlineBuf += data[pos:]
                return -1
            if have + nl - pos > INLINE_LIMIT:
                raise ProtocolError(pos + INLINE_LIMIT - have, "inline command too long")
            line = self.inlineBuf + data[pos:nl]
            self.inlineBuf = b""
            words = line.split()
            request = self.request
            request.argc = len(words)
            request.args = [w if len(w) <= CAPTURE else None for w in words[:3]]
            self.mode = _START
            return nl + 1
        return -1


# The fast paths: whole values that arrived in one piece.


def fastCommand(data: bytes, pos: int) -> tuple[int, int, bytes] | None:
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
BULK_LINES = tuple(b"$%d" % size for size in range(1024))

#: Reads this long at most are split into lines in one go by the fast path.
SPLIT_LIMIT = 64 * 1024


def splitCommands(data: bytes) -> list[tuple[int, int, bytes]]:
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
    lines = BULK_LINES
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


def fastScalar(data: bytes, pos: int) -> int:
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


def fastReply(data: bytes, pos: int, arrays: bool) -> int:
    """
    The offset after the whole reply at C{data[pos]}, if it is a scalar
    (L{fastScalar}) or, when C{arrays} is true, an array of scalars;
    C{-1} for anything else, for the general scanner to deal with.
    """
    t = data[pos]
    if t == 43 or t == 58:
        # A simple string or an integer.
        nl = data.find(b"\n", pos)
        return -1 if nl < 0 else nl + 1
    if t != 42:
        return fastScalar(data, pos)
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
        p = fastScalar(data, p)
        if p < 0:
            return -1
    return p
