"""
Scenarios on the real reactor: a window lands on time, and C{/scenario}
drives them over HTTP.
"""

from __future__ import annotations

import time
from typing import Any, Generator

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from txvaurien.scenario import ScenarioRunner, parseScenario
from txvaurien.test.controlhelpers import EchoControlTestCase, echoServer
from txvaurien.test.helpers import listenProxy, testRegistry


class RealTimeTests(TestCase):
    """
    The reactor's clock, for real.
    """

    @defer.inlineCallbacks
    def test_windowLandsWithin20ms(self) -> Generator[Any, Any, None]:
        """
        A window from 0.2 s to 0.4 s begins and ends within 20 ms of those
        times, measured on the monotonic clock.
        """
        proxy = listenProxy(self, echoServer(self))
        changes: list[tuple[float, str]] = []
        setTable = proxy.setTable

        def recording(table: Any) -> None:
            changes.append((time.monotonic(), table.spec))
            setTable(table)

        proxy.setTable = recording
        registry = testRegistry()
        scenario = parseScenario(
            {"steps": [{"at": 0.2, "until": 0.4, "behavior": "delay"}]}, registry)
        runner = ScenarioRunner(scenario, proxy, registry, reactor)
        start = time.monotonic()
        runner.start()
        self.addCleanup(runner.stop)
        yield task.deferLater(reactor, 0.5, lambda: None)
        self.assertEqual([spec for _, spec in changes], ["delay", "100:dummy"])
        begin, end = (at - start for at, _ in changes)
        self.assertLess(abs(begin - 0.2), 0.02)
        self.assertLess(abs(end - 0.4), 0.02)


class ScenarioAPITests(EchoControlTestCase):
    """
    C{POST}, C{GET} and C{DELETE /scenario}.
    """

    @defer.inlineCallbacks
    def test_postGetDelete(self) -> Generator[Any, Any, None]:
        """
        C{POST} starts a scenario (201, its state), C{GET} shows the step
        in force, C{DELETE} stops it (204) and gives the proxy its own
        table back; C{GET} is then 404.
        """
        factory = self.control.manager.get("vaurien").factory
        own = factory.table
        status, value = yield self.control.json("POST", "/scenario", {
            "steps": [{"name": "slow", "at": 0, "behavior": "latency",
                       "options": {"latency": {"latency": 100}}}]})
        self.assertEqual((status, value["step"], value["behavior"]),
                         (201, "slow", "100:latency"))
        self.assertEqual(factory.table.behaviors["latency"].settings["latency"], 100.0)
        status, value = yield self.control.json("GET", "/scenario")
        self.assertEqual((status, value["step"], value["finished"]), (200, "slow", False))
        status, _, _ = yield self.control.request("DELETE", "/scenario")
        self.assertEqual(status, 204)
        self.assertEqual(factory.table.describe(), own.describe())
        status, value = yield self.control.json("GET", "/scenario")
        self.assertEqual(status, 404)
        status, value = yield self.control.json("GET", "/events")
        self.assertEqual([e["action"] for e in value["events"]],
                         ["scenario step", "scenario step"])
