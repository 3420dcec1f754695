"""
The types of option values and L{OptionError}: how a value is read from
text (command line, INI file), checked when given as JSON (control API)
and written back (help, documentation).

L{txvaurien.options} reads declarations with them and re-exports every
public name defined here; declarations import them from there.
"""

from __future__ import annotations

import re
import types
from typing import Any

_TRUE = frozenset(["1", "true", "yes", "on", "y", "t"])
_FALSE = frozenset(["0", "false", "no", "off", "n", "f"])


class OptionError(ValueError):
    """
    A value given for an option is not acceptable.

    @ivar name: the option's full name (C{"behavior-delay-sleep"}), or the
        key or field where it was given.
    @ivar description: what is wrong, for a human.
    @ivar closest: for an unknown option, the known one closest to it, if
        one is close (for a "did you mean" where people type options).
    """

    def __init__(self, name: str, description: str, closest: str | None = None) -> None:
        ValueError.__init__(self, "{}: {}".format(name, description))
        self.name = name
        self.description = description
        self.closest = closest


class OptionType:
    """
    How an option's value is read from text (command line, INI file) and
    checked when given as JSON (control API).

    @ivar name: the type's name in help and documentation.
    """

    name = "value"

    @property
    def helpName(self) -> str:
        """
        The type's name in C{--help} and the documentation, which may say
        more than L{name} (the unit of a duration).
        """
        return self.name

    def parse(self, text: str) -> Any:
        """
        Read a value from text.

        @raise ValueError: with a message saying what was expected.
        """
        raise NotImplementedError()

    def check(self, value: Any) -> Any:
        """
        Validate a value that came as JSON (or from Python); text is parsed.

        @raise ValueError: with a message saying what was expected.
        """
        if isinstance(value, str):
            return self.parse(value)
        raise ValueError("expected {}, got {!r}".format(self.name, value))

    def format(self, value: Any) -> str:
        """
        Render a value the way L{parse} reads it.
        """
        return str(value)


class Number(OptionType):
    """
    An C{int} or C{float}, optionally bounded.

    @ivar kind: C{int} or C{float}.
    @ivar minimum: the lowest accepted value, or L{None}.
    @ivar maximum: the highest accepted value, or L{None}.
    @ivar exclusiveMinimum: if true, C{minimum} itself is refused.
    """

    def __init__(
        self,
        kind: type = float,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusiveMinimum: bool = False,
    ) -> None:
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum
        self.exclusiveMinimum = exclusiveMinimum
        self.name = "integer" if kind is int else "number"
        bounds = []
        if minimum is not None:
            bounds.append("{} {}".format(">" if exclusiveMinimum else ">=", minimum))
        if maximum is not None:
            bounds.append("<= {}".format(maximum))
        if bounds:
            self.name += " " + " and ".join(bounds)

    def parse(self, text: str) -> Any:
        try:
            value = self.kind(text.strip())
        except ValueError:
            raise ValueError("expected {}, got {!r}".format(self.name, text))
        return self._bounded(value)

    def check(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected {}, got {!r}".format(self.name, value))
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected {}, got {!r}".format(self.name, value))
            value = int(value)
        else:
            value = float(value)
        return self._bounded(value)

    def _bounded(self, value: Any) -> Any:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected {}, got {!r}".format(self.name, value))
        low, high = self.minimum, self.maximum
        if low is not None and (
            value < low or (self.exclusiveMinimum and value == low)
        ):
            raise ValueError("expected {}, got {!r}".format(self.name, value))
        if high is not None and value > high:
            raise ValueError("expected {}, got {!r}".format(self.name, value))
        return value


#: Units a L{Duration} accepts, in microseconds (integers, so that
#: converting between them is exact where it can be).
UNITS: dict[str, int] = {
    "us": 1,
    "\N{MICRO SIGN}s": 1,
    "ms": 1000,
    "s": 1000000,
    "m": 60000000,
    "h": 3600000000,
}

_UNIT_WORDS = {"us": "microseconds", "ms": "milliseconds", "s": "seconds",
               "m": "minutes", "h": "hours"}

_DURATION = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s.+-]\S*)?\s*$")


