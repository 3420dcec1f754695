# -*- test-case-name: txvaurien.test.test_control_security -*-
"""
HTTP plumbing of the control API, on L{twisted.web}: routing, the guards
every request passes (browser user agents, the bearer token, the body
limit), and how replies and errors are written for each API.

Every request goes through, in order:

  1. a C{User-Agent} starting with C{Mozilla/} is refused with C{403}
     (as Toxiproxy does, so that a web page cannot drive the API from a
     browser), unless browsers are allowed;
  2. with a token configured, a request without C{Authorization: Bearer
     TOKEN} is refused with C{401} (the scheme's name is matched without
     regard to case, as RFC 7235 says);
  3. a body over L{MAX_BODY} bytes is refused with C{413}: at once when
     its C{Content-Length} says so (L{txvaurien.control.channel}), and
     otherwise (chunked) once it is read and thrown away rather than
     kept; a client that goes on sending far beyond the limit is
     disconnected;
  4. the route: an unknown path is C{404}, a known path with another
     method C{405}.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
from typing import Any, Callable
from urllib.parse import unquote

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from txvaurien import __version__, logs
from txvaurien.control.channel import ControlChannel
from txvaurien.control.errors import ApiError
from txvaurien.control.jsonio import BodyError, goJSON, pyJSON

_log = logs.logger("txvaurien.control")

#: The largest request body accepted, in bytes.
MAX_BODY = 1024 * 1024

#: How far past L{MAX_BODY} a client may go on sending before it is
#: disconnected rather than answered.
_DISCARD_LIMIT = 16 * MAX_BODY

TOXIPROXY = "toxiproxy"
VAURIEN = "vaurien"

_SERVER = "txvaurien/{}".format(__version__).encode("ascii")


class _Discard(io.BytesIO):
    """
    A request body that keeps nothing.
    """

    def write(self, data: Any) -> int:
        return len(data)


class ControlRequest(server.Request):
    """
    A request whose body is thrown away once it passes L{MAX_BODY} bytes.

    @ivar tooLarge: whether it did.
    """

    maximumBody = MAX_BODY
    tooLarge = False
    _bodySize = 0

    def gotLength(self, length: int | None) -> None:
        self._bodySize = 0
        if length is not None and length > self.maximumBody:
            self.tooLarge = True
            self.content = _Discard()
        else:
            server.Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        self._bodySize += len(data)
        content: Any = self.content
        if not self.tooLarge and self._bodySize > self.maximumBody:
            self.tooLarge = True
            content.close()
            content = self.content = _Discard()
        if not self.tooLarge:
            content.write(data)
        elif self._bodySize > _DISCARD_LIMIT:
            channel: Any = self.channel
            if channel is not None and channel.transport is not None:
                channel.transport.abortConnection()


class ControlSite(server.Site):
    """
    The control API's site: L{ControlRequest}s on L{ControlChannel}s, no
    tracebacks in replies, each request logged at debug level.

    @ivar requestTimeout: seconds a client has to send a whole request.
    @ivar lingering: the connections refused and not closed yet.
    """

    displayTracebacks = False
    noisy = False
    protocol = ControlChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Resource,
        requestTimeout: float | None = 10.0,
        idleTimeout: float | None = 60.0,
        **kwargs: Any,
    ) -> None:
        server.Site.__init__(
            self, resource, requestFactory=ControlRequest, timeout=idleTimeout, **kwargs)
        self.requestTimeout = requestTimeout
        self.lingering: set[Any] = set()

    def closeLingering(self) -> None:
        """
        Close the connections that were refused and are still open.
        """
        for channel in list(self.lingering):
            channel.closeNow()

    def buildProtocol(self, addr: Any) -> Any:
        channel = server.Site.buildProtocol(self, addr)
        channel.requestTimeout = self.requestTimeout
        channel.maximumBody = MAX_BODY
        return channel

    def log(self, request: Any) -> None:
        _log.debug(
            "{method} {uri} -> {code}",
            method=request.method.decode("latin-1"),
            uri=request.uri.decode("latin-1"),
            code=request.code,
            event="api",
        )


class Reply:
    """
    What a handler answers.

    @ivar status: the HTTP status code.
    @ivar body: the body, L{bytes}.
    @ivar contentType: the C{Content-Type}, or L{None} for none.
    @ivar headers: more headers.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        contentType: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers or {}


