# -*- test-case-name: txvaurien.test.test_datagram_service -*-
"""
A UDP proxy as a L{twisted.application.service.IService}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred

from txvaurien import logs
from txvaurien.proxyservice import ListeningService
from txvaurien.datagram.addresses import (
    AddressError,
    UDPBackend,
    isDatagram,
    parseUDPBackend,
    parseUDPListen,
)
from txvaurien.datagram.pipeline import checkTable
from txvaurien.datagram.proxy import DatagramProxy
from txvaurien.randomness import RandomSource

_log = logs.logger("txvaurien.service")


class DatagramService(ListeningService):
    """
    Listens on UDP addresses, one L{DatagramProxy} each; on stop, stops
    listening and ends every session.

    @ivar proxies: the L{DatagramProxy} of each address, in order.
    @ivar listen: the C{udp:} strings listened on.
    @ivar ports: the listening ports, once started.
    """

    def __init__(self, proxies: list[DatagramProxy], listen: list[str], reactor: Any) -> None:
        self.proxies = proxies
        self.listen = list(listen)
        self.reactor = reactor
        self.ports: list[Any] = []

    @property
    def factory(self) -> DatagramProxy:
        """
        The first proxy (what the TCP service calls its factory).
        """
        return self.proxies[0]

    def startListening(self) -> None:
        """
        Bind every address and log the line users and tests wait for.
        """
        for index, (proxy, description) in enumerate(zip(self.proxies, self.listen)):
            portNumber, interface = parseUDPListen(description)
            port = self.reactor.listenUDP(
                portNumber, proxy, interface=interface,
                maxPacketSize=proxy.maxDatagram + 1)
            self.ports.append(port)
            host = port.getHost()
            if portNumber == 0:
                self.listen[index] = "udp:{}:interface={}".format(
                    host.port, interface.replace(":", "\\:")) if interface else \
                    "udp:{}".format(host.port)
            _log.info(
                "Proxy {proxy} listening on {address}, forwarding to {backend} "
                "(protocol {protocol}, behavior {behavior}, seed {seed})",
                proxy=proxy.name,
                address="{}:{}".format(host.host, host.port),
                backend=proxy.backend.description,
                protocol=proxy.handler.name,
                behavior=proxy.table.describe(),
                seed=proxy.random.seed,
            )

    @property
    def addresses(self) -> list[Any]:
        """
        The addresses bound (L{IAddress}), once started.
        """
        return [port.getHost() for port in self.ports]

    def stopListening(self) -> Deferred:
        """
        Stop reading datagrams; sessions stay until they expire.
        """
        ports, self.ports = self.ports, []
        return DeferredList(
            [maybeDeferred(port.stopListening) for port in ports], consumeErrors=True)

    def stopService(self) -> Deferred:
        """
        Stop listening and end every session.
        """
        Service.stopService(self)
        stopped = self.stopListening()

        def closeAll(_: Any) -> None:
            for proxy in self.proxies:
                proxy.closeAll()

        return stopped.addCallback(closeAll)


def checkConfig(listen: list[str], backend: str | None, table: Any) -> None:
    """
    Check the UDP parts of a configuration, as C{twistd vaurien} parses
    it: all listen strings are C{udp:} or none are, a UDP proxy has a UDP
    backend, and the table's behaviors fit the transport.

    @raise ValueError: (an L{AddressError} or a L{txvaurien.table.TableError})
        saying what is wrong.
    """
    udp = [text for text in listen if isDatagram(text)]
    if udp and len(udp) != len(listen):
        raise AddressError(
            "--proxy: udp: and stream addresses cannot be mixed in one proxy; "
            "run one twistd per transport")
    if not udp:
        if backend is not None and isDatagram(backend):
            raise AddressError(
                "--backend {!r} is UDP: listen with --proxy udp:PORT".format(backend))
        checkTable(table, datagram=False)
        return
    for text in udp:
        parseUDPListen(text)
    if backend is None or not isDatagram(backend):
        raise AddressError(
            "--proxy udp:... needs a UDP backend: --backend udp:host=HOST:port=PORT")
    parseUDPBackend(backend)
    checkTable(table, datagram=True)


def makeDatagramService(
    listen: list[str],
    backend: UDPBackend | str,
    handler: Any,
    table: Any,
    reactor: Any,
    random: RandomSource | None = None,
    name: str = "vaurien",
    sessionTimeout: float = 60.0,
    maxSessions: int = 1024,
    maxDatagram: int = 65507,
) -> DatagramService:
    """
    The service of a UDP proxy.

    @param listen: C{udp:PORT[:interface=HOST]} strings.
    @param backend: a L{UDPBackend} or its C{udp:} string.
    @param handler: the configured protocol handler (C{tcp} for opaque
        datagrams, C{dns}).
    @param table: the L{txvaurien.table.BehaviorTable}.
    @raise ValueError: for a bad address or a behavior that cannot act on
        datagrams.
    """
    if isinstance(backend, str):
        backend = parseUDPBackend(backend)
    checkTable(table, datagram=True)
    random = random or RandomSource()
    proxies = []
    for text in listen:
        parseUDPListen(text)
        proxies.append(DatagramProxy(
            backend, handler, table, reactor, random, name,
            sessionTimeout=sessionTimeout, maxSessions=maxSessions,
            maxDatagram=maxDatagram))
    return DatagramService(proxies, listen, reactor)


def serviceFromConfig(config: Any, reactor: Any, random: RandomSource) -> DatagramService:
    """
    The UDP proxy service of parsed C{twistd vaurien} options.
    """
    service = makeDatagramService(
        config["proxy"], config["backend"].strip(), config.handler, config.table,
        reactor, random,
        sessionTimeout=config.get("udp_session_timeout") or 60.0,
        maxSessions=config.get("udp_max_sessions") or 1024,
        maxDatagram=config.get("udp_max_datagram") or 65507,
    )
    service.exitOnListenFailure = True
    service.setName("proxy")
    return service


__all__ = ["DatagramService", "checkConfig", "makeDatagramService", "serviceFromConfig"]
