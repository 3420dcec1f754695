# -*- test-case-name: txvaurien.test.test_control_toxiproxy -*-
"""
Toxiproxy's REST API (version 2.12), so that Toxiproxy clients in any
language can drive txvaurien: the same paths, methods, status codes, JSON
shapes and error messages.

Where Toxiproxy has a bug, this API does the right thing instead (each is
listed in C{docs/migrating.rst}): toxics listed in a proxy list are
honoured, values are checked against the behaviors' declared bounds (a
zero C{rate} or a toxicity above 1 is a C{400}, not a stalled connection),
an unknown attribute is a C{400}, a proxy with no C{listen} binds
127.0.0.1 rather than every interface, and C{GET /metrics} always serves
Prometheus metrics.

Our extensions, which Toxiproxy's clients never send: a proxy's
C{protocol} (C{"udp"}) and its C{tls} object (L{txvaurien.control.tlsconfig}).
"""

from __future__ import annotations

from typing import Any

from txvaurien.control import errors
from txvaurien.control.config import parseProxy, parseProxyList
from txvaurien.control.jsonio import BodyError, decodeGo, goField, goJSON
from txvaurien.control.manager import ProxyManager
from txvaurien.control.resource import TOXIPROXY, Reply, Route, goReply, readBody
from txvaurien.control.tlsconfig import parseTLS
from txvaurien.control.toxics import buildToxic

#: The Toxiproxy version whose API this one reproduces, reported by
#: C{GET /version}.
TOXIPROXY_VERSION = "2.12.0"


def _body(request: Any) -> Any:
    try:
        return decodeGo(readBody(request))
    except BodyError as e:
        raise errors.badBody(str(e))


