# -*- test-case-name: txvaurien.test.test_protocol_http -*-
"""
The C{http} protocol handler: HTTP/1.0 and HTTP/1.1, requests and
responses.

Each request and each response is one message; behaviors act on whole
requests (under request scope each request and its response draw their
own behaviors) and the C{error} behavior answers a request with a
well-formed HTTP response.  Framing is in
L{txvaurien.protocols._httpframing}, head parsing in
L{txvaurien.protocols._httpheads}.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Callable, ClassVar
from weakref import WeakSet

from zope.interface import implementer

from txvaurien import logs
from txvaurien.endpoints import splitParts
from txvaurien.frames import CLOSE_AFTER, RESPONSE, Frame, Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.options import Choice
from txvaurien.pipe import TRACKING
from txvaurien.protocols._httpframing import RequestFramer, ResponseFramer
from txvaurien.protocols._httpheads import HTTPTOOLS, PARSERS, Head
from txvaurien.protocols._httpstream import _CLOSE
from txvaurien.protocols.base import ProtocolHandler, Session

_log = logs.logger("txvaurien.protocols.http")

#: Proxies already warned that their backend has no name for C{Host}.
_hostWarned: WeakSet[Any] = WeakSet()

#: The status of an error reply when the behavior asks for none.
DEFAULT_ERROR_STATUS = 503

_HOST_FIELD = re.compile(rb"(?im)^(host[ \t]*:[ \t]*)[^\r\n]*?([ \t]*\r?\n)")
_DEFAULT_PORTS = {"tcp": 80, "tcp6": 80, "tls": 443, "ssl": 443}
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")

#: A key of a request's L{Message.meta} on a connection routed by
#: C{Host}: the C{Host} of a request that goes to another backend (it is
#: answered C{421} and the connection closes).
MISDIRECTED = "misdirected"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _authority(host: str, port: int | None, default: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = "[" + host + "]"
    if port is None or port == default:
        return host
    return "{}:{}".format(host, port)


def backendAuthority(backend: Any) -> str | None:
    """
    The C{Host} value that names C{backend}: its host and, unless it is
    the scheme's default, its port; C{localhost} for a UNIX socket;
    L{None} if the backend's description says neither.

    @param backend: a L{txvaurien.endpoints.TCPBackend} (C{host},
        C{port}) or any backend with a C{description} endpoint string.
    """
    host = getattr(backend, "host", None)
    if host is not None:
        return _authority(str(host), getattr(backend, "port", None), 80)
    description = getattr(backend, "description", "") or ""
    parts = splitParts(description)
    kind = parts[0].lower()
    if kind == "unix":
        return "localhost"
    if kind not in _DEFAULT_PORTS:
        return None
    keywords = {}
    positional = []
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if eq:
            keywords[key] = value
        else:
            positional.append(part)
    host = keywords.get("host", positional[0] if positional else None)
    port = keywords.get("port", positional[1] if len(positional) > 1 else None)
    if not host:
        return None
    return _authority(host, int(port) if port and port.isdigit() else None,
                      _DEFAULT_PORTS[kind])


@implementer(IProtocolSession)
class HTTPSession(Session):
    """
    One connection's HTTP: a L{RequestFramer} upstream, a
    L{ResponseFramer} downstream, and the requests the backend was sent
    and has not answered yet (C{sent}), oldest first.

    @ivar switched: whether the connection left HTTP (an accepted
        upgrade or C{CONNECT}, or a backend that does not speak HTTP).
    @ivar parserName: C{"httptools"} or C{"h11"}, fixed for the
        connection.
    """

    protocolName = "HTTP"
    log = _log
    handler: "HTTP"

    def __init__(self, handler: "HTTP", connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.parserName = handler.settings["parser"]
        self.upstream = RequestFramer(self)
        self.downstream = ResponseFramer(self)
        self._host: bytes | None = None

    def rewriteHost(self, head: bytes) -> bytes:
        """
        C{head} with the value of its C{Host} fields replaced by the
        backend's host (and port).
        """
        host = self._host
        if host is None:
            proxy = self.connection.proxy
            authority = backendAuthority(proxy.backend)
            if authority is None:
                if proxy not in _hostWarned:
                    # Once per proxy, not per connection.
                    _hostWarned.add(proxy)
                    _log.warn(
                        "{proxy}: cannot tell a Host for backend {backend}; "
                        "Host fields are left alone",
                        proxy=proxy.name,
                        backend=getattr(proxy.backend, "description", "?"),
                    )
                authority = ""
            host = self._host = authority.encode("utf-8")
        if not host:
            return head
        return _HOST_FIELD.sub(lambda m: m.group(1) + host + m.group(2), head)

    def routeByHost(self, check: Callable[[bytes, str | None], str | None],
                    backend: str) -> None:
        """
        The connection was routed by the C{Host} of its first request (a
        C{host:} backend, L{txvaurien.hostroute}): from now on a request
        for which C{check(head, target)} gives a host (the backend it goes
        to is another) is not sent; the client gets C{421 Misdirected
        Request} (RFC 9110 15.5.20) with C{Connection: close}, after the
        responses to the requests before it, and the connection closes.
        Called before the client's first byte is framed; sessions of
        other connections pay nothing for it.

        @param backend: the backend chosen, for the answer and the log.
        """
        self.routedTo = backend
        self.upstream = _RoutedRequestFramer(self, check)
        self.downstream = _RoutedResponseFramer(self)
        vars(self)["requestSent"] = self._routedRequestSent

    routedTo: str | None = None

    def _routedRequestSent(self, request: Message) -> None:
        """
        L{requestSent} on a connection routed by C{Host}: a misdirected
        request is answered at once if no response is owed before it,
        otherwise by the response framer once those are through.
        """
        if MISDIRECTED not in request.meta:
            Session.requestSent(self, request)
            return
        if self.sent or self.downstream.message is not None:
            self.sent.append(request)
            return
        data, why = self.misdirected(request)
        self.connection.reply(request, data, close=True, reason=why)

    def misdirected(self, request: Message) -> tuple[bytes, str]:
        """
        The C{421} answer to a misdirected C{request}, and the reason the
        connection closes; logged as a warning.
        """
        host = request.meta[MISDIRECTED]
        why = "misdirected request: Host {!r} goes to another backend than {}".format(
            host, self.routedTo)
        connection = self.connection
        _log.warn(
            "{proxy} #{cid} request for Host {host!r} on a connection routed to "
            "{backend}: answered 421 Misdirected Request, then closed",
            proxy=connection.proxy.name, cid=connection.id, host=host,
            backend=self.routedTo, event="misdirected")
        text = ("Host {!r} is served by another backend than this connection's "
                "({}); retry on a new connection".format(host, self.routedTo))
        return self._response(request, 421, text, True), why

    def _response(
        self, request: Message | None, status: int, text: str, close: bool
    ) -> bytes:
        body = "txvaurien: {}\n".format(_UNPRINTABLE.sub(" ", text)).encode("ascii")
        lines = [
            "HTTP/1.1 {} {}".format(status, _phrase(status)),
            "Content-Type: text/plain; charset=utf-8",
        ]
        if status not in (204, 304):
            lines.append("Content-Length: {}".format(len(body)))
        meta = request.meta if request is not None else {}
        if close:
            lines.append("Connection: close")
        elif meta.get("version") == "1.0":
            lines.append("Connection: keep-alive")
        if meta.get("method") == "HEAD" or status in (204, 304):
            body = b""
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body

    def errorReply(
        self, request: Message | None, reason: str, code: int | None = None
    ) -> bytes:
        """
        An HTTP/1.1 response with status C{code} (503 if L{None}; codes
        below 200, which would not end the exchange, also become 503), a
        short text body and C{Content-Length}.  It says C{Connection:
        close} when the client asked to close, or when it answers no
        request in particular.
        """
        status = DEFAULT_ERROR_STATUS if code is None else int(code)
        if not 200 <= status <= 599:
            status = DEFAULT_ERROR_STATUS
        close = request is None or bool(request.meta.get("close"))
        return self._response(request, status, reason, close)

    def connectFailed(self, reason: str) -> bytes:
        """
        A C{502 Bad Gateway} response, before the connection is closed.
        """
        return self._response(None, 502, "backend unreachable: " + reason, True)


class _RoutedRequestFramer(RequestFramer):
    """
    The client's framer on a connection routed by C{Host}: a request
    whose C{Host} goes to another backend is framed as one empty request
    marked L{MISDIRECTED}, to be answered C{421}, and every byte from its
    head on is dropped (the connection closes after the answer).
    """

    def __init__(self, session: HTTPSession,
                 check: Callable[[bytes, str | None], str | None]) -> None:
        RequestFramer.__init__(self, session)
        self.check = check
        self.misdirected: Message | None = None
        self.dropping = False

    def _head(self, head: bytes, parsed: Head) -> bytes:
        sent = RequestFramer._head(self, head, parsed)
        host = self.check(head, parsed.target)
        if host is None:
            return sent
        message = self.message
        assert message is not None
        message.meta[MISDIRECTED] = host
        message.meta[CLOSE_AFTER] = "misdirected request"
        self.misdirected = message
        # Everything after the head is this message's, to be dropped.
        self.state = _CLOSE
        return b""

    def feed(self, data: bytes) -> list[Frame]:
        if self.dropping:
            return []
        frames = RequestFramer.feed(self, data)
        message = self.misdirected
        if message is None:
            return frames
        self.dropping = True
        self.message = None
        self.held = b""
        frames = [frame for frame in frames if frame.message is not message]
        frames.append(Frame(b"", message, True, True))
        return frames

    def finish(self) -> list[Frame]:
        if self.dropping:
            return []
        return RequestFramer.finish(self)


class _RoutedResponseFramer(ResponseFramer):
    """
    The backend's framer on a connection routed by C{Host}: once the
    responses owed before a misdirected request are through, its C{421}
    follows them.
    """

    session: HTTPSession

    def feed(self, data: bytes) -> list[Frame]:
        frames = ResponseFramer.feed(self, data)
        sent = self.session.sent
        if sent and self.message is None and MISDIRECTED in sent[0].meta:
            frames.append(self._answer(sent.popleft()))
        return frames

    def answerPending(self, frames: list[Frame]) -> None:
        sent = self.session.sent
        while sent:
            request = sent.popleft()
            if MISDIRECTED in request.meta:
                frames.append(self._answer(request))
            else:
                frames.append(Frame(b"", self.newMessage(
                    RESPONSE, self.unansweredMeta(request), request), True, True))

    def _answer(self, request: Message) -> Frame:
        session = self.session
        data, why = session.misdirected(request)
        connection: Any = session.connection
        downstream = connection.downstream
        downstream.injected += len(data)
        message = self.newMessage(
            RESPONSE, {"status": 421, "synthetic": True, CLOSE_AFTER: why}, request)
        if getattr(downstream, "path", None) == TRACKING:
            # Frames written while no fault acts are not checked for
            # CLOSE_AFTER: close once this one is written (now).
            connection.callLater(0, connection.close, why)
        return Frame(data, message, True, True)


class HTTP(ProtocolHandler):
    """
    HTTP/1.0 and HTTP/1.1: each request and each response is a message.

    Requests are framed with their body (C{Content-Length} or chunked, with
    trailers), pipelined requests one by one, and each response is paired
    with the request the backend was sent before it.  The C{error}
    behavior answers a request with a well-formed response whose status it
    chooses.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:8080 \\
            --protocol http --behavior 10:error --protocol-http-overwrite-host-header
    """

    name = "http"
    options: ClassVar[dict[str, tuple[str, Any, Any]]] = {
        "overwrite_host_header": (
            "Rewrite the Host field of requests to the backend's host and port",
            bool,
            False,
        ),
        "parser": (
            "Library that reads message heads: httptools (llhttp, in C) or h11 "
            "(pure Python, stricter); applies to new connections",
            Choice(*PARSERS),
            HTTPTOOLS,
        ),
    }
    framesRequests = True
    sessionClass = HTTPSession


__all__ = ["HTTP", "HTTPSession", "MISDIRECTED", "backendAuthority"]
