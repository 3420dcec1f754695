"""
Request matching: aim a behavior at some requests only.

Every behavior has a C{match} option, a string of whitespace-separated
terms that must all hold::

    method=POST path=/api/*          glob on a field (case-insensitive for
                                     method, command, verb and host)
    sql~'^UPDATE\\s+users'           regular expression (searched)
    client=10.0.0.0/8                the client's address is in a network
    connection=0-9                   connection ordinal (a number, a range
                                     or a glob)
    header.X-Api-Key=*               an HTTP header is present (any value)
    !command=PING                    a term preceded by ! must not hold

A value may be quoted (shell rules).  Which fields exist depends on the
protocol (L{FIELDS}); C{client}, C{connection} and C{request} (the request's
ordinal on its connection) exist for every protocol.

Fields come from the metadata the framers put on a request
(L{txvaurien.frames.Message.meta}); the ones they do not record (a redis
key, an HTTP host or header, SQL text) are read from the bytes of the
request's first frame, and only when a match names them.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import shlex
from functools import lru_cache
from typing import Any, Callable

#: Fields every protocol has.
COMMON = frozenset(["client", "connection", "request"])

#: Fields known before any request is read: the only ones a match may use
#: under connection scope.
CONNECTION_FIELDS = frozenset(["client", "connection"])

#: Fields each built-in protocol adds to L{COMMON}.  C{header} stands for
#: C{header.NAME}.
FIELDS: dict[str, frozenset[str]] = {
    "tcp": frozenset(),
    "http": frozenset(["method", "path", "host", "header", "command"]),
    "redis": frozenset(["command", "key"]),
    "memcache": frozenset(["command", "key"]),
    "mysql": frozenset(["command", "verb", "sql"]),
    "postgresql": frozenset(["command", "verb", "sql"]),
    "smtp": frozenset(["command"]),
}

#: Every field of every built-in protocol.
ALL_FIELDS = COMMON.union(*FIELDS.values())

_CASELESS = frozenset(["method", "command", "verb", "host"])
_NUMERIC = frozenset(["connection", "request"])
_RANGE = re.compile(r"^(\d+)-(\d+)$")


class MatchError(ValueError):
    """
    A match is malformed, or names a field its protocol or scope lacks.
    """


def protocolFields(protocol: str | None) -> frozenset[str]:
    """
    The fields a match may name for a protocol: L{COMMON} and the
    protocol's own (L{FIELDS}, or the handler's C{matchFields} for a
    third-party protocol, else C{command}).  L{None} means any protocol.
    """
    if protocol is None:
        return ALL_FIELDS
    own = FIELDS.get(protocol)
    if own is None:
        own = frozenset(["command"])
    return COMMON | own


class Term:
    """
    One condition of a match.

    @ivar field: the field's name (C{"header"} for a header).
    @ivar header: for C{header.NAME}, the header's name in lower case.
    @ivar operator: C{"="} (glob, CIDR or number) or C{"~"} (regular
        expression).
    @ivar negated: whether the term must not hold.
    @ivar text: the term as written.
    """

    __slots__ = ("field", "header", "operator", "negated", "text", "test")

    def __init__(self, text: str) -> None:
        self.text = text
        body = text
        self.negated = body.startswith("!")
        if self.negated:
            body = body[1:]
        positions = [p for p in (body.find("="), body.find("~")) if p > 0]
        if not positions:
            raise MatchError(
                "term {!r} is not field=glob, field~regex or client=CIDR".format(text))
        at = min(positions)
        name, self.operator, pattern = body[:at].lower(), body[at], body[at + 1:]
        self.header: str | None = None
        if name.startswith("header."):
            self.header = name[len("header."):]
            if not self.header:
                raise MatchError("term {!r} names no header".format(text))
            name = "header"
        if name not in ALL_FIELDS:
            raise MatchError("unknown match field {!r} in {!r}; known: {}".format(
                name, text, ", ".join(sorted(ALL_FIELDS - {"header"}) + ["header.NAME"])))
        self.field = name
        self.test: Callable[[Any], bool] = self._compile(pattern)

    def _compile(self, pattern: str) -> Callable[[Any], bool]:
        text = self.text
        if self.operator == "~":
            try:
                regex = re.compile(pattern, re.IGNORECASE if self.field in _CASELESS else 0)
            except re.error as e:
                raise MatchError("invalid regular expression in {!r}: {}".format(text, e))
            return lambda value: regex.search(str(value)) is not None
        if not pattern:
            raise MatchError("empty pattern in {!r}".format(text))
        if self.field == "client":
            try:
                network = ipaddress.ip_network(pattern, strict=False)
            except ValueError as e:
                raise MatchError("invalid network in {!r}: {}".format(text, e))
            return lambda value: value.version == network.version and value in network
        if self.field in _NUMERIC:
            bounds = _RANGE.match(pattern)
            if bounds:
                low, high = int(bounds.group(1)), int(bounds.group(2))
                if low > high:
                    raise MatchError("empty range in {!r}".format(text))
                return lambda value: low <= value <= high
            if pattern.isdigit():
                number = int(pattern)
                return lambda value: value == number
        _checkGlob(pattern, text)
        flags = re.IGNORECASE if self.field in _CASELESS else 0
        regex = re.compile(fnmatch.translate(pattern), flags)
        return lambda value: regex.match(str(value)) is not None


def _checkGlob(pattern: str, text: str) -> None:
    """
    Refuse a glob whose brackets are not balanced (fnmatch would take
    them literally, which is never what was meant).
    """
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise MatchError("invalid glob in {!r}: nested '['".format(text))
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise MatchError("invalid glob in {!r}: '[' without ']'".format(text))


class Match:
    """
    A parsed match: all of its terms must hold.

    @ivar text: the match as written.
    @ivar terms: the L{Term}s.
    @ivar fields: the fields the terms name.
    @ivar needsRequest: whether a term names a field of the request (not
        known under connection scope).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise MatchError("cannot read match {!r}: {}".format(text, e))
        self.terms = [Term(word) for word in words]
        self.fields = frozenset(term.field for term in self.terms)
        self.needsRequest = not self.fields <= CONNECTION_FIELDS

    def __repr__(self) -> str:
        return "<Match {!r}>".format(self.text)

    def check(self, protocol: str | None = None, requestScope: bool = True) -> None:
        """
        Refuse fields the protocol lacks, and request fields under
        connection scope.

        @raise MatchError: naming the field.
        """
        allowed = protocolFields(protocol)
        for term in self.terms:
            if term.field not in allowed:
                raise MatchError(
                    "match field {!r} does not exist for protocol {}; it has: {}".format(
                        term.field, protocol, ", ".join(sorted(allowed))))
            if not requestScope and term.field not in CONNECTION_FIELDS:
                raise MatchError(
                    "match field {!r} needs request scope (--behavior-scope "
                    "request); under connection scope only {} are known".format(
                        term.field, " and ".join(sorted(CONNECTION_FIELDS))))

    def matches(self, request: Any, connection: Any, head: bytes | None = None) -> bool:
        """
        Whether every term holds for a request (or, with C{request}
        L{None}, a connection).

        @param request: the request's L{txvaurien.frames.Message}, or
            L{None} under connection scope.
        @param connection: the L{txvaurien.interfaces.IConnection}, or
            L{None} if unknown (then no term holds).
        @param head: the bytes of the request's first frame, read only for
            fields the framers leave out of the metadata.
        """
        if connection is None:
            return False
        values = _Values(request, connection, head)
        for term in self.terms:
            value = values.get(term)
            held = value is not None and term.test(value)
            if held == term.negated:
                return False
        return True


