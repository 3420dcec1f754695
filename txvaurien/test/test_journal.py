"""
Tests for L{txvaurien.journal}: the ring, the file, subscribers, the
events faults record, and the C{--journal} options.
"""

from __future__ import annotations

import json
import os
import resource
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txvaurien import journal, tap
from txvaurien.journal import Journal
from txvaurien.table import REQUEST_SCOPE
from txvaurien.test.helpers import Harness


def event(i: int = 0, **kw: Any) -> dict[str, Any]:
    return {"proxy": "p", "behavior": "delay", "action": "delayed", "ms": i, **kw}


class RingTests(SynchronousTestCase):
    """
    The journal in memory.
    """

    def test_eventsStampedWithCursorAndTime(self) -> None:
        """
        Each event gets the next cursor and the clock's time.
        """
        clock = Clock()
        clock.advance(12.5)
        j = Journal(clock)
        first = j.record(event())
        clock.advance(1)
        second = j.record(event())
        self.assertEqual((first["cursor"], first["time"]), (0, 12.5))
        self.assertEqual((second["cursor"], second["time"]), (1, 13.5))

    def test_sinceReturnsWhatFollowsCursor(self) -> None:
        """
        L{Journal.since} gives the events from a cursor on, at most
        C{limit}, and the cursor to ask for next; past the end, nothing.
        """
        j = Journal(Clock())
        for i in range(5):
            j.record(event(i))
        events, cursor = j.since(1, limit=2)
        self.assertEqual(([e["ms"] for e in events], cursor), ([1, 2], 3))
        events, cursor = j.since(3)
        self.assertEqual(([e["ms"] for e in events], cursor), ([3, 4], 5))
        self.assertEqual(j.since(5), ([], 5))
        self.assertEqual(j.since(99), ([], 5))

    def test_ringBoundedSkipsDropped(self) -> None:
        """
        The ring keeps the last C{capacity} events; asking for a cursor it
        dropped gives the oldest it still has.
        """
        j = Journal(Clock(), capacity=3)
        for i in range(10):
            j.record(event(i))
        self.assertEqual(len(j.ring), 3)
        events, cursor = j.since(0)
        self.assertEqual(([e["cursor"] for e in events], cursor), ([7, 8, 9], 10))

    def test_millionEventsMemoryFlat(self) -> None:
        """
        Over one million events, the ring stays at its capacity and the
        process's peak memory grows by less than 8 MiB once the ring is
        full.
        """
        j = Journal(Clock(), capacity=10000)
        for i in range(20000):
            j.record(event(i, path="/api/orders/{}".format(i)))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i in range(1000000):
            j.record(event(i, path="/api/orders/{}".format(i)))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.assertEqual((len(j.ring), j.cursor), (10000, 1020000))
        self.assertLess(after - before, 8 * 1024)

    def test_subscribers(self) -> None:
        """
        Subscribers get each event as it is recorded, until they
        unsubscribe.
        """
        j = Journal(Clock())
        seen: list[dict[str, Any]] = []
        j.subscribe(seen.append)
        j.record(event(1))
        j.unsubscribe(seen.append)
        j.record(event(2))
        self.assertEqual([e["ms"] for e in seen], [1])

    def test_countsByProxyBehaviorAction(self) -> None:
        """
        C{counts} totals events by proxy, behavior and action.
        """
        j = Journal(Clock(), capacity=1)
        for _ in range(3):
            j.record(event())
        j.record(event(action="answered"))
        self.assertEqual(j.counts, {("p", "delay", "delayed"): 3,
                                    ("p", "delay", "answered"): 1})

    def test_badBoundsRefused(self) -> None:
        """
        A capacity or file bound under 1 is refused.
        """
        self.assertRaises(ValueError, Journal, Clock(), 0)
        self.assertRaises(ValueError, Journal, Clock(), 10, None, 0)


