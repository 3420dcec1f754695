"""
Tests for L{txvaurien.scenario}: checking scenarios and playing them on
the clock.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txvaurien import tap
from txvaurien.journal import Journal
from txvaurien.scenario import ScenarioError, ScenarioRunner, parseScenario, readScenario
from txvaurien.table import buildTable
from txvaurien.test.helpers import Harness, testRegistry

TIMELINE = {
    "steps": [
        {"at": 0, "until": 10, "behavior": "dummy"},
        {"at": 10, "until": 15, "behavior": "blackout"},
        {"at": 15, "until": 45, "behavior": "latency",
         "options": {"latency": {"latency": 200, "jitter": 50}}},
        {"at": 45, "behavior": "5:error",
         "options": {"error": {"match": "method=POST path=/api/*"}}},
    ],
}


def run(data: dict[str, Any], protocol: str = "http") -> tuple[Harness, ScenarioRunner]:
    """
    A scenario playing on an in-memory proxy with a journal.
    """
    harness = Harness("100:dummy", protocol, "request")
    harness.factory.journal = Journal(harness.reactor)
    scenario = parseScenario(data, harness.registry, "request", protocol)
    runner = ScenarioRunner(scenario, harness.factory, harness.registry, harness.reactor)
    runner.start()
    return harness, runner


class CheckTests(SynchronousTestCase):
    """
    Bad scenarios are refused with a message naming the step.
    """

    def refused(self, data: Any, expected: str) -> None:
        e = self.assertRaises(ScenarioError, parseScenario, data, testRegistry(), "request",
                              "http")
        self.assertIn(expected, str(e))

    def test_overlappingWindows(self) -> None:
        """
        Two windows that overlap are refused, both named with their times.
        """
        self.refused({"steps": [{"at": 0, "until": 10, "behavior": "delay"},
                                {"at": 5, "until": 8, "behavior": "latency"}]},
                     "step 2 (5-8 s) overlaps step 1 (0-10 s)")

    def test_negativeDurations(self) -> None:
        """
        Negative times and durations, and windows that end before they
        begin, are refused.
        """
        self.refused({"steps": [{"at": -1, "behavior": "delay"}]}, "must not be negative")
        self.refused({"steps": [{"at": 0, "duration": -5, "behavior": "delay"}]},
                     "must not be negative")
        self.refused({"steps": [{"at": 4, "until": 2, "behavior": "delay"}]},
                     "ends at 2 s, not after it begins (4 s)")

    def test_openEndedStepMustBeLast(self) -> None:
        """
        Only the last step may have no end, and a loop needs every end.
        """
        self.refused({"steps": [{"at": 0, "behavior": "delay"},
                                {"at": 5, "until": 8, "behavior": "latency"}]},
                     "step 1 has no end but step 2 comes after it")
        self.refused({"loop": True, "steps": [{"at": 0, "behavior": "delay"}]},
                     "looping scenario needs an end")

    def test_badBehaviorsAndOptions(self) -> None:
        """
        An unknown behavior, a bad option and a bad match are refused up
        front, naming the step.
        """
        self.refused({"steps": [{"at": 0, "behavior": "nope"}]}, "step 1:")
        self.refused({"steps": [{"name": "slow", "at": 0, "behavior": "latency",
                                 "options": {"latency": {"latency": -3}}}]}, "step slow:")
        self.refused({"steps": [{"at": 0, "behavior": "error",
                                 "options": {"error": {"match": "verb=SELECT"}}}]},
                     "does not exist for protocol http")

    def test_unknownFields(self) -> None:
        """
        Misspelt fields are refused rather than ignored.
        """
        self.refused({"steps": [{"at": 0, "behavoir": "delay"}]}, "unknown field 'behavoir'")
        self.refused({"loops": True, "steps": []}, "unknown scenario field 'loops'")

    def test_iniFile(self) -> None:
        """
        The INI form gives the same scenario as the JSON form.
        """
        path = self.mktemp() + ".ini"
        with open(path, "w") as f:
            f.write("[scenario]\nloop = true\n\n[step:calm]\nat = 0\nuntil = 10\n"
                    "behavior = dummy\n\n[step:slow]\nat = 10\nduration = 5\n"
                    "behavior = latency\nlatency.latency = 200\n"
                    "ramp.behavior = latency\nramp.option = latency\nramp.from = 0\n"
                    "ramp.to = 500\nramp.every = 1\n")
        scenario = readScenario(path, testRegistry(), "request", "http")
        self.assertEqual(scenario.period, 15.0)
        slow = scenario.steps[1]
        self.assertEqual((slow.name, slow.at, slow.until, slow.settings, slow.ramp.end),
                         ("slow", 10.0, 15.0, {"latency": {"latency": "200"}}, 500.0))


class TimelineTests(SynchronousTestCase):
    """
    A scenario plays on the reactor's clock.
    """

    def test_stepsInstalledAtTheirTimes(self) -> None:
        """
        Each step's table is installed when its window begins, to the
        millisecond, and the open-ended last step stays.
        """
        harness, runner = run(TIMELINE)
        clock = harness.reactor
        seen = []
        for t in (0, 9.999, 10, 14.999, 15, 44.999, 45, 1000):
            clock.advance(t - clock.seconds())
            seen.append(harness.factory.table.spec)
        self.assertEqual(seen, ["dummy", "dummy", "blackout", "blackout", "latency",
                                "latency", "5:error", "5:error"])
        self.assertEqual(
            harness.factory.table.behaviors["error"].settings["match"],
            "method=POST path=/api/*")

    def test_gapsAndEndRestoreOwnTable(self) -> None:
        """
        Between windows and after the last one, the proxy's own table
        applies; the end is a journal event.
        """
        harness, runner = run({"steps": [{"at": 1, "until": 2, "behavior": "delay"},
                                         {"at": 3, "until": 4, "behavior": "latency"}]})
        own = harness.table
        clock = harness.reactor
        tables = []
        for t in (0.5, 1.5, 2.5, 3.5, 4.5):
            clock.advance(t - clock.seconds())
            tables.append(harness.factory.table)
        self.assertEqual([t is own for t in tables], [True, False, True, False, True])
        self.assertTrue(runner.finished)
        actions = [e["action"] for e in harness.factory.journal.ring]
        self.assertEqual(actions[-1], "scenario end")

    def test_loop(self) -> None:
        """
        A looping scenario starts over after its last step.
        """
        harness, runner = run({"loop": True, "steps": [
            {"at": 0, "until": 1, "behavior": "delay"},
            {"at": 1, "until": 2, "behavior": "latency"}]})
        clock = harness.reactor
        specs = []
        for t in (0.5, 1.5, 2.5, 3.5, 4.0):
            clock.advance(t - clock.seconds())
            specs.append(harness.factory.table.spec)
        self.assertEqual(specs, ["delay", "latency", "delay", "latency", "delay"])

    def test_ramp(self) -> None:
        """
        A ramp moves its option from C{from} to C{to} across the window,
        every C{every} seconds, on the live behavior.
        """
        harness, runner = run({"steps": [{
            "at": 0, "until": 10, "behavior": "latency",
            "ramp": {"behavior": "latency", "option": "latency", "from": 0, "to": 500,
                     "every": 2}}]})
        clock = harness.reactor
        values = []
        for t in (0, 1, 2, 5, 8):
            clock.advance(t - clock.seconds())
            values.append(harness.factory.table.behaviors["latency"].settings["latency"])
        self.assertEqual(values, [0.0, 0.0, 100.0, 200.0, 400.0])

    def test_stepsJournaled(self) -> None:
        """
        Each step is a journal event naming it, with its elapsed time.
        """
        harness, runner = run(TIMELINE)
        harness.reactor.pump([1] * 50)
        steps = [(e["step"], e["behavior"], e["elapsed"])
                 for e in harness.factory.journal.ring if e["action"] == "scenario step"]
        self.assertEqual(steps, [("1", "dummy", 0.0), ("2", "blackout", 10.0),
                                 ("3", "latency", 15.0), ("4", "5:error", 45.0)])

    def test_stopRestores(self) -> None:
        """
        Stopping gives the proxy its own table back and cancels what was
        scheduled.
        """
        harness, runner = run(TIMELINE)
        harness.reactor.advance(12)
        runner.stop()
        self.assertIs(harness.factory.table, harness.table)
        self.assertEqual(harness.reactor.getDelayedCalls(), [])
        self.assertIsNone(harness.factory.scenario)


class OptionTests(SynchronousTestCase):
    """
    C{--scenario FILE}.
    """

    def test_scenarioStartsWithService(self) -> None:
        """
        C{--scenario FILE} plays the file's scenario from the start of the
        service.
        """
        path = self.mktemp() + ".json"
        with open(path, "w") as f:
            json.dump({"steps": [{"at": 1, "behavior": "delay"}]}, f)
        config = tap.Options()
        config.parseOptions(["--backend", "127.0.0.1:80", "--scenario", path])
        clock = Clock()
        service = tap.makeService(config, clock)
        factory = service.getServiceNamed("proxy").factory
        service.getServiceNamed("scenario").startService()
        clock.advance(1)
        self.assertEqual(factory.table.spec, "delay")

    def test_badScenarioIsUsageError(self) -> None:
        """
        An invalid or missing scenario file stops the start with a usage
        error naming C{--scenario}.
        """
        path = self.mktemp() + ".json"
        with open(path, "w") as f:
            json.dump({"steps": [{"at": 0, "until": 5, "behavior": "delay"},
                                 {"at": 4, "behavior": "delay"}]}, f)
        for given, expected in [(path, "overlaps"), ("/nonexistent.json", "cannot read")]:
            config = tap.Options()
            e = self.assertRaises(usage.UsageError, config.parseOptions, [
                "--backend", "127.0.0.1:80", "--scenario", given])
            self.assertIn("--scenario", str(e))
            self.assertIn(expected, str(e))


DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs")


class DocsExampleTests(SynchronousTestCase):
    """
    The scenario examples of the documentation are valid and say the
    same thing in both forms.
    """

    def test_jsonAndIniAgree(self) -> None:
        """
        C{docs/examples/scenario.json} and C{scenario.ini} read without
        error into the same steps, whose tables have the same settings.
        """
        registry = testRegistry()
        forms = [readScenario(os.path.join(DOCS, "examples", name), registry, "request",
                              "http") for name in ("scenario.json", "scenario.ini")]
        shapes = []
        for scenario in forms:
            shape = []
            for step in scenario.steps:
                table = buildTable(step.behavior, registry, step.settings, "request", "http")
                shape.append((step.name, step.at, step.until, table.describe(),
                              {n: b.settings for n, b in table.behaviors.items()},
                              step.ramp.asJSON() if step.ramp else None))
            shapes.append((scenario.loop, shape))
        self.assertEqual(shapes[0], shapes[1])
        self.assertEqual(len(shapes[0][1]), 4)
