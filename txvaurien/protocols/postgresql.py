# -*- test-case-name: txvaurien.test.test_protocol_postgresql -*-
"""
The C{postgresql} protocol handler: PostgreSQL's frontend/backend protocol
version 3.

After the first message, which has no type byte (a length, then a code:
startup message, SSLRequest, GSSENCRequest or CancelRequest), every message
is a type byte and a 4-byte big-endian length that counts itself.

Frames:

  - the client's startup message, SSLRequest and GSSENCRequest, the
    single-byte answer to the latter two, and the authentication exchange
    up to the first ReadyForQuery are L{DATA} messages (one per protocol
    message), which request scope leaves alone; a CancelRequest is a
    L{REQUEST} that gets no response;

  - a request is a simple Query (C{Q}), a FunctionCall (C{F}), or an
    extended-query batch: Parse, Bind, Describe, Execute, Close and Flush
    messages up to and including the Sync (C{S}) that ends them; its
    C{meta} has the C{type} and C{command} of its first message and the
    SQL C{verb} of the query (for a Bind or Execute, of the statement
    parsed under that name); Terminate (C{X}) is a request that gets no
    response;

  - the response to a request is every backend message up to and
    including its ReadyForQuery (C{Z}), including COPY data both ways;
    the client's CopyData, CopyDone and CopyFail (and the Sync libpq
    sends after an extended-query COPY) are L{DATA};

  - a backend message while no request awaits an answer (NoticeResponse,
    ParameterStatus, NotificationResponse, a FATAL error at shutdown) is
    a L{PUSH}.

If the server accepts SSL (C{S}) and the handler has a certificate
(C{tls_certificate} or C{tls_ca_dir}; see L{txvaurien.upgrade}), the proxy
answers the client's handshake itself, runs its own with the backend, and
goes on framing inside TLS.  Otherwise, if the server accepts SSL or GSS
encryption (C{S} or C{G}), or the client starts TLS directly, the
connection is passed through unframed from then on.  With
C{tls_backend=always}, the proxy switches the backend leg to TLS itself,
whatever the client asks (L{txvaurien.protocols._pgtls}).  A message type or
length the protocol does not allow means the framers cannot follow the
stream: it is logged and the rest of the connection is passed through
unframed.
"""

from __future__ import annotations

import struct
from typing import Any

from zope.interface import implementer

from txvaurien.frames import DATA, DOWNSTREAM, PUSH, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.protocols._mysqlpg import (
    PREFIX,
    SQLState,
    UnitFramer,
    int32be,
    remember,
    sqlVerb,
)
from txvaurien.protocols._pgtls import GSSENC_REQUEST, SSL_REQUEST, prepareBackend
from txvaurien.protocols._standin import StandIn
from txvaurien.protocols.base import ProtocolHandler, Session
from txvaurien.upgrade import BACKEND_OPTIONS as BACKEND_UPGRADE_OPTIONS
from txvaurien.upgrade import OPTIONS as UPGRADE_OPTIONS
from txvaurien.upgrade import InbandTLS

CANCEL_REQUEST = 80877102

#: Longest startup-phase message the server accepts.
MAX_STARTUP = 10000
#: Longest message (PostgreSQL refuses anything past 1 GiB).
MAX_MESSAGE = 0x3FFFFFFF

FRONTEND = {
    ord("Q"): "Query",
    ord("P"): "Parse",
    ord("B"): "Bind",
    ord("D"): "Describe",
    ord("E"): "Execute",
    ord("C"): "Close",
    ord("H"): "Flush",
    ord("S"): "Sync",
    ord("F"): "FunctionCall",
    ord("X"): "Terminate",
    ord("d"): "CopyData",
    ord("c"): "CopyDone",
    ord("f"): "CopyFail",
    ord("p"): "PasswordMessage",
}

BACKEND = {
    ord("R"): "Authentication",
    ord("K"): "BackendKeyData",
    ord("S"): "ParameterStatus",
    ord("Z"): "ReadyForQuery",
    ord("E"): "ErrorResponse",
    ord("N"): "NoticeResponse",
    ord("A"): "NotificationResponse",
    ord("T"): "RowDescription",
    ord("D"): "DataRow",
    ord("C"): "CommandComplete",
    ord("I"): "EmptyQueryResponse",
    ord("1"): "ParseComplete",
    ord("2"): "BindComplete",
    ord("3"): "CloseComplete",
    ord("n"): "NoData",
    ord("t"): "ParameterDescription",
    ord("s"): "PortalSuspended",
    ord("G"): "CopyInResponse",
    ord("H"): "CopyOutResponse",
    ord("W"): "CopyBothResponse",
    ord("d"): "CopyData",
    ord("c"): "CopyDone",
    ord("V"): "FunctionCallResponse",
    ord("v"): "NegotiateProtocolVersion",
}

