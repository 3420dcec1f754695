"""
Request matching with real clients and servers: urllib against Twisted
web through C{--protocol http}, redis-py against redis-server, psycopg
against PostgreSQL, and a client network match with plain sockets.
"""

from __future__ import annotations

import io
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Generator

from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from txvaurien import ctl
from txvaurien.test.controlhelpers import EchoControlTestCase, echoServer
from txvaurien.test.helpers import listenProxy
from txvaurien.test.servers import listenBackend, requireModule, sharedServer
from txvaurien.test.test_protocol_postgresql_integration import PASSWORD, startPostgres
from txvaurien.test.test_protocol_redis_integration import startRedis


class _Answer(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"got " + request.path

    def render_POST(self, request: Any) -> bytes:
        return b"posted " + request.path


def _status(url: str, method: str) -> int:
    request = urllib.request.Request(url, data=b"x=1" if method == "POST" else None,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as e:
        e.read()
        return int(e.code)


class HTTPMatchTests(TestCase):
    """
    urllib against Twisted web, through the proxy.
    """

    @defer.inlineCallbacks
    def test_errorsOnPostApiOnly(self) -> Generator[Any, Any, None]:
        """
        With C{50:error} matching C{method=POST path=/api/*}, no GET and no
        POST elsewhere fails, and about half the POSTs to C{/api/} are
        answered 503 by the proxy.
        """
        backend = listenBackend(self, server.Site(_Answer()))
        proxy = listenProxy(self, backend, "50:error", "http", {
            "error": {"match": "method=POST path=/api/*", "codes": [503]}})
        base = "http://127.0.0.1:{}".format(proxy.port)

        def work() -> dict[str, list[int]]:
            result: dict[str, list[int]] = {"get": [], "other": [], "api": []}
            for _ in range(40):
                result["get"].append(_status(base + "/api/orders", "GET"))
                result["other"].append(_status(base + "/form", "POST"))
            for _ in range(120):
                result["api"].append(_status(base + "/api/orders", "POST"))
            return result

        result = yield threads.deferToThread(work)
        self.assertEqual(set(result["get"]), {200})
        self.assertEqual(set(result["other"]), {200})
        self.assertEqual(set(result["api"]), {200, 503})
        self.assertTrue(35 <= result["api"].count(503) <= 85, result["api"].count(503))


class RedisMatchTests(TestCase):
    """
    redis-py against redis-server, through the proxy.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_errorsOnSetUserKeysOnly(self) -> Generator[Any, Any, None]:
        """
        With C{error} matching C{command=SET key=user:*}, every C{SET
        user:N} fails with a redis error (and never reaches redis), while
        other SETs and every GET work.
        """
        redis = requireModule("redis", "redis")
        backend = yield startRedis(self)
        proxy = listenProxy(self, backend.port, "100:error", "redis", {
            "error": {"match": "command=SET key=user:*"}})

        def work() -> tuple[int, list[Any], list[Any]]:
            client = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=30)
            direct = redis.Redis(host="127.0.0.1", port=backend.port, socket_timeout=30)
            try:
                failed = 0
                for i in range(20):
                    try:
                        client.set("user:{}".format(i), "u")
                    except redis.exceptions.ResponseError:
                        failed += 1
                    client.set("order:{}".format(i), "o")
                gets = [client.get("order:{}".format(i)) for i in range(20)]
                stored = [direct.get("user:{}".format(i)) for i in range(20)]
                return failed, gets, stored
            finally:
                client.close()
                direct.close()

        failed, gets, stored = yield threads.deferToThread(work)
        self.assertEqual(failed, 20)
        self.assertEqual(gets, [b"o"] * 20)
        self.assertEqual(stored, [None] * 20)


class PostgresMatchTests(TestCase):
    """
    psycopg against PostgreSQL, through the proxy.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_delayOnUpdateOnly(self) -> Generator[Any, Any, None]:
        """
        With C{delay} (0.3 s) matching C{verb=UPDATE}, each UPDATE takes at
        least 0.3 s, and SELECTs and INSERTs stay fast.
        """
        psycopg = requireModule("psycopg", "psycopg[binary]")
        backend = yield sharedServer("postgres", startPostgres)
        proxy = listenProxy(self, backend.port, "100:delay", "postgresql", {
            "delay": {"match": "verb=UPDATE", "sleep": 0.3}})

        def work() -> dict[str, list[float]]:
            times: dict[str, list[float]] = {"UPDATE": [], "other": []}
            with psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres",
                                 password=PASSWORD, dbname="postgres",
                                 autocommit=True, connect_timeout=10) as connection:
                connection.execute("CREATE TEMP TABLE aimed (id int, v text)")
                for i in range(3):
                    for kind, sql in [
                        ("other", "INSERT INTO aimed VALUES ({}, 'a')".format(i)),
                        ("UPDATE", "UPDATE aimed SET v = 'b' WHERE id = {}".format(i)),
                        ("other", "SELECT v FROM aimed WHERE id = {}".format(i)),
                    ]:
                        start = time.monotonic()
                        connection.execute(sql)
                        times[kind].append(time.monotonic() - start)
            return times

        times = yield threads.deferToThread(work)
        self.assertGreaterEqual(min(times["UPDATE"]), 0.3)
        self.assertLess(max(times["other"]), 0.2)


class ClientMatchTests(TestCase):
    """
    A client network match, with plain sockets from two loopback
    addresses.
    """

    @defer.inlineCallbacks
    def test_networkMatchSparesOtherClient(self) -> Generator[Any, Any, None]:
        """
        With C{blackout} matching C{client=127.0.0.1/32} (tcp, connection
        scope), a client from 127.0.0.1 is cut at once while one from
        127.0.0.2 gets its bytes echoed.
        """
        proxy = listenProxy(self, echoServer(self), "100:blackout", "tcp", {
            "blackout": {"match": "client=127.0.0.1/32"}})

        def exchange(source: str) -> bytes:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10,
                                          source_address=(source, 0)) as s:
                try:
                    s.sendall(b"hello")
                    return s.recv(100)
                except ConnectionError:
                    return b""

        cut = yield threads.deferToThread(exchange, "127.0.0.1")
        spared = yield threads.deferToThread(exchange, "127.0.0.2")
        self.assertEqual((cut, spared), (b"", b"hello"))


