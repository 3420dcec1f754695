"""
Where the proxy listens and where it connects.

Both take Twisted endpoint strings (C{tcp:8000:interface=127.0.0.1},
C{tcp:host=127.0.0.1:port=6379}, C{unix:/tmp/s}, C{tls:...}) or Vaurien's
C{host:port}.  Plain TCP backends are reached with
L{IReactorTCP.connectTCP} directly, the cheapest way per connection; every
other backend goes through its endpoint.

TLS is handled by L{txvaurien.tls}: an C{ssl:} listener becomes a
C{txvaurien-tls:} one (ALPN answered by the proxy, certificates minted per
server name), a C{tls:} backend is verified before the proxy uses it, and
C{sni:NAME=BACKEND|...} chooses a backend by the server name a TLS client
asks for.  C{host:NAME=BACKEND|...} (L{txvaurien.hostroute}) chooses one by
the HTTP C{Host} of the client's first request.  Both are
L{RoutedBackend}s.
"""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar

from twisted.internet import error
from twisted.internet.endpoints import clientFromString, serverFromString

# Endpoint type names a "host:port" string must not be mistaken for.
_ENDPOINT_TYPES = frozenset(
    ["tcp", "tcp6", "ssl", "tls", "unix", "systemd", "host", "le", "lets", "onion"]
)
_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.\-]+)):(?P<port>\d+)$"
)


class EndpointError(ValueError):
    """
    An endpoint description is invalid.
    """


def _hostPort(text: str) -> tuple[str, int, bool] | None:
    match = _HOST_PORT.match(text.strip())
    if match is None:
        return None
    host = match.group("v6") or match.group("host")
    if match.group("host") and host.lower() in _ENDPOINT_TYPES:
        return None
    port = int(match.group("port"))
    if not 0 <= port <= 65535:
        raise EndpointError("port {} in {!r} is out of range".format(port, text))
    return host, port, bool(match.group("v6"))


def listenDescription(text: str) -> str:
    """
    The server endpoint string for a C{--proxy} value: C{8000} and
    C{host:8000} become TCP endpoints, anything else is taken as an
    endpoint string.
    """
    text = text.strip()
    if text.isdigit():
        return "tcp:{}:interface=127.0.0.1".format(text)
    if text.startswith("ssl:"):
        from txvaurien.tls import PREFIX

        return PREFIX + text[3:]
    parsed = _hostPort(text)
    if parsed is None:
        return text
    host, port, v6 = parsed
    if v6:
        return "tcp6:{}:interface={}".format(port, host.replace(":", "\\:"))
    return "tcp:{}:interface={}".format(port, host)


def checkListen(reactor: Any, text: str) -> str:
    """
    Validate a C{--proxy} value without binding.

    @return: its endpoint string.
    @raise EndpointError: saying what is wrong.
    """
    description = listenDescription(text)
    try:
        serverFromString(reactor, description)
    except Exception as e:
        raise EndpointError(
            "cannot listen on {!r}: {}".format(text, e or type(e).__name__)
        )
    return description


class Attempt:
    """
    A backend connection attempt that can be abandoned.
    """

    def __init__(self, cancel: Any) -> None:
        self._cancel = cancel

    def cancel(self) -> None:
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()


class TCPBackend:
    """
    A TCP backend, reached with C{connectTCP}.

    @ivar description: C{host:port}, for logs.
    """

    def __init__(self, reactor: Any, host: str, port: int) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.description = "{}:{}".format(host, port)

    def connect(self, factory: Any, timeout: float) -> Attempt:
        """
        Connect C{factory}'s protocol; failures reach
        C{factory.clientConnectionFailed}.
        """
        connector = self.reactor.connectTCP(self.host, self.port, factory, timeout)

        def cancel() -> None:
            try:
                connector.stopConnecting()
            except error.NotConnectingError:
                pass

        return Attempt(cancel)


class EndpointBackend:
    """
    A backend reached through any client endpoint (UNIX, TLS, ...).
    """

    def __init__(self, reactor: Any, endpoint: Any, description: str) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.description = description

    def connect(self, factory: Any, timeout: float) -> Attempt:
        d = self.endpoint.connect(factory)
        if timeout:
            d.addTimeout(timeout, self.reactor)
        d.addErrback(lambda reason: factory.clientConnectionFailed(None, reason))
        return Attempt(d.cancel)


class RoutedBackend:
    """
    A backend chosen per connection by a name the client gives:
    C{PREFIX:NAME=BACKEND|NAME=BACKEND|*=BACKEND}.  Names are
    case-insensitive; C{*} takes every other name.  Subclasses say where
    the name comes from (C{connect}).

    @cvar prefix: the backend string's prefix (C{"sni:"}, C{"host:"}).
    @ivar routes: lower-case name to backend; C{"*"} is the default.
    @ivar description: the backend string, for logs.
    @ivar needsProtocol: the protocol handler the proxy must use with this
        backend (or one of its routes), or L{None} (see L{checkProtocol}).
    """

    prefix: ClassVar[str] = ""
    #: The protocol this kind of routing reads its name from, if any.
    routingProtocol: ClassVar[str | None] = None

    def __init__(self, reactor: Any, routes: dict[str, Any], description: str) -> None:
        self.reactor = reactor
        self.routes = routes
        self.description = description
        self.needsProtocol = self.routingProtocol
        if self.needsProtocol is None:
            for backend in routes.values():
                needed = getattr(backend, "needsProtocol", None)
                if needed is not None:
                    self.needsProtocol = needed
                    break

    @classmethod
    def fromString(cls, reactor: Any, text: str,
                   parse: Callable[[Any, str], Any]) -> Any:
        """
        Parse C{PREFIX:NAME=BACKEND|...}; each BACKEND is parsed by
        C{parse}.

        @raise ValueError: saying which route is malformed.
        """
        routes = {}
        for part in text[len(cls.prefix):].split("|"):
            name, eq, backend = part.partition("=")
            if not eq or not name.strip() or not backend.strip():
                raise ValueError("route {!r} in {!r} is not NAME=BACKEND".format(part, text))
            routes[name.strip().lower()] = parse(reactor, backend.strip())
        return cls(reactor, routes, text)

    def describe(self) -> dict[str, Any]:
        """
        What the control API shows: each route's backend.
        """
        return {"routes": {name: backend.description for name, backend in self.routes.items()}}

    def choose(self, name: str | None) -> Any:
        """
        The backend for C{name} (any case), else the C{*} route's, else
        L{None}.
        """
        if name is not None:
            found = self.routes.get(name.lower())
            if found is not None:
                return found
        return self.routes.get("*")


