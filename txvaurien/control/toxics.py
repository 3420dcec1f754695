# -*- test-case-name: txvaurien.test.test_control_toxiproxy -*-
"""
Toxiproxy's toxics as txvaurien behaviors.

A toxic is a named, configured behavior acting on one stream of one proxy:
its C{type} is a behavior name, its C{stream} the behavior's C{direction},
its C{toxicity} the behavior's C{toxicity}, and its C{attributes} the
behavior's other options (the behaviors of Toxiproxy's toxics use
Toxiproxy's attribute names and units).

Two things follow Toxiproxy rather than the behaviors' own defaults, so
clients written for Toxiproxy see what they expect: an attribute left out
when a toxic of one of Toxiproxy's seven types is created is zero, as in
Toxiproxy (a zero that is not a valid value, such as C{bandwidth}'s
C{rate}, is refused instead of stalling the connection); and those types
show exactly Toxiproxy's attributes, plus any option of ours given a value
other than its default.
"""

from __future__ import annotations

import math
from typing import Any

from txvaurien import options
from txvaurien.control import errors
from txvaurien.control.jsonio import float32, goField
from txvaurien.frames import DOWNSTREAM, UPSTREAM
from txvaurien.match import MatchError
from txvaurien.match import parse as parseMatch
from txvaurien.registry import Registry

#: Toxiproxy's attributes of each of its toxic types, in the order it
#: prints them, with the value it gives one left out.
TOXIPROXY_ATTRIBUTES: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
    "reset_peer": {"timeout": 0},
}

_COMMON = ("direction", "toxicity", "match")
_MAX_FLOAT32 = 3.4028234663852886e38


def toxicTypes(registry: Registry) -> list[str]:
    """
    The names a toxic's C{type} may take: every behavior the registry
    knows that can act (not C{dummy}).
    """
    return [b.name for b in registry.behaviors if not getattr(b, "inert", False)]


def _ownOptions(template: Any) -> list[str]:
    return [name for name in options.specs(template) if name not in _COMMON]


class Toxic:
    """
    A toxic of a managed proxy.

    @ivar name: its name, unique within its proxy.
    @ivar type: the behavior's name.
    @ivar stream: the stream as the client spelled it.
    @ivar behavior: the configured behavior; its C{settings} are live.
    """

    __slots__ = ("name", "type", "stream", "behavior", "template")

    def __init__(self, name: str, type: str, stream: str, behavior: Any, template: Any):
        self.name = name
        self.type = type
        self.stream = stream
        self.behavior = behavior
        self.template = template

    @property
    def direction(self) -> str:
        """
        C{upstream} or C{downstream}.
        """
        return str(self.behavior.settings["direction"])

    @property
    def toxicity(self) -> float:
        return float(self.behavior.settings["toxicity"])

    def attributes(self) -> dict[str, Any]:
        """
        The attributes as Toxiproxy clients see them.
        """
        settings = self.behavior.settings
        known = options.specs(self.template)
        shown = TOXIPROXY_ATTRIBUTES.get(self.type)
        if shown is None:
            return {name: settings[name] for name in _ownOptions(self.template)}
        result = {name: settings[name] for name in shown}
        for name in _ownOptions(self.template):
            if name not in result and settings[name] != known[name].default:
                result[name] = settings[name]
        return result

    def asJSON(self) -> dict[str, Any]:
        """
        Toxiproxy's representation, in its field order.
        """
        result = {
            "attributes": self.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": float32(self.toxicity),
        }
        if self.behavior.settings.get("match"):
            result["match"] = self.behavior.settings["match"]
        return result

    def __repr__(self) -> str:
        return "<Toxic {} {} {} {!r}>".format(
            self.name, self.type, self.stream, self.behavior.settings)


def _string(body: dict[str, Any], field: str, default: str) -> str:
    found, value = goField(body, field)
    if not found or value is None:
        return default
    if not isinstance(value, str):
        raise errors.typeMismatch(value, "ToxicWrapper", field, "string")
    return value


def _toxicity(value: Any, struct: str = "ToxicWrapper") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise errors.typeMismatch(value, struct, "toxicity", "float32")
    if not math.isfinite(value) or abs(value) > _MAX_FLOAT32:
        raise errors.badBody(
            "json: cannot unmarshal number {} into Go struct field {}.toxicity "
            "of type float32".format(value, struct), "toxicity")
    if not 0.0 <= value <= 1.0:
        raise errors.badBody(
            "toxicity: expected a probability between 0 and 1, got {}".format(value),
            "toxicity")
    return float(value)


