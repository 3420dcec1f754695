"""
Where the proxy listens and where it connects.

Both take Twisted endpoint strings (C{tcp:8000:interface=127.0.0.1},
C{tcp:host=127.0.0.1:port=6379}, C{unix:/tmp/s}, C{tls:...}) or Vaurien's
C{host:port}.  Plain TCP backends are reached with
L{IReactorTCP.connectTCP} directly, the cheapest way per connection; every
other backend goes through its endpoint.
"""

from __future__ import annotations

import re
from typing import Any

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


def parseBackend(reactor: Any, text: str) -> Any:
    """
    The backend for a C{--backend} value.

    @raise EndpointError: saying what is wrong.
    """
    text = text.strip()
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
