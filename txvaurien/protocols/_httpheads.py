# -*- test-case-name: txvaurien.test.test_protocol_http -*-
"""
Reading HTTP/1.x message heads (start line and header fields) with a
well-kept parser: httptools (llhttp, in C) or h11 (pure Python).

The framers of L{txvaurien.protocols._httpframing} find where a head ends
themselves (the first empty line) and own the byte accounting of bodies;
this module only turns the bytes of one head into a L{Head}: the method or
status, the version, and the few fields that decide how the message is
delimited.  A head the parser refuses raises L{InvalidHead}.

A L{HeadReader} reads one head.  The framer feeds it the bytes of a head
that is still incomplete as they arrive; httptools, which parses
incrementally, then notices a peer that does not speak HTTP at once
instead of after an empty line that may never come.
"""

from __future__ import annotations

import re
from typing import Any

import h11
import httptools

from txvaurien.protocols._ownmethods import HotMethods

HTTPTOOLS = "httptools"
H11 = "h11"
PARSERS = (HTTPTOOLS, H11)


class InvalidHead(ValueError):
    """
    The bytes are not an HTTP/1.x message head the parser accepts.
    """


class Head(HotMethods):
    """
    What the framers need to know of one message head.  It is also the
    object httptools calls back while it reads the head.

    @ivar method: the request method (C{"GET"}), or L{None} for a response.
    @ivar target: the request target (C{"/index.html"}), or L{None}.
    @ivar status: the response status code, or L{None} for a request.
    @ivar version: C{"1.0"} or C{"1.1"}.
    @ivar contentLength: the C{Content-Length}, or L{None}.
    @ivar chunked: whether the last transfer coding is C{chunked}.
    @ivar encoded: whether a C{Transfer-Encoding} field is present.
    @ivar close: whether the sender asked to close after this message
        (C{Connection: close}, or HTTP/1.0 without C{keep-alive}).
    @ivar upgrade: whether an C{Upgrade} field is present.
    @ivar expectContinue: whether the request has C{Expect: 100-continue}.
    """

    #: The callbacks httptools calls for every head: each subclass gets
    #: its own copy.
    hot = ("on_url", "on_header", "on_headers_complete")

    # Defaults as class attributes: a head sets only what it has.
    method: str | None = None
    target: str | None = None
    status: int | None = None
    version = "1.1"
    contentLength: int | None = None
    chunked = False
    encoded = False
    close = False
    upgrade = False
    expectContinue = False
    # Parsing state.
    url = b""
    complete = False
    begun = 0
    error: str | None = None
    closeToken = False
    keepAliveToken = False
    # Callbacks httptools must not call; being there as None spares it a
    # failing attribute lookup for each when it makes a parser.
    on_message_begin = None
    on_status = None
    on_body = None
    on_message_complete = None
    on_chunk_header = None
    on_chunk_complete = None

    def __repr__(self) -> str:
        return "<Head {} {} {} HTTP/{}>".format(
            self.method, self.target, self.status, self.version)

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.complete = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) not in _FIELD_LENGTHS:
            return
        key = name.lower()
        if key not in _FIELDS:
            return
        if key == b"content-length":
            text = value.strip()
            if not text.isdigit():
                self.error = "invalid Content-Length {!r}".format(text)
                return
            length = int(text)
            if self.contentLength is not None and self.contentLength != length:
                self.error = "conflicting Content-Length fields"
            self.contentLength = length
        elif key == b"transfer-encoding":
            codings = [c.strip() for c in value.lower().split(b",") if c.strip()]
            if codings:
                self.encoded = True
                self.chunked = codings[-1] == b"chunked"
        elif key == b"connection":
            for token in value.lower().split(b","):
                token = token.strip()
                if token == b"close":
                    self.closeToken = True
                elif token == b"keep-alive":
                    self.keepAliveToken = True
        elif key == b"upgrade":
            self.upgrade = True
        else:
            self.expectContinue = value.strip().lower() == b"100-continue"

    def done(self) -> Head:
        """
        Check the fields read and settle C{close}.

        @raise InvalidHead: if a field is unusable or the version unknown.
        """
        if self.error is not None:
            raise InvalidHead(self.error)
        if self.version == "1.1":
            self.close = self.closeToken
        elif self.version == "1.0":
            self.close = not self.keepAliveToken
        else:
            raise InvalidHead("unsupported version HTTP/{}".format(self.version))
        return self


