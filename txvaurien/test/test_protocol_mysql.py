"""
Tests for L{txvaurien.protocols.mysql}: the framers on hand-made packet
streams (exact frames, any chunking), the error packets, the handler
through the in-memory proxy, and hypothesis fuzzing of the framers with
valid, corrupted and random streams.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.frames import DATA, DOWNSTREAM, GREETING, PUSH, REQUEST, RESPONSE, UPSTREAM
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.options import OptionError
from txvaurien.protocols._mysqlpg import PREFIX
from txvaurien.protocols.mysql import (
    CLIENT_COMPRESS,
    CLIENT_DEPRECATE_EOF,
    CLIENT_SSL,
    MARIADB_CLIENT_CACHE_METADATA,
    MARIADB_CLIENT_PROGRESS,
    SERVER_MORE_RESULTS_EXISTS,
    MySQL,
    errPacket,
    packet,
)
from txvaurien.table import REQUEST_SCOPE
from txvaurien.test.helpers import Harness

PROTOCOL_41 = 0x200
SERVER_CAPABILITIES = 0xF7FE | PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_SSL | CLIENT_COMPRESS
BASIC = PROTOCOL_41 | 0x8000 | (1 << 19) | (1 << 16) | (1 << 17)
AUTOCOMMIT = 0x0002


# Server packets


def greeting(capabilities: int = SERVER_CAPABILITIES, extended: int = 0) -> bytes:
    """
    A protocol 10 server greeting; MariaDB's extended capabilities clear
    the C{CLIENT_MYSQL} bit and follow in the reserved bytes.
    """
    if extended:
        capabilities &= ~1
    payload = (b"\x0a" + b"10.11.99-MariaDB\x00" + struct.pack("<I", 7) + b"scramble"
               + b"\x00" + struct.pack("<H", capabilities & 0xFFFF) + b"\x21"
               + struct.pack("<H", AUTOCOMMIT) + struct.pack("<H", capabilities >> 16 & 0xFFFF)
               + b"\x15" + b"\x00" * 6 + struct.pack("<I", extended)
               + b"twelve bytes\x00" + b"mysql_native_password\x00")
    return packet(0, payload)


def handshakeResponse(capabilities: int = BASIC, extended: int = 0, sequence: int = 1) -> bytes:
    if extended:
        capabilities &= ~1
    payload = (struct.pack("<IIB", capabilities, 1 << 24, 33) + b"\x00" * 19
               + struct.pack("<I", extended) + b"user\x00" + b"\x14" + b"t" * 20
               + b"mysql_native_password\x00")
    return packet(sequence, payload)


def sslRequest() -> bytes:
    return packet(1, struct.pack("<IIB", BASIC | CLIENT_SSL, 1 << 24, 33) + b"\x00" * 23)


def ok(sequence: int, status: int = AUTOCOMMIT, header: int = 0x00, info: bytes = b"") -> bytes:
    return packet(sequence, bytes([header, 0, 0]) + struct.pack("<HH", status, 0) + info)


def eof(sequence: int, status: int = AUTOCOMMIT) -> bytes:
    return packet(sequence, b"\xfe\x00\x00" + struct.pack("<H", status))


def err(sequence: int, code: int = 1064, message: bytes = b"syntax") -> bytes:
    return packet(sequence, b"\xff" + struct.pack("<H", code) + b"#42000" + message)


def columnDefinition(sequence: int, name: bytes = b"a") -> bytes:
    payload = b"\x03def\x00\x00\x00" + bytes([len(name)]) + name + b"\x00\x0c\x3f\x00"
    payload += b"\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00"
    return packet(sequence, payload)


def textRow(sequence: int, *values: bytes) -> bytes:
    return packet(sequence, b"".join(bytes([len(v)]) + v for v in values))


def resultSet(first: int, columns: int, rows: int, deprecateEOF: bool = False,
              status: int = AUTOCOMMIT) -> tuple[bytes, int]:
    """
    A text result set whose packets are numbered from C{first}.

    @return: its bytes and the sequence id after its last packet.
    """
    sequence = first
    data = packet(sequence, bytes([columns]))
    sequence += 1
    for i in range(columns):
        data += columnDefinition(sequence & 0xFF, b"c%d" % i)
        sequence += 1
    if not deprecateEOF:
        data += eof(sequence & 0xFF)
        sequence += 1
    for i in range(rows):
        data += textRow(sequence & 0xFF, *[b"%d" % (i * columns + j) for j in range(columns)])
        sequence += 1
    if deprecateEOF:
        data += ok(sequence & 0xFF, status, header=0xFE)
    else:
        data += eof(sequence & 0xFF, status)
    return data, (sequence + 1) & 0xFF


def query(sql: bytes, sequence: int = 0) -> bytes:
    return packet(sequence, b"\x03" + sql)


def command(code: int, argument: bytes = b"") -> bytes:
    return packet(0, bytes([code]) + argument)


LOGIN = greeting() + ok(2)


# Running framers


def newSession(**settings: Any) -> Any:
    """
    A session of a configured handler, on a stand-in connection (only its
    name and id are used, for logs).
    """
    handler = MySQL().configure(settings)
    connection = SimpleNamespace(id=0, proxy=SimpleNamespace(name="test"))
    return handler.buildSession(connection)


def loggedIn(session: Any, capabilities: int = BASIC, extended: int = 0,
             server: int = SERVER_CAPABILITIES) -> None:
    """
    Take C{session} through a greeting, a handshake response and its OK.
    """
    session.downstream.feed(greeting(server, extended))
    session.upstream.feed(handshakeResponse(capabilities, extended))
    session.downstream.feed(ok(2))


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """
    C{data} cut at the given offsets.
    """
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces = []
    start = 0
    for point in points + [len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def run(framer: Any, pieces: list[bytes], finish: bool = True) -> list[Any]:
    frames = []
    for piece in pieces:
        frames.extend(framer.feed(piece))
    if finish:
        frames.extend(framer.finish())
    return frames


def messages(frames: list[Any]) -> list[tuple[Any, bytes]]:
    """
    Group frames into messages, checking that each message's frames are
    contiguous, the first one flagged C{first} and only the last one
    C{last}.

    @return: C{(message, data)} pairs in order.
    """
    grouped: list[tuple[Any, bytes]] = []
    open_ = None
    for frame in frames:
        if open_ is None or frame.message is not open_:
            assert open_ is None, "message {!r} left open".format(open_)
            assert frame.first, frame
            grouped.append((frame.message, b""))
            open_ = frame.message
        else:
            assert not frame.first, frame
        message, data = grouped[-1]
        grouped[-1] = (message, data + frame.data)
        if frame.last:
            open_ = None
    return grouped


def describe(frames: list[Any]) -> list[tuple[str, bytes]]:
    return [(message.kind, data) for message, data in messages(frames)]


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its sessions and framers provide their interfaces.
    """

    def test_interfaces(self) -> None:
        """
        L{MySQL} provides L{IProtocolHandler}; its session provides
        L{IProtocolSession} and speaks second; both framers provide
        L{IFramer}.
        """
        handler = MySQL()
        verifyObject(IProtocolHandler, handler)
        session = newSession()
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)
        self.assertTrue(session.serverSpeaksFirst)
        self.assertTrue(handler.framesRequests)

    def test_optionsAreValidated(self) -> None:
        """
        An SQLSTATE that is not five digits or capitals, or an error code
        out of range, is refused with a message naming the option.
        """
        for bad in ({"error_sqlstate": "HY00"}, {"error_sqlstate": "hy000"},
                    {"error_code": 0}, {"error_code": 70000},
                    {"connect_error_code": "x"}):
            with self.assertRaises(OptionError) as raised:
                MySQL().configure(bad)
            self.assertIn(next(iter(bad)), str(raised.exception))
        self.assertEqual(MySQL().configure({"error_sqlstate": "40001"}).settings[
            "error_sqlstate"], "40001")


