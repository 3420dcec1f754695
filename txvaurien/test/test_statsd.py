"""
Tests for L{txvaurien.statsd}: metrics sent to a real UDP statsd listener,
and Vaurien's INI settings (C{[statsd]}, C{stay_connected}, ...).
"""

from __future__ import annotations

from typing import Any, Generator

from twisted.internet import defer, reactor, threads
from twisted.internet.protocol import DatagramProtocol
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted.logger import formatEvent, globalLogPublisher

from txvaurien import inifile, logs, statsd, tap
from txvaurien.test.controlhelpers import echoServer, roundTrip
from txvaurien.test.helpers import testRegistry

Options = tap.buildOptions(testRegistry())


class LineTests(SynchronousTestCase):
    """
    What changed between two readings becomes statsd lines and datagrams.
    """

    def test_countersSendTheirIncrease(self) -> None:
        """
        Counters are sent as their increase since the last reading (nothing
        when unchanged), gauges as their value when it changed.
        """
        before = {("p", "bytes", "upstream"): (10.0, "c"),
                  ("p", "connections.active"): (1.0, "g")}
        after = {("p", "bytes", "upstream"): (25.0, "c"),
                 ("p", "connections.active"): (1.0, "g"),
                 ("p", "behavior", "delay"): (2.0, "c")}
        self.assertEqual(statsd.lines("vaurien", before, after), [
            "vaurien.p.behavior.delay:2|c", "vaurien.p.bytes.upstream:15|c"])
        self.assertEqual(statsd.lines("x", {}, {("p", "connections.active"): (0.0, "g")}),
                         ["x.p.connections.active:0|g"])

    def test_datagramsAreBounded(self) -> None:
        """
        Lines are packed one per newline into datagrams no larger than the
        limit.
        """
        found = ["a.b:{}|c".format(i) for i in range(300)]
        packets = statsd.datagrams(found, limit=100)
        self.assertTrue(all(len(p) <= 100 for p in packets))
        self.assertEqual(b"\n".join(packets).split(b"\n"), [f.encode() for f in found])


