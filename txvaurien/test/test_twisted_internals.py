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
from twisted.trial.unittest import SynchronousTestCase, TestCase

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
