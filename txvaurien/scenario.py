"""
Chaos on a timeline: a scenario says what a proxy's behavior table is
over time.

A scenario is a list of steps, each a window of time (seconds from the
start) with a behavior table and its options::

    {"loop": false,
     "steps": [
       {"at": 0, "until": 10, "behavior": "dummy"},
       {"at": 10, "until": 15, "behavior": "blackout"},
       {"at": 15, "until": 45, "behavior": "latency",
        "options": {"latency": {"latency": 200, "jitter": 50}}},
       {"at": 45, "behavior": "5:error",
        "options": {"error": {"match": "method=POST path=/api/*"}}}]}

Between windows, and after the last one ends, the proxy's own table
applies.  The last step may leave out C{until} (or C{duration}): it lasts
until the scenario is stopped.  With C{"loop": true} every step must end,
and the timeline starts over after the last one (or after C{period}
seconds).  A step may C{ramp} one option across its window, from one value
to another, updated every C{every} seconds::

    "ramp": {"behavior": "latency", "option": "latency",
             "from": 0, "to": 500, "every": 1}

Scenarios run on the reactor's clock (an C{IReactorTime}), so tests drive
them with L{twisted.internet.task.Clock}.  Each step that begins, each ramp
update and the end are journal events (C{"action": "scenario step"}).

The same scenario can be written as an INI file: a C{[scenario]} section
(C{loop}, C{period}) and one C{[step:NAME]} section per step with C{at},
C{until} or C{duration}, C{behavior}, C{BEHAVIOR.OPTION = value} keys and
C{ramp.behavior}, C{ramp.option}, C{ramp.from}, C{ramp.to}, C{ramp.every}.
"""

from __future__ import annotations

import configparser
import json
import math
from typing import Any, Callable

from twisted.application.service import Service

from txvaurien import logs, options
from txvaurien.registry import Registry, UnknownPlugin
from txvaurien.table import BehaviorTable, TableError, buildTable

_log = logs.logger("txvaurien.scenario")

#: The option of C{twistd vaurien} that starts a scenario, declared once
#: (L{txvaurien.tap} adds it to its core options).
OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "scenario": (
        "Run this scenario (a JSON or INI file): the behavior table over time",
        str,
        None,
    ),
}

#: Slack when comparing times, so that a boundary reached exactly counts.
_EPSILON = 1e-9


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
        if after.at < before.until - _EPSILON:
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
            if period < end - _EPSILON:
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


