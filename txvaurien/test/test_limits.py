"""
Tests for L{txvaurien.limits}: the listen backlog of the proxy and control
ports, and the open-file limit.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Generator

from twisted.application.service import IService
from twisted.internet import defer, protocol, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien import limits, logs, tap
from txvaurien.test.controlhelpers import Control, EchoFactory
from txvaurien.test.helpers import testRegistry

Options = tap.buildOptions(testRegistry())


def parse(*argv: str) -> Any:
    options = Options()
    options.parseOptions(list(argv))
    return options


def listenOverflows() -> int:
    """
    The system's count of connections dropped because an accept queue was
    full (C{TcpExt: ListenOverflows} in C{/proc/net/netstat}).
    """
    with open("/proc/net/netstat", encoding="ascii") as f:
        lines = [line.split() for line in f]
    for names, values in zip(lines, lines[1:]):
        if names[0] == "TcpExt:" and values[0] == "TcpExt:":
            return int(values[names.index("ListenOverflows")])
    raise LookupError("no TcpExt ListenOverflows")


def listenBacklogOf(port: Any) -> int:
    """
    The backlog a listening TCP socket was given, as Linux reports it
    (C{tcpi_sacked} of C{TCP_INFO} on a listening socket is its
    C{sk_max_ack_backlog}).
    """
    info = port.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 28)[0])


class FakeResource:
    """
    The parts of the L{resource} module L{limits.raiseOpenFileLimit} uses.
    """

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, value: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.limits = value


class BacklogValueTests(TestCase):
    """
    The backlog chosen and how it is written into endpoint strings.
    """

    def test_systemBacklogReadsSomaxconn(self) -> None:
        """
        The system's maximum is read from the somaxconn file.
        """
        path = FilePath(self.mktemp())
        path.setContent(b"8192\n")
        self.assertEqual(limits.systemBacklog(path.path), 8192)

    def test_systemBacklogFallback(self) -> None:
        """
        Without a readable somaxconn, the backlog is 4096.
        """
        garbage = FilePath(self.mktemp())
        garbage.setContent(b"lots\n")
        self.assertEqual(limits.systemBacklog("/nonexistent/somaxconn"), 4096)
        self.assertEqual(limits.systemBacklog(garbage.path), 4096)

    def test_withBacklog(self) -> None:
        """
        TCP, TCP6, SSL and UNIX endpoint strings get a backlog; one given
        in the string is kept; other types are left alone.
        """
        self.assertEqual(limits.withBacklog("tcp:0:interface=127.0.0.1", 9),
                         "tcp:0:interface=127.0.0.1:backlog=9")
        self.assertEqual(limits.withBacklog("unix:/tmp/s", 9), "unix:/tmp/s:backlog=9")
        self.assertEqual(limits.withBacklog("tcp6:0:interface=\\:\\:1", 9),
                         "tcp6:0:interface=\\:\\:1:backlog=9")
        self.assertEqual(limits.withBacklog("tcp:0:backlog=3", 9), "tcp:0:backlog=3")
        self.assertEqual(limits.withBacklog("systemd:domain=INET:index=0", 9),
                         "systemd:domain=INET:index=0")


class OpenFileLimitTests(TestCase):
    """
    L{limits.raiseOpenFileLimit} raises the soft limit to the hard one.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_raisedToHard(self) -> None:
        """
        A soft limit below the hard one is raised to it, and logged.
        """
        fake = FakeResource(1024, 65536)
        self.assertEqual(limits.raiseOpenFileLimit(fake), (1024, 65536))
        self.assertEqual(fake.limits, (65536, 65536))
        self.assertTrue(any(e.get("log_format", "").startswith("Open-file limit raised")
                            for e in self.events))

    def test_infiniteHardLimit(self) -> None:
        """
        An infinite hard limit raises the soft one to a million.
        """
        fake = FakeResource(1024, FakeResource.RLIM_INFINITY)
        limits.raiseOpenFileLimit(fake)
        self.assertEqual(fake.limits, (1 << 20, FakeResource.RLIM_INFINITY))

    def test_refusedIsWarned(self) -> None:
        """
        A refusal is logged as a warning, not raised.
        """
        fake = FakeResource(1024, 4096, refuse=True)
        self.assertIsNone(limits.raiseOpenFileLimit(fake))
        self.assertTrue(any(e.get("log_level") == LogLevel.warn for e in self.events))


