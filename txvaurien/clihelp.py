# -*- test-case-name: txvaurien.test.test_clihelp -*-
"""
The text C{twistd vaurien} prints about itself: C{--help}, the short
pointer printed with a usage error, C{--help-behaviors},
C{--help-behavior NAME}, C{--help-protocols}, C{--help-protocol NAME} and
C{--version}.

C{--help} starts with the options everyone needs and lists the behaviors
and protocols with their option names only; the full description of each
plugin option is one more command away, so that the common C{direction}
and C{toxicity} options are explained once instead of once per behavior.
"""

from __future__ import annotations

import difflib
import inspect
import os
import platform
import re
import sys
import textwrap
from typing import Any, Iterable

import twisted

from txvaurien import __version__, options

#: The options of the first section of C{--help}, in this order.
ESSENTIAL = ("proxy", "backend", "protocol", "behavior", "seed", "http")

#: Options every behavior has, explained once.
COMMON_BEHAVIOR_OPTIONS = ("direction", "toxicity", "match")

_NOT_RECOGNIZED = re.compile(r"^option (--?[\w-]+) not recognized$")

_EXAMPLES = """\
Examples:
  {prog} -n vaurien --backend demo --behavior 30:delay --behavior-delay-sleep 250ms
  {prog} -n vaurien --proxy 127.0.0.1:6380 --backend 127.0.0.1:6379 \\
      --protocol redis --behavior 20:latency,10:error --seed 42
  {prog} -n vaurien --http --http-port 8474      (a bare control server)
"""


def program() -> str:
    """
    The name the user ran (C{twistd} or C{twist}), for the commands quoted
    in help and errors.
    """
    name = os.path.basename(sys.argv[0] or "twistd")
    return name if name in ("twistd", "twist") else "twistd"


def versionText() -> str:
    """
    What C{--version} prints: txvaurien's version, and Twisted's and
    Python's.
    """
    return "txvaurien {} (Twisted {}, Python {})".format(
        __version__, twisted.__version__, platform.python_version())


def longOptions(config: Any) -> list[str]:
    """
    Every long option C{config} (a L{twisted.python.usage.Options})
    accepts, without dashes.
    """
    return [name.rstrip("=") for name in config.longOpt]


def explain(message: str, known: Iterable[str]) -> str:
    """
    A usage error's message, with a suggestion when it names an unknown
    option close to a known one.

    @param known: the long options that exist, without dashes.
    """
    match = _NOT_RECOGNIZED.match(message)
    if match is None:
        return message
    given = match.group(1).lstrip("-").partition("=")[0]
    close = difflib.get_close_matches(given, list(known), n=1, cutoff=0.6)
    if close:
        return "{} (did you mean --{}?)".format(message, close[0])
    return message


def briefUsage(config: Any) -> str:
    """
    What a usage error prints besides its reason: the synopsis and where
    to find help, in two lines.
    """
    prog = program()
    return (
        "       {prog} [options] vaurien {synopsis}\n"
        "Help:  {prog} vaurien --help; behaviors: {prog} vaurien --help-behaviors"
    ).format(prog=prog, synopsis=config.synopsis)


def _row(long: str, short: str | None, doc: str, parameter: bool) -> tuple[str, str]:
    flag = "{}--{}{}".format("-{}, ".format(short) if short else "    ", long,
                             "=" if parameter else "")
    return flag, doc


def _section(title: str, rows: list[tuple[str, str]], width: int) -> str:
    """
    A titled two-column table of options, in the order given.
    """
    column = min(max(len(flag) for flag, _ in rows), 28) + 4
    lines = textwrap.wrap(title, width, subsequent_indent="  ")
    for flag, doc in rows:
        wrapped = textwrap.wrap(doc, max(width - column, 20)) or [""]
        if len(flag) + 4 > column:
            lines.append("  " + flag)
        else:
            lines.append("  " + flag.ljust(column - 2) + wrapped.pop(0))
        lines.extend(" " * column + line for line in wrapped)
    return "\n".join(lines) + "\n"


def _wrapped(text: str, width: int, indent: str = "") -> str:
    return "\n".join(textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=indent,
        break_on_hyphens=False)) + "\n"


