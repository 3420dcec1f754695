"""
The fault journal: one structured event for every decision that changed
traffic.

A fault that acts (delays a frame, answers an error, resets a connection,
drops bytes) calls L{Fault.journal<txvaurien.behaviors.base.Fault.journal>}
with what it did; a behavior acting on a whole connection calls
L{connectionEvent}.  The event is a JSON object::

    {"cursor": 17, "time": 1733481234.250, "proxy": "vaurien",
     "connection": 3, "client": "127.0.0.1", "port": 50412,
     "request": 5, "method": "POST", "path": "/api/orders",
     "behavior": "error", "options": {"codes": [503], ...},
     "direction": "upstream", "action": "answered", "code": 503}

It is logged at info level as one summary line, and, when the proxy has a
L{Journal} (C{--journal FILE}, or the control API's C{/events}), appended
to its bounded in-memory ring, written to the file as a JSON line, and
sent to every subscriber (C{/events/stream}).

The same seed and the same traffic give the same journal, times and
client ports aside.
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import IO, Any, Callable

from twisted.application.service import Service
from twisted.logger import LogLevel

from txvaurien import logs
from txvaurien.options import Number, OptionType

_log = logs.logger("txvaurien.journal")

#: Request metadata copied into events, when the framer recorded it.
REQUEST_FIELDS = ("method", "path", "command", "key", "verb")

#: Events kept in memory by default.
DEFAULT_CAPACITY = 10000

#: Seconds an event may wait before the file is written and flushed.
FLUSH_DELAY = 0.05

#: Events that make the file be written at once.
FLUSH_EVENTS = 256

#: Default bound of a journal file, in bytes.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

Subscriber = Callable[[dict[str, Any]], None]

_lenient = json.JSONEncoder(default=str).encode


def encode(event: dict[str, Any]) -> str:
    """
    One event as one line of JSON, keys in the order they were set (the
    same for the same decisions); a value JSON lacks is written as text.
    """
    try:
        return json.dumps(event)
    except (TypeError, ValueError):
        return _lenient(event)


class WritableFile(OptionType):
    """
    A path to a file that can be created or appended to.
    """

    name = "path"

    def parse(self, text: str) -> str:
        path = text.strip()
        if not path:
            raise ValueError("expected a file path, got an empty one")
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ValueError("{!r} is a directory".format(path))
        if not os.path.isdir(folder):
            raise ValueError("directory {!r} does not exist".format(folder))
        if not os.access(path if os.path.exists(path) else folder, os.W_OK):
            raise ValueError("{!r} is not writable".format(path))
        return path


#: The options of C{twistd vaurien} about the journal, declared once
#: (L{txvaurien.tap} adds them to its core options).
OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "journal": (
        "Write the fault journal to this file (JSON lines, flushed within 50 ms)",
        WritableFile(),
        None,
    ),
    "journal_max_bytes": (
        "Size in bytes at which the journal file is renamed FILE.1 and begun anew",
        Number(int, 1024),
        DEFAULT_MAX_BYTES,
    ),
    "journal_events": (
        "Journal events kept in memory for GET /events",
        Number(int, 1),
        DEFAULT_CAPACITY,
    ),
}


class Journal:
    """
    Where events go: a bounded ring in memory, an optional JSON-lines
    file, and subscribers.

    @ivar clock: the L{IReactorTime} whose C{seconds()} stamps events.
    @ivar capacity: how many events the ring keeps.
    @ivar cursor: how many events were ever recorded; the next event's
        cursor.
    @ivar counts: C{(proxy, behavior, action)} to how many events.
    @ivar path: the file, or L{None}.
    @ivar maxBytes: the bound of the file: past it, the file is renamed
        C{PATH.1} (replacing an older one) and a new one begins.
    """

    def __init__(
        self,
        clock: Any,
        capacity: int = DEFAULT_CAPACITY,
        path: str | None = None,
        maxBytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if capacity < 1:
            raise ValueError("journal capacity must be at least 1, got {}".format(capacity))
        if maxBytes < 1:
            raise ValueError("journal file bound must be at least 1 byte, got {}".format(
                maxBytes))
        self.clock = clock
        self.capacity = capacity
        self.ring: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.cursor = 0
        self.counts: dict[tuple[str, str, str], int] = {}
        self.path = path
        self.maxBytes = maxBytes
        self.subscribers: list[Subscriber] = []
        self._file: IO[str] | None = None
        self._size = 0
        self._pending: list[str] = []
        self._flush: Any = None
        if path is not None:
            self._open()

    def _open(self) -> None:
        assert self.path is not None
        self._file = open(self.path, "a", encoding="utf-8")
        self._size = self._file.tell()

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """
        Stamp an event with its cursor and time, and send it everywhere.

        @return: the event.
        """
        event["cursor"] = self.cursor
        event["time"] = self.clock.seconds()
        self.cursor += 1
        self.ring.append(event)
        key = (event.get("proxy", ""), event.get("behavior", ""), event.get("action", ""))
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if self._file is not None:
            pending = self._pending
            pending.append(encode(event))
            if len(pending) >= FLUSH_EVENTS:
                self.flush()
            elif self._flush is None:
                self._flush = self.clock.callLater(FLUSH_DELAY, self.flush)
        if self.subscribers:
            for subscriber in list(self.subscribers):
                subscriber(event)
        return event

    def flush(self) -> None:
        """
        Write the events recorded since the last flush to the file, and
        flush it: L{FLUSH_DELAY} seconds after the first of them, at once
        when L{FLUSH_EVENTS} wait, and on L{close}; a burst costs one
        write.
        """
        call, self._flush = self._flush, None
        if call is not None and call.active():
            call.cancel()
        pending, self._pending = self._pending, []
        file = self._file
        if file is None or not pending:
            return
        assert self.path is not None
        chunk: list[str] = []
        for line in pending:
            size = len(line.encode("utf-8")) + 1
            if self._size and self._size + size > self.maxBytes:
                file.write("".join(chunk))
                chunk = []
                file.close()
                os.replace(self.path, self.path + ".1")
                self._open()
                file = self._file
                assert file is not None
            chunk.append(line + "\n")
            self._size += size
        file.write("".join(chunk))
        file.flush()

    def since(self, cursor: int = 0, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        """
        The events from C{cursor} on that the ring still holds, at most
        C{limit}, and the cursor to ask for next.
        """
        ring = self.ring
        first = self.cursor - len(ring)
        start = max(cursor, first)
        if start >= self.cursor:
            return [], self.cursor
        events = [ring[i - first] for i in range(start, min(self.cursor, start + limit))]
        return events, start + len(events)

    def subscribe(self, subscriber: Subscriber) -> None:
        """
        Call C{subscriber} with each event recorded from now on.
        """
        self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """
        Stop calling C{subscriber}.
        """
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def close(self) -> None:
        """
        Close the file, if any.
        """
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None


class JournalService(Service):
    """
    Closes a journal's file when the application stops.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def stopService(self) -> Any:
        Service.stopService(self)
        self.journal.close()
        return None


