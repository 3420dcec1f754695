# -*- test-case-name: txvaurien.test.test_protocol_mysql -*-
"""
The MySQL framers: L{MySQLRequestFramer} frames what the client sends,
L{MySQLResponseFramer} what the server sends
(L{txvaurien.protocols.mysql}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txvaurien.frames import (
    DATA,
    DOWNSTREAM,
    GREETING,
    PUSH,
    REQUEST,
    RESPONSE,
    UPSTREAM,
    Frame,
    Message,
)
from txvaurien.protocols._mysqlpackets import (
    CLIENT_COMPRESS,
    CLIENT_DEPRECATE_EOF,
    CLIENT_MYSQL,
    CLIENT_OPTIONAL_RESULTSET_METADATA,
    CLIENT_PROTOCOL_41,
    CLIENT_QUERY_ATTRIBUTES,
    CLIENT_SSL,
    CLIENT_ZSTD_COMPRESSION,
    COMMANDS,
    MARIADB_CLIENT_CACHE_METADATA,
    MARIADB_CLIENT_PROGRESS,
    MAX_PACKET,
    SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_CURSOR_EXISTS,
    _AUTH,
    _COLUMNS,
    _COLUMNS_EOF,
    _COMMAND_PHASE,
    _COUNT,
    _GREETING_PHASE,
    _HANDSHAKE_PHASE,
    _NONE,
    _PREPARE,
    _RESPONSES,
    _RESULT,
    _RESULT_ROWS,
    _ROWS,
    _SINGLE,
    eofStatus,
    lenenc,
    okStatus,
)
from txvaurien.protocols._mysqlpg import PREFIX, UnitFramer, int16, remember, sqlVerb
from txvaurien.protocols._standin import StandIn

if TYPE_CHECKING:
    from txvaurien.protocols.mysql import MySQLSession


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
            if not session.upgrading:
                self._stopAfterPacket("SSL request")
            return True
        return False

    def sslRequest(self, standIn: StandIn, data: bytes) -> list[Frame]:
        """
        Frame the client's first packet when the handler upgrades and the
        server offers SSL (it stands in for L{feed}, from the greeting
        until that packet is whole).

        An SSL request to a server that offers SSL is the proxy's to act
        on: it writes the request to the backend itself, as it came
        (nothing else was sent upstream before it), switches both legs to
        TLS, and hands what followed the request in the read (the start
        of the client's TLS hello) to the client's TLS layer.  The request
        is framed as its handshake L{DATA} message, without its bytes, so
        that nothing writes it again.  Any other first packet is framed
        as usual.

        @param standIn: the L{StandIn} this stands in for C{feed} with.
        """
        session = self.mysql
        buffered = self.held + data
        if len(buffered) < 6:
            self.held = buffered
            return []
        length = buffered[0] | buffered[1] << 8 | buffered[2] << 16
        end = 4 + length
        upgrade = length <= PREFIX and bool(int16(buffered, 4) & CLIENT_SSL)
        if upgrade and len(buffered) < end:
            self.held = buffered
            return []
        # From now on, the feed this one stood in for.
        standIn.giveWay()
        if not upgrade:
            return self.feed(data)
        self.held = b""
        session.upgrading = True
        try:
            frames = self.feed(buffered[:end])
        finally:
            session.upgrading = False
        request = frames[-1]
        request.message.meta["upgraded"] = True
        frames[-1] = Frame(b"", request.message, request.first, request.last)
        connection: Any = session.connection
        connection.backend.transport.write(buffered[:end])
        session.tlsStarted = True
        session.handler.tls.start(connection)
        rest = buffered[end:]
        if rest and not connection.closing:
            connection.client.transport.dataReceived(rest)
        return frames

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
        if capabilities & CLIENT_SSL and session.handler.tls.enabled:
            # The client's first packet may be an SSL request to upgrade.
            upstream = session.upstream
            first = StandIn(upstream, lambda data: upstream.sslRequest(first, data))

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
