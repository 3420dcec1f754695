# -*- test-case-name: txvaurien.test.test_protocol_mysql -*-
"""
The C{mysql} protocol handler: MySQL and MariaDB client/server protocol.

Every MySQL packet is a 3-byte little-endian length, a 1-byte sequence id
and a payload; a payload of 0xffffff bytes continues in the next packet.
The server speaks first (the greeting), the client answers (handshake
response, possibly after an SSL request that turns the connection into
TLS), authentication may take a few more packets each way, and then the
client sends commands, each starting with sequence id 0, and the server
answers each command with packets numbered from the command's last
sequence id plus one.

Frames:

  - the server greeting is one L{GREETING} message; the rest of the
    handshake (handshake response, authentication switch and extra data,
    the final OK or ERR) is one L{DATA} message per packet, which request
    scope leaves alone;

  - each command packet is a L{REQUEST} whose C{meta} has the C{command}
    (C{"COM_QUERY"}), the C{sequence} id of its last packet and, for
    C{COM_QUERY}, C{COM_STMT_PREPARE} and C{COM_STMT_EXECUTE} (from the
    statement prepared), the SQL C{verb} (C{"SELECT"});

  - its response is one L{RESPONSE} message: an OK, an ERR, or a whole
    result set (column count, column definitions, EOF unless
    C{CLIENT_DEPRECATE_EOF}, rows, final EOF or OK), and every further
    result while the server says more results exist
    (C{SERVER_MORE_RESULTS_EXISTS}); a prepared statement's answer with
    its parameter and column definitions; C{COM_QUIT},
    C{COM_STMT_CLOSE} and C{COM_STMT_SEND_LONG_DATA} get none;

  - what the client sends while the server waits for it within an
    exchange (C{LOAD DATA LOCAL INFILE} contents, authentication data
    for C{COM_CHANGE_USER}) is L{DATA}; a packet from the server when no
    command awaits an answer is a L{PUSH}.

After an SSL request, or once the handshake has negotiated compression,
the connection is passed through unframed.  A response whose sequence ids
do not follow on is a stream the framers cannot follow: it is logged and
the rest of the connection is passed through unframed.
"""

from __future__ import annotations

import struct
from typing import Any

from zope.interface import implementer

from txvaurien.frames import DATA, DOWNSTREAM, GREETING, PUSH, REQUEST, RESPONSE, UPSTREAM, Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.options import Number
from txvaurien.protocols._mysqlpg import (
    PREFIX,
    SQLState,
    UnitFramer,
    int16,
    remember,
    sqlVerb,
)
from txvaurien.protocols.base import ProtocolHandler, Session

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


