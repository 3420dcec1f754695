"""
Tests for L{txvaurien.gcpolicy}.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txvaurien.gcpolicy import NEVER, CollectorService


class Cycle:
    def __init__(self) -> None:
        self.me = self


class CollectorServiceTests(SynchronousTestCase):
    """
    Full collections on a timer.
    """

    def setUp(self) -> None:
        self.threshold = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *self.threshold)
        self.addCleanup(gc.unfreeze)

    def test_fullCollectionsOnTimer(self) -> None:
        """
        While the service runs, allocation never triggers a full
        collection (the third threshold is L{NEVER}); the clock does,
        every C{interval} seconds, and the collection frees cycles.
        """
        clock = Clock()
        service = CollectorService(clock, 10.0)
        service.startService()
        self.assertEqual(gc.get_threshold()[2], NEVER)
        self.assertEqual(gc.get_threshold()[:2], self.threshold[:2])
        Cycle()
        clock.advance(9.9)
        self.assertEqual(service.collections, 0)
        clock.advance(0.1)
        self.assertEqual(service.collections, 1)
        clock.advance(10)
        self.assertEqual(service.collections, 2)
        service.stopService()
        self.assertEqual(gc.get_threshold(), self.threshold)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_collectFindsCycles(self) -> None:
        """
        C{collect} reports the unreachable objects it freed and how long
        it took.
        """
        service = CollectorService(Clock(), 10.0)
        gc.collect()
        for _ in range(10):
            Cycle()
        self.assertTrue(service.collect() >= 10)
        self.assertTrue(service.lastPause >= 0)

    def test_startupObjectsFrozen(self) -> None:
        """
        Starting moves what exists out of the collector's sight; stopping
        gives it back.
        """
        service = CollectorService(Clock(), 10.0)
        service.startService()
        self.assertTrue(gc.get_freeze_count() > 0)
        service.stopService()
        self.assertEqual(gc.get_freeze_count(), 0)

    def test_noInterval(self) -> None:
        """
        With no interval, Python's own policy stays: thresholds untouched,
        nothing frozen, no timer.
        """
        clock = Clock()
        service = CollectorService(clock, None)
        service.startService()
        self.assertEqual(gc.get_threshold(), self.threshold)
        self.assertEqual(gc.get_freeze_count(), 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        service.stopService()


class OptionTests(SynchronousTestCase):
    """
    C{--gc-interval} and C{--half-closed-timeout} reach what they set.
    """

    def makeService(self, *arguments: str) -> Any:
        from twisted.internet.testing import MemoryReactorClock

        from txvaurien import tap
        from txvaurien.test.helpers import testRegistry

        options = tap.buildOptions(testRegistry())()
        options.parseOptions(["--backend", "127.0.0.1:6379", *arguments])
        return tap.makeService(options, MemoryReactorClock())

    def test_defaults(self) -> None:
        """
        By default full collections run every 300 s and half-closed
        connections are closed after 300 s idle.
        """
        service = self.makeService()
        self.assertEqual(service.collector.interval, 300.0)
        factory = service.getServiceNamed("proxy").factory
        self.assertEqual(factory.halfClosedTimeout, 300.0)

    def test_givenWithUnits(self) -> None:
        """
        Both take a duration with a unit; 0 turns each off.
        """
        service = self.makeService("--gc-interval", "2m", "--half-closed-timeout", "1500ms")
        self.assertEqual(service.collector.interval, 120.0)
        self.assertEqual(service.getServiceNamed("proxy").factory.halfClosedTimeout, 1.5)
        service = self.makeService("--gc-interval", "0", "--half-closed-timeout", "0")
        self.assertIsNone(service.collector.interval)
        self.assertIsNone(service.getServiceNamed("proxy").factory.halfClosedTimeout)