def checkProtocol(backend: Any, protocol: str) -> None:
    """
    Refuse a backend that routes by what only another protocol carries
    (a C{host:} backend needs C{http}).

    @param protocol: the name of the proxy's protocol handler.
    @raise EndpointError: naming the backend and the protocol it needs.
    """
    needed = getattr(backend, "needsProtocol", None)
    if needed is not None and needed != protocol:
        raise EndpointError(
            "backend {!r} routes by the HTTP Host header: it needs --protocol {} "
            "(not {})".format(getattr(backend, "description", "?"), needed, protocol))


def _simpleTCP(text: str) -> tuple[str, int] | None:
    """
    C{(host, port)} for a C{tcp:} client string with only a host, a port
    and perhaps a timeout, else L{None}.
    """
    if not text.startswith("tcp:") or "\\" in text:
        return None
    positional = []
    keywords = {}
    for part in text[4:].split(":"):
        key, eq, value = part.partition("=")
        if eq:
            keywords[key] = value
        else:
            positional.append(part)
    if set(keywords) - {"host", "port", "timeout"} or len(positional) > 2:
        return None
    host = keywords.get("host", positional[0] if positional else None)
    port = keywords.get("port", positional[1] if len(positional) > 1 else None)
    if not host or port is None or not port.isdigit():
        return None
    return host, int(port)


def splitParts(text: str) -> list[str]:
    """
    The colon-separated parts of an endpoint string (C{\\:} escapes a
    colon).
    """
    parts = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def splitDescription(text: str) -> tuple[str, list[str], dict[str, str]]:
    """
    An endpoint string's type, positional arguments and keywords
    (C{\\:} escapes a colon).
    """
    parts = splitParts(text)
    positional = []
    keywords = {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if eq:
            keywords[key] = value
        else:
            positional.append(part)
    return parts[0], positional, keywords


def _checkTCP(text: str) -> None:
    """
    Say which part of a C{tcp:} client string is missing, instead of the
    C{TypeError} its endpoint's constructor would raise.
    """
    kind, positional, keywords = splitDescription(text)
    if kind not in ("tcp", "tcp6"):
        return
    missing = []
    if not keywords.get("host") and not positional:
        missing.append("host")
    if "port" not in keywords and len(positional) < 2 - ("host" in keywords):
        missing.append("port")
    if missing:
        raise EndpointError("{} missing in backend {!r} (expected {}:host=H:port=P)".format(
            " and ".join(missing) + (" is" if len(missing) == 1 else " are"), text, kind))


def _parseTLS(reactor: Any, text: str) -> Any:
    from txvaurien.tls.certs import TLSConfigError
    from txvaurien.tls.client import TLSBackend

    kind, positional, keywords = splitDescription(text)
    names = ["host", "port"]
    for value in positional:
        if not names:
            raise EndpointError("too many positional arguments in {!r}".format(text))
        keywords.setdefault(names.pop(0), value)
    try:
        return TLSBackend.fromString(reactor, text, keywords)
    except (ValueError, TLSConfigError) as e:
        raise EndpointError("backend {!r}: {}".format(text, e))


def parseBackend(reactor: Any, text: str) -> Any:
    """
    The backend for a C{--backend} value.

    @raise EndpointError: saying what is wrong.
    """
    text = text.strip()
    if text.startswith("tls:"):
        return _parseTLS(reactor, text)
    if text.startswith("sni:") or text.startswith("host:"):
        routed: Any
        if text.startswith("sni:"):
            from txvaurien.tls.client import SNIBackend as routed
        else:
            from txvaurien.hostroute import HostBackend as routed
        try:
            return routed.fromString(reactor, text, parseBackend)
        except ValueError as e:
            raise EndpointError(str(e))
    _checkTCP(text)
    parsed = _hostPort(text)
    if parsed is not None:
        host, port, _ = parsed
        if port == 0:
            raise EndpointError("backend port must not be 0 in {!r}".format(text))
        return TCPBackend(reactor, host, port)
    try:
        endpoint = clientFromString(reactor, text)
    except Exception as e:
        raise EndpointError(
            "cannot connect to {!r}: {}".format(text, e or type(e).__name__)
        )
    simple = _simpleTCP(text)
    if simple is not None:
        host, port = simple
        if not 0 < port <= 65535:
            raise EndpointError("backend port {} in {!r} is out of range".format(port, text))
        return TCPBackend(reactor, host, port)
    return EndpointBackend(reactor, endpoint, text)