class FileTests(SynchronousTestCase):
    """
    The journal file.
    """

    def test_jsonLinesFlushedWithin50ms(self) -> None:
        """
        Each event is one JSON line; events are written and flushed
        together 50 ms after the first of them.
        """
        path = self.mktemp()
        clock = Clock()
        j = Journal(clock, path=path)
        self.addCleanup(j.close)
        j.record(event(5))
        j.record(event(6))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0.049)
        self.assertEqual(os.path.getsize(path), 0)
        clock.advance(0.001)
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual([json.loads(line)["ms"] for line in lines], [5, 6])

    def test_burstWrittenAtOnce(self) -> None:
        """
        When 256 events wait, they are written without waiting for the
        timer.
        """
        path = self.mktemp()
        j = Journal(Clock(), path=path)
        self.addCleanup(j.close)
        for i in range(journal.FLUSH_EVENTS):
            j.record(event(i))
        with open(path) as f:
            self.assertEqual(len(f.read().splitlines()), journal.FLUSH_EVENTS)

    def test_closeFlushes(self) -> None:
        """
        Closing the journal writes what is pending.
        """
        path = self.mktemp()
        j = Journal(Clock(), path=path)
        j.record(event(7))
        j.close()
        with open(path) as f:
            self.assertEqual(json.loads(f.read())["ms"], 7)

    def test_sizeBounded(self) -> None:
        """
        Past its bound, the file becomes C{FILE.1} and a new one begins,
        so at most twice the bound is on disk.
        """
        path = self.mktemp()
        j = Journal(Clock(), path=path, maxBytes=1000)
        self.addCleanup(j.close)
        for i in range(100):
            j.record(event(i))
            if i % 7 == 0:
                j.flush()
        j.flush()
        self.assertLessEqual(os.path.getsize(path), 1000)
        self.assertLessEqual(os.path.getsize(path + ".1"), 1000)
        with open(path) as f:
            last = json.loads(f.read().splitlines()[-1])
        self.assertEqual(last["cursor"], 99)


class FaultEventTests(SynchronousTestCase):
    """
    Faults record what they do.
    """

    def test_errorReplyEvent(self) -> None:
        """
        An error answered in place of a request is one event with the
        connection, client, request number, what the framer knows of the
        request, the behavior and its options, the direction, the action
        and its figures; and one info log line.
        """
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        harness = Harness("100:error", "http", REQUEST_SCOPE, {"error": {"codes": [503]}})
        harness.factory.journal = j = Journal(harness.reactor)
        client, backend = harness.pair()
        client.send(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        (recorded,) = j.ring
        self.assertEqual(
            {k: recorded[k] for k in (
                "proxy", "connection", "client", "request", "method", "path",
                "behavior", "direction", "action", "code")},
            {"proxy": "vaurien", "connection": 0, "client": "127.0.0.1", "request": 0,
             "method": "POST", "path": "/api/x", "behavior": "error",
             "direction": "upstream", "action": "answered", "code": 503})
        self.assertEqual(recorded["options"]["codes"], [503])
        lines = [e for e in logged if e.get("event") == "fault"]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["fault"]["action"], "answered")

    def test_latencyEventPerRequest(self) -> None:
        """
        Latency records the delay drawn for each request, in
        milliseconds, with its command.
        """
        harness = Harness("100:latency", "redis", REQUEST_SCOPE,
                          {"latency": {"latency": 200, "direction": "upstream"}})
        harness.factory.journal = j = Journal(harness.reactor)
        client, backend = harness.pair()
        client.send(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n")
        self.assertEqual(
            [(e["request"], e["command"], e["action"], e["ms"]) for e in j.ring],
            [(0, "GET", "delayed", 200.0), (1, "PING", "delayed", 200.0)])

    def test_connectionEvent(self) -> None:
        """
        A behavior acting on a whole connection (C{blackout} at connect)
        records an event without a request.
        """
        harness = Harness("100:blackout")
        harness.factory.journal = j = Journal(harness.reactor)
        harness.accept()
        (recorded,) = j.ring
        self.assertEqual((recorded["request"], recorded["action"]), (None, "closed"))

    def test_noJournalNoEvent(self) -> None:
        """
        Without a journal and with info logging off, recording costs no
        event.
        """
        from txvaurien import logs

        logs.setLevel("warn")
        self.addCleanup(logs.setLevel, "info")
        harness = Harness("100:blackout")
        connection = harness.accept().protocol.connection
        self.assertIsNone(journal.emit(
            connection, harness.table.behaviors["blackout"], None, None, "closed", {}))


class OptionTests(SynchronousTestCase):
    """
    C{--journal}, C{--journal-max-bytes}, C{--journal-events}.
    """

    def test_journalFile(self) -> None:
        """
        C{--journal FILE} gives the proxy a journal writing to FILE.
        """
        path = self.mktemp()
        config = tap.Options()
        config.parseOptions(["--backend", "127.0.0.1:80", "--journal", path,
                             "--journal-max-bytes", "4096", "--journal-events", "50"])
        service = tap.makeService(config, Clock())
        factory = service.getServiceNamed("proxy").factory
        self.assertEqual((factory.journal.path, factory.journal.maxBytes,
                          factory.journal.capacity), (path, 4096, 50))
        service.getServiceNamed("journal").stopService()

    def test_badJournalPath(self) -> None:
        """
        A journal in a directory that does not exist is a usage error.
        """
        config = tap.Options()
        e = self.assertRaises(usage.UsageError, config.parseOptions, [
            "--backend", "127.0.0.1:80", "--journal", "/nonexistent/dir/j.log"])
        self.assertIn("does not exist", str(e))
