# -*- test-case-name: txvaurien.test.test_datagram_service -*-
"""
Where a UDP proxy listens and where it forwards, and its own options.

C{--proxy udp:PORT[:interface=HOST]} and C{--backend
udp:host=HOST:port=PORT} (C{udp:HOST:PORT} too).  The backend host must be
an IP address: a connected UDP socket is given an address, and resolving a
name would block.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address

from txvaurien.endpoints import EndpointError
from txvaurien.options import Duration, Number

#: The options of UDP proxies, declared once like the core options
#: (C{--udp-session-timeout}, C{[vaurien] udp_max_sessions}).
DATAGRAM_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "udp_session_timeout": (
        "UDP: time without a datagram either way after which a client's "
        "session (and its backend socket) is closed",
        Duration("s", 0, exclusiveMinimum=True),
        60.0,
    ),
    "udp_max_sessions": (
        "UDP: most client sessions at once; datagrams from new clients "
        "beyond it are dropped and counted",
        Number(int, 1),
        1024,
    ),
    "udp_max_datagram": (
        "UDP: largest datagram forwarded, in bytes; larger ones are dropped "
        "and counted",
        Number(int, 1, 65535),
        65507,
    ),
}


class AddressError(EndpointError):
    """
    A C{udp:} address is invalid.
    """


def isDatagram(description: str) -> bool:
    """
    Whether a C{--proxy} or C{--backend} value names a UDP address.
    """
    return description.strip().lower().startswith("udp:")


def _fields(text: str) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    keywords: dict[str, str] = {}
    body = text.strip()[4:]
    # An IPv6 address has colons: it may be escaped (\:) as in Twisted's
    # endpoint strings.
    parts = body.replace("\\:", "\0").split(":")
    for part in parts:
        part = part.replace("\0", ":")
        key, eq, value = part.partition("=")
        if eq:
            keywords[key.strip()] = value.strip()
        else:
            positional.append(part.strip())
    return positional, keywords


def _port(text: str | None, where: str, allowZero: bool) -> int:
    if text is None or not text.isdigit():
        raise AddressError("{}: port {!r} is not a number".format(where, text))
    port = int(text)
    if not (0 if allowZero else 1) <= port <= 65535:
        raise AddressError("{}: port {} is out of range".format(where, port))
    return port


def parseUDPListen(text: str) -> tuple[int, str]:
    """
    C{(port, interface)} for C{udp:PORT[:interface=HOST]}.

    @raise AddressError: saying what is wrong.
    """
    positional, keywords = _fields(text)
    unknown = set(keywords) - {"interface", "port"}
    if unknown or len(positional) > 1:
        raise AddressError(
            "cannot listen on {!r}: use udp:PORT or udp:PORT:interface=HOST".format(text))
    port = _port(keywords.get("port", positional[0] if positional else None),
                 "cannot listen on {!r}".format(text), True)
    interface = keywords.get("interface", "")
    if interface and not (isIPAddress(interface) or isIPv6Address(interface)):
        raise AddressError(
            "cannot listen on {!r}: interface {!r} is not an IP address".format(
                text, interface))
    return port, interface


class UDPBackend:
    """
    A UDP backend address.

    @ivar host: an IP address.
    @ivar port: the port.
    @ivar description: C{udp:HOST:PORT}, for logs.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.description = "udp:{}:{}".format(host, port)

    @property
    def interface(self) -> str:
        """
        The wildcard interface of the backend's address family, to bind
        session sockets to.
        """
        return "::" if isIPv6Address(self.host) else "0.0.0.0"


def parseUDPBackend(text: str) -> UDPBackend:
    """
    The backend for C{udp:host=HOST:port=PORT} or C{udp:HOST:PORT}.

    @raise AddressError: saying what is wrong.
    """
    positional, keywords = _fields(text)
    where = "cannot forward to {!r}".format(text)
    unknown = set(keywords) - {"host", "port"}
    if unknown or len(positional) > 2:
        raise AddressError(
            "{}: use udp:host=HOST:port=PORT".format(where))
    host = keywords.get("host", positional[0] if positional else "")
    port = _port(keywords.get("port", positional[1] if len(positional) > 1 else None),
                 where, False)
    if not (isIPAddress(host) or isIPv6Address(host)):
        raise AddressError(
            "{}: host {!r} must be an IP address (a UDP backend is not "
            "resolved)".format(where, host))
    return UDPBackend(host, port)


__all__ = [
    "AddressError",
    "DATAGRAM_OPTIONS",
    "UDPBackend",
    "isDatagram",
    "parseUDPBackend",
    "parseUDPListen",
]
