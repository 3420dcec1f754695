"""
Tests for L{txvaurien.client.Client}, the synchronous client, against a
real control server (the client runs in a thread, the server in the
reactor).
"""

from __future__ import annotations

import socket
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial.unittest import TestCase

from txvaurien.client import (
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
)
from txvaurien.test.controlhelpers import Control, EchoControlTestCase, refused, roundTrip
from txvaurien.test.servers import freePort, selfSignedPEM


class ClientTestCase(EchoControlTestCase):
    def setUp(self) -> None:
        EchoControlTestCase.setUp(self)
        self.client = Client("127.0.0.1", self.control.port)

    def inThread(self, f: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
        return threads.deferToThread(f, *args, **kwargs)


class VaurienMethodTests(ClientTestCase):
    """
    The methods of Vaurien's client.
    """

    @defer.inlineCallbacks
    def test_behaviorAndBackend(self) -> Generator[Any, Any, None]:
        """
        C{set_behavior} sets a behavior and its options, which
        C{get_behavior} and C{get_behavior_options} show;
        C{list_behaviors} lists them all; C{get_backend} and C{set_backend}
        read and change the backend.
        """
        client = self.client

        def scenario() -> Any:
            before = client.get_behavior()
            client.set_behavior("delay", sleep=0.5, before=False)
            behaviors = {b["name"]: b for b in client.list_behaviors()}
            backend = client.get_backend()
            client.set_backend("tcp:host=127.0.0.1:port={}".format(self.backend))
            return (before, client.get_behavior(), client.get_behavior_options(),
                    behaviors, backend, client.get_backend())

        before, name, options, behaviors, backend, after = yield self.inThread(scenario)
        self.assertEqual((before, name), ("100:dummy", "delay"))
        self.assertEqual(options, {"sleep": 0.5, "before": False, "direction": "both",
                                   "toxicity": 1.0, "match": None})
        self.assertEqual(behaviors["delay"]["options"]["sleep"]["default"], 1.0)
        self.assertEqual(backend, "127.0.0.1:{}".format(self.backend))
        self.assertEqual(after, "tcp:host=127.0.0.1:port={}".format(self.backend))

    @defer.inlineCallbacks
    def test_withBehaviorRestoresNameAndOptions(self) -> Generator[Any, Any, None]:
        """
        C{with_behavior} sets a behavior for the block and restores the
        previous one with its options (not its defaults), also when the
        block raises; inside, traffic gets the behavior.
        """
        client = self.client
        port = self.control.proxyPort()

        def scenario() -> Any:
            client.set_behavior("latency", latency=7, jitter=2)
            saved = client.get_behavior_state()
            with client.with_behavior("blackout", reset=True):
                inside = client.get_behavior_state()
                try:
                    roundTrip(port)
                except (ConnectionResetError, AssertionError) as e:
                    cut = type(e).__name__
            after = client.get_behavior_state()
            try:
                with client.with_behavior("delay", sleep=3):
                    raise KeyError("boom")
            except KeyError:
                raised = True
            return saved, inside, cut, after, raised, client.get_behavior_state()

        saved, inside, cut, after, raised, final = yield self.inThread(scenario)
        self.assertEqual(saved, {"behavior": "latency", "options": {
            "latency": 7.0, "jitter": 2.0, "distribution": "uniform",
            "direction": "downstream", "toxicity": 1.0, "match": None}})
        self.assertEqual((inside["behavior"], inside["options"]["reset"]), ("blackout", True))
        self.assertIn(cut, ["ConnectionResetError", "AssertionError"])
        self.assertEqual(after, saved)
        self.assertTrue(raised)
        self.assertEqual(final, saved)

    @defer.inlineCallbacks
    def test_withBehaviorRestoresWeightedTable(self) -> Generator[Any, Any, None]:
        """
        A weighted table of several behaviors comes back with every
        behavior's options.
        """
        client = self.client

        def scenario() -> Any:
            client.set_behavior("20:delay,10:error", delay={"sleep": 2},
                                error={"codes": [503]})
            saved = client.get_behavior_state()
            with client.with_behavior("dummy"):
                inside = client.get_behavior()
            return saved, inside, client.get_behavior_state()

        saved, inside, after = yield self.inThread(scenario)
        self.assertEqual(inside, "dummy")
        self.assertEqual(after, saved)
        self.assertEqual(saved["options"]["delay"]["sleep"], 2.0)
        self.assertEqual(saved["options"]["error"]["codes"], [503])

    @defer.inlineCallbacks
    def test_namedProxy(self) -> Generator[Any, Any, None]:
        """
        A client given C{proxy} aims Vaurien's methods at that proxy.
        """
        def scenario() -> Any:
            self.client.create_proxy("other", "127.0.0.1:{}".format(self.backend))
            other = Client("127.0.0.1", self.control.port, proxy="other")
            other.set_behavior("delay", sleep=4)
            return other.get_behavior_options()["sleep"], self.client.get_behavior()

        sleep, default = yield self.inThread(scenario)
        self.assertEqual((sleep, default), (4.0, "100:dummy"))


class ConnectionsPagingTests(ClientTestCase):
    """
    C{connections()} asks a page at a time and returns every connection.
    """

    @defer.inlineCallbacks
    def test_everyPageFetched(self) -> Generator[Any, Any, None]:
        """
        With pages of one connection, three live connections still come
        back, oldest first, in three requests (the last page says there
        is no more).
        """
        port = self.control.proxyPort()
        sockets: list[socket.socket] = []
        self.addCleanup(lambda: [s.close() for s in sockets])

        def connect() -> None:
            # Blocking: in a thread, while the reactor serves.
            for _ in range(3):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                sockets.append(s)
                s.sendall(b"x\n")
                s.recv(10)

        yield self.inThread(connect)
        self.client.pageSize = 1
        requests = []
        original = self.client._json

        def counting(method: str, path: str, body: Any = None) -> Any:
            requests.append(path)
            return original(method, path, body)

        self.client._json = counting  # type: ignore[method-assign]
        listed = yield self.inThread(self.client.connections, "vaurien")
        ids = [c["id"] for c in listed["vaurien"]]
        self.assertEqual(len(ids), 3)
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(requests), 3)


