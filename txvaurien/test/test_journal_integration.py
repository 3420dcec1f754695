"""
The fault journal over real sockets: reproducible under a seed, served
by C{/events} and read by C{curl -N} from C{/events/stream} while traffic
flows, consistent with C{/metrics}; bad input to the new endpoints.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial.unittest import TestCase
from twisted.web import server

from txvaurien.journal import Journal
from txvaurien.test.controlhelpers import Control
from txvaurien.test.helpers import listenProxy
from txvaurien.test.servers import listenBackend, requireBinary
from txvaurien.test.test_match_integration import _Answer, _status


def _traffic(port: int, count: int) -> list[int]:
    base = "http://127.0.0.1:{}".format(port)
    return [_status(base + "/api/{}".format(i), "POST" if i % 3 else "GET")
            for i in range(count)]


class ReproducibleTests(TestCase):
    """
    The same seed and the same traffic give the same journal.
    """

    @defer.inlineCallbacks
    def journalOf(self, backend: int, seed: int) -> Generator[Any, Any, list[dict[str, Any]]]:
        proxy = listenProxy(self, backend, "30:error,30:latency,20:drop", "http", {
            "error": {"codes": [500, 502, 503]},
            "latency": {"latency": 5, "jitter": 5},
            "drop": {"loss_rate": 0.5, "direction": "downstream"},
        }, seed=seed)
        proxy.journal = Journal(reactor)
        yield threads.deferToThread(self._traffic, proxy.port)
        return [{k: v for k, v in e.items() if k not in ("time", "port")}
                for e in proxy.journal.ring]

    def _traffic(self, port: int) -> None:
        base = "http://127.0.0.1:{}".format(port)
        for i in range(40):
            request = urllib.request.Request(base + "/api/{}".format(i), method="GET")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    response.read()
            except Exception:
                # Errors and dropped responses are what the journal records.
                pass

    @defer.inlineCallbacks
    def test_sameSeedSameJournal(self) -> Generator[Any, Any, None]:
        """
        Two runs of the same traffic with seed 42 give identical journals,
        times and client ports aside; seed 43 gives another.
        """
        backend = listenBackend(self, server.Site(_Answer()))
        first = yield self.journalOf(backend, 42)
        second = yield self.journalOf(backend, 42)
        other = yield self.journalOf(backend, 43)
        self.assertGreater(len(first), 10)
        self.assertEqual(first, second)
        self.assertNotEqual(first, other)


class _Collect(protocol.ProcessProtocol):
    def __init__(self, wanted: int) -> None:
        self.data = b""
        self.wanted = wanted
        self.opened: defer.Deferred = defer.Deferred()
        self.enough: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.data += data
        if b"fault journal" in self.data and not self.opened.called:
            self.opened.callback(None)
        if self.data.count(b"event: fault") >= self.wanted and not self.enough.called:
            self.enough.callback(None)

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


class EventsEndpointTests(TestCase):
    """
    C{/events}, C{/events/stream} and C{/metrics} of C{twistd vaurien
    --http}.
    """

    timeout = 60

    def setUp(self) -> None:
        backend = listenBackend(self, server.Site(_Answer()))
        self.control = Control(self, [
            "--backend", "127.0.0.1:{}".format(backend), "--protocol", "http",
            "--proxy", "tcp:0:interface=127.0.0.1",
            "--behavior", "100:error", "--behavior-error-codes", "503"])
        self.port = self.control.proxyPort()

    @defer.inlineCallbacks
    def test_curlReadsStreamWhileTrafficFlows(self) -> Generator[Any, Any, None]:
        """
        C{curl -N /events/stream}, started before the traffic, prints one
        C{event: fault} per request answered with an error, each with its
        JSON data.
        """
        curl = requireBinary("curl", "curl")
        collect = _Collect(5)
        process = reactor.spawnProcess(
            collect, curl, [curl, "-sN", self.control.url + "/events/stream"], env=None)
        self.addCleanup(lambda: collect.ended)
        # The stream's opening comment: curl is connected.
        yield collect.opened
        statuses = yield threads.deferToThread(_traffic, self.port, 5)
        yield collect.enough
        process.signalProcess("KILL")
        self.assertEqual(statuses, [503] * 5)
        data = [json.loads(line[len(b"data: "):]) for line in collect.data.splitlines()
                if line.startswith(b"data: ")]
        self.assertEqual([(e["cursor"], e["action"], e["code"]) for e in data],
                         [(i, "answered", 503) for i in range(5)])

    @defer.inlineCallbacks
    def test_eventsSinceCursorAndMetrics(self) -> Generator[Any, Any, None]:
        """
        C{GET /events?since=N} pages through the ring with the cursor it
        returns, and C{/metrics} counts as many journal events.
        """
        yield threads.deferToThread(_traffic, self.port, 4)
        status, value = yield self.control.json("GET", "/events?since=1&limit=2")
        self.assertEqual((status, [e["cursor"] for e in value["events"]], value["cursor"]),
                         (200, [1, 2], 3))
        status, value = yield self.control.json("GET", "/events?since=3")
        self.assertEqual(([e["request"] for e in value["events"]], value["cursor"]), ([0], 4))
        status, _, body = yield self.control.request("GET", "/metrics")
        self.assertIn(b'txvaurien_journal_events_total{behavior="error",proxy="vaurien"} 4.0',
                      body)

    @defer.inlineCallbacks
    def test_badInput(self) -> Generator[Any, Any, None]:
        """
        A bad cursor, a bad match and a bad scenario get 400 with a message
        saying what is wrong; the proxy keeps running.
        """
        checks = [
            ("GET", "/events?since=-1", None, "since must be a non-negative integer"),
            ("GET", "/events?limit=0", None, "limit must be between 1"),
            ("PUT", "/behavior", {"name": "error", "match": "methd=POST"},
             "unknown match field 'methd'"),
            ("PUT", "/behavior", {"name": "error", "match": "path=/a["}, "invalid glob"),
            ("PUT", "/behavior", {"name": "error", "match": "path~(("},
             "invalid regular expression"),
            ("POST", "/scenario", {"steps": [{"at": 0, "until": 5, "behavior": "delay"},
                                             {"at": 3, "behavior": "delay"}]}, "overlaps"),
            ("POST", "/scenario", {"steps": [{"at": 0, "duration": -1, "behavior": "delay"}]},
             "must not be negative"),
        ]
        for method, path, body, expected in checks:
            status, value = yield self.control.json(method, path, body)
            self.assertEqual(status, 400, (path, body))
            self.assertIn(expected, value["errors"][0]["description"])
        statuses = yield threads.deferToThread(_traffic, self.port, 1)
        self.assertEqual(statuses, [503])
