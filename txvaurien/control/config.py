# -*- test-case-name: txvaurien.test.test_control_config -*-
"""
Toxiproxy-style proxy lists: the JSON file C{--config proxies.json} reads
at start, and the body of C{POST /populate}::

    [
      {"name": "redis", "listen": "127.0.0.1:26379",
       "upstream": "127.0.0.1:6379", "enabled": true,
       "toxics": [{"type": "latency", "attributes": {"latency": 100}}]}
    ]

Each entry has Toxiproxy's fields; C{toxics}, a list of toxic bodies as
C{POST /proxies/NAME/toxics} takes them, is honoured (Toxiproxy ignores
it).  The whole list is checked before anything changes.
"""

from __future__ import annotations

import json
from typing import Any, Container

from txvaurien import endpoints
from txvaurien.control import errors
from txvaurien.control.jsonio import BodyError, decodeStrict, goField
from txvaurien.control.tlsconfig import TLSSpec, parseTLS
from txvaurien.control.toxics import Toxic, buildToxic
from txvaurien.registry import Registry

#: Where a proxy listens when its C{listen} is empty or missing.  Toxiproxy
#: binds every interface; a chaos proxy should not be reachable from other
#: hosts by accident.
DEFAULT_LISTEN = "127.0.0.1:0"


