# -*- test-case-name: txvaurien.test.test_control_vaurien -*-
"""
Vaurien's REST API, acting on the default proxy (the one C{--backend}
describes), or on the proxy named by a C{?proxy=NAME} query argument; and
C{GET /connections}, ours.

  - C{GET /behavior}: C{{"behavior": SPEC, "options": {...}}};
  - C{PUT /behavior}: C{{"name": SPEC, OPTION: VALUE, ...}} (for a
    weighted specification of several behaviors, each one's options under
    its name), checked against the declared option types and applied to
    live connections; C{{"status": "ok"}};
  - C{GET /behaviors}: every behavior this process knows, third-party
    plugins included, with its options;
  - C{GET /backend}: C{{"backend": ENDPOINT}}, with C{"tls": {...}} when
    the backend leg is TLS, saying how it is verified (see
    L{txvaurien.control.tlsconfig.describeBackend}); C{PUT /backend}
    C{{"backend": ENDPOINT}};
  - C{GET /connections}: the live connections of every proxy.

Errors are Vaurien's (Cornice's): C{{"status": "error", "errors":
[{"location": ..., "name": ..., "description": ...}]}}.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from txvaurien import options
from txvaurien.control import errors
from txvaurien.control.jsonio import BodyError, decodeStrict
from txvaurien.control.managed import ManagedProxy, addressText, baseOptions
from txvaurien.control.manager import ProxyManager
from txvaurien.control.tlsconfig import describeBackend
from txvaurien.control.resource import (
    VAURIEN,
    Reply,
    Route,
    countArgument,
    limitArgument,
    queryArgument,
    readBody,
    vaurienError,
    vaurienReply,
)
from txvaurien.table import REQUEST_SCOPE

_MARKUP = re.compile(r"[CLIB]\{([^{}]*)\}")


def summary(obj: Any) -> str:
    """
    The first paragraph of an object's docstring, as plain text.
    """
    text = inspect.getdoc(type(obj)) or ""
    first = text.split("\n\n", 1)[0]
    return " ".join(_MARKUP.sub(r"\1", first).split())


def describeBehavior(behavior: Any) -> dict[str, Any]:
    """
    A behavior as C{GET /behaviors} lists it.
    """
    return {
        "name": behavior.name,
        "description": summary(behavior),
        "module": type(behavior).__module__,
        "options": {
            spec.name: {
                "type": spec.type.name,
                "default": spec.default,
                "description": spec.description,
            }
            for spec in options.specs(behavior).values()
        },
    }


def _object(request: Any) -> dict[str, Any]:
    try:
        body = decodeStrict(readBody(request))
    except BodyError as e:
        raise errors.ApiError(str(e), 400, "body")
    if not isinstance(body, dict):
        raise errors.ApiError(
            "expected a JSON object, got {}".format(type(body).__name__), 400, "body")
    return body


class VaurienAPI:
    """
    The handlers of Vaurien's endpoints.

    @ivar manager: the L{ProxyManager}.
    """

    def __init__(self, manager: ProxyManager) -> None:
        self.manager = manager

    def routes(self) -> list[Route]:
        return [
            Route("/behavior", VAURIEN, {"GET": self.getBehavior, "PUT": self.putBehavior}),
            Route("/behaviors", VAURIEN, {"GET": self.listBehaviors}),
            Route("/backend", VAURIEN, {"GET": self.getBackend, "PUT": self.putBackend}),
            Route("/connections", VAURIEN, {"GET": self.connections}),
        ]

    def _proxy(self, request: Any) -> ManagedProxy:
        name = queryArgument(request, "proxy")
        try:
            return self.manager.default(name)
        except errors.ApiError as e:
            if name is not None:
                e.message = "no proxy named {!r}".format(name)
            raise errors.ApiError(e.message, 404, "proxy", "querystring")

    def getBehavior(self, request: Any) -> Reply:
        """
        C{GET /behavior}: the base table and its behaviors' options.
        """
        proxy = self._proxy(request)
        return vaurienReply({"behavior": proxy.base.spec, "options": baseOptions(proxy)})

    def putBehavior(self, request: Any) -> Any:
        """
        C{PUT /behavior}: replace the base table.
        """
        proxy = self._proxy(request)
        body = _object(request)
        if "name" not in body:
            raise errors.ApiError(
                "required: a behavior name or a weighted specification such as "
                "20:delay,10:error", 400, "name")
        given = dict(body)
        spec = given.pop("name")
        if set(given) == {"options"} and isinstance(given["options"], dict):
            given = dict(given["options"])
        manager = self.manager

        def put() -> Reply:
            manager.setBehavior(proxy, spec, given)
            return vaurienReply({"status": "ok"})

        return manager.serialized(put)

    def listBehaviors(self, request: Any) -> Reply:
        """
        C{GET /behaviors}.
        """
        registry = self.manager.defaults.registry
        return vaurienReply({"behaviors": [describeBehavior(b) for b in registry.behaviors]})

    def getBackend(self, request: Any) -> Reply:
        """
        C{GET /backend}: the backend as given, and its TLS if it has some.
        """
        proxy = self._proxy(request)
        reply: dict[str, Any] = {"backend": proxy.upstream}
        tls = describeBackend(proxy.factory.backend)
        if tls is not None:
            reply["tls"] = tls
        return vaurienReply(reply)

    def putBackend(self, request: Any) -> Any:
        """
        C{PUT /backend}: new connections go to the new backend.
        """
        proxy = self._proxy(request)
        body = _object(request)
        if "backend" not in body:
            raise errors.ApiError(
                "required: an endpoint string or host:port", 400, "backend")
        manager = self.manager

        def put() -> Reply:
            manager.setBackend(proxy, body["backend"])
            return vaurienReply({"status": "ok"})

        return manager.serialized(put)

    def connections(self, request: Any) -> Reply:
        """
        C{GET /connections}: each proxy's live connections, oldest first,
        at most C{?limit=} (L{LIST_LIMIT}) of each, after C{?after=ID}.
        """
        name = queryArgument(request, "proxy")
        proxies = self.manager.proxies
        if name is not None:
            if name not in proxies:
                return vaurienError(404, "querystring", "proxy",
                                    "no proxy named {!r}".format(name))
            selected = [proxies[name]]
        else:
            selected = [proxies[n] for n in sorted(proxies)]
        limit = limitArgument(request, LIST_LIMIT, MAX_LIST_LIMIT)
        after = countArgument(queryArgument(request, "after"), "after", -1)
        listed = {}
        more = {}
        for proxy in selected:
            listed[proxy.name], left = describeConnections(proxy, limit, after)
            if left:
                more[proxy.name] = listed[proxy.name][-1]["id"]
        body: dict[str, Any] = {"proxies": listed}
        if more:
            body["more"] = more
        return vaurienReply(body)


#: How many connections of each proxy C{GET /connections} lists, unless
#: C{?limit=} says otherwise, and the most it may ask for.
LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000


def describeConnections(proxy: ManagedProxy, limit: int | None = None,
                        after: int = -1) -> tuple[list[dict[str, Any]], bool]:
    """
    A proxy's live connections, oldest first: peer, age, bytes each way,
    and the behaviors chosen for the whole connection (under request
    scope each request draws its own, so none is listed).

    @param limit: list at most this many (L{None}: all).
    @param after: list only those whose id is greater.
    @return: the list, and whether more connections follow it.
    """
    factory = proxy.factory
    now = factory.reactor.seconds()
    result: list[dict[str, Any]] = []
    for connection in factory.connections:
        if connection.id <= after:
            continue
        if limit is not None and len(result) == limit:
            return result, True
        result.append({
            "id": connection.id,
            "peer": _peer(connection),
            "age": round(now - connection.opened, 3),
            "bytes": {
                "upstream": connection.upstream.nbytes,
                "downstream": connection.downstream.nbytes,
            },
            "scope": REQUEST_SCOPE if connection.requestScope else "connection",
            "behaviors": [behavior.name for behavior in connection.behaviors],
            "backend_connected": connection.backend is not None,
        })
    return result, False


def _peer(connection: Any) -> str:
    transport = connection.client.transport
    if transport is None:
        return "?"
    try:
        return addressText(transport.getPeer())
    except Exception:
        return "?"
