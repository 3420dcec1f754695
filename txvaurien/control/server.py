# -*- test-case-name: txvaurien.test.test_control_toxiproxy -*-
"""
The control server: the service that serves both APIs and the metrics on
one endpoint (C{--http}, C{--http-host}, C{--http-port} or
C{--http-endpoint}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.endpoints import serverFromString

from txvaurien import logs
from txvaurien.control.managed import addressText
from txvaurien.control.manager import ProxyManager
from txvaurien.control.events import EventsAPI
from txvaurien.control.metrics import Metrics
from txvaurien.control.resource import ControlResource, ControlSite
from txvaurien.control.scenario_api import ScenarioAPI
from txvaurien.control.toxiproxy_api import ToxiproxyAPI
from txvaurien.control.vaurien_api import VaurienAPI
from txvaurien.limits import withBacklog
from txvaurien.proxyservice import listenBacklog

_log = logs.logger("txvaurien.control")


def controlEndpoint(host: str, port: int, endpoint: str | None = None) -> str:
    """
    The server endpoint string the control API listens on.
    """
    if endpoint:
        return endpoint
    if ":" in host:
        return "tcp6:{}:interface={}".format(port, host.replace(":", "\\:"))
    return "tcp:{}:interface={}".format(port, host)


def buildSite(
    manager: ProxyManager,
    token: str | None = None,
    allowBrowsers: bool = False,
    requestTimeout: float | None = 10.0,
    idleTimeout: float | None = 60.0,
) -> ControlSite:
    """
    The web site of the control API for C{manager}'s proxies.

    @param requestTimeout: seconds a client has to send a whole request
        (C{--http-request-timeout}).
    @param idleTimeout: seconds a connection may stay without a request
        (C{--http-idle-timeout}).
    """
    metrics = Metrics(manager)
    routes = ToxiproxyAPI(manager, metrics).routes() + VaurienAPI(manager).routes()
    routes += EventsAPI(manager, metrics).routes() + ScenarioAPI(manager).routes()
    site = ControlSite(
        ControlResource(routes, token, allowBrowsers), requestTimeout, idleTimeout)
    site.metrics = metrics  # type: ignore[attr-defined]
    return site


class ControlService(Service):
    """
    Listens with the control site on one endpoint.  A failure to listen
    known at once exits twistd with a one-line reason.

    @ivar port: the listening port, once started.
    @ivar backlog: the listen backlog, or L{None} for the system's maximum.
    """

    def __init__(
        self, site: ControlSite, description: str, reactor: Any, backlog: int | None = None
    ) -> None:
        self.site = site
        self.description = description
        self.reactor = reactor
        self.backlog = backlog
        self.port: Any = None

    exitOnListenFailure = True

    def startService(self) -> None:
        Service.startService(self)
        endpoint = serverFromString(
            self.reactor, withBacklog(self.description, listenBacklog(self.backlog)))
        failures: list[Any] = []
        endpoint.listen(self.site).addCallbacks(self._listening, failures.append)
        if failures:
            if not self.exitOnListenFailure:
                failures[0].raiseException()
            message = "control API cannot listen on {}: {}".format(
                self.description, failures[0].getErrorMessage())
            _log.critical("{error}", error=message)
            raise SystemExit("txvaurien: " + message)

    def _listening(self, port: Any) -> None:
        self.port = port
        _log.info(
            "Control API listening on {address} (Vaurien and Toxiproxy APIs, metrics)",
            address=addressText(port.getHost()))

    @property
    def address(self) -> Any:
        """
        The address listened on, once started.
        """
        return None if self.port is None else self.port.getHost()

    def stopService(self) -> Any:
        Service.stopService(self)
        self.site.closeLingering()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