class ScenarioRunner:
    """
    Plays a L{Scenario} on a proxy factory: installs each step's table
    when its window begins, the proxy's own table between windows and
    after the end, and updates ramps.  While it runs, it is the factory's
    C{scenario} attribute.

    @ivar started: the clock's time at L{start}, or L{None}.
    @ivar current: the index of the step in force, or L{None}.
    @ivar finished: whether the timeline is over (not looping).
    """

    def __init__(
        self,
        scenario: Scenario,
        factory: Any,
        registry: Registry,
        clock: Any,
        restore: Callable[[], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.factory = factory
        self.registry = registry
        self.clock = clock
        self.base: BehaviorTable = factory.table
        self._restore = restore
        self.started: float | None = None
        self.current: int | None = None
        self.table: BehaviorTable | None = None
        self.finished = False
        self._call: Any = None
        self._rampValue: float | None = None

    def start(self) -> None:
        """
        Begin the timeline now.
        """
        self.started = self.clock.seconds()
        self.factory.scenario = self
        self._tick()

    def stop(self) -> None:
        """
        Stop the timeline and give the proxy its own table back.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self.current is not None:
            self._install(None)
        self.finished = True
        if getattr(self.factory, "scenario", None) is self:
            self.factory.scenario = None

    def elapsed(self) -> float:
        """
        Seconds since the start, within the current turn when looping.
        """
        if self.started is None:
            return 0.0
        elapsed = self.clock.seconds() - self.started
        if self.scenario.loop and self.scenario.period:
            elapsed = math.fmod(elapsed + _EPSILON, self.scenario.period) - _EPSILON
            elapsed = max(0.0, elapsed)
        return elapsed

    def _active(self, t: float) -> int | None:
        for index, step in enumerate(self.scenario.steps):
            if step.at <= t + _EPSILON and (step.until is None or t + _EPSILON < step.until):
                return index
        return None

    def _tick(self) -> None:
        self._call = None
        assert self.started is not None
        now = self.clock.seconds()
        total = now - self.started
        scenario = self.scenario
        if not scenario.loop and scenario.steps[-1].until is not None and (
                total + _EPSILON >= scenario.steps[-1].until):
            if self.current is not None:
                self._install(None)
            self.finished = True
            self._journal("scenario end", None)
            return
        t = self.elapsed()
        index = self._active(t)
        if index != self.current:
            self._install(index)
        if index is not None and scenario.steps[index].ramp is not None:
            self._ramp(scenario.steps[index], t)
        self._schedule(t, index)

    def _schedule(self, t: float, index: int | None) -> None:
        scenario = self.scenario
        boundaries = [b for step in scenario.steps for b in (step.at, step.until)
                      if b is not None and b > t + _EPSILON]
        if scenario.loop and scenario.period:
            boundaries.append(scenario.period)
        if index is not None:
            step = scenario.steps[index]
            if step.ramp is not None:
                ticks = math.floor((t - step.at) / step.ramp.every + _EPSILON) + 1
                boundaries.append(step.at + ticks * step.ramp.every)
        if not boundaries:
            return
        delay = max(0.0, min(boundaries) - t)
        self._call = self.clock.callLater(delay, self._tick)

    def _install(self, index: int | None) -> None:
        self.current = index
        self._rampValue = None
        if index is None:
            self.table = None
            if self._restore is not None:
                self._restore()
            else:
                self.factory.setTable(self.base)
            self._journal("scenario step", None)
            return
        step = self.scenario.steps[index]
        self.table = buildTable(step.behavior, self.registry, step.settings, self.base.scope)
        self.factory.setTable(self.table)
        self._journal("scenario step", step)

    def _ramp(self, step: Step, t: float) -> None:
        ramp = step.ramp
        assert ramp is not None and step.until is not None and self.table is not None
        ticks = math.floor((t - step.at) / ramp.every + _EPSILON)
        value = ramp.value(ticks * ramp.every / (step.until - step.at))
        if value == self._rampValue:
            return
        self._rampValue = value
        behavior = self.table.behaviors[ramp.behavior]
        behavior.settings.update(options.validate(behavior, {ramp.option: value}, partial=True))
        self._journal("scenario ramp", step, **{ramp.option: behavior.settings[ramp.option]})

    def _journal(self, action: str, step: Step | None, **figures: Any) -> None:
        name = self.factory.name
        event: dict[str, Any] = {
            "proxy": name, "connection": None, "client": None, "port": None,
            "request": None,
            "behavior": step.behavior if step is not None else self.base.describe(),
            "options": step.settings if step is not None else {},
            "direction": None, "action": action,
            "step": step.name if step is not None else None,
            "elapsed": round(self.clock.seconds() - (self.started or 0.0), 6),
        }
        event.update(figures)
        _log.info(
            "{proxy} scenario: {action} {step} ({behavior}) at {elapsed:.3f}s",
            proxy=name, action=action, step=event["step"] or "-",
            behavior=event["behavior"], elapsed=event["elapsed"], fault=event,
        )
        journal = getattr(self.factory, "journal", None)
        if journal is not None:
            journal.record(event)

    def asJSON(self) -> dict[str, Any]:
        """
        The scenario and where it is.
        """
        return {
            "scenario": self.scenario.asJSON(),
            "elapsed": self.elapsed(),
            "step": None if self.current is None else self.scenario.steps[self.current].name,
            "behavior": (self.table or self.factory.table).describe(),
            "finished": self.finished,
        }


class ScenarioService(Service):
    """
    Starts a scenario with the application and stops it on exit.
    """

    def __init__(self, runner: ScenarioRunner) -> None:
        self.runner = runner

    def startService(self) -> None:
        Service.startService(self)
        self.runner.start()

    def stopService(self) -> Any:
        Service.stopService(self)
        self.runner.stop()
        return None


def fromConfig(config: Any, clock: Any, factory: Any, parent: Any) -> ScenarioRunner | None:
    """
    With C{--scenario FILE}, a runner for the proxy C{factory}, started
    with C{parent}.

    @raise txvaurien.options.OptionError: for a bad file (a usage error
        at start).
    """
    scenario = getattr(config, "scenarioPlan", None)
    if scenario is None:
        return None
    runner = ScenarioRunner(scenario, factory, config.registry, clock)
    service = ScenarioService(runner)
    service.setName("scenario")
    service.setServiceParent(parent)
    return runner


def checkedFile(config: Any) -> Scenario | None:
    """
    Read the C{--scenario} file for the proxy C{config} describes, if one
    was given.

    @raise txvaurien.options.OptionError: naming C{--scenario}.
    """
    if config.get("scenario") is None:
        return None
    if config.get("backend") is None:
        raise options.OptionError(
            "--scenario", "applies to the proxy --backend describes; without it, "
            "give scenarios through the control API (POST /scenario)")
    try:
        return readScenario(config["scenario"], config.registry, config.table.scope,
                            config.handler.name)
    except ScenarioError as e:
        raise options.OptionError("--scenario", str(e))


__all__ = [
    "OPTIONS", "Ramp", "Scenario", "ScenarioError", "ScenarioRunner", "ScenarioService",
    "Step", "checkedFile", "fromConfig", "parseScenario", "readScenario",
]
