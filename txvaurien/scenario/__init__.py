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

from typing import Any

from txvaurien import options
from txvaurien.scenario.model import (
    Ramp,
    Scenario,
    ScenarioError,
    Step,
    parseScenario,
    readScenario,
)
from txvaurien.scenario.runner import ScenarioRunner, ScenarioService

#: The option of C{twistd vaurien} that starts a scenario, declared once
#: (L{txvaurien.tap} adds it to its core options).
OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "scenario": (
        "Run this scenario (a JSON or INI file): the behavior table over time",
        str,
        None,
    ),
}


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
