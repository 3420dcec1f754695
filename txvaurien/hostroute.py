# -*- test-case-name: txvaurien.test.test_hostroute -*-
"""
Routing by the HTTP C{Host}: C{--backend 'host:a.test=BACKEND|*=BACKEND'}.

A L{HostBackend} is asked to connect while the proxy holds its client
(the upstream Pipe is paused until a backend connects).  It reads the
client's first request head itself, over a plain or a TLS listener
(L{_HeadRead}): the client's protocol hands its bytes to the read instead
of the Pipe, up to the http handler's head limit.  The C{Host} of that
head (or the authority of an absolute-form target) picks the route; the
bytes read are left in the connection's C{early}, which the upstream Pipe
is given first once the chosen backend connects, so the first request is
framed, and faulted, like any other.

Later requests on the connection are checked by the http session
(L{txvaurien.protocols.http.HTTPSession.routeByHost}): one whose C{Host}
goes to another backend is answered C{421 Misdirected Request} and the
connection closes.

A head that does not come (end of stream, C{--timeout}), is too long or
malformed, or names a host no route takes (without C{*}) is a failed
backend connection: the client gets the http handler's C{502} naming the
reason, and a warning names the host.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.python.failure import Failure

from txvaurien import logs
from txvaurien.endpoints import RoutedBackend
from txvaurien.protocols._httpheads import HTTPTOOLS, InvalidHead, readHead, requestHost
from txvaurien.protocols._httpstream import HEAD_LIMIT, findHeadEnd

_log = logs.logger("txvaurien.hostroute")

_EMPTY_LINES = re.compile(rb"[\r\n]*")


class HostRouteError(Exception):
    """
    The client's first request could not be routed; the message says why.
    """


def withoutPort(host: str) -> str:
    """
    C{host} (lower-case) without its port and trailing dot:
    C{a.test:8080} is C{a.test}, C{[::1]:80} is C{[::1]}.
    """
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end > 0 else host
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


class HostBackend(RoutedBackend):
    """
    Chooses a backend by the C{Host} of the client's first HTTP request:
    C{host:a.test=BACKEND|b.test:8080=BACKEND|*=BACKEND}.  A route with a
    port is matched first, then the name without the port; C{*} takes the
    rest, and requests without C{Host}.  Needs C{--protocol http}.
    """

    prefix = "host:"
    routingProtocol = "http"

    def choose(self, name: str | None) -> Any:
        """
        The backend for the C{Host} value C{name} (L{None}: no C{Host}).
        """
        routes = self.routes
        if name:
            name = name.strip().lower()
            found = routes.get(name)
            if found is None:
                found = routes.get(withoutPort(name))
            if found is not None:
                return found
        return routes.get("*")

    def connect(self, factory: Any, timeout: float) -> "_HeadRead":
        """
        Read the first request head of C{factory.connection}'s client,
        then connect the backend its C{Host} names; failures reach
        C{factory.clientConnectionFailed} with a L{HostRouteError}.
        """
        return _HeadRead(self, factory, timeout)


class _SameBackend:
    """
    The check the http session runs on each request of a connection
    routed by C{Host}: whether the request's C{Host} goes to the backend
    the connection was opened to.
    """

    __slots__ = ("backend", "chosen", "host")

    def __init__(self, backend: HostBackend, chosen: Any, host: str | None) -> None:
        self.backend = backend
        self.chosen = chosen
        # The last Host that went to the chosen backend: most requests on
        # a connection repeat it.
        self.host = host

    def __call__(self, head: bytes, target: str | None) -> str | None:
        """
        L{None} if the request goes to the same backend; else its C{Host}
        (C{""} if it has none), to name it in the C{421} answer.
        """
        try:
            host = requestHost(head, target)
        except InvalidHead:
            return "(several)"
        if host == self.host:
            return None
        if self.backend.choose(host) is self.chosen:
            self.host = host
            return None
        return host or ""


class _HeadRead:
    """
    One connection's attempt: read the first request head from the client,
    choose, then connect the chosen backend (its attempt is C{inner}).
    L{cancel} (the client left, the connection closes) leaves nothing
    behind: the client's protocol is restored, the timer and the dial
    cancelled.
    """

    def __init__(self, backend: HostBackend, factory: Any, timeout: float) -> None:
        self.backend = backend
        self.factory = factory
        self.timeout = timeout
        self.connection = connection = getattr(factory, "connection", None)
        self.chunks: list[bytes] = []
        self.size = 0
        self.scanned = 0
        self.finished = False
        self.inner: Any = None
        self.call: Any = None
        self.timer: Any = None
        self.client: Any = getattr(connection, "client", None)
        transport = getattr(self.client, "transport", None)
        if transport is None:
            self.finished = True
            factory.clientConnectionFailed(None, Failure(HostRouteError(
                "the host: backend needs a client connection to read from")))
            return
        self.transport = transport
        session = connection.session  # type: ignore[union-attr]
        self.parser = getattr(session, "parserName", HTTPTOOLS)
        # The client's bytes come here, not to the Pipe, until a backend is
        # chosen (the Pipe is paused meanwhile: nothing else reads them).
        state = vars(self.client)
        state["dataReceived"] = self.dataReceived
        state["readConnectionLost"] = self.readConnectionLost
        if timeout:
            self.timer = backend.reactor.callLater(timeout, self._timedOut, timeout)
        transport.resumeProducing()

    # The client's protocol, while the head is read

    def dataReceived(self, data: bytes) -> None:
        if self.finished:
            # After a failure: read and dropped, so that the client is not
            # reset before it reads its answer.
            return
        self.chunks.append(data)
        self.size += len(data)
        if self.call is not None:
            # Decrypted in the same read as the head (TLS hands over all it
            # has): the Pipe gets them too, in order.
            return
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = [data]
        # Empty lines may come before a request; the search for the empty
        # line that ends the head goes on where the last one stopped.
        start = _EMPTY_LINES.match(data).end()  # type: ignore[union-attr]
        end = findHeadEnd(data, max(start, self.scanned))
        if end < 0:
            if self.size - start > HEAD_LIMIT:
                self._fail("no end of request head within {} bytes".format(HEAD_LIMIT))
            self.scanned = max(start, self.size - 3)
            return
        if end - start > HEAD_LIMIT:
            self._fail("request head longer than {} bytes".format(HEAD_LIMIT))
            return
        head = data[start:end]
        try:
            parsed = readHead(True, head, self.parser)
            host = requestHost(head, parsed.target)
        except InvalidHead as e:
            self._fail("malformed request head: {}".format(e))
            return
        chosen = self.backend.choose(host)
        if chosen is None:
            if host is None:
                self._fail("the request has no Host field and no * route", host)
            else:
                self._fail("no backend for Host {!r}".format(host), host)
            return
        self._stopTimer()
        self.transport.pauseProducing()
        if getattr(self.transport, "hold", None) is None:
            # A socket: this read was the last one until the Pipe resumes.
            self._dial(chosen, host)
            return
        # TLS: the listener goes on handing over what it decrypted in this
        # read, which must be kept too; dial on the next turn.
        self.call = self.backend.reactor.callLater(0, self._dial, chosen, host)

    def readConnectionLost(self) -> None:
        if not self.finished and self.call is None:
            self._fail("the client ended its stream before a full request head")

    # Outcomes

    def _restore(self) -> None:
        state = vars(self.client)
        state.pop("dataReceived", None)
        state.pop("readConnectionLost", None)

    def _stopTimer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timedOut(self, timeout: float) -> None:
        self.timer = None
        self._fail("no full request head within {}s".format(timeout))

    def _dial(self, chosen: Any, host: str | None) -> None:
        self.call = None
        if self.finished:
            return
        self.finished = True
        self._restore()
        connection: Any = self.connection
        connection.early = b"".join(self.chunks)
        self.chunks = []
        routeByHost = getattr(connection.session, "routeByHost", None)
        if routeByHost is not None:
            routeByHost(_SameBackend(self.backend, chosen, host), chosen.description)
        if logs.isEnabled(logs.LogLevel.debug):
            _log.debug("{proxy} #{cid} Host {host!r}: backend {backend}",
                       proxy=connection.proxy.name, cid=connection.id, host=host,
                       backend=chosen.description, event="hostroute")
        self.inner = chosen.connect(self.factory, self.timeout)

    def _fail(self, why: str, host: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self._stopTimer()
        self.chunks = []
        connection: Any = self.connection
        _log.warn(
            "{proxy} #{cid} {backend}: cannot route Host {host!r}: {why}",
            proxy=connection.proxy.name, cid=connection.id, backend=self.backend.description,
            host=host, why=why, event="hostroute")
        self.factory.clientConnectionFailed(None, Failure(HostRouteError(why)))

    def cancel(self) -> None:
        """
        Abandon the attempt, wherever it is.
        """
        call, self.call = self.call, None
        if call is not None and call.active():
            call.cancel()
        self._stopTimer()
        self.chunks = []
        if self.client is not None:
            self._restore()
        self.finished = True
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.cancel()


__all__ = ["HostBackend", "HostRouteError", "withoutPort"]
