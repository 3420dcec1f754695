# -*- test-case-name: txvaurien.test.test_cli -*-
"""
Which behaviors of a table can act under its scope.

A behavior declares the scopes it acts in with a C{scopes} class
attribute (L{txvaurien.behaviors.base.Behavior.scopes}: both by default);
one without the attribute (a third-party behavior not built on
L{txvaurien.behaviors.base.Behavior}) is assumed to act in both.
"""

from __future__ import annotations

from typing import Any

#: Every scope, the default of a behavior that does not say.
ALL = ("connection", "request")


def actsIn(behavior: Any, scope: str) -> bool:
    """
    Whether C{behavior} acts under C{scope}.
    """
    return scope in getattr(behavior, "scopes", ALL)


def idle(table: Any) -> list[str]:
    """
    The names of the behaviors of C{table} that cannot act under its
    scope, in name order.
    """
    return sorted(name for name, behavior in table.behaviors.items()
                  if not actsIn(behavior, table.scope))


def warnings(table: Any, protocol: str) -> list[str]:
    """
    One line of warning per behavior of C{table} that would do nothing,
    saying what to do instead.
    """
    return [
        "behavior {} acts only under {} scope; under {} scope (protocol {}) it "
        "does nothing: add --behavior-scope {}".format(
            name, " or ".join(getattr(table.behaviors[name], "scopes", ALL)),
            table.scope, protocol, getattr(table.behaviors[name], "scopes", ALL)[0])
        for name in idle(table)
    ]
