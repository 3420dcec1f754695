"""
Tests for Toxiproxy's API (L{txvaurien.control.toxiproxy_api}) over real
HTTP: every endpoint, status code, JSON shape and error text, and that
what the API says happens to ports and live connections really happens.
"""

from __future__ import annotations

import json
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial.unittest import TestCase

from txvaurien.test.controlhelpers import (
    GREETING,
    Control,
    echoServer,
    greeterServer,
    pinger,
    portFree,
    refused,
    roundTrip,
)
from txvaurien.test.servers import freePort


def error(message: str, status: int) -> bytes:
    """
    A Toxiproxy error body, byte for byte: Go's compact JSON, which escapes
    C{<>&}, and a newline.
    """
    text = json.dumps({"error": message, "status": status}, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text.encode("utf-8") + b"\n"


class ToxiproxyTestCase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.backend = echoServer(self)
        self.control = Control(self, [])

    def upstream(self) -> str:
        return "127.0.0.1:{}".format(self.backend)

    @defer.inlineCallbacks
    def create(self, name: str = "p", **fields: Any) -> Generator[Any, Any, Any]:
        body = {"name": name, "upstream": self.upstream(), "listen": "127.0.0.1:0"}
        body.update(fields)
        status, value = yield self.control.json("POST", "/proxies", body)
        self.assertEqual(status, 201, value)
        return value

    def listenPort(self, proxy: dict[str, Any]) -> int:
        return int(proxy["listen"].rsplit(":", 1)[1])

    @defer.inlineCallbacks
    def assertError(self, method: str, path: str, status: int, message: str,
                    body: Any = None, raw: bytes | None = None) -> Any:
        code, headers, content = yield self.control.request(method, path, body, raw)
        self.assertEqual((code, content), (status, error(message, status)), (method, path))
        self.assertEqual(headers.getRawHeaders(b"content-type"),
                         [b"text/plain; charset=utf-8"])


class ProxyEndpointTests(ToxiproxyTestCase):
    """
    C{/proxies}, C{/proxies/NAME}, C{/populate}, C{/reset}, C{/version}.
    """

    @defer.inlineCallbacks
    def test_versionSpelledAsToxiproxy(self) -> Generator[Any, Any, None]:
        """
        C{GET /version} answers Toxiproxy 2.12's body and content type.
        """
        code, headers, content = yield self.control.request("GET", "/version")
        self.assertEqual((code, content), (200, b'{"version": "2.12.0"}\n'))
        self.assertEqual(headers.getRawHeaders(b"content-type"),
                         [b"application/json;charset=utf-8"])
        self.assertEqual(len(headers.getRawHeaders(b"x-toxiproxy-request-id")[0]), 20)

    @defer.inlineCallbacks
    def test_createResolvesListenAndServes(self) -> Generator[Any, Any, None]:
        """
        C{POST /proxies} answers C{201} with the proxy in Go's compact JSON,
        C{listen} resolved from port 0 to the bound port, which proxies
        bytes to the upstream.
        """
        body = {"name": "p", "upstream": self.upstream(), "listen": "127.0.0.1:0"}
        code, headers, content = yield self.control.request("POST", "/proxies", body)
        self.assertEqual(code, 201)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        port = self.listenPort(json.loads(content))
        self.assertNotEqual(port, 0)
        self.assertEqual(content, (
            '{{"name":"p","listen":"127.0.0.1:{}","upstream":"{}","enabled":true,'
            '"Logger":{{}},"toxics":[]}}'.format(port, self.upstream())).encode("ascii"))
        elapsed = yield threads.deferToThread(roundTrip, port)
        self.assertGreaterEqual(elapsed, 0)

    @defer.inlineCallbacks
    def test_listenDefaultsToLoopback(self) -> Generator[Any, Any, None]:
        """
        A proxy created without C{listen} binds an ephemeral port of
        127.0.0.1 (Toxiproxy would bind every interface).
        """
        status, value = yield self.control.json(
            "POST", "/proxies", {"name": "p", "upstream": self.upstream()})
        self.assertEqual(status, 201)
        self.assertTrue(value["listen"].startswith("127.0.0.1:"))
        self.assertFalse(refused(self.listenPort(value)))

    @defer.inlineCallbacks
    def test_createDisabled(self) -> Generator[Any, Any, None]:
        """
        C{"enabled": false} creates the proxy without binding its port.
        """
        port = freePort()
        value = yield self.create(listen="127.0.0.1:{}".format(port), enabled=False)
        self.assertEqual(value["enabled"], False)
        self.assertEqual(value["listen"], "127.0.0.1:{}".format(port))
        self.assertTrue(refused(port))

    @defer.inlineCallbacks
    def test_indexKeyedByNameInOrder(self) -> Generator[Any, Any, None]:
        """
        C{GET /proxies} is an object keyed by name, sorted as Go sorts map
        keys, each value what C{GET /proxies/NAME} answers.
        """
        yield self.create("zeta")
        yield self.create("alpha")
        code, _, content = yield self.control.request("GET", "/proxies")
        self.assertEqual(code, 200)
        self.assertTrue(content.startswith(b'{"alpha":{"name":"alpha"'), content)
        index = json.loads(content)
        self.assertEqual(list(index), ["alpha", "zeta"])
        _, _, one = yield self.control.request("GET", "/proxies/zeta")
        self.assertEqual(index["zeta"], json.loads(one))

    @defer.inlineCallbacks
    def test_createErrors(self) -> Generator[Any, Any, None]:
        """
        Each refused creation has Toxiproxy's status and message.
        """
        yield self.create("taken")
        taken = freePort()
        holder = reactor.listenTCP(taken, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(holder.stopListening)
        cases = [
            ({"name": "taken", "upstream": self.upstream()}, None, 409,
             "proxy already exists"),
            ({"upstream": self.upstream()}, None, 400, "missing required field: name"),
            ({"name": "x"}, None, 400, "missing required field: upstream"),
            (None, b"", 400, "bad request body: EOF"),
            (None, b'{"name": "x"', 400, "bad request body: unexpected EOF"),
            ({"name": 5, "upstream": "h:1"}, None, 400,
             "bad request body: json: cannot unmarshal number into Go struct field "
             "Proxy.name of type string"),
            ({"name": "x", "upstream": "h:1", "enabled": "yes"}, None, 400,
             "bad request body: json: cannot unmarshal string into Go struct field "
             "Proxy.enabled of type bool"),
            ([{"name": "x"}], None, 400,
             "bad request body: json: cannot unmarshal array into Go value of type "
             "toxiproxy.Proxy"),
            ({"name": "x", "upstream": self.upstream(),
              "listen": "127.0.0.1:{}".format(taken)}, None, 500,
             "listen tcp 127.0.0.1:{}: bind: address already in use".format(taken)),
        ]
        for body, raw, status, message in cases:
            yield self.assertError("POST", "/proxies", status, message, body, raw)
        _, index = yield self.control.json("GET", "/proxies")
        self.assertEqual(list(index), ["taken"])

    @defer.inlineCallbacks
    def test_notFoundEverywhere(self) -> Generator[Any, Any, None]:
        """
        Every endpoint naming a missing proxy answers C{404 proxy not
        found}, even with a body that is not JSON.
        """
        for method, path in [
            ("GET", "/proxies/nope"), ("POST", "/proxies/nope"),
            ("PATCH", "/proxies/nope"), ("DELETE", "/proxies/nope"),
            ("GET", "/proxies/nope/toxics"), ("POST", "/proxies/nope/toxics"),
            ("GET", "/proxies/nope/toxics/t"), ("PATCH", "/proxies/nope/toxics/t"),
            ("POST", "/proxies/nope/toxics/t"), ("DELETE", "/proxies/nope/toxics/t"),
        ]:
            yield self.assertError(method, path, 404, "proxy not found", raw=b"{bad")

    @defer.inlineCallbacks
    def test_disableUnbindsEnableRebindsSamePort(self) -> Generator[Any, Any, None]:
        """
        Disabling closes the port and the live connections before the reply;
        enabling binds the same port again before the reply.
        """
        proxy = yield self.create()
        port = self.listenPort(proxy)
        client = yield pinger(self, port)
        yield client.ping()
        status, value = yield self.control.json(
            "POST", "/proxies/p", {"enabled": False})
        self.assertEqual((status, value["enabled"]), (200, False))
        self.assertTrue(refused(port))
        yield client.closed
        status, value = yield self.control.json("PATCH", "/proxies/p", {"enabled": True})
        self.assertEqual((status, value["enabled"], value["listen"]),
                         (200, True, proxy["listen"]))
        elapsed = yield threads.deferToThread(roundTrip, port)
        self.assertLess(elapsed, 5)

    @defer.inlineCallbacks
    def test_updateListenAndUpstream(self) -> Generator[Any, Any, None]:
        """
        A new C{listen} moves the proxy to that address; a new
        C{upstream} sends new connections there.
        """
        proxy = yield self.create()
        old = self.listenPort(proxy)
        new = freePort()
        other = "127.0.0.1:{}".format(greeterServer(self))
        status, value = yield self.control.json("PATCH", "/proxies/p", {
            "listen": "127.0.0.1:{}".format(new), "upstream": other})
        self.assertEqual(status, 200)
        self.assertEqual((value["listen"], value["upstream"], value["enabled"]),
                         ("127.0.0.1:{}".format(new), other, True))
        self.assertTrue(refused(old))
        client = yield pinger(self, new)
        elapsed = yield client.ping(b"x" * len(GREETING))
        self.assertEqual(client.buffer, GREETING)
        self.assertLess(elapsed, 5)

    @defer.inlineCallbacks
    def test_deleteFreesPortBeforeReplying(self) -> Generator[Any, Any, None]:
        """
        C{DELETE /proxies/NAME} answers C{204} with no body once the port
        is free and the live connections are closing.
        """
        proxy = yield self.create()
        port = self.listenPort(proxy)
        client = yield pinger(self, port)
        yield client.ping()
        code, headers, content = yield self.control.request("DELETE", "/proxies/p")
        self.assertEqual((code, content), (204, b""))
        self.assertTrue(portFree(port))
        yield client.closed
        yield self.assertError("GET", "/proxies/p", 404, "proxy not found")

    @defer.inlineCallbacks
    def test_populate(self) -> Generator[Any, Any, None]:
        """
        C{POST /populate} keeps a proxy whose addresses are unchanged,
        creates new ones (with the toxics listed, which Toxiproxy ignores),
        replaces one whose addresses changed, and answers C{201
        {"proxies": [...]}}.
        """
        kept = yield self.create("kept")
        replaced = yield self.create("replaced")
        code, headers, content = yield self.control.request("POST", "/populate", [
            {"name": "kept", "upstream": self.upstream(), "listen": kept["listen"]},
            {"name": "new", "upstream": self.upstream(),
             "toxics": [{"type": "latency", "attributes": {"latency": 5}}]},
            {"name": "replaced", "upstream": self.upstream(),
             "listen": "127.0.0.1:{}".format(freePort())},
        ])
        self.assertEqual(code, 201, content)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        proxies = json.loads(content)["proxies"]
        self.assertEqual([p["name"] for p in proxies], ["kept", "new", "replaced"])
        self.assertEqual(proxies[0]["listen"], kept["listen"])
        self.assertEqual(proxies[1]["toxics"], [{
            "attributes": {"latency": 5, "jitter": 0}, "name": "latency_downstream",
            "type": "latency", "stream": "downstream", "toxicity": 1}])
        self.assertNotEqual(proxies[2]["listen"], replaced["listen"])
        self.assertTrue(refused(self.listenPort(replaced)))
        self.assertFalse(refused(self.listenPort(proxies[2])))

    @defer.inlineCallbacks
    def test_populateErrors(self) -> Generator[Any, Any, None]:
        """
        A bad entry refuses the whole list before anything is created, with
        Toxiproxy's body (C{application/json}, with C{"proxies": null});
        a port that cannot be bound stops the list there, listing the
        proxies handled before it.
        """
        code, headers, content = yield self.control.request("POST", "/populate", [
            {"name": "first", "upstream": self.upstream()}, {"upstream": "h:1"}])
        self.assertEqual((code, content), (400, (
            b'{"error":"missing required field: name at proxy 2","status":400,'
            b'"proxies":null}')))
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        _, index = yield self.control.json("GET", "/proxies")
        self.assertEqual(index, {})
        taken = freePort()
        holder = reactor.listenTCP(taken, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(holder.stopListening)
        status, value = yield self.control.json("POST", "/populate", [
            {"name": "first", "upstream": self.upstream()},
            {"name": "second", "upstream": self.upstream(),
             "listen": "127.0.0.1:{}".format(taken)},
            {"name": "third", "upstream": self.upstream()}])
        self.assertEqual(status, 500)
        self.assertEqual(value["error"],
                         "listen tcp 127.0.0.1:{}: bind: address already in use".format(taken))
        self.assertEqual([p["name"] for p in value["proxies"]], ["first"])
        code, _, content = yield self.control.request("POST", "/populate", [])
        self.assertEqual((code, content), (201, b'{"proxies":null}'))
        code, _, content = yield self.control.request("POST", "/populate", raw=b"")
        self.assertEqual((code, content), (
            400, b'{"error":"bad request body: EOF","status":400,"proxies":null}'))

    @defer.inlineCallbacks
    def test_reset(self) -> Generator[Any, Any, None]:
        """
        C{POST /reset} answers C{204}, enables every proxy (binding its
        port) and removes every toxic.
        """
        proxy = yield self.create()
        port = self.listenPort(proxy)
        yield self.control.json("POST", "/proxies/p/toxics", {"type": "latency"})
        yield self.control.json("POST", "/proxies/p", {"enabled": False})
        self.assertTrue(refused(port))
        code, _, content = yield self.control.request("POST", "/reset")
        self.assertEqual((code, content), (204, b""))
        _, value = yield self.control.json("GET", "/proxies/p")
        self.assertEqual((value["enabled"], value["toxics"]), (True, []))
        self.assertFalse(refused(port))

    @defer.inlineCallbacks
    def test_unknownPathsAndMethods(self) -> Generator[Any, Any, None]:
        """
        An unknown path is Go's plain C{404 page not found}; a known path
        with another method is C{405} with an empty body.
        """
        for path in ["/nothing", "/proxies/", "/proxies/p/toxics/t/x"]:
            code, headers, content = yield self.control.request("GET", path)
            self.assertEqual((code, content), (404, b"404 page not found\n"), path)
        for method, path in [("PUT", "/proxies"), ("DELETE", "/reset"),
                             ("GET", "/populate"), ("POST", "/version")]:
            code, headers, content = yield self.control.request(method, path)
            self.assertEqual((code, content), (405, b""), (method, path))
            self.assertTrue(headers.getRawHeaders(b"allow"))


class ToxicEndpointTests(ToxiproxyTestCase):
    """
    C{/proxies/NAME/toxics} and C{/proxies/NAME/toxics/TOXIC}.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        ToxiproxyTestCase.setUp(self)
        self.proxy = yield self.create()

    @defer.inlineCallbacks
    def test_createWithToxiproxyDefaults(self) -> Generator[Any, Any, None]:
        """
        A toxic is created with C{200}; left out, C{stream} is
        C{downstream}, C{toxicity} 1, the name C{TYPE_STREAM}, and the
        attributes of Toxiproxy's types are zero, as Toxiproxy prints them.
        """
        code, _, content = yield self.control.request(
            "POST", "/proxies/p/toxics", {"type": "latency"})
        self.assertEqual((code, content), (200, (
            b'{"attributes":{"latency":0,"jitter":0},"name":"latency_downstream",'
            b'"type":"latency","stream":"downstream","toxicity":1}')))
        expected = {
            "slow_close": {"delay": 0},
            "timeout": {"timeout": 0},
            "limit_data": {"bytes": 0},
            "reset_peer": {"timeout": 0},
            "slicer": {"average_size": 8, "size_variation": 0, "delay": 0},
            "bandwidth": {"rate": 1000},
        }
        for type, attributes in expected.items():
            given = {"average_size": 8} if type == "slicer" else {}
            given = {"rate": 1000} if type == "bandwidth" else given
            status, value = yield self.control.json("POST", "/proxies/p/toxics", {
                "type": type, "stream": "upstream", "attributes": given})
            self.assertEqual(status, 200, value)
            self.assertEqual(value, {"attributes": attributes, "name": type + "_upstream",
                                     "type": type, "stream": "upstream", "toxicity": 1})

    @defer.inlineCallbacks
    def test_ourTypesAndOptions(self) -> Generator[Any, Any, None]:
        """
        Every behavior is a toxic type; its attributes are its options, and
        an option of ours on a Toxiproxy type shows once set.
        """
        status, value = yield self.control.json("POST", "/proxies/p/toxics", {
            "type": "corrupt", "attributes": {"probability": 0.5}, "toxicity": 0.25})
        self.assertEqual(status, 200, value)
        self.assertEqual((value["attributes"], value["toxicity"]),
                         ({"probability": 0.5}, 0.25))
        status, value = yield self.control.json("POST", "/proxies/p/toxics", {
            "type": "latency", "attributes": {"latency": 10, "distribution": "normal"}})
        self.assertEqual(value["attributes"],
                         {"latency": 10, "jitter": 0, "distribution": "normal"})

    @defer.inlineCallbacks
    def test_createErrors(self) -> Generator[Any, Any, None]:
        """
        Bad toxics get Toxiproxy's messages; values outside the behaviors'
        bounds (which Toxiproxy accepts, then misbehaves on) are refused.
        """
        yield self.control.json("POST", "/proxies/p/toxics", {"type": "latency"})
        cases = [
            ({"type": "latency"}, 409, "toxic already exists"),
            ({"type": "latency", "stream": "sideways"}, 400,
             "stream was invalid, can be either upstream or downstream"),
            ({"type": "nosuch"}, 400, "invalid toxic type"),
            ({"type": "dummy", "name": "d"}, 400, "invalid toxic type"),
            ({"type": "latency", "name": "x", "toxicity": "high"}, 400,
             "bad request body: json: cannot unmarshal string into Go struct field "
             "ToxicWrapper.toxicity of type float32"),
            ({"type": 3}, 400, "bad request body: json: cannot unmarshal number into Go "
             "struct field ToxicWrapper.type of type string"),
            ({"type": "latency", "name": "x", "toxicity": 2.5}, 400,
             "bad request body: toxicity: expected a probability between 0 and 1, got 2.5"),
            ({"type": "latency", "name": "x", "attributes": {"latency": -1}}, 400,
             "bad request body: latency: expected number >= 0, got -1.0"),
            ({"type": "latency", "name": "x", "attributes": {"latancy": 1}}, 400,
             "bad request body: unknown attribute 'latancy' for toxic type latency; "
             "known: latency, jitter, distribution"),
            ({"type": "bandwidth", "attributes": {"rate": 0}}, 400,
             "bad request body: rate: expected number > 0, got 0.0"),
            ({"type": "bandwidth"}, 400,
             "bad request body: attribute rate is required: expected number > 0, got 0.0 "
             "(Toxiproxy's default, 0, would stall or break the connection)"),
            ({"type": "latency", "name": "a/b"}, 400,
             "bad request body: toxic name 'a/b' must not contain '/'"),
        ]
        for body, status, message in cases:
            yield self.assertError("POST", "/proxies/p/toxics", status, message, body)
        _, toxics = yield self.control.json("GET", "/proxies/p/toxics")
        self.assertEqual([t["name"] for t in toxics], ["latency_downstream"])

    @defer.inlineCallbacks
    def test_streamSpellings(self) -> Generator[Any, Any, None]:
        """
        C{stream} is matched ignoring case and echoed as given, and the
        default name uses it as given, as in Toxiproxy.
        """
        status, value = yield self.control.json(
            "POST", "/proxies/p/toxics", {"type": "latency", "stream": "UpStream"})
        self.assertEqual((status, value["name"], value["stream"]),
                         (200, "latency_UpStream", "UpStream"))
        toxic = self.control.manager.get("p").toxic("latency_UpStream")
        self.assertEqual(toxic.behavior.settings["direction"], "upstream")

    @defer.inlineCallbacks
    def test_indexUpstreamFirst(self) -> Generator[Any, Any, None]:
        """
        C{GET /proxies/NAME/toxics} lists upstream toxics, then downstream
        ones, each in the order they were added.
        """
        for name, stream in [("a", "downstream"), ("b", "upstream"), ("c", "downstream")]:
            yield self.control.json("POST", "/proxies/p/toxics", {
                "type": "latency", "name": name, "stream": stream})
        _, toxics = yield self.control.json("GET", "/proxies/p/toxics")
        self.assertEqual([t["name"] for t in toxics], ["b", "a", "c"])
        _, proxy = yield self.control.json("GET", "/proxies/p")
        self.assertEqual(proxy["toxics"], toxics)

    @defer.inlineCallbacks
    def test_showUpdateDelete(self) -> Generator[Any, Any, None]:
        """
        A toxic is shown, updated (attributes merged, toxicity replaced,
        C{type} ignored) with C{PATCH} or C{POST}, and deleted with C{204}.
        """
        yield self.control.json("POST", "/proxies/p/toxics", {
            "type": "latency", "attributes": {"latency": 100, "jitter": 10}})
        path = "/proxies/p/toxics/latency_downstream"
        status, value = yield self.control.json("GET", path)
        self.assertEqual((status, value["attributes"]), (200, {"latency": 100, "jitter": 10}))
        status, value = yield self.control.json("PATCH", path, {"attributes": {"jitter": 5}})
        self.assertEqual((status, value["attributes"]), (200, {"latency": 100, "jitter": 5}))
        status, value = yield self.control.json("POST", path, {
            "toxicity": 0.5, "type": "bandwidth", "stream": "upstream"})
        self.assertEqual(value, {
            "attributes": {"latency": 100, "jitter": 5}, "name": "latency_downstream",
            "type": "latency", "stream": "downstream", "toxicity": 0.5})
        yield self.assertError("PATCH", path, 400,
                               "bad request body: latency: expected number >= 0, got -5.0",
                               {"attributes": {"latency": -5}})
        _, value = yield self.control.json("GET", path)
        self.assertEqual(value["attributes"]["latency"], 100)
        yield self.assertError("PATCH", "/proxies/p/toxics/nope", 404, "toxic not found",
                               {"toxicity": 1})
        code, _, content = yield self.control.request("DELETE", path)
        self.assertEqual((code, content), (204, b""))
        yield self.assertError("GET", path, 404, "toxic not found")
        yield self.assertError("DELETE", path, 404, "toxic not found")

    @defer.inlineCallbacks
    def test_toxicsActOnLiveConnections(self) -> Generator[Any, Any, None]:
        """
        A toxic added, updated or removed acts at once on a connection
        that was open before: its echoes take the latency while it is set.
        """
        client = yield pinger(self, self.listenPort(self.proxy))
        before = yield client.ping()
        self.assertLess(before, 0.2)
        yield self.control.json("POST", "/proxies/p/toxics", {
            "type": "latency", "attributes": {"latency": 300}})
        slow = yield client.ping()
        self.assertGreaterEqual(slow, 0.3)
        yield self.control.json("PATCH", "/proxies/p/toxics/latency_downstream", {
            "attributes": {"latency": 0}})
        fast = yield client.ping()
        self.assertLess(fast, 0.2)
        yield self.control.json("PATCH", "/proxies/p/toxics/latency_downstream", {
            "attributes": {"latency": 300}})
        slow = yield client.ping()
        self.assertGreaterEqual(slow, 0.3)
        yield self.control.request("DELETE", "/proxies/p/toxics/latency_downstream")
        fast = yield client.ping()
        self.assertLess(fast, 0.2)

    @defer.inlineCallbacks
    def test_zeroToxicityNeverActs(self) -> Generator[Any, Any, None]:
        """
        A C{reset_peer} toxic with toxicity 0 never resets a connection
        (Toxiproxy's does); raised to 1, it resets the next one.
        """
        port = self.listenPort(self.proxy)
        yield self.control.json("POST", "/proxies/p/toxics", {
            "type": "reset_peer", "toxicity": 0})
        for _ in range(5):
            elapsed = yield threads.deferToThread(roundTrip, port)
            self.assertLess(elapsed, 5)
        yield self.control.json("PATCH", "/proxies/p/toxics/reset_peer_downstream", {
            "toxicity": 1})
        yield self.assertFailure(threads.deferToThread(roundTrip, port),
                                 ConnectionResetError, AssertionError)