class _PacketFramer(UnitFramer):
    """
    What both MySQL framers share: a packet is a 3-byte length, a sequence
    id and a payload, which the next packet continues when it is
    L{MAX_PACKET} bytes long; framing may stop once a packet has passed
    (the connection switches to TLS or to compression).

    @ivar continuing: whether the next packet continues this one.
    @ivar stopAfter: why framing stops once the current packet (and the
        packets continuing it) passed, or L{None}.
    """

    def __init__(self, direction: str, session: MySQLSession) -> None:
        UnitFramer.__init__(self, direction, session)
        self.mysql = session
        self.continuing = False
        self.stopAfter: str | None = None

    def _header(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        if n - pos < 4:
            return 0, 0
        return 4, data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16

    def _stopAfterPacket(self, why: str) -> None:
        """
        Stop framing once the current packet passed.
        """
        self.stopAfter = why
        self.switching = True

    def _unitDone(self) -> None:
        if self.continuing:
            self.switching = True
        elif self.stopAfter is not None:
            why, self.stopAfter = self.stopAfter, None
            self.mysql.stopFraming(why, warn=False)


class MySQLRequestFramer(_PacketFramer):
    """
    Frames what the client sends: handshake packets, commands and the
    data the server asks for within a command.
    """

    def __init__(self, session: MySQLSession) -> None:
        _PacketFramer.__init__(self, UPSTREAM, session)
        self.handshakeSeen = False

    def _unit(self, data: bytes, pos: int, size: int, length: int) -> tuple[Message, bool]:
        session = self.mysql
        sequence = data[pos + 3]
        session.lastClientSequence = sequence
        message = self.message
        if self.continuing and message is not None:
            if message.kind == REQUEST:
                message.meta["sequence"] = sequence
            self.continuing = length == MAX_PACKET
            return message, not self.continuing
        self.continuing = length == MAX_PACKET
        ends = not self.continuing
        body = pos + 4
        if session.phase == _COMMAND_PHASE and sequence == 0 and not session.clientTurn:
            return self._command(data, body, length), ends
        if session.phase == _HANDSHAKE_PHASE and not self.handshakeSeen:
            self.handshakeSeen = True
            meta = {"phase": _HANDSHAKE_PHASE, "ssl": self._handshake(data, body, length)}
        else:
            meta = {"phase": session.phase}
        return self.newMessage(DATA, meta), ends

    def _handshake(self, data: bytes, body: int, length: int) -> bool:
        """
        Read the client's capabilities from its first packet (handshake
        response or SSL request).

        @return: whether it is an SSL request (TLS follows it).
        """
        session = self.mysql
        if length < 2:
            return False
        capabilities = int16(data, body)
        if capabilities & CLIENT_PROTOCOL_41 and length >= 4:
            capabilities |= int16(data, body + 2) << 16
            if (not capabilities & CLIENT_MYSQL and session.serverCapabilities >> 32
                    and length >= 32):
                extended = int.from_bytes(data[body + 28:body + 32], "little")
                capabilities |= extended << 32
        session.clientCapabilities = capabilities
        session.capabilities = session.serverCapabilities & capabilities
        if capabilities & CLIENT_SSL:
            self._stopAfterPacket("SSL request")
            return True
        return False

    def _command(self, data: bytes, body: int, length: int) -> Message:
        session = self.mysql
        if not length:
            return self.newMessage(REQUEST, {"command": "", "sequence": 0})
        code = data[body]
        name, response = COMMANDS.get(code, ("COM_0x{:02x}".format(code), _SINGLE))
        meta: dict[str, Any] = {"command": name, "sequence": 0}
        end = body + min(length, PREFIX)
        if code == 0x03:
            start = body + 1
            if session.capabilities & CLIENT_QUERY_ATTRIBUTES:
                count, start = lenenc(data, start, end)
                _, start = lenenc(data, start, end)
                if count:
                    start = end
            meta["verb"] = sqlVerb(data[start:end], hashComments=True)
        elif code == 0x16:
            meta["verb"] = sqlVerb(data[body + 1:end], hashComments=True)
        elif code in (0x17, 0x19, 0x18, 0x1A, 0x1C, 0xFA) and length >= 5:
            statement = int.from_bytes(data[body + 1:body + 5], "little")
            if statement == 0xFFFFFFFF:  # MariaDB: the last one prepared.
                statement = session.lastStatement
            meta["statement"] = statement
            verb = session.statements.get(statement)
            if verb is not None:
                meta["verb"] = verb
            if code == 0x19:
                session.statements.pop(statement, None)
        elif code == 0x1F:
            session.statements.clear()
        return self.newMessage(REQUEST, meta, expectsResponse=response != _NONE)


class MySQLResponseFramer(_PacketFramer):
    """
    Frames what the server sends: greeting, handshake, and responses,
    which it pairs with the commands the backend was sent.
    """

    def __init__(self, session: MySQLSession) -> None:
        _PacketFramer.__init__(self, DOWNSTREAM, session)
        self.logicalEnds = False
        self.expected = 0
        self.checked = True
        self.state = _SINGLE
        self.columns = 0

    def _unit(self, data: bytes, pos: int, size: int, length: int) -> tuple[Message, bool] | None:
        session = self.mysql
        sequence = data[pos + 3]
        message = self.message
        if message is not None and message.kind == RESPONSE:
            session.clientTurn = False
            if self.checked and sequence != self.expected:
                session.stopFraming(
                    "response packet with sequence id {} where {} was expected".format(
                        sequence, self.expected))
                return None
        self.expected = (sequence + 1) & 0xFF
        self.checked = True
        if self.continuing:
            self.continuing = length == MAX_PACKET
            return message, self.logicalEnds and not self.continuing  # type: ignore[return-value]
        self.continuing = length == MAX_PACKET
        body = pos + 4
        end = body + min(length, PREFIX)
        phase = session.phase
        if phase == _COMMAND_PHASE:
            if message is None:
                if not session.sent:
                    message = self.newMessage(PUSH, {"phase": phase})
                    self.logicalEnds = True
                    return message, not self.continuing
                request = session.sent.popleft()
                expected = (request.meta.get("sequence", 0) + 1) & 0xFF
                if sequence != expected:
                    session.stopFraming(
                        "response to {} with sequence id {} where {} was expected".format(
                            request.meta.get("command"), sequence, expected))
                    session.sent.appendleft(request)
                    return None
                message = self.newMessage(
                    RESPONSE, {"command": request.meta.get("command", "")}, request)
                self.state = _RESPONSES.get(request.meta.get("command", ""), _SINGLE)
                self.columns = 0
            self.logicalEnds = self._step(data, body, end, length, message)
            return message, self.logicalEnds and not self.continuing
        self.logicalEnds = True
        first = data[body] if length else None
        if phase == _GREETING_PHASE:
            message = self.newMessage(GREETING, {"phase": phase})
            if first == 0x0A:
                self._greeting(data, body, end)
                session.phase = _HANDSHAKE_PHASE
            return message, not self.continuing
        message = self.newMessage(DATA, {"phase": phase})
        if first == 0x00:
            session.phase = _COMMAND_PHASE
            session.clientTurn = False
            if session.capabilities & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION):
                self._stopAfterPacket("compression negotiated")
        return message, not self.continuing

    def _greeting(self, data: bytes, body: int, end: int) -> None:
        """
        Read the server's capabilities from its greeting (protocol 10).
        """
        pos = data.find(b"\x00", body + 1, end)
        if pos < 0:
            return
        pos += 1 + 4 + 8 + 1
        if pos + 2 > end:
            return
        capabilities = int16(data, pos)
        pos += 2
        if pos + 5 <= end:
            capabilities |= int16(data, pos + 3) << 16
        pos += 5 + 1 + 6
        if not capabilities & CLIENT_MYSQL and pos + 4 <= end:
            capabilities |= int.from_bytes(data[pos:pos + 4], "little") << 32
        session = self.mysql
        session.serverCapabilities = capabilities
        session.capabilities = capabilities & session.clientCapabilities

    def _terminator(self, data: bytes, body: int, length: int, deprecateEOF: bool) -> bool:
        return data[body] == 0xFE and length < (MAX_PACKET if deprecateEOF else 9)

    def _step(self, data: bytes, body: int, end: int, length: int, message: Message) -> bool:
        """
        Advance the response's state with one logical packet.

        @return: whether the packet ends the response.
        """
        session = self.mysql
        capabilities = session.capabilities
        deprecateEOF = bool(capabilities & CLIENT_DEPRECATE_EOF)
        state = self.state
        if not length:
            return state in (_SINGLE, _RESULT, _PREPARE, _AUTH)
        first = data[body]
        if first == 0xFF and state not in (_COLUMNS, _COUNT):
            if (capabilities & MARIADB_CLIENT_PROGRESS and length >= 3
                    and int16(data, body + 1) == 0xFFFF):
                return False
            return True
        if state == _RESULT:
            if first == 0x00:
                return not okStatus(data, body, end) & SERVER_MORE_RESULTS_EXISTS
            if first == 0xFB:
                self._clientTurn()
                return False
            if first == 0xFE:
                status = (okStatus if deprecateEOF else eofStatus)(data, body, end)
                return not status & SERVER_MORE_RESULTS_EXISTS
            count, pos = lenenc(data, body, end)
            metadata = True
            if capabilities & (MARIADB_CLIENT_CACHE_METADATA
                               | CLIENT_OPTIONAL_RESULTSET_METADATA) and pos < end:
                metadata = data[pos] != 0
            self.columns = count if count and metadata else 0
            if self.columns:
                self.state = _COLUMNS
            else:
                self.state = _RESULT_ROWS if deprecateEOF else _COLUMNS_EOF
            return False
        if state == _COLUMNS:
            self.columns -= 1
            if not self.columns:
                self.state = _RESULT_ROWS if deprecateEOF else _COLUMNS_EOF
            return False
        if state == _COLUMNS_EOF:
            self.state = _RESULT_ROWS
            if self._terminator(data, body, length, False):
                status = eofStatus(data, body, end)
                if status & SERVER_STATUS_CURSOR_EXISTS:
                    return self._resultEnded(status)
                return False
            state = _RESULT_ROWS
        if state == _RESULT_ROWS:
            if self._terminator(data, body, length, deprecateEOF):
                status = (okStatus if deprecateEOF else eofStatus)(data, body, end)
                return self._resultEnded(status)
            return False
        if state == _ROWS:
            return self._terminator(data, body, length, deprecateEOF)
        if state == _PREPARE:
            if first != 0x00 or length < 9:
                return True
            statement = int.from_bytes(data[body + 1:body + 5], "little")
            columns = int16(data, body + 5)
            parameters = int16(data, body + 7)
            session.lastStatement = statement
            request = message.request
            if request is not None and "verb" in request.meta:
                remember(session.statements, statement, request.meta["verb"])
            if (capabilities & CLIENT_OPTIONAL_RESULTSET_METADATA and length >= 13
                    and data[body + 12] == 0):
                return True
            count = columns + parameters
            if not deprecateEOF:
                count += (columns > 0) + (parameters > 0)
            if not count:
                return True
            self.state = _COUNT
            self.columns = count
            return False
        if state == _COUNT:
            self.columns -= 1
            return not self.columns
        if state == _AUTH:
            if first == 0x00:
                return True
            self._clientTurn()
            return False
        return True

    def _skip(self, data: bytes, pos: int, n: int) -> int:
        """
        Step over whole rows, and column definitions but the last, which
        only add to the response: what L{_unit} and L{_step} would do with
        each, in a tight loop.
        """
        state = self.state
        message = self.message
        if self.continuing or not self.checked or message is None or message.kind != RESPONSE:
            return pos
        if state is _COLUMNS:
            columns = self.columns
            limit = 0
        elif state is _RESULT_ROWS or state is _ROWS:
            columns = -1
            limit = MAX_PACKET if self.mysql.capabilities & CLIENT_DEPRECATE_EOF else 9
        else:
            return pos
        expected = self.expected
        while pos + 4 < n and columns != 1:
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            end = pos + 4 + length
            if end > n or not length or length == MAX_PACKET or data[pos + 3] != expected:
                break
            first = data[pos + 4]
            if first == 0xFF or (first == 0xFE and length < limit):
                break
            expected = (expected + 1) & 0xFF
            columns -= 1
            pos = end
        self.expected = expected
        if state is _COLUMNS:
            self.columns = columns
        return pos

    def _resultEnded(self, status: int) -> bool:
        if status & SERVER_MORE_RESULTS_EXISTS:
            self.state = _RESULT
            return False
        return True

    def _clientTurn(self) -> None:
        """
        The server waits for the client within this exchange: the client's
        next packets are data, and the server's next packet follows their
        sequence ids, not its own.
        """
        self.mysql.clientTurn = True
        self.checked = False


