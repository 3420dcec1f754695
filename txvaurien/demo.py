"""
A small HTTP backend served in the proxy's own process
(C{--backend demo}), so txvaurien can be tried with no other service
running.

Routes:
  - C{GET /}: a short text page;
  - C{POST /echo}: the request body, back;
  - C{GET /bytes/N}: N bytes (at most 1 GiB), streamed;
  - C{GET /status/N}: an empty response with status N.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from txvaurien import logs
from txvaurien.endpoints import Attempt, TCPBackend

_log = logs.logger("txvaurien.demo")
_access = logs.logger("txvaurien.demo.access")

MAX_BYTES = 1024**3
_CHUNK = b"txvaurien demo data\n" * 3277  # 65540 bytes


class _Index(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (
            b"Hello from the txvaurien demo backend.\n"
            b"Try POST /echo, GET /bytes/1000000 or GET /status/503,\n"
            b"with and without --behavior (for example 50:delay).\n"
        )


class _Echo(Resource):
    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/octet-stream")
        return request.content.read()


@implementer(IPushProducer)
class _BytesProducer:
    """
    Writes C{remaining} bytes to a request, pausing when it is full.
    """

    def __init__(self, request: Any, remaining: int) -> None:
        self.request = request
        self.remaining = remaining
        self.paused = False
        self.done = False

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        if self.done:
            return
        self.paused = False
        while not self.paused and self.remaining:
            chunk = _CHUNK[: self.remaining]
            self.remaining -= len(chunk)
            self.request.write(chunk)
        if not self.remaining and not self.paused:
            self.done = True
            self.request.unregisterProducer()
            self.request.finish()

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.done = True


class _Bytes(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        try:
            count = int(request.postpath[0])
            if not 0 <= count <= MAX_BYTES:
                raise ValueError(count)
        except (IndexError, ValueError):
            request.setResponseCode(400)
            return b"usage: /bytes/N with 0 <= N <= 1073741824\n"
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"content-length", str(count).encode("ascii"))
        if count == 0:
            return b""
        _BytesProducer(request, count).start()
        return NOT_DONE_YET


class _Status(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        try:
            code = int(request.postpath[0])
            if not 100 <= code <= 599:
                raise ValueError(code)
        except (IndexError, ValueError):
            request.setResponseCode(400)
            return b"usage: /status/N with 100 <= N <= 599\n"
        request.setResponseCode(code)
        return b""


class DemoSite(Site):
    """
    The demo backend's site: its access log lines and its port's messages
    are marked as the demo's (namespace C{txvaurien.demo.access}, text
    starting with "demo backend"), apart from the proxy's own lines.
    """

    def logPrefix(self) -> str:
        return "txvaurien demo backend"

    def log(self, request: Any) -> None:
        agent = request.getHeader(b"user-agent")
        _access.info(
            "demo backend: {method} {uri} {code} {length} bytes to {client}",
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("ascii", "replace"),
            code=request.code,
            length=request.sentLength,
            client=getattr(request.getClientAddress(), "host", "-"),
            agent=agent.decode("latin-1") if agent else None,
        )


def demoSite() -> Site:
    """
    The demo backend's web site.
    """
    root = Resource()
    root.putChild(b"", _Index())
    root.putChild(b"echo", _Echo())
    root.putChild(b"bytes", _Bytes())
    root.putChild(b"status", _Status())
    site = DemoSite(root)
    site.noisy = False
    site.displayTracebacks = False
    return site


class DemoService(Service):
    """
    Serves L{demoSite} on an ephemeral port of 127.0.0.1.

    @ivar port: the listening port, once started.
    """

    name = "demo"

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.port: Any = None

    def startService(self) -> None:
        Service.startService(self)
        d = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1").listen(demoSite())
        failures: list[Any] = []
        d.addCallbacks(self._listening, failures.append)
        if failures:
            failures[0].raiseException()

    def _listening(self, port: Any) -> None:
        self.port = port
        _log.info(
            "Demo HTTP backend listening on {address}",
            address="127.0.0.1:{}".format(port.getHost().port),
        )

    def stopService(self) -> Any:
        Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


class DemoBackend:
    """
    The backend for C{--backend demo}: the L{DemoService}'s port.
    """

    hint = (
        "Demo mode: try  curl -s http://{address}/  or  "
        "curl -s -o /dev/null -w '%{{http_code}} %{{time_total}}s\\n' "
        "http://{address}/bytes/1000000"
    )

    def __init__(self, reactor: Any, service: DemoService) -> None:
        self.reactor = reactor
        self.service = service

    @property
    def description(self) -> str:
        port = self.service.port
        if port is None:
            return "demo (not started)"
        return "demo (127.0.0.1:{})".format(port.getHost().port)

    def connect(self, factory: Any, timeout: float) -> Attempt:
        port = self.service.port
        if port is None:
            from twisted.internet.error import ConnectionRefusedError
            from twisted.python.failure import Failure

            factory.clientConnectionFailed(
                None, Failure(ConnectionRefusedError("the demo backend is stopped"))
            )
            return Attempt(None)
        backend = TCPBackend(self.reactor, "127.0.0.1", port.getHost().port)
        return backend.connect(factory, timeout)