class ProxySpec:
    """
    A checked proxy declaration.

    @ivar name: its name.
    @ivar listen: the address as given (C{host:port}).
    @ivar description: the server endpoint string for C{listen}.
    @ivar upstream: the backend as given.
    @ivar enabled: whether it listens.
    @ivar toxics: its toxics, or L{None} if the entry did not list any
        (then an existing proxy keeps its own).
    @ivar protocol: C{"tcp"}, or C{"udp"} for a datagram proxy (our
        extension field; Toxiproxy's clients never send it).
    @ivar tls: its checked C{tls} object (our extension, see
        L{txvaurien.control.tlsconfig}), or L{None} for plain TCP.
    @ivar backend: the backend string the proxy connects with: C{upstream},
        or the C{tls:} string C{tls.upstream} makes of it.
    """

    def __init__(
        self,
        name: str,
        listen: str,
        description: str,
        upstream: str,
        enabled: bool,
        toxics: list[Toxic] | None,
        protocol: str = "tcp",
        tls: TLSSpec | None = None,
        backend: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.tls = tls
        self.backend = upstream if backend is None else backend
        self.name = name
        self.listen = listen
        self.description = description
        self.upstream = upstream
        self.enabled = enabled
        self.toxics = toxics

    def __repr__(self) -> str:
        return "<ProxySpec {} {} -> {} enabled={}>".format(
            self.name, self.listen, self.upstream, self.enabled)


def listenDescription(reactor: Any, listen: str) -> str:
    """
    The server endpoint string for a Toxiproxy C{listen} address
    (C{host:port}, C{:port}, C{[::1]:port}) or an endpoint string.

    @raise txvaurien.control.errors.ApiError: 400 if it is not one.
    """
    text = listen.strip() or DEFAULT_LISTEN
    if text.startswith(":") and text[1:].isdigit():
        text = "tcp:" + text[1:]
    try:
        return endpoints.checkListen(reactor, text)
    except endpoints.EndpointError as e:
        raise errors.badBody("listen: {}".format(e), "listen")


def checkUpstream(reactor: Any, upstream: str, protocol: str = "tcp") -> Any:
    """
    The backend for a Toxiproxy C{upstream}, for a proxy whose protocol
    handler is C{protocol} (Toxiproxy's proxies frame C{tcp}).

    @raise txvaurien.control.errors.ApiError: 400 if it is not one, or it
        needs another protocol (L{endpoints.checkProtocol}).
    """
    try:
        backend = endpoints.parseBackend(reactor, upstream)
        endpoints.checkProtocol(backend, protocol)
        return backend
    except endpoints.EndpointError as e:
        raise errors.badBody("upstream: {}".format(e), "upstream")


def _stringField(entry: dict[str, Any], field: str) -> str:
    found, value = goField(entry, field)
    if not found or value is None:
        return ""
    if not isinstance(value, str):
        raise errors.typeMismatch(value, "Proxy", field, "string")
    return value


def parseProxy(
    reactor: Any,
    registry: Registry,
    entry: Any,
    where: str = "",
    taken: Container[str] = (),
) -> ProxySpec:
    """
    Check one proxy declaration (a C{POST /proxies} body or a list entry).

    @param where: appended to missing-field messages (C{" at proxy 2"}).
    @param taken: names already in use, refused with C{409} before the
        addresses are checked (Toxiproxy checks no addresses).
    @raise txvaurien.control.errors.ApiError: with Toxiproxy's message.
    """
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        raise errors.badBody(
            "json: cannot unmarshal {} into Go value of type toxiproxy.Proxy".format(
                "array" if isinstance(entry, list) else "value"))
    name = _stringField(entry, "name")
    listen = _stringField(entry, "listen")
    upstream = _stringField(entry, "upstream")
    found, enabled = goField(entry, "enabled")
    if not found or enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise errors.typeMismatch(enabled, "Proxy", "enabled", "bool")
    if not name:
        raise errors.missingField("name" + where)
    if not upstream:
        raise errors.missingField("upstream" + where)
    if name in taken:
        raise errors.proxyExists()
    if "/" in name:
        raise errors.badBody("proxy name {!r} must not contain '/'".format(name), "name")
    found, protocol = goField(entry, "protocol")
    if not found or protocol is None:
        protocol = "tcp"
    if protocol not in ("tcp", "udp"):
        raise errors.badBody(
            "protocol {!r}: expected \"tcp\" or \"udp\"".format(protocol), "protocol")
    tls = parseTLS(entry)
    backend = upstream
    if protocol == "udp":
        from txvaurien.datagram.control import udpListen, udpUpstream

        if tls is not None:
            raise errors.badBody("tls: a udp proxy cannot use TLS", "tls")
        description = udpListen(listen or DEFAULT_LISTEN)
        udpUpstream(upstream)
    else:
        description, backend, _ = checkAddresses(reactor, listen, upstream, tls)
    toxics: list[Toxic] | None = None
    found, given = goField(entry, "toxics")
    if found and given is not None:
        if not isinstance(given, list):
            raise errors.typeMismatch(given, "Proxy", "toxics", "[]toxics.ToxicWrapper")
        toxics = []
        for index, body in enumerate(given):
            try:
                toxic = buildToxic(registry, body, {t.name for t in toxics})
            except errors.ApiError as e:
                e.message = "{} (toxic {}{})".format(e.message, index + 1, where)
                e.args = (e.message,)
                raise
            toxics.append(toxic)
    return ProxySpec(
        name, listen or DEFAULT_LISTEN, description, upstream, enabled, toxics, protocol,
        tls, backend)


def checkAddresses(reactor: Any, listen: str, upstream: str,
                   tls: TLSSpec | None) -> tuple[str, str, Any]:
    """
    Check a TCP proxy's C{listen} and C{upstream}, made TLS by C{tls}.

    @return: the server endpoint string to listen on, the backend string
        to connect with, and the backend (L{txvaurien.endpoints}).
    @raise txvaurien.control.errors.ApiError: 400 naming the field (a
        C{tls} key when a certificate or CA file is unusable).
    """
    if tls is None:
        description = listenDescription(reactor, listen)
        return description, upstream, checkUpstream(reactor, upstream)
    text = tls.listenString(listen.strip() or DEFAULT_LISTEN)
    description = _tlsChecked(tls, "listen", text, lambda: listenDescription(reactor, text))
    backend = tls.upstreamString(upstream)
    parsed = _tlsChecked(tls, "upstream", backend, lambda: checkUpstream(reactor, backend))
    return description, backend, parsed


def _tlsChecked(tls: TLSSpec, leg: str, text: str, check: Any) -> Any:
    """
    Run C{check}, which checks the endpoint string C{text} made for leg
    C{leg}; when C{tls} makes that leg TLS, a 400 it raises names the
    C{tls} field at fault and gives the reason without C{text}.
    """
    try:
        return check()
    except errors.ApiError as e:
        if getattr(tls, leg) is None or e.field != leg:
            raise
        reason = e.message
        quoted = "{!r}: ".format(text.strip())
        if quoted in reason:
            reason = reason.split(quoted, 1)[1]
        field = tls.blame(leg, reason)
        e.message = "bad request body: {}: {}".format(field, reason)
        e.args = (e.message,)
        e.field = field
        raise


def parseProxyList(reactor: Any, registry: Registry, value: Any) -> list[ProxySpec]:
    """
    Check a whole list of proxy declarations before anything is created.

    @raise txvaurien.control.errors.ApiError: for the first bad entry,
        naming it by its position from 1, as Toxiproxy does.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.badBody(
            "json: cannot unmarshal {} into Go value of type []struct {{ "
            "toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }}".format(
                "object" if isinstance(value, dict) else "value"))
    specs: list[ProxySpec] = []
    names: set[str] = set()
    for index, entry in enumerate(value):
        spec = parseProxy(reactor, registry, entry, " at proxy {}".format(index + 1))
        if spec.name in names:
            raise errors.badBody("duplicate proxy name {}".format(json.dumps(spec.name)), "name")
        names.add(spec.name)
        specs.append(spec)
    return specs


def loadConfig(reactor: Any, registry: Registry, path: str) -> list[ProxySpec]:
    """
    Read a JSON proxy list from a file.

    @raise ValueError: naming the file and what is wrong with it.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError("cannot read config file {!r}: {}".format(path, e.strerror))
    try:
        return parseProxyList(reactor, registry, decodeStrict(data))
    except BodyError as e:
        raise ValueError("config file {!r}: {}".format(path, e))
    except errors.ApiError as e:
        raise ValueError("config file {!r}: {}".format(path, e.message))