class HandshakeTests(SynchronousTestCase):
    """
    The greeting and the handshake are framed without being requests.
    """

    def test_greetingAndHandshake(self) -> None:
        """
        The greeting is a L{GREETING}; the handshake response and the
        server's OK are L{DATA}; the capabilities of both sides are read.
        """
        session = newSession()
        down = run(session.downstream, [greeting()], finish=False)
        up = run(session.upstream, [handshakeResponse(BASIC | CLIENT_DEPRECATE_EOF)],
                 finish=False)
        down += run(session.downstream, [ok(2)], finish=False)
        self.assertEqual(describe(down), [(GREETING, greeting()), (DATA, ok(2))])
        self.assertEqual(describe(up), [(DATA, handshakeResponse(BASIC | CLIENT_DEPRECATE_EOF))])
        self.assertEqual(session.serverCapabilities, SERVER_CAPABILITIES)
        self.assertTrue(session.capabilities & CLIENT_DEPRECATE_EOF)
        self.assertEqual(session.phase, "command")

    def test_mariadbExtendedCapabilities(self) -> None:
        """
        MariaDB's extended capabilities are read from the greeting and the
        handshake response when both clear the C{CLIENT_MYSQL} bit.
        """
        session = newSession()
        session.downstream.feed(greeting(SERVER_CAPABILITIES))
        session.upstream.feed(handshakeResponse(BASIC, MARIADB_CLIENT_CACHE_METADATA >> 32))
        self.assertFalse(session.capabilities & MARIADB_CLIENT_CACHE_METADATA)
        session = newSession()
        session.downstream.feed(greeting(SERVER_CAPABILITIES, 0x1D))
        session.upstream.feed(handshakeResponse(BASIC, MARIADB_CLIENT_CACHE_METADATA >> 32))
        self.assertTrue(session.capabilities & MARIADB_CLIENT_CACHE_METADATA)
        self.assertFalse(session.capabilities & MARIADB_CLIENT_PROGRESS)

    def test_authenticationSwitch(self) -> None:
        """
        An authentication switch request, the client's answer, more data
        and the final OK are all handshake L{DATA}; a command after it is
        a request.
        """
        session = newSession()
        switch = packet(2, b"\xfeclient_ed25519\x00" + b"n" * 32)
        answer = packet(3, b"s" * 64)
        more = packet(4, b"\x01\x03")
        down = run(session.downstream, [greeting()], finish=False)
        up = run(session.upstream, [handshakeResponse()], finish=False)
        down += run(session.downstream, [switch], finish=False)
        up += run(session.upstream, [answer], finish=False)
        down += run(session.downstream, [more + ok(5)], finish=False)
        up += run(session.upstream, [query(b"SELECT 1")], finish=False)
        self.assertEqual([k for k, _ in describe(down)], [GREETING, DATA, DATA, DATA])
        self.assertEqual([k for k, _ in describe(up)], [DATA, DATA, REQUEST])

    def test_sslRequestSwitchesToPassthrough(self) -> None:
        """
        After an SSL request, everything both ways is unframed L{DATA}, and
        the session says the proxy may skip the framers.
        """
        session = newSession()
        run(session.downstream, [greeting()], finish=False)
        self.assertFalse(session.passthrough)
        hello = b"\x16\x03\x01\x02\x00" + b"h" * 40
        up = run(session.upstream, [sslRequest() + hello[:10], hello[10:]], finish=False)
        self.assertEqual(describe(up), [(DATA, sslRequest()), (DATA, hello[:10]),
                                        (DATA, hello[10:])])
        self.assertEqual(messages(up)[0][0].meta, {"phase": "handshake", "ssl": True})
        self.assertTrue(session.passthrough)
        down = run(session.downstream, [b"\x16\x03\x03" + b"x" * 30], finish=False)
        self.assertEqual(describe(down), [(DATA, b"\x16\x03\x03" + b"x" * 30)])
        self.assertTrue(messages(down)[0][0].meta["unframed"])

    def test_compressionSwitchesToPassthroughAfterOK(self) -> None:
        """
        When both sides asked for compression, the connection is passed
        through unframed after the handshake's OK.
        """
        session = newSession()
        loggedIn(session, BASIC | CLIENT_COMPRESS)
        self.assertTrue(session.raw)
        up = run(session.upstream, [b"\x0b\x00\x00\x00\x00\x00\x00" + query(b"SELECT 1")],
                 finish=False)
        self.assertEqual([m.kind for m, _ in messages(up)], [DATA])

    def test_greetingError(self) -> None:
        """
        A server that refuses the connection sends an ERR as its greeting:
        a L{GREETING}, after which nothing is a request.
        """
        session = newSession()
        refusal = packet(0, b"\xff\x10\x04Too many connections")
        self.assertEqual(describe(run(session.downstream, [refusal], finish=False)),
                         [(GREETING, refusal)])
        self.assertEqual(session.phase, "greeting")


