"""
Tests for the guards of the control API (L{txvaurien.control.resource}):
the bearer token, the browser guard, the body limit, and a matrix of
malformed requests that each get their documented C{4xx} while the proxy
keeps serving traffic.
"""

from __future__ import annotations

import json
from typing import Any, Generator

from twisted.internet import defer, reactor, threads
from twisted.web.iweb import IBodyProducer
from twisted.trial.unittest import TestCase
from twisted.web.iweb import UNKNOWN_LENGTH
from zope.interface import implementer

from txvaurien.control.resource import MAX_BODY
from txvaurien.test.rawhttp import RawClient, connectRaw
from txvaurien.test.controlhelpers import Control, echoControl, pinger, roundTrip

TOKEN = "s3cret-token"
AUTH = {"Authorization": "Bearer " + TOKEN}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


@implementer(IBodyProducer)
class _Chunked:
    """
    A body of unknown length (sent chunked), C{size} bytes in 64 KiB writes.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, size: int) -> None:
        self.size = size

    def startProducing(self, consumer: Any) -> defer.Deferred:
        sent = 0
        while sent < self.size:
            piece = min(65536, self.size - sent)
            consumer.write(b" " * piece)
            sent += piece
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class TokenTests(TestCase):
    """
    C{--http-token}: every request must carry C{Authorization: Bearer
    TOKEN}.
    """

    timeout = 60

    def setUp(self) -> None:
        _, self.control = echoControl(self, ["--http-token", TOKEN])

    @defer.inlineCallbacks
    def test_missingOrWrongToken(self) -> Generator[Any, Any, None]:
        """
        Without the token, or with another, every endpoint answers C{401}
        with C{WWW-Authenticate}, in the error shape of its API.
        """
        for headers in [{}, {"Authorization": "Bearer wrong"},
                        {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN},
                        {"Authorization": "bearer wrong"}]:
            code, sent, content = yield self.control.request(
                "GET", "/proxies", headers=headers)
            self.assertEqual((code, content), (
                401, b'{"error":"missing or invalid bearer token","status":401}\n'), headers)
            self.assertEqual(sent.getRawHeaders(b"www-authenticate"),
                             [b'Bearer realm="txvaurien"'])
            code, value = yield self.control.json("GET", "/behavior", headers=headers)
            self.assertEqual((code, value), (401, {"status": "error", "errors": [{
                "location": "header", "name": "Authorization",
                "description": "missing or invalid bearer token"}]}))
        code, _, _ = yield self.control.request("GET", "/metrics")
        self.assertEqual(code, 401)

    @defer.inlineCallbacks
    def test_rightToken(self) -> Generator[Any, Any, None]:
        """
        With the token, requests are served.
        """
        for path in ["/proxies", "/behavior", "/metrics", "/version"]:
            code, _, _ = yield self.control.request("GET", path, headers=AUTH)
            self.assertEqual(code, 200, path)

    @defer.inlineCallbacks
    def test_schemeCaseInsensitive(self) -> Generator[Any, Any, None]:
        """
        The C{Bearer} scheme's name is matched without regard to case (RFC
        7235, section 2.1): C{bearer} and C{BEARER} with the right token
        are served; the token itself is compared exactly.
        """
        for scheme in ["bearer", "BEARER", "bEaReR"]:
            code, _, _ = yield self.control.request(
                "GET", "/proxies", headers={"Authorization": scheme + " " + TOKEN})
            self.assertEqual(code, 200, scheme)
        code, _, _ = yield self.control.request(
            "GET", "/proxies", headers={"Authorization": "Bearer " + TOKEN.upper()})
        self.assertEqual(code, 401)


class BrowserTests(TestCase):
    """
    Browser user agents are refused unless C{--http-allow-browsers}.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_browsersRefused(self) -> Generator[Any, Any, None]:
        """
        A C{User-Agent} starting with C{Mozilla/} gets Toxiproxy's C{403
        User agent not allowed}, on every path, and nothing changes.
        """
        control = Control(self, [])
        for method, path in [("GET", "/proxies"), ("POST", "/proxies"),
                             ("PUT", "/behavior"), ("GET", "/nothing")]:
            code, headers, content = yield control.request(
                method, path, {"name": "x", "upstream": "h:1"},
                headers={"User-Agent": BROWSER})
            self.assertEqual((code, content), (403, b"User agent not allowed\n"))
            self.assertEqual(headers.getRawHeaders(b"content-type"),
                             [b"text/plain; charset=utf-8"])
        self.assertEqual(control.manager.proxies, {})

    @defer.inlineCallbacks
    def test_browsersAllowed(self) -> Generator[Any, Any, None]:
        """
        With C{--http-allow-browsers}, browsers are served.
        """
        control = Control(self, ["--http-allow-browsers"])
        code, _, content = yield control.request(
            "GET", "/proxies", headers={"User-Agent": BROWSER})
        self.assertEqual((code, content), (200, b"{}"))