class ListenBacklogTests(TestCase):
    """
    The proxy and control ports listen with the system's maximum backlog,
    or C{--backlog}.
    """

    def setUp(self) -> None:
        self.addCleanup(logs.setLevel, "info")

    def test_memoryReactorGetsBacklog(self) -> None:
        """
        The proxy and control ports are asked for the system's backlog by
        default.
        """
        options = parse("--backend", "h:1", "--proxy", "tcp:7777", "--http",
                        "--http-port", "7778")
        reactor = MemoryReactorClock()
        service = tap.makeService(options, reactor)
        IService(service).startService()
        self.addCleanup(service.stopService)
        backlogs = {port: backlog for port, _, backlog, _ in reactor.tcpServers}
        self.assertEqual(backlogs, {7777: limits.systemBacklog(),
                                    7778: limits.systemBacklog()})

    def test_backlogOption(self) -> None:
        """
        C{--backlog} and C{[vaurien] backlog} set the backlog of both.
        """
        path = FilePath(self.mktemp())
        path.setContent(b"[vaurien]\nbacklog = 77\n")
        for argv in (["--backlog", "99"], ["--config", path.path]):
            options = parse("--backend", "h:1", "--proxy", "tcp:7777", "--http",
                            "--http-port", "7778", *argv)
            reactor = MemoryReactorClock()
            service = tap.makeService(options, reactor)
            IService(service).startService()
            self.addCleanup(service.stopService)
            wanted = 99 if argv[0] == "--backlog" else 77
            self.assertEqual([backlog for _, _, backlog, _ in reactor.tcpServers],
                             [wanted, wanted])

    def test_realSocketsListenWithBacklog(self) -> None:
        """
        On real sockets, the kernel reports the backlog asked for on the
        proxy's and the control server's listening sockets.
        """
        control = Control(self, ["--backend", "127.0.0.1:1",
                                 "--proxy", "tcp:0:interface=127.0.0.1", "--backlog", "1234"])
        proxy = control.manager.get("vaurien").service
        self.assertEqual(listenBacklogOf(proxy.ports[0]), 1234)
        self.assertEqual(listenBacklogOf(control.control.port), 1234)

    @defer.inlineCallbacks
    def test_burstOfConnections(self) -> Generator[Any, Any, None]:
        """
        2,000 connections opened in batches of 500 (the open-file limit
        allows that many in one process: each costs four descriptors
        here, client, proxy's two and backend) are all accepted and
        forwarded; the proxy's port listens with the system's maximum
        backlog, well above a batch, so none overflows its queue (the
        system's C{ListenOverflows} does not move; with Twisted's default
        of 50 it grew by hundreds per batch).
        """
        backend = _bigBacklogEcho(self)
        control = Control(self, ["--backend", "127.0.0.1:{}".format(backend),
                                 "--proxy", "tcp:0:interface=127.0.0.1"])
        proxyPort = control.proxyPort()
        self.assertGreaterEqual(
            listenBacklogOf(control.manager.get("vaurien").service.ports[0]),
            min(500, limits.systemBacklog()))
        clients: list[Any] = []
        overflowsBefore = listenOverflows()

        def close() -> None:
            for client in clients:
                if client.transport is not None:
                    client.transport.abortConnection()

        self.addCleanup(close)
        for _batch in range(4):
            waiting = []
            for _ in range(500):
                client = _Once()
                clients.append(client)
                waiting.append(client.echoed)
                reactor.connectTCP("127.0.0.1", proxyPort, _OnceFactory(client))
            answers = yield defer.gatherResults(waiting)
            self.assertEqual(set(answers), {b"x"})
        self.assertEqual(len(clients), 2000)
        self.assertEqual(listenOverflows() - overflowsBefore, 0)


def _bigBacklogEcho(case: TestCase) -> int:
    """
    An echo backend whose own backlog does not overflow when the proxy
    forwards a burst to it.
    """
    factory = EchoFactory()
    port = reactor.listenTCP(0, factory, backlog=4096, interface="127.0.0.1")

    def stop() -> defer.Deferred:
        for live in list(factory.live):
            live.transport.abortConnection()
        return defer.gatherResults([
            defer.maybeDeferred(port.stopListening), factory.whenIdle()])

    case.addCleanup(stop)
    return int(port.getHost().port)


class _Once(protocol.Protocol):
    def __init__(self) -> None:
        self.echoed: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"x")

    def dataReceived(self, data: bytes) -> None:
        if not self.echoed.called:
            self.echoed.callback(data)

    def connectionLost(self, reason: Any) -> None:
        if not self.echoed.called:
            self.echoed.errback(reason)


class _OnceFactory(protocol.ClientFactory):
    def __init__(self, client: _Once) -> None:
        self.client = client

    def buildProtocol(self, addr: Any) -> _Once:
        return self.client

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.client.echoed.called:
            self.client.echoed.errback(reason)
