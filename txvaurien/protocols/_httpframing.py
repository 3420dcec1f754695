# -*- test-case-name: txvaurien.test.test_protocol_http -*-
"""
Cutting HTTP/1.x streams into messages.

A framer finds where a head ends (its first empty line), has it read by
L{txvaurien.protocols._httpheads}, and counts the bytes of the body itself
(C{Content-Length}, chunked with trailers, or until the end of the
stream), so it knows the exact offset where each message ends, whatever
the chunking of the input.  Bodies are not buffered: each call of C{feed}
returns, for every message it touches, one frame with the bytes of that
message it was given.  Only an incomplete head, a chunk size line or a
trailer line is held until its end arrives, and each is bounded.

Bytes a framer cannot read as HTTP are not dropped and never stop the
stream: from the client, the rest of the stream becomes L{DATA} messages
(a request in progress ends just before them); from the backend, the rest
belongs to the response being read, which ends with the stream.  Either
way the framer logs it once.

The common case (a whole head, and perhaps its whole body, in one read)
takes few steps: this code runs for every request and response.

The state machine both directions share is L{_Framer}, in
L{txvaurien.protocols._httpstream}; this module holds each direction's
framer, and what they are imported from.
"""

from __future__ import annotations

from typing import Any

from txvaurien.frames import DATA, DOWNSTREAM, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.protocols._httpheads import Head, InvalidHead
from txvaurien.protocols._httpstream import (
    _CHUNK_SIZE,
    _CLOSE,
    _CUT,
    _DATA,
    _HEAD,
    _LENGTH,
    HEAD_LIMIT,
    LINE_LIMIT,
    _Framer,
    findHeadEnd,
)


class RequestFramer(_Framer):
    """
    Frames the client's requests.  A request's metadata is C{method},
    C{path} (the request target), C{version} and C{command} (the method
    again, the name every protocol uses), and, when true, C{upgrade} (it
    has an C{Upgrade} field), C{close} (it asks to close) and
    C{expect_continue}.
    """

    direction = UPSTREAM
    request = True

    def _head(self, head: bytes, parsed: Head) -> bytes:
        if parsed.encoded and not parsed.chunked:
            raise InvalidHead("request body with transfer coding other than chunked")
        method = parsed.method
        meta: dict[str, Any] = {
            "method": method,
            "command": method,
            "path": parsed.target,
            "version": parsed.version,
        }
        if parsed.upgrade:
            meta["upgrade"] = True
        if parsed.close:
            meta["close"] = True
        if parsed.expectContinue:
            meta["expect_continue"] = True
        self.openMessage(REQUEST, meta)
        if parsed.chunked:
            self.state = _CHUNK_SIZE
        else:
            self.state = _LENGTH
            self.remaining = parsed.contentLength or 0
        if self.settings["overwrite_host_header"]:
            return self.session.rewriteHost(head)
        return head

    def _ended(self, message: Message) -> None:
        if self.session.switched:
            self.state = _DATA

    def stop(self) -> None:
        """
        The backend accepted an upgrade or a C{CONNECT}: after the request
        being read, if any, the client's bytes are no longer HTTP.
        """
        self.hooked = True
        if self.message is None:
            self.reader = None
            self.scanned = self.lead = 0
            self.state = _DATA

    def _invalid(self, why: str) -> None:
        # A request in progress ends where its body stops making sense.
        self.state = _DATA if self.message is None else _CUT


class ResponseFramer(_Framer):
    """
    Frames the backend's responses, pairing each with the oldest request
    the backend was sent and has not answered.  A response's metadata is
    C{status} (the status of the latest head read: an interim C{1xx} head
    and the final head are the same message) and C{version}; C{interim}
    lists the statuses of interim heads.
    """

    direction = DOWNSTREAM
    request = False

    def _context(self) -> Head | None:
        sent = self.session.sent
        if not sent:
            return None
        meta = sent[0].meta
        context = Head()
        context.method = meta.get("method")
        context.upgrade = bool(meta.get("upgrade"))
        return context

    def _head(self, head: bytes, parsed: Head) -> bytes:
        sent = self.session.sent
        request = sent[0] if sent else None
        status = parsed.status
        assert status is not None
        message = self.message
        if message is None:
            message = self.openMessage(
                RESPONSE, {"status": status, "version": parsed.version}, request)
        else:
            meta = message.meta
            meta.setdefault("interim", []).append(meta["status"])
            meta["status"] = status
        if status < 200 and status != 101:
            # Interim: the final head follows, in the same message.
            self.state = _HEAD
            return head
        method = None
        if request is not None:
            sent.popleft()
            method = request.meta.get("method")
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            self.state = _CLOSE
            self.session.switch()
        elif method == "HEAD" or status == 204 or status == 304:
            self.state = _LENGTH
            self.remaining = 0
        elif parsed.chunked:
            self.state = _CHUNK_SIZE
        elif parsed.contentLength is not None:
            self.state = _LENGTH
            self.remaining = parsed.contentLength
        else:
            self.state = _CLOSE
        return head

    def _settle(self) -> None:
        """
        The open response (after an interim head) ends with the stream: its
        request is answered.
        """
        message = self.message
        sent = self.session.sent
        if message is not None and sent and message.request is sent[0]:
            sent.popleft()

    def _invalid(self, why: str) -> None:
        if self.message is None:
            sent = self.session.sent
            if sent:
                self.openMessage(RESPONSE, {"invalid": why}, sent.popleft())
            else:
                self.openMessage(DATA, {"invalid": why})
        else:
            self._settle()
        self.state = _CLOSE
        self.session.switch()

    def finish(self) -> list[Frame]:
        self._settle()
        return _Framer.finish(self)


__all__ = ["HEAD_LIMIT", "LINE_LIMIT", "RequestFramer", "ResponseFramer", "findHeadEnd"]
