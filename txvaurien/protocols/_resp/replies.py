# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
L{ReplyScanner}: the incremental scanner of what a Redis server sends.
"""

from __future__ import annotations

from txvaurien.protocols._resp.base import (
    _DOLLAR,
    _DOT,
    _LINE,
    _NUMBER,
    _PAYLOAD,
    _PIPE,
    _QUESTION,
    _SEMI,
    _TYPE,
    AGGREGATE_TYPES,
    BULK_TYPES,
    CAPTURE,
    LINE_TYPES,
    NUMBER_LIMIT,
    ProtocolError,
    _number,
    _Scanner,
)


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
