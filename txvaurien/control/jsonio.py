"""
JSON in and out of the control API, spelled the way each API spells it.

Toxiproxy clients see what Go's C{encoding/json} writes: compact, C{1}
rather than C{1.0}, C{<>&} escaped, a C{float32} toxicity rounded to its
shortest form.  Bodies are read the way Go's C{json.Decoder} reads them
(the first value; unknown fields are the caller's business; C{NaN} is not
JSON).  Vaurien's API speaks ordinary Python JSON and reads bodies
strictly.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

_DECODER = json.JSONDecoder(parse_constant=lambda name: _refuseConstant(name))
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


class BodyError(ValueError):
    """
    A request body is not the JSON expected; the message says why, for a
    human.
    """


def _refuseConstant(name: str) -> Any:
    raise ValueError("invalid character {!r} looking for beginning of value".format(name[0]))


def _goValues(value: Any) -> Any:
    """
    C{value} with every integral float made an C{int}, as Go prints them.
    """
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: _goValues(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_goValues(item) for item in value]
    return value


def goJSON(value: Any) -> bytes:
    """
    Encode C{value} as Go's C{json.Marshal} would: compact, in the given
    key order, integral numbers without a fraction, HTML characters
    escaped.
    """
    text = json.dumps(
        _goValues(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def pyJSON(value: Any) -> bytes:
    """
    Encode C{value} for Vaurien's API: ordinary Python JSON.
    """
    return json.dumps(value, allow_nan=False).encode("utf-8")


def float32(value: float) -> float:
    """
    The C{float} whose shortest decimal form is the one Go prints for
    C{value} stored as a C{float32} (Toxiproxy's toxicity).
    """
    if not math.isfinite(value):
        return value
    (stored,) = struct.unpack("f", struct.pack("f", value))
    for digits in range(1, 10):
        text = "{:.{}g}".format(stored, digits)
        if struct.unpack("f", struct.pack("f", float(text)))[0] == stored:
            return float(text)
    return stored


def _syntaxMessage(text: str, error: json.JSONDecodeError) -> str:
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated"):
        return "unexpected EOF"
    return "invalid character {!r} at offset {}: {}".format(
        text[error.pos], error.pos, error.msg[0].lower() + error.msg[1:]
    )


def decodeGo(body: bytes) -> Any:
    """
    Read the first JSON value of C{body}, as Go's C{json.Decoder} does
    (what follows it is ignored).

    @raise BodyError: with Go's wording where it matters to clients
        (C{EOF} for an empty body).
    """
    text = body.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip())
    if not text.strip():
        raise BodyError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise BodyError(_syntaxMessage(text, e))
    except (ValueError, RecursionError) as e:
        raise BodyError(str(e))
    return value


def decodeStrict(body: bytes) -> Any:
    """
    Read C{body} as exactly one JSON value.

    @raise BodyError: saying what is wrong.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BodyError("body is not UTF-8: {}".format(e.reason))
    if not text.strip():
        raise BodyError("empty body; expected a JSON object")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise BodyError("invalid JSON: {} (line {} column {})".format(e.msg, e.lineno, e.colno))
    except (ValueError, RecursionError) as e:
        raise BodyError("invalid JSON: {}".format(e))


def goTypeName(value: Any) -> str:
    """
    What Go's JSON errors call the type of a decoded value.
    """
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def goField(obj: dict[str, Any], name: str) -> tuple[bool, Any]:
    """
    Look a struct field up the way Go's decoder does: an exact key, else a
    key equal to C{name} ignoring case.

    @return: C{(found, value)}.
    """
    if name in obj:
        return True, obj[name]
    for key, value in obj.items():
        if key.lower() == name:
            return True, value
    return False, None