@lru_cache(maxsize=256)
def parse(text: str) -> Match | None:
    """
    The L{Match} for a C{match} option's value, or L{None} for an empty
    one (every request matches).  Results are cached.

    @raise MatchError: for a malformed match.
    """
    if not text or not text.strip():
        return None
    return Match(text)


class _Values:
    """
    The fields of one request, read on demand.
    """

    __slots__ = ("request", "connection", "head", "_parsed")

    def __init__(self, request: Any, connection: Any, head: bytes | None) -> None:
        self.request = request
        self.connection = connection
        self.head = head
        self._parsed: dict[str, Any] | None = None

    def get(self, term: Term) -> Any:
        field = term.field
        if field == "client":
            return clientAddress(self.connection)
        if field == "connection":
            return self.connection.id
        request = self.request
        if request is None:
            return None
        if field == "request":
            return request.index
        meta = request.meta
        if field == "header":
            return self._head().get("header." + (term.header or ""))
        value = meta.get(field)
        if value is None and field in ("key", "sql", "host"):
            value = self._head().get(field)
        return value

    def _head(self) -> dict[str, Any]:
        if self._parsed is None:
            protocol = getattr(getattr(self.connection.proxy, "handler", None), "name", "")
            self._parsed = headFields(protocol, self.head or b"")
        return self._parsed


