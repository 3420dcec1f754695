"""
Sphinx directives that render txvaurien's plugin declarations, so the
reference pages are generated from the same C{options} mappings as the
command line:

  - C{.. txvaurien-plugins:: behavior} (or C{protocol}): every built-in
    plugin of that kind, with its docstring and its options table;
  - C{.. txvaurien-core-options::}: the options of C{twistd vaurien}
    itself.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from txvaurien import options
from txvaurien.registry import Registry

_MARKUP = re.compile(r"[CLIB]\{([^{}]*)\}")


def plainDocstring(obj: Any) -> str:
    """
    An object's docstring with epytext inline markup turned into reST.
    """
    text = inspect.getdoc(obj) or ""

    def literal(match: re.Match[str]) -> str:
        return "``{}``".format(match.group(1))

    return _MARKUP.sub(literal, text)


class _Rendering(SphinxDirective):
    def render(self, text: str) -> list[nodes.Node]:
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(text.splitlines(), "txvaurien"), node)
        return node.children


class PluginsDirective(_Rendering):
    """
    Render every built-in plugin of a kind.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        kind = self.arguments[0]
        registry = Registry.discover(thirdParty=False)
        plugins = registry.behaviors if kind == "behavior" else registry.protocols
        parts = []
        for plugin in plugins:
            title = "``{}``".format(plugin.name)
            parts.append(".. _{}-{}:\n\n{}\n{}\n".format(kind, plugin.name, title, "-" * len(title)))
            parts.append(plainDocstring(type(plugin)) + "\n")
            parts.append("Options:\n\n" + options.docsTable(plugin, kind))
        return self.render("\n".join(parts))


class CoreOptionsDirective(_Rendering):
    """
    Render the options of C{twistd vaurien}.
    """

    def run(self) -> list[nodes.Node]:
        from txvaurien.tap import CORE

        rows = [("Option", "Config key", "Type", "Default", "Description")]
        for spec in options.specs(CORE).values():
            default = "none" if spec.default is None else spec.type.format(spec.default)
            rows.append((
                "``--{}``".format(spec.name.replace("_", "-")),
                "``{}``".format(spec.name),
                spec.type.helpName,
                "``{}``".format(default),
                spec.description,
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        rule = "  ".join("=" * w for w in widths)
        lines = [rule]
        for i, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                lines.append(rule)
        lines.append(rule)
        return self.render("\n".join(lines) + "\n")


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("txvaurien-plugins", PluginsDirective)
    app.add_directive("txvaurien-core-options", CoreOptionsDirective)
    return {"parallel_read_safe": True, "version": "1"}
