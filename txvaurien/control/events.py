# -*- test-case-name: txvaurien.test.test_journal_integration -*-
"""
The fault journal on the control port (Vaurien API family):

  - C{GET /events?since=CURSOR&limit=N}: C{{"events": [...], "cursor":
    NEXT}} from the journal's ring in memory; ask again with C{since=NEXT}
    for what came after.  Events the ring dropped are skipped (compare
    each event's C{cursor} with the one asked for to see a gap).
  - C{GET /events/stream}: the same events as Server-Sent Events (one
    C{event: fault} per event, its C{id} the cursor), from now on, or from
    C{since=CURSOR} (or a C{Last-Event-ID} header) for what the ring still
    holds.  A client too slow to read (over L{STREAM_BACKLOG} bytes queued)
    is disconnected rather than buffered without bound.

Every managed proxy records into the same L{Journal}, and
C{txvaurien_journal_events_total{proxy,behavior}} in C{/metrics}
counts what it recorded, so the two agree.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from txvaurien import logs
from txvaurien.control.resource import (
    VAURIEN,
    Reply,
    Route,
    countArgument,
    limitArgument,
    queryArgument,
    vaurienReply,
)
from txvaurien.journal import Journal, encode

_log = logs.logger("txvaurien.control")

#: Bytes an event stream may have queued before its client is dropped.
STREAM_BACKLOG = 1024 * 1024

#: The most events one C{GET /events} returns.
MAX_LIMIT = 10000


class JournalCollector:
    """
    The journal's counts as a Prometheus counter.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "txvaurien_journal_events",
            "Fault journal events recorded, by proxy and behavior",
            labels=["proxy", "behavior"])
        totals: dict[tuple[str, str], int] = {}
        for (proxy, behavior, _), count in self.journal.counts.items():
            totals[proxy, behavior] = totals.get((proxy, behavior), 0) + count
        for (proxy, behavior), count in sorted(totals.items()):
            events.add_metric([proxy, behavior], count)
        return iter([events])


class EventsAPI:
    """
    C{/events} and C{/events/stream}; a listener of the manager, so every
    proxy records into L{journal}.

    @ivar journal: the L{Journal}: the manager's C{journal} if it has one,
        else a new one on the manager's reactor.
    """

    def __init__(self, manager: Any, metrics: Any = None) -> None:
        self.manager = manager
        journal = getattr(manager, "journal", None)
        if journal is None:
            journal = manager.journal = Journal(manager.defaults.reactor)
        self.journal: Journal = journal
        for proxy in list(manager.proxies.values()):
            self.proxyAdded(proxy)
        manager.listeners.append(self)
        if metrics is not None:
            metrics.registry.register(JournalCollector(journal))

    def proxyAdded(self, proxy: Any) -> None:
        proxy.factory.journal = self.journal

    def proxyRemoved(self, proxy: Any) -> None:
        pass

    def routes(self) -> list[Route]:
        return [
            Route("/events", VAURIEN, {"GET": self.events}),
            Route("/events/stream", VAURIEN, {"GET": self.stream}),
        ]

    def events(self, request: Any) -> Reply:
        since = countArgument(queryArgument(request, "since"), "since", 0)
        limit = limitArgument(request, 1000, MAX_LIMIT)
        events, cursor = self.journal.since(since, limit)
        return vaurienReply({"events": events, "cursor": cursor})

    def stream(self, request: Any) -> Deferred:
        last = request.getHeader(b"last-event-id")
        since = countArgument(
            queryArgument(request, "since")
            or (last.decode("ascii", "replace") if last else None),
            "since", self.journal.cursor)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b": txvaurien fault journal\n\n")
        journal = self.journal
        transport = request.channel.transport if request.channel else None
        backlog = _Backlog()
        request.registerProducer(backlog, True)

        def send(event: dict[str, Any]) -> None:
            data = "id: {}\nevent: fault\ndata: {}\n\n".format(
                event["cursor"], encode(event)).encode("utf-8")
            if backlog.paused:
                backlog.held += len(data)
                if backlog.held > STREAM_BACKLOG:
                    _log.warn("event stream client too slow: dropped")
                    journal.unsubscribe(send)
                    if transport is not None:
                        transport.abortConnection()
                    return
            request.write(data)

        while since < journal.cursor:
            replay, since = journal.since(since, MAX_LIMIT)
            if not replay:
                break
            for event in replay:
                send(event)
        journal.subscribe(send)
        request.notifyFinish().addBoth(lambda _: journal.unsubscribe(send))
        # Never fires: the stream lasts until the client goes.
        return Deferred()


@implementer(IPushProducer)
class _Backlog:
    """
    The event stream's producer, registered on its request: the transport
    pauses it when its write buffer is full, and what is written while
    paused is counted, so that a client that stops reading is noticed
    through the public transport API, TLS or not.
    """

    def __init__(self) -> None:
        self.paused = False
        self.held = 0

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.held = 0

    def stopProducing(self) -> None:
        self.paused = True