class ToxiproxyMethodTests(ClientTestCase):
    """
    The methods mirroring Toxiproxy's API.
    """

    @defer.inlineCallbacks
    def test_proxiesAndToxics(self) -> Generator[Any, Any, None]:
        """
        Proxies are created, listed, disabled (port closed), enabled,
        updated, populated and deleted; toxics added, listed, updated and
        removed; reset, version, metrics and connections answer.
        """
        client = self.client
        upstream = "127.0.0.1:{}".format(self.backend)

        def scenario() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            created = client.create_proxy("p", upstream)
            port = int(created["listen"].rsplit(":", 1)[1])
            seen["names"] = sorted(client.proxies())
            seen["shown"] = client.get_proxy("p") == created
            seen["toxic"] = client.add_toxic("p", "latency", {"latency": 20}, toxicity=0.5)
            seen["toxics"] = client.toxics("p")
            seen["updated"] = client.update_toxic("p", "latency_downstream", {"jitter": 3}, 1.0)
            seen["got"] = client.get_toxic("p", "latency_downstream")
            seen["disabled"] = (client.disable_proxy("p")["enabled"], refused(port))
            seen["enabled"] = (client.enable_proxy("p")["enabled"], refused(port))
            new = freePort()
            seen["moved"] = client.update_proxy("p", listen="127.0.0.1:{}".format(new))
            seen["movedWorks"] = roundTrip(new) > 0
            client.remove_toxic("p", "latency_downstream")
            seen["noToxics"] = client.toxics("p")
            seen["populated"] = [p["name"] for p in client.populate(
                [{"name": "q", "upstream": upstream}])]
            client.add_toxic("q", "timeout", {"timeout": 5}, stream="upstream", name="t")
            client.disable_proxy("q")
            client.reset()
            seen["afterReset"] = client.get_proxy("q")
            seen["version"] = client.version()
            seen["metrics"] = "txvaurien_proxy_bytes_total" in client.metrics()
            seen["connections"] = sorted(client.connections())
            client.delete_proxy("p")
            seen["afterDelete"] = sorted(client.proxies())
            return seen

        seen = yield self.inThread(scenario)
        self.assertEqual(seen["names"], ["p", "vaurien"])
        self.assertTrue(seen["shown"])
        self.assertEqual(seen["toxic"], {
            "attributes": {"latency": 20, "jitter": 0}, "name": "latency_downstream",
            "type": "latency", "stream": "downstream", "toxicity": 0.5})
        self.assertEqual(seen["toxics"], [seen["toxic"]])
        self.assertEqual((seen["updated"]["attributes"], seen["updated"]["toxicity"]),
                         ({"latency": 20, "jitter": 3}, 1))
        self.assertEqual(seen["got"], seen["updated"])
        self.assertEqual(seen["disabled"], (False, True))
        self.assertEqual(seen["enabled"], (True, False))
        self.assertTrue(seen["movedWorks"])
        self.assertEqual(seen["noToxics"], [])
        self.assertEqual(seen["populated"], ["q"])
        self.assertEqual((seen["afterReset"]["enabled"], seen["afterReset"]["toxics"]),
                         (True, []))
        self.assertEqual(seen["version"], "2.12.0")
        self.assertTrue(seen["metrics"])
        self.assertEqual(seen["connections"], ["p", "q", "vaurien"])
        self.assertEqual(seen["afterDelete"], ["q", "vaurien"])


