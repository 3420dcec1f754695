"""
Tests for L{txvaurien.options}: one declaration, every surface.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txvaurien import options
from txvaurien.options import Choice, Duration, ListOf, Number, OptionError, String


class Declared:
    name = "sample_thing"
    options = {
        "sleep": ("Delay in seconds", float, 1.0),
        "count": ("How many", int, 3),
        "before": ("Act before", bool, True),
        "label": ("A label", str, "x"),
        "codes": ("Status codes", list[int], [500, 503]),
        "rate": ("Rate", Number(float, 0, exclusiveMinimum=True), 10.0),
        "mode": ("Mode", Choice("a", "b"), "a"),
    }


class TypeTests(SynchronousTestCase):
    """
    Option types read text and check JSON values.
    """

    def test_numbersFromTextAndJSON(self) -> None:
        """
        Numbers parse from text and accept JSON numbers, but refuse
        booleans, non-integral floats for ints, NaN and infinity.
        """
        integer = options.optionType(int)
        self.assertEqual(integer.parse(" 42 "), 42)
        self.assertEqual(integer.check(7.0), 7)
        self.assertRaises(ValueError, integer.check, 7.5)
        self.assertRaises(ValueError, integer.check, True)
        self.assertRaises(ValueError, integer.parse, "4x")
        real = options.optionType(float)
        self.assertEqual(real.check(2), 2.0)
        self.assertRaises(ValueError, real.parse, "nan")
        self.assertRaises(ValueError, real.parse, "inf")

    def test_bounds(self) -> None:
        """
        Bounded numbers refuse values outside their bounds, and say which
        bounds in their message.
        """
        rate = Number(float, 0, exclusiveMinimum=True)
        self.assertRaises(ValueError, rate.check, 0)
        self.assertRaises(ValueError, rate.check, -1)
        self.assertEqual(rate.check(0.001), 0.001)
        probability = Number(float, 0, 1)
        self.assertRaises(ValueError, probability.parse, "1.5")
        with self.assertRaises(ValueError) as caught:
            probability.parse("-0.1")
        self.assertIn(">= 0", str(caught.exception))
        self.assertIn("<= 1", str(caught.exception))

    def test_booleans(self) -> None:
        """
        Booleans read the usual words and refuse others, and JSON
        numbers.
        """
        boolean = options.optionType(bool)
        for word in ("1", "true", "Yes", "on"):
            self.assertIs(boolean.parse(word), True)
        for word in ("0", "false", "NO", "off"):
            self.assertIs(boolean.parse(word), False)
        self.assertRaises(ValueError, boolean.parse, "maybe")
        self.assertRaises(ValueError, boolean.check, 1)

    def test_lists(self) -> None:
        """
        Lists parse comma-separated text and check JSON arrays element by
        element; a non-empty list refuses an empty one.
        """
        codes = options.optionType(list[int])
        self.assertIsInstance(codes, ListOf)
        self.assertEqual(codes.parse("500, 502,503"), [500, 502, 503])
        self.assertEqual(codes.check([500, "501"]), [500, 501])
        self.assertRaises(ValueError, codes.check, [500, "x"])
        self.assertRaises(ValueError, codes.check, 500)
        self.assertEqual(codes.format([1, 2]), "1,2")
        self.assertRaises(ValueError, ListOf(String(), nonEmpty=True).parse, "")

    def test_choice(self) -> None:
        """
        A choice accepts only its words.
        """
        mode = Choice("uniform", "normal")
        self.assertEqual(mode.parse("normal"), "normal")
        with self.assertRaises(ValueError) as caught:
            mode.parse("pareto")
        self.assertIn("uniform, normal", str(caught.exception))

    def test_unsupportedTypeRefused(self) -> None:
        """
        A declaration with an unsupported type is a programming error.
        """
        self.assertRaises(TypeError, options.optionType, dict)
        self.assertRaises(TypeError, options.specs, {"x": ("d", int)})
        self.assertRaises(TypeError, options.specs, {"x": ("d", int, "nope")})


class ValidateTests(SynchronousTestCase):
    """
    L{options.validate} checks values against a declaration.
    """

    def test_defaults(self) -> None:
        """
        With no values, every option takes its declared default.
        """
        self.assertEqual(options.validate(Declared, {}), {
            "sleep": 1.0, "count": 3, "before": True, "label": "x",
            "codes": [500, 503], "rate": 10.0, "mode": "a"})

    def test_textAndJSONValues(self) -> None:
        """
        Text and JSON values are both accepted, and dashes may stand for
        underscores.
        """
        result = options.validate(
            Declared, {"sleep": "2.5", "count": 4, "codes": "404", "before": "no"},
            partial=True)
        self.assertEqual(result, {"sleep": 2.5, "count": 4, "codes": [404], "before": False})

    def test_unknownOptionNamed(self) -> None:
        """
        An unknown option is refused with its name and the known ones.
        """
        with self.assertRaises(OptionError) as caught:
            options.validate(Declared, {"slep": "1"}, where="behavior-delay-")
        self.assertEqual(caught.exception.name, "behavior-delay-slep")
        self.assertIn("sleep", caught.exception.description)

    def test_badValueNamed(self) -> None:
        """
        A bad value is refused with the option's name and what was
        expected.
        """
        with self.assertRaises(OptionError) as caught:
            options.validate(Declared, {"rate": "0"}, where="[behavior:bandwidth] ")
        self.assertEqual(caught.exception.name, "[behavior:bandwidth] rate")
        self.assertIn("> 0", caught.exception.description)


class DurationTests(SynchronousTestCase):
    """
    L{Duration} reads a time with a unit, or a bare number in its own unit.
    """

    def test_unitsConvertToTheBareUnit(self) -> None:
        """
        C{250ms}, C{1.5s}, C{200us}, C{2m} and C{1h} are converted to the
        option's bare unit, exactly where the decimal allows it.
        """
        ms = Duration("ms")
        self.assertEqual(ms.parse("250ms"), 250.0)
        self.assertEqual(ms.parse("1.5s"), 1500.0)
        self.assertEqual(ms.parse("200us"), 0.2)
        self.assertEqual(ms.parse("2m"), 120000.0)
        self.assertEqual(ms.parse(" 3 ms "), 3.0)
        self.assertEqual(Duration("s").parse("1h"), 3600.0)
        self.assertEqual(Duration("s").parse("250ms"), 0.25)
        self.assertEqual(Duration("us").parse("1.5ms"), 1500.0)

    def test_bareNumberKeepsItsUnit(self) -> None:
        """
        A bare number, as text or JSON, is in the option's own unit, so
        values written before units existed keep their meaning.
        """
        self.assertEqual(Duration("ms").parse("100"), 100.0)
        self.assertEqual(Duration("s").parse("0.5"), 0.5)
        self.assertEqual(Duration("us").check(1000), 1000.0)
        self.assertEqual(Duration("ms").check("2s"), 2000.0)

    def test_badDurationsRefused(self) -> None:
        """
        An unknown unit is named with the units that exist; a negative or
        non-numeric value is refused as a bounded number is.
        """
        with self.assertRaises(ValueError) as caught:
            Duration("ms").parse("250xs")
        self.assertIn("unknown unit 'xs'", str(caught.exception))
        self.assertIn("a bare number is in milliseconds", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            Duration("ms").parse("-1ms")
        self.assertEqual(str(caught.exception), "expected number >= 0, got -1.0")
        self.assertRaises(ValueError, Duration("s").parse, "soon")
        self.assertRaises(ValueError, Duration("s").check, True)
        self.assertRaises(ValueError, Duration("s", 0, exclusiveMinimum=True).parse, "0ms")
        self.assertRaises(TypeError, Duration, "fortnight")

    def test_helpStatesTheUnit(self) -> None:
        """
        The help and documentation name of a duration states its bare
        unit; its default is shown with its unit.
        """
        declared = {"wait": ("How long", Duration("ms"), 100.0)}
        spec = options.specs(declared)["wait"]
        self.assertEqual(spec.type.helpName, "duration >= 0, bare number in milliseconds")
        self.assertIn("(default: 100ms)", options.helpText(spec))
        self.assertEqual(Duration("us").format(1000.0), "1000us")
        self.assertEqual(Duration("s").format(0.25), "0.25s")

    def test_everyTimeOptionIsADuration(self) -> None:
        """
        Every built-in numeric option whose name or description speaks of
        time (seconds, milliseconds, microseconds, delay, timeout) is a
        L{Duration}.
        """
        from txvaurien.registry import Registry
        from txvaurien.tap import CORE

        words = ("second", "delay", "timeout", "time", "latency", "jitter", "grace")
        registry = Registry.discover(thirdParty=False)
        declarations = [("core", CORE)] + [
            (p.name, p) for p in [*registry.behaviors, *registry.protocols]]
        found = []
        for owner, declaration in declarations:
            for spec in options.specs(declaration).values():
                text = (spec.name + " " + spec.description).lower()
                if not isinstance(spec.type, Number) or "per second" in text:
                    continue
                if any(word in text for word in words):
                    found.append(owner + "." + spec.name)
                    self.assertIsInstance(spec.type, Duration, owner + "." + spec.name)
        self.assertIn("latency.latency", found)
        self.assertIn("core.timeout", found)


class SurfaceTests(SynchronousTestCase):
    """
    The generated command-line options and documentation.
    """

    def test_usageParameters(self) -> None:
        """
        Each option becomes C{--KIND-NAME-OPTION} with dashes; booleans
        become a flag and its C{no-} form; the index maps them back.
        """
        parameters, flags, index = options.usageParameters("behavior", [Declared])
        names = [p[0] for p in parameters]
        self.assertIn("behavior-sample-thing-sleep", names)
        self.assertNotIn("behavior-sample-thing-before", names)
        self.assertEqual(
            [f[0] for f in flags],
            ["behavior-sample-thing-before", "behavior-sample-thing-no-before"])
        self.assertEqual(index["behavior-sample-thing-no-before"],
                         ("sample_thing", "before", False))
        self.assertEqual(index["behavior-sample-thing-codes"],
                         ("sample_thing", "codes", None))
        [sleep] = [p for p in parameters if p[0] == "behavior-sample-thing-sleep"]
        self.assertIsNone(sleep[2])
        self.assertIn("default: 1.0", sleep[3])

    def test_docsTable(self) -> None:
        """
        The documentation table lists every option with its type, default
        and command-line form.
        """
        table = options.docsTable(Declared, "behavior")
        self.assertIn("``codes``", table)
        self.assertIn("``500,503``", table)
        self.assertIn("``--behavior-sample-thing-rate``", table)
        self.assertIn("number > 0", table)
        self.assertTrue(table.startswith("===="))
