"""
Tests for L{txvaurien._twisted}: the private attributes of Twisted's
transports that the byte path relies on still exist on the installed
Twisted, and only that module touches them.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

import txvaurien
from txvaurien import _twisted


class Recorder(protocol.Protocol):
    def __init__(self, made: Deferred) -> None:
        self.made = made

    def connectionMade(self) -> None:
        self.made.callback(self.transport)


class AttributeTests(TestCase):
    """
    The attributes of a real connected TCP transport.
    """

    @inlineCallbacks
    def test_requiredAttributesExist(self) -> Any:
        """
        Both ends of a real loopback TCP connection are plain socket
        transports and have every attribute in L{_twisted.REQUIRED}; an
        empty write buffer reads as idle and writes to the socket are
        received by the peer.
        """
        accepted: Deferred = Deferred()
        factory = protocol.Factory.forProtocol(lambda: Recorder(accepted))
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        connected: Deferred = Deferred()
        received: Deferred = Deferred()

        class Reader(protocol.Protocol):
            def connectionMade(self) -> None:
                connected.callback(self.transport)

            def dataReceived(self, data: bytes) -> None:
                received.callback(data)

        yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            protocol.Factory.forProtocol(Reader))
        client = yield connected
        server = yield accepted
        self.addCleanup(client.loseConnection)
        self.addCleanup(server.loseConnection)
        for transport in (client, server):
            self.assertEqual(_twisted.missing(transport), [])
            self.assertTrue(_twisted.plainSocketTransport(transport))
            self.assertTrue(_twisted.sinkIdle(transport))
            self.assertTrue(_twisted.writable(transport))
        self.assertEqual(_twisted.socketSend(server, b"ping"), 4)
        data = yield received
        self.assertEqual(data, b"ping")


class EligibilityTests(SynchronousTestCase):
    """
    Which transports the private paths may be used on.
    """

    def test_stringTransport(self) -> None:
        """
        A test transport is not a plain socket transport.
        """
        self.assertFalse(_twisted.plainSocketTransport(StringTransport()))

    def test_tlsWrapper(self) -> None:
        """
        A TLS protocol wrapper is not a plain socket transport.
        """
        from twisted.internet import ssl

        wrapper = TLSMemoryBIOFactory(
            ssl.CertificateOptions(), True, protocol.Factory.forProtocol(protocol.Protocol)
        ).buildProtocol(None)
        self.assertFalse(_twisted.plainSocketTransport(wrapper))

    def test_readWriteTakeover(self) -> None:
        """
        C{takeRead}/C{giveRead} and C{takeWrite}/C{giveWrite} install and
        remove per-instance C{doRead}/C{doWrite}, and give back only what
        they installed.
        """

        class Fake:
            def doRead(self) -> str:
                return "own read"

            def doWrite(self) -> str:
                return "own write"

            def startWriting(self) -> None:
                self.writing = True

        fake = Fake()
        _twisted.takeRead(fake, lambda: "taken read")
        self.assertEqual(fake.doRead(), "taken read")
        _twisted.giveRead(fake, lambda: "another")
        self.assertEqual(fake.doRead(), "taken read")
        installed = fake.doRead
        _twisted.giveRead(fake, installed)
        self.assertEqual(fake.doRead(), "own read")
        write = lambda: "taken write"  # noqa: E731
        _twisted.takeWrite(fake, write)
        self.assertTrue(fake.writing)
        self.assertEqual(fake.doWrite(), "taken write")
        self.assertTrue(_twisted.giveWrite(fake, write))
        self.assertFalse(_twisted.giveWrite(fake, write))
        self.assertEqual(fake.doWrite(), "own write")


class ConfinementTests(SynchronousTestCase):
    """
    No other module of txvaurien touches the private attributes.
    """

    PRIVATE = re.compile(
        r"_tempDataLen|\.dataBuffer|\.socket\.send|\.socket\.fileno|"
        r"\.doRead\s*=|\.doWrite\s*=|__dict__\.get\(\"do(Read|Write)\"\)"
    )

    #: Modules that own their sockets (no Twisted transport's attributes):
    #: C{_twisted} itself, and the datagram proxy's connected UDP sockets,
    #: which are its own L{IReadDescriptor}s.
    OWN_SOCKETS = ("_twisted.py", "datagram/sockets.py")

    def test_onlyInTwistedModule(self) -> None:
        """
        Outside C{txvaurien/_twisted.py} and the tests, no source file
        names C{_tempDataLen}, C{dataBuffer}, C{socket.send} or replaces
        C{doRead}/C{doWrite}.
        """
        root = pathlib.Path(txvaurien.__file__).parent
        offenders = []
        for path in root.rglob("*.py"):
            relative = path.relative_to(root).as_posix()
            if relative in self.OWN_SOCKETS or relative.startswith("test/"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if self.PRIVATE.search(line):
                    offenders.append("{}:{}".format(relative, number))
        self.assertEqual(offenders, [])


class ReactorTests(SynchronousTestCase):
    """
    txvaurien's epoll reactor.
    """

    def setUp(self) -> None:
        if getattr(_twisted, "EPollReactor", None) is None:
            raise SkipTest("epoll is Linux's")

    def test_requiredAttributes(self) -> None:
        """
        Twisted's epoll reactor still has what L{_twisted.EPollReactor}
        relies on.
        """
        made = _twisted.EPollReactor()
        self.addCleanup(made._poller.close)
        for name in _twisted.REACTOR_REQUIRED:
            self.assertTrue(hasattr(made, name), name)

    def test_dispatchesReadsAndErrors(self) -> None:
        """
        C{doPoll} calls a readable descriptor's C{doRead}; a C{doRead} that
        raises is logged and its descriptor disconnected, and the other
        descriptors of the same poll are still served.
        """
        import os

        from twisted.internet.abstract import FileDescriptor

        made = _twisted.EPollReactor()
        self.addCleanup(made._poller.close)
        calls: list[str] = []

        class Reader(FileDescriptor):
            def __init__(self, fd: int, name: str, fail: bool) -> None:
                FileDescriptor.__init__(self, made)
                self.fd, self.name, self.fail = fd, name, fail

            def fileno(self) -> int:
                return self.fd

            def doRead(self) -> None:
                calls.append(self.name)
                os.read(self.fd, 100)
                if self.fail:
                    raise RuntimeError("broken reader")

            def connectionLost(self, reason: Any) -> None:
                calls.append(self.name + " lost")

        readers = []
        for name, fail in (("good", False), ("bad", True)):
            r, w = os.pipe()
            self.addCleanup(os.close, r)
            self.addCleanup(os.close, w)
            os.write(w, b"x")
            reader = Reader(r, name, fail)
            made.addReader(reader)
            readers.append(reader)
        made.doPoll(0)
        self.assertEqual(sorted(calls), ["bad", "bad lost", "good"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        made.removeReader(readers[0])


class InstalledReactorTests(TestCase):
    """
    Which reactor C{twistd vaurien} runs on.
    """

    @inlineCallbacks
    def test_twistdUsesIt(self) -> Any:
        """
        With no C{--reactor}, C{twistd vaurien} runs on
        L{_twisted.EPollReactor}; with one, on the one asked for.
        """
        from txvaurien.test.controlhelpers import (
            PROXY_LISTENING, TWISTD, spawnPython, spawnTwistd)

        if getattr(_twisted, "EPollReactor", None) is None:
            raise SkipTest("epoll is Linux's")
        base = ["--backend", "demo", "--proxy", "tcp:0:interface=127.0.0.1",
                "--shutdown-grace", "0"]
        _, output = yield spawnTwistd(self, base, PROXY_LISTENING)
        self.assertIn(b"reactor class: txvaurien._twisted.EPollReactor", output.output)
        _, output = yield spawnPython(
            self, ["-c", TWISTD, "-n", "--pidfile=", "--reactor=poll", "vaurien", *base],
            PROXY_LISTENING)
        self.assertIn(b"reactor class: twisted.internet.pollreactor.PollReactor",
                      output.output)
