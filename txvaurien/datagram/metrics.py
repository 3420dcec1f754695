# -*- test-case-name: txvaurien.test.test_datagram_control -*-
"""
Prometheus metrics of the UDP proxies a control server manages, read
when scraped (the data path only increments integers):

  - C{txvaurien_udp_datagrams_total{proxy,direction,outcome}}: datagrams
    C{received}, C{sent}, C{dropped} (by a fault), C{oversize} and
    C{malformed}, per direction (C{upstream}: from clients);
  - C{txvaurien_udp_sessions_active{proxy}},
    C{txvaurien_udp_sessions_opened_total{proxy}},
    C{txvaurien_udp_sessions_refused_total{proxy}} (datagrams of new
    clients dropped at the session bound);
  - C{txvaurien_udp_backend_unreachable_total{proxy}} (ICMP unreachable).

The control server registers a L{DatagramCollector} next to its own
collector: C{registry.register(DatagramCollector(manager))}.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from txvaurien.datagram.proxy import DatagramProxy

OUTCOMES = ("received", "sent", "dropped", "oversize", "malformed")


class DatagramCollector:
    """
    Reads the counters of every managed UDP proxy when scraped.

    @ivar manager: the L{txvaurien.control.manager.ProxyManager}.
    """

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        datagrams = CounterMetricFamily(
            "txvaurien_udp_datagrams",
            "UDP datagrams by direction (upstream: from clients) and outcome",
            labels=["proxy", "direction", "outcome"])
        active = GaugeMetricFamily(
            "txvaurien_udp_sessions_active", "UDP client sessions open now",
            labels=["proxy"])
        opened = CounterMetricFamily(
            "txvaurien_udp_sessions_opened", "UDP client sessions opened",
            labels=["proxy"])
        refused = CounterMetricFamily(
            "txvaurien_udp_sessions_refused",
            "Datagrams of new clients dropped at the session bound", labels=["proxy"])
        unreachable = CounterMetricFamily(
            "txvaurien_udp_backend_unreachable",
            "ICMP unreachable errors from the backend", labels=["proxy"])
        for name in sorted(self.manager.proxies):
            factory = self.manager.proxies[name].factory
            if not isinstance(factory, DatagramProxy):
                continue
            counters = factory.counters()
            for outcome in OUTCOMES:
                for direction in ("upstream", "downstream"):
                    datagrams.add_metric(
                        [name, direction, outcome], counters[outcome].get(direction, 0))
            active.add_metric([name], counters["sessions_active"])
            opened.add_metric([name], counters["sessions_opened"])
            refused.add_metric([name], counters["sessions_refused"])
            unreachable.add_metric([name], counters["unreachable"])
        return iter([datagrams, active, opened, refused, unreachable])


__all__ = ["DatagramCollector", "OUTCOMES"]