class _Collector(DatagramProtocol):
    """
    A statsd server: collects the lines it receives; C{waitFor(text)}
    fires once a line starting with C{text} has arrived.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.waiting: list[tuple[str, defer.Deferred]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if data:
            self.lines.extend(data.decode("ascii").split("\n"))
        for prefix, d in list(self.waiting):
            if any(line.startswith(prefix) for line in self.lines):
                self.waiting.remove((prefix, d))
                d.callback(None)

    def waitFor(self, prefix: str) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append((prefix, d))
        self.datagramReceived(b"", None)
        return d.addTimeout(20, reactor)


class StatsdTests(TestCase):
    """
    C{--statsd} sends a proxy's counters to a statsd server over UDP.
    """

    timeout = 60

    def start(self, *argv: str) -> tuple[int, _Collector]:
        collector = _Collector()
        udp = reactor.listenUDP(0, collector, interface="127.0.0.1")
        self.addCleanup(udp.stopListening)
        backend = echoServer(self)
        options = Options()
        options.parseOptions([
            "--backend", "127.0.0.1:{}".format(backend), "--proxy", "tcp:0:interface=127.0.0.1",
            "--statsd", "--statsd-port", str(udp.getHost().port), "--statsd-interval", "20ms",
            "--shutdown-grace", "0", "--log-level", "warn", *argv])
        service = tap.makeService(options, reactor)
        self.addCleanup(logs.setLevel, "info")
        service.startService()
        self.addCleanup(service.stopService)
        port = service.getServiceNamed("proxy").ports[0].getHost().port
        return port, collector

    @defer.inlineCallbacks
    def test_connectionsBytesAndBehaviors(self) -> Generator[Any, Any, None]:
        """
        After one echo exchange through the proxy, statsd receives the
        opened and closed connection, the bytes each way and the behavior
        chosen, under the prefix and the proxy's name.
        """
        port, collector = self.start("--statsd-prefix", "chaos", "--behavior", "100:slowdown",
                                     "--behavior-slowdown-seconds", "0")
        yield threads.deferToThread(roundTrip, port, b"hello\n")
        yield collector.waitFor("chaos.vaurien.connections.closed:1|c")
        self.assertIn("chaos.vaurien.connections.opened:1|c", collector.lines)
        self.assertIn("chaos.vaurien.bytes.upstream:6|c", collector.lines)
        self.assertIn("chaos.vaurien.bytes.downstream:6|c", collector.lines)
        self.assertIn("chaos.vaurien.behavior.slowdown:1|c", collector.lines)
        self.assertFalse([line for line in collector.lines if line.count(":") != 1], collector.lines)

    @defer.inlineCallbacks
    def test_withControlServer(self) -> Generator[Any, Any, None]:
        """
        With C{--http}, the proxies of the control plane are read.
        """
        port, collector = self.start("--http", "--http-port", "0")
        yield threads.deferToThread(roundTrip, port, b"x\n")
        yield collector.waitFor("vaurien.vaurien.connections.closed:1|c")


class VaurienKeyTests(SynchronousTestCase):
    """
    L{inifile.vaurienValues} maps Vaurien's keys.
    """

    def test_backlogMapsToTheBacklogOption(self) -> None:
        """
        C{backlog} sets the C{backlog} option where it is declared, and is
        noted as unsupported (not refused) where it is not.
        """
        known = {"backend", "backlog"}
        self.assertEqual(inifile.vaurienValues("vaurien", {"backlog": "512"}, known),
                         ({"backlog": "512"}, []))
        values, notes = inifile.vaurienValues("vaurien", {"backlog": "512"}, {"backend"})
        self.assertEqual((values, [key for key, _ in notes]), ({}, ["backlog"]))

    def test_unknownKeysRefused(self) -> None:
        """
        A key that is neither an option nor Vaurien's is refused, naming
        the section and the known keys.
        """
        with self.assertRaises(inifile.INIError) as caught:
            inifile.vaurienValues("statsd", {"hots": "x"}, {"statsd_host"})
        self.assertEqual(str(caught.exception), "[statsd]: unknown key 'hots'; known: "
                                                "enabled, host, port, prefix, sample_rate")


class VaurienSettingsTests(SynchronousTestCase):
    """
    Vaurien's remaining INI settings are accepted: each sets an option or
    is noted, in one log line, as not needed.
    """

    def parse(self, text: str) -> tuple[Any, list[str]]:
        path = FilePath(self.mktemp())
        path.setContent(text.encode("utf-8"))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        options = Options()
        options.parseOptions(["--config", path.path])
        return options, [formatEvent(e) for e in events
                         if e.get("log_namespace") == "txvaurien.config"]

    def test_vaurienFileAccepted(self) -> None:
        """
        A Vaurien INI file with C{stay_connected}, C{bufsize},
        C{pool_max_size}, C{pool_timeout}, C{sync} and a C{[statsd]}
        section is accepted: statsd's keys set the statsd options, and
        every other setting is noted once, in one line, with why.
        """
        options, notes = self.parse(
            "[vaurien]\nbackend = 127.0.0.1:6379\nproxy = 127.0.0.1:8000\n"
            "stay_connected = 1\nbufsize = 8192\npool_max_size = 100\n"
            "pool_timeout = 30\nsync = false\nasync_mode = true\n"
            "[statsd]\nenabled = true\nhost = 127.0.0.2\nport = 9125\nprefix = chaos\n"
            "sample_rate = 0.5\n")
        self.assertEqual((options["statsd"], options["statsd_host"], options["statsd_port"],
                          options["statsd_prefix"]), (True, "127.0.0.2", 9125, "chaos"))
        for key in ("stay_connected", "bufsize", "pool_max_size", "pool_timeout", "sync",
                    "async_mode", "sample_rate"):
            [note] = [n for n in notes if " {}: ".format(key) in n]
            self.assertIn("not needed", note)
            self.assertNotIn("\n", note)

    def test_flattenedStatsdKeys(self) -> None:
        """
        Vaurien's flattened C{statsd.host} spelling in C{[vaurien]} works
        too; an unknown key is still refused with the file and section.
        """
        options, _ = self.parse("[vaurien]\nbackend = h:1\nstatsd.enabled = true\n"
                                "statsd.port = 9999\n")
        self.assertEqual((options["statsd"], options["statsd_port"]), (True, 9999))
        self.assertRaises(tap.usage.UsageError, self.parse,
                          "[vaurien]\nbackend = h:1\nbuffsize = 1\n")
