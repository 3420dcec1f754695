# -*- test-case-name: txvaurien.test.test_tls_server -*-
"""
TLS counters: handshakes completed and failed, by side and reason.

One L{TLSMetrics} is shared by the process (L{METRICS}); the contexts of
L{txvaurien.tls.server} and L{txvaurien.tls.client} count into it.  It is
a Prometheus collector: C{registry.register(METRICS)} adds
C{txvaurien_tls_handshakes_total{side}},
C{txvaurien_tls_handshake_failures_total{side,reason}} and
C{txvaurien_tls_certificates_minted_total} to a registry.

Failure reasons are bounded: the TLS alert sent or received, or the
certificate verification error (OpenSSL's short list), never a name or
an address.
"""

from __future__ import annotations

from typing import Any, Iterator

#: TLS alert descriptions (RFC 8446 section 6), by number.
ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}

#: Alert names to numbers.
ALERT_NUMBERS = {name: number for number, name in ALERTS.items()}


class TLSMetrics:
    """
    Handshake counters.

    @ivar handshakes: side (C{"server"}: with clients, C{"client"}: with
        backends) to handshakes completed.
    @ivar failures: C{(side, reason)} to handshakes that failed.
    @ivar minted: certificates minted.
    """

    def __init__(self) -> None:
        self.handshakes: dict[str, int] = {"server": 0, "client": 0}
        self.failures: dict[tuple[str, str], int] = {}
        self.minted = 0

    def handshake(self, side: str) -> None:
        """
        Count a completed handshake.
        """
        self.handshakes[side] = self.handshakes.get(side, 0) + 1

    def failure(self, side: str, reason: str) -> None:
        """
        Count a failed handshake.
        """
        key = (side, reason)
        self.failures[key] = self.failures.get(key, 0) + 1

    def collect(self) -> Iterator[Any]:
        """
        The counters as Prometheus metric families (a collector for
        L{prometheus_client.CollectorRegistry.register}).
        """
        from prometheus_client.core import CounterMetricFamily

        handshakes = CounterMetricFamily(
            "txvaurien_tls_handshakes", "TLS handshakes completed, with clients "
            "(side=server) or with backends (side=client)", labels=["side"])
        for side, count in sorted(self.handshakes.items()):
            handshakes.add_metric([side], count)
        failures = CounterMetricFamily(
            "txvaurien_tls_handshake_failures", "TLS handshakes failed, by side and reason",
            labels=["side", "reason"])
        for (side, reason), count in sorted(self.failures.items()):
            failures.add_metric([side, reason], count)
        minted = CounterMetricFamily(
            "txvaurien_tls_certificates_minted", "Certificates minted on the fly")
        minted.add_metric([], self.minted)
        return iter([handshakes, failures, minted])

    def prometheus(self) -> str:
        """
        The counters in Prometheus' text format.
        """
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import generate_latest

        registry = CollectorRegistry()
        registry.register(self)
        return generate_latest(registry).decode("utf-8")


#: The process's counters.
METRICS = TLSMetrics()

__all__ = ["ALERTS", "ALERT_NUMBERS", "METRICS", "TLSMetrics"]
