# -*- test-case-name: txvaurien.test.test_service -*-
"""
L{ProxyService}: a L{ProxyServerFactory} listening on endpoints, with a
graceful stop.  Listening ports get the system's largest backlog unless one
is configured (see L{txvaurien.limits}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString

from txvaurien import logs
from txvaurien.limits import systemBacklog, withBacklog
from txvaurien.proxy import ProxyServerFactory

_log = logs.logger("txvaurien.service")


class ListeningService(Service):
    """
    A service that listens when it starts, if L{enabled}: the base of the
    TCP L{ProxyService} and of the UDP
    L{txvaurien.datagram.service.DatagramService}.  Subclasses implement
    C{startListening}.

    @ivar exitOnListenFailure: whether a failure to listen that is known at
        once (address in use) exits twistd (logged as critical) rather
        than being raised.
    """

    exitOnListenFailure = False

    #: Whether the proxy listens when the service starts.  The control API
    #: keeps a disabled proxy (Toxiproxy's C{"enabled": false}) in the
    #: service tree without a port.
    enabled = True

    def startService(self) -> None:
        """
        Listen, if L{enabled}.  A failure to listen that is known at once
        (address in use) exits twistd if L{exitOnListenFailure}, and is
        raised otherwise.
        """
        Service.startService(self)
        if not self.enabled:
            return
        try:
            self.startListening()
        except Exception as e:
            if not self.exitOnListenFailure:
                raise
            _log.critical("{error}", error=str(e))
            raise SystemExit("txvaurien: {}".format(e))

    def startListening(self) -> None:
        raise NotImplementedError()


class ProxyService(ListeningService):
    """
    Listens on endpoints with a L{ProxyServerFactory}; on stop, stops
    listening, lets live connections finish for C{grace} seconds, then
    closes them.

    @ivar factory: the L{ProxyServerFactory}.
    @ivar listen: endpoint strings to listen on.
    @ivar ports: the listening ports, once started.
    @ivar backlog: the listen backlog of its ports, or L{None} for the
        system's maximum (an endpoint string's own C{backlog=} wins).
    """

    def __init__(
        self,
        factory: ProxyServerFactory,
        listen: list[str],
        reactor: Any,
        grace: float = 5.0,
        backlog: int | None = None,
    ) -> None:
        self.factory = factory
        self.backlog = backlog
        self.listen = list(listen)
        self.reactor = reactor
        self.grace = grace
        self.ports: list[Any] = []

    def startListening(self) -> None:
        """
        Listen on every endpoint (again).  An endpoint first given with
        port 0 listens on the port it was given then.

        @raise Exception: the first failure known at once.
        """
        for index, description in enumerate(self.listen):
            endpoint = serverFromString(
                self.reactor, withBacklog(description, listenBacklog(self.backlog)))
            d = endpoint.listen(self.factory)
            failures: list[Any] = []
            d.addCallbacks(self._listening, failures.append, callbackArgs=(index,))
            if failures:
                failures[0].raiseException()

    def stopListening(self) -> Deferred:
        """
        Stop accepting connections; live ones go on.

        @return: a L{Deferred} that fires when every port is closed.
        """
        ports, self.ports = self.ports, []
        return DeferredList(
            [maybeDeferred(port.stopListening) for port in ports], consumeErrors=True
        )

    def _listening(self, port: Any, index: int) -> Any:
        self.ports.append(port)
        host = port.getHost()
        self.listen[index] = _pinPort(self.listen[index], getattr(host, "port", None))
        address = (
            "{}:{}".format(host.host, host.port)
            if hasattr(host, "port")
            else getattr(host, "name", str(host))
        )
        _log.info(
            "Proxy {proxy} listening on {address}, forwarding to {backend} "
            "(protocol {protocol}, behavior {behavior}, seed {seed})",
            proxy=self.factory.name,
            address=address,
            backend=self.factory.backend.description,
            protocol=self.factory.handler.name,
            behavior=self.factory.table.describe(),
            seed=self.factory.random.seed,
        )
        hint = getattr(self.factory.backend, "hint", None)
        if hint:
            _log.info(hint, address=address)
        return port

    @property
    def addresses(self) -> list[Any]:
        """
        The addresses listened on (L{IAddress}), once started.
        """
        return [port.getHost() for port in self.ports]

    def stopService(self) -> Deferred:
        """
        Stop listening, then drain live connections.
        """
        Service.stopService(self)
        stopped = self.stopListening()
        stopped.addCallback(lambda _: self.factory.drain(self.grace))
        return stopped


def _pinPort(description: str, port: int | None) -> str:
    """
    C{description} with a TCP port 0 replaced by C{port}.
    """
    if port is None:
        return description
    kind, sep, rest = description.partition(":")
    if kind not in ("tcp", "tcp6") or not sep:
        return description
    parts = rest.split(":")
    for i, part in enumerate(parts):
        if i == 0 and part == "0":
            parts[i] = str(port)
        elif part == "port=0":
            parts[i] = "port={}".format(port)
    return kind + ":" + ":".join(parts)


def listenBacklog(configured: int | None) -> int:
    """
    The backlog to listen with: C{configured}, or the system's maximum.
    """
    return configured if configured is not None else systemBacklog()
