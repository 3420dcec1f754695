# -*- test-case-name: txvaurien.test.test_gcpolicy -*-
"""
When the cyclic garbage collector may stop the reactor.

CPython's collector runs a full collection when enough allocations have
survived, and a full collection walks every tracked object: with 10,000
live connections that is a pause of 100-500 ms, at a moment traffic
decides (a table change that rebuilds every connection's faults triggers
one after a pass or two).  Reference counting frees everything that is not
in a cycle, so the proxy does not need full collections often.

L{CollectorService} makes them regular instead: at start it moves what
exists (modules, configuration) out of the collector's sight
(C{gc.freeze}), keeps the young generations collecting as usual, and runs
the full collection every C{interval} seconds on the reactor, logging how
long it took.  Cycles that become garbage between two runs wait for the
next; C{interval=None} keeps Python's own policy.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from txvaurien import logs

_log = logs.logger("txvaurien.gcpolicy")

#: Seconds between full collections, by default.
INTERVAL = 300.0

#: The third threshold while the service runs: so many collections of the
#: middle generation that allocation alone never triggers a full one.
NEVER = 10 ** 9


class CollectorService(Service):
    """
    Runs the collector's full collections on a timer (see the module).

    @ivar collections: how many full collections it ran.
    @ivar lastPause: how long the last one took, in seconds.
    """

    name = "gc"

    def __init__(self, reactor: Any, interval: float | None = INTERVAL) -> None:
        self.reactor = reactor
        self.interval = interval
        self.collections = 0
        self.lastPause = 0.0
        self._saved: tuple[int, int, int] | None = None
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        Service.startService(self)
        if not self.interval:
            return
        gc.collect()
        gc.freeze()
        self._saved = gc.get_threshold()
        first, second, _ = self._saved
        gc.set_threshold(first, second, NEVER)
        self._loop = LoopingCall(self.collect)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def collect(self) -> int:
        """
        Run one full collection now.

        @return: how many unreachable objects it found.
        """
        started = time.perf_counter()
        found = gc.collect()
        self.lastPause = time.perf_counter() - started
        self.collections += 1
        _log.debug(
            "full garbage collection: {found} unreachable objects in {ms:.1f} ms",
            found=found,
            ms=self.lastPause * 1000,
            event="gc",
        )
        return found

    def stopService(self) -> Any:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
            gc.unfreeze()
        return Service.stopService(self)


__all__ = ["CollectorService", "INTERVAL"]
