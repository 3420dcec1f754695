"""
The UDP proxy on real loopback sockets, against a UDP echo server: replies
reach the right clients, drop rates and Gilbert-Elliott bursts as
configured over 10,000 datagrams, duplication and reordering counted
exactly under a seed, and the same seed losing the same datagrams.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase

from txvaurien.datagram.addresses import UDPBackend
from txvaurien.datagram.proxy import DatagramProxy
from txvaurien.frames import UPSTREAM
from txvaurien.randomness import RandomSource
from txvaurien.table import CONNECTION_SCOPE, buildTable
from txvaurien.test.test_datagram_behaviors import assertNear, bursts_, registry

#: Datagrams sent before waiting for them to be accounted for, so that
#: loopback socket buffers never overflow (which would lose datagrams the
#: proxy did not drop).
BATCH = 200


class Echo(DatagramProtocol):
    """
    Sends every datagram back.
    """

    noisy = False

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.transport.write(data, addr)


class Client(DatagramProtocol):
    """
    Sends numbered datagrams to the proxy and records the numbers that
    come back, in order.
    """

    noisy = False

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.received: list[int] = []
        self.sent = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append(int.from_bytes(data[:4], "big"))

    def send(self, number: int, size: int = 16) -> None:
        data = number.to_bytes(4, "big") + b"\0" * (size - 4)
        self.transport.write(data, self.target)
        self.sent += 1


def poll(condition: Callable[[], bool], timeout: float = 10.0) -> Any:
    """
    A L{Deferred} that fires once C{condition()} is true, checking every
    millisecond; it fails after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout

    @inlineCallbacks
    def loop() -> Generator[Any, Any, None]:
        while not condition():
            if reactor.seconds() > deadline:
                raise AssertionError("condition not met in {}s".format(timeout))
            yield task.deferLater(reactor, 0.001, lambda: None)

    return loop()


class EchoCase(TestCase):
    """
    An echo server, a proxy in front of it, and clients.
    """

    def setUp(self) -> None:
        self.echo = reactor.listenUDP(0, Echo(), interface="127.0.0.1")
        self.addCleanup(self.echo.stopListening)

    def proxy(self, spec: str = "100:dummy", settings: Any = None, seed: int = 1,
              **kwargs: Any) -> DatagramProxy:
        handler = registry().protocols.get("tcp")
        table = buildTable(spec, registry(), settings or {}, CONNECTION_SCOPE)
        proxy = DatagramProxy(
            UDPBackend("127.0.0.1", self.echo.getHost().port), handler, table,
            reactor, RandomSource(seed), "echo", **kwargs)
        port = reactor.listenUDP(0, proxy, interface="127.0.0.1",
                                 maxPacketSize=proxy.maxDatagram + 1)
        self.addCleanup(proxy.closeAll)
        self.addCleanup(port.stopListening)
        self.target = ("127.0.0.1", port.getHost().port)
        return proxy

    def client(self) -> Client:
        client = Client(self.target)
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return client

    @inlineCallbacks
    def pump(self, client: Client, count: int,
             accounted: Callable[[], int]) -> Generator[Any, Any, None]:
        """
        Send C{count} numbered datagrams in batches, waiting after each for
        C{accounted()} (replies plus what the proxy dropped or holds) to
        catch up.
        """
        for start in range(0, count, BATCH):
            for n in range(start, min(count, start + BATCH)):
                client.send(n)
            yield poll(lambda: accounted() >= client.sent)

    @inlineCallbacks
    def lost(self, settings: dict[str, Any], count: int,
             seed: int = 1) -> Generator[Any, Any, list[int]]:
        """
        Pump C{count} datagrams through C{drop} upstream; the numbers that
        did not come back.
        """
        proxy = self.proxy("100:drop", {"drop": {"direction": "upstream", **settings}}, seed)
        client = self.client()
        yield self.pump(client, count,
                        lambda: len(client.received) + proxy.droppedCount[UPSTREAM])
        back = set(client.received)
        missing = [n for n in range(count) if n not in back]
        self.assertEqual(len(missing), proxy.droppedCount[UPSTREAM])
        return missing


