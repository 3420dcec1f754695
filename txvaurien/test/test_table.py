"""
Tests for L{txvaurien.table}: behavior table specifications and choices.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from txvaurien.options import OptionError
from txvaurien.registry import UnknownPlugin
from txvaurien.table import REQUEST_SCOPE, TableError, buildTable, parseSpec
from txvaurien.test.helpers import testRegistry


class ParseSpecTests(SynchronousTestCase):
    """
    L{parseSpec} reads C{weight:name} alternatives.
    """

    def test_weightsAndChains(self) -> None:
        """
        Weights are integers, chains are joined with C{+}, and a bare name
        weighs 100.
        """
        self.assertEqual(
            parseSpec("20:delay, 10:error+latency"),
            [(20, ["delay"]), (10, ["error", "latency"])])
        self.assertEqual(parseSpec("blackout"), [(100, ["blackout"])])

    def test_badSpecsRefused(self) -> None:
        """
        Non-integer, negative or too large weights, totals over 100 and
        empty parts are refused with a message naming the problem.
        """
        cases = {
            "x:delay": "not an integer",
            "2.5:delay": "not an integer",
            "-1:delay": "between 0 and 100",
            "101:delay": "between 0 and 100",
            "60:delay,50:error": "add up to 110",
            "20:delay,,10:error": "empty alternative",
            "20:delay+": "empty behavior name",
            "": "empty",
        }
        for spec, message in cases.items():
            with self.assertRaises(TableError) as caught:
                parseSpec(spec)
            self.assertIn(message, str(caught.exception), spec)


class TableTests(SynchronousTestCase):
    """
    L{buildTable} configures behaviors; L{BehaviorTable.choose} draws them.
    """

    def setUp(self) -> None:
        self.registry = testRegistry()

    def test_remainderIsDummy(self) -> None:
        """
        Weights under 100 leave the rest to dummy, which acts on nothing.
        """
        table = buildTable("30:slowdown", self.registry)
        self.assertEqual(table.describe(), "30:slowdown,70:dummy")
        self.assertFalse(table.inert)

    def test_dummyOnlyTableIsInert(self) -> None:
        """
        A table of dummy alone is inert: choosing draws no randomness.
        """
        table = buildTable("100:dummy", self.registry)
        self.assertTrue(table.inert)
        self.assertEqual(table.choose(None), ())

    def test_choiceFollowsWeights(self) -> None:
        """
        Over many draws, each alternative is chosen in proportion to its
        weight (within 3 percentage points over 20,000 draws).
        """
        table = buildTable("20:slowdown,10:swallow", self.registry)
        rng = random.Random(3)
        counts = {"slowdown": 0, "swallow": 0, "": 0}
        for _ in range(20000):
            chain = table.choose(rng)
            counts["+".join(b.name for b in chain)] += 1
        self.assertApproximates(counts["slowdown"] / 20000, 0.2, 0.03)
        self.assertApproximates(counts["swallow"] / 20000, 0.1, 0.03)
        self.assertApproximates(counts[""] / 20000, 0.7, 0.03)

    def test_chainsKeepOrderAndShareSettings(self) -> None:
        """
        A chain is applied in its written order; a behavior named twice in
        a table is one configured instance.
        """
        table = buildTable("50:swallow+slowdown,50:slowdown", self.registry)
        [(_, first), (_, second)] = table.alternatives
        self.assertEqual([b.name for b in first], ["swallow", "slowdown"])
        self.assertIs(first[1], second[0])

    def test_toxicity(self) -> None:
        """
        Toxicity 0 never applies a behavior and 1 always does; in between,
        about that share of draws.
        """
        never = buildTable("100:slowdown", self.registry, {"slowdown": {"toxicity": 0}})
        self.assertTrue(never.inert)
        always = buildTable("100:slowdown", self.registry)
        self.assertEqual(len(always.choose(random.Random(1))), 1)
        half = buildTable("100:slowdown", self.registry, {"slowdown": {"toxicity": "0.5"}})
        rng = random.Random(5)
        hits = sum(len(half.choose(rng)) for _ in range(10000))
        self.assertApproximates(hits / 10000, 0.5, 0.03)

    def test_settingsValidated(self) -> None:
        """
        Settings are checked against the behavior's declaration, naming the
        behavior and option.
        """
        with self.assertRaises(OptionError) as caught:
            buildTable("100:slowdown", self.registry, {"slowdown": {"seconds": "-1"}})
        self.assertIn("slowdown", caught.exception.name)
        self.assertIn("seconds", caught.exception.name)

    def test_unknownBehaviorRefused(self) -> None:
        """
        An unknown behavior name is refused, listing the known ones.
        """
        with self.assertRaises(UnknownPlugin) as caught:
            buildTable("20:dela", self.registry)
        self.assertIn("dela", str(caught.exception))
        self.assertIn("dummy", str(caught.exception))

    def test_badScopeRefused(self) -> None:
        """
        The scope is connection or request.
        """
        self.assertRaises(TableError, buildTable, "100:dummy", self.registry, None, "socket")
        self.assertEqual(buildTable("100:dummy", self.registry, None, REQUEST_SCOPE).scope, REQUEST_SCOPE)
