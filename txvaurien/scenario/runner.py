"""
Playing a scenario on a proxy, on the reactor's clock.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from twisted.application.service import Service

from txvaurien import logs, options
from txvaurien.registry import Registry
from txvaurien.scenario.model import EPSILON, Scenario, Step
from txvaurien.table import BehaviorTable, buildTable

_log = logs.logger("txvaurien.scenario")


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
            elapsed = math.fmod(elapsed + EPSILON, self.scenario.period) - EPSILON
            elapsed = max(0.0, elapsed)
        return elapsed

    def _active(self, t: float) -> int | None:
        for index, step in enumerate(self.scenario.steps):
            if step.at <= t + EPSILON and (step.until is None or t + EPSILON < step.until):
                return index
        return None

    def _tick(self) -> None:
        self._call = None
        assert self.started is not None
        now = self.clock.seconds()
        total = now - self.started
        scenario = self.scenario
        if not scenario.loop and scenario.steps[-1].until is not None and (
                total + EPSILON >= scenario.steps[-1].until):
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
                      if b is not None and b > t + EPSILON]
        if scenario.loop and scenario.period:
            boundaries.append(scenario.period)
        if index is not None:
            step = scenario.steps[index]
            if step.ramp is not None:
                ticks = math.floor((t - step.at) / step.ramp.every + EPSILON) + 1
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
        ticks = math.floor((t - step.at) / ramp.every + EPSILON)
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
