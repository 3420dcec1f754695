"""
Integration tests of the C{redis} protocol handler: a real redis-server
(started for each test on an ephemeral port of 127.0.0.1, in a temporary
directory, without persistence), the real proxy (L{listenProxy}) and real
clients: redis-py (blocking, in worker threads so the reactor keeps
serving), plain sockets for byte-exact checks, and C{redis-benchmark}.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from txvaurien.test.realclients import (
    Events,
    RealServerTestCase,
    assertSeededSubset,
    cutMidResponse,
    leaveMidRequest,
    storeAndGetFailures,
    transcript,
)
from txvaurien.test.servers import (
    freePort,
    requireBinary,
    requireModule,
    startServer,
)


def startRedis(case: TestCase) -> defer.Deferred:
    """
    Start a redis-server for C{case}, stopped when it ends: no snapshots,
    no append-only file, C{DEBUG} enabled (for C{DEBUG PROTOCOL}).

    @return: a L{defer.Deferred} firing with the
        L{txvaurien.test.servers.RunningServer}.
    """
    binary = requireBinary("redis-server", "redis-server")
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    port = freePort()
    return startServer(case, [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", directory, "--protected-mode", "no",
        "--enable-debug-command", "yes", "--loglevel", "warning",
    ], port, path=directory)


class RedisIntegrationTests(RealServerTestCase):
    """
    redis-py and plain sockets through C{--protocol redis}.
    """

    protocol = "redis"

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.redis = requireModule("redis", "redis")
        self.server = yield startRedis(self)
        self.events = Events(self)

    def client(self, port: int, **kwargs: Any) -> Any:
        """
        A blocking redis-py client of 127.0.0.1:C{port}, closed at the end
        of the test.  Use it in threads; with C{single_connection_client}
        make it in a thread too, since it connects at once.
        """
        options: dict[str, Any] = dict(host="127.0.0.1", port=port, socket_timeout=30)
        options.update(kwargs)
        client = self.redis.Redis(**options)
        self.addCleanup(client.close)
        return client

    @defer.inlineCallbacks
    def test_commandsAndPipelineWithDummy(self) -> Generator[Any, Any, Any]:
        """
        With C{dummy}, redis-py works normally through the proxy: single
        commands, a pipeline of 200 commands, a 5 MiB value both ways.
        """
        factory = self.proxy()
        client = self.client(factory.port)
        big = os.urandom(5 << 20)

        def work() -> Any:
            client.set("k", "v")
            pipe = client.pipeline(transaction=False)
            for i in range(100):
                pipe.set("key:%d" % i, "value:%d" % i)
                pipe.get("key:%d" % i)
            results = pipe.execute()
            client.set("big", big)
            return client.get("k"), results, client.get("big")

        value, results, fetched = yield self.inThread(work)
        self.assertEqual(value, b"v")
        self.assertEqual(results[0::2], [True] * 100)
        self.assertEqual(results[1::2], [b"value:%d" % i for i in range(100)])
        self.assertEqual(fetched, big)
        self.assertEqual(self.events.failures(), [])

    @defer.inlineCallbacks
    def test_multiExec(self) -> Generator[Any, Any, Any]:
        """
        A MULTI/EXEC transaction through the proxy (QUEUED replies, then
        the EXEC array) gives redis-py its results.
        """
        factory = self.proxy()
        client = self.client(factory.port)

        def work() -> Any:
            pipe = client.pipeline(transaction=True)
            pipe.set("n", 1).incr("n").incrby("n", 5).get("n")
            return pipe.execute()

        results = yield self.inThread(work)
        self.assertEqual(results, [True, 2, 7, b"7"])

    @defer.inlineCallbacks
    def test_pubsub(self) -> Generator[Any, Any, Any]:
        """
        Subscriptions through the proxy, in RESP2 and RESP3: confirmations,
        then messages published by another client, channel and pattern.
        """
        factory = self.proxy()
        for protocol in (2, 3):
            subscriber = self.client(factory.port, protocol=protocol)
            publisher = self.client(factory.port, protocol=protocol)

            def work() -> Any:
                pubsub = subscriber.pubsub()
                pubsub.subscribe("news", "sport")
                pubsub.psubscribe("weather.*")
                got = [pubsub.get_message(timeout=10) for _ in range(3)]
                publisher.publish("news", "hello")
                publisher.publish("weather.paris", "rain")
                got += [pubsub.get_message(timeout=10) for _ in range(2)]
                pubsub.ping()
                got.append(pubsub.get_message(timeout=10))
                pubsub.unsubscribe()
                got += [pubsub.get_message(timeout=10) for _ in range(2)]
                pubsub.close()
                return got

            got = yield self.inThread(work)
            kinds = [(m["type"], m["channel"], m["data"]) for m in got]
            self.assertEqual(kinds[:3], [("subscribe", b"news", 1), ("subscribe", b"sport", 2),
                                         ("psubscribe", b"weather.*", 3)])
            self.assertEqual(kinds[3:5], [("message", b"news", b"hello"),
                                          ("pmessage", b"weather.paris", b"rain")])
            self.assertEqual(kinds[5][0], "pong")
            # Redis picks the order; the counts left go down one by one.
            self.assertEqual([k[0] for k in kinds[6:]], ["unsubscribe", "unsubscribe"])
            self.assertEqual({k[1] for k in kinds[6:]}, {b"news", b"sport"})
            self.assertEqual([k[2] for k in kinds[6:]], [2, 1])

    @defer.inlineCallbacks
    def test_resp3TypesByteForByte(self) -> Generator[Any, Any, Any]:
        """
        After C{HELLO 3}, every type C{DEBUG PROTOCOL} makes the server send
        (maps, sets, doubles, big numbers, verbatim strings, attributes,
        pushes...) reaches a client through the proxy exactly as it does
        directly.
        """
        factory = self.proxy()
        types = [b"string", b"integer", b"double", b"bignum", b"null", b"array", b"set",
                 b"map", b"attrib", b"push", b"verbatim", b"true", b"false"]
        requests = b"HELLO 3\r\n" + b"".join(
            b"DEBUG PROTOCOL %s\r\n" % t for t in types) + b"QUIT\r\n"
        direct = yield self.inThread(transcript, self.server.port, requests)
        proxied = yield self.inThread(transcript, factory.port, requests)
        self.assertIn(b"|1\r\n", direct)
        self.assertIn(b">2\r\n", direct)
        # Only the client id (in HELLO's reply) differs.
        clientId = re.compile(rb"\$2\r\nid\r\n:[0-9]+\r\n")
        self.assertEqual(clientId.sub(b"", proxied), clientId.sub(b"", direct))

    @defer.inlineCallbacks
    def test_resp3Client(self) -> Generator[Any, Any, Any]:
        """
        redis-py in RESP3 mode reads maps, sets and doubles through the
        proxy.
        """
        factory = self.proxy()
        client = self.client(factory.port, protocol=3)

        def work() -> Any:
            client.hset("h", mapping={"a": "1", "b": "2"})
            client.sadd("s", "x", "y")
            client.zadd("z", {"m": 1.5})
            return client.hgetall("h"), client.smembers("s"), client.zscore("z", "m")

        hashed, members, score = yield self.inThread(work)
        self.assertEqual(hashed, {b"a": b"1", b"b": b"2"})
        self.assertEqual(members, {b"x", b"y"})
        self.assertEqual(score, 1.5)

    @defer.inlineCallbacks
    def test_swallowBehaviorIsResponseError(self) -> Generator[Any, Any, Any]:
        """
        The proxy's error reply (here from the test-only C{swallow},
        acting on C{GET} only) is a redis-py C{ResponseError}, and the same
        connection then serves the next commands.
        """
        factory = self.proxy("100:swallow", settings={"swallow": {"only": "GET"}})
        exceptions = self.redis.exceptions

        def work() -> Any:
            client = self.client(factory.port, single_connection_client=True)
            client.set("k", "v")
            with self.assertRaises(exceptions.ResponseError) as caught:
                client.get("k")
            client.set("k", "w")
            return str(caught.exception), client.incr("counter"), client.exists("k")

        message, counter, exists = yield self.inThread(work)
        self.assertEqual((message, counter, exists), ("swallowed", 1, 1))
        self.assertEqual(factory.accepted, 1)

    @defer.inlineCallbacks
    def test_errorBehaviorIsResponseError(self) -> Generator[Any, Any, Any]:
        """
        The C{error} behavior's reply is a redis-py C{ResponseError}; once
        the behavior table is back to C{dummy}, the same connection serves
        commands again.
        """
        factory = self.proxy("100:error")
        exceptions = self.redis.exceptions

        def fail() -> tuple[Any, str]:
            client = self.client(factory.port, single_connection_client=True, protocol=2,
                                 driver_info=None)
            with self.assertRaises(exceptions.ResponseError) as caught:
                client.set("k", "v")
            return client, str(caught.exception)

        client, message = yield self.inThread(fail)
        self.assertIn("injected by txvaurien", message)
        self.setTable(factory, "100:dummy")

        def work() -> Any:
            client.set("k", "v")
            return client.get("k")

        value = yield self.inThread(work)
        self.assertEqual(value, b"v")
        self.assertEqual(factory.accepted, 1)

    @defer.inlineCallbacks
    def test_delayHoldsTheCommand(self) -> Generator[Any, Any, Any]:
        """
        C{delay} (request or response side) makes a command take at least
        its C{sleep}, measured by the client; the reply is the right one.
        The upper bound is loose (10 s) because the machine may be busy.
        """
        for before in (True, False):
            factory = self.proxy("100:delay", settings={"delay": {"sleep": 0.4, "before": before}})

            def work() -> Any:
                client = self.client(factory.port, single_connection_client=True, protocol=2,
                                     driver_info=None)
                client.ping()
                started = time.monotonic()
                client.set("d", "1")
                value = client.get("d")
                return (time.monotonic() - started) / 2, value

            each, value = yield self.inThread(work)
            self.assertEqual(value, b"1")
            self.assertGreaterEqual(each, 0.4)
            self.assertLess(each, 10.4)

    def cutCommand(self, behavior: str, key: str) -> defer.Deferred:
        """
        C{SET key yes} through a new proxy with C{behavior}, which must
        make redis-py raise its C{ConnectionError}.

        @return: a L{defer.Deferred} firing with C{key}'s value in redis.
        """
        factory = self.proxy(behavior)
        exceptions = self.redis.exceptions
        direct = self.client(self.server.port)

        def work() -> Any:
            client = self.client(factory.port, protocol=2, driver_info=None,
                                 retry_on_error=[], retry=None)
            with self.assertRaises(exceptions.ConnectionError):
                client.set(key, "yes")
            return direct.get(key)

        return self.inThread(work)

    @defer.inlineCallbacks
    def test_abortIsConnectionError(self) -> Generator[Any, Any, Any]:
        """
        With C{abort} the command reaches redis (the key is set) but the
        connection drops before the reply: redis-py raises its
        C{ConnectionError}.
        """
        value = yield self.cutCommand("100:abort", "aborted")
        self.assertEqual(value, b"yes")

    @defer.inlineCallbacks
    def test_blackoutIsConnectionError(self) -> Generator[Any, Any, Any]:
        """
        With C{blackout} the connection is cut when the command arrives,
        which never reaches redis: redis-py raises its C{ConnectionError}.
        """
        value = yield self.cutCommand("100:blackout", "blackout")
        self.assertIsNone(value)

    @defer.inlineCallbacks
    def pipelinedFailures(self, behavior: str, seed: int) -> Generator[Any, Any, Any]:
        """
        100 pipelined C{SET}/C{GET} pairs through a new proxy with
        C{behavior} under request scope.

        @return: the indexes of the commands that failed.
        """
        factory = self.proxy(behavior, seed=seed, scope="request")
        client = self.client(factory.port, protocol=2, driver_info=None)
        exceptions = self.redis.exceptions

        def work() -> Any:
            pipe = client.pipeline(transaction=False)
            for i in range(50):
                pipe.set("p:%d" % i, "v:%d" % i)
                pipe.get("p:%d" % i)
            return pipe.execute(raise_on_error=False)

        results = yield self.inThread(work)
        self.assertEqual(len(results), 100)
        return storeAndGetFailures(
            self, results, lambda result: isinstance(result, exceptions.ResponseError),
            True, None, lambda n: b"v:%d" % n)

    @defer.inlineCallbacks
    def test_requestScopeIsReproducible(self) -> Generator[Any, Any, Any]:
        """
        C{50:error} (and the test-only C{50:swallow}) with a fixed seed
        fail a subset of 100 pipelined commands with C{ResponseError}; the
        others succeed with the right data; the same seed fails the same
        subset again, another seed another one.
        """
        for behavior in ("50:error", "50:swallow"):
            yield assertSeededSubset(
                self, lambda seed: self.pipelinedFailures(behavior, seed), 42, 43)

    @defer.inlineCallbacks
    def test_redisBenchmark(self) -> Generator[Any, Any, Any]:
        """
        C{redis-benchmark} runs through the proxy without an error.
        """
        benchmark = requireBinary("redis-benchmark", "redis-tools")
        factory = self.proxy()

        def run() -> Any:
            return subprocess.run(
                [benchmark, "-h", "127.0.0.1", "-p", str(factory.port), "-q", "--csv",
                 "-n", "2000", "-c", "10", "-t", "get,set,lpush,lpop,incr,lrange_100,mset"],
                capture_output=True, text=True, timeout=300)

        result = yield self.inThread(run)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = [line.split(",") for line in result.stdout.splitlines()
                if line and not line.startswith('"test"')]
        names = {row[0].strip('"').split()[0] for row in rows}
        self.assertEqual(names, {"SET", "GET", "INCR", "LPUSH", "LPOP", "LRANGE_100", "MSET"},
                         result.stdout)
        self.assertTrue(all(float(row[1].strip('"')) > 0 for row in rows), result.stdout)
        self.assertNotIn("error", (result.stdout + result.stderr).lower())
        self.assertEqual(self.events.failures(), [])

    @defer.inlineCallbacks
    def test_backendDiesMidResponse(self) -> Generator[Any, Any, Any]:
        """
        When redis-server dies while a 30 MiB reply is on its way, the
        client sees the stream end early; once it closes its side, as
        client libraries do, the proxy forgets the connection and logs
        its end once, without an error.
        """
        factory = self.proxy()
        value = b"x" * (30 << 20)
        setter = self.client(self.server.port)
        yield self.inThread(setter.set, "big", value)
        setter.close()
        first, rest = yield cutMidResponse(
            self, factory.port, b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 1 << 20,
            lambda: self.server.process.stop(signal.SIGKILL))
        self.assertTrue(first.startswith(b"$%d\r\n" % len(value)))
        self.assertLess(len(first) + rest, len(value) + 20)
        yield self.events.assertForgotten(factory)

    @defer.inlineCallbacks
    def test_clientLeavesMidRequest(self) -> Generator[Any, Any, Any]:
        """
        A client that disconnects in the middle of a command is forgotten
        by the proxy and logged once; the server keeps serving.
        """
        factory = self.proxy()
        pong = yield self.inThread(
            leaveMidRequest, factory.port, b"PING\r\n", 7,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + b"a" * 5000)
        self.assertEqual(pong, b"+PONG\r\n")
        yield self.events.assertForgotten(factory)
        client = self.client(factory.port)
        pong = yield self.inThread(client.ping)
        self.assertTrue(pong)

    test_backendDiesMidResponse.timeout = 60
    test_clientLeavesMidRequest.timeout = 60
