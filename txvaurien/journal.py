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

from twisted.logger import LogLevel

from txvaurien import logs

_log = logs.logger("txvaurien.journal")

#: Request metadata copied into events, when the framer recorded it.
REQUEST_FIELDS = ("method", "path", "command", "key", "verb")

#: Events kept in memory by default.
DEFAULT_CAPACITY = 10000

#: Default bound of a journal file, in bytes.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

Subscriber = Callable[[dict[str, Any]], None]


class Journal:
    """
    Where events go: a bounded ring in memory, an optional JSON-lines
    file, and subscribers.

    @ivar clock: the L{IReactorTime} whose C{seconds()} stamps events.
    @ivar capacity: how many events the ring keeps.
    @ivar cursor: how many events were ever recorded; the next event's
        cursor.
    @ivar counts: C{(behavior, action)} to how many events.
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
        self.counts: dict[tuple[str, str], int] = {}
        self.path = path
        self.maxBytes = maxBytes
        self.subscribers: list[Subscriber] = []
        self._file: IO[str] | None = None
        self._size = 0
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
        key = (event.get("behavior", ""), event.get("action", ""))
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._file is not None:
            self._write(event)
        for subscriber in list(self.subscribers):
            subscriber(event)
        return event

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        size = len(line.encode("utf-8"))
        file = self._file
        assert file is not None and self.path is not None
        if self._size and self._size + size > self.maxBytes:
            file.close()
            os.replace(self.path, self.path + ".1")
            self._open()
            file = self._file
            assert file is not None
        file.write(line)
        file.flush()
        self._size += size

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
            self._file.close()
            self._file = None


def requestFields(message: Any) -> dict[str, Any]:
    """
    What the framer knows of a request, for an event.
    """
    if message is None:
        return {}
    meta = message.meta
    return {name: meta[name] for name in REQUEST_FIELDS if name in meta}


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
    event["options"] = {k: v for k, v in behavior.settings.items()}
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
    "Journal", "emit", "connectionEvent", "stageEvent", "requestFields",
    "DEFAULT_CAPACITY", "DEFAULT_MAX_BYTES", "REQUEST_FIELDS",
]