class BodyLimitTests(TestCase):
    """
    Bodies over 1 MiB are refused with C{413}.
    """

    timeout = 60

    def setUp(self) -> None:
        self.control = Control(self, [])

    @defer.inlineCallbacks
    def test_limit(self) -> Generator[Any, Any, None]:
        """
        A body of exactly 1 MiB is read; one byte more is a C{413}, with a
        length given or chunked, in the error shape of each API.
        """
        body = b'{"name": "p", "upstream": "127.0.0.1:1"}'
        exact = body + b" " * (MAX_BODY - len(body))
        code, _, _ = yield self.control.request("POST", "/proxies", raw=exact)
        self.assertEqual(code, 201)
        code, _, content = yield self.control.request("POST", "/proxies", raw=exact + b" ")
        self.assertEqual((code, content), (
            413, b'{"error":"request body larger than 1048576 bytes","status":413}\n'))
        response = yield self.control.http.request(
            "PUT", self.control.url + "/behavior", data=_Chunked(MAX_BODY + 1))
        self.assertEqual(response.code, 413)
        value = json.loads((yield response.content()))
        self.assertEqual(value["errors"][0]["description"],
                         "request body larger than 1048576 bytes")
        code, _, _ = yield self.control.request("GET", "/version")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_endlessBodyDisconnected(self) -> Generator[Any, Any, None]:
        """
        A client that goes on sending far past the limit is disconnected
        instead of being read forever; the server serves the next client.
        (Its C{Content-Length} says the body is too large, so it is first
        answered C{413} at once; what it sends after is thrown away, up to
        a bound, then the connection is cut.)
        """
        client = RawClient(
            b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (17 * MAX_BODY), stream=17 * MAX_BODY)
        yield connectRaw(self.control.port, client)
        yield client.closed
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 413 "), client.answer[:80])
        self.assertLess(client.sent, 17 * MAX_BODY)
        code, _, _ = yield self.control.request("GET", "/version")
        self.assertEqual(code, 200)


def _case(method: str, path: str, status: int, body: Any = None, raw: bytes | None = None,
          headers: dict[str, str] | None = None, says: str = "") -> dict[str, Any]:
    return {"method": method, "path": path, "status": status, "body": body, "raw": raw,
            "headers": headers, "says": says}