@implementer(IProtocolSession)
class MySQLSession(Session):
    """
    One MySQL connection: its framers, the negotiated capabilities and
    the error packets the client will parse.

    @ivar phase: C{"greeting"}, C{"handshake"} or C{"command"}.
    @ivar serverCapabilities: the capability flags of the greeting.
    @ivar clientCapabilities: those of the client's handshake response.
    @ivar capabilities: those both sides have, which the server honours.
    @ivar clientTurn: whether the server waits for data from the client
        within the current exchange.
    @ivar statements: prepared statement id to SQL verb.
    @ivar lastStatement: the id of the statement prepared last.
    """

    serverSpeaksFirst = True
    protocolName = "mysql"
    handler: MySQL

    def __init__(self, handler: MySQL, connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.phase = _GREETING_PHASE
        self.serverCapabilities = 0
        self.clientCapabilities = 0
        self.capabilities = 0
        self.lastClientSequence = 0
        self.clientTurn = False
        self.statements: dict[int, str] = {}
        self.lastStatement = -1
        self.upstream = MySQLRequestFramer(self)
        self.downstream = MySQLResponseFramer(self)

    def errorReply(self, request: Message | None, reason: str, code: int | None = None) -> bytes:
        """
        An ERR packet with the C{error_code} and C{error_sqlstate} options,
        numbered as the answer to C{request}; nothing for a command that
        gets no answer (C{COM_QUIT}, C{COM_STMT_CLOSE}).
        """
        if request is not None:
            if not request.expectsResponse:
                return b""
            sequence = request.meta.get("sequence", 0) + 1
        elif self.phase == _COMMAND_PHASE and not self.clientTurn:
            sequence = 1
        else:
            sequence = self.lastClientSequence + 1
        settings = self.handler.settings
        return errPacket(sequence, settings["error_code"], settings["error_sqlstate"], reason)

    def connectFailed(self, reason: str) -> bytes:
        """
        An ERR packet in place of the server greeting (sequence id 0, no
        SQLSTATE, as a server refusing a connection sends it).
        """
        return errPacket(
            0, self.handler.settings["connect_error_code"], None,
            "Can't connect to MySQL server (txvaurien: backend unreachable: {})".format(reason))


class MySQL(ProtocolHandler):
    """
    MySQL and MariaDB: behaviors act on commands (C{COM_QUERY},
    C{COM_STMT_EXECUTE}, ...) and their whole responses, and C{error}
    answers a command with an ERR packet the client library raises as its
    own error (PyMySQL C{OperationalError}).

    The handshake passes untouched; a connection that starts TLS (SSL
    request) or negotiates compression is passed through unframed from
    then on.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:3307 --backend 127.0.0.1:3306 \\
            --protocol mysql --behavior 10:error \\
            --protocol-mysql-error-code 1213 --protocol-mysql-error-sqlstate 40001
    """

    name = "mysql"
    options = {
        "error_code": (
            "Error code of the ERR packet that answers a failed command "
            "(1105: unknown error; 1213: deadlock; 2013: lost connection)",
            Number(int, 1, 65534),
            1105,
        ),
        "error_sqlstate": (
            "SQLSTATE of the ERR packet that answers a failed command",
            SQLState(),
            "HY000",
        ),
        "connect_error_code": (
            "Error code of the ERR packet sent in place of the greeting "
            "when the backend cannot be reached (2003: can't connect)",
            Number(int, 1, 65534),
            2003,
        ),
    }
    framesRequests = True
    sessionClass = MySQLSession