class RequestTests(SynchronousTestCase):
    """
    Commands are requests with metadata.
    """

    def setUp(self) -> None:
        self.session = newSession()
        loggedIn(self.session)

    def requests(self, data: bytes) -> list[Any]:
        return [m for m, _ in messages(run(self.session.upstream, [data], finish=False))]

    def test_commandNamesAndVerbs(self) -> None:
        """
        Each command packet is a request with the command's name; queries
        and statements being prepared have their SQL verb, found after
        white space, comments and parentheses; MySQL executable comments
        count as SQL.
        """
        stream = (query(b"  /* hint */ select 1") + query(b"-- note\n(SELECT 2)")
                  + query(b"# note\n\tinsert into t values (1)")
                  + query(b"/*!40101 SET NAMES utf8 */") + command(0x0E) + command(0x02, b"db")
                  + command(0x16, b"UPDATE t SET a = ?") + command(0xEE))
        found = [(m.kind, m.meta.get("command"), m.meta.get("verb"))
                 for m in self.requests(stream)]
        self.assertEqual(found, [
            (REQUEST, "COM_QUERY", "SELECT"), (REQUEST, "COM_QUERY", "SELECT"),
            (REQUEST, "COM_QUERY", "INSERT"), (REQUEST, "COM_QUERY", "SET"),
            (REQUEST, "COM_PING", None), (REQUEST, "COM_INIT_DB", None),
            (REQUEST, "COM_STMT_PREPARE", "UPDATE"), (REQUEST, "COM_0xee", None)])

    def test_commandsWithoutResponse(self) -> None:
        """
        C{COM_QUIT}, C{COM_STMT_CLOSE} and C{COM_STMT_SEND_LONG_DATA} expect
        no response; others do.
        """
        stream = (command(0x19, b"\x01\x00\x00\x00") + command(0x18, b"\x01\x00\x00\x00\x00\x00x")
                  + command(0x0E) + command(0x01))
        self.assertEqual([m.expectsResponse for m in self.requests(stream)],
                         [False, False, True, False])

    def test_queryHeldUntilVerbKnown(self) -> None:
        """
        The first frame of a query is emitted once its header and the start
        of its SQL (up to 256 bytes) are there, so that its metadata is
        complete; the rest streams.
        """
        sql = b"SELECT '" + b"x" * 1000 + b"'"
        data = query(sql)
        framer = self.session.upstream
        self.assertEqual(framer.feed(data[:3]), [])
        self.assertEqual(framer.feed(data[3:100]), [])
        [first] = framer.feed(data[100:300])
        self.assertEqual(first.data, data[:300])
        self.assertEqual((first.first, first.last), (True, False))
        self.assertEqual(first.message.meta["verb"], "SELECT")
        [rest] = framer.feed(data[300:])
        self.assertEqual((rest.data, rest.first, rest.last), (data[300:], False, True))

    def test_largeQueryInSeveralPackets(self) -> None:
        """
        A query of 16 MiB or more spans packets of 0xffffff bytes: one
        request, whose C{sequence} is that of its last packet.
        """
        sql = b"SELECT '" + b"q" * (0xFFFFFF + 10) + b"'"
        payload = b"\x03" + sql
        data = (b"\xff\xff\xff\x00" + payload[:0xFFFFFF]
                + packet(1, payload[0xFFFFFF:]) + command(0x0E))
        found = messages(run(self.session.upstream, chunks(data, [5000, 0xFFFFFF + 2]),
                             finish=False))
        self.assertEqual([(m.meta["command"], m.meta["sequence"], len(d)) for m, d in found],
                         [("COM_QUERY", 1, 0xFFFFFF + 4 + 4 + len(payload) - 0xFFFFFF),
                          ("COM_PING", 0, 5)])

    def test_preparedStatementVerbs(self) -> None:
        """
        Executing, resetting and closing a prepared statement carry the
        verb of the statement the server prepared under that id.
        """
        session = self.session
        [prepare] = self.requests(command(0x16, b"DELETE FROM t WHERE a = ?"))
        session.requestSent(prepare)
        prepared = packet(1, b"\x00" + struct.pack("<IHHBH", 9, 0, 1, 0, 0))
        run(session.downstream, [prepared + columnDefinition(2) + eof(3)], finish=False)
        execute, close = self.requests(command(0x17, struct.pack("<IBI", 9, 0, 1))
                                       + command(0x19, struct.pack("<I", 9)))
        self.assertEqual((execute.meta["verb"], execute.meta["statement"]), ("DELETE", 9))
        self.assertEqual(close.meta["verb"], "DELETE")
        [again] = self.requests(command(0x17, struct.pack("<IBI", 9, 0, 1)))
        self.assertNotIn("verb", again.meta)