class ErrorTests(ClientTestCase):
    """
    Refused requests raise typed exceptions carrying the server's message.
    """

    @defer.inlineCallbacks
    def test_typedErrors(self) -> Generator[Any, Any, None]:
        """
        Each status has its exception, with the server's message (from
        either API's error form) and the status.
        """
        client = self.client
        taken = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)

        def scenario() -> list[Any]:
            caught = []
            calls = [
                lambda: client.set_behavior("nosuch"),
                lambda: client.set_behavior("delay", sleep=-1),
                lambda: client.get_proxy("nope"),
                lambda: client.create_proxy("vaurien", "h:1"),
                lambda: client.create_proxy(
                    "x", "h:1", "127.0.0.1:{}".format(taken.getHost().port)),
                lambda: client.request("POST", "/proxies", "x" * (2 * 1024 * 1024)),
                lambda: client.add_toxic("vaurien", "latency", stream="sideways"),
                lambda: Client("127.0.0.1", freePort()).version(),
            ]
            for call in calls:
                try:
                    call()
                except Exception as e:
                    caught.append((type(e), getattr(e, "status", None), str(e)))
                else:
                    caught.append(None)
            return caught

        caught = yield self.inThread(scenario)
        port = taken.getHost().port
        self.assertEqual(caught[0][:2], (BadRequest, 400))
        self.assertTrue(caught[0][2].startswith("HTTP 400: name: unknown behavior 'nosuch'"))
        self.assertEqual(caught[1], (BadRequest, 400,
                                     "HTTP 400: sleep: expected number >= 0, got -1.0"))
        self.assertEqual(caught[2], (NotFound, 404, "HTTP 404: proxy not found"))
        self.assertEqual(caught[3], (Conflict, 409, "HTTP 409: proxy already exists"))
        self.assertEqual(caught[4], (
            ServerError, 500,
            "HTTP 500: listen tcp 127.0.0.1:{}: bind: address already in use".format(port)))
        self.assertEqual(caught[5], (PayloadTooLarge, 413,
                                     "HTTP 413: request body larger than 1048576 bytes"))
        self.assertEqual(caught[6], (
            BadRequest, 400,
            "HTTP 400: stream was invalid, can be either upstream or downstream"))
        self.assertEqual(caught[7][:2], (ConnectionFailed, None))
        self.assertIn("Connection refused", caught[7][2])


class TokenTests(ClientTestCase):
    """
    The client sends its token.
    """

    argv = ["--http-token", "tok"]

    @defer.inlineCallbacks
    def test_token(self) -> Generator[Any, Any, None]:
        """
        With the server's token the client is served; without it, it gets
        L{Unauthorized} with the server's message.
        """
        def scenario() -> Any:
            good = Client("127.0.0.1", self.control.port, token="tok").get_behavior()
            try:
                self.client.get_behavior()
            except Unauthorized as e:
                return good, (e.status, e.message)
            return good, None

        good, refusedWith = yield self.inThread(scenario)
        self.assertEqual(good, "100:dummy")
        self.assertEqual(refusedWith, (401, "Authorization: missing or invalid bearer token"))


class FromURLTests(TestCase):
    """
    L{Client.fromURL}.
    """

    def test_urls(self) -> None:
        """
        A URL gives the host, port and scheme; a bad one is refused.
        """
        client = Client.fromURL("http://127.0.0.1:8474", token="t")
        self.assertEqual((client.host, client.port, client.scheme, client.token),
                         ("127.0.0.1", 8474, "http", "t"))
        self.assertEqual(Client.fromURL("https://[::1]:9").url, "https://[::1]:9")
        self.assertEqual(Client.fromURL("localhost:8080").url, "http://localhost:8080")
        self.assertRaises(ValueError, Client.fromURL, "ftp://h:1")


class HTTPSTests(TestCase):
    """
    The control API served over TLS with C{--http-endpoint ssl:...}.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_https(self) -> Generator[Any, Any, None]:
        """
        With an C{ssl:} endpoint the API is served over TLS, and the client
        reaches it with C{scheme="https"}.
        """
        import ssl

        from twisted.python.filepath import FilePath

        pem = FilePath(self.mktemp())
        pem.setContent(b"".join(selfSignedPEM("127.0.0.1")))
        control = Control(self, ["--http-endpoint",
                                 "ssl:0:interface=127.0.0.1:privateKey={}".format(pem.path)])
        context = ssl.create_default_context(cafile=pem.path)
        context.check_hostname = False
        client = Client("127.0.0.1", control.port, scheme="https", context=context)
        version = yield threads.deferToThread(client.version)
        self.assertEqual(version, "2.12.0")
        plain = Client("127.0.0.1", control.port)
        yield self.assertFailure(threads.deferToThread(plain.version), ConnectionFailed)
