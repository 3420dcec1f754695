"""
The fast path splices only bulk: small messages stay on plain writes, a
bulk transfer moves to splice(2), and the sockets go back to plain writes
when reads get small again, with every byte in order.
"""

from __future__ import annotations

import hashlib
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import SkipTest, TestCase

from txvaurien import splice
from txvaurien.pipe import BULK_READ
from txvaurien.test.helpers import listenProxy
from txvaurien.test.servers import listenBackend


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Collector(protocol.Protocol):
    """
    Counts and hashes what it receives; C{waitFor(n)} fires once C{n}
    bytes arrived in all.
    """

    def __init__(self) -> None:
        self.received = 0
        self.digest = hashlib.sha256()
        self.waiting: list[tuple[int, defer.Deferred]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        self.digest.update(data)
        for entry in list(self.waiting):
            if self.received >= entry[0]:
                self.waiting.remove(entry)
                entry[1].callback(None)

    def waitFor(self, total: int) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if self.received >= total:
            d.callback(None)
        else:
            self.waiting.append((total, d))
        return d


class SwitchTests(TestCase):
    """
    When the fast path splices.
    """

    timeout = 60

    def setUp(self) -> None:
        if not splice.available():
            raise SkipTest("splice(2) needs Linux")

    @defer.inlineCallbacks
    def test_smallMessagesPlainBulkSpliced(self) -> Generator[Any, Any, None]:
        """
        Echoing small messages makes no splicer; a 16 MiB
        upload switches the upstream Pipe to splice; small messages after
        it switch it back to plain writes within L{splice.SMALL_READS}
        reads; the client gets back exactly what it sent.
        """
        port = listenBackend(self, protocol.Factory.forProtocol(Echo))
        proxy = listenProxy(self, port)
        collector = Collector()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: collector))
        self.addCleanup(collector.transport.loseConnection)
        sent = hashlib.sha256()
        total = 0

        def send(data: bytes) -> None:
            nonlocal total
            sent.update(data)
            total += len(data)
            collector.transport.write(data)

        for i in range(20):
            send(b"small %d " % i)
            yield collector.waitFor(total)
        [connection] = proxy.connections
        self.assertTrue(connection.upstream.spliceable)
        self.assertIsNone(connection.upstream.splicer)
        self.assertIsNone(connection.downstream.splicer)
        starts = []
        original = splice.Splicer.start

        def start(splicer: splice.Splicer) -> None:
            starts.append(splicer)
            original(splicer)

        self.patch(splice.Splicer, "start", start)
        bulk = bytes(range(256)) * (BULK_READ // 64)
        for _ in range(16 * 1024 * 1024 // len(bulk)):
            send(bulk)
        yield collector.waitFor(total)
        self.assertIn(connection.upstream.splicer, starts)
        for i in range(splice.SMALL_READS + 2):
            send(b"after %d " % i)
            yield collector.waitFor(total)
        self.assertFalse(connection.upstream.splicer.active)
        self.assertEqual(collector.received, total)
        self.assertEqual(collector.digest.hexdigest(), sent.hexdigest())
