# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
The fast paths: whole RESP values that arrived in one piece, taken in one
go; anything unusual or incomplete is left to the incremental scanners.
"""

from __future__ import annotations

from txvaurien.protocols._resp.base import CAPTURE


def fastCommand(data: bytes, pos: int) -> tuple[int, int, bytes] | None:
    """
    Scan a whole multi-bulk command starting at C{data[pos]} (a C{*}) in
    one go, the common case of a command that arrived in one piece.

    @return: the offset after it, its number of arguments and its first
        argument; or L{None} if it is incomplete or anything is unusual,
        for the general scanner to deal with.
    """
    find = data.find
    nl = find(b"\r\n", pos)
    count = data[pos + 1 : nl]
    if nl < 0 or nl - pos > 21 or not count.isdigit():
        return None
    argc = int(count)
    if not argc:
        return None
    p = nl + 2
    name = None
    for _ in range(argc):
        nl = find(b"\r\n", p)
        size = data[p + 1 : nl]
        if nl < 0 or data[p] != 36 or nl - p > 21 or not size.isdigit():
            return None
        start = nl + 2
        p = start + int(size)
        if data[p : p + 2] != b"\r\n":
            return None
        p += 2
        if name is None:
            if p - start > CAPTURE + 2:
                return None
            name = data[start : p - 2]
    assert name is not None
    return p, argc, name


#: The length line of each short bulk string, by its length.
BULK_LINES = tuple(b"$%d" % size for size in range(1024))

#: Reads this long at most are split into lines in one go by the fast path.
SPLIT_LIMIT = 64 * 1024


def splitCommands(data: bytes) -> list[tuple[int, int, bytes]]:
    """
    Scan the whole multi-bulk commands at the start of C{data}, splitting
    it at every CRLF in one go: a bulk string holding a CRLF is cut there,
    its length no longer matches its length line, and the scan stops
    before it, as it does before anything unusual or incomplete.

    @return: for each command, the offset after it, its number of
        arguments and its first argument.
    """
    parts = data.split(b"\r\n")
    # The last part is not followed by a CRLF: it cannot end a command.
    last = len(parts) - 1
    lines = BULK_LINES
    most = len(lines)
    commands: list[tuple[int, int, bytes]] = []
    end = i = 0
    while i < last:
        head = parts[i]
        count = head[1:]
        if head[:1] != b"*" or len(count) > 19 or not count.isdigit():
            return commands
        argc = int(count)
        stop = i + 1 + 2 * argc
        if not argc or stop > last:
            return commands
        name = parts[i + 2]
        if len(name) > CAPTURE:
            return commands
        end += len(head) + 2
        # Each argument's length line must say its length.
        for j in range(i + 1, stop, 2):
            line = parts[j]
            size = len(parts[j + 1])
            if line != (lines[size] if size < most else b"$%d" % size):
                return commands
            end += len(line) + size + 4
        commands.append((end, argc, name))
        i = stop
    return commands


def fastScalar(data: bytes, pos: int) -> int:
    """
    The offset after the simple string, error, integer or bulk string at
    C{data[pos]}, or C{-1} if it is anything else or incomplete.
    """
    t = data[pos : pos + 1]
    if t == b"$":
        nl = data.find(b"\r\n", pos)
        size = data[pos + 1 : nl]
        if nl < 0 or nl - pos > 21:
            return -1
        if size.isdigit():
            end = nl + 2 + int(size)
            if data[end : end + 2] != b"\r\n":
                return -1
            return end + 2
        return nl + 2 if size == b"-1" else -1
    if t == b"+" or t == b":" or t == b"-":
        nl = data.find(b"\n", pos)
        return -1 if nl < 0 else nl + 1
    return -1


def fastReply(data: bytes, pos: int, arrays: bool) -> int:
    """
    The offset after the whole reply at C{data[pos]}, if it is a scalar
    (L{fastScalar}) or, when C{arrays} is true, an array of scalars;
    C{-1} for anything else, for the general scanner to deal with.
    """
    t = data[pos]
    if t == 43 or t == 58:
        # A simple string or an integer.
        nl = data.find(b"\n", pos)
        return -1 if nl < 0 else nl + 1
    if t != 42:
        return fastScalar(data, pos)
    if not arrays:
        return -1
    nl = data.find(b"\r\n", pos)
    if nl < 0 or nl - pos > 21:
        return -1
    count = data[pos + 1 : nl]
    if not count.isdigit():
        return -1 if count != b"-1" else nl + 2
    p = nl + 2
    for _ in range(int(count)):
        p = fastScalar(data, p)
        if p < 0:
            return -1
    return p
