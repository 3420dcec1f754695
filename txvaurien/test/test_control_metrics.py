"""
Tests for C{GET /metrics} (L{txvaurien.control.metrics}): live counters,
per behavior faults, backend failures, the request latency histogram, and
bounded labels.
"""

from __future__ import annotations

from typing import Any, Generator

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer

from txvaurien.test.controlhelpers import EchoControlTestCase, lineAsker, pinger
from txvaurien.test.servers import freePort


class MetricsTestCase(EchoControlTestCase):
    @defer.inlineCallbacks
    def scrape(self) -> Generator[Any, Any, Any]:
        """
        The samples of C{GET /metrics}, as C{{(name, labels): value}}.
        """
        code, headers, content = yield self.control.request("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain"))
        samples = {}
        for family in text_string_to_metric_families(content.decode("utf-8")):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def idle(self, name: str = "vaurien") -> defer.Deferred:
        return self.control.manager.get(name).factory.whenIdle()


class CounterTests(MetricsTestCase):
    """
    Bytes and connections.
    """

    argv = ["--behavior", "latency", "--behavior-latency-latency", "1"]

    @defer.inlineCallbacks
    def test_liveBytesAndConnections(self) -> Generator[Any, Any, None]:
        """
        Bytes of a connection still open are counted; once it closes they
        are counted once, and it moves from active to closed.
        """
        client = yield pinger(self, self.control.proxyPort())
        yield client.ping(b"x" * 999 + b"\n")
        samples = yield self.scrape()
        proxy = (("proxy", "vaurien"),)
        self.assertEqual(samples[("txvaurien_proxy_bytes_total",
                                  (("direction", "upstream"),) + proxy)], 1000)
        self.assertEqual(samples[("txvaurien_proxy_bytes_total",
                                  (("direction", "downstream"),) + proxy)], 1000)
        self.assertEqual(samples[("txvaurien_proxy_connections_opened_total", proxy)], 1)
        self.assertEqual(samples[("txvaurien_proxy_connections_active", proxy)], 1)
        self.assertEqual(samples[("txvaurien_proxy_connections_closed_total", proxy)], 0)
        self.assertEqual(samples[("txvaurien_proxy_faults_total",
                                  (("behavior", "latency"),) + proxy)], 1)
        client.transport.loseConnection()
        yield client.closed
        yield self.idle()
        samples = yield self.scrape()
        self.assertEqual(samples[("txvaurien_proxy_bytes_total",
                                  (("direction", "upstream"),) + proxy)], 1000)
        self.assertEqual(samples[("txvaurien_proxy_connections_active", proxy)], 0)
        self.assertEqual(samples[("txvaurien_proxy_connections_closed_total", proxy)], 1)

    @defer.inlineCallbacks
    def test_labelsBounded(self) -> Generator[Any, Any, None]:
        """
        Thirty more connections add no series: no label is per connection.
        """
        client = yield pinger(self, self.control.proxyPort())
        yield client.ping()
        client.transport.loseConnection()
        yield client.closed
        first = set((yield self.scrape()))
        for _ in range(30):
            client = yield pinger(self, self.control.proxyPort())
            yield client.ping()
            client.transport.loseConnection()
            yield client.closed
        yield self.idle()
        samples = yield self.scrape()
        self.assertEqual(set(samples), first)
        self.assertEqual(samples[("txvaurien_proxy_connections_opened_total",
                                  (("proxy", "vaurien"),))], 31)
        labels = {name for (_, pairs) in samples for name, _ in pairs}
        # Every label has a bounded set of values: the proxy, a direction,
        # a behavior, a histogram bucket, the TLS collector's side
        # (client, server) and failure reason, and the datagram
        # collector's outcome.
        self.assertLessEqual(labels, {
            "proxy", "direction", "behavior", "le", "side", "reason", "outcome"})


class ProxyMetricsTests(MetricsTestCase):
    """
    Proxies made through the API, toxics, failures.
    """

    @defer.inlineCallbacks
    def test_toxicFaultsFailuresAndRemoval(self) -> Generator[Any, Any, None]:
        """
        A toxic counts as a fault under its type; a backend that refuses
        counts as a failure; a deleted proxy's series disappear.
        """
        status, proxy = yield self.control.json("POST", "/proxies", {
            "name": "dead", "upstream": "127.0.0.1:{}".format(freePort())})
        self.assertEqual(status, 201)
        yield self.control.json("POST", "/proxies/dead/toxics", {
            "type": "latency", "attributes": {"latency": 1}})
        client = yield pinger(self, int(proxy["listen"].rsplit(":", 1)[1]))
        yield client.closed
        yield self.idle("dead")
        samples = yield self.scrape()
        dead = (("proxy", "dead"),)
        self.assertEqual(samples[("txvaurien_proxy_backend_connect_failures_total", dead)], 1)
        self.assertEqual(samples[("txvaurien_proxy_faults_total",
                                  (("behavior", "latency"),) + dead)], 1)
        self.assertEqual(samples[("txvaurien_proxy_toxics", dead)], 1)
        self.assertEqual(samples[("txvaurien_proxy_enabled", dead)], 1)
        yield self.control.json("PATCH", "/proxies/dead", {"enabled": False})
        samples = yield self.scrape()
        self.assertEqual(samples[("txvaurien_proxy_enabled", dead)], 0)
        yield self.control.request("DELETE", "/proxies/dead")
        samples = yield self.scrape()
        self.assertEqual([key for key in samples if ("proxy", "dead") in key[1]], [])
        self.assertIn(("txvaurien_proxy_enabled", (("proxy", "vaurien"),)), samples)


class LatencyHistogramTests(MetricsTestCase):
    """
    The request latency histogram, for a protocol that frames requests.
    """

    argv = ["--protocol", "lines", "--behavior", "delay", "--behavior-delay-sleep", "0.1"]

    @defer.inlineCallbacks
    def test_histogram(self) -> Generator[Any, Any, None]:
        """
        Each request's time through the proxy is observed once, with the
        delay behavior's 0.1 s in it.
        """
        client = yield lineAsker(self, self.control.proxyPort())
        for line in [b"a", b"b", b"c"]:
            answer = yield client.ask(line)
            self.assertEqual(answer, line)
        samples = yield self.scrape()
        proxy = (("proxy", "vaurien"),)
        self.assertEqual(samples[("txvaurien_request_latency_seconds_count", proxy)], 3)
        self.assertGreaterEqual(samples[("txvaurien_request_latency_seconds_sum", proxy)], 0.3)
        self.assertEqual(samples[("txvaurien_request_latency_seconds_bucket",
                                  (("le", "0.05"),) + proxy)], 0)
        self.assertEqual(samples[("txvaurien_request_latency_seconds_bucket",
                                  (("le", "+Inf"),) + proxy)], 3)
