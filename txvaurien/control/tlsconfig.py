# -*- test-case-name: txvaurien.test.test_tls_api -*-
"""
TLS in the control APIs.

Toxiproxy's proxies are plain TCP.  Our extension, an optional C{tls}
object on a proxy (C{POST /proxies}, C{POST /populate}, C{--config}),
makes either leg TLS while C{listen} and C{upstream} stay Toxiproxy's
C{host:port}::

    {"name": "api", "listen": "127.0.0.1:8443", "upstream": "api.internal:443",
     "tls": {"listen": {"certKey": "server.pem", "privateKey": "server.key"},
             "upstream": {"caFile": "ca.pem", "serverName": "api.internal"}}}

C{tls.listen} terminates the clients' TLS (its keys are those of an
C{ssl:} listener, L{listenOptions}); C{tls.upstream} originates TLS to
the backend, verified unless C{"verify": false} (the keys of a C{tls:}
backend, L{upstreamOptions}; C{true} or C{{}} for the defaults).  The
object is turned into the endpoint strings C{--proxy} and C{--backend}
take, so both legs behave as on the command line.  Toxiproxy's clients
never send it; a proxy without it is plain TCP, and its JSON has no
C{tls} field.

L{describeBackend} is what Vaurien's C{GET /backend} shows of a backend's
TLS.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from txvaurien import endpoints, options
from txvaurien.control import errors

_UPSTREAM_KEYWORD = {"serverName": "sni"}


@functools.cache
def upstreamOptions() -> dict[str, tuple[str, Any, Any]]:
    """
    The keys of C{tls.upstream}: a C{tls:} backend's keywords
    (L{txvaurien.tls.client.BACKEND_OPTIONS}), but for the address
    (C{upstream} gives it), with C{serverName} for C{sni}.
    """
    from txvaurien.tls.client import BACKEND_OPTIONS

    return {("serverName" if name == "sni" else name): declared
            for name, declared in BACKEND_OPTIONS.items()
            if name not in ("host", "port", "timeout", "trustRoots")}


@functools.cache
def listenOptions() -> dict[str, tuple[str, Any, Any]]:
    """
    The keys of C{tls.listen}: an C{ssl:} listener's keywords
    (L{txvaurien.tls.server.SERVER_OPTIONS}), but for the address
    (C{listen} gives it).
    """
    from txvaurien.tls.server import SERVER_OPTIONS

    return {name: declared for name, declared in SERVER_OPTIONS.items()
            if name not in ("interface", "backlog")}


_ESCAPE = re.compile(r"([\\:])")


def _escaped(text: str) -> str:
    """
    A value for an endpoint string: C{\\} and C{:} escaped.
    """
    return _ESCAPE.sub(r"\\\1", text)


def _keywords(declaration: dict[str, tuple[str, Any, Any]], settings: dict[str, Any],
              rename: dict[str, str]) -> str:
    specs = options.specs(declaration)
    parts = []
    for name, value in settings.items():
        if value is None:
            continue
        parts.append(":{}={}".format(
            rename.get(name, name), _escaped(specs[name].type.format(value))))
    return "".join(parts)


class TLSSpec:
    """
    A proxy's checked C{tls} object.

    @ivar listen: the C{tls.listen} keys given (checked), or L{None} for a
        plain TCP listener.
    @ivar upstream: the C{tls.upstream} keys given (checked), or L{None}
        for a plain TCP backend.
    """

    def __init__(self, listen: dict[str, Any] | None,
                 upstream: dict[str, Any] | None) -> None:
        self.listen = listen
        self.upstream = upstream

    def __eq__(self, other: object) -> bool:
        """
        The same TLS as C{other}, as the API shows it (C{verify} left out
        is C{true}).
        """
        if not isinstance(other, TLSSpec):
            return NotImplemented
        return self.asJSON() == other.asJSON()

    def __repr__(self) -> str:
        return "<TLSSpec listen={!r} upstream={!r}>".format(self.listen, self.upstream)

    def asJSON(self) -> dict[str, Any]:
        """
        The object as the API shows it: the legs that are TLS, each with
        the keys given (C{verify} always shown for the upstream).
        """
        shown: dict[str, Any] = {}
        if self.listen is not None:
            shown["listen"] = dict(self.listen)
        if self.upstream is not None:
            shown["upstream"] = {"verify": True, **self.upstream}
        return shown

    def withoutUpstream(self) -> "TLSSpec | None":
        """
        This object once the backend was replaced (Vaurien's C{PUT
        /backend}): the listener's part only, or L{None}.
        """
        if self.listen is None:
            return None
        return TLSSpec(self.listen, None)

    def listenString(self, listen: str) -> str:
        """
        The C{--proxy} value for a Toxiproxy C{listen} address under
        C{tls.listen}: C{ssl:PORT:interface=HOST:...}, or C{listen} itself
        without it.

        @raise txvaurien.control.errors.ApiError: 400 if C{listen} is not
            C{host:port} or C{:port}.
        """
        if self.listen is None:
            return listen
        text = listen.strip()
        if text.startswith(":") and text[1:].isdigit():
            host, port = "", text[1:]
        else:
            parsed = _hostPort(text)
            if parsed is None:
                raise errors.badBody(
                    "tls.listen: listen must be host:port or :port, got {!r}".format(listen),
                    "tls.listen")
            host, port = parsed
        interface = ":interface=" + _escaped(host) if host else ""
        return "ssl:{}{}{}".format(port, interface, _keywords(listenOptions(), self.listen, {}))

    def upstreamString(self, upstream: str) -> str:
        """
        The C{--backend} value for a Toxiproxy C{upstream} under
        C{tls.upstream}: C{tls:host=H:port=P:...}, or C{upstream} itself
        without it.

        @raise txvaurien.control.errors.ApiError: 400 if C{upstream} is
            not C{host:port}.
        """
        if self.upstream is None:
            return upstream
        parsed = _hostPort(upstream.strip())
        if parsed is None:
            raise errors.badBody(
                "tls.upstream: upstream must be host:port, got {!r}".format(upstream),
                "tls.upstream")
        host, port = parsed
        return "tls:host={}:port={}{}".format(
            _escaped(host), port, _keywords(upstreamOptions(), self.upstream, _UPSTREAM_KEYWORD))

    def blame(self, leg: str, reason: str) -> str:
        """
        The field a reason is about (C{tls.upstream.caFile}): the key of
        leg C{leg} whose file the reason names first, else the leg.
        """
        given = getattr(self, leg) or {}
        found = []
        for name, value in given.items():
            if isinstance(value, str) and value and value in reason:
                found.append((reason.index(value), name))
        if not found:
            return "tls." + leg
        return "tls.{}.{}".format(leg, min(found)[1])


def _hostPort(text: str) -> tuple[str, str] | None:
    try:
        parsed = endpoints._hostPort(text)
    except endpoints.EndpointError:
        return None
    if parsed is None:
        return None
    return parsed[0], str(parsed[1])


def _leg(value: Any, leg: str, declaration: dict[str, tuple[str, Any, Any]],
         allowTrue: bool) -> dict[str, Any] | None:
    field = "tls." + leg
    if value is None or value is False:
        return None
    if value is True and allowTrue:
        return {}
    if not isinstance(value, dict):
        raise errors.badBody("{}: expected an object{}, got {}".format(
            field, " or true" if allowTrue else "", _jsonText(value)), field)
    try:
        return options.validate(declaration, value, where=field + ".", partial=True)
    except options.OptionError as e:
        raise errors.badBody("{}: {}".format(e.name, e.description), e.name)


def _jsonText(value: Any) -> str:
    import json

    return json.dumps(value)


def parseTLS(entry: dict[str, Any]) -> TLSSpec | None:
    """
    Check a proxy's C{tls} object, if it has one.

    @return: the L{TLSSpec}, or L{None} when C{tls} is missing, C{null} or
        names neither leg.
    @raise txvaurien.control.errors.ApiError: 400 naming the field
        (C{tls.upstream.verify}) and what is wrong with it.
    """
    from txvaurien.control.jsonio import goField

    found, value = goField(entry, "tls")
    if not found or value is None:
        return None
    if not isinstance(value, dict):
        raise errors.badBody("tls: expected an object with listen and/or upstream, got {}".format(
            _jsonText(value)), "tls")
    unknown = sorted(set(value) - {"listen", "upstream"})
    if unknown:
        raise errors.badBody("tls.{}: unknown field; known: listen, upstream".format(
            unknown[0]), "tls." + unknown[0])
    listen = _leg(value.get("listen"), "listen", listenOptions(), False)
    upstream = _leg(value.get("upstream"), "upstream", upstreamOptions(), True)
    if listen is not None and not any(
            listen.get(name) for name in ("privateKey", "certKey", "caCert", "caDir")):
        raise errors.badBody(
            "tls.listen: give certKey and privateKey (a certificate), or caCert or "
            "caDir (a CA that mints one per server name)", "tls.listen")
    if listen is None and upstream is None:
        return None
    return TLSSpec(listen, upstream)


def describeBackend(backend: Any) -> dict[str, Any] | None:
    """
    What Vaurien's C{GET /backend} shows of a backend's TLS, or L{None}
    for a plain one.

    For a TLS backend: its C{host} and C{port}, C{server_name} (the SNI
    sent, L{None} for an address), C{verify}, C{trust} (what the
    certificate is verified against: C{"system"}, the CA file or
    directory; L{None} when C{verify} is off), C{client_certificate}
    (whether one is presented) and C{alpn}.  For an C{sni:} backend,
    C{routes}: each server name's C{backend} and its C{tls}, described
    the same way.
    """
    routes = getattr(backend, "routes", None)
    if isinstance(routes, dict):
        return {"routes": {name: {"backend": route.description, "tls": describeBackend(route)}
                           for name, route in routes.items()}}
    describe = getattr(backend, "describe", None)
    if describe is None:
        return None
    return {("server_name" if name == "sni" else name): value
            for name, value in describe().items()}


__all__ = ["TLSSpec", "describeBackend", "listenOptions", "parseTLS", "upstreamOptions"]
