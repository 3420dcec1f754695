"""
Logging for txvaurien: L{twisted.logger} events with structured fields.

Every logger in the package sends its events through L{observer}, which
drops those below the level chosen with C{--log-level} (L{setLevel}) and
passes the rest to Twisted's global log publisher.  Code that emits many
debug events (per request decisions) asks L{isEnabled} first, so a quiet
proxy pays nothing for them.
"""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    globalLogPublisher,
)

LEVELS = ("debug", "info", "warn", "error", "critical")

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_level = LogLevel.info

observer = FilteringLogObserver(globalLogPublisher, [_predicate])


def logger(namespace: str | None = None) -> Logger:
    """
    A L{Logger} whose events go through txvaurien's level filter.
    """
    return Logger(namespace=namespace, observer=observer)


def setLevel(name: str) -> None:
    """
    Emit only events at level C{name} (one of L{LEVELS}) or above.

    @raise ValueError: for an unknown level name.
    """
    global _level
    level = LogLevel.levelWithName(name)
    _level = level
    _predicate.setLogLevelForNamespace("txvaurien", level)


def isEnabled(level: LogLevel) -> bool:
    """
    Whether an event at C{level} would be emitted.
    """
    return level >= _level
