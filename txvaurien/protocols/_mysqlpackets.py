# -*- test-case-name: txvaurien.test.test_protocol_mysql -*-
"""
The MySQL packet format as L{txvaurien.protocols.mysql} reads it: the
capability and status flags, the commands and the shape of their
responses, reading length-encoded integers and status flags, and making
packets.
"""

from __future__ import annotations

import struct

from txvaurien.protocols._mysqlpg import int16


# Capability flags (MariaDB's extended ones are shifted by 32).
CLIENT_MYSQL = 1
CLIENT_COMPRESS = 0x20
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
CLIENT_ZSTD_COMPRESSION = 1 << 26
CLIENT_QUERY_ATTRIBUTES = 1 << 27
MARIADB_CLIENT_PROGRESS = 1 << 32
MARIADB_CLIENT_CACHE_METADATA = 1 << 36

# Server status flags.
SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_CURSOR_EXISTS = 0x0040

MAX_PACKET = 0xFFFFFF

# What a command's response looks like.
_NONE = "none"
_SINGLE = "single"
_RESULT = "result"
_ROWS = "rows"
_PREPARE = "prepare"
_AUTH = "auth"
# Further states within a response.
_COLUMNS = "columns"
_COLUMNS_EOF = "columns-eof"
_RESULT_ROWS = "result-rows"
_COUNT = "count"

#: Command byte -> (name, response).
COMMANDS: dict[int, tuple[str, str]] = {
    0x00: ("COM_SLEEP", _SINGLE),
    0x01: ("COM_QUIT", _NONE),
    0x02: ("COM_INIT_DB", _SINGLE),
    0x03: ("COM_QUERY", _RESULT),
    0x04: ("COM_FIELD_LIST", _ROWS),
    0x05: ("COM_CREATE_DB", _SINGLE),
    0x06: ("COM_DROP_DB", _SINGLE),
    0x07: ("COM_REFRESH", _SINGLE),
    0x08: ("COM_SHUTDOWN", _SINGLE),
    0x09: ("COM_STATISTICS", _SINGLE),
    0x0A: ("COM_PROCESS_INFO", _RESULT),
    0x0B: ("COM_CONNECT", _SINGLE),
    0x0C: ("COM_PROCESS_KILL", _SINGLE),
    0x0D: ("COM_DEBUG", _SINGLE),
    0x0E: ("COM_PING", _SINGLE),
    0x0F: ("COM_TIME", _SINGLE),
    0x10: ("COM_DELAYED_INSERT", _SINGLE),
    0x11: ("COM_CHANGE_USER", _AUTH),
    0x12: ("COM_BINLOG_DUMP", _ROWS),
    0x13: ("COM_TABLE_DUMP", _ROWS),
    0x14: ("COM_CONNECT_OUT", _SINGLE),
    0x15: ("COM_REGISTER_SLAVE", _SINGLE),
    0x16: ("COM_STMT_PREPARE", _PREPARE),
    0x17: ("COM_STMT_EXECUTE", _RESULT),
    0x18: ("COM_STMT_SEND_LONG_DATA", _NONE),
    0x19: ("COM_STMT_CLOSE", _NONE),
    0x1A: ("COM_STMT_RESET", _SINGLE),
    0x1B: ("COM_SET_OPTION", _SINGLE),
    0x1C: ("COM_STMT_FETCH", _ROWS),
    0x1D: ("COM_DAEMON", _SINGLE),
    0x1E: ("COM_BINLOG_DUMP_GTID", _ROWS),
    0x1F: ("COM_RESET_CONNECTION", _SINGLE),
    0xFA: ("COM_STMT_BULK_EXECUTE", _RESULT),
}

_RESPONSES = {name: response for name, response in COMMANDS.values()}

# Connection phases.
_GREETING_PHASE = "greeting"
_HANDSHAKE_PHASE = "handshake"
_COMMAND_PHASE = "command"


def lenenc(data: bytes, pos: int, end: int) -> tuple[int | None, int]:
    """
    Read a length-encoded integer of C{data[pos:end]}.

    @return: the value (L{None} for the NULL marker, a missing or invalid
        one) and the position after it.
    """
    if pos >= end:
        return None, pos
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None or pos + 1 + size > end:
        return None, pos + 1
    return int.from_bytes(data[pos + 1:pos + 1 + size], "little"), pos + 1 + size


def okStatus(data: bytes, body: int, end: int) -> int:
    """
    The status flags of an OK packet (header byte 0x00 or 0xfe) whose
    payload is C{data[body:end]}, or 0 if it is too short to have them.
    """
    _, pos = lenenc(data, body + 1, end)
    _, pos = lenenc(data, pos, end)
    if pos + 2 > end:
        return 0
    return int16(data, pos)


def eofStatus(data: bytes, body: int, end: int) -> int:
    """
    The status flags of an EOF packet, or 0 if it is too short.
    """
    if body + 5 > end:
        return 0
    return int16(data, body + 3)


def packet(sequence: int, payload: bytes) -> bytes:
    """
    One packet (C{payload} shorter than 16 MiB).
    """
    return struct.pack("<I", len(payload))[:3] + bytes([sequence & 0xFF]) + payload


def errPacket(sequence: int, code: int, sqlstate: str | None, message: str) -> bytes:
    """
    An ERR packet: 0xff, the error code, C{#} and the SQLSTATE (omitted
    when L{None}, as in a greeting), and the message.
    """
    payload = b"\xff" + struct.pack("<H", code)
    if sqlstate is not None:
        payload += b"#" + sqlstate.encode("ascii")
    payload += message.encode("utf-8")[:1024]
    return packet(sequence, payload)