class ToxiproxyAPI:
    """
    The handlers of Toxiproxy's endpoints.

    @ivar manager: the L{ProxyManager}.
    @ivar metrics: the L{txvaurien.control.metrics.Metrics}.
    """

    def __init__(self, manager: ProxyManager, metrics: Any) -> None:
        self.manager = manager
        self.metrics = metrics

    def routes(self) -> list[Route]:
        return [
            Route("/reset", TOXIPROXY, {"POST": self.reset}),
            Route("/proxies", TOXIPROXY, {"GET": self.proxyIndex, "POST": self.proxyCreate}),
            Route("/populate", TOXIPROXY, {"POST": self.populate}),
            Route("/proxies/{proxy}", TOXIPROXY, {
                "GET": self.proxyShow, "POST": self.proxyUpdate,
                "PATCH": self.proxyUpdate, "DELETE": self.proxyDelete}),
            Route("/proxies/{proxy}/toxics", TOXIPROXY, {
                "GET": self.toxicIndex, "POST": self.toxicCreate}),
            Route("/proxies/{proxy}/toxics/{toxic}", TOXIPROXY, {
                "GET": self.toxicShow, "POST": self.toxicUpdate,
                "PATCH": self.toxicUpdate, "DELETE": self.toxicDelete}),
            Route("/version", TOXIPROXY, {"GET": self.version}),
            Route("/metrics", TOXIPROXY, {"GET": self.metricsText}),
        ]

    # Proxies

    def proxyIndex(self, request: Any) -> Reply:
        """
        C{GET /proxies}: every proxy, keyed by name (sorted, as Go sorts
        map keys).
        """
        proxies = self.manager.proxies
        return goReply({name: proxies[name].asJSON() for name in sorted(proxies)})

    def proxyCreate(self, request: Any) -> Any:
        """
        C{POST /proxies}: C{201} and the proxy, listening on its resolved
        address.
        """
        manager = self.manager
        spec = parseProxy(manager.defaults.reactor, manager.defaults.registry,
                          _body(request), taken=manager.proxies)
        d = manager.serialized(manager.create, spec)
        return d.addCallback(lambda proxy: goReply(proxy.asJSON(), 201))

    def populate(self, request: Any) -> Any:
        """
        C{POST /populate}: create or replace the listed proxies; C{201}
        and C{{"proxies": [...]}}, or the error that stopped the list with
        the proxies handled before it.
        """
        manager = self.manager
        try:
            specs = parseProxyList(
                manager.defaults.reactor, manager.defaults.registry, _body(request))
        except errors.ApiError as e:
            return _populated(None, e)
        d = manager.serialized(manager.populate, specs)
        return d.addCallback(lambda result: _populated(*result))

    def proxyShow(self, request: Any, name: str) -> Reply:
        """
        C{GET /proxies/NAME}.
        """
        return goReply(self.manager.get(name).asJSON())

    def proxyUpdate(self, request: Any, name: str) -> Any:
        """
        C{POST} or C{PATCH /proxies/NAME}: change C{listen}, C{upstream},
        C{enabled}; a C{tls} other than the proxy's is a 400.
        """
        manager = self.manager
        manager.get(name)
        body = _body(request)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise errors.badBody(
                "json: cannot unmarshal {} into Go value of type toxiproxy.Proxy".format(
                    "array" if isinstance(body, list) else "value"))
        found, _ = goField(body, "tls")
        if found and parseTLS(body) != manager.get(name).tls:
            raise errors.badBody(
                "tls: a proxy's tls cannot be changed; delete the proxy and create "
                "it again", "tls")
        d = manager.serialized(
            manager.update, name,
            goType(body, "listen", str, "string"),
            goType(body, "upstream", str, "string"),
            goType(body, "enabled", bool, "bool"))
        return d.addCallback(lambda proxy: goReply(proxy.asJSON()))

    def proxyDelete(self, request: Any, name: str) -> Any:
        """
        C{DELETE /proxies/NAME}: C{204} once the port is free.
        """
        d = self.manager.serialized(self.manager.delete, name)
        return d.addCallback(lambda _: Reply(204, b"", None))

    def reset(self, request: Any) -> Any:
        """
        C{POST /reset}: enable every proxy and remove every toxic; C{204}.
        """
        d = self.manager.serialized(self.manager.reset)
        return d.addCallback(lambda _: Reply(204, b"", None))

    # Toxics

    def toxicIndex(self, request: Any, name: str) -> Reply:
        """
        C{GET /proxies/NAME/toxics}: upstream toxics, then downstream ones.
        """
        proxy = self.manager.get(name)
        return goReply([toxic.asJSON() for toxic in proxy.orderedToxics()])

    def toxicCreate(self, request: Any, name: str) -> Any:
        """
        C{POST /proxies/NAME/toxics}: C{200} and the toxic, acting on live
        connections at once.
        """
        manager = self.manager
        proxy = manager.get(name)
        body = _body(request)

        def create() -> Reply:
            toxic = buildToxic(
                manager.defaults.registry, body, {t.name for t in proxy.toxics})
            manager.addToxic(proxy, toxic)
            return goReply(toxic.asJSON())

        return manager.serialized(create)

    def toxicShow(self, request: Any, name: str, toxicName: str) -> Reply:
        """
        C{GET /proxies/NAME/toxics/TOXIC}.
        """
        return goReply(self.manager.get(name).toxic(toxicName).asJSON())

    def toxicUpdate(self, request: Any, name: str, toxicName: str) -> Any:
        """
        C{POST} or C{PATCH /proxies/NAME/toxics/TOXIC}: merge
        C{attributes}, replace C{toxicity}; live connections see it.
        """
        manager = self.manager
        proxy = manager.get(name)
        proxy.toxic(toxicName)
        body = _body(request)

        def update() -> Reply:
            return goReply(manager.updateToxic(proxy, toxicName, body).asJSON())

        return manager.serialized(update)

    def toxicDelete(self, request: Any, name: str, toxicName: str) -> Any:
        """
        C{DELETE /proxies/NAME/toxics/TOXIC}: C{204}.
        """
        manager = self.manager
        proxy = manager.get(name)
        d = manager.serialized(manager.removeToxic, proxy, toxicName)
        return d.addCallback(lambda _: Reply(204, b"", None))

    # The rest

    def version(self, request: Any) -> Reply:
        """
        C{GET /version}, spelled as Toxiproxy spells it.
        """
        return Reply(
            200, '{{"version": "{}"}}\n'.format(TOXIPROXY_VERSION).encode("ascii"),
            "application/json;charset=utf-8")

    def metricsText(self, request: Any) -> Reply:
        """
        C{GET /metrics}: Prometheus text.
        """
        body, contentType = self.metrics.render()
        return Reply(200, body, contentType)


def goType(body: dict[str, Any], name: str, kind: type, goTypeName: str) -> Any:
    """
    A field of a C{toxiproxy.Proxy} JSON body checked as Go's decoder
    checks it: matched case-insensitively, L{None} when missing or C{null},
    and Go's error message for a value of another type.

    @raise txvaurien.control.errors.ApiError: 400 for a value of the wrong
        type.
    """
    found, value = goField(body, name)
    if not found or value is None:
        return None
    if not isinstance(value, kind):
        raise errors.typeMismatch(value, "Proxy", name, goTypeName)
    return value


def _populated(proxies: list[Any] | None, error: errors.ApiError | None) -> Reply:
    """
    The reply to C{POST /populate}: Toxiproxy writes it itself rather than
    as an error, so even a failure is C{application/json} with
    C{proxies}.
    """
    listed = [proxy.asJSON() for proxy in proxies] if proxies else None
    if error is None:
        return goReply({"proxies": listed}, 201)
    return Reply(error.status, goJSON(
        {"error": error.message, "status": error.status, "proxies": listed}))
