# -*- test-case-name: txvaurien.test.test_service -*-
"""
A chaos proxy as a L{twisted.application.service.IService}, for twistd
and for embedding in an existing Twisted application::

    from twisted.application.service import MultiService
    from txvaurien.service import makeProxyService

    parent = MultiService()
    makeProxyService(
        backend="127.0.0.1:6379",
        proxy=["tcp:6380:interface=127.0.0.1"],
        behavior="20:delay",
        behavior_options={"delay": {"sleep": 0.5}},
    ).setServiceParent(parent)

The keyword arguments are the command-line options (L{txvaurien.config.CORE}),
with underscores for dashes, checked exactly as the command line checks
them; a bad one raises L{txvaurien.config.ConfigurationError}.

L{buildService} makes the whole service tree of a
L{txvaurien.config.Configuration}: the proxy, the demo backend, the proxy
manager and the control server.  C{twistd vaurien} uses it too.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService

from txvaurien import endpoints, journal, logs, scenario
from txvaurien.config import Configuration, fromValues
from txvaurien.datagram.addresses import isDatagram
from txvaurien.control.managed import ProxyDefaults
from txvaurien.control.manager import ProxyManager
from txvaurien.control.server import ControlService, buildSite
from txvaurien.demo import DemoBackend, DemoService
from txvaurien.proxy import ProxyServerFactory
from txvaurien.proxyservice import ProxyService, _pinPort, listenBacklog
from txvaurien.randomness import RandomSource

__all__ = [
    "ProxyService", "_pinPort", "listenBacklog", "buildService", "makeProxyService",
]


def buildService(
    configuration: Configuration, reactor: Any, parent: MultiService | None = None
) -> MultiService:
    """
    The service tree of a configuration.

    @param parent: the service to add the children to; a new
        L{MultiService} by default.

    Its children, by name: C{demo} (with C{--backend demo}), C{proxy} (the
    L{ProxyService} C{--backend} describes), C{proxies} (the
    L{ProxyManager}, with C{--http} or a JSON configuration) and
    C{control} (the control server, with C{--http}; last, so that it
    starts once every proxy listens and stops first).
    """
    core = configuration.core
    logs.setLevel(core["log_level"])
    if parent is None:
        parent = MultiService()
    random = RandomSource(core["seed"])
    eventJournal = journal.fromConfig(configuration, reactor, parent)
    proxy: Any = None
    if core["backend"] is not None:
        backendText = core["backend"].strip()
        if isDatagram(backendText):
            from txvaurien.datagram.service import serviceFromConfig

            proxy = serviceFromConfig(configuration, reactor, random)
            proxy.setServiceParent(parent)
        else:
            proxy = _streamProxy(configuration, backendText, reactor, random, parent)
            proxy.factory.journal = eventJournal
            scenario.fromConfig(configuration, reactor, proxy.factory, parent)
    if core["http"] or configuration.proxies:
        _controlPlane(configuration, reactor, parent, proxy, random, eventJournal)
    return parent


def _streamProxy(
    configuration: Configuration,
    backendText: str,
    reactor: Any,
    random: RandomSource,
    parent: MultiService,
) -> ProxyService:
    """
    The TCP (or UNIX, TLS) proxy C{--backend} describes, with the demo
    backend's service when it is C{demo}, added to C{parent}.
    """
    core = configuration.core
    if backendText == "demo":
        demo = DemoService(reactor)
        demo.setServiceParent(parent)
        backend: Any = DemoBackend(reactor, demo)
    else:
        backend = endpoints.parseBackend(reactor, backendText)
    factory = ProxyServerFactory(
        backend,
        configuration.handler,
        configuration.table,
        reactor,
        random,
        connectTimeout=core["timeout"],
        idleTimeout=core["idle_timeout"] or None,
        splice=core["splice"],
        halfClosedTimeout=core["half_closed_timeout"] or None,
    )
    proxy = ProxyService(
        factory, core["proxy"], reactor, core["shutdown_grace"], core["backlog"])
    proxy.exitOnListenFailure = True
    proxy.setName("proxy")
    proxy.setServiceParent(parent)
    return proxy


def _controlPlane(
    configuration: Configuration,
    reactor: Any,
    parent: MultiService,
    proxy: ProxyService | None,
    random: RandomSource,
    eventJournal: Any = None,
) -> None:
    """
    Add the proxy manager (with the proxies of a JSON configuration) and,
    with C{--http}, the control server, to C{parent}.
    """
    core = configuration.core
    manager = ProxyManager(ProxyDefaults(
        reactor,
        configuration.registry,
        random,
        connectTimeout=core["timeout"],
        idleTimeout=core["idle_timeout"] or None,
        splice=core["splice"],
        grace=core["shutdown_grace"],
        backlog=core["backlog"],
        halfClosedTimeout=core["half_closed_timeout"] or None,
    ))
    manager.setName("proxies")
    manager.journal = eventJournal  # type: ignore[attr-defined]
    if proxy is not None:
        manager.adopt(proxy, core["backend"].strip())
    for spec in configuration.proxies:
        manager.create(spec, exitOnListenFailure=True)
    manager.setServiceParent(parent)
    if core["http"]:
        site = buildSite(
            manager, core["http_token"], core["http_allow_browsers"],
            requestTimeout=core["http_request_timeout"],
            idleTimeout=core["http_idle_timeout"])
        control = ControlService(
            site, configuration.httpListen or "", reactor, backlog=core["backlog"])
        control.setName("control")
        control.setServiceParent(parent)


def makeProxyService(reactor: Any = None, **values: Any) -> MultiService:
    """
    Build the service C{twistd vaurien} would build from the same options.

    @param values: command-line options with underscores for dashes
        (C{backend}, C{proxy} as a list, C{behavior}, C{protocol},
        C{timeout}, ...), plus C{behavior_options} and C{protocol_options}
        mapping a plugin name to its option values, and C{config}, a
        configuration file.
    @param reactor: the reactor; the global one by default.
    @raise txvaurien.config.ConfigurationError: for any invalid value (a
        L{ValueError}).
    @return: a L{MultiService} holding the proxy (named C{"proxy"}).
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    return buildService(fromValues(values, reactor=reactor), reactor)