_EXTENDED = frozenset(b"PBDECH")
_COPY = frozenset(b"dcf")
_Z = ord("Z")


def message(kind: bytes, body: bytes) -> bytes:
    """
    One typed protocol message.
    """
    return kind + struct.pack("!I", len(body) + 4) + body


def errorResponse(severity: str, sqlstate: str, text: str) -> bytes:
    """
    An ErrorResponse with severity (localized and not), SQLSTATE code and
    message fields.
    """
    fields = b""
    for code, value in ((b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", text)):
        fields += code + value.encode("utf-8").replace(b"\x00", b"")[:1024] + b"\x00"
    return message(b"E", fields + b"\x00")


def readyForQuery(status: bytes) -> bytes:
    """
    A ReadyForQuery with transaction status C{b"I"}, C{b"T"} or C{b"E"}.
    """
    return message(b"Z", status)


def _cstring(data: bytes, pos: int, end: int) -> tuple[bytes | None, int]:
    """
    A NUL-terminated string of C{data[pos:end]} and the position after it
    (L{None} if it does not end there).
    """
    nul = data.find(b"\x00", pos, end)
    if nul < 0:
        return None, end
    return data[pos:nul], nul + 1


class FrontendFramer(UnitFramer):
    """
    Frames what the client sends: startup-phase messages, then requests
    and the data they carry.
    """

    def __init__(self, session: PostgreSQLSession) -> None:
        UnitFramer.__init__(self, UPSTREAM, session)
        self.pg = session
        self.untyped = True
        self.batch = False
        self.lastExtended = False
        self.copySync = False

    def _header(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        if self.untyped:
            if data[pos] == 0x16:
                self.pg.stopFraming("TLS without SSLRequest", warn=False)
                return 8, -1
            if n - pos < 8:
                return 0, 0
            length = int32be(data, pos)
            if not 8 <= length <= MAX_STARTUP:
                self.pg.stopFraming("startup message length {}".format(length))
                return 8, -1
            return 8, length - 8
        if n - pos < 5:
            return 0, 0
        kind = data[pos]
        length = int32be(data, pos + 1)
        if kind not in FRONTEND or not 4 <= length <= MAX_MESSAGE:
            self.pg.stopFraming("client message type {!r} length {}".format(
                bytes([kind]), length))
            return 5, -1
        return 5, length - 4

    def _unit(self, data: bytes, pos: int, size: int, length: int) -> tuple[Message, bool] | None:
        if self.untyped:
            return self._startup(data, pos, length)
        session = self.pg
        kind = data[pos]
        body = pos + 5
        end = body + min(length, PREFIX)
        if kind == 0x50:  # Parse
            name, start = _cstring(data, body, end)
            verb = sqlVerb(data[start:end])
            if name is not None:
                remember(session.statements, name, verb)
        copySync, self.copySync = self.copySync, False
        if self.batch:
            if kind == 0x58:  # Terminate cuts an unfinished batch short.
                self.batch = False
                return self.newMessage(REQUEST, {"type": "X", "command": "Terminate"},
                                       expectsResponse=False), True
            ends = kind in (0x53, 0x51, 0x46)  # Sync, Query, FunctionCall
            if ends:
                self.batch = False
            return self.message, ends  # type: ignore[return-value]
        if kind in _COPY or kind == 0x70 or (kind == 0x53 and copySync):
            if kind in (0x63, 0x66) and self.lastExtended:
                self.copySync = True
            return self.newMessage(DATA, {"type": chr(kind), "command": FRONTEND[kind]}), True
        meta: dict[str, Any] = {"type": chr(kind), "command": FRONTEND[kind]}
        if kind == 0x51:  # Query
            meta["verb"] = sqlVerb(data[body:end])
        elif kind == 0x50:
            meta["verb"] = verb
        elif kind == 0x42:  # Bind: portal, statement
            _, start = _cstring(data, body, end)
            name, _ = _cstring(data, start, end)
            if name in session.statements:
                meta["verb"] = session.statements[name]
        if kind in _EXTENDED:
            self.batch = True
            self.lastExtended = True
            return self.newMessage(REQUEST, meta), False
        self.lastExtended = kind == 0x53
        return self.newMessage(REQUEST, meta, expectsResponse=kind != 0x58), True

    def _startup(self, data: bytes, pos: int, length: int) -> tuple[Message, bool] | None:
        session = self.pg
        code = int32be(data, pos + 4)
        if code == SSL_REQUEST or code == GSSENC_REQUEST:
            session.awaiting = b"S" if code == SSL_REQUEST else b"G"
            if code == SSL_REQUEST and session.handler.tls.enabled:
                # The answer is read by sslAnswer, this once.
                downstream = session.downstream
                answer = StandIn(downstream, lambda data: downstream.sslAnswer(answer, data))
            name = "SSLRequest" if code == SSL_REQUEST else "GSSENCRequest"
            return self.newMessage(DATA, {"command": name}), True
        if code == CANCEL_REQUEST:
            return self.newMessage(REQUEST, {"command": "CancelRequest"},
                                   expectsResponse=False), True
        if code >> 16 == 3:
            self.untyped = False
            version = "3.{}".format(code & 0xFFFF)
            return self.newMessage(DATA, {"command": "StartupMessage", "version": version}), True
        session.stopFraming("unsupported startup code {}".format(code))
        return None


class BackendFramer(UnitFramer):
    """
    Frames what the server sends: answers to SSLRequest and GSSENCRequest,
    the startup exchange, responses (paired with the requests the backend
    was sent) and unsolicited messages.
    """

    def __init__(self, session: PostgreSQLSession) -> None:
        UnitFramer.__init__(self, DOWNSTREAM, session)
        self.pg = session
        self.encrypt = False

    def _header(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        awaiting = self.pg.awaiting
        if awaiting is not None:
            if data[pos] in (awaiting[0], 0x4E):
                return 1, 0
            self.pg.awaiting = None
        if n - pos < 5:
            return 0, 0
        kind = data[pos]
        length = int32be(data, pos + 1)
        if kind not in BACKEND or not 4 <= length <= MAX_MESSAGE or (
                kind == _Z and length != 5):
            self.pg.stopFraming("server message type {!r} length {}".format(
                bytes([kind]), length))
            return 5, -1
        return 5, length - 4

    def _unit(self, data: bytes, pos: int, size: int, length: int) -> tuple[Message, bool]:
        session = self.pg
        kind = data[pos]
        if session.awaiting is not None:
            accepted = kind == session.awaiting[0]
            name = "SSLResponse" if session.awaiting == b"S" else "GSSENCResponse"
            session.awaiting = None
            self.encrypt = self.switching = accepted
            return self.newMessage(DATA, {"command": name, "accepted": accepted}), True
        if kind == _Z:
            session.status = data[pos + 5:pos + 6]
        if session.startup:
            if kind == _Z:
                session.startup = False
            return self.newMessage(
                DATA, {"type": chr(kind), "command": BACKEND[kind], "phase": "startup"}), True
        current = self.message
        if current is None:
            if not session.sent:
                return self.newMessage(
                    PUSH, {"type": chr(kind), "command": BACKEND[kind]}), True
            request = session.sent.popleft()
            current = self.newMessage(
                RESPONSE, {"type": chr(kind), "command": request.meta.get("command", "")},
                request)
        return current, kind == _Z

    def _skip(self, data: bytes, pos: int, n: int) -> int:
        message = self.message
        if message is None or message.kind != RESPONSE:
            return pos
        while pos + 5 <= n:
            kind = data[pos]
            if kind == _Z or kind not in BACKEND:
                break
            length = int32be(data, pos + 1)
            end = pos + 1 + length
            if length < 4 or end > n:
                break
            pos = end
        return pos

    def sslAnswer(self, standIn: StandIn, data: bytes) -> list[Frame]:
        """
        Frame the server's answer to an SSLRequest when the handler
        upgrades: an C{S} is the proxy's to give.  It writes C{S} to the
        client itself, before the switch (nothing else is owed to the
        client at that point), switches both legs to TLS, and frames the
        C{SSLResponse} without its byte, so that nothing is written again.
        Any other answer is framed as usual.

        @param standIn: the L{StandIn} this stands in for C{feed} with.
        """
        standIn.giveWay()
        session = self.pg
        if self.held or data[:1] != b"S" or session.awaiting != b"S":
            return self.feed(data)
        session.upgrading = True
        try:
            frames = self.feed(data)
        finally:
            session.upgrading = False
        connection: Any = session.connection
        answer = frames[0]
        answer.message.meta["upgraded"] = True
        frames[0] = Frame(b"", answer.message, answer.first, answer.last)
        if len(data) > 1:
            # Bytes after the S cannot come from TLS (CVE-2021-23222).
            connection.close("the server sent {} bytes after accepting SSL".format(
                len(data) - 1))
            return frames[:1]
        connection.client.transport.write(b"S")
        session.handler.tls.start(connection)
        return frames

    def _unitDone(self) -> None:
        if self.encrypt:
            self.encrypt = False
            if self.pg.upgrading:
                return
            self.pg.stopFraming("encryption accepted", warn=False)


@implementer(IProtocolSession)
class PostgreSQLSession(Session):
    """
    One PostgreSQL connection: its framers, the transaction status of the
    last ReadyForQuery and the errors the client will parse.

    @ivar startup: whether the startup exchange is still going on.
    @ivar awaiting: C{b"S"} or C{b"G"} while the answer to an SSLRequest
        or GSSENCRequest is due.
    @ivar status: the transaction status of the last ReadyForQuery.
    @ivar statements: prepared statement name to SQL verb.
    """

    serverSpeaksFirst = False
    protocolName = "postgresql"
    handler: PostgreSQL

    def __init__(self, handler: PostgreSQL, connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.startup = True
        self.awaiting: bytes | None = None
        self.upgrading = False
        self.backendTLS = False
        self.clientTLS = False
        self.status = b"I"
        self.statements: dict[bytes, str] = {}
        self.upstream = FrontendFramer(self)
        self.downstream = BackendFramer(self)

    def prepareBackend(self) -> bool:
        """
        With C{tls_backend=always}, switch the backend leg to TLS before
        the client's bytes flow (L{txvaurien.protocols._pgtls}).

        @return: whether the client's bytes wait for it.
        """
        return prepareBackend(self)

    def errorReply(self, request: Message | None, reason: str, code: int | None = None) -> bytes:
        """
        An ErrorResponse (severity ERROR, the C{error_sqlstate} option)
        followed by a ReadyForQuery with the current transaction status,
        which answers a whole query or extended-query batch; nothing for a
        request that gets no response; during startup, a FATAL
        ErrorResponse alone.
        """
        if request is not None and not request.expectsResponse:
            return b""
        sqlstate = self.handler.settings["error_sqlstate"]
        if self.startup:
            return errorResponse("FATAL", sqlstate, reason)
        return errorResponse("ERROR", sqlstate, reason) + readyForQuery(self.status or b"I")

    def connectFailed(self, reason: str) -> bytes:
        """
        A FATAL ErrorResponse with the C{connect_sqlstate} option.
        """
        return errorResponse(
            "FATAL", self.handler.settings["connect_sqlstate"],
            "txvaurien: could not connect to the backend: {}".format(reason))


class PostgreSQL(ProtocolHandler):
    """
    PostgreSQL: behaviors act on queries and extended-query batches (up to
    their Sync) and their whole responses (up to ReadyForQuery), and
    C{error} answers one with an ErrorResponse the client library raises
    as its own error (psycopg C{Error} with the C{error_sqlstate} as its
    C{sqlstate}).

    The startup and authentication exchange passes untouched.  A
    connection whose SSLRequest the server accepts is upgraded (the proxy
    speaks TLS to both sides and goes on framing) when a certificate is
    given (C{tls_certificate} or C{tls_ca_dir}); otherwise, and for GSS
    encryption, it is passed through unframed from then on.

    @ivar tls: what the settings say about in-band upgrades.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:5433 --backend 127.0.0.1:5432 \\
            --protocol postgresql --behavior 10:error \\
            --protocol-postgresql-error-sqlstate 40001
    """

    name = "postgresql"
    options = {
        "error_sqlstate": (
            "SQLSTATE of the ErrorResponse that answers a failed request "
            "(XX000: internal error; 40001: serialization failure; "
            "57P01: admin shutdown)",
            SQLState(),
            "XX000",
        ),
        "connect_sqlstate": (
            "SQLSTATE of the FATAL ErrorResponse sent when the backend cannot "
            "be reached",
            SQLState(),
            "08006",
        ),
        **UPGRADE_OPTIONS,
        **BACKEND_UPGRADE_OPTIONS,
    }
    framesRequests = True
    sessionClass = PostgreSQLSession

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        ProtocolHandler.__init__(self, settings)
        self.tls = InbandTLS(self.settings, "protocol-postgresql-")
