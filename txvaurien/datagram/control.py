# -*- test-case-name: txvaurien.test.test_datagram_control -*-
"""
UDP proxies in the control API: Toxiproxy's C{POST /proxies} with the
extension field C{"protocol": "udp"}, toxics and Vaurien's behaviors on
them.

A L{DatagramService} has what the proxy manager uses of a stream
proxy's service (C{factory}, C{listen}, C{ports}, C{enabled},
C{startListening}, C{stopListening}), and its L{DatagramProxy} what the
manager, Vaurien's API and the metrics read of a factory, so
L{ManagedProxy} manages it unchanged.  This module builds one from a
Toxiproxy body, and checks that the behaviors given to a UDP proxy can act
on datagrams.

The control API calls (see the glue in the final report of the branch):

  - L{createDatagramProxy} from C{ProxyManager.create} when the body's
    C{protocol} is C{udp};
  - L{checkBehaviors} before adding a toxic or setting a behavior on a
    proxy whose factory L{isDatagramProxy};
  - L{protocolField} to add C{"protocol": "udp"} to the proxy's JSON.
"""

from __future__ import annotations

from typing import Any, Iterable

from txvaurien.control import errors
from txvaurien.control.managed import ManagedProxy
from txvaurien.control.manager import ProxyManager
from txvaurien.datagram.addresses import (
    AddressError,
    isDatagram,
    parseUDPBackend,
    parseUDPListen,
)
from txvaurien.datagram.pipeline import STREAM_ONLY, isDatagramBehavior
from txvaurien.datagram.proxy import DatagramProxy
from txvaurien.datagram.service import makeDatagramService
from txvaurien.table import CONNECTION_SCOPE, REQUEST_SCOPE, buildTable

#: The value of Toxiproxy's C{protocol} extension field for a UDP proxy.
UDP = "udp"


def udpListen(listen: str) -> str:
    """
    The C{udp:} string for a Toxiproxy C{listen} (C{127.0.0.1:5353},
    C{:5353}, C{[::1]:5353}) or a C{udp:} string.

    @raise txvaurien.control.errors.ApiError: 400 saying what is wrong.
    """
    text = listen.strip()
    if not isDatagram(text):
        host, colon, port = text.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not colon:
            raise errors.badBody(
                "listen: expected HOST:PORT for a UDP proxy, got {!r}".format(listen),
                "listen")
        text = "udp:{}:interface={}".format(port, host.replace(":", "\\:"))
    try:
        parseUDPListen(text)
    except AddressError as e:
        raise errors.badBody("listen: {}".format(e), "listen")
    return text


def udpUpstream(upstream: str) -> Any:
    """
    The L{txvaurien.datagram.addresses.UDPBackend} for a Toxiproxy
    C{upstream} (C{127.0.0.1:53}, C{[::1]:53}) or a C{udp:} string.

    @raise txvaurien.control.errors.ApiError: 400 saying what is wrong.
    """
    text = upstream.strip()
    if not isDatagram(text):
        host, colon, port = text.rpartition(":")
        text = "udp:host={}:port={}".format(host.strip("[]").replace(":", "\\:"), port)
    try:
        return parseUDPBackend(text)
    except AddressError as e:
        raise errors.badBody("upstream: {}".format(e), "upstream")


def isDatagramProxy(proxy: ManagedProxy) -> bool:
    """
    Whether C{proxy} relays UDP.
    """
    return isinstance(proxy.factory, DatagramProxy)


def protocolField(proxy: ManagedProxy) -> dict[str, str]:
    """
    The extension fields of C{proxy}'s JSON: C{{"protocol": "udp"}} for a
    UDP proxy, nothing for a TCP one (Toxiproxy's own clients see no new
    field).
    """
    return {"protocol": UDP} if isDatagramProxy(proxy) else {}


def checkBehaviors(proxy: ManagedProxy, behaviors: Iterable[Any]) -> None:
    """
    Refuse, before they are applied, behaviors (toxics or Vaurien's
    behaviors) that cannot act on datagrams when C{proxy} is a UDP proxy.

    @raise txvaurien.control.errors.ApiError: 400 naming the behavior.
    """
    if not isDatagramProxy(proxy):
        return
    for behavior in behaviors:
        if not isDatagramBehavior(behavior):
            why = STREAM_ONLY.get(
                behavior.name, "it does not declare that it acts on datagrams")
            raise errors.badBody(
                "{} cannot act on UDP proxy {}: {}".format(behavior.name, proxy.name, why),
                "type")


def createDatagramProxy(
    manager: ProxyManager,
    name: str,
    listen: str,
    upstream: str,
    enabled: bool = True,
    protocol: str = "tcp",
) -> ManagedProxy:
    """
    Create a UDP proxy managed like the others (Toxiproxy's C{POST
    /proxies} with C{"protocol": "udp"}): it binds at once if enabled and
    the manager runs, and its table starts as C{100:dummy}.

    @param protocol: the protocol handler framing its datagrams (C{tcp}:
        opaque, or C{dns}).
    @raise txvaurien.control.errors.ApiError: 409 if the name is taken,
        400 for a bad address, 500 if the port cannot be bound.
    """
    if name in manager.proxies:
        raise errors.proxyExists()
    defaults = manager.defaults
    registry = defaults.registry
    listenText = udpListen(listen)
    backend = udpUpstream(upstream)
    handler = registry.protocols.get(protocol).configure({})
    scope = REQUEST_SCOPE if handler.framesRequests else CONNECTION_SCOPE
    base = buildTable("100:dummy", registry, {}, scope)
    service = makeDatagramService(
        [listenText], backend, handler, base, defaults.reactor, defaults.random, name)
    service.enabled = False
    proxy = ManagedProxy(name, service, upstream, listen, base)  # type: ignore[arg-type]
    service.setServiceParent(manager)
    if enabled:
        if manager.running:
            try:
                manager._start(proxy)
            except errors.ApiError:
                service.disownServiceParent()
                raise
        else:
            service.enabled = True
    manager._register(proxy)
    return proxy


__all__ = [
    "UDP",
    "checkBehaviors",
    "createDatagramProxy",
    "isDatagramProxy",
    "protocolField",
    "udpListen",
    "udpUpstream",
]
