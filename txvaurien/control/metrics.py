# -*- test-case-name: txvaurien.test.test_control_metrics -*-
"""
Prometheus metrics of every proxy, served as text by C{GET /metrics}.

Counters are read from the proxies when scraped, so they are live: bytes
of connections still open count, not only those of finished ones (each
read adds to its proxy's total, so a scrape costs nothing per live
connection).  Labels are bounded: the proxy's name, the direction, the
behavior's name, never anything per connection.

  - C{txvaurien_proxy_bytes_total{proxy,direction}}: bytes read from the
    client (C{upstream}) and from the backend (C{downstream});
  - C{txvaurien_proxy_connections_opened_total{proxy}},
    C{txvaurien_proxy_connections_closed_total{proxy}},
    C{txvaurien_proxy_connections_active{proxy}};
  - C{txvaurien_proxy_faults_total{proxy,behavior}}: times a behavior was
    chosen and acted (toxicity drawn);
  - C{txvaurien_proxy_backend_connect_failures_total{proxy}};
  - C{txvaurien_proxy_enabled{proxy}}, C{txvaurien_proxy_toxics{proxy}};
  - C{txvaurien_request_latency_seconds{proxy}}: a histogram of the time
    from a request's first bytes to the end of its response leaving the
    proxy, for protocols that frame requests;
  - the process's own metrics (C{process_*}).
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from txvaurien.control.managed import ManagedProxy
from txvaurien.control.manager import ProxyManager


class ProxyCollector:
    """
    Reads every managed proxy's counters when scraped.
    """

    def __init__(self, manager: ProxyManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        labels = ["proxy"]
        sent = CounterMetricFamily(
            "txvaurien_proxy_bytes",
            "Bytes read from the client (upstream) or the backend (downstream)",
            labels=["proxy", "direction"])
        opened = CounterMetricFamily(
            "txvaurien_proxy_connections_opened", "Client connections accepted",
            labels=labels)
        closed = CounterMetricFamily(
            "txvaurien_proxy_connections_closed", "Client connections finished",
            labels=labels)
        active = GaugeMetricFamily(
            "txvaurien_proxy_connections_active", "Client connections open now",
            labels=labels)
        faults = CounterMetricFamily(
            "txvaurien_proxy_faults",
            "Times a behavior was chosen for a connection or request and acted",
            labels=["proxy", "behavior"])
        failures = CounterMetricFamily(
            "txvaurien_proxy_backend_connect_failures",
            "Backend connections that could not be made", labels=labels)
        enabled = GaugeMetricFamily(
            "txvaurien_proxy_enabled", "1 if the proxy listens, 0 if disabled",
            labels=labels)
        toxics = GaugeMetricFamily(
            "txvaurien_proxy_toxics", "Toxics on the proxy", labels=labels)
        for name in sorted(self.manager.proxies):
            proxy = self.manager.proxies[name]
            factory = proxy.factory
            live = len(factory.connections)
            sent.add_metric([name, "upstream"], factory.bytesUp)
            sent.add_metric([name, "downstream"], factory.bytesDown)
            opened.add_metric([name], factory.accepted)
            closed.add_metric([name], factory.accepted - live)
            active.add_metric([name], live)
            for behavior in sorted(factory.decisions):
                faults.add_metric([name, behavior], factory.decisions[behavior])
            failures.add_metric([name], factory.backendFailures)
            enabled.add_metric([name], 1 if proxy.enabled else 0)
            toxics.add_metric([name], len(proxy.toxics))
        return iter([sent, opened, closed, active, faults, failures, enabled, toxics])


class Metrics:
    """
    The metrics registry of one control server; a listener of its
    L{ProxyManager}, so each proxy's latency observations reach the
    histogram.

    @ivar registry: the L{CollectorRegistry}.
    @ivar latency: the request latency L{Histogram}.
    """

    def __init__(self, manager: ProxyManager) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(ProxyCollector(manager))
        from txvaurien.datagram.metrics import DatagramCollector
        from txvaurien.tls.metrics import METRICS as TLS_METRICS

        self.registry.register(DatagramCollector(manager))
        self.registry.register(TLS_METRICS)
        ProcessCollector(registry=self.registry)
        self.latency = Histogram(
            "txvaurien_request_latency_seconds",
            "Time from a request's first bytes to the end of its response",
            ["proxy"], registry=self.registry)
        self._observers: dict[int, Any] = {}
        for proxy in list(manager.proxies.values()):
            self.proxyAdded(proxy)
        manager.listeners.append(self)

    def proxyAdded(self, proxy: ManagedProxy) -> None:
        child = self.latency.labels(proxy.name)

        def observe(connection: Any, request: Any, seconds: float) -> None:
            child.observe(seconds)

        self._observers[id(proxy)] = observe
        proxy.factory.latencyObservers.append(observe)

    def proxyRemoved(self, proxy: ManagedProxy) -> None:
        observe = self._observers.pop(id(proxy), None)
        if observe is not None and observe in proxy.factory.latencyObservers:
            proxy.factory.latencyObservers.remove(observe)
        try:
            self.latency.remove(proxy.name)
        except KeyError:
            pass

    def render(self) -> tuple[bytes, str]:
        """
        The text exposition format and its content type.
        """
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
