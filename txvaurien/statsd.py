# -*- test-case-name: txvaurien.test.test_statsd -*-
"""
Metrics sent to statsd over UDP, as Vaurien sent them (C{--statsd}, or a
Vaurien INI file's C{[statsd]} section).

Every second (C{--statsd-interval}) the counters of every proxy are read
from the same place as C{GET /metrics} (L{txvaurien.control.metrics.ProxyCollector}),
and what changed is sent as plain statsd lines in one datagram::

    vaurien.NAME.connections.opened:3|c
    vaurien.NAME.connections.closed:2|c
    vaurien.NAME.connections.active:1|g
    vaurien.NAME.bytes.upstream:1200|c
    vaurien.NAME.bytes.downstream:56000|c
    vaurien.NAME.behavior.delay:1|c
    vaurien.NAME.backend_failures:1|c

C{NAME} is the proxy's name (C{vaurien} for the one C{--backend}
describes).  Unlike Vaurien's, names never contain a per-connection id,
so the number of statsd series stays bounded.  Sending never blocks the
reactor and a lost datagram is lost (UDP); an unreachable statsd is
logged once.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Iterable

from twisted.application.service import Service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from txvaurien import logs
from txvaurien.options import Duration, Number

_log = logs.logger("txvaurien.statsd")

#: The statsd options, declared once; L{txvaurien.tap} adds them to its
#: core options (C{--statsd}, C{--statsd-host}, ...; INI keys
#: C{statsd_host} ... in C{[vaurien]}, or Vaurien's C{[statsd]} section).
OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "statsd": ("Send metrics to statsd over UDP, as Vaurien did", bool, False),
    "statsd_host": ("Host of the statsd server", str, "127.0.0.1"),
    "statsd_port": ("UDP port of the statsd server", Number(int, 1, 65535), 8125),
    "statsd_prefix": ("Prefix of every statsd metric name", str, "vaurien"),
    "statsd_interval": (
        "Time between two sends of the counters to statsd",
        Duration("s", 0, exclusiveMinimum=True),
        1.0,
    ),
}

#: The largest datagram sent; more lines go in further datagrams.
MAX_DATAGRAM = 1400

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def _safe(name: str) -> str:
    """
    A metric name component: statsd separators (C{.:|@}) and spaces become
    C{_}.
    """
    return _UNSAFE.sub("_", name)


def _samples(collector: Any) -> dict[tuple[str, ...], tuple[float, str]]:
    """
    Read a L{ProxyCollector} into metric path to C{(value, statsd type)}.
    """
    names = {
        "txvaurien_proxy_bytes": ("bytes", "c"),
        "txvaurien_proxy_connections_opened": ("connections.opened", "c"),
        "txvaurien_proxy_connections_closed": ("connections.closed", "c"),
        "txvaurien_proxy_connections_active": ("connections.active", "g"),
        "txvaurien_proxy_faults": ("behavior", "c"),
        "txvaurien_proxy_backend_connect_failures": ("backend_failures", "c"),
    }
    found: dict[tuple[str, ...], tuple[float, str]] = {}
    for family in collector.collect():
        for sample in family.samples:
            base = sample.name
            if base.endswith("_total"):
                base = base[: -len("_total")]
            if base not in names:
                continue
            path, kind = names[base]
            labels = sample.labels
            key: tuple[str, ...] = (_safe(labels["proxy"]), path)
            if "direction" in labels:
                key += (_safe(labels["direction"]),)
            if "behavior" in labels:
                key += (_safe(labels["behavior"]),)
            found[key] = (sample.value, kind)
    return found


def lines(prefix: str, previous: dict[tuple[str, ...], tuple[float, str]],
          current: dict[tuple[str, ...], tuple[float, str]]) -> list[str]:
    """
    The statsd lines for what changed between two readings: counters as
    their increase, gauges as their value when it changed.
    """
    result = []
    for key in sorted(current):
        value, kind = current[key]
        before = previous.get(key, (0.0, kind))[0]
        name = ".".join((prefix,) + key) if prefix else ".".join(key)
        if kind == "c":
            delta = value - before
            if delta > 0:
                result.append("{}:{:g}|c".format(name, delta))
        elif key not in previous or value != before:
            result.append("{}:{:g}|g".format(name, value))
    return result


def datagrams(found: Iterable[str], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """
    Pack lines into datagrams of at most C{limit} bytes, one line per
    newline as statsd reads them.
    """
    packets: list[bytes] = []
    current = b""
    for line in found:
        data = line.encode("ascii", "replace")
        if current and len(current) + 1 + len(data) > limit:
            packets.append(current)
            current = b""
        current = current + b"\n" + data if current else data
    if current:
        packets.append(current)
    return packets


class _Sender(DatagramProtocol):
    """
    Writes datagrams to the statsd server; a refused one is logged once.
    """

    def __init__(self) -> None:
        self.warned = False

    def connectionRefused(self) -> None:
        if not self.warned:
            self.warned = True
            _log.warn("statsd server refused a metrics datagram (is it running?)")


class StatsdService(Service):
    """
    Sends the counters of the proxies it is given to statsd, every
    C{interval} seconds, from the reactor.

    @ivar proxies: a callable returning an object with a C{proxies}
        mapping of name to an object with a C{factory} (a
        L{txvaurien.control.manager.ProxyManager}, or L{single}).
    """

    name = "statsd"

    def __init__(self, reactor: Any, proxies: Any, host: str, port: int,
                 prefix: str = "vaurien", interval: float = 1.0) -> None:
        self.reactor = reactor
        self.proxies = proxies
        self.host = host
        self.port = port
        self.prefix = ".".join(_safe(part) for part in prefix.split(".") if part)
        self.interval = interval
        self.address: tuple[str, int] | None = None
        self.sender = _Sender()
        self._udp: Any = None
        self._loop: LoopingCall | None = None
        self._last: dict[tuple[str, ...], tuple[float, str]] = {}

    def startService(self) -> None:
        Service.startService(self)
        interface = "::" if isIPv6Address(self.host) else ""
        self._udp = self.reactor.listenUDP(0, self.sender, interface=interface)
        if isIPAddress(self.host) or isIPv6Address(self.host):
            self._resolved(self.host)
        else:
            d = self.reactor.resolve(self.host)
            d.addCallbacks(self._resolved, self._unresolved)

    def _resolved(self, address: str) -> None:
        if not self.running:
            return
        self.address = (address, self.port)
        _log.info("Sending metrics to statsd at {host}:{port} every {interval}s "
                  "(prefix {prefix})", host=self.host, port=self.port,
                  interval=self.interval, prefix=self.prefix)
        self._loop = LoopingCall(self.flush)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def _unresolved(self, failure: Any) -> None:
        _log.error("Cannot send metrics to statsd: cannot resolve {host}: {why}",
                   host=self.host, why=failure.getErrorMessage())

    def flush(self) -> int:
        """
        Send what changed since the last flush.

        @return: the number of datagrams sent.
        """
        from txvaurien.control.metrics import ProxyCollector

        if self.address is None or self._udp is None:
            return 0
        current = _samples(ProxyCollector(self.proxies()))
        packets = datagrams(lines(self.prefix, self._last, current))
        self._last = current
        for packet in packets:
            self._udp.write(packet, self.address)
        return len(packets)

    def stopService(self) -> Any:
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
            self.flush()
        self._loop = None
        udp, self._udp = self._udp, None
        if udp is not None:
            return udp.stopListening()
        return None


def single(name: str, factory: Any) -> Any:
    """
    The C{proxies} view of one proxy without a proxy manager (no
    C{--http}): what L{txvaurien.control.metrics.ProxyCollector} reads.
    """
    proxy = SimpleNamespace(factory=factory, enabled=True, toxics=())
    return SimpleNamespace(proxies={name: proxy})


def attach(config: Any, parent: Any, reactor: Any) -> StatsdService | None:
    """
    Add a L{StatsdService} to C{parent} (the service tree C{twistd
    vaurien} made) if C{--statsd} was given: it reads the proxy manager's
    proxies (C{proxies} service), or else the single proxy (C{proxy}
    service).

    @return: the service, or L{None} without C{--statsd}.
    """
    if not config.get("statsd"):
        return None
    named = {service.name: service for service in parent}

    def proxies() -> Any:
        if "proxies" in named:
            return named["proxies"]
        return single("vaurien", named["proxy"].factory)

    service = StatsdService(
        reactor, proxies, config["statsd_host"], config["statsd_port"],
        config["statsd_prefix"], config["statsd_interval"])
    service.setServiceParent(parent)
    return service
