"""
Scenarios as data: reading and checking them (JSON or INI), and the
L{Scenario}, L{Step} and L{Ramp} they become.  See L{txvaurien.scenario}
for the format.
"""

from __future__ import annotations

import configparser
import json
import math
from typing import Any

from txvaurien import options
from txvaurien.registry import Registry, UnknownPlugin
from txvaurien.table import TableError, buildTable

#: Slack when comparing times, so that a boundary reached exactly counts.
EPSILON = 1e-9


class ScenarioError(ValueError):
    """
    A scenario is malformed: the message names the step and the field.
    """


class Ramp:
    """
    One option of a step's behavior going from C{start} to C{end} across
    the step's window, updated every C{every} seconds.
    """

    def __init__(self, behavior: str, option: str, start: float, end: float, every: float):
        self.behavior = behavior
        self.option = option
        self.start = start
        self.end = end
        self.every = every

    def value(self, fraction: float) -> float:
        """
        The value at C{fraction} (0 to 1) of the window.
        """
        return self.start + (self.end - self.start) * min(1.0, max(0.0, fraction))

    def asJSON(self) -> dict[str, Any]:
        return {"behavior": self.behavior, "option": self.option,
                "from": self.start, "to": self.end, "every": self.every}


class Step:
    """
    A window of the timeline.

    @ivar at: when it begins, seconds from the start.
    @ivar until: when it ends, or L{None} (until stopped).
    @ivar behavior: the behavior table specification.
    @ivar settings: behavior name to option values.
    @ivar ramp: a L{Ramp}, or L{None}.
    """

    def __init__(
        self, name: str, at: float, until: float | None, behavior: str,
        settings: dict[str, dict[str, Any]], ramp: Ramp | None,
    ) -> None:
        self.name = name
        self.at = at
        self.until = until
        self.behavior = behavior
        self.settings = settings
        self.ramp = ramp

    def asJSON(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name, "at": self.at, "until": self.until,
                                  "behavior": self.behavior, "options": self.settings}
        if self.ramp is not None:
            result["ramp"] = self.ramp.asJSON()
        return result


class Scenario:
    """
    Checked steps, in time order.

    @ivar period: with C{loop}, the length of one turn.
    """

    def __init__(self, steps: list[Step], loop: bool = False, period: float | None = None):
        self.steps = steps
        self.loop = loop
        self.period = period

    def asJSON(self) -> dict[str, Any]:
        return {"loop": self.loop, "period": self.period,
                "steps": [step.asJSON() for step in self.steps]}


def _number(value: Any, where: str, minimum: float | None = 0.0) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ScenarioError("{}: expected a number, got {!r}".format(where, value))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError("{}: expected a number, got {!r}".format(where, value))
    if minimum is not None and value < minimum:
        raise ScenarioError("{}: must not be negative, got {!r}".format(where, value))
    return float(value)


def _ramp(value: Any, where: str) -> Ramp:
    if not isinstance(value, dict):
        raise ScenarioError("{}: expected an object, got {!r}".format(where, value))
    unknown = set(value) - {"behavior", "option", "from", "to", "every"}
    if unknown:
        raise ScenarioError("{}: unknown field {!r}".format(where, sorted(unknown)[0]))
    for field in ("behavior", "option", "from", "to"):
        if field not in value:
            raise ScenarioError("{}: {} is required".format(where, field))
    every = _number(value.get("every", 1.0), where + ".every")
    if every <= 0:
        raise ScenarioError("{}.every: must be more than 0, got {!r}".format(where, every))
    return Ramp(str(value["behavior"]), str(value["option"]),
                _number(value["from"], where + ".from", None),
                _number(value["to"], where + ".to", None), every)


def parseScenario(
    data: Any,
    registry: Registry,
    scope: str = "connection",
    protocol: str | None = None,
) -> Scenario:
    """
    Check a scenario given as JSON data (a C{dict}), building every step's
    table once so that bad behaviors and options are refused up front.

    @raise ScenarioError: naming the step and what is wrong: overlapping
        windows, negative or empty durations, an unknown behavior, a bad
        option, an open-ended step that is not last or in a loop.
    """
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is an object with steps, got {!r}".format(data))
    unknown = set(data) - {"loop", "period", "steps"}
    if unknown:
        raise ScenarioError("unknown scenario field {!r}".format(sorted(unknown)[0]))
    loop = data.get("loop", False)
    if not isinstance(loop, bool):
        raise ScenarioError("loop: expected true or false, got {!r}".format(loop))
    given = data.get("steps")
    if not isinstance(given, list) or not given:
        raise ScenarioError("steps: expected a non-empty list of steps")
    steps = [_step(entry, i, registry, scope, protocol) for i, entry in enumerate(given)]
    steps.sort(key=lambda step: step.at)
    for before, after in zip(steps, steps[1:]):
        if before.until is None:
            raise ScenarioError(
                "step {} has no end but step {} comes after it".format(before.name, after.name))
        if after.at < before.until - EPSILON:
            raise ScenarioError(
                "step {} ({:g}-{:g} s) overlaps step {} ({:g}-{:g} s)".format(
                    after.name, after.at, after.until if after.until is not None else math.inf,
                    before.name, before.at, before.until))
    period = None
    if loop:
        end = steps[-1].until
        if end is None:
            raise ScenarioError("a looping scenario needs an end on every step; step {} has "
                                "none".format(steps[-1].name))
        period = end
        if data.get("period") is not None:
            period = _number(data["period"], "period")
            if period < end - EPSILON:
                raise ScenarioError("period {:g} s is shorter than the steps ({:g} s)".format(
                    period, end))
        if period <= 0:
            raise ScenarioError("a looping scenario must last more than 0 s")
    return Scenario(steps, loop, period)


