# -*- test-case-name: txvaurien.test.test_control_toxiproxy -*-
"""
One named proxy of the control API (L{ManagedProxy}), how the manager
builds the proxies it creates (L{ProxyDefaults}), and how they are shown.
"""

from __future__ import annotations

from typing import Any

from txvaurien.control import errors
from txvaurien.control.tlsconfig import TLSSpec
from txvaurien.control.toxics import Toxic
from txvaurien.proxy import HALF_CLOSED_TIMEOUT, ProxyServerFactory
from txvaurien.proxyservice import ProxyService
from txvaurien.randomness import RandomSource
from txvaurien.registry import Registry
from txvaurien.table import BehaviorTable, parseSpec


class ProxyDefaults:
    """
    How the manager builds the proxies it creates: the core options of
    C{twistd vaurien} that apply to every proxy.
    """

    def __init__(
        self,
        reactor: Any,
        registry: Registry,
        random: RandomSource | None = None,
        connectTimeout: float = 30.0,
        idleTimeout: float | None = None,
        splice: bool = True,
        grace: float = 5.0,
        backlog: int | None = None,
        halfClosedTimeout: float | None = HALF_CLOSED_TIMEOUT,
    ) -> None:
        self.reactor = reactor
        self.registry = registry
        self.random = random or RandomSource()
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.splice = splice
        self.grace = grace
        self.backlog = backlog
        self.halfClosedTimeout = halfClosedTimeout


def addressText(address: Any) -> str:
    """
    An L{IAddress} as Go prints a listener's address (C{127.0.0.1:8000},
    C{[::1]:8000}), or its name for other kinds.
    """
    port = getattr(address, "port", None)
    host = getattr(address, "host", None)
    if port is None or host is None:
        return str(getattr(address, "name", address))
    if ":" in host:
        return "[{}]:{}".format(host, port)
    return "{}:{}".format(host, port)


class ManagedProxy:
    """
    One named proxy.

    @ivar name: its name.
    @ivar service: its L{ProxyService}.
    @ivar factory: its L{ProxyServerFactory}.
    @ivar upstream: the backend as the client gave it.
    @ivar requestedListen: the listen address as the client gave it.
    @ivar base: the base L{BehaviorTable}.
    @ivar toxics: its toxics, in the order they were added.
    @ivar tls: its C{tls} object (our extension), or L{None}.
    """

    tls: TLSSpec | None = None

    def __init__(
        self,
        name: str,
        service: ProxyService,
        upstream: str,
        listen: str,
        base: BehaviorTable,
    ) -> None:
        self.name = name
        self.service = service
        self.factory: ProxyServerFactory = service.factory
        self.upstream = upstream
        self.requestedListen = listen
        self._listen = listen
        self.base = base
        self.toxics: list[Toxic] = []

    @property
    def enabled(self) -> bool:
        return bool(self.service.enabled)

    @property
    def listen(self) -> str:
        """
        The address it listens on, once bound; before, the one asked for.
        """
        if self.service.ports:
            self._listen = addressText(self.service.ports[0].getHost())
        return self._listen

    def toxic(self, name: str) -> Toxic:
        """
        @raise txvaurien.control.errors.ApiError: 404 if there is none.
        """
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise errors.toxicNotFound()

    def table(self) -> BehaviorTable:
        """
        The table live connections use: the base table with the toxics
        appended to each alternative.
        """
        if not self.toxics:
            return self.base
        chain = [toxic.behavior for toxic in self.toxics]
        alternatives = [(weight, list(behaviors) + chain)
                        for weight, behaviors in self.base.alternatives]
        spec = "{} with toxics {}".format(
            self.base.spec, ",".join(toxic.name for toxic in self.toxics))
        return BehaviorTable(spec, alternatives, self.base.scope)

    def apply(self) -> None:
        """
        Install the current table; live connections choose again.
        """
        self.factory.setTable(self.table())

    def orderedToxics(self) -> list[Toxic]:
        """
        The toxics in Toxiproxy's order: upstream ones, then downstream
        ones, each in the order they were added.
        """
        return sorted(self.toxics, key=lambda t: t.direction != "upstream")

    def asJSON(self) -> dict[str, Any]:
        """
        Toxiproxy's representation, in its field order (C{Logger} is an
        empty object Toxiproxy 2.12 prints too).
        """
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "Logger": {},
            "toxics": [toxic.asJSON() for toxic in self.orderedToxics()],
            **_protocolField(self),
            **({"tls": self.tls.asJSON()} if self.tls is not None else {}),
        }

    def behaviorsInUse(self) -> list[Any]:
        """
        Every configured behavior of its base table and toxics.
        """
        return list(self.base.behaviors.values()) + [t.behavior for t in self.toxics]


def baseOptions(proxy: ManagedProxy) -> dict[str, Any]:
    """
    A proxy's base behaviors' options, in the shape C{PUT /behavior} takes
    them: flat for one behavior, by behavior name for several.
    """
    names = _specNames(proxy.base.spec)
    behaviors = proxy.base.behaviors
    if len(names) == 1:
        behavior = behaviors.get(names[0])
        return dict(behavior.settings) if behavior is not None else {}
    return {name: dict(behaviors[name].settings) for name in names if name in behaviors}


def _specNames(spec: str) -> list[str]:
    names: list[str] = []
    for _, chain in parseSpec(spec):
        for name in chain:
            if name not in names:
                names.append(name)
    return names


def _protocolField(proxy: Any) -> dict[str, str]:
    from txvaurien.datagram.control import protocolField

    return protocolField(proxy)


__all__ = ["ManagedProxy", "ProxyDefaults", "addressText", "baseOptions"]