def _attributes(template: Any, type: str, given: Any) -> dict[str, Any]:
    """
    Map the attributes a client gave to option names, case-insensitively
    as Go does; C{null} values count as not given.
    """
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise errors.typeMismatch(given, "ToxicWrapper", "attributes", "toxics." + type)
    own = _ownOptions(template)
    lowered = {name.lower(): name for name in own}
    result: dict[str, Any] = {}
    for key, value in given.items():
        name = key if key in own else lowered.get(key.lower())
        if name is None:
            raise errors.badBody(
                "unknown attribute {!r} for toxic type {}; known: {}".format(
                    key, type, ", ".join(own) or "none"), key)
        if value is not None:
            result[name] = value
    return result


def _match(body: dict[str, Any]) -> str | None:
    """
    Our extension: an optional C{match} field (client address or
    connection ordinal; toxics act under connection scope).
    """
    text = _string(body, "match", "")
    if not text:
        return None
    try:
        parsed = parseMatch(text)
        if parsed is not None:
            parsed.check(None, requestScope=False)
    except MatchError as e:
        raise errors.badBody("match: {}".format(e), "match")
    return text


def _configure(
    template: Any, type: str, values: dict[str, Any], zeroFilled: set[str]
) -> Any:
    try:
        settings = options.validate(template, values)
    except options.OptionError as e:
        if e.name in zeroFilled:
            raise errors.badBody(
                "attribute {} is required: {} (Toxiproxy's default, 0, would "
                "stall or break the connection)".format(e.name, e.description), e.name)
        raise errors.badBody("{}: {}".format(e.name, e.description), e.name)
    return template.configure(settings)


def buildToxic(registry: Registry, body: Any, taken: set[str]) -> Toxic:
    """
    Make a toxic from a C{POST /proxies/NAME/toxics} body, checking it as
    Toxiproxy does and in the same order (field types, stream, name, type,
    name taken, attributes), then our bounds on every value.

    @param taken: the names of the proxy's toxics.
    @raise txvaurien.control.errors.ApiError: with Toxiproxy's message.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise errors.badBody(
            "json: cannot unmarshal {} into Go value of type toxics.ToxicWrapper".format(
                "array" if isinstance(body, list) else "value"))
    name = _string(body, "name", "")
    type = _string(body, "type", "")
    stream = _string(body, "stream", DOWNSTREAM)
    found, toxicity = goField(body, "toxicity")
    toxicity = 1.0 if not found or toxicity is None else toxicity
    if isinstance(toxicity, bool) or not isinstance(toxicity, (int, float)):
        raise errors.typeMismatch(toxicity, "ToxicWrapper", "toxicity", "float32")
    direction = stream.lower()
    if direction not in (UPSTREAM, DOWNSTREAM):
        raise errors.invalidStream()
    if not name:
        name = "{}_{}".format(type, stream)
    if "/" in name:
        raise errors.badBody("toxic name {!r} must not contain '/'".format(name), "name")
    if type not in toxicTypes(registry):
        raise errors.invalidToxicType()
    if name in taken:
        raise errors.toxicExists()
    template = registry.behaviors.get(type)
    _, given = goField(body, "attributes")
    attributes = _attributes(template, type, given)
    zero = dict(TOXIPROXY_ATTRIBUTES.get(type, {}))
    zeroFilled = set(zero) - set(attributes)
    values = {**zero, **attributes, "direction": direction,
              "toxicity": _toxicity(toxicity), "match": _match(body)}
    behavior = _configure(template, type, values, zeroFilled)
    return Toxic(name, type, stream, behavior, template)


def updateToxic(toxic: Toxic, body: Any) -> bool:
    """
    Apply a C{PATCH /proxies/NAME/toxics/TOXIC} body: C{attributes} given
    are merged over the current ones, C{toxicity} replaces the current
    one; anything else (C{type}, C{stream}, C{name}) is ignored, as in
    Toxiproxy.  Settings change in place, so live connections see them.

    @return: whether the toxicity changed (the proxy's table must then be
        rebuilt, so that the new probability is drawn).
    @raise txvaurien.control.errors.ApiError: for an invalid body; the
        toxic is then unchanged.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise errors.badBody(
            "json: cannot unmarshal {} into Go value of type struct".format(
                "array" if isinstance(body, list) else "value"))
    _, given = goField(body, "attributes")
    attributes = _attributes(toxic.template, toxic.type, given)
    found, toxicity = goField(body, "toxicity")
    values = dict(attributes)
    if found and toxicity is not None:
        values["toxicity"] = _toxicity(toxicity, "struct")
    try:
        checked = options.validate(toxic.template, values, partial=True)
    except options.OptionError as e:
        raise errors.badBody("{}: {}".format(e.name, e.description), e.name)
    before = toxic.toxicity
    toxic.behavior.settings.update(checked)
    return toxic.toxicity != before
