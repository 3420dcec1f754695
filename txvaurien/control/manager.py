# -*- test-case-name: txvaurien.test.test_control_toxiproxy -*-
"""
The named proxies of one txvaurien process, and what the control API does
to them (each one a L{txvaurien.control.managed.ManagedProxy}).

Every proxy is a L{txvaurien.service.ProxyService} with its
L{txvaurien.proxy.ProxyServerFactory}.  Its behavior table is made of two
parts:

  - the I{base} table, weighted behaviors as C{--behavior} and Vaurien's
    C{PUT /behavior} give them (C{100:dummy} for a proxy made through
    Toxiproxy's API);
  - its I{toxics}, Toxiproxy's chain, appended to every alternative of the
    base table.

Changing either installs a new table, which live connections see at once;
changing only a toxic's attributes or a behavior's options updates the
configured behavior's C{settings} in place, which faults read when they
act.

Operations that bind or unbind ports complete before their L{Deferred}
fires, and they run one at a time (a L{DeferredLock}), so an enable racing
a disable cannot find the port still bound.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks, succeed

from txvaurien import logs, options
from txvaurien.control import errors
from txvaurien.control.config import (
    DEFAULT_LISTEN,
    ProxySpec,
    checkAddresses,
    checkUpstream,
)
from txvaurien.control.managed import ManagedProxy, ProxyDefaults
from txvaurien.control.toxics import Toxic, updateToxic
from txvaurien.proxy import ProxyServerFactory
from txvaurien.registry import UnknownPlugin
from txvaurien.proxyservice import ProxyService
from txvaurien.table import CONNECTION_SCOPE, BehaviorTable, TableError, buildTable, parseSpec

_log = logs.logger("txvaurien.control")


class ProxyManager(MultiService):
    """
    The named proxies; proxies it creates are its child services.

    @ivar proxies: name to L{ManagedProxy}.
    @ivar defaultName: the name of the proxy Vaurien's API acts on, or
        L{None}.
    @ivar listeners: objects told of proxies added and removed
        (C{proxyAdded(proxy)}, C{proxyRemoved(proxy)}), such as metrics.
    """

    def __init__(self, defaults: ProxyDefaults) -> None:
        MultiService.__init__(self)
        self.defaults = defaults
        self.proxies: dict[str, ManagedProxy] = {}
        self.defaultName: str | None = None
        self.listeners: list[Any] = []
        self._lock = DeferredLock()

    # Lookup

    def get(self, name: str) -> ManagedProxy:
        """
        @raise txvaurien.control.errors.ApiError: 404 if there is none.
        """
        proxy = self.proxies.get(name)
        if proxy is None:
            raise errors.proxyNotFound()
        return proxy

    def default(self, name: str | None = None) -> ManagedProxy:
        """
        The proxy Vaurien's API acts on: C{name}, or the default one.

        @raise txvaurien.control.errors.ApiError: 404 if there is none.
        """
        if name is None:
            name = self.defaultName
            if name is None:
                raise errors.ApiError(
                    "no default proxy: start with --backend, or name one with "
                    "?proxy=NAME", 404, "proxy")
        return self.get(name)

    def serialized(self, f: Callable[..., Any], *args: Any) -> Deferred:
        """
        Run C{f} once every operation before it is complete; the result
        fires when C{f}'s does.
        """
        return self._lock.run(f, *args)

    # Proxies

    def _register(self, proxy: ManagedProxy) -> None:
        self.proxies[proxy.name] = proxy
        for listener in self.listeners:
            listener.proxyAdded(proxy)

    def _unregister(self, proxy: ManagedProxy) -> None:
        if self.proxies.get(proxy.name) is proxy:
            del self.proxies[proxy.name]
        if self.defaultName == proxy.name:
            self.defaultName = None
        for listener in self.listeners:
            listener.proxyRemoved(proxy)

    def adopt(self, service: ProxyService, upstream: str, default: bool = True) -> ManagedProxy:
        """
        Manage a proxy made elsewhere (the one C{--backend} describes),
        whose service has its own parent.
        """
        factory = service.factory
        listen = service.listen[0] if service.listen else ""
        proxy = ManagedProxy(factory.name, service, upstream, listen, factory.table)
        self._register(proxy)
        if default:
            self.defaultName = proxy.name
        return proxy

    def create(self, spec: ProxySpec, exitOnListenFailure: bool = False) -> ManagedProxy:
        """
        Create a proxy, listening at once if enabled and the manager runs
        (otherwise when it starts).

        @raise txvaurien.control.errors.ApiError: 409 if the name is
            taken, 500 if the port cannot be bound.
        """
        if spec.name in self.proxies:
            raise errors.proxyExists()
        if spec.protocol == "udp":
            from txvaurien.datagram.control import createDatagramProxy

            proxy = createDatagramProxy(
                self, spec.name, spec.listen, spec.upstream, spec.enabled)
            if spec.toxics:
                try:
                    _checkBehaviors(proxy, [toxic.behavior for toxic in spec.toxics])
                except errors.ApiError:
                    self.delete(proxy.name)
                    raise
                proxy.toxics = list(spec.toxics)
                proxy.apply()
            return proxy
        d = self.defaults
        registry = d.registry
        handler = registry.protocols.get("tcp").configure({})
        base = buildTable("100:dummy", registry, {}, CONNECTION_SCOPE)
        factory = ProxyServerFactory(
            checkUpstream(d.reactor, spec.backend), handler, base, d.reactor, d.random,
            name=spec.name, connectTimeout=d.connectTimeout, idleTimeout=d.idleTimeout,
            splice=d.splice, halfClosedTimeout=d.halfClosedTimeout)
        service = ProxyService(factory, [spec.description], d.reactor, d.grace, d.backlog)
        service.exitOnListenFailure = exitOnListenFailure
        service.enabled = False
        proxy = ManagedProxy(spec.name, service, spec.upstream, spec.listen, base)
        proxy.tls = spec.tls
        if spec.toxics:
            proxy.toxics = list(spec.toxics)
            proxy.apply()
        service.setServiceParent(self)
        if spec.enabled:
            if self.running:
                try:
                    self._start(proxy)
                except errors.ApiError:
                    service.disownServiceParent()
                    raise
            else:
                service.enabled = True
        self._register(proxy)
        _log.info(
            "Proxy {proxy} created: {listen}{tlsListen} -> {upstream}{tlsUpstream} ({state})",
            proxy=proxy.name, listen=proxy.listen, upstream=proxy.upstream,
            state="enabled" if proxy.enabled else "disabled",
            tlsListen=" (TLS)" if spec.tls and spec.tls.listen is not None else "",
            tlsUpstream=" (TLS)" if spec.tls and spec.tls.upstream is not None else "")
        return proxy

    def _start(self, proxy: ManagedProxy) -> None:
        service = proxy.service
        if service.enabled:
            return
        try:
            service.startListening()
        except Exception as e:
            raise errors.listenFailed(service.listen[0] if service.listen else "", e)
        service.enabled = True

    def _stop(self, proxy: ManagedProxy) -> Deferred:
        """
        Unbind the proxy's ports and close its connections; fires once the
        ports are free.
        """
        service = proxy.service
        if not service.enabled:
            return succeed(None)
        service.enabled = False
        d = service.stopListening()
        proxy.factory.closeAll()
        return d

    def setEnabled(self, proxy: ManagedProxy, enabled: bool) -> Deferred:
        """
        Enable (bind) or disable (unbind, close connections) a proxy; fires
        when done.
        """
        _log.info("Proxy {proxy} {state}", proxy=proxy.name,
                  state="enabled" if enabled else "disabled")
        if enabled:
            self._start(proxy)
            return succeed(proxy)
        return self._stop(proxy).addCallback(lambda _: proxy)

    @inlineCallbacks
    def update(
        self,
        name: str,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> Any:
        """
        Change a proxy (C{POST}/C{PATCH /proxies/NAME}): a new C{listen} or
        C{upstream} restarts the proxy (closing its connections), as in
        Toxiproxy; C{enabled} binds or unbinds it.  L{None} leaves a value
        as it is.  A proxy's C{tls} object applies to its new C{listen}
        and C{upstream} too.

        @raise txvaurien.control.errors.ApiError: 404 for an unknown
            proxy, 400 for a bad address.
        """
        proxy = self.get(name)
        listen = proxy.listen if listen is None else listen
        upstream = proxy.upstream if upstream is None else upstream
        enabled = proxy.enabled if enabled is None else enabled
        if listen != proxy.listen or upstream != proxy.upstream:
            description, _, backend = checkAddresses(
                self.defaults.reactor, listen, upstream, proxy.tls)
            yield self._stop(proxy)
            proxy.service.listen = [description]
            proxy.requestedListen = proxy._listen = listen or DEFAULT_LISTEN
            proxy.factory.backend = backend
            proxy.upstream = upstream
        if enabled != proxy.enabled:
            yield self.setEnabled(proxy, enabled)
        return proxy

    def delete(self, name: str) -> Deferred:
        """
        Remove a proxy; fires once its port is free (its connections are
        closed, and dropped after the grace period if still open).
        """
        proxy = self.get(name)
        self._unregister(proxy)
        d = self._stop(proxy)

        def gone(_: Any) -> None:
            if proxy.service.parent is not None:
                proxy.service.disownServiceParent()
            _log.info("Proxy {proxy} deleted", proxy=proxy.name)

        return d.addCallback(gone)

    @inlineCallbacks
    def populate(self, specs: list[ProxySpec]) -> Any:
        """
        Create or replace proxies from a checked list, in order: one with
        the same name, listen address and upstream is kept (its toxics
        replaced if the entry lists some); one that differs is replaced.

        @return: a L{Deferred} firing with C{(proxies, error)}: the proxies
            of the list handled so far, and the L{ApiError} that stopped
            the rest, or L{None}.
        """
        result: list[ManagedProxy] = []
        for spec in specs:
            existing = self.proxies.get(spec.name)
            if existing is not None:
                if spec.upstream == existing.upstream and spec.tls == existing.tls and (
                    spec.listen in (existing.listen, existing.requestedListen)
                ):
                    if spec.toxics is not None:
                        existing.toxics = list(spec.toxics)
                        existing.apply()
                    result.append(existing)
                    continue
                yield self.delete(spec.name)
            try:
                result.append(self.create(spec))
            except errors.ApiError as e:
                return result, e
        return result, None

    def reset(self) -> Any:
        """
        Toxiproxy's reset: enable every proxy, remove every toxic, and
        restart the counters of behaviors that keep proxy-wide state
        (C{error}'s warm-up).

        @raise txvaurien.control.errors.ApiError: the first proxy that
            could not be enabled (the others are reset all the same).
        """
        failure: errors.ApiError | None = None
        for proxy in list(self.proxies.values()):
            try:
                self._start(proxy)
            except errors.ApiError as e:
                failure = failure or e
            for behavior in proxy.behaviorsInUse():
                reset = getattr(behavior, "reset", None)
                if reset is not None:
                    reset()
            if proxy.toxics:
                proxy.toxics = []
                proxy.apply()
        _log.info("Reset: every proxy enabled, every toxic removed")
        if failure is not None:
            raise failure

    # Toxics

    def addToxic(self, proxy: ManagedProxy, toxic: Toxic) -> None:
        """
        Append a checked toxic to a proxy's chain.
        """
        if any(t.name == toxic.name for t in proxy.toxics):
            raise errors.toxicExists()
        _checkBehaviors(proxy, [toxic.behavior])
        proxy.toxics.append(toxic)
        proxy.apply()
        _log.info(
            "Proxy {proxy}: toxic {toxic} added ({type}, {stream}, toxicity "
            "{toxicity}, {attributes})", proxy=proxy.name, toxic=toxic.name,
            type=toxic.type, stream=toxic.stream, toxicity=toxic.toxicity,
            attributes=toxic.attributes())

    def updateToxic(self, proxy: ManagedProxy, name: str, body: Any) -> Toxic:
        """
        Apply an update body to a toxic (see
        L{txvaurien.control.toxics.updateToxic}).

        @raise txvaurien.control.errors.ApiError: 404 or 400.
        """
        toxic = proxy.toxic(name)
        if updateToxic(toxic, body):
            proxy.apply()
        _log.info(
            "Proxy {proxy}: toxic {toxic} updated (toxicity {toxicity}, {attributes})",
            proxy=proxy.name, toxic=toxic.name, toxicity=toxic.toxicity,
            attributes=toxic.attributes())
        return toxic

    def removeToxic(self, proxy: ManagedProxy, name: str) -> None:
        """
        @raise txvaurien.control.errors.ApiError: 404 if there is none.
        """
        toxic = proxy.toxic(name)
        proxy.toxics.remove(toxic)
        proxy.apply()
        _log.info("Proxy {proxy}: toxic {toxic} removed", proxy=proxy.name, toxic=name)

    # Vaurien's API

    def setBehavior(self, proxy: ManagedProxy, spec: Any, given: dict[str, Any]) -> None:
        """
        Replace a proxy's base table (Vaurien's C{PUT /behavior}).

        With one behavior in C{spec}, C{given} holds its options; with
        several, it maps each behavior's name to its options.  Options not
        given take their defaults.  The same specification as now updates
        the configured behaviors in place, so live connections keep their
        faults and see the new values.

        @raise txvaurien.control.errors.ApiError: 400 naming the field.
        """
        if not isinstance(spec, str):
            raise errors.ApiError(
                "expected a behavior name or weighted specification, got {!r}".format(spec),
                400, "name")
        spec = spec.strip()
        registry = self.defaults.registry
        try:
            alternatives = parseSpec(spec)
        except TableError as e:
            raise errors.ApiError(str(e), 400, "name")
        names: list[str] = []
        for _, chain in alternatives:
            for behaviorName in chain:
                if behaviorName not in registry.behaviors.names():
                    raise errors.ApiError(
                        str(UnknownPlugin("behavior", behaviorName, registry.behaviors.names())),
                        400, "name")
                if behaviorName not in names:
                    names.append(behaviorName)
        perBehavior = _splitOptions(names, given)
        settings: dict[str, dict[str, Any]] = {}
        for behaviorName in names:
            template = registry.behaviors.get(behaviorName)
            prefix = "" if len(names) == 1 else behaviorName + "."
            try:
                settings[behaviorName] = options.validate(
                    template, perBehavior.get(behaviorName, {}), where=prefix)
            except options.OptionError as e:
                raise errors.ApiError(e.description, 400, e.name)
        base = proxy.base
        if spec == base.spec and all(n in base.behaviors for n in names):
            redraw = False
            for behaviorName in names:
                behavior = base.behaviors[behaviorName]
                new = settings[behaviorName]
                redraw = redraw or new.get("toxicity") != behavior.settings.get("toxicity")
                behavior.settings.update(new)
            if redraw:
                proxy.base = BehaviorTable(base.spec, base.alternatives, base.scope)
                proxy.apply()
            return
        try:
            table = buildTable(
                spec, registry, settings, base.scope, proxy.factory.handler.name)
        except (TableError, UnknownPlugin, options.OptionError) as e:
            raise errors.ApiError(str(e), 400, "name")
        _checkBehaviors(proxy, table.behaviors.values())
        proxy.base = table
        proxy.apply()
        _log.info("Proxy {proxy}: behavior set to {behavior}",
                  proxy=proxy.name, behavior=proxy.base.describe())

    def setBackend(self, proxy: ManagedProxy, backend: Any) -> None:
        """
        Point a proxy at another backend (Vaurien's C{PUT /backend}); live
        connections keep theirs.

        @raise txvaurien.control.errors.ApiError: 400 for a bad value.
        """
        if not isinstance(backend, str) or not backend.strip():
            raise errors.ApiError(
                "expected an endpoint string or host:port, got {!r}".format(backend),
                400, "backend")
        try:
            parsed = checkUpstream(self.defaults.reactor, backend, proxy.factory.handler.name)
        except errors.ApiError as e:
            raise errors.ApiError(e.message.split(": ", 2)[-1], 400, "backend")
        proxy.factory.backend = parsed
        proxy.upstream = backend.strip()
        if proxy.tls is not None:
            proxy.tls = proxy.tls.withoutUpstream()
        _log.info("Proxy {proxy}: backend set to {backend}",
                  proxy=proxy.name, backend=proxy.upstream)


def _splitOptions(names: list[str], given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """
    Options given to C{PUT /behavior}, by behavior.
    """
    if len(names) == 1:
        return {names[0]: dict(given)}
    result: dict[str, dict[str, Any]] = {}
    for key, value in given.items():
        if key not in names:
            raise errors.ApiError(
                "not a behavior of this specification; with several behaviors, "
                "give each one's options under its name, as in "
                "{{\"{}\": {{...}}}}".format(names[0]), 400, key)
        if not isinstance(value, dict):
            raise errors.ApiError(
                "expected an object of {}'s options, got {!r}".format(key, value), 400, key)
        result[key] = value
    return result


def _checkBehaviors(proxy: Any, behaviors: Any) -> None:
    """
    Refuse behaviors that cannot act on a UDP proxy's datagrams (400).
    """
    from txvaurien.datagram.control import checkBehaviors

    checkBehaviors(proxy, behaviors)
