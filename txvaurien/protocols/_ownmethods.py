# -*- test-case-name: txvaurien.test.test_ownmethods -*-
"""
Giving each framer class its own copy of the hot methods it inherits.

CPython's specializing interpreter (3.11, where this was measured; later
versions work the same way) caches attribute access where it happens: the
cache of an instruction such as C{self.state} lives in the code object of
the function and holds one type.  A connection's two framers are often
two subclasses of one base (a request framer and a response framer), fed
in turns, so a method both inherit meets the two types alternately and
its attribute accesses keep missing their caches and fall back to the
generic lookup.  A copy of the method per class (a new function on a copy
of the code object) gives each class caches of its own, and the same
behaviour: the copy has the same bytecode, globals, defaults and closure.

Interpreters that do not specialize (CPython 3.10, PyPy) run the copies
exactly as they would the originals.
"""

from __future__ import annotations

from types import FunctionType
from typing import Any, Callable, ClassVar, Iterable, TypeVar

_Class = TypeVar("_Class", bound=type)


def copyMethods(cls: type, names: Iterable[str]) -> None:
    """
    Give C{cls} its own copy of each method in C{names} that it inherits.
    A method the class defines itself is already its own, and is left
    alone.  L{txvaurien.protocols.base.Framer} calls this for every
    subclass, with the names its bases list in C{hot}.

    @param names: names of plain functions.
    @raise TypeError: if a name is not a plain function of the class or
        its bases.
    """
    for name in names:
        if name in vars(cls):
            continue
        function = getattr(cls, name, None)
        if not isinstance(function, FunctionType):
            raise TypeError("{}.{} is not a plain function".format(cls.__name__, name))
        copy = FunctionType(
            function.__code__.replace(), function.__globals__, function.__name__,
            function.__defaults__, function.__closure__)
        copy.__kwdefaults__ = function.__kwdefaults__
        copy.__qualname__ = function.__qualname__
        copy.__doc__ = function.__doc__
        copy.__module__ = function.__module__
        copy.__annotations__ = function.__annotations__
        copy.__dict__.update(function.__dict__)
        setattr(cls, name, copy)


class HotMethods:
    """
    A base class whose subclasses get their own copy (L{copyMethods}) of
    each method that a class of their bases, or they themselves, list in
    C{hot}, when they are defined: the copying is declared once, where
    the methods are, and no list of classes is kept by hand.

    L{txvaurien.protocols.base.Framer} and the HTTP heads build on it.

    @cvar hot: names of plain functions.
    """

    hot: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for base in reversed(cls.__mro__):
            for name in vars(base).get("hot", ()):
                if name not in names:
                    names.append(name)
        copyMethods(cls, names)


def ownMethods(*names: str) -> Callable[[_Class], _Class]:
    """
    A class decorator: L{copyMethods} for the class, with C{names}, for a
    class that cannot build on L{HotMethods}.

    @param names: names of plain functions.
    @raise TypeError: (when decorating) if a name is not a plain function
        of the class or its bases.
    """

    def decorate(cls: _Class) -> _Class:
        copyMethods(cls, names)
        return cls

    return decorate


__all__ = ["HotMethods", "copyMethods", "ownMethods"]