def goReply(value: Any, status: int = 200) -> Reply:
    """
    A Toxiproxy reply: Go's compact JSON.
    """
    return Reply(status, goJSON(value))


def goError(error: ApiError) -> Reply:
    """
    A Toxiproxy error, written as Go's C{http.Error} writes it: the JSON
    object and a newline, as C{text/plain}.
    """
    return Reply(
        error.status,
        goJSON({"error": error.message, "status": error.status}) + b"\n",
        "text/plain; charset=utf-8",
        {"X-Content-Type-Options": "nosniff"},
    )


def vaurienReply(value: Any, status: int = 200) -> Reply:
    """
    A Vaurien API reply.
    """
    return Reply(status, pyJSON(value))


def vaurienError(status: int, location: str, name: str | None, description: str) -> Reply:
    """
    A Vaurien API error: C{{"status": "error", "errors": [{"location",
    "name", "description"}]}}.
    """
    return vaurienReply(
        {"status": "error",
         "errors": [{"location": location, "name": name, "description": description}]},
        status,
    )


def errorReply(family: str, error: ApiError) -> Reply:
    """
    C{error} in the form of C{family}'s API.
    """
    if family == VAURIEN:
        return vaurienError(error.status, error.location, error.field, error.message)
    return goError(error)


def readBody(request: Any) -> bytes:
    """
    The request's body.
    """
    request.content.seek(0)
    return bytes(request.content.read())


def queryArgument(request: Any, name: str) -> str | None:
    """
    The first value of a query argument, or L{None}.
    """
    values = (request.args or {}).get(name.encode("ascii"))
    if not values:
        return None
    return bytes(values[0]).decode("utf-8", "replace")


def countArgument(value: str | None, name: str, default: int) -> int:
    """
    A non-negative integer given as the query argument (or header) C{name}
    (a cursor, an id), or C{default} when C{value} is L{None} or empty.

    @raise ApiError: (400) if it is not one.
    """
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ApiError(
            "{} must be a non-negative integer, got {!r}".format(name, value),
            400, name, "querystring")
    return number


def limitArgument(request: Any, default: int, maximum: int) -> int:
    """
    The C{?limit=} of a listing: from 1 to C{maximum}, C{default} if not
    given.

    @raise ApiError: (400) if it is not an integer in range.
    """
    limit = countArgument(queryArgument(request, "limit"), "limit", default)
    if not 1 <= limit <= maximum:
        raise ApiError(
            "limit must be between 1 and {}, got {}".format(maximum, limit),
            400, "limit", "querystring")
    return limit


Handler = Callable[..., Any]


class Route:
    """
    A path template (C{/proxies/{proxy}/toxics}) and its handlers by
    method.

    @ivar family: which API it belongs to (L{TOXIPROXY} or L{VAURIEN}),
        which decides how errors are written.
    """

    def __init__(self, template: str, family: str, handlers: dict[str, Handler]) -> None:
        self.template = template
        self.segments = template.strip("/").split("/")
        self.family = family
        self.handlers = handlers

    def match(self, segments: list[str]) -> list[str] | None:
        """
        The values of the template's variables for C{segments}, or L{None}
        if the path is not this route's.
        """
        if len(segments) != len(self.segments):
            return None
        values = []
        for pattern, segment in zip(self.segments, segments):
            if pattern.startswith("{"):
                if not segment:
                    return None
                values.append(segment)
            elif pattern != segment:
                return None
        return values


def _tooLarge() -> ApiError:
    return ApiError("request body larger than {} bytes".format(MAX_BODY), 413, "body")


def bearerMatches(header: bytes | None, token: str) -> bool:
    """
    Whether an C{Authorization} header carries C{token} in the C{Bearer}
    scheme, whose name is case-insensitive (RFC 7235, section 2.1); the
    token is compared in constant time.
    """
    scheme, _, given = (header or b"").strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token.encode("utf-8"))


def _requestId() -> str:
    return base64.b32encode(os.urandom(15)).decode("ascii").lower()[:20]