#: Malformed requests and what each gets.  C{says} is a part of the error
#: message.
MATRIX = [
    # Vaurien's API
    _case("PUT", "/behavior", 400, raw=b"{", says="invalid JSON"),
    _case("PUT", "/behavior", 400, body=[], says="expected a JSON object"),
    _case("PUT", "/behavior", 400, body="delay", says="expected a JSON object"),
    _case("PUT", "/behavior", 400, body={}, says="required"),
    _case("PUT", "/behavior", 400, body={"name": None}, says="got None"),
    _case("PUT", "/behavior", 400, body={"name": "nosuch"}, says="unknown behavior 'nosuch'"),
    _case("PUT", "/behavior", 400, body={"name": "os.system"}, says="unknown behavior"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "sleep": "x"}, says="sleep"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "sleep": -1}, says=">= 0"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "sleep": [1]}, says="got [1]"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "sleep": {}}, says="got {}"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "zzz": 1}, says="unknown option"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "toxicity": -0.1}, says="toxicity"),
    _case("PUT", "/behavior", 400, body={"name": "delay", "direction": "sideways"},
          says="expected one of upstream, downstream, both"),
    _case("PUT", "/behavior", 400, body={"name": "101:delay"}, says="not between 0 and 100"),
    _case("PUT", "/behavior", 400, body={"name": "50:delay,60:error"}, says="add up to 110"),
    _case("PUT", "/behavior", 400, body={"name": "a:delay"}, says="not an integer"),
    _case("PUT", "/behavior", 400, body={"name": ","}, says="empty alternative"),
    _case("PUT", "/behavior", 400, raw=b'{"name": "latency", "latency": 1e400}', says="inf"),
    _case("PUT", "/behavior", 400, raw=b'{"name": "latency", "latency": NaN}',
          says="invalid JSON"),
    _case("PUT", "/behavior", 400, raw=b'{"name": "\xff"}', says="not UTF-8"),
    _case("PUT", "/behavior", 413, raw=b" " * (2 * MAX_BODY), says="larger than"),
    _case("PUT", "/backend", 400, body={"backend": "nonsense:x"}, says="cannot connect"),
    _case("PUT", "/backend", 400, body={"backend": 5}, says="expected an endpoint"),
    _case("PUT", "/backend", 400, body={}, says="required"),
    _case("POST", "/behavior", 405, says="method not allowed"),
    _case("DELETE", "/behaviors", 405, says="method not allowed"),
    _case("GET", "/behavior?proxy=nope", 404, says="no proxy named 'nope'"),
    # Toxiproxy's API
    _case("POST", "/proxies", 400, raw=b"{", says="bad request body"),
    _case("POST", "/proxies", 400, body={}, says="missing required field: name"),
    _case("POST", "/proxies", 400, body={"name": "x"}, says="missing required field: upstream"),
    _case("POST", "/proxies", 400, body={"name": "x", "upstream": "h:0"}, says="must not be 0"),
    _case("POST", "/proxies", 400, body={"name": "x", "upstream": "h:1", "listen": "no:1:2"},
          says="cannot listen on"),
    _case("POST", "/proxies", 400, body={"name": "x", "upstream": "h:1", "enabled": "no"},
          says="of type bool"),
    _case("POST", "/proxies", 400, body={"name": ["x"], "upstream": "h:1"},
          says="cannot unmarshal array"),
    _case("POST", "/proxies", 409, body={"name": "vaurien", "upstream": "h:1"},
          says="proxy already exists"),
    _case("POST", "/proxies", 413, raw=b" " * (MAX_BODY + 1), says="larger than"),
    _case("POST", "/proxies/vaurien/toxics", 400, body={"type": "nosuch"},
          says="invalid toxic type"),
    _case("POST", "/proxies/vaurien/toxics", 400, body={"type": "latency", "stream": "x"},
          says="stream was invalid"),
    _case("POST", "/proxies/vaurien/toxics", 400, body={"type": "latency", "toxicity": -1},
          says="toxicity"),
    _case("POST", "/proxies/vaurien/toxics", 400, body={"type": "latency", "toxicity": 1e39},
          says="of type float32"),
    _case("POST", "/proxies/vaurien/toxics", 400,
          body={"type": "bandwidth", "attributes": {"rate": 0}}, says="rate"),
    _case("POST", "/proxies/vaurien/toxics", 400,
          body={"type": "bandwidth", "attributes": {"rate": -5}}, says="rate"),
    _case("POST", "/proxies/vaurien/toxics", 400,
          body={"type": "slicer", "attributes": {"average_size": 0}}, says="average_size"),
    _case("POST", "/proxies/vaurien/toxics", 400,
          body={"type": "latency", "attributes": "fast"}, says="attributes"),
    _case("POST", "/proxies/vaurien/toxics", 400,
          body={"type": "latency", "attributes": {"zzz": 1}}, says="unknown attribute 'zzz'"),
    _case("POST", "/proxies/vaurien/toxics", 400,
          body={"type": "limit_data", "attributes": {"bytes": 1.5}}, says="bytes"),
    _case("PATCH", "/proxies/vaurien/toxics/nope", 404, body={}, says="toxic not found"),
    _case("GET", "/proxies/nope", 404, says="proxy not found"),
    _case("DELETE", "/proxies/nope", 404, says="proxy not found"),
    _case("PATCH", "/proxies/vaurien", 400, body={"enabled": "yes"}, says="of type bool"),
    _case("PATCH", "/proxies/vaurien", 400, body={"listen": 5}, says="of type string"),
    _case("POST", "/populate", 400, body={"name": "x"}, says="cannot unmarshal object"),
    _case("POST", "/populate", 400, body=[{"name": "x"}],
          says="missing required field: upstream at proxy 1"),
    _case("PUT", "/proxies", 405),
    _case("GET", "/reset", 405),
    _case("GET", "/nothing", 404, says="404 page not found"),
    # Guards
    _case("GET", "/proxies", 401, headers={"Authorization": ""}, says="bearer token"),
    _case("PUT", "/behavior", 401, body={"name": "blackout"},
          headers={"Authorization": "Bearer nope"}, says="bearer token"),
    _case("POST", "/reset", 403, headers={"User-Agent": BROWSER},
          says="User agent not allowed"),
    _case("DELETE", "/proxies/vaurien", 403, headers={"User-Agent": BROWSER},
          says="User agent not allowed"),
]