class Duration(Number):
    """
    A length of time: a number with a unit (C{250ms}, C{1.5s}, C{200us},
    C{2m}, C{1h}), or a bare number in the option's own unit, which is the
    unit the value is kept in.  JSON numbers are in that unit too.

    @ivar unit: the bare unit (C{"s"}, C{"ms"} or C{"us"}).
    """

    def __init__(
        self,
        unit: str,
        minimum: float | None = 0,
        maximum: float | None = None,
        exclusiveMinimum: bool = False,
    ) -> None:
        if unit not in _UNIT_WORDS:
            raise TypeError("unknown duration unit {!r}".format(unit))
        Number.__init__(self, float, minimum, maximum, exclusiveMinimum)
        self.unit = unit

    @property
    def unitName(self) -> str:
        """
        The bare unit in words (C{"milliseconds"}).
        """
        return _UNIT_WORDS[self.unit]

    @property
    def helpName(self) -> str:
        return "{}, bare number in {}".format(
            self.name.replace("number", "duration", 1), self.unitName)

    def parse(self, text: str) -> Any:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError("expected {}, got {!r}".format(self.name, text))
        number, unit = match.groups()
        value = float(number)
        if unit is not None:
            if unit not in UNITS:
                raise ValueError(
                    "unknown unit {!r} in {!r}: use us, ms, s, m or h (a bare "
                    "number is in {})".format(unit, text, self.unitName))
            value = value * UNITS[unit] / UNITS[self.unit]
        return self._bounded(value)

    def format(self, value: Any) -> str:
        return "{:g}{}".format(value, self.unit)


class Boolean(OptionType):
    """
    C{true}/C{false} (also C{yes}/C{no}, C{on}/C{off}, C{1}/C{0}).
    """

    name = "boolean"

    def parse(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected true or false, got {!r}".format(text))

    def check(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.parse(value)
        raise ValueError("expected true or false, got {!r}".format(value))

    def format(self, value: Any) -> str:
        return "true" if value else "false"


class String(OptionType):
    """
    Any text.
    """

    name = "string"

    def parse(self, text: str) -> str:
        return text


class Choice(OptionType):
    """
    One of a closed set of words.
    """

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.name = "|".join(choices)

    def parse(self, text: str) -> str:
        word = text.strip()
        if word not in self.choices:
            raise ValueError(
                "expected one of {}, got {!r}".format(", ".join(self.choices), text)
            )
        return word


class ListOf(OptionType):
    """
    A comma-separated list (text) or a JSON array of one element type.
    """

    def __init__(self, element: OptionType, nonEmpty: bool = False) -> None:
        self.element = element
        self.nonEmpty = nonEmpty
        if " " in element.name or "|" in element.name:
            self.name = "comma-separated list, each {}".format(element.name)
        else:
            self.name = "comma-separated {}s".format(element.name)

    def parse(self, text: str) -> list[Any]:
        items = [item for item in text.split(",") if item.strip()]
        return self._checked([self.element.parse(item) for item in items])

    def check(self, value: Any) -> list[Any]:
        if isinstance(value, str):
            return self.parse(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list of {}s, got {!r}".format(
                self.element.name, value))
        return self._checked([self.element.check(item) for item in value])

    def _checked(self, values: list[Any]) -> list[Any]:
        if self.nonEmpty and not values:
            raise ValueError("expected at least one {}".format(self.element.name))
        return values

    def format(self, value: Any) -> str:
        return ",".join(self.element.format(item) for item in value)


_SIMPLE: dict[Any, OptionType] = {
    int: Number(int),
    float: Number(float),
    bool: Boolean(),
    str: String(),
}


def optionType(declared: Any) -> OptionType:
    """
    The L{OptionType} for a declared type.

    @raise TypeError: if C{declared} is not a supported type.
    """
    if isinstance(declared, OptionType):
        return declared
    if declared in _SIMPLE:
        return _SIMPLE[declared]
    if isinstance(declared, types.GenericAlias) and declared.__origin__ is list:
        (element,) = declared.__args__
        return ListOf(optionType(element))
    if isinstance(declared, list) and len(declared) == 1:
        return ListOf(optionType(declared[0]))
    raise TypeError("unsupported option type {!r}".format(declared))
