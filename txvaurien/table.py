"""
The behavior table: which behaviors act on a connection or request.

A table is written C{20:delay,10:error+latency}: each comma-separated
alternative is an integer weight (a percentage) and one behavior, or a
chain of behaviors joined by C{+} (applied in that order).  The weights add
up to at most 100; the remainder goes to C{dummy}.  A bare name means
C{100:name}.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from txvaurien import logs, options, scopes
from txvaurien.match import Match, MatchError, checkTable
from txvaurien.match import parse as parseMatch
from txvaurien.registry import Registry, canonicalName

_log = logs.logger("txvaurien.table")

CONNECTION_SCOPE = "connection"
REQUEST_SCOPE = "request"
SCOPES = (CONNECTION_SCOPE, REQUEST_SCOPE)


class TableError(ValueError):
    """
    A behavior table specification or its settings are invalid.
    """


def parseSpec(spec: str) -> list[tuple[int, list[str]]]:
    """
    Read a table specification into C{(weight, [name, ...])} pairs.

    @raise TableError: with a message naming the faulty part.
    """
    alternatives = []
    total = 0
    if not spec.strip():
        raise TableError("empty behavior specification")
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise TableError("empty alternative in behavior specification {!r}".format(spec))
        if ":" in part:
            weightText, _, chain = part.partition(":")
            try:
                weight = int(weightText.strip())
            except ValueError:
                raise TableError(
                    "weight {!r} in {!r} is not an integer percentage".format(
                        weightText, part)
                )
        else:
            weight, chain = 100, part
        if weight < 0 or weight > 100:
            raise TableError(
                "weight {} in {!r} is not between 0 and 100".format(weight, part)
            )
        names = [canonicalName(name) for name in chain.split("+")]
        if not all(names):
            raise TableError("empty behavior name in {!r}".format(part))
        total += weight
        alternatives.append((weight, names))
    if total > 100:
        raise TableError(
            "weights in {!r} add up to {}, more than 100".format(spec, total)
        )
    return alternatives


class BehaviorTable:
    """
    A parsed, configured behavior table.

    @ivar spec: the specification it was built from.
    @ivar scope: L{CONNECTION_SCOPE} or L{REQUEST_SCOPE}.
    @ivar behaviors: name to configured L{IBehavior}, one per name.
    @ivar alternatives: C{(weight, chain)} pairs; weights add up to 100.
    @ivar inert: C{True} when no choice can ever give a fault.
    @ivar matches: behavior to its parsed C{match}, for the behaviors
        that have one.
    @ivar warnings: why some behaviors can never act in this scope.
    """

    def __init__(
        self,
        spec: str,
        alternatives: Sequence[tuple[int, Sequence[Any]]],
        scope: str = CONNECTION_SCOPE,
    ) -> None:
        self.spec = spec
        self.scope = scope
        self.behaviors: dict[str, Any] = {}
        chosen = []
        total = 0
        for weight, chain in alternatives:
            active = tuple(b for b in chain if not getattr(b, "inert", False))
            for behavior in chain:
                self.behaviors.setdefault(behavior.name, behavior)
            chosen.append((weight, active))
            total += weight
        if total < 100:
            chosen.append((100 - total, ()))
        self.alternatives = [(w, chain) for w, chain in chosen if w > 0]
        self.inert = not any(
            chain and any(b.settings.get("toxicity", 1.0) > 0 for b in chain)
            for _, chain in self.alternatives
        )
        self._active = {b for _, chain in self.alternatives for b in chain}
        self.matches: dict[Any, Match] = {}
        for behavior in self.behaviors.values():
            try:
                match = parseMatch(behavior.settings.get("match") or "")
                if match is not None:
                    match.check(None, scope == REQUEST_SCOPE)
            except MatchError as e:
                raise TableError("behavior {} option match: {}".format(behavior.name, e))
            if match is not None:
                self.matches[behavior] = match
        self.warnings = [
            "behavior {} acts on whole connections only: it can never act "
            "under request scope".format(b.name)
            for b in self.behaviors.values()
            if scope == REQUEST_SCOPE and _connectionOnly(b)
        ]

    def choose(
        self,
        rng: random.Random | None,
        request: Any = None,
        connection: Any = None,
        head: bytes | None = None,
    ) -> tuple[Any, ...]:
        """
        Draw one chain of behaviors, with toxicity applied to each.

        Behaviors with a C{match} take part only when the request (or,
        under connection scope, the connection) matches.  When no
        behavior of the table can act on it, nothing is drawn: such
        traffic consumes no randomness.

        @param rng: the random stream to draw from; it is used only when
            there is a real choice, so an inert table costs nothing.
        @param request: the request's L{txvaurien.frames.Message}, or
            L{None} under connection scope.
        @param connection: the L{txvaurien.interfaces.IConnection}; without
            it, no behavior with a match acts.
        @param head: the bytes of the request's first frame, for match
            fields the framers do not record.
        @return: the behaviors that act, in order (empty for C{dummy}).
        """
        if self.inert:
            return ()
        assert rng is not None
        excluded: Any = ()
        matches = self.matches
        if matches:
            excluded = {
                behavior for behavior, match in matches.items()
                if not match.matches(request, connection, head)
            }
            if excluded and excluded >= self._active:
                return ()
        if len(self.alternatives) == 1:
            chain = self.alternatives[0][1]
        else:
            draw = rng.randrange(100)
            for weight, chain in self.alternatives:
                if draw < weight:
                    break
                draw -= weight
        acting = []
        for behavior in chain:
            if behavior in excluded:
                continue
            toxicity = behavior.settings.get("toxicity", 1.0)
            if toxicity >= 1.0 or (toxicity > 0.0 and rng.random() < toxicity):
                acting.append(behavior)
        return tuple(acting)

    def describe(self) -> str:
        """
        The table in specification form, with the dummy remainder.
        """
        return ",".join(
            "{}:{}".format(w, "+".join(b.name for b in chain) or "dummy")
            for w, chain in self.alternatives
        )


def _connectionOnly(behavior: Any) -> bool:
    """
    Whether a behavior acts only under connection scope (it declares
    C{scopes}, see L{txvaurien.scopes}).
    """
    return not scopes.actsIn(behavior, REQUEST_SCOPE)


def buildTable(
    spec: str,
    registry: Registry,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    scope: str = CONNECTION_SCOPE,
    protocol: str | None = None,
) -> BehaviorTable:
    """
    Parse C{spec} and configure its behaviors.

    @param settings: behavior name to option values (text or JSON), for
        behaviors in the table and possibly others (ignored).
    @param protocol: the protocol's name, to check the fields matches
        name; L{None} accepts the fields of any protocol.
    @raise TableError: for a bad specification, or a match naming a field
        the protocol or scope lacks.
    @raise txvaurien.registry.UnknownPlugin: for an unknown behavior.
    @raise txvaurien.options.OptionError: for a bad option value.
    """
    if scope not in SCOPES:
        raise TableError(
            "scope must be one of {}, got {!r}".format(", ".join(SCOPES), scope)
        )
    settings = settings or {}
    configured: dict[str, Any] = {}
    alternatives = []
    for weight, names in parseSpec(spec):
        chain = []
        for name in names:
            if name not in configured:
                template = registry.behaviors.get(name)
                values = options.validate(
                    template,
                    settings.get(name, settings.get(template.name, {})),
                    where="behavior {} option ".format(template.name),
                )
                configured[name] = template.configure(values)
            chain.append(configured[name])
        alternatives.append((weight, chain))
    table = BehaviorTable(spec, alternatives, scope)
    try:
        checkTable(table, protocol)
    except MatchError as e:
        raise TableError(str(e))
    return table