class ResponseTests(SynchronousTestCase):
    """
    Responses end where the server's answer to a command ends.
    """

    def exchange(self, requests: list[bytes], answers: bytes, capabilities: int = BASIC,
                 extended: int = 0, cuts: tuple[int, ...] = ()) -> list[tuple[Any, bytes]]:
        """
        Send C{requests} (each written to the backend), then feed
        C{answers} cut at C{cuts}.

        @return: the downstream messages and their bytes.
        """
        session = self.session = newSession()
        loggedIn(session, capabilities, extended,
                 server=SERVER_CAPABILITIES if not extended else SERVER_CAPABILITIES)
        if extended:
            session.serverCapabilities |= extended << 32
            session.clientCapabilities |= extended << 32
        self.sent = []
        for frame in run(session.upstream, [b"".join(requests)], finish=False):
            if frame.first and frame.message.kind == REQUEST:
                session.requestSent(frame.message)
                self.sent.append(frame.message)
        return messages(run(session.downstream, chunks(answers, list(cuts)), finish=False))

    def assertResponses(self, found: list[tuple[Any, bytes]], expected: list[bytes]) -> None:
        self.assertEqual([d for _, d in found], expected)
        self.assertTrue(all(m.kind == RESPONSE for m, _ in found))
        self.assertEqual([m.request for m, _ in found],
                         [r for r in self.sent if r.expectsResponse][:len(found)])
        self.assertFalse(self.session.raw)

    def test_okErrAndResultSet(self) -> None:
        """
        An OK, an ERR and a whole result set (with EOF packets), cut
        anywhere, are one response each.
        """
        rows, _ = resultSet(1, 2, 3)
        answers = [ok(1), err(1), rows]
        for cuts in [(), (1, 2, 3, 4, 5), tuple(range(0, 200, 7)), (11, 30)]:
            found = self.exchange([query(b"DO 1"), query(b"x"), query(b"SELECT a, b")],
                                  b"".join(answers), cuts=cuts)
            self.assertResponses(found, answers)

    def test_deprecateEOF(self) -> None:
        """
        With C{CLIENT_DEPRECATE_EOF}, a result set has no EOF after its
        column definitions and ends with an OK packet whose header is 0xfe,
        however long.
        """
        rows, _ = resultSet(1, 3, 4, deprecateEOF=True)
        longEnd = resultSet(1, 1, 1, deprecateEOF=True)[0][:-11] + ok(
            4, header=0xFE, info=b"i" * 40)
        found = self.exchange([query(b"SELECT 1"), query(b"SELECT 2"), command(0x0E)],
                              rows + longEnd + ok(1), BASIC | CLIENT_DEPRECATE_EOF)
        self.assertResponses(found, [rows, longEnd, ok(1)])

    def test_moreResults(self) -> None:
        """
        While the server says more results exist, they belong to the same
        response: an OK, then a result set, then the final OK.
        """
        first = ok(1, AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS)
        rows, after = resultSet(2, 1, 2, status=AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS)
        answer = first + rows + ok(after)
        found = self.exchange([query(b"DO 1; SELECT 1; DO 2"), command(0x0E)], answer + ok(1))
        self.assertResponses(found, [answer, ok(1)])

    def test_errorEndsMultipleResults(self) -> None:
        """
        An ERR ends the response even when earlier results said more
        would follow.
        """
        answer = ok(1, SERVER_MORE_RESULTS_EXISTS) + err(2)
        found = self.exchange([query(b"DO 1; bad"), command(0x0E)], answer + ok(1))
        self.assertResponses(found, [answer, ok(1)])

    def test_progressReports(self) -> None:
        """
        MariaDB progress reports (ERR packets with code 0xffff) do not end
        the response when the client asked for them.
        """
        progress = packet(1, b"\xff\xff\xff\x01\x01\x02\x00\x00\x00progress")
        answer = progress + ok(2)
        found = self.exchange([query(b"ALTER TABLE t ENGINE=InnoDB"), command(0x0E)],
                              answer + ok(1), BASIC, MARIADB_CLIENT_PROGRESS >> 32)
        self.assertResponses(found, [answer, ok(1)])

    def test_localInfile(self) -> None:
        """
        After the server asks for a local file, the client's data (even
        past 256 packets, where sequence ids wrap to 0) is L{DATA}, and the
        server's final OK ends the response.
        """
        session = self.session = newSession()
        loggedIn(session)
        [request] = [m for m, _ in messages(run(
            session.upstream, [query(b"LOAD DATA LOCAL INFILE 'f' INTO TABLE t")],
            finish=False))]
        session.requestSent(request)
        asked = packet(1, b"\xfbf")
        down = run(session.downstream, [asked], finish=False)
        contents = b"".join(packet((2 + i) & 0xFF, b"line %d\n" % i) for i in range(300))
        contents += packet((2 + 300) & 0xFF, b"")
        up = messages(run(session.upstream, chunks(contents, [5, 900, 901]), finish=False))
        self.assertEqual({m.kind for m, _ in up}, {DATA})
        self.assertEqual(b"".join(d for _, d in up), contents)
        down += run(session.downstream, [ok((3 + 300) & 0xFF) + b"\x07"], finish=False)
        [(response, data)] = messages(down)[:1]
        self.assertEqual(data, asked + ok((3 + 300) & 0xFF))
        self.assertEqual(response.request, request)
        self.assertFalse(session.raw)

    def test_prepareResponse(self) -> None:
        """
        The answer to C{COM_STMT_PREPARE} includes its parameter and column
        definitions and their EOF packets; with C{CLIENT_DEPRECATE_EOF},
        without them; a statement with neither is a single packet.
        """
        prepared = packet(1, b"\x00" + struct.pack("<IHHBH", 1, 2, 1, 0, 0))
        classic = (prepared + columnDefinition(2) + eof(3) + columnDefinition(4)
                   + columnDefinition(5) + eof(6))
        bare = packet(1, b"\x00" + struct.pack("<IHHBH", 2, 0, 0, 0, 0))
        found = self.exchange([command(0x16, b"SELECT ?, ?"), command(0x16, b"DO 1"),
                               command(0x0E)], classic + bare + ok(1))
        self.assertResponses(found, [classic, bare, ok(1)])
        modern = prepared + columnDefinition(2) + columnDefinition(3) + columnDefinition(4)
        found = self.exchange([command(0x16, b"SELECT ?, ?"), command(0x0E)], modern + ok(1),
                              BASIC | CLIENT_DEPRECATE_EOF)
        self.assertResponses(found, [modern, ok(1)])

    def test_cachedMetadata(self) -> None:
        """
        With MariaDB's metadata cache, a result set whose column count
        says no metadata follows goes straight to its rows.
        """
        binary = (packet(1, b"\x02\x00") + packet(2, b"\x00\x00\x01\x00")
                  + packet(3, b"\x00\x00\x02\x00") + ok(4, header=0xFE))
        found = self.exchange([command(0x17, struct.pack("<IBI", 1, 0, 1)), command(0x0E)],
                              binary + ok(1), BASIC | CLIENT_DEPRECATE_EOF,
                              MARIADB_CLIENT_CACHE_METADATA >> 32)
        self.assertResponses(found, [binary, ok(1)])

    def test_cursorResult(self) -> None:
        """
        A C{COM_STMT_EXECUTE} that opens a cursor is answered with column
        definitions and an EOF flagged C{SERVER_STATUS_CURSOR_EXISTS}, and
        no rows; C{COM_STMT_FETCH} gets rows and an EOF.
        """
        opened = packet(1, b"\x01") + columnDefinition(2) + eof(3, AUTOCOMMIT | 0x40)
        fetched = textRow(1, b"1") + textRow(2, b"2") + eof(3, AUTOCOMMIT | 0x80)
        found = self.exchange([command(0x17, struct.pack("<IBI", 1, 1, 1)),
                               command(0x1C, struct.pack("<II", 1, 2)), command(0x0E)],
                              opened + fetched + ok(1))
        self.assertResponses(found, [opened, fetched, ok(1)])

    def test_fieldListAndStatistics(self) -> None:
        """
        C{COM_FIELD_LIST} is answered by column definitions up to an EOF;
        C{COM_STATISTICS} by one string packet.
        """
        fields = columnDefinition(1) + columnDefinition(2) + eof(3)
        statistics = packet(1, b"Uptime: 1  Threads: 1")
        found = self.exchange([command(0x04, b"t\x00"), command(0x09), command(0x0E)],
                              fields + statistics + ok(1))
        self.assertResponses(found, [fields, statistics, ok(1)])

    def test_changeUser(self) -> None:
        """
        C{COM_CHANGE_USER} may go through an authentication switch: the
        client's answer is L{DATA} and the server's OK ends the response.
        """
        session = self.session = newSession()
        loggedIn(session)
        [request] = [m for m, _ in messages(run(
            session.upstream, [command(0x11, b"other\x00\x00")], finish=False))]
        session.requestSent(request)
        switch = packet(1, b"\xfemysql_native_password\x00" + b"n" * 21)
        down = run(session.downstream, [switch], finish=False)
        up = messages(run(session.upstream, [packet(2, b"a" * 20)], finish=False))
        self.assertEqual([m.kind for m, _ in up], [DATA])
        down += run(session.downstream, [ok(3)], finish=False)
        self.assertEqual(describe(down), [(RESPONSE, switch + ok(3))])

    def test_pushWhenNothingIsPending(self) -> None:
        """
        A packet from the server when no command awaits an answer (an ERR
        at shutdown, sequence id 0) is a L{PUSH}.
        """
        session = newSession()
        loggedIn(session)
        shutdown = packet(0, b"\xff\x87\x07#70100Connection was killed")
        self.assertEqual(describe(run(session.downstream, [shutdown], finish=False)),
                         [(PUSH, shutdown)])

    def test_sequenceMismatchPassesThroughAndLogsOnce(self) -> None:
        """
        A response whose sequence ids do not follow on cannot be framed:
        the response open is ended, the ones still owed are ended empty,
        the rest of the connection passes through unframed, and a warning
        is logged once.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        rows, _ = resultSet(1, 1, 2)
        cut = len(packet(1, b"\x01") + columnDefinition(2, b"c0"))
        broken = rows[:cut] + packet(9, b"\x01") + rows[cut:]
        found = self.exchange([query(b"SELECT 1"), command(0x0E)], broken + ok(1))
        self.assertEqual(b"".join(d for _, d in found), broken + ok(1))
        self.assertEqual([m.kind for m, _ in found], [RESPONSE, RESPONSE, DATA])
        self.assertEqual(found[1][1], b"")
        self.assertTrue(self.session.raw)
        more = run(self.session.downstream, [ok(1)], finish=False)
        self.assertEqual(describe(more), [(DATA, ok(1))])
        warnings = [e for e in events if e.get("event") == "passthrough"]
        self.assertEqual(len(warnings), 1)
        self.assertIn("sequence id 9", warnings[0]["why"])

    def test_sequenceMismatchAmongRows(self) -> None:
        """
        A wrong sequence id among the rows of a result set, cut anywhere,
        is found too: the rest is unframed from that packet on.
        """
        rows, _ = resultSet(1, 2, 5)
        cut = len(resultSet(1, 2, 2)[0]) - 9
        broken = rows[:cut + 3] + b"\x63" + rows[cut + 4:]
        for cuts in ((), (cut - 1,), tuple(range(0, len(broken), 5))):
            found = self.exchange([query(b"SELECT 1, 2")], broken, cuts=cuts)
            self.assertEqual(b"".join(d for _, d in found), broken)
            self.assertEqual(found[0][1], broken[:cut])
            self.assertTrue(self.session.raw)

    def test_finishEndsOwedResponses(self) -> None:
        """
        When the backend's side ends, the response being framed and the
        ones still owed end (empty), so nothing waits for them.
        """
        rows, _ = resultSet(1, 1, 2)
        self.exchange([query(b"SELECT 1"), command(0x0E)], rows[:20])
        frames = self.session.downstream.finish()
        self.assertEqual([(f.message.kind, f.data, f.first, f.last) for f in frames],
                         [(RESPONSE, rows[5:20], False, True), (RESPONSE, b"", True, True)])
        self.assertEqual(frames[1].message.request, self.sent[1])


class ErrorReplyTests(SynchronousTestCase):
    """
    The ERR packets the session writes for behaviors.
    """

    def test_errorAnswersTheRequest(self) -> None:
        """
        The error reply to a command is an ERR packet with the configured
        code and SQLSTATE, numbered after the command's last packet.
        """
        session = newSession(error_code=1213, error_sqlstate="40001")
        loggedIn(session)
        [request] = [m for m, _ in messages(run(session.upstream, [query(b"SELECT 1")],
                                                finish=False))]
        reply = session.errorReply(request, "injected", code=503)
        self.assertEqual(reply, packet(1, b"\xff\xbd\x04#40001injected"))
        request.meta["sequence"] = 255
        self.assertEqual(session.errorReply(request, "x")[3], 0)

    def test_noReplyForCommandsWithoutResponse(self) -> None:
        """
        A command that gets no response gets no error either.
        """
        session = newSession()
        loggedIn(session)
        [quit] = [m for m, _ in messages(run(session.upstream, [command(0x01)], finish=False))]
        self.assertEqual(session.errorReply(quit, "x"), b"")

    def test_errorDuringHandshake(self) -> None:
        """
        With no request (a handshake packet was failed), the ERR follows
        the client's last packet.
        """
        session = newSession()
        session.downstream.feed(greeting())
        session.upstream.feed(handshakeResponse())
        self.assertEqual(session.errorReply(None, "no"), errPacket(2, 1105, "HY000", "no"))

    def test_connectFailed(self) -> None:
        """
        An unreachable backend is answered with an ERR packet in place of
        the greeting: sequence id 0, the configured code, no SQLSTATE.
        """
        session = newSession(connect_error_code=2013)
        data = session.connectFailed("refused")
        self.assertEqual(data[3], 0)
        self.assertEqual(data[4:7], b"\xff\xdd\x07")
        self.assertIn(b"Can't connect to MySQL server", data)
        self.assertIn(b"refused", data)
        self.assertEqual(int.from_bytes(data[:3], "little"), len(data) - 4)


class ProxyTests(SynchronousTestCase):
    """
    The handler in the in-memory proxy.
    """

    def test_swallowedCommandAnsweredInPlace(self) -> None:
        """
        Under request scope, a command a behavior answers never reaches
        the server, and its ERR reaches the client between the responses
        to the commands before and after it.
        """
        harness = Harness("100:swallow", protocol="mysql", scope=REQUEST_SCOPE,
                          settings={"swallow": {"only": "COM_PING"}})
        client = harness.accept()
        backend = harness.backendConnects()
        backend.send(greeting())
        self.assertEqual(client.received(), greeting())
        client.send(handshakeResponse())
        self.assertEqual(backend.received(), handshakeResponse())
        backend.send(ok(2))
        self.assertEqual(client.received(), ok(2))
        rows, _ = resultSet(1, 1, 3)
        client.send(query(b"SELECT 1") + command(0x0E) + query(b"SELECT 2"))
        self.assertEqual(backend.received(), query(b"SELECT 1") + query(b"SELECT 2"))
        backend.send(rows[:35])
        # The start of a packet is held until its header and the bytes
        # that say what it is are there.
        self.assertEqual(client.received(), rows[:33])
        backend.send(rows[35:] + ok(1))
        self.assertEqual(client.received(),
                         rows[33:] + errPacket(1, 1105, "HY000", "swallowed") + ok(1))

    def test_connectFailedReachesClient(self) -> None:
        """
        When the backend cannot be reached, the client gets the ERR packet
        before the connection closes.
        """
        from twisted.internet.error import ConnectionRefusedError
        from twisted.python.failure import Failure
        harness = Harness(protocol="mysql")
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError()))
        self.assertEqual(client.received()[4:7], b"\xff\xd3\x07")
        self.assertTrue(client.transport.disconnecting)


# Fuzzing


def boundaries(frames: list[Any]) -> list[tuple[str, int, bool]]:
    """
    Where messages end in the stream, their kinds and whether they expect
    a response: what must not depend on chunking.  Once framing stopped,
    each chunk is a message of unframed data: those count as one.
    """
    out: list[tuple[str, int, bool]] = []
    offset = 0
    for message, data in messages(frames):
        offset += len(data)
        if message.meta.get("unframed") and out and out[-1][0] == "unframed":
            out[-1] = ("unframed", offset, True)
            continue
        kind = "unframed" if message.meta.get("unframed") else message.kind
        out.append((kind, offset, message.expectsResponse))
    return out


@st.composite
def conversations(draw: Any) -> tuple[bytes, bytes, int]:
    """
    A valid conversation: the server's greeting and OK, then commands and
    their responses (OKs, ERRs, result sets with or without EOF packets,
    several results, prepared statements, commands without response).

    @return: the client's bytes, the server's bytes, and the client
        capabilities.
    """
    deprecate = draw(st.booleans())
    capabilities = BASIC | (CLIENT_DEPRECATE_EOF if deprecate else 0)
    up = handshakeResponse(capabilities)
    down = greeting() + ok(2)
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["ok", "err", "rows", "multi", "prepare", "close", "big"]))
        if kind == "close":
            up += command(0x19, b"\x01\x00\x00\x00")
            continue
        if kind == "prepare":
            up += command(0x16, b"SELECT ?")
            down += packet(1, b"\x00" + struct.pack("<IHHBH", 1, 1, 1, 0, 0))
            down += columnDefinition(2) + (b"" if deprecate else eof(3))
            down += columnDefinition(3 if deprecate else 4) + (b"" if deprecate else eof(5))
            continue
        up += query(b"SELECT " + b"x" * draw(st.integers(0, 300)))
        if kind == "ok":
            down += ok(1)
        elif kind == "err":
            down += err(1)
        elif kind == "big":
            down += resultSet(1, 1, draw(st.integers(250, 300)), deprecate)[0]
        elif kind == "rows":
            down += resultSet(1, draw(st.integers(1, 4)), draw(st.integers(0, 5)), deprecate)[0]
        else:
            rows, after = resultSet(2, 1, 2, deprecate, AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS)
            down += ok(1, AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS) + rows + ok(after)
    return up, down, capabilities


def cutsFor(data: bytes) -> Any:
    return st.lists(st.integers(0, max(len(data), 1)), max_size=20)


def framedConversation(up: bytes, down: bytes, upCuts: list[int],
                       downCuts: list[int]) -> tuple[list[Any], list[Any], Any]:
    """
    Frame a conversation as the proxy would: greeting first, then the
    client's bytes (each request written to the backend), then the
    server's.
    """
    session = newSession()
    greetingSize = len(greeting())
    downFrames = run(session.downstream, [down[:greetingSize]], finish=False)
    upFrames = []
    for frame in run(session.upstream, chunks(up, upCuts)):
        upFrames.append(frame)
        if frame.first and frame.message.kind == REQUEST:
            session.requestSent(frame.message)
    downFrames += run(session.downstream,
                      chunks(down[greetingSize:], [c - greetingSize for c in downCuts]))
    return upFrames, downFrames, session


class FuzzTests(SynchronousTestCase):
    """
    Hypothesis: whatever the stream and its chunking, frames concatenate to
    the input, no exception escapes, message boundaries do not depend on
    chunking, and bytes are never held back for more than a header and
    its prefix.
    """

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_validConversations(self, data: Any) -> None:
        """
        Valid conversations, cut anywhere, are framed as the requests and
        responses they are: each response answers the request at its
        place, and framing never gives up.
        """
        up, down, _ = data.draw(conversations())
        upCuts = data.draw(cutsFor(up))
        downCuts = data.draw(cutsFor(down))
        upFrames, downFrames, session = framedConversation(up, down, upCuts, downCuts)
        self.assertEqual(b"".join(f.data for f in upFrames), up)
        self.assertEqual(b"".join(f.data for f in downFrames), down)
        self.assertFalse(session.raw)
        requests = [m for m, _ in messages(upFrames)
                    if m.kind == REQUEST and m.expectsResponse]
        responses = [m for m, _ in messages(downFrames) if m.kind == RESPONSE]
        self.assertEqual([r.request for r in responses], requests)
        self.assertTrue(all(len(d) for m, d in messages(downFrames)))
        whole = framedConversation(up, down, [], [])
        self.assertEqual(boundaries(upFrames), boundaries(whole[0]))
        self.assertEqual(boundaries(downFrames), boundaries(whole[1]))

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_corruptedConversations(self, data: Any) -> None:
        """
        Valid conversations with bytes changed: frames still concatenate
        to the input, the same way for any chunking.
        """
        up, down, _ = data.draw(conversations())
        if down and data.draw(st.booleans()):
            position = data.draw(st.integers(0, len(down) - 1))
            down = down[:position] + bytes([data.draw(st.integers(0, 255))]) + down[position + 1:]
        if up:
            position = data.draw(st.integers(0, len(up) - 1))
            up = up[:position] + bytes([data.draw(st.integers(0, 255))]) + up[position + 1:]
        upCuts = data.draw(cutsFor(up))
        downCuts = data.draw(cutsFor(down))
        upFrames, downFrames, _ = framedConversation(up, down, upCuts, downCuts)
        self.assertEqual(b"".join(f.data for f in upFrames), up)
        self.assertEqual(b"".join(f.data for f in downFrames), down)
        messages(upFrames)
        messages(downFrames)
        whole = framedConversation(up, down, [], [])
        self.assertEqual(boundaries(upFrames), boundaries(whole[0]))
        self.assertEqual(boundaries(downFrames), boundaries(whole[1]))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=20),
           st.sampled_from([UPSTREAM, DOWNSTREAM]), st.booleans())
    def test_randomBytes(self, data: bytes, cuts: list[int], direction: str,
                         afterLogin: bool) -> None:
        """
        Random bytes in either direction, before or after a login: frames
        concatenate to the input, boundaries do not depend on chunking,
        and what the framer holds back is at most a header and the prefix
        it classifies units with.
        """
        def frame(pieces: list[bytes]) -> tuple[list[Any], Any]:
            session = newSession()
            if afterLogin:
                loggedIn(session)
            framer = session.upstream if direction == UPSTREAM else session.downstream
            frames = []
            fed = 0
            for piece in pieces:
                frames.extend(framer.feed(piece))
                fed += len(piece)
                held = fed - sum(len(f.data) for f in frames)
                self.assertLessEqual(held, 4 + PREFIX)
            frames.extend(framer.finish())
            return frames, session

        frames, _ = frame(chunks(data, cuts))
        self.assertEqual(b"".join(f.data for f in frames), data)
        messages(frames)
        self.assertEqual(boundaries(frames), boundaries(frame([data])[0]))
