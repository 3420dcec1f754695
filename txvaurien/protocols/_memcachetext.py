# -*- test-case-name: txvaurien.test.test_protocol_memcache -*-
"""
memcached's text protocol as L{txvaurien.protocols.memcache} reads it:
the limits, the command families, and reading a command line
(L{parseCommand}).
"""

from __future__ import annotations

from typing import Any

#: Longest command line read before the command is known to be valid;
#: memcached itself closes a connection whose line grows past a few KiB
#: unless it is a multi-key C{get}.
LINE_LIMIT = 8192

#: Longest part of a response line looked at.
RESPONSE_LINE_LIMIT = 4096

#: Longest key memcached accepts.
KEY_LIMIT = 250

_INT_MAX = 2**31 - 1

#: Storage commands and their number of words (without and with
#: C{noreply}).
STORAGE = {
    b"set": (5, 6),
    b"add": (5, 6),
    b"replace": (5, 6),
    b"append": (5, 6),
    b"prepend": (5, 6),
    b"cas": (6, 7),
}

#: Retrieval commands: their response is C{VALUE} items up to C{END}.
RETRIEVAL = frozenset([b"get", b"gets", b"gat", b"gats"])

#: Commands whose response is lines up to C{END} (or a one-line status).
LISTING = frozenset([b"stats", b"lru_crawler"])

#: Commands that honour a final C{noreply}, with the numbers of words
#: memcached accepts for them (with a wrong number it answers C{ERROR},
#: C{noreply} or not).
NOREPLY = {
    b"set": (5, 6),
    b"add": (5, 6),
    b"replace": (5, 6),
    b"append": (5, 6),
    b"prepend": (5, 6),
    b"cas": (6, 7),
    b"incr": (3, 4),
    b"decr": (3, 4),
    b"delete": (2, 4),
    b"touch": (3, 4),
    b"flush_all": (1, 3),
    b"verbosity": (2, 3),
    b"cache_memlimit": (2, 3),
}

#: Commands whose second word is a key (the third for C{gat}, C{gats}).
KEYED = frozenset(
    list(STORAGE)
    + [b"get", b"gets", b"gat", b"gats", b"incr", b"decr", b"delete", b"touch"]
    + [b"mg", b"ms", b"md", b"ma", b"me"]
)

#: Meta commands: for each, the codes a quiet (C{q}) request still gets.
QUIET_CODES = {
    b"mg": frozenset([b"VA", b"HD"]),
    b"ms": frozenset([b"NS", b"EX", b"NF"]),
    b"md": frozenset([b"EX", b"NF"]),
    b"ma": frozenset([b"NF", b"NS", b"EX"]),
}

#: Lines that end a C{stats} or C{lru_crawler} listing (C{mgdump} ends
#: with C{EN}).
_LISTING_END = frozenset([b"END", b"EN", b"ERROR", b"OK", b"RESET"])
_LISTING_END_PREFIXES = (b"CLIENT_ERROR", b"SERVER_ERROR", b"BUSY", b"BADCLASS")

#: Error responses any command may get.
_ERRORS = frozenset([b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"])

#: The first byte of a binary protocol packet (request, response).
_BINARY = frozenset([0x80, 0x81])

#: The first byte of a TLS handshake record.
_TLS_HANDSHAKE = 0x16


class _Invalid(ValueError):
    """
    The stream is not the text protocol; C{offset} is where it stopped
    making sense, in the current chunk.
    """

    def __init__(self, offset: int, reason: str) -> None:
        ValueError.__init__(self, reason)
        self.offset = offset
        self.reason = reason


def _uint(token: bytes, limit: int) -> int | None:
    if not token.isdigit():
        return None
    value = int(token)
    return value if value <= limit else None


def _sint(token: bytes) -> bool:
    body = token[1:] if token[:1] == b"-" else token
    return body.isdigit() and -(2**31) <= int(token) < 2**31


def _text(token: bytes) -> str:
    return token.decode("ascii", "replace")


def parseCommand(line: bytes) -> tuple[dict[str, Any], bool, int | None]:
    """
    Read a command line the way memcached does.

    @param line: the line without its line end.
    @return: the request's metadata, whether it expects a response, and
        the size of the data block that follows (without its CRLF), or
        L{None} if none does.
    """
    words = [w for w in line.split(b" ") if w]
    if not words:
        return {"command": ""}, True, None
    command = words[0]
    meta: dict[str, Any] = {"command": _text(command)}
    count = len(words)
    if command in KEYED:
        index = 2 if command in (b"gat", b"gats") else 1
        if count > index:
            meta["key"] = _text(words[index])
    expects = True
    size: int | None = None
    accepted = NOREPLY.get(command)
    if accepted is not None and accepted[0] <= count <= accepted[1]:
        expects = words[-1] != b"noreply"
    if command in STORAGE:
        if count in STORAGE[command] and len(words[1]) <= KEY_LIMIT:
            length = _uint(words[4], _INT_MAX - 2)
            valid = (
                _uint(words[2], 2**32 - 1) is not None
                and _sint(words[3])
                and length is not None
                and (command != b"cas" or _uint(words[5], 2**64 - 1) is not None)
            )
            if valid:
                size = length
    elif command in QUIET_CODES or command == b"me":
        flags = words[3:] if command == b"ms" else words[2:]
        if command == b"ms" and count >= 3 and len(words[1]) <= KEY_LIMIT:
            size = _uint(words[2], _INT_MAX - 2)
        if b"q" in flags and command != b"me":
            meta["quiet"] = True
            for flag in flags:
                if flag[:1] == b"O":
                    meta["opaque"] = _text(flag)
                elif flag == b"k":
                    meta["returnKey"] = True
    elif command == b"quit":
        expects = False
    return meta, expects, size


def _isListingEnd(line: bytes) -> bool:
    return line in _LISTING_END or line.startswith(_LISTING_END_PREFIXES)