def clientAddress(connection: Any) -> Any:
    """
    The client's IP address (an L{ipaddress} address), or L{None} (a
    UNIX socket).
    """
    try:
        host = connection.client.transport.getPeer().host
        return ipaddress.ip_address(host)
    except (AttributeError, ValueError):
        return None


def headFields(protocol: str, head: bytes) -> dict[str, Any]:
    """
    Fields read from the first bytes of a request, for those the framers
    do not record: a redis command's key, an HTTP request's host and
    headers (C{header.NAME}, lower case), the text of a SQL statement.
    """
    try:
        if protocol == "redis":
            return _redisKey(head)
        if protocol == "http":
            return _httpHead(head)
        if protocol == "mysql":
            # Header (4 bytes), then COM_QUERY or COM_STMT_PREPARE and the text.
            if len(head) > 5 and head[4] in (0x03, 0x16):
                return {"sql": head[5:].decode("utf-8", "replace")}
        elif protocol == "postgresql":
            return _pgText(head)
    except (ValueError, IndexError):
        pass
    return {}


def _redisKey(head: bytes) -> dict[str, Any]:
    if head[:1] == b"*":
        pos = head.index(b"\r\n") + 2
        words: list[bytes] = []
        while len(words) < 2 and pos < len(head) and head[pos:pos + 1] == b"$":
            end = head.index(b"\r\n", pos)
            size = int(head[pos + 1:end])
            start = end + 2
            if start + size > len(head):
                break
            words.append(head[start:start + size])
            pos = start + size + 2
    else:
        words = head.split(b"\r\n", 1)[0].split()[:2]
    if len(words) < 2:
        return {}
    return {"key": words[1].decode("utf-8", "replace")}


def _httpHead(head: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip().decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        fields.setdefault("header." + key, text)
    host = fields.get("header.host")
    if host is not None:
        fields["host"] = host
    return fields


def _pgText(head: bytes) -> dict[str, Any]:
    kind = head[:1]
    if kind == b"Q":
        return {"sql": head[5:].split(b"\x00", 1)[0].decode("utf-8", "replace")}
    if kind == b"P":
        rest = head[5:]
        _, _, rest = rest.partition(b"\x00")
        return {"sql": rest.split(b"\x00", 1)[0].decode("utf-8", "replace")}
    return {}


def checkTable(table: Any, protocol: str | None) -> None:
    """
    Check every behavior's match in a table against the protocol and the
    table's scope.

    @raise MatchError: for the first match that cannot work, naming the
        behavior.
    """
    requestScope = table.scope == "request"
    for behavior in table.behaviors.values():
        match = parse(behavior.settings.get("match") or "")
        if match is None:
            continue
        try:
            match.check(protocol, requestScope)
        except MatchError as e:
            raise MatchError("behavior {} option match: {}".format(behavior.name, e))


__all__ = [
    "COMMON", "CONNECTION_FIELDS", "FIELDS", "MatchError", "Match", "Term",
    "parse", "headFields", "checkTable", "protocolFields", "clientAddress",
]
