"""
Integration tests of the C{memcache} protocol handler: a real memcached
(started for each test on an ephemeral port of 127.0.0.1), the real proxy
(L{listenProxy}) and real clients: pymemcache (blocking, in worker threads
so the reactor keeps serving) and plain sockets for meta commands and
byte-exact checks.
"""

from __future__ import annotations

import os
import re
import signal
import socket
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


def startMemcached(case: TestCase) -> defer.Deferred:
    """
    Start a memcached (TCP only, 128 MiB, items up to 32 MiB) for C{case},
    stopped when it ends.

    @return: a L{defer.Deferred} firing with the
        L{txvaurien.test.servers.RunningServer}.
    """
    binary = requireBinary("memcached", "memcached")
    port = freePort()
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "128", "-I", "32m"]
    if os.getuid() == 0:
        # memcached refuses to run as root unless told which user to be.
        argv += ["-u", "root"]
    return startServer(case, argv, port)


_RESPONSE = re.compile(
    rb"(STORED|SERVER_ERROR [^\r]*|END|VALUE (\S+) \d+ (\d+)\r\n)\r\n", re.S)


def readResponses(sock: socket.socket, count: int) -> list[bytes]:
    """
    Read C{count} responses to C{set} and C{get} commands: C{STORED},
    C{SERVER_ERROR ...} or a C{get}'s value (C{b""} for a miss).
    """
    buffer = b""
    responses: list[bytes] = []
    while len(responses) < count:
        if buffer.startswith(b"STORED\r\n"):
            responses.append(b"STORED")
            buffer = buffer[8:]
            continue
        if buffer.startswith(b"SERVER_ERROR") and b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            responses.append(line)
            continue
        if buffer.startswith(b"END\r\n"):
            responses.append(b"")
            buffer = buffer[5:]
            continue
        match = re.match(rb"VALUE \S+ \d+ (\d+)\r\n", buffer)
        if match is not None:
            size = int(match.group(1))
            end = match.end() + size + 2 + 5
            if len(buffer) >= end:
                responses.append(buffer[match.end() : match.end() + size])
                assert buffer[end - 5 : end] == b"END\r\n", buffer[:end]
                buffer = buffer[end:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed after {} responses".format(len(responses)))
        buffer += chunk
    return responses


class MemcacheIntegrationTests(RealServerTestCase):
    """
    pymemcache and plain sockets through C{--protocol memcache}.
    """

    protocol = "memcache"

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.pymemcache = requireModule("pymemcache", "pymemcache")
        requireModule("pymemcache.exceptions", "pymemcache")
        self.server = yield startMemcached(self)
        self.events = Events(self)

    def client(self, port: int, **kwargs: Any) -> Any:
        """
        A blocking pymemcache client of 127.0.0.1:C{port} (it connects on
        first use; use it in threads), closed at the end of the test.
        """
        from pymemcache.client.base import Client

        options: dict[str, Any] = dict(timeout=30, connect_timeout=10)
        options.update(kwargs)
        client = Client(("127.0.0.1", port), **options)
        self.addCleanup(client.close)
        return client

    @defer.inlineCallbacks
    def test_commandsWithDummy(self) -> Generator[Any, Any, Any]:
        """
        With C{dummy}, pymemcache works normally through the proxy: every
        storage command (with and without C{noreply}), C{cas}, multi-key
        retrieval, arithmetic, touch, delete, stats, version, flush_all,
        and a 4 MiB value.
        """
        factory = self.proxy()
        client = self.client(factory.port)
        big = os.urandom(4 << 20)

        def work() -> dict[str, Any]:
            out: dict[str, Any] = {}
            out["set"] = client.set("a", b"1", noreply=False)
            client.set("quiet", b"q", noreply=True)
            out["add"] = client.add("a", b"2", noreply=False)
            out["replace"] = client.replace("a", b"3", noreply=False)
            out["append"] = client.append("a", b"4", noreply=False)
            out["prepend"] = client.prepend("a", b"0", noreply=False)
            value, token = client.gets("a")
            out["gets"] = value
            out["cas"] = client.cas("a", b"9", token, noreply=False)
            out["casAgain"] = client.cas("a", b"8", token, noreply=False)
            out["setMany"] = client.set_many({"k%d" % i: b"v%d" % i for i in range(50)},
                                             noreply=False)
            out["getMany"] = client.get_many(["a", "quiet", "missing"] + ["k%d" % i for i in range(50)])
            out["incr"] = client.incr("n", 1)
            client.set("n", b"10", noreply=False)
            out["incr2"] = client.incr("n", 5)
            out["decr"] = client.decr("n", 3)
            out["touch"] = client.touch("a", 100, noreply=False)
            out["delete"] = client.delete("a", noreply=False)
            out["get"] = client.get("a")
            out["stats"] = client.stats()
            out["version"] = client.version()
            client.set("big", big, noreply=False)
            out["big"] = client.get("big")
            out["flush"] = client.flush_all(noreply=False)
            out["afterFlush"] = client.get("k1")
            return out

        out = yield self.inThread(work)
        self.assertEqual(
            [out[k] for k in ["set", "add", "replace", "append", "prepend", "gets", "cas",
                              "casAgain", "setMany"]],
            [True, False, True, True, True, b"034", True, False, []])
        expected = {"a": b"9", "quiet": b"q"}
        expected.update({"k%d" % i: b"v%d" % i for i in range(50)})
        self.assertEqual(out["getMany"], expected)
        self.assertEqual([out["incr"], out["incr2"], out["decr"]], [None, 15, 12])
        self.assertEqual([out["touch"], out["delete"], out["get"]], [True, True, None])
        self.assertIn(b"curr_connections", out["stats"])
        self.assertTrue(out["version"].startswith(b"1."))
        self.assertEqual(out["big"], big)
        self.assertEqual([out["flush"], out["afterFlush"]], [True, None])
        self.assertEqual(self.events.failures(), [])

    @defer.inlineCallbacks
    def test_metaCommandsByteForByte(self) -> Generator[Any, Any, Any]:
        """
        Meta commands, quiet ones among them (no bytes on success), then
        C{mn}: the client reads through the proxy exactly what it reads
        directly.
        """
        factory = self.proxy()
        requests = (
            b"flush_all\r\n"
            b"ms a 2 T0 F5\r\nhi\r\n"
            b"ms b 2 q\r\nyo\r\n"
            b"ms a 2 q ME\r\nno\r\n"
            b"mg a v f q\r\n"
            b"mg missing v q\r\n"
            b"mg b s v k O99\r\n"
            b"mg missing v\r\n"
            b"ms n 1\r\n5\r\n"
            b"ma n q\r\n"
            b"ma n v MI D10\r\n"
            b"ma nothing q\r\n"
            b"md b q\r\n"
            b"md b q\r\n"
            b"me a\r\n"
            b"mn\r\n"
            b"get a b n\r\n"
            b"quit\r\n"
        )
        direct = yield self.inThread(transcript, self.server.port, requests)
        proxied = yield self.inThread(transcript, factory.port, requests)
        self.assertIn(b"NS\r\n", direct)
        self.assertIn(b"MN\r\n", direct)
        # Only me's last access time and CAS value may differ.
        access = re.compile(rb" (la|cas)=[0-9]+")
        self.assertEqual(access.sub(b"", proxied), access.sub(b"", direct))

    @defer.inlineCallbacks
    def test_swallowBehaviorIsServerError(self) -> Generator[Any, Any, Any]:
        """
        The proxy's error reply (here from the test-only C{swallow}, acting
        on C{get} only) is a pymemcache C{MemcacheServerError}, and the
        client goes on working afterwards.
        """
        factory = self.proxy("100:swallow", settings={"swallow": {"only": "get"}})
        client = self.client(factory.port)
        errors = requireModule("pymemcache.exceptions", "pymemcache")

        def work() -> Any:
            client.set("k", b"41", noreply=False)
            with self.assertRaises(errors.MemcacheServerError) as caught:
                client.get("k")
            return str(caught.exception), client.gets("k")[0], client.incr("k", 1)

        message, value, incremented = yield self.inThread(work)
        self.assertEqual((message, value, incremented), ("b'swallowed'", b"41", 42))

    @defer.inlineCallbacks
    def test_errorBehaviorIsServerError(self) -> Generator[Any, Any, Any]:
        """
        The C{error} behavior's reply is a pymemcache
        C{MemcacheServerError}; a C{noreply} command passes untouched; once
        the table is back to C{dummy} the client goes on working.
        """
        factory = self.proxy("100:error")
        client = self.client(factory.port)
        errors = requireModule("pymemcache.exceptions", "pymemcache")

        def fail() -> str:
            client.set("k", b"quiet", noreply=True)
            with self.assertRaises(errors.MemcacheServerError) as caught:
                client.get("k")
            return str(caught.exception)

        message = yield self.inThread(fail)
        self.assertIn("injected by txvaurien", message)
        self.setTable(factory, "100:dummy")
        value = yield self.inThread(client.get, "k")
        self.assertEqual(value, b"quiet")

    @defer.inlineCallbacks
    def test_delayHoldsTheCommand(self) -> Generator[Any, Any, Any]:
        """
        C{delay} (request or response side) makes a command take at least
        its C{sleep}, measured by the client; the response is the right
        one.  The upper bound is loose (10 s) because the machine may be
        busy.
        """
        for before in (True, False):
            factory = self.proxy("100:delay", settings={"delay": {"sleep": 0.4, "before": before}})
            client = self.client(factory.port)

            def work() -> Any:
                client.version()
                started = time.monotonic()
                client.set("d", b"1", noreply=False)
                value = client.get("d")
                return (time.monotonic() - started) / 2, value

            each, value = yield self.inThread(work)
            self.assertEqual(value, b"1")
            self.assertGreaterEqual(each, 0.4)
            self.assertLess(each, 10.4)

    @defer.inlineCallbacks
    def test_abortAndBlackoutAreConnectionErrors(self) -> Generator[Any, Any, Any]:
        """
        With C{abort} the command reaches memcached (the value is stored)
        but the connection drops before the response; with C{blackout} it
        is cut before the command reaches memcached.  pymemcache raises a
        connection error either way.
        """
        direct = self.client(self.server.port)
        for behavior, stored in (("100:abort", b"yes"), ("100:blackout", None)):
            factory = self.proxy(behavior)
            client = self.client(factory.port)
            key = behavior.split(":")[1]

            def work() -> Any:
                with self.assertRaises((self.pymemcache.exceptions.MemcacheUnexpectedCloseError,
                                        ConnectionError)):
                    client.set(key, b"yes", noreply=False)
                return direct.get(key)

            value = yield self.inThread(work)
            self.assertEqual(value, stored)

    @defer.inlineCallbacks
    def pipelinedFailures(self, behavior: str, seed: int) -> Generator[Any, Any, Any]:
        """
        50 C{set} and 50 C{get} commands sent in one write through a new
        proxy with C{behavior} under request scope.

        @return: the indexes of the commands that failed.
        """
        factory = self.proxy(behavior, seed=seed, scope="request")
        requests = b"".join(
            b"set p%d 0 0 %d\r\nv%d\r\nget p%d\r\n" % (i, len(b"v%d" % i), i, i)
            for i in range(50))

        def work() -> list[bytes]:
            with socket.create_connection(("127.0.0.1", factory.port), timeout=30) as sock:
                sock.sendall(requests)
                return readResponses(sock, 100)

        responses = yield self.inThread(work)
        return storeAndGetFailures(
            self, responses, lambda response: response.startswith(b"SERVER_ERROR"),
            b"STORED", b"", lambda n: b"v%d" % n)

    @defer.inlineCallbacks
    def test_requestScopeIsReproducible(self) -> Generator[Any, Any, Any]:
        """
        C{50:error} (and the test-only C{50:swallow}) with a fixed seed
        fail a subset of 100 pipelined commands with C{SERVER_ERROR}; the
        others succeed with the right data; the same seed fails the same
        subset, another seed another one.
        """
        for behavior in ("50:error", "50:swallow"):
            yield assertSeededSubset(
                self, lambda seed: self.pipelinedFailures(behavior, seed), 7, 8)

    @defer.inlineCallbacks
    def test_quietRequestsUnderRequestScope(self) -> Generator[Any, Any, Any]:
        """
        Twenty quiet C{ms} then C{mn}, with C{50:error}: the client reads a
        C{SERVER_ERROR} for each command that failed, in its place,
        nothing for the quiet ones that succeeded (and memcached stored
        exactly those), and C{mn}'s answer last.
        """
        error = b"SERVER_ERROR error injected by txvaurien"
        for seed in (3, 4, 5):
            factory = self.proxy("50:error", seed=seed, scope="request")
            flush = self.client(self.server.port)
            yield self.inThread(lambda: flush.flush_all(noreply=False))
            requests = b"".join(b"ms q%d 1 q\r\n%d\r\n" % (i, i % 10) for i in range(20))
            data = yield self.inThread(transcript, factory.port, requests + b"mn\r\nquit\r\n")
            lines = data.split(b"\r\n")
            self.assertEqual(lines[-1], b"")
            lines = lines[:-1]
            self.assertIn(lines[-1], (b"MN", error))
            self.assertEqual(set(lines[:-1]) - {error}, set())
            failedSets = len(lines) - 1
            stored = yield self.inThread(
                lambda: flush.get_many(["q%d" % i for i in range(20)]))
            self.assertEqual(len(stored), 20 - failedSets)

    @defer.inlineCallbacks
    def test_backendDiesMidResponse(self) -> Generator[Any, Any, Any]:
        """
        When memcached dies while a 30 MiB value is on its way, the client
        sees the stream end early; once it closes its side, the proxy
        forgets the connection and logs its end once, without an error.

        The value is much larger than what loopback sockets can hold
        between memcached and the client (about 8-12 MiB were seen here,
        with autotuned buffers up to C{tcp_rmem}'s 32 MiB), so memcached
        cannot have sent it all before it is killed; with 6 MiB it
        sometimes had.
        """
        factory = self.proxy()
        value = b"x" * (30 << 20)
        setter = self.client(self.server.port)
        yield self.inThread(lambda: setter.set("big", value, noreply=False))
        setter.close()
        first, rest = yield cutMidResponse(
            self, factory.port, b"get big\r\n", 1 << 18,
            lambda: self.server.process.stop(signal.SIGKILL))
        self.assertTrue(first.startswith(b"VALUE big 0 %d\r\n" % len(value)))
        self.assertLess(len(first) + rest, len(value))
        yield self.events.assertForgotten(factory)

    @defer.inlineCallbacks
    def test_clientLeavesMidRequest(self) -> Generator[Any, Any, Any]:
        """
        A client that disconnects in the middle of a data block is
        forgotten by the proxy and logged once; memcached keeps serving.
        """
        factory = self.proxy()
        version = yield self.inThread(
            leaveMidRequest, factory.port, b"version\r\n", 9,
            b"set k 0 0 100000\r\n" + b"a" * 5000)
        self.assertTrue(version.startswith(b"VERSION "), version)
        yield self.events.assertForgotten(factory)
        client = self.client(factory.port)
        version = yield self.inThread(client.version)
        self.assertTrue(version.startswith(b"1."))

    test_backendDiesMidResponse.timeout = 60
    test_clientLeavesMidRequest.timeout = 60
