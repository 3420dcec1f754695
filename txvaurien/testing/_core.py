# -*- test-case-name: txvaurien.test.test_testing_trial -*-
"""
What the session server (L{txvaurien.testing.server}) and the trial helpers
(L{txvaurien.testing.trial}) share: named proxies with their own protocol,
seed and behavior, made exactly as C{twistd vaurien} makes its proxy, and
kept by a L{txvaurien.control.manager.ProxyManager} so that behaviors,
toxics and enabling go through the control plane's own checks.
"""

from __future__ import annotations

import re
from typing import Any

from txvaurien.control import errors
from txvaurien.control.managed import ManagedProxy, ProxyDefaults
from txvaurien.control.manager import ProxyManager
from txvaurien.control.toxics import buildToxic
from txvaurien.randomness import RandomSource
from txvaurien.registry import Registry, defaultRegistry

_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):([0-9]{1,5})$")


class ChaosUsageError(ValueError):
    """
    A chaos proxy was asked for something it cannot do: an upstream that is
    not C{host:port}, an unknown behavior or option, a call on a proxy that
    was removed.  The message says which and why.
    """


def checkUpstream(upstream: Any) -> str:
    """
    The upstream as C{host:port} text.

    @param upstream: C{"host:port"}, a C{(host, port)} tuple, or a client
        endpoint string (C{tcp:host=H:port=P}, C{unix:path=...}).
    @raise ChaosUsageError: if it is none of these.
    """
    __tracebackhide__ = True
    if isinstance(upstream, tuple) and len(upstream) == 2:
        host, port = upstream
        if isinstance(host, str) and isinstance(port, int):
            upstream = "{}:{}".format("[{}]".format(host) if ":" in host else host, port)
    if isinstance(upstream, str):
        text = upstream.strip()
        if "=" in text:
            return text
        match = _HOSTPORT.match(text)
        if match and 0 < int(match.group(2)) < 65536:
            return text
    raise ChaosUsageError(
        "upstream {!r} is not host:port (for example \"127.0.0.1:6379\"), a "
        "(host, port) tuple, or a client endpoint string "
        "(tcp:host=H:port=P)".format(upstream))


def newManager(reactor: Any, registry: Registry | None = None) -> ProxyManager:
    """
    A proxy manager on C{reactor}, for proxies made by L{createProxy}.
    """
    defaults = ProxyDefaults(reactor, registry or defaultRegistry(), RandomSource(), grace=0.0)
    return ProxyManager(defaults)


def createProxy(
    manager: ProxyManager,
    name: str,
    upstream: str,
    protocol: str = "tcp",
    seed: int | None = None,
    behavior: str = "100:dummy",
    behaviorOptions: dict[str, dict[str, Any]] | None = None,
    scope: str = "auto",
    listen: str = "tcp:0:interface=127.0.0.1",
) -> ManagedProxy:
    """
    Make a proxy as C{twistd vaurien --backend UPSTREAM --protocol PROTOCOL
    --seed SEED --behavior BEHAVIOR} would, and add it to C{manager}, which
    must be running: it listens when this returns.

    @raise ChaosUsageError: for any bad value, with the reason.
    """
    from twisted.python.usage import UsageError

    from txvaurien.service import makeProxyService

    if name in manager.proxies:
        raise ChaosUsageError("a proxy named {!r} exists already".format(name))
    upstream = checkUpstream(upstream)
    try:
        parent = makeProxyService(
            reactor=manager.defaults.reactor,
            backend=upstream,
            proxy=[listen],
            protocol=protocol,
            seed=seed,
            behavior=behavior,
            behavior_options=behaviorOptions or {},
            behavior_scope=scope,
            shutdown_grace=0.0,
            log_level=_currentLevel(),
        )
    except (UsageError, ValueError, LookupError) as e:
        raise ChaosUsageError(str(e)) from None
    service = parent.getServiceNamed("proxy")
    service.disownServiceParent()
    service.name = None  # manager's children are unnamed
    service.exitOnListenFailure = False
    service.factory.name = name
    proxy = manager.adopt(service, upstream, default=False)
    attachJournal(service.factory, manager.defaults.reactor)
    try:
        service.setServiceParent(manager)
    except Exception as e:
        manager._unregister(proxy)
        if service.parent is manager:
            service.disownServiceParent()
        raise ChaosUsageError(
            "proxy {!r} cannot listen on {}: {}".format(name, listen, e)) from None
    return proxy


def attachJournal(factory: Any, clock: Any) -> None:
    """
    Give a proxy a fault journal of its own, if this txvaurien has the
    journal (L{txvaurien.journal}) and the proxy has none yet.
    """
    if getattr(factory, "journal", None) is not None:
        return
    try:
        from txvaurien.journal import Journal  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    factory.journal = Journal(clock)


def journalEvents(factory: Any, name: str) -> list[dict[str, Any]]:
    """
    The events of the proxy called C{name} that its journal still holds.

    @raise NotImplementedError: if the proxy has no journal.
    """
    journal = getattr(factory, "journal", None)
    if journal is None:
        raise NotImplementedError(
            "proxy.journal() needs the fault journal, which this txvaurien does not keep")
    events: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page, following = journal.since(cursor, 10000)
        events += [e for e in page if e.get("proxy") == name]
        if not page or following == cursor:
            return events
        cursor = following


def _currentLevel() -> str:
    from txvaurien import logs

    return str(logs._level.name)


def setBehavior(manager: ProxyManager, proxy: ManagedProxy, name: str,
                values: dict[str, Any]) -> None:
    """
    Replace a proxy's behavior, as C{PUT /behavior} does.

    @raise ChaosUsageError: for an unknown behavior or option, or a bad
        value.
    """
    try:
        manager.setBehavior(proxy, name, dict(values))
    except errors.ApiError as e:
        raise ChaosUsageError(_apiMessage(e)) from None


def addToxic(manager: ProxyManager, proxy: ManagedProxy, body: dict[str, Any]) -> str:
    """
    Add a toxic, as C{POST /proxies/NAME/toxics} does.

    @return: the toxic's name.
    @raise ChaosUsageError: for an unknown type or attribute, or a bad value.
    """
    try:
        toxic = buildToxic(manager.defaults.registry, body, {t.name for t in proxy.toxics})
        manager.addToxic(proxy, toxic)
    except errors.ApiError as e:
        raise ChaosUsageError(_apiMessage(e)) from None
    return str(toxic.name)


def _apiMessage(error: errors.ApiError) -> str:
    field = getattr(error, "field", None)
    message = str(error.message)
    if field and field not in message:
        return "{}: {}".format(field, message)
    return message


ChaosUsageError.__module__ = "txvaurien.testing"


class Addressed:
    """
    What a proxy handle says of where it listens, from its C{host} and
    C{port}.
    """

    host: str
    port: int

    @property
    def address(self) -> str:
        """
        C{"host:port"}.
        """
        return "{}:{}".format(self.host, self.port)

    @property
    def url(self) -> str:
        """
        C{"http://host:port"}, for HTTP clients.
        """
        return "http://{}".format(self.address)