class MalformedMatrixTests(TestCase):
    """
    Every malformed request gets its documented C{4xx}, changes nothing,
    and the proxy serves traffic during and after.
    """

    timeout = 120

    def setUp(self) -> None:
        _, self.control = echoControl(self, ["--http-token", TOKEN])

    @defer.inlineCallbacks
    def traffic(self, client: Any, state: dict[str, Any]) -> Generator[Any, Any, Any]:
        while not state["stop"]:
            payload = "ping {}\n".format(state["pings"]).encode("ascii")
            yield client.ping(payload)
            if client.buffer != payload:
                state["wrong"].append(client.buffer)
            state["pings"] += 1

    @defer.inlineCallbacks
    def test_matrix(self) -> Generator[Any, Any, None]:
        """
        At least 40 malformed requests, each answered with its status and
        message, while a connection through the proxy keeps echoing.
        """
        self.assertGreaterEqual(len(MATRIX), 40)
        client = yield pinger(self, self.control.proxyPort())
        state: dict[str, Any] = {"stop": False, "pings": 0, "wrong": []}
        running = self.traffic(client, state)
        before = self.control.manager.get("vaurien").factory.table
        for case in MATRIX:
            headers = dict(AUTH)
            headers.update(case["headers"] or {})
            code, sent, content = yield self.control.request(
                case["method"], case["path"], case["body"], case["raw"], headers)
            where = (case["method"], case["path"], case["body"], case["raw"] and case["raw"][:40])
            self.assertEqual(code, case["status"], (where, content))
            text = content.decode("utf-8", "replace")
            self.assertIn(case["says"], text, where)
            if content.startswith(b"{"):
                value = json.loads(content)
                if "errors" in value:
                    self.assertEqual(value["status"], "error", where)
                else:
                    self.assertEqual(value["status"], case["status"], where)
        state["stop"] = True
        yield running
        self.assertEqual(state["wrong"], [])
        self.assertGreater(state["pings"], 0)
        manager = self.control.manager
        self.assertEqual(list(manager.proxies), ["vaurien"])
        self.assertEqual(manager.get("vaurien").toxics, [])
        self.assertIs(manager.get("vaurien").factory.table, before)
        self.assertTrue(manager.get("vaurien").enabled)
        elapsed = yield threads.deferToThread(roundTrip, self.control.proxyPort())
        self.assertLess(elapsed, 5)
        code, _, _ = yield self.control.request("GET", "/version", headers=AUTH)
        self.assertEqual(code, 200)
        self.assertTrue(reactor.running)