class RoutingTests(EchoCase):
    """
    Replies go back to the client that sent.
    """

    @inlineCallbacks
    def test_repliesReachTheirClients(self) -> Generator[Any, Any, None]:
        """
        Two clients through one proxy each get their own echoes, through
        two sessions.
        """
        proxy = self.proxy()
        a, b = self.client(), self.client()
        for n in range(5):
            a.send(n)
            b.send(100 + n)
        yield poll(lambda: len(a.received) == 5 and len(b.received) == 5)
        self.assertEqual(sorted(a.received), [0, 1, 2, 3, 4])
        self.assertEqual(sorted(b.received), [100, 101, 102, 103, 104])
        self.assertEqual(len(proxy.sessions), 2)

    @inlineCallbacks
    def test_oversizeDatagramNotForwarded(self) -> Generator[Any, Any, None]:
        """
        A datagram over the bound is dropped and counted; the next one
        passes.
        """
        proxy = self.proxy(maxDatagram=100)
        client = self.client()
        client.send(1, size=101)
        client.send(2, size=100)
        yield poll(lambda: client.received == [2])
        self.assertEqual(proxy.oversize[UPSTREAM], 1)

    @inlineCallbacks
    def test_unreachableBackendCounted(self) -> Generator[Any, Any, None]:
        """
        A backend port nothing listens on answers with ICMP unreachable,
        which the proxy counts; the client gets nothing back.
        """
        proxy = self.proxy()
        yield self.echo.stopListening()
        client = self.client()
        client.send(1)
        yield poll(lambda: proxy.unreachable > 0)
        self.assertEqual(client.received, [])
        self.assertEqual(len(proxy.sessions), 1)


class LossTests(EchoCase):
    """
    C{drop} against the echo server.
    """

    @inlineCallbacks
    def test_dropRateWithinThreePoints(self) -> Generator[Any, Any, None]:
        """
        C{loss_rate} 0.3 loses 30% of 10,000 datagrams, within 3 points.
        """
        missing = yield self.lost({"loss_rate": 0.3}, 10000)
        assertNear(self, len(missing) / 10000, 0.3, 0.03)

    @inlineCallbacks
    def test_gilbertElliottBurstLengths(self) -> Generator[Any, Any, None]:
        """
        Bursts of losses last C{1 / bad_to_good} datagrams on average, and
        the loss rate is C{good_to_bad / (good_to_bad + bad_to_good)}, over
        10,000 datagrams.
        """
        missing = yield self.lost({"good_to_bad": 0.05, "bad_to_good": 0.25}, 10000)
        bursts = bursts_(missing)
        assertNear(self, sum(bursts) / len(bursts), 4.0, 0.6)
        assertNear(self, len(missing) / 10000, 0.05 / 0.3, 0.03)

    @inlineCallbacks
    def test_sameSeedLosesSameDatagrams(self) -> Generator[Any, Any, None]:
        """
        Two runs with seed 7 lose the same datagrams; seed 8 others.
        """
        first = yield self.lost({"loss_rate": 0.2}, 1000, seed=7)
        again = yield self.lost({"loss_rate": 0.2}, 1000, seed=7)
        other = yield self.lost({"loss_rate": 0.2}, 1000, seed=8)
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)


class CountTests(EchoCase):
    """
    C{duplicate} and C{reorder}, counted exactly.
    """

    @inlineCallbacks
    def test_duplicationCountedExactly(self) -> Generator[Any, Any, None]:
        """
        The client gets back every datagram plus exactly the copies the
        behavior counted, and the same seed duplicates the same ones.
        """
        runs = []
        for _ in range(2):
            proxy = self.proxy("100:duplicate", {"duplicate": {"probability": 0.1}}, seed=5)
            behavior = proxy.table.behaviors["duplicate"]
            client = self.client()
            yield self.pump(client, 2000,
                            lambda: len(client.received) - behavior.duplicated)
            yield poll(lambda: len(client.received) == 2000 + behavior.duplicated)
            self.assertEqual(sorted(set(client.received)), list(range(2000)))
            runs.append(sorted(n for n in set(client.received)
                               if client.received.count(n) > 1))
        self.assertEqual(runs[0], runs[1])
        assertNear(self, len(runs[0]) / 2000, 0.1, 0.03)

    @inlineCallbacks
    def test_reorderingCountedExactly(self) -> Generator[Any, Any, None]:
        """
        Every datagram comes back once, and exactly those the behavior held
        (and released) arrive after a later one.
        """
        proxy = self.proxy("100:reorder", {"reorder": {"probability": 0.1, "timeout": 0}},
                           seed=9)
        behavior = proxy.table.behaviors["reorder"]
        client = self.client()

        def held() -> int:
            session = next(iter(proxy.sessions.values()), None)
            return len(session.up.stages[0].fault.held) if session else 0

        yield self.pump(client, 2000, lambda: len(client.received) + held())
        stillHeld = held()
        received = client.received
        late = [n for i, n in enumerate(received) if any(m > n for m in received[max(0, i - 5):i])]
        self.assertEqual(len(late), behavior.reordered - stillHeld)
        self.assertEqual(len(received) + stillHeld, 2000)
        self.assertEqual(len(set(received)), len(received))