class RequestHead(Head):
    """
    A request's L{Head}: httptools also says when a message begins, to
    notice a head that holds more than one (an HTTP/0.9 request line
    followed by another request).
    """

    def on_message_begin(self) -> None:  # type: ignore[override]
        self.begun += 1


_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
_METHODS = {m.encode("ascii"): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")}

_FIELDS = frozenset([
    b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect"])
_FIELD_LENGTHS = frozenset(len(name) for name in _FIELDS)


def _newParser(request: bool, head: Head) -> Any:
    return (httptools.HttpRequestParser if request else httptools.HttpResponseParser)(head)


def _check(parser: Any, head: Head, request: bool, final: bool) -> None:
    """
    After httptools read some bytes of C{head}: refuse what the framer
    could not delimit.
    """
    if request and parser.get_http_version() == "0.9":
        raise InvalidHead("HTTP/0.9 request")
    if head.complete != final:
        if final:
            raise InvalidHead("the parser found no end of head at the empty line")
        # The parser saw a whole head where the framer saw none.
        raise InvalidHead("head ended before an empty line")
    if request and head.begun > 1:
        raise InvalidHead("more than one message in a head")


def _settle(parser: Any, head: Head, request: bool) -> Head:
    head.version = parser.get_http_version()
    if request:
        method = parser.get_method()
        head.method = _METHODS.get(method) or method.decode("ascii")
        head.target = head.url.decode("latin-1")
    else:
        head.status = parser.get_status_code()
    return head.done()


def readHead(request: bool, data: bytes, parser: str = HTTPTOOLS,
             context: Head | None = None) -> Head:
    """
    Read a whole head (up to and including its first empty line).

    @param context: for a response, the head of the request it answers
        (or L{None}); h11 needs it.
    @raise InvalidHead: if the parser refuses it, or sees in it anything
        but exactly one head ending at its last byte.
    """
    if parser == H11:
        return _h11Request(data) if request else _h11Response(data, context)
    p: Any
    if request:
        head: Head = RequestHead()
        p = httptools.HttpRequestParser(head)
    else:
        head = Head()
        p = httptools.HttpResponseParser(head)
    try:
        p.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as e:
        raise InvalidHead(str(e) or type(e).__name__)
    # llhttp ends a head only at an empty line, and it was given the bytes
    # up to the first one: it must have read exactly one whole head.
    if not head.complete or (request and head.begun != 1):
        _check(p, head, request, True)
    # The version, from bytes llhttp checked: cheaper than asking it.
    if request:
        line = data.find(b"\r\n")
        version = _VERSIONS.get(data[line - 3:line]) if line > 0 else None
        method = p.get_method()
        head.method = _METHODS.get(method) or method.decode("ascii")
        head.target = head.url.decode("latin-1")
    else:
        version = _VERSIONS.get(data[5:8]) if data.startswith(b"HTTP/") else None
        head.status = p.get_status_code()
    if version is None:
        version = p.get_http_version()
    head.version = version
    if head.error is None:
        if version == "1.1":
            head.close = head.closeToken
            return head
        if version == "1.0":
            head.close = not head.keepAliveToken
            return head
    return head.done()


class HeadReader:
    """
    Reads a head that arrives in pieces.

    With httptools, bytes are parsed as they come, so a peer that does not
    speak HTTP is refused at its first wrong byte.  h11 reads only whole
    heads: until the empty line arrives, nothing is checked but the
    framer's size limit.

    Whatever the chunking, a head is accepted only if the parser sees
    exactly one message head that ends exactly at the empty line the
    framer found, so a head is accepted or refused alike however it was
    cut.

    @ivar request: C{True} for a request head, C{False} for a response.
    @ivar parser: L{HTTPTOOLS} or L{H11}.
    """

    __slots__ = ("request", "parser", "_head", "_parser")

    def __init__(self, request: bool, parser: str = HTTPTOOLS) -> None:
        self.request = request
        self.parser = parser
        self._head: Head | None = None
        self._parser: Any = None

    def _feed(self, data: bytes, final: bool) -> Head:
        head = self._head
        if head is None:
            head = self._head = RequestHead() if self.request else Head()
            self._parser = _newParser(self.request, head)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as e:
            raise InvalidHead(str(e) or type(e).__name__)
        _check(self._parser, head, self.request, final)
        return head

    def feedPartial(self, data: bytes) -> None:
        """
        More bytes of a head whose end has not arrived yet.

        @raise InvalidHead: if the bytes cannot begin a valid head.
        """
        if self.parser == HTTPTOOLS:
            self._feed(data, False)

    def finish(self, rest: bytes, head: bytes, context: Head | None = None) -> Head:
        """
        The head is complete.

        @param rest: the bytes of the head not yet given to L{feedPartial}.
        @param head: the whole head (for parsers that read it in one go).
        @param context: for a response, the head of the request it
            answers (or L{None}); h11 needs it.
        @raise InvalidHead: if the parser refuses it.
        """
        if self.parser == H11:
            return readHead(self.request, head, H11, context)
        if len(rest) > 1:
            self._feed(rest[:-1], False)
        return _settle(self._parser, self._feed(rest[-1:], True), self.request)


_HOST_VALUE = re.compile(rb"(?im)^host[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$")


def requestHost(head: bytes, target: str | None = None) -> str | None:
    """
    The authority a request is for: that of an absolute-form target
    (C{http://a.test/x}), which RFC 9112 3.2.2 puts before the C{Host}
    field, else the C{Host} field's value; L{None} when there is neither
    (or an empty one).  Only connections routed by C{Host} ask: the
    framers do not read the field.

    @param head: the request's head.
    @param target: its target, as L{readHead} read it.
    @raise InvalidHead: if the head has several C{Host} fields that
        differ.
    """
    if target is not None and "://" in target[:8]:
        scheme, _, rest = target.partition("://")
        if scheme.lower() in ("http", "https"):
            authority = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
            return authority or None
    values = _HOST_VALUE.findall(head)
    if not values:
        return None
    if len(values) > 1 and len(set(values)) > 1:
        raise InvalidHead("several different Host fields")
    return values[0].decode("latin-1") or None


def _h11Fields(head: Head, headers: Any) -> Head:
    for name, value in headers:
        head.on_header(name, value)
    return head.done()


def _h11Version(version: bytes) -> str:
    text = version.decode("ascii")
    if text not in ("1.0", "1.1"):
        raise InvalidHead("unsupported version HTTP/{}".format(text))
    return text


def _h11Request(data: bytes) -> Head:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data.lstrip(b"\r\n"))
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as e:
        raise InvalidHead(str(e))
    if not isinstance(event, h11.Request):
        raise InvalidHead("h11 read {!r}".format(event))
    head = Head()
    head.version = _h11Version(event.http_version)
    head.method = event.method.decode("ascii")
    head.target = event.target.decode("latin-1")
    return _h11Fields(head, event.headers)


def _h11Response(data: bytes, request: Head | None) -> Head:
    connection = h11.Connection(h11.CLIENT)
    method = b"GET"
    headers = [(b"Host", b"backend")]
    if request is not None:
        method = (request.method or "GET").encode("ascii")
        if request.upgrade:
            headers += [(b"Connection", b"upgrade"), (b"Upgrade", b"unknown")]
    try:
        connection.send(h11.Request(method=method, target=b"/", headers=headers))
    except h11.LocalProtocolError as e:
        raise InvalidHead("cannot pair a response with {!r}: {}".format(method, e))
    connection.receive_data(data.lstrip(b"\r\n"))
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as e:
        raise InvalidHead(str(e))
    if not isinstance(event, (h11.Response, h11.InformationalResponse)):
        raise InvalidHead("h11 read {!r}".format(event))
    head = Head()
    head.version = _h11Version(event.http_version)
    head.status = event.status_code
    return _h11Fields(head, event.headers)


__all__ = [
    "H11", "HTTPTOOLS", "PARSERS", "Head", "HeadReader", "InvalidHead", "readHead",
    "requestHost",
]
