"""
The control API under concurrent use: 50 API clients changing behaviors,
toxics and proxies while 50 clients stream bytes through the proxies.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Generator

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from txvaurien.test.controlhelpers import echoControl, stream

STREAMS = 50
API_CLIENTS = 50
ROUNDS = 8
PAYLOAD = 256 * 1024

#: Behaviors the API clients switch the default proxy between; none loses
#: or alters a byte, so every stream must come back whole.
LOSSLESS = [
    {"name": "dummy"},
    {"name": "latency", "latency": 1},
    {"name": "slicer", "average_size": 4096, "size_variation": 1024, "delay": 0},
    {"name": "bandwidth", "rate": 200000},
    {"name": "50:latency,50:dummy", "latency": {"latency": 2}},
]


class ConcurrencyTests(TestCase):
    """
    Concurrent API clients and traffic.
    """

    timeout = 300

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.backend, self.control = echoControl(self, [])
        upstream = "127.0.0.1:{}".format(self.backend)
        status, self.toxic = yield self.control.json(
            "POST", "/proxies", {"name": "toxic", "upstream": upstream})
        self.assertEqual(status, 201)
        status, _ = yield self.control.json(
            "POST", "/proxies", {"name": "flip", "upstream": upstream})
        self.assertEqual(status, 201)

    @defer.inlineCallbacks
    def apiClient(self, index: int, failures: list[Any]) -> Generator[Any, Any, Any]:
        """
        One API client: C{ROUNDS} rounds of the operation its index picks.
        """
        control = self.control
        calls: list[tuple[str, str, Any]] = []
        for round in range(ROUNDS):
            kind = index % 5
            if kind == 0:
                calls.append(("PUT", "/behavior", LOSSLESS[(index + round) % len(LOSSLESS)]))
            elif kind == 1:
                name = "lat{}_{}".format(index, round)
                calls.append(("POST", "/proxies/toxic/toxics", {
                    "name": name, "type": "latency", "attributes": {"latency": 1}}))
                calls.append(("DELETE", "/proxies/toxic/toxics/" + name, None))
            elif kind == 2:
                name = "bw{}_{}".format(index, round)
                calls.append(("POST", "/proxies/toxic/toxics", {
                    "name": name, "type": "bandwidth", "stream": "upstream",
                    "attributes": {"rate": 100000}}))
                calls.append(("PATCH", "/proxies/toxic/toxics/" + name,
                              {"attributes": {"rate": 150000}, "toxicity": 0.5}))
                calls.append(("DELETE", "/proxies/toxic/toxics/" + name, None))
            elif kind == 3:
                calls.append(("PATCH", "/proxies/flip", {"enabled": round % 2 == 1}))
            else:
                calls.extend([("GET", "/proxies", None), ("GET", "/metrics", None),
                              ("GET", "/connections", None), ("GET", "/behavior", None)])
        for method, path, body in calls:
            code, _, content = yield control.request(method, path, body)
            if not 200 <= code < 300:
                failures.append((index, method, path, code, content))
            if self.streaming:
                self.overlapping += 1

    @defer.inlineCallbacks
    def streamer(self, index: int, results: list[Any]) -> Generator[Any, Any, Any]:
        payload = os.urandom(PAYLOAD)
        port = self.control.proxyPort("vaurien" if index % 2 else "toxic")
        self.streaming += 1
        try:
            echoed = yield stream(port, payload)
        finally:
            self.streaming -= 1
        results.append((index, len(echoed), hashlib.sha256(echoed).hexdigest(),
                        hashlib.sha256(payload).hexdigest()))

    @defer.inlineCallbacks
    def test_apiClientsWhileStreaming(self) -> Generator[Any, Any, None]:
        """
        Fifty API clients switching behaviors, adding, changing and
        removing toxics and toggling a proxy, all answered with success,
        while fifty streams through the proxies come back byte for byte;
        afterwards the state is what the last operations left.
        """
        failures: list[Any] = []
        results: list[Any] = []
        self.streaming = self.overlapping = 0
        work = [self.streamer(i, results) for i in range(STREAMS)]
        work += [self.apiClient(i, failures) for i in range(API_CLIENTS)]
        yield defer.gatherResults(work, consumeErrors=True)
        self.assertEqual(failures, [])
        self.assertGreater(self.overlapping, 100, "API calls did not overlap the streams")
        self.assertEqual(len(results), STREAMS)
        for index, size, got, sent in results:
            self.assertEqual((size, got), (PAYLOAD, sent), "stream {}".format(index))
        manager = self.control.manager
        self.assertEqual(manager.get("toxic").toxics, [])
        self.assertTrue(manager.get("flip").enabled)
        for name in ["vaurien", "toxic"]:
            yield manager.get(name).factory.whenIdle()
        text = (yield self.control.request("GET", "/metrics"))[2].decode("ascii")
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}
        for proxy in ["toxic", "vaurien"]:
            self.assertEqual(samples[("txvaurien_proxy_connections_opened_total",
                                      (("proxy", proxy),))], STREAMS // 2)
            for direction in ["upstream", "downstream"]:
                self.assertEqual(samples[("txvaurien_proxy_bytes_total", (
                    ("direction", direction), ("proxy", proxy)))], STREAMS // 2 * PAYLOAD)
