# -*- test-case-name: txvaurien.test.test_tls_docs -*-
"""
The reference tables of docs/tls.rst, made from the declarations of the
listener's and the backend's endpoint keywords
(L{txvaurien.tls.server.SERVER_OPTIONS},
L{txvaurien.tls.client.BACKEND_OPTIONS}); a test checks that the page
carries them as made here.
"""

from __future__ import annotations

from typing import Any

from txvaurien import options


def keywordTable(declaration: dict[str, tuple[str, Any, Any]]) -> str:
    """
    A reStructuredText table of endpoint keywords: keyword, type, default
    and description.
    """
    rows = [("Keyword", "Type", "Default", "Description")]
    for spec in options.specs(declaration).values():
        default = "none" if spec.default is None else spec.type.format(spec.default)
        rows.append(("``{}``".format(spec.name), spec.type.name,
                     "``{}``".format(default), spec.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append(rule)
    lines.append(rule)
    return "\n".join(lines) + "\n"


__all__ = ["keywordTable"]
