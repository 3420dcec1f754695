"""
Tests of L{txvaurien.testing.trial}: chaos proxies on the test's own
reactor, with real sockets of 127.0.0.1 and Twisted clients (no threads).
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.internet import defer, error, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from txvaurien.test.controlhelpers import echoServer
from txvaurien.testing import ChaosProxyMixin, ChaosUsageError, TrialProxy, startProxy


class _Exchange(protocol.Protocol):
    """
    Sends C{data} and collects the answer until C{len(data)} bytes or the
    end of the connection.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.received = b""
        self.done: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.started = reactor.seconds()
        self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.data):
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback((self.received, reactor.seconds() - self.started))


@defer.inlineCallbacks
def exchange(port: int, data: bytes = b"ping") -> Generator[Any, Any, Any]:
    """
    Connect to 127.0.0.1:C{port}, send C{data}, and collect the answer.

    @return: a L{Deferred} firing with C{(answer, seconds)}.
    """
    client = _Exchange(data)
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), client)
    result = yield client.done
    return result


class _Case:
    """
    Stands for a test case whose cleanups the test runs itself.
    """

    def __init__(self) -> None:
        self.cleanups: list[Any] = []

    def addCleanup(self, f: Any, *args: Any) -> None:
        self.cleanups.append((f, args))

    @defer.inlineCallbacks
    def cleanUp(self) -> Generator[Any, Any, None]:
        while self.cleanups:
            f, args = self.cleanups.pop()
            yield f(*args)


class StartProxyTests(TestCase):
    """
    L{startProxy} on the real reactor.
    """

    def setUp(self) -> None:
        self.backend = "127.0.0.1:{}".format(echoServer(self))

    @defer.inlineCallbacks
    def test_listensAtOnceOnEphemeralPort(self) -> Generator[Any, Any, None]:
        """
        The proxy listens on an ephemeral port of 127.0.0.1 when
        L{startProxy} returns, and its handle has the shape of the pytest
        plugin's.
        """
        proxy = startProxy(self, self.backend)
        self.assertIsInstance(proxy, TrialProxy)
        self.assertEqual(proxy.host, "127.0.0.1")
        self.assertNotEqual(proxy.port, 0)
        self.assertEqual(proxy.address, "127.0.0.1:{}".format(proxy.port))
        self.assertEqual(proxy.url, "http://127.0.0.1:{}".format(proxy.port))
        answer, _ = yield exchange(proxy.port)
        self.assertEqual(answer, b"ping")

    @defer.inlineCallbacks
    def test_behaviorInsideBlockOnly(self) -> Generator[Any, Any, None]:
        """
        C{with proxy.behavior("error")} breaks the traffic inside the block
        only; the previous behavior and its options come back.
        """
        proxy = startProxy(self, self.backend, behavior="delay",
                           behavior_options={"delay": {"sleep": 0.01}})
        with proxy.behavior("error"):
            answer, _ = yield exchange(proxy.port, b"abcd")
            self.assertNotEqual(answer, b"abcd")
        answer, _ = yield exchange(proxy.port, b"abcd")
        self.assertEqual(answer, b"abcd")
        managed = proxy._proxy()
        self.assertEqual(managed.base.spec, "delay")
        self.assertEqual(managed.base.behaviors["delay"].settings["sleep"], 0.01)

    @defer.inlineCallbacks
    def test_toxicLatencyOnTestReactor(self) -> Generator[Any, Any, None]:
        """
        A C{latency} toxic of 200 ms makes a round trip on the test's
        reactor last at least 200 ms; without it, less than half.
        """
        proxy = startProxy(self, self.backend)
        with proxy.toxic("latency", latency=200):
            _, slow = yield exchange(proxy.port)
        _, fast = yield exchange(proxy.port)
        self.assertGreaterEqual(slow, 0.2)
        self.assertLess(fast, slow / 2)

    @defer.inlineCallbacks
    def test_downRefusesThenComesBack(self) -> Generator[Any, Any, None]:
        """
        Inside C{with (yield proxy.down())} connecting is refused; after
        it the same port answers again.
        """
        proxy = startProxy(self, self.backend)
        with (yield proxy.down()):
            yield self.assertFailure(exchange(proxy.port), error.ConnectionRefusedError)
        answer, _ = yield exchange(proxy.port)
        self.assertEqual(answer, b"ping")

    @defer.inlineCallbacks
    def test_cleanupFreesPortAndRetiresHandle(self) -> Generator[Any, Any, None]:
        """
        L{startProxy} registers a cleanup with the case; once it ran, the
        port refuses connections and the handle refuses to be used, saying
        why.
        """
        case = _Case()
        proxy = startProxy(case, self.backend)
        self.assertEqual(len(case.cleanups), 1)
        yield case.cleanUp()
        yield self.assertFailure(exchange(proxy.port), error.ConnectionRefusedError)
        e = self.assertRaises(ChaosUsageError, proxy.set_behavior, "delay")
        self.assertIn("was removed (its test ended)", str(e))

    def test_badUpstream(self) -> None:
        """
        An upstream that is not host:port is refused with the reason.
        """
        e = self.assertRaises(ChaosUsageError, startProxy, self, "localhost")
        self.assertIn("upstream 'localhost' is not host:port", str(e))

    def test_unknownBehaviorOrOption(self) -> None:
        """
        An unknown behavior, at start or later, and an unknown option are
        refused, naming them.
        """
        e = self.assertRaises(ChaosUsageError, startProxy, self, self.backend,
                              behavior="dealy")
        self.assertIn("unknown behavior 'dealy'", str(e))
        proxy = startProxy(self, self.backend)
        e = self.assertRaises(ChaosUsageError, proxy.set_behavior, "hnag")
        self.assertIn("unknown behavior 'hnag'", str(e))
        e = self.assertRaises(ChaosUsageError, proxy.set_behavior, "delay", slep=1)
        self.assertIn("slep: unknown option", str(e))

    @defer.inlineCallbacks
    def test_journalListsFaultsOrSaysWhy(self) -> Generator[Any, Any, None]:
        """
        With the fault journal in this txvaurien, C{journal()} lists the
        faults the proxy injected (here an C{error}); without it, it raises
        L{NotImplementedError} naming the fault journal.
        """
        proxy = startProxy(self, self.backend)
        with proxy.behavior("error"):
            yield exchange(proxy.port, b"abcd")
        try:
            import txvaurien.journal  # type: ignore[import-not-found, unused-ignore] # noqa: F401
        except ImportError:
            e = self.assertRaises(NotImplementedError, proxy.journal)
            self.assertIn("fault journal", str(e))
        else:
            events = proxy.journal()
            self.assertTrue(events)
            self.assertEqual({e["behavior"] for e in events}, {"error"})
            self.assertEqual({e["proxy"] for e in events}, {proxy.name})


class MixinTests(ChaosProxyMixin, TestCase):
    """
    L{ChaosProxyMixin}.
    """

    @defer.inlineCallbacks
    def test_startProxyMethod(self) -> Generator[Any, Any, None]:
        """
        C{self.startProxy} starts a proxy for this test, with a protocol
        and a seed.
        """
        proxy = self.startProxy("127.0.0.1:{}".format(echoServer(self)), seed=5)
        self.assertEqual(proxy.factory.random.seed, 5)
        answer, _ = yield exchange(proxy.port)
        self.assertEqual(answer, b"ping")