class ToxicMatchTests(EchoControlTestCase):
    """
    The C{match} extension of Toxiproxy's toxics.
    """

    @defer.inlineCallbacks
    def test_toxicMatchField(self) -> Generator[Any, Any, None]:
        """
        A toxic created with C{match} shows it and its behavior has it; a
        toxic without one shows no C{match} field, as Toxiproxy's do; a
        request field (toxics act per connection) or a bad network is a
        400.
        """
        status, value = yield self.control.json("POST", "/proxies/vaurien/toxics", {
            "type": "latency", "match": "client=127.0.0.0/8"})
        self.assertEqual((status, value["match"]), (200, "client=127.0.0.0/8"))
        status, value = yield self.control.json("POST", "/proxies/vaurien/toxics", {
            "type": "bandwidth", "attributes": {"rate": 100}})
        self.assertNotIn("match", value)
        toxic = self.control.manager.get("vaurien").toxic("latency_downstream")
        self.assertEqual(toxic.behavior.settings["match"], "client=127.0.0.0/8")
        for text in ("method=GET", "client=300.0.0.0/8"):
            status, value = yield self.control.json("POST", "/proxies/vaurien/toxics", {
                "type": "timeout", "match": text})
            self.assertEqual(status, 400)
            self.assertIn("match:", value["error"])


class ClientAndCtlTests(EchoControlTestCase):
    """
    The Python client and C{vaurienctl} set C{match} like any option.
    """

    @defer.inlineCallbacks
    def test_clientAndCtl(self) -> Generator[Any, Any, None]:
        """
        C{Client.set_behavior(..., match=...)} and C{vaurienctl
        set-behavior NAME --opt match=...} install the match; a bad one is
        refused by both with the parser's message.
        """
        from txvaurien.client import Client

        client = Client("127.0.0.1", self.control.port)
        factory = self.control.manager.get("vaurien").factory
        yield threads.deferToThread(client.set_behavior, "blackout", match="connection=1-3")
        self.assertEqual(
            factory.table.behaviors["blackout"].settings["match"], "connection=1-3")

        def run(*argv: str) -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            status = ctl.main(["--host", self.control.url, *argv], out, err)
            return status, out.getvalue(), err.getvalue()

        status, _, _ = yield threads.deferToThread(
            run, "set-behavior", "blackout", "--opt", "match=client=10.0.0.0/8")
        self.assertEqual(status, 0)
        self.assertEqual(
            factory.table.behaviors["blackout"].settings["match"], "client=10.0.0.0/8")
        status, _, err = yield threads.deferToThread(
            run, "set-behavior", "blackout", "--opt", "match=client=nonsense")
        self.assertNotEqual(status, 0)
        self.assertIn("invalid network", err)