def _step(entry: Any, index: int, registry: Registry, scope: str,
          protocol: str | None) -> Step:
    where = "step {}".format(index + 1)
    if not isinstance(entry, dict):
        raise ScenarioError("{}: expected an object, got {!r}".format(where, entry))
    name = str(entry.get("name", index + 1))
    where = "step {}".format(name)
    unknown = set(entry) - {"name", "at", "until", "duration", "behavior", "options", "ramp"}
    if unknown:
        raise ScenarioError("{}: unknown field {!r}".format(where, sorted(unknown)[0]))
    if "at" not in entry:
        raise ScenarioError("{}: at (its start, in seconds) is required".format(where))
    at = _number(entry["at"], where + " at")
    until: float | None = None
    if entry.get("until") is not None and entry.get("duration") is not None:
        raise ScenarioError("{}: give until or duration, not both".format(where))
    if entry.get("until") is not None:
        until = _number(entry["until"], where + " until")
    elif entry.get("duration") is not None:
        until = at + _number(entry["duration"], where + " duration")
    if until is not None and until <= at:
        raise ScenarioError("{}: ends at {:g} s, not after it begins ({:g} s)".format(
            where, until, at))
    behavior = entry.get("behavior")
    if not isinstance(behavior, str) or not behavior.strip():
        raise ScenarioError("{}: behavior (a behavior table) is required".format(where))
    settings = entry.get("options") or {}
    if not isinstance(settings, dict) or not all(
            isinstance(v, dict) for v in settings.values()):
        raise ScenarioError("{}: options: expected behavior name to options".format(where))
    ramp = _ramp(entry["ramp"], where + " ramp") if entry.get("ramp") is not None else None
    if ramp is not None and until is None:
        raise ScenarioError("{}: a ramp needs the step to end".format(where))
    try:
        table = buildTable(behavior, registry, settings, scope, protocol)
        if ramp is not None:
            target = table.behaviors.get(ramp.behavior)
            if target is None:
                raise ScenarioError("{} ramp: behavior {} is not in {!r}".format(
                    where, ramp.behavior, behavior))
            for value in (ramp.start, ramp.end):
                options.validate(target, {ramp.option: value}, partial=True)
    except (TableError, UnknownPlugin, options.OptionError) as e:
        raise ScenarioError("{}: {}".format(where, e))
    return Step(name, at, until, behavior, settings, ramp)


def readScenario(
    path: str, registry: Registry, scope: str = "connection", protocol: str | None = None,
) -> Scenario:
    """
    Read a scenario file: JSON (C{.json}) or INI.

    @raise ScenarioError: for an unreadable or invalid file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ScenarioError("cannot read scenario {!r}: {}".format(path, e.strerror))
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ScenarioError("scenario {!r} is not valid JSON: {}".format(path, e))
    else:
        data = _fromINI(text, path)
    return parseScenario(data, registry, scope, protocol)


def _fromINI(text: str, path: str) -> dict[str, Any]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(text, path)
    except configparser.Error as e:
        raise ScenarioError("scenario {!r}: {}".format(path, e))
    data: dict[str, Any] = {"steps": []}
    for section in parser.sections():
        values = dict(parser.items(section))
        if section == "scenario":
            for key, value in values.items():
                if key == "loop":
                    try:
                        data["loop"] = options.Boolean().parse(value)
                    except ValueError as e:
                        raise ScenarioError("[scenario] loop: {}".format(e))
                elif key == "period":
                    data["period"] = value
                else:
                    raise ScenarioError("[scenario]: unknown key {!r}".format(key))
            continue
        kind, _, name = section.partition(":")
        if kind != "step" or not name.strip():
            raise ScenarioError("[{}]: unknown section; use [scenario] or [step:NAME]".format(
                section))
        step: dict[str, Any] = {"name": name.strip()}
        settings: dict[str, dict[str, Any]] = {}
        ramp: dict[str, Any] = {}
        for key, value in values.items():
            owner, dot, option = key.partition(".")
            if not dot:
                step[key] = value
            elif owner == "ramp":
                ramp[option] = value
            else:
                settings.setdefault(owner, {})[option] = value
        if settings:
            step["options"] = settings
        if ramp:
            step["ramp"] = ramp
        data["steps"].append(step)
    return data
