# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
What both RESP scanners share: the limits, the type bytes, L{ProtocolError},
and reading a length line or stepping over a payload (L{_Scanner}).
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