class ControlResource(Resource):
    """
    The root of the control API.

    @ivar routes: the L{Route}s, tried in order.
    @ivar token: the bearer token every request must carry, or L{None}.
    @ivar allowBrowsers: whether browser user agents are served.
    """

    isLeaf = True

    def __init__(
        self, routes: list[Route], token: str | None = None, allowBrowsers: bool = False
    ) -> None:
        Resource.__init__(self)
        self.routes = routes
        self.token = token
        self.allowBrowsers = allowBrowsers

    def _familyOf(self, segments: list[str]) -> str:
        for route in self.routes:
            if route.match(segments) is not None:
                return route.family
        return TOXIPROXY

    def render(self, request: Any) -> Any:
        request.setHeader(b"server", _SERVER)
        request.setHeader(b"x-toxiproxy-request-id", _requestId().encode("ascii"))
        path = request.path.decode("utf-8", "replace")
        segments = [unquote(s) for s in path.lstrip("/").split("/")]
        family = self._familyOf(segments)
        reply = self._guard(request, family)
        if reply is None:
            reply = self._route(request, segments)
        if isinstance(reply, Reply):
            return self._write(request, reply)
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))

        def send(result: Reply) -> None:
            if not finished:
                request.write(self._write(request, result))
                request.finish()

        reply.addCallback(send)
        reply.addErrback(lambda f: _log.failure("control API reply failed", f))
        return server.NOT_DONE_YET

    def _guard(self, request: Any, family: str) -> Reply | None:
        agent = request.getHeader(b"user-agent") or b""
        if agent.startswith(b"Mozilla/") and not self.allowBrowsers:
            return Reply(403, b"User agent not allowed\n", "text/plain; charset=utf-8",
                         {"X-Content-Type-Options": "nosniff"})
        if self.token is not None:
            if not bearerMatches(request.getHeader(b"authorization"), self.token):
                reply = errorReply(
                    family,
                    ApiError("missing or invalid bearer token", 401, "Authorization",
                             "header"))
                reply.headers["WWW-Authenticate"] = 'Bearer realm="txvaurien"'
                return reply
        if request.tooLarge:
            return errorReply(family, _tooLarge())
        return None

    def tooLarge(self, path: bytes) -> tuple[bytes, bytes]:
        """
        The body and content type of the C{413} for a request to C{path}
        whose C{Content-Length} is over L{MAX_BODY}, in its API's form.
        """
        text = path.split(b"?", 1)[0].decode("utf-8", "replace")
        family = self._familyOf([unquote(s) for s in text.lstrip("/").split("/")])
        reply = errorReply(family, _tooLarge())
        return reply.body, (reply.contentType or "text/plain").encode("ascii")

    def _route(self, request: Any, segments: list[str]) -> Any:
        method = request.method.decode("ascii", "replace").upper()
        for route in self.routes:
            values = route.match(segments)
            if values is None:
                continue
            handler = route.handlers.get(method)
            if handler is None:
                allowed = ", ".join(sorted(route.handlers))
                if route.family == VAURIEN:
                    reply = vaurienError(
                        405, "method", method,
                        "method not allowed; allowed: {}".format(allowed))
                else:
                    reply = Reply(405, b"", None)
                reply.headers["Allow"] = allowed
                return reply
            d = maybeDeferred(handler, request, *values)
            d.addErrback(self._failed, route.family)
            return d
        return Reply(404, b"404 page not found\n", "text/plain; charset=utf-8",
                     {"X-Content-Type-Options": "nosniff"})

    def _failed(self, failure: Failure, family: str) -> Reply:
        if isinstance(failure.value, ApiError):
            return errorReply(family, failure.value)
        if failure.check(BodyError):
            if family == VAURIEN:
                return vaurienError(400, "body", "body", str(failure.value))
            return goError(ApiError("bad request body: {}".format(failure.value), 400))
        _log.failure("control API request failed", failure)
        return errorReply(family, ApiError("internal error: {}".format(
            failure.getErrorMessage()), 500))

    def _write(self, request: Any, reply: Reply) -> bytes:
        request.setResponseCode(reply.status)
        if reply.contentType is not None:
            request.setHeader(b"content-type", reply.contentType.encode("ascii"))
        for name, value in reply.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("latin-1"))
        if reply.status not in (204, 304):
            request.setHeader(b"content-length", str(len(reply.body)).encode("ascii"))
        return reply.body
