"""
Finding behaviors and protocol handlers by name.

Three sources, in order of precedence:

  1. built-ins: every module of L{txvaurien.behaviors} and
     L{txvaurien.protocols} is scanned for classes implementing the
     interface;
  2. Twisted plugins: objects providing L{IBehavior} or L{IProtocolHandler}
     (and L{twisted.plugin.IPlugin}) in any C{twisted/plugins/} module on
     the path (L{twisted.plugin.getPlugins});
  3. a dotted path given instead of a name (C{mypkg.mymod.MyBehavior}),
     naming a class (instantiated with its defaults) or an instance.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from typing import Any, Iterable

from twisted.plugin import getPlugins
from twisted.python.reflect import namedAny
from zope.interface.interface import InterfaceClass

from txvaurien import logs, options
from txvaurien.interfaces import IBehavior, IProtocolHandler

_log = logs.logger("txvaurien.registry")


class UnknownPlugin(LookupError):
    """
    No plugin of that kind has that name.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], why: str = ""):
        self.kind = kind
        self.name = name
        #: The known name closest to C{name}, if one is close.
        self.closest = _closest(name, known)
        message = why or "unknown {} {!r}; known: {}".format(
            kind, name, ", ".join(sorted(known))
        )
        LookupError.__init__(self, message)

    def __str__(self) -> str:
        return self.args[0]


def _closest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(canonicalName(name), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def canonicalName(name: str) -> str:
    """
    The registered spelling of a plugin name: dashes become underscores, so
    that C{limit-data} names C{limit_data} (as the command line's
    C{--behavior-limit-data-bytes} spells it).  A dotted path is left as it
    is.
    """
    name = name.strip()
    if "." in name:
        return name
    return name.replace("-", "_")


def _scan(package: str, interface: InterfaceClass) -> list[Any]:
    """
    Instances of every class implementing C{interface} defined in a module
    of C{package}.
    """
    found: list[Any] = []
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(package + "." + info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == module.__name__
                and interface.implementedBy(obj)
                and getattr(obj, "name", "")
            ):
                found.append(obj())
    return found


def _check(kind: str, plugin: Any, origin: str) -> None:
    """
    Refuse a plugin whose declaration is malformed, with a message naming
    where it came from.
    """
    try:
        options.specs(plugin)
    except TypeError as e:
        raise UnknownPlugin(kind, origin, (), "{} {}: {}".format(kind, origin, e))


class Kind:
    """
    The plugins of one kind (behaviors, or protocol handlers).

    @ivar kind: C{"behavior"} or C{"protocol"}.
    @ivar interface: the interface they provide.
    """

    def __init__(self, kind: str, interface: InterfaceClass, plugins: Iterable[Any]):
        self.kind = kind
        self.interface = interface
        self._byName: dict[str, Any] = {}
        for plugin in plugins:
            self.add(plugin)

    def add(self, plugin: Any) -> None:
        """
        Register C{plugin} under its name; the first registered wins.
        """
        key = canonicalName(plugin.name)
        existing = self._byName.get(key)
        if existing is not None:
            if type(existing) is not type(plugin):
                _log.warn(
                    "Ignoring {kind} plugin {plugin!r}: the name {name!r} is taken",
                    kind=self.kind,
                    plugin=plugin,
                    name=plugin.name,
                )
            return
        _check(self.kind, plugin, plugin.name)
        self._byName[key] = plugin

    def __iter__(self):
        return iter(sorted(self._byName.values(), key=lambda p: p.name))

    def names(self) -> list[str]:
        return sorted(self._byName)

    def get(self, name: str) -> Any:
        """
        The unconfigured plugin called C{name} (dashes and underscores
        alike), or found at the dotted path C{name}.

        @raise UnknownPlugin: if there is none, or the object at the path
            does not provide the interface.
        """
        plugin = self._byName.get(canonicalName(name))
        if plugin is not None:
            return plugin
        if "." not in name:
            raise UnknownPlugin(self.kind, name, self._byName)
        try:
            obj = namedAny(name)
        except Exception as e:
            raise UnknownPlugin(
                self.kind, name, (), "cannot import {} {!r}: {}".format(self.kind, name, e)
            )
        if inspect.isclass(obj) and self.interface.implementedBy(obj):
            obj = obj()
        if not self.interface.providedBy(obj):
            raise UnknownPlugin(
                self.kind,
                name,
                (),
                "{!r} does not provide {}".format(name, self.interface.__name__),
            )
        _check(self.kind, obj, name)
        self._byName[name] = obj
        return obj


class Registry:
    """
    Every behavior and protocol handler this process knows.

    @ivar behaviors: a L{Kind} of L{IBehavior}s.
    @ivar protocols: a L{Kind} of L{IProtocolHandler}s.
    """

    def __init__(self, behaviors: Iterable[Any], protocols: Iterable[Any]) -> None:
        self.behaviors = Kind("behavior", IBehavior, behaviors)
        self.protocols = Kind("protocol", IProtocolHandler, protocols)

    @classmethod
    def discover(cls, thirdParty: bool = True, pluginPackage: Any = None) -> "Registry":
        """
        The built-ins, plus Twisted plugins if C{thirdParty}.

        @param pluginPackage: the package to search for plugins
            (L{twisted.plugins} by default).
        """
        behaviors = _scan("txvaurien.behaviors", IBehavior)
        protocols = _scan("txvaurien.protocols", IProtocolHandler)
        if thirdParty:
            behaviors += list(getPlugins(IBehavior, pluginPackage))
            protocols += list(getPlugins(IProtocolHandler, pluginPackage))
        return cls(behaviors, protocols)


_default: Registry | None = None


def defaultRegistry() -> Registry:
    """
    The process-wide registry, discovered on first use.
    """
    global _default
    if _default is None:
        _default = Registry.discover()
    return _default
