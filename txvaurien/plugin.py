"""
What behaviors and protocol handlers share: declared options and settings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from txvaurien import options as _options


class Configurable:
    """
    A base for L{txvaurien.interfaces.IPluginDeclaration} providers.

    Subclasses declare C{name} and C{options}; instances carry C{settings},
    every declared option with its value.
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, tuple[str, Any, Any]]] = {}

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = _options.defaults(self)
        if settings:
            self.settings.update(_options.validate(self, settings, partial=True))

    def configure(self, settings: dict[str, Any]) -> Any:
        """
        A new instance of the same class with C{settings} (the missing ones
        at their defaults).
        """
        return type(self)(settings)

    def __repr__(self) -> str:
        return "<{} {!r} {!r}>".format(type(self).__name__, self.name, self.settings)