def fromConfig(config: Any, clock: Any, parent: Any) -> Journal | None:
    """
    The journal C{twistd vaurien}'s options ask for: with C{--journal} or
    C{--http}, a L{Journal} (with a file, a L{JournalService} named
    C{journal} in C{parent} closes it on stop); otherwise L{None} (faults
    are only logged).
    """
    path = config.get("journal")
    if path is None and not config.get("http"):
        return None
    journal = Journal(
        clock,
        capacity=config.get("journal_events") or DEFAULT_CAPACITY,
        path=path,
        maxBytes=config.get("journal_max_bytes") or DEFAULT_MAX_BYTES,
    )
    if path is not None:
        service = JournalService(journal)
        service.setName("journal")
        service.setServiceParent(parent)
    return journal


def requestFields(message: Any) -> dict[str, Any]:
    """
    What the framer knows of a request, for an event.
    """
    if message is None:
        return {}
    meta = message.meta
    fields = {}
    for name in REQUEST_FIELDS:
        value = meta.get(name)
        if value is not None:
            fields[name] = value
    return fields


def _client(connection: Any) -> tuple[str | None, int | None]:
    try:
        peer = connection.client.transport.getPeer()
    except AttributeError:
        return None, None
    return getattr(peer, "host", None), getattr(peer, "port", None)


def emit(
    connection: Any,
    behavior: Any,
    direction: str | None,
    message: Any,
    action: str,
    figures: dict[str, Any],
) -> dict[str, Any] | None:
    """
    Log a fault's action at info level and record it in the proxy's
    journal, if it has one (C{proxy.journal}).

    @param message: the request acted on (its response's request for a
        response), or L{None} for the connection as a whole.
    @param figures: what the action measured (C{ms}, C{code}, C{bytes},
        C{rate}, C{duration}); JSON values.
    @return: the event recorded, or L{None} when nothing asked for it.
    """
    proxy = connection.proxy
    journal = getattr(proxy, "journal", None)
    logged = logs.isEnabled(LogLevel.info)
    if journal is None and not logged:
        return None
    if message is not None and message.request is not None:
        message = message.request
    host, port = _client(connection)
    event: dict[str, Any] = {
        "proxy": proxy.name,
        "connection": connection.id,
        "client": host,
        "port": port,
        "request": None if message is None else message.index,
    }
    event.update(requestFields(message))
    event["behavior"] = behavior.name
    event["options"] = dict(behavior.settings)
    event["direction"] = direction
    event["action"] = action
    event.update(figures)
    if logged:
        _log.info(
            "{proxy} #{connection} request {request} {behavior} {direction}: "
            "{action}{figures}",
            proxy=proxy.name,
            connection=connection.id,
            request=event["request"],
            behavior=behavior.name,
            direction=direction,
            action=action,
            figures="".join(" {}={}".format(k, v) for k, v in figures.items()),
            event="fault",
            fault=event,
        )
    if journal is not None:
        return journal.record(event)
    return event


def connectionEvent(behavior: Any, connection: Any, action: str, **figures: Any) -> None:
    """
    Journal what a behavior did to a whole connection (from its
    C{connectionMade}).
    """
    emit(connection, behavior, behavior.settings.get("direction"), None, action, figures)


def stageEvent(stage: Any, action: str, message: Any = None, **figures: Any) -> None:
    """
    Journal what a fault did in its stage.

    @param message: the message acted on, when the stage has none
        (connection scope).
    """
    emit(
        stage.connection,
        stage.behavior,
        stage.direction,
        stage.message if stage.message is not None else message,
        action,
        figures,
    )


__all__ = [
    "Journal", "JournalService", "OPTIONS", "fromConfig", "emit", "connectionEvent",
    "stageEvent", "requestFields",
    "DEFAULT_CAPACITY", "DEFAULT_MAX_BYTES", "REQUEST_FIELDS",
]
