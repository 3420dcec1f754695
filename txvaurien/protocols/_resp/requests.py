# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
L{RequestScanner}: the incremental scanner of what a Redis client sends.
"""

from __future__ import annotations

from txvaurien.protocols._resp.base import (
    _DOLLAR,
    _STAR,
    _TLS_HANDSHAKE,
    CAPTURE,
    INLINE_LIMIT,
    ProtocolError,
    _number,
    _Scanner,
)


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
