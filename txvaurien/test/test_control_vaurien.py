"""
Tests for Vaurien's API (L{txvaurien.control.vaurien_api}) over real HTTP:
C{/behavior}, C{/behaviors}, C{/backend} and C{/connections}, their JSON
shapes and errors, and their effect on live and new connections.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Generator

from twisted.internet import defer
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien.registry import Registry
from txvaurien.test.controlhelpers import (
    GREETING,
    Control,
    EchoControlTestCase,
    echoServer,
    greeterServer,
    lineAsker,
    pinger,
)


class VaurienTestCase(EchoControlTestCase):
    @defer.inlineCallbacks
    def assertVaurienError(self, method: str, path: str, body: Any, status: int,
                           location: str, name: Any, description: str,
                           raw: bytes | None = None) -> Any:
        code, value = yield self.control.json(method, path, body, raw=raw)
        self.assertEqual((code, value), (status, {"status": "error", "errors": [{
            "location": location, "name": name, "description": description}]}),
            (method, path, body, raw))


class BehaviorTests(VaurienTestCase):
    """
    C{GET}/C{PUT /behavior}.
    """

    @defer.inlineCallbacks
    def test_defaultBehavior(self) -> Generator[Any, Any, None]:
        """
        With no C{--behavior}, the table is C{100:dummy}, with no options.
        """
        status, value = yield self.control.json("GET", "/behavior")
        self.assertEqual((status, value), (200, {"behavior": "100:dummy", "options": {}}))

    @defer.inlineCallbacks
    def test_putOneBehavior(self) -> Generator[Any, Any, None]:
        """
        C{PUT} with a name and flat options answers C{{"status": "ok"}};
        C{GET} then shows every option, given or defaulted.
        """
        status, value = yield self.control.json(
            "PUT", "/behavior", {"name": "delay", "sleep": 0.25, "before": False})
        self.assertEqual((status, value), (200, {"status": "ok"}))
        status, value = yield self.control.json("GET", "/behavior")
        self.assertEqual(value, {"behavior": "delay", "options": {
            "sleep": 0.25, "before": False, "direction": "both", "toxicity": 1.0,
            "match": None}})
        table = self.control.manager.get("vaurien").factory.table
        self.assertEqual(table.describe(), "100:delay")

    @defer.inlineCallbacks
    def test_putWeightedSpecification(self) -> Generator[Any, Any, None]:
        """
        A weighted specification of several behaviors takes each one's
        options under its name, and C{GET} answers in the same shape.
        """
        status, value = yield self.control.json("PUT", "/behavior", {
            "name": "20:delay,10:error", "delay": {"sleep": 2}, "error": {"codes": [503]}})
        self.assertEqual(status, 200, value)
        _, value = yield self.control.json("GET", "/behavior")
        self.assertEqual(value["behavior"], "20:delay,10:error")
        self.assertEqual(value["options"]["delay"]["sleep"], 2.0)
        self.assertEqual(value["options"]["error"]["codes"], [503])
        factory = self.control.manager.get("vaurien").factory
        self.assertEqual(factory.table.describe(), "20:delay,10:error,70:dummy")

    @defer.inlineCallbacks
    def test_getRoundTrips(self) -> Generator[Any, Any, None]:
        """
        What C{GET} answers, sent back with C{PUT} (as C{{"name": ...,
        "options": {...}}}), restores the same behavior and options.
        """
        yield self.control.json("PUT", "/behavior", {
            "name": "30:latency+bandwidth", "latency": {"latency": 7},
            "bandwidth": {"rate": 50}})
        _, saved = yield self.control.json("GET", "/behavior")
        yield self.control.json("PUT", "/behavior", {"name": "dummy"})
        status, _ = yield self.control.json("PUT", "/behavior", {
            "name": saved["behavior"], "options": saved["options"]})
        self.assertEqual(status, 200)
        _, again = yield self.control.json("GET", "/behavior")
        self.assertEqual(again, saved)

    @defer.inlineCallbacks
    def test_errors(self) -> Generator[Any, Any, None]:
        """
        Unknown names, wrong types, out-of-bounds values, unknown options
        and bad JSON get C{400} in Vaurien's error shape, naming the field;
        the behavior is unchanged.
        """
        cases = [
            ({"name": "nosuch"}, "name",
             "unknown behavior 'nosuch'; known: abort, bandwidth, blackout, closer, "
             "corrupt, delay, down, drop, dummy, duplicate, error, hang, latency, "
             "limit_data, limit_time, rate_limit, reorder, reset_peer, slicer, slow_close, "
             "slow_open, slowdown, swallow, timeout, tls_alert, tls_certificate, tls_delay, "
             "tls_old_version, transient, truncate"),
            ({"sleep": 1}, "name",
             "required: a behavior name or a weighted specification such as "
             "20:delay,10:error"),
            ({"name": 5}, "name",
             "expected a behavior name or weighted specification, got 5"),
            ({"name": "delay", "sleep": "soon"}, "sleep", "expected number >= 0, got 'soon'"),
            ({"name": "delay", "sleep": -1}, "sleep", "expected number >= 0, got -1.0"),
            ({"name": "delay", "sleep": True}, "sleep", "expected number >= 0, got True"),
            ({"name": "delay", "slep": 1}, "slep",
             "unknown option; known: before, direction, match, sleep, toxicity"),
            ({"name": "delay", "toxicity": 2}, "toxicity",
             "expected number >= 0.0 and <= 1.0, got 2.0"),
            ({"name": "120:delay"}, "name", "weight 120 in '120:delay' is not between 0 and 100"),
            ({"name": "20:delay,10:error", "sleep": 2}, "sleep",
             "not a behavior of this specification; with several behaviors, give each "
             "one's options under its name, as in {\"delay\": {...}}"),
            ({"name": "20:delay,10:error", "delay": {"sleep": -2}}, "delay.sleep",
             "expected number >= 0, got -2.0"),
        ]
        for body, name, description in cases:
            yield self.assertVaurienError("PUT", "/behavior", body, 400, "body", name,
                                          description)
        yield self.assertVaurienError(
            "PUT", "/behavior", None, 400, "body", "body",
            "invalid JSON: Expecting property name enclosed in double quotes "
            "(line 1 column 2)", raw=b"{nope")
        yield self.assertVaurienError(
            "PUT", "/behavior", ["delay"], 400, "body", "body", "expected a JSON object, got list")
        _, value = yield self.control.json("GET", "/behavior")
        self.assertEqual(value["behavior"], "100:dummy")

    @defer.inlineCallbacks
    def test_optionsActOnLiveConnections(self) -> Generator[Any, Any, None]:
        """
        A behavior and its options, set while a connection is open, act on
        it at once; changing only an option (same specification) too.
        """
        client = yield pinger(self, self.control.proxyPort())
        fast = yield client.ping()
        self.assertLess(fast, 0.2)
        yield self.control.json("PUT", "/behavior", {"name": "latency", "latency": 300})
        slow = yield client.ping()
        self.assertGreaterEqual(slow, 0.3)
        behavior = self.control.manager.get("vaurien").base.behaviors["latency"]
        yield self.control.json("PUT", "/behavior", {"name": "latency", "latency": 0})
        self.assertIs(self.control.manager.get("vaurien").base.behaviors["latency"], behavior)
        fast = yield client.ping()
        self.assertLess(fast, 0.2)
        yield self.control.json("PUT", "/behavior", {"name": "latency", "latency": 300})
        slow = yield client.ping()
        self.assertGreaterEqual(slow, 0.3)
        yield self.control.json("PUT", "/behavior", {"name": "dummy"})
        fast = yield client.ping()
        self.assertLess(fast, 0.2)

    @defer.inlineCallbacks
    def test_namedProxy(self) -> Generator[Any, Any, None]:
        """
        C{?proxy=NAME} aims Vaurien's API at another proxy; an unknown one
        is a C{404} about the query string.
        """
        yield self.control.json("POST", "/proxies", {
            "name": "other", "upstream": "127.0.0.1:{}".format(self.backend)})
        status, _ = yield self.control.json(
            "PUT", "/behavior?proxy=other", {"name": "delay", "sleep": 3})
        self.assertEqual(status, 200)
        _, value = yield self.control.json("GET", "/behavior?proxy=other")
        self.assertEqual((value["behavior"], value["options"]["sleep"]), ("delay", 3.0))
        _, value = yield self.control.json("GET", "/behavior")
        self.assertEqual(value["behavior"], "100:dummy")
        yield self.assertVaurienError("GET", "/behavior?proxy=nope", None, 404,
                                      "querystring", "proxy", "no proxy named 'nope'")


class ResetTests(VaurienTestCase):
    """
    C{POST /reset} restarts the counters of behaviors with proxy-wide
    state.
    """

    argv = ["--protocol", "lines", "--behavior", "error", "--behavior-error-warmup", "1"]

    @defer.inlineCallbacks
    def test_resetRestartsWarmup(self) -> Generator[Any, Any, None]:
        """
        C{error} with C{warmup=1} lets one request through, then fails;
        after C{POST /reset} one request passes again.
        """
        client = yield lineAsker(self, self.control.proxyPort())
        answers = []
        for line in [b"one", b"two"]:
            answers.append((yield client.ask(line)))
        status, _ = yield self.control.json("POST", "/reset")
        self.assertEqual(status, 204)
        for line in [b"three", b"four"]:
            answers.append((yield client.ask(line)))
        self.assertEqual(answers[0], b"one")
        self.assertTrue(answers[1].startswith(b"ERR "), answers)
        self.assertEqual(answers[2], b"three")
        self.assertTrue(answers[3].startswith(b"ERR "), answers)


class BehaviorsTests(TestCase):
    """
    C{GET /behaviors}.
    """

    timeout = 60

    def pluginPackage(self) -> Any:
        """
        A package holding a third-party behavior as a Twisted plugin.
        """
        root = FilePath(self.mktemp())
        package = root.child("txvaurien_thirdparty")
        package.makedirs()
        package.child("__init__.py").setContent(b"")
        package.child("wobble.py").setContent(
            b"from txvaurien.behaviors.base import Behavior\n"
            b"from txvaurien.options import Number\n"
            b"class Wobble(Behavior):\n"
            b"    '''\n    Wobble the bytes a little.\n\n    More text.\n    '''\n"
            b"    name = 'wobble'\n"
            b"    options = {'amount': ('How much', Number(float, 0), 1.5)}\n"
            b"wobble = Wobble()\n")
        sys.path.insert(0, root.path)
        self.addCleanup(sys.path.remove, root.path)
        self.addCleanup(sys.modules.pop, "txvaurien_thirdparty.wobble", None)
        self.addCleanup(sys.modules.pop, "txvaurien_thirdparty", None)
        return importlib.import_module("txvaurien_thirdparty")

    @defer.inlineCallbacks
    def test_listsEveryBehaviorWithOptions(self) -> Generator[Any, Any, None]:
        """
        Every behavior the registry knows, a third-party plugin found
        through Twisted's plugin system included, is listed with its
        summary, module and options (type, default, description).
        """
        registry = Registry.discover(thirdParty=True, pluginPackage=self.pluginPackage())
        echoServer(self)
        control = Control(self, [], registry=registry)
        status, value = yield control.json("GET", "/behaviors")
        self.assertEqual(status, 200)
        byName = {b["name"]: b for b in value["behaviors"]}
        self.assertEqual(list(byName), registry.behaviors.names())
        self.assertEqual(byName["wobble"], {
            "name": "wobble",
            "description": "Wobble the bytes a little.",
            "module": "txvaurien_thirdparty.wobble",
            "options": {
                "amount": {"type": "number >= 0", "default": 1.5, "description": "How much"},
                "direction": {"type": "upstream|downstream|both", "default": "both",
                              "description": byName["delay"]["options"]["direction"][
                                  "description"]},
                "toxicity": {"type": "number >= 0.0 and <= 1.0", "default": 1.0,
                             "description": byName["delay"]["options"]["toxicity"][
                                 "description"]},
                "match": {"type": "match", "default": None,
                          "description": byName["delay"]["options"]["match"][
                              "description"]},
            }})
        self.assertEqual(byName["delay"]["options"]["sleep"]["default"], 1.0)
        status, value = yield control.json("PUT", "/behavior?proxy=x", {"name": "wobble"})
        self.assertEqual(status, 404)


class BackendTests(VaurienTestCase):
    """
    C{GET}/C{PUT /backend}.
    """

    @defer.inlineCallbacks
    def test_getAndPut(self) -> Generator[Any, Any, None]:
        """
        C{PUT /backend} sends new connections to the new backend while
        live ones stay with theirs; C{GET} shows it.
        """
        status, value = yield self.control.json("GET", "/backend")
        self.assertEqual((status, value), (200, {"backend": "127.0.0.1:{}".format(self.backend)}))
        old = yield pinger(self, self.control.proxyPort())
        yield old.ping()
        other = "tcp:host=127.0.0.1:port={}".format(greeterServer(self))
        status, value = yield self.control.json("PUT", "/backend", {"backend": other})
        self.assertEqual((status, value), (200, {"status": "ok"}))
        _, value = yield self.control.json("GET", "/backend")
        self.assertEqual(value, {"backend": other})
        new = yield pinger(self, self.control.proxyPort())
        yield new.ping(b"x" * len(GREETING))
        self.assertEqual(new.buffer, GREETING)
        yield old.ping(b"still echoed\n")
        self.assertEqual(old.buffer, b"still echoed\n")

    @defer.inlineCallbacks
    def test_badBackendIsRefused(self) -> Generator[Any, Any, None]:
        """
        A bad backend is a C{400} (Vaurien's process exited); the proxy
        keeps its backend and keeps serving.
        """
        cases = [
            ({"backend": "nonsense:x"}, "cannot connect to 'nonsense:x': Unknown endpoint "
             "type: 'nonsense'"),
            ({"backend": "h:0"}, "backend port must not be 0 in 'h:0'"),
            ({"backend": 12}, "expected an endpoint string or host:port, got 12"),
            ({"backend": ""}, "expected an endpoint string or host:port, got ''"),
            ({"host": "h:1"}, "required: an endpoint string or host:port"),
        ]
        for body, description in cases:
            yield self.assertVaurienError("PUT", "/backend", body, 400, "body", "backend",
                                          description)
        client = yield pinger(self, self.control.proxyPort())
        elapsed = yield client.ping()
        self.assertLess(elapsed, 5)


class NoDefaultProxyTests(TestCase):
    """
    A bare control server has no default proxy.
    """

    @defer.inlineCallbacks
    def test_notFound(self) -> Generator[Any, Any, None]:
        """
        Vaurien's endpoints answer C{404} saying how to get a default
        proxy.
        """
        control = Control(self, [])
        for method, path, body in [("GET", "/behavior", None),
                                   ("PUT", "/behavior", {"name": "delay"}),
                                   ("GET", "/backend", None)]:
            status, value = yield control.json(method, path, body)
            self.assertEqual((status, value), (404, {"status": "error", "errors": [{
                "location": "querystring", "name": "proxy",
                "description": "no default proxy: start with --backend, or name one "
                               "with ?proxy=NAME"}]}))


class ConnectionsTests(VaurienTestCase):
    """
    C{GET /connections}.
    """

    argv = ["--behavior", "latency", "--behavior-latency-latency", "1"]

    @defer.inlineCallbacks
    def test_liveConnections(self) -> Generator[Any, Any, None]:
        """
        Each proxy's live connections are listed with peer, age, bytes each
        way and the behaviors chosen; C{?proxy=} selects one proxy.
        """
        yield self.control.json("POST", "/proxies", {
            "name": "empty", "upstream": "127.0.0.1:{}".format(self.backend)})
        client = yield pinger(self, self.control.proxyPort())
        yield client.ping(b"12345\n")
        status, value = yield self.control.json("GET", "/connections")
        self.assertEqual(status, 200)
        self.assertEqual(list(value["proxies"]), ["empty", "vaurien"])
        self.assertEqual(value["proxies"]["empty"], [])
        [connection] = value["proxies"]["vaurien"]
        local = client.transport.getHost()
        self.assertEqual(connection["peer"], "127.0.0.1:{}".format(local.port))
        self.assertEqual(connection["bytes"], {"upstream": 6, "downstream": 6})
        self.assertEqual(connection["behaviors"], ["latency"])
        self.assertEqual(connection["scope"], "connection")
        self.assertTrue(connection["backend_connected"])
        self.assertGreaterEqual(connection["age"], 0)
        status, value = yield self.control.json("GET", "/connections?proxy=empty")
        self.assertEqual(value, {"proxies": {"empty": []}})
        yield self.assertVaurienError("GET", "/connections?proxy=nope", None, 404,
                                      "querystring", "proxy", "no proxy named 'nope'")

    @defer.inlineCallbacks
    def test_pages(self) -> Generator[Any, Any, None]:
        """
        C{?limit=} lists at most that many connections, oldest first, and
        C{more} names the id to go on C{?after=}; the last page has no
        C{more}.  A limit out of range, or an C{after} that is not a
        non-negative integer, gets a 400 naming it, as C{/events} says it.
        """
        clients = []
        for _ in range(3):
            client = yield pinger(self, self.control.proxyPort())
            yield client.ping(b"x\n")
            clients.append(client)
        status, first = yield self.control.json("GET", "/connections?proxy=vaurien&limit=2")
        self.assertEqual(status, 200)
        ids = [c["id"] for c in first["proxies"]["vaurien"]]
        self.assertEqual(len(ids), 2)
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(first["more"], {"vaurien": ids[-1]})
        status, second = yield self.control.json(
            "GET", "/connections?proxy=vaurien&limit=2&after={}".format(ids[-1]))
        [last] = second["proxies"]["vaurien"]
        self.assertGreater(last["id"], ids[-1])
        self.assertNotIn("more", second)
        yield self.assertVaurienError("GET", "/connections?limit=0", None, 400,
                                      "querystring", "limit",
                                      "limit must be between 1 and 1000, got 0")
        yield self.assertVaurienError("GET", "/connections?after=x", None, 400,
                                      "querystring", "after",
                                      "after must be a non-negative integer, got 'x'")