def fullUsage(config: Any, core: dict[str, Any], shorts: dict[str, str],
              width: int | None = None) -> str:
    """
    C{--help}: the essential options, the others, then the behaviors and
    protocols with the names of their options.

    @param config: the L{txvaurien.tap.BaseOptions} instance.
    @param core: the core option declarations (L{txvaurien.tap.CORE}).
    @param shorts: core option name to its one-letter form.
    """
    width = width or int(os.environ.get("COLUMNS", "80"))
    prog = program()
    specs = options.specs(core)
    registry = config.registry
    essential: list[tuple[str, tuple[str, str]]] = []
    more: list[tuple[str, str]] = []
    for spec in specs.values():
        long = spec.name.replace("_", "-")
        if spec.name == "protocol":
            doc = "{}: {} (default: {})".format(
                spec.description, ", ".join(registry.protocols.names()), spec.default)
        elif spec.isFlag and spec.name not in ESSENTIAL:
            doc = "{} (default: {}; --no-{} turns it off)".format(
                spec.description, spec.type.format(spec.default), long)
        elif spec.isFlag or spec.name == "proxy":
            doc = "{} (default: {})".format(spec.description, spec.type.format(spec.default))
        else:
            doc = options.helpText(spec)
        row = _row(long, shorts.get(spec.name), doc, not spec.isFlag)
        if spec.name in ESSENTIAL:
            essential.append((spec.name, row))
        else:
            more.append(row)
    first = [row for _, row in sorted(essential, key=lambda pair: ESSENTIAL.index(pair[0]))]
    for name in ("config", "behavior-option", "protocol-option", "help-behaviors",
                 "help-behavior", "help-protocols", "help-protocol", "version", "help"):
        method = getattr(config, "opt_" + name.replace("-", "_"), None)
        doc = config.docs.get(name) or inspect.getdoc(method) or ""
        more.append(_row(name, None, " ".join(doc.split()), name + "=" in config.longOpt))
    behaviors = _wrapped("; ".join(
        "{} ({})".format(behavior.name, ", ".join(
            n.replace("_", "-") for n in options.specs(behavior)
            if n not in COMMON_BEHAVIOR_OPTIONS) or "-")
        for behavior in registry.behaviors) + ".", width, "  ")
    protocols = "".join(
        _wrapped("{}: {}".format(handler.name, ", ".join(
            n.replace("_", "-") for n in options.specs(handler)) or "-"), width, "  ")
        for handler in registry.protocols)
    parts = [
        _wrapped(config.longdesc, width),
        _section("Essential options:", first, width),
        _section("More options:", more, width) + _wrapped(
            "Durations take a unit (250ms, 1.5s, 200us, 2m, 1h); a bare number "
            "is in the unit shown for the option.", width, "  "),
        "Behaviors (--behavior NAME; their options are --behavior-NAME-OPTION):\n"
        + behaviors + _wrapped(
            "Every behavior but dummy also takes direction, toxicity and match. Details: "
            "{prog} vaurien --help-behaviors, or --help-behavior NAME.".format(prog=prog),
            width, "  "),
        "Protocols (--protocol NAME; their options are --protocol-NAME-OPTION):\n"
        + protocols + _wrapped(
            "Details: {prog} vaurien --help-protocols, or --help-protocol NAME.".format(
                prog=prog), width, "  "),
    ]
    parts.append(_EXAMPLES.format(prog=prog))
    return "\n".join(parts)


def _summary(plugin: Any) -> str:
    doc = inspect.getdoc(type(plugin)) or ""
    first = doc.split("\n\n")[0]
    return " ".join(re.sub(r"[CLIB]\{([^{}]*)\}", r"\1", first).split())


def pluginHelp(kind: str, plugins: Iterable[Any], width: int | None = None) -> str:
    """
    C{--help-behaviors} or C{--help-protocols}: every plugin of C{kind}
    with the full description of its own options; the options common to
    every behavior are described once, at the top.
    """
    width = width or int(os.environ.get("COLUMNS", "80"))
    plugins = list(plugins)
    parts = []
    if kind == "behavior":
        common: dict[str, Any] = {}
        for plugin in plugins:
            for name, spec in options.specs(plugin).items():
                if name in COMMON_BEHAVIOR_OPTIONS:
                    common.setdefault(name, spec)
        rows = [("  {}=".format(name), "{} [{}]".format(
            spec.description, spec.type.helpName)) for name, spec in common.items()]
        parts.append(_section(
            "Options of every behavior but dummy (--behavior-NAME-OPTION; "
            "each behavior's defaults are given below):", rows, width))
    for plugin in plugins:
        parts.append(onePlugin(kind, plugin, width, common=kind == "behavior"))
    return "\n".join(parts)


def onePlugin(kind: str, plugin: Any, width: int | None = None, common: bool = False) -> str:
    """
    C{--help-behavior NAME} or C{--help-protocol NAME}: a plugin's summary
    and its options in full.

    @param common: if true, the options every behavior has are listed by
        name and default only (L{pluginHelp} explains them once).
    """
    width = width or int(os.environ.get("COLUMNS", "80"))
    text = _wrapped("{} {}: {}".format(kind, plugin.name, _summary(plugin)), width)
    rows = []
    defaults = []
    for spec in options.specs(plugin).values():
        name = spec.name.replace("_", "-")
        if common and spec.name in COMMON_BEHAVIOR_OPTIONS:
            defaults.append("{} {}".format(name, spec.type.format(spec.default)))
            continue
        if spec.isFlag:
            rows.append(("  {} / no-{}".format(name, name), "{} (default: {})".format(
                spec.description, spec.type.format(spec.default))))
        else:
            rows.append(("  {}=".format(name), options.helpText(spec)))
    if rows:
        text += _section(
            "  Options (--{}):".format(options.flagName(kind, plugin.name, "OPTION")),
            rows, width)
    if defaults:
        text += _wrapped("Defaults: " + ", ".join(defaults) + ".", width, "  ")
    if not rows and not defaults:
        text += "  No options.\n"
    return text
