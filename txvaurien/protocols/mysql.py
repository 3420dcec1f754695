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

An SSL request is upgraded when the handler is given a certificate
(C{tls_certificate} or C{tls_ca_dir}; see L{txvaurien.upgrade}): the
proxy answers the client's TLS handshake with its own certificate, sends
the SSL request on to the server and runs its own handshake with it,
verifying the server as a C{tls:} backend is verified, and goes on
framing inside TLS.  Otherwise (C{tls_upgrade=passthrough}, or no
certificate), and once the handshake has negotiated compression, the
connection is passed through unframed.  A response whose sequence ids
do not follow on is a stream the framers cannot follow: it is logged and
the rest of the connection is passed through unframed.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from txvaurien.frames import Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.options import Number
from txvaurien.protocols._mysqlframers import MySQLRequestFramer, MySQLResponseFramer
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
    _COMMAND_PHASE,
    _GREETING_PHASE,
    _HANDSHAKE_PHASE,
    eofStatus,
    errPacket,
    lenenc,
    okStatus,
    packet,
)
from txvaurien.protocols import _mysqltls
from txvaurien.protocols._mysqlpg import SQLState
from txvaurien.protocols.base import ProtocolHandler, Session
from txvaurien.upgrade import BACKEND_OPTIONS as BACKEND_UPGRADE_OPTIONS
from txvaurien.upgrade import OPTIONS as UPGRADE_OPTIONS
from txvaurien.upgrade import InbandTLS

__all__ = [
    "CLIENT_COMPRESS",
    "CLIENT_DEPRECATE_EOF",
    "CLIENT_MYSQL",
    "CLIENT_OPTIONAL_RESULTSET_METADATA",
    "CLIENT_PROTOCOL_41",
    "CLIENT_QUERY_ATTRIBUTES",
    "CLIENT_SSL",
    "CLIENT_ZSTD_COMPRESSION",
    "COMMANDS",
    "MARIADB_CLIENT_CACHE_METADATA",
    "MARIADB_CLIENT_PROGRESS",
    "MAX_PACKET",
    "SERVER_MORE_RESULTS_EXISTS",
    "SERVER_STATUS_CURSOR_EXISTS",
    "MySQL",
    "MySQLRequestFramer",
    "MySQLResponseFramer",
    "MySQLSession",
    "eofStatus",
    "errPacket",
    "lenenc",
    "okStatus",
    "packet",
]


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
    @ivar upgrading: whether the SSL request being framed is upgraded.
    @ivar tlsStarted: whether the proxy switched both legs to TLS.
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
        self.upgrading = False
        self.tlsStarted = False
        self.backendShift = False
        self.heldResponse = b""
        self.upstream = MySQLRequestFramer(self)
        self.downstream = MySQLResponseFramer(self)
        if handler.tls.backendAlways:
            _mysqltls.prepare(self)

    def backendReady(self) -> None:
        """
        The backend leg is verified: when the proxy switched it alone,
        the client's handshake response goes on (L{_mysqltls.ready}).
        """
        if self.backendShift:
            _mysqltls.ready(self)

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
        SQLSTATE, as a server refusing a connection sends it); after an
        in-band upgrade the server failed, in place of the answer to the
        handshake response the client sends inside TLS (sequence id 3), or
        sent in clear while the proxy switched the backend leg alone
        (sequence id 2).
        """
        sequence = 0
        if self.phase == _HANDSHAKE_PHASE:
            sequence = 3 if self.tlsStarted else 2 if self.backendShift else 0
        return errPacket(
            sequence, self.handler.settings["connect_error_code"], None,
            "Can't connect to MySQL server (txvaurien: backend unreachable: {})".format(reason))


class MySQL(ProtocolHandler):
    """
    MySQL and MariaDB: behaviors act on commands (C{COM_QUERY},
    C{COM_STMT_EXECUTE}, ...) and their whole responses, and C{error}
    answers a command with an ERR packet the client library raises as its
    own error (PyMySQL C{OperationalError}).

    The handshake passes untouched.  A connection whose client sends an
    SSL request is upgraded (the proxy speaks TLS to both sides and goes
    on framing) when a certificate is given (C{tls_certificate} or
    C{tls_ca_dir}); otherwise, and once compression is negotiated, it is
    passed through unframed from then on.

    @ivar tls: what the settings say about in-band upgrades.

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
        **UPGRADE_OPTIONS,
        **BACKEND_UPGRADE_OPTIONS,
    }
    framesRequests = True
    sessionClass = MySQLSession

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        ProtocolHandler.__init__(self, settings)
        self.tls = InbandTLS(self.settings, "protocol-mysql-")
