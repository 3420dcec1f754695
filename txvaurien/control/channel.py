# -*- test-case-name: txvaurien.test.test_control_hardening -*-
"""
The control API's HTTP connection: L{twisted.web.http.HTTPChannel} with
the answers and limits a server facing untrusted clients needs.

  - A request whose C{Content-Length} is over the body limit is answered
    C{413} as soon as its headers are in, without waiting for a body that
    may never come.
  - A request line or header too long, or headers too large altogether,
    are answered C{431} (Twisted would close without a word, or answer
    C{400}).
  - A client must send each whole request (headers and body) within the
    request timeout, or it is answered C{408} and disconnected: a client
    sending one byte a second (slowloris) cannot hold a connection.
  - A connection with no request for the idle timeout is closed (the
    site's C{timeout}, Twisted's own idle timer).

Each refusal is written, then the connection is half-closed and what the
client still sends is read and thrown away for a short while
(I{lingering close}): closing a socket with unread bytes would reset the
connection, and the client would lose the answer.
"""

from __future__ import annotations

from typing import Any

from twisted.web import http

from txvaurien import logs

_log = logs.logger("txvaurien.control")

#: The largest request line or header line, and all header lines of one
#: request together, in bytes.
MAX_HEADERS = 16384

#: How long a refused client may go on sending (thrown away) before its
#: connection is closed, in seconds.
LINGER = 2.0

#: How much a refused client may send during L{LINGER}, in bytes.
LINGER_BYTES = 16 * 1024 * 1024

_TEXT = b"text/plain; charset=utf-8"

_REASONS = {408: b"Request Timeout", 413: b"Payload Too Large",
            431: b"Request Header Fields Too Large"}


class ControlChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel that answers over-limit requests at once and cuts
    slow ones.

    @ivar requestTimeout: seconds a client has to send a whole request, or
        L{None} for no limit.
    @ivar maximumBody: the largest C{Content-Length} taken.
    """

    MAX_LENGTH = MAX_HEADERS
    totalHeadersSize = MAX_HEADERS
    requestTimeout: float | None = None
    maximumBody = 1024 * 1024

    _deadline: Any = None
    _lingering: Any = None
    _refused = False
    _discarded = 0

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            self._discard(data)
            return
        if (self._deadline is None and not self._handlingRequest
                and self.requestTimeout is not None):
            self._deadline = self.callLater(self.requestTimeout, self._tooSlow)
        http.HTTPChannel.dataReceived(self, data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self.refuse(
                431, b"request headers larger than %d bytes\n" % self.totalHeadersSize)
            return
        http.HTTPChannel.lineReceived(self, line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.refuse(431, b"request line or header longer than %d bytes\n" % self.MAX_LENGTH)

    def allHeadersReceived(self) -> None:
        if self.length is not None and self.length > self.maximumBody:
            # Before the request sees it: answering now frees a client
            # that waits for 100 Continue, or never sends the body.
            self.refuse(413, *self._bodyError())
            return
        http.HTTPChannel.allHeadersReceived(self)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            self._discard(data)
            return
        http.HTTPChannel.rawDataReceived(self, data)

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._cancelDeadline()
        http.HTTPChannel.allContentReceived(self)

    def connectionLost(self, reason: Any = None) -> None:
        self._cancelDeadline()
        if self._lingering is not None and self._lingering.active():
            self._lingering.cancel()
        self._lingering = None
        lingering = getattr(getattr(self, "site", None), "lingering", None)
        if lingering is not None:
            lingering.discard(self)
        http.HTTPChannel.connectionLost(self, reason)

    def _cancelDeadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _tooSlow(self) -> None:
        self._deadline = None
        peer = self.transport.getPeer() if self.transport is not None else None
        _log.info("Control API client {peer} too slow to send a request "
                  "(over {timeout}s); disconnected", peer=str(peer),
                  timeout=self.requestTimeout)
        self.refuse(408, b"request not received within %gs\n" % (self.requestTimeout or 0))

    def _bodyError(self) -> tuple[bytes, bytes]:
        """
        The 413 body and its content type, in the form of the API the path
        belongs to (the site's resource's C{tooLarge(path)}).
        """
        site = getattr(self, "site", None)
        describe = getattr(getattr(site, "resource", None), "tooLarge", None)
        if describe is not None:
            answer: tuple[bytes, bytes] = describe(getattr(self, "_path", b"/"))
            return answer
        return b"request body larger than %d bytes\n" % self.maximumBody, _TEXT

    def refuse(self, status: int, body: bytes, contentType: bytes = b"") -> None:
        """
        Answer C{status} with C{body} and close the connection, lingering
        to read (and throw away) what the client still sends.
        """
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._cancelDeadline()
        self.setTimeout(None)
        contentType = contentType or _TEXT
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
            b"Content-Type: " + contentType + b"\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n\r\n",
            body,
        ]))
        loseWrite = getattr(self.transport, "loseWriteConnection", None)
        if loseWrite is None:
            self.transport.loseConnection()
            return
        loseWrite()
        self._lingering = self.callLater(LINGER, self.closeNow)
        lingering = getattr(getattr(self, "site", None), "lingering", None)
        if lingering is not None:
            lingering.add(self)

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self.closeNow()

    def closeNow(self) -> None:
        """
        Close the connection now (a refused one stops lingering).
        """
        if self._lingering is not None and self._lingering.active():
            self._lingering.cancel()
        self._lingering = None
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()
