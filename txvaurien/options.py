"""
One declaration, every surface.

A behavior or protocol handler declares::

    options = {
        "sleep": ("Delay in seconds", float, 1.0),
        "codes": ("HTTP status codes to pick from", list[int], [500, 502]),
    }

This module is the only place that reads such declarations.  It turns them
into command-line parameters and flags (C{--behavior-delay-sleep},
C{--behavior-delay-no-before}), configuration-file keys
(C{[behavior:delay] sleep = 2}), validated values for the control API (from
JSON), and the reference tables of the documentation.

A declared type is C{int}, C{float}, C{bool}, C{str}, C{list[int]},
C{list[float]}, C{list[str]}, or an L{OptionType} such as L{Number},
L{Choice} or L{ListOf} when the value has bounds or a closed set of values.
Those types and L{OptionError} are defined in L{txvaurien.optiontypes} and
importable from here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from txvaurien.optiontypes import (
    UNITS,
    Boolean,
    Choice,
    Duration,
    ListOf,
    Number,
    OptionError,
    OptionType,
    String,
    optionType,
)

__all__ = [
    "UNITS",
    "Boolean",
    "Choice",
    "Duration",
    "ListOf",
    "Number",
    "OptionError",
    "OptionSpec",
    "OptionType",
    "String",
    "defaults",
    "docsTable",
    "flagName",
    "helpText",
    "optionType",
    "specs",
    "usageParameters",
    "validate",
]


class OptionSpec:
    """
    One declared option, read.

    @ivar name: the option's name as declared (C{"average_size"}).
    @ivar description: the declared description.
    @ivar type: its L{OptionType}.
    @ivar default: its declared default.
    """

    __slots__ = ("name", "description", "type", "default")

    def __init__(self, name: str, description: str, type: OptionType, default: Any):
        self.name = name
        self.description = description
        self.type = type
        self.default = default

    @property
    def isFlag(self) -> bool:
        """
        Whether the option is a boolean, which the command line spells as a
        flag and its C{no-} form.
        """
        return isinstance(self.type, Boolean)


def specs(declaration: Any) -> dict[str, OptionSpec]:
    """
    Read a declaration's C{options} mapping.

    @param declaration: anything with an C{options} attribute (a plugin, or
        a plain mapping holder).
    @raise TypeError: if the declaration is malformed; that is a bug in the
        plugin, reported when it is loaded.
    """
    options = declaration if isinstance(declaration, Mapping) else declaration.options
    result = {}
    for name, entry in options.items():
        try:
            description, declared, default = entry
        except (TypeError, ValueError):
            raise TypeError(
                "option {!r} must be (description, type, default), got {!r}".format(
                    name, entry
                )
            )
        kind = optionType(declared)
        if default is not None:
            try:
                default = kind.check(default)
            except ValueError as e:
                raise TypeError(
                    "default of option {!r} is invalid: {}".format(name, e)
                )
        result[name] = OptionSpec(name, description, kind, default)
    return result


def defaults(declaration: Any) -> dict[str, Any]:
    """
    Every declared option with its default value.
    """
    return {name: spec.default for name, spec in specs(declaration).items()}


def validate(
    declaration: Any,
    values: Mapping[str, Any],
    where: str = "",
    partial: bool = False,
) -> dict[str, Any]:
    """
    Check values given for a declaration's options.

    @param values: option name to value; text values (command line, INI)
        are parsed, others (JSON, Python) are checked.  Names may use
        dashes for underscores.
    @param where: a prefix for error names (C{"behavior-delay-"},
        C{"[behavior:delay] "}).
    @param partial: if true, return only the given options; otherwise
        fill the others with their defaults.

    @raise OptionError: naming the first unknown option or invalid value.
    """
    known = specs(declaration)
    result = {} if partial else {n: s.default for n, s in known.items()}
    for given, value in values.items():
        name = given.replace("-", "_")
        spec = known.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            raise OptionError(
                where + given,
                "unknown option; known: {}".format(", ".join(sorted(known)) or "none"),
                close[0] if close else None,
            )
        try:
            result[name] = spec.type.check(value)
        except ValueError as e:
            raise OptionError(where + given, str(e))
    return result


def flagName(kind: str, pluginName: str, optionName: str) -> str:
    """
    The long command-line option for a plugin option, without C{--}:
    C{flagName("behavior", "slow_close", "delay")} is
    C{"behavior-slow-close-delay"}.
    """
    return "-".join(
        [kind, pluginName.replace("_", "-"), optionName.replace("_", "-")]
    )


def usageParameters(
    kind: str, plugins: Iterable[Any]
) -> tuple[list[list[Any]], list[list[Any]], dict[str, tuple[str, str, bool | None]]]:
    """
    Command-line options for every option of C{plugins}, in the shape
    L{twisted.python.usage.Options} wants.

    @param kind: C{"behavior"} or C{"protocol"}.
    @return: C{(optParameters, optFlags, index)}: C{index} maps each
        generated option name to C{(pluginName, optionName, flagValue)},
        where C{flagValue} is L{None} for a parameter and C{True} or
        C{False} for the two flags of a boolean.
    """
    parameters: list[list[Any]] = []
    flags: list[list[Any]] = []
    index: dict[str, tuple[str, str, bool | None]] = {}
    for plugin in plugins:
        for spec in specs(plugin).values():
            long = flagName(kind, plugin.name, spec.name)
            if spec.isFlag:
                off = flagName(kind, plugin.name, "no-" + spec.name)
                flags.append([long, None, "{} (default: {})".format(
                    spec.description, spec.type.format(spec.default))])
                flags.append([off, None, "Turn off --{}.".format(long)])
                index[long] = (plugin.name, spec.name, True)
                index[off] = (plugin.name, spec.name, False)
            else:
                parameters.append([long, None, None, helpText(spec)])
                index[long] = (plugin.name, spec.name, None)
    return parameters, flags, index


def helpText(spec: OptionSpec) -> str:
    """
    An option's line of help: its description, its type (with the unit of
    a duration) and its default, if it has one.
    """
    text = spec.description
    if not isinstance(spec.type, String):
        text += " [{}]".format(spec.type.helpName)
    if spec.default is not None:
        text += " (default: {})".format(spec.type.format(spec.default))
    return text


def _formatDefault(spec: OptionSpec) -> str:
    if spec.default is None:
        return "none"
    return spec.type.format(spec.default)


def docsTable(declaration: Any, kind: str) -> str:
    """
    A reStructuredText table of a plugin's options: name, type, default,
    command-line option and description.
    """
    rows = [("Option", "Type", "Default", "Command line", "Description")]
    for spec in specs(declaration).values():
        rows.append((
            "``{}``".format(spec.name),
            spec.type.helpName,
            "``{}``".format(_formatDefault(spec)),
            "``--{}``".format(flagName(kind, declaration.name, spec.name)),
            spec.description,
        ))
    if len(rows) == 1:
        return "This {} has no options.\n".format(kind)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            lines.append(rule)
    lines.append(rule)
    return "\n".join(lines) + "\n"
