"""
Tests for L{txvaurien.protocols.postgresql}: the framers on hand-made
message streams (exact frames, any chunking), the error replies, the
handler through the in-memory proxy, and hypothesis fuzzing of the framers
with valid, corrupted and random streams.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.frames import DATA, DOWNSTREAM, PUSH, REQUEST, RESPONSE, UPSTREAM
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.options import OptionError
from txvaurien.protocols._mysqlpg import PREFIX
from txvaurien.protocols.postgresql import (
    CANCEL_REQUEST,
    GSSENC_REQUEST,
    SSL_REQUEST,
    PostgreSQL,
    errorResponse,
    message,
    readyForQuery,
)
from txvaurien.table import REQUEST_SCOPE
from txvaurien.test.helpers import Harness
from txvaurien.test.test_protocol_mysql import boundaries, chunks, describe, messages, run


def untyped(code: int, body: bytes = b"") -> bytes:
    return struct.pack("!II", len(body) + 8, code) + body


def startup(user: bytes = b"postgres") -> bytes:
    return untyped(196608, b"user\x00" + user + b"\x00database\x00postgres\x00\x00")


def cstring(text: bytes) -> bytes:
    return text + b"\x00"


# Frontend messages.


def Q(sql: bytes) -> bytes:
    return message(b"Q", cstring(sql))


def P(sql: bytes, name: bytes = b"") -> bytes:
    return message(b"P", cstring(name) + cstring(sql) + b"\x00\x00")


def B(statement: bytes = b"", portal: bytes = b"") -> bytes:
    return message(b"B", cstring(portal) + cstring(statement) + b"\x00\x00\x00\x00\x00\x00")


D = message(b"D", b"P\x00")
E = message(b"E", b"\x00\x00\x00\x00\x00")
S = message(b"S", b"")
H = message(b"H", b"")
X = message(b"X", b"")
DONE = message(b"c", b"")


def copyData(data: bytes) -> bytes:
    return message(b"d", data)


# Backend messages.


def Z(status: bytes = b"I") -> bytes:
    return readyForQuery(status)


AUTH_OK = message(b"R", b"\x00\x00\x00\x00")
PARAMETER = message(b"S", b"TimeZone\x00UTC\x00")
KEY = message(b"K", b"\x00\x00\x00\x01\x00\x00\x00\x02")
ROW_DESCRIPTION = message(b"T", b"\x00\x01a\x00" + b"\x00" * 18)
PARSED = message(b"1", b"")
BOUND = message(b"2", b"")
NO_DATA = message(b"n", b"")
COPY_IN = message(b"G", b"\x00\x00\x00")
COPY_OUT = message(b"H", b"\x00\x00\x00")


def row(*values: bytes) -> bytes:
    body = struct.pack("!H", len(values))
    for value in values:
        body += struct.pack("!I", len(value)) + value
    return message(b"D", body)


def complete(tag: bytes) -> bytes:
    return message(b"C", cstring(tag))


def notice(text: bytes) -> bytes:
    return message(b"N", b"SNOTICE\x00M" + text + b"\x00\x00")


def notification(channel: bytes) -> bytes:
    return message(b"A", b"\x00\x00\x00\x07" + cstring(channel) + cstring(b"payload"))


STARTED = AUTH_OK + PARAMETER + KEY + Z()


def newSession(**settings: Any) -> Any:
    handler = PostgreSQL().configure(settings)
    connection = SimpleNamespace(id=0, proxy=SimpleNamespace(name="test"))
    return handler.buildSession(connection)


def started(session: Any) -> None:
    """
    Take C{session} through a startup message and the server's answer.
    """
    session.upstream.feed(startup())
    session.downstream.feed(STARTED)


def send(session: Any, data: bytes, cuts: list[int] = []) -> list[Any]:
    """
    Frame client bytes, telling the session of each request as the proxy
    writes it.

    @return: the frames.
    """
    frames = run(session.upstream, chunks(data, cuts), finish=False)
    for frame in frames:
        if frame.first and frame.message.kind == REQUEST:
            session.requestSent(frame.message)
    return frames


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its sessions and framers provide their interfaces.
    """

    def test_interfaces(self) -> None:
        """
        L{PostgreSQL} provides L{IProtocolHandler}; its session provides
        L{IProtocolSession} (the client speaks first); both framers
        provide L{IFramer}.
        """
        verifyObject(IProtocolHandler, PostgreSQL())
        session = newSession()
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)
        self.assertFalse(session.serverSpeaksFirst)

    def test_optionsAreValidated(self) -> None:
        """
        An SQLSTATE must be five digits or capitals.
        """
        for value in ("XX00", "xx000", "XX0000", "XX 00"):
            with self.assertRaises(OptionError) as raised:
                PostgreSQL().configure({"error_sqlstate": value})
            self.assertIn("error_sqlstate", str(raised.exception))
        with self.assertRaises(OptionError):
            PostgreSQL().configure({"connect_sqlstate": ""})


class StartupTests(SynchronousTestCase):
    """
    The startup phase is framed as data, and encryption passes through.
    """

    def test_startupExchange(self) -> None:
        """
        An SSLRequest answered C{N}, the startup message, a password
        exchange and the server's answer up to ReadyForQuery are L{DATA}
        messages, one per protocol message; then a query is a request.
        """
        session = newSession()
        ssl = untyped(SSL_REQUEST)
        up = send(session, ssl)
        self.assertEqual(session.awaiting, b"S")
        down = run(session.downstream, [b"N"], finish=False)
        self.assertIsNone(session.awaiting)
        up += send(session, startup())
        challenge = message(b"R", b"\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00")
        down += run(session.downstream, [challenge], finish=False)
        answer = message(b"p", b"SCRAM-SHA-256\x00" + b"\x00\x00\x00\x04abcd")
        up += send(session, answer)
        down += run(session.downstream, [STARTED[:7], STARTED[7:]], finish=False)
        up += send(session, Q(b"SELECT 1"))
        self.assertEqual(describe(up), [(DATA, ssl), (DATA, startup()), (DATA, answer),
                                        (REQUEST, Q(b"SELECT 1"))])
        self.assertEqual([m.meta.get("command") for m, _ in messages(up)],
                         ["SSLRequest", "StartupMessage", "PasswordMessage", "Query"])
        self.assertEqual(describe(down), [(DATA, b"N"), (DATA, challenge), (DATA, AUTH_OK),
                                          (DATA, PARAMETER), (DATA, KEY), (DATA, Z())])
        self.assertEqual(messages(down)[0][0].meta,
                         {"command": "SSLResponse", "accepted": False})
        self.assertFalse(session.startup)
        self.assertFalse(session.raw)

    def test_sslAcceptedSwitchesToPassthrough(self) -> None:
        """
        When the server answers an SSLRequest with C{S}, everything after
        that byte, both ways, is unframed data.
        """
        session = newSession()
        send(session, untyped(SSL_REQUEST))
        down = run(session.downstream, [b"S\x16\x03\x03"], finish=False)
        self.assertEqual(describe(down), [(DATA, b"S"), (DATA, b"\x16\x03\x03")])
        self.assertTrue(session.passthrough)
        up = send(session, b"\x16\x03\x01\x00\x10hello")
        self.assertEqual(describe(up), [(DATA, b"\x16\x03\x01\x00\x10hello")])
        self.assertTrue(messages(up)[0][0].meta["unframed"])

    def test_gssEncryption(self) -> None:
        """
        A GSSENCRequest answered C{G} switches to passthrough too; one
        answered C{N} does not.
        """
        session = newSession()
        send(session, untyped(GSSENC_REQUEST))
        run(session.downstream, [b"N"], finish=False)
        self.assertFalse(session.raw)
        send(session, untyped(GSSENC_REQUEST))
        run(session.downstream, [b"G"], finish=False)
        self.assertTrue(session.raw)

    def test_errorInsteadOfAnswer(self) -> None:
        """
        A server that answers an SSLRequest with an ErrorResponse (it
        could not start a backend) has it framed as a message.
        """
        session = newSession()
        send(session, untyped(SSL_REQUEST))
        error = errorResponse("FATAL", "53300", "sorry, too many clients already")
        down = run(session.downstream, [error[:1], error[1:]], finish=False)
        self.assertEqual(describe(down), [(DATA, error)])
        self.assertFalse(session.raw)

    def test_directTLS(self) -> None:
        """
        A client that starts TLS at once (no SSLRequest) is passed
        through, without a warning.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        session = newSession()
        up = send(session, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        self.assertEqual(describe(up), [(DATA, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")])
        self.assertTrue(session.raw)
        self.assertEqual([e for e in events if e.get("log_level") == LogLevel.warn], [])

    def test_cancelRequest(self) -> None:
        """
        A CancelRequest is a request that gets no response.
        """
        session = newSession()
        cancel = untyped(CANCEL_REQUEST, b"\x00\x00\x00\x01\x00\x00\x00\x02")
        [(request, data)] = messages(send(session, cancel))
        self.assertEqual((request.kind, request.meta["command"], request.expectsResponse, data),
                         (REQUEST, "CancelRequest", False, cancel))

    def test_badStartupPassesThroughAndLogsOnce(self) -> None:
        """
        A first message of impossible length, or an unknown protocol
        version, cannot be framed: it and the rest pass unframed, with one
        warning.
        """
        for data in (b"\x00\x01\x00\x00" + b"x" * 20, untyped(131072, b"v2")):
            events = EventLoggingObserver()
            globalLogPublisher.addObserver(events)
            self.addCleanup(globalLogPublisher.removeObserver, events)
            session = newSession()
            up = send(session, data)
            up += send(session, Q(b"SELECT 1"))
            self.assertEqual(b"".join(f.data for f in up), data + Q(b"SELECT 1"))
            self.assertEqual({m.meta.get("unframed") for m, _ in messages(up)}, {True})
            self.assertEqual(len([e for e in events if e.get("event") == "passthrough"]), 1)


class RequestTests(SynchronousTestCase):
    """
    What is a request, and its metadata.
    """

    def setUp(self) -> None:
        self.session = newSession()
        started(self.session)

    def requests(self, data: bytes, cuts: list[int] = []) -> list[tuple[Any, bytes]]:
        return messages(send(self.session, data, cuts))

    def test_simpleQueries(self) -> None:
        """
        Each Query is a request with its SQL verb.
        """
        found = self.requests(Q(b"  select 1") + Q(b"/* x */ (SELECT 2)") + Q(b"-- c\nVACUUM"))
        self.assertEqual([(m.kind, m.meta) for m, _ in found], [
            (REQUEST, {"type": "Q", "command": "Query", "verb": "SELECT"}),
            (REQUEST, {"type": "Q", "command": "Query", "verb": "SELECT"}),
            (REQUEST, {"type": "Q", "command": "Query", "verb": "VACUUM"})])

    def test_extendedBatchUpToSync(self) -> None:
        """
        Parse, Bind, Describe, Execute and Flush up to the Sync are one
        request, with the verb of the statement parsed; a batch that binds
        a named statement parsed earlier has that statement's verb.
        """
        first = P(b"INSERT INTO t VALUES ($1)", b"s1") + B(b"s1") + D + E + H + S
        second = B(b"s1") + E + S
        lone = S
        found = self.requests(first + second + lone, cuts=[3, 20, 40])
        self.assertEqual([(d, m.meta.get("command"), m.meta.get("verb")) for m, d in found],
                         [(first, "Parse", "INSERT"), (second, "Bind", "INSERT"),
                          (lone, "Sync", None)])

    def test_terminate(self) -> None:
        """
        Terminate is a request that gets no response; it ends a batch that
        never got its Sync.
        """
        unfinished = P(b"SELECT 1") + B() + E
        found = self.requests(unfinished + X)
        self.assertEqual([(d, m.expectsResponse) for m, d in found],
                         [(unfinished, True), (X, False)])

    def test_copyDataIsNotARequest(self) -> None:
        """
        CopyData, CopyDone and CopyFail are data; after an extended-query
        COPY, the Sync libpq sends after CopyDone is data too, but not
        after a simple-query COPY.
        """
        simple = Q(b"COPY t FROM STDIN")
        extended = P(b"COPY t FROM STDIN") + B() + E + S
        stream = (simple + copyData(b"1\n") + DONE + S + extended + copyData(b"2\n")
                  + DONE + S + Q(b"SELECT 1"))
        found = self.requests(stream)
        self.assertEqual([(m.kind, m.meta.get("command")) for m, _ in found], [
            (REQUEST, "Query"), (DATA, "CopyData"), (DATA, "CopyDone"), (REQUEST, "Sync"),
            (REQUEST, "Parse"), (DATA, "CopyData"), (DATA, "CopyDone"), (DATA, "Sync"),
            (REQUEST, "Query")])

    def test_verbHeldUntilKnown(self) -> None:
        """
        A request's first frame waits for its message header and the start
        of its SQL; the rest of a long query streams.
        """
        sql = b"UPDATE t SET a = '" + b"a" * 2000 + b"'"
        data = Q(sql)
        framer = self.session.upstream
        self.assertEqual(framer.feed(data[:200]), [])
        [first] = framer.feed(data[200:400])
        self.assertEqual((first.data, first.first, first.last), (data[:400], True, False))
        self.assertEqual(first.message.meta["verb"], "UPDATE")


class ResponseTests(SynchronousTestCase):
    """
    Responses end at ReadyForQuery.
    """

    def exchange(self, requests: bytes, answers: bytes, cuts: list[int] = []) -> list[Any]:
        self.session = newSession()
        started(self.session)
        self.sent = [m for m, _ in messages(send(self.session, requests))
                     if m.kind == REQUEST and m.expectsResponse]
        return messages(run(self.session.downstream, chunks(answers, cuts), finish=False))

    def assertResponses(self, found: list[Any], expected: list[bytes]) -> None:
        self.assertEqual([d for _, d in found], expected)
        self.assertEqual([m.kind for m, _ in found], [RESPONSE] * len(expected))
        self.assertEqual([m.request for m, _ in found], self.sent[:len(found)])
        self.assertFalse(self.session.raw)

    def test_simpleQueryResponses(self) -> None:
        """
        Everything up to ReadyForQuery, cut anywhere, is the response:
        rows, notices within it, several results of one query, errors.
        """
        first = ROW_DESCRIPTION + row(b"1") + row(b"2") + complete(b"SELECT 2") + Z()
        second = (notice(b"hi") + complete(b"BEGIN") + ROW_DESCRIPTION + row(b"x")
                  + complete(b"SELECT 1") + Z(b"T"))
        third = errorResponse("ERROR", "42601", "syntax") + Z(b"E")
        for cuts in ([], [1, 2, 3, 4, 5, 6], list(range(0, 300, 9))):
            found = self.exchange(Q(b"SELECT") + Q(b"BEGIN; SELECT") + Q(b"bad"),
                                  first + second + third, cuts)
            self.assertResponses(found, [first, second, third])
            self.assertEqual(self.session.status, b"E")

    def test_extendedBatchResponse(self) -> None:
        """
        The response to an extended-query batch includes the answers to
        its messages, what was flushed before the Sync, and ends at the
        ReadyForQuery the Sync brings.
        """
        batch = P(b"SELECT 1") + B() + D + E + H
        flushed = PARSED + BOUND + ROW_DESCRIPTION + row(b"1") + complete(b"SELECT 1")
        self.session = newSession()
        started(self.session)
        [(request, _)] = messages(send(self.session, batch))
        down = run(self.session.downstream, [flushed], finish=False)
        self.assertEqual([(f.first, f.last) for f in down], [(True, False)])
        send(self.session, S)
        down += run(self.session.downstream, [Z()], finish=False)
        [(response, data)] = messages(down)
        self.assertEqual((response.request, data), (request, flushed + Z()))

    def test_copyResponses(self) -> None:
        """
        COPY FROM STDIN: the response spans the client's data and ends at
        ReadyForQuery; COPY TO STDOUT: the server's data is in the
        response.
        """
        copyIn = COPY_IN + complete(b"COPY 2") + Z()
        copyOut = COPY_OUT + copyData(b"1\n") + copyData(b"2\n") + DONE + complete(b"COPY 2") + Z()
        found = self.exchange(Q(b"COPY t FROM STDIN") + copyData(b"1\n") + DONE
                              + Q(b"COPY t TO STDOUT"), copyIn + copyOut)
        self.assertResponses(found, [copyIn, copyOut])

    def test_pushesOutsideResponses(self) -> None:
        """
        Notices, parameter changes and notifications that arrive while no
        request awaits an answer are pushes; within a response they belong
        to it.
        """
        session = newSession()
        started(session)
        outside = notification(b"ch") + PARAMETER + notice(b"n")
        down = run(session.downstream, [outside], finish=False)
        [(request, _)] = messages(send(session, Q(b"LISTEN ch")))
        inside = notification(b"ch") + complete(b"LISTEN") + Z()
        down += run(session.downstream, [inside], finish=False)
        self.assertEqual(describe(down), [
            (PUSH, notification(b"ch")), (PUSH, PARAMETER), (PUSH, notice(b"n")),
            (RESPONSE, inside)])
        self.assertEqual([m.meta["command"] for m, _ in messages(down)][:3],
                         ["NotificationResponse", "ParameterStatus", "NoticeResponse"])

    def test_badMessagePassesThroughAndLogsOnce(self) -> None:
        """
        A server message of unknown type cannot be framed: the response
        open is ended, the rest of the connection passes through unframed,
        and one warning is logged.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        answer = ROW_DESCRIPTION + b"?\x00\x00\x00\x04" + row(b"1") + Z()
        found = self.exchange(Q(b"SELECT 1") + Q(b"SELECT 2"), answer + Z())
        self.assertEqual(b"".join(d for _, d in found), answer + Z())
        self.assertEqual([(m.kind, d) for m, d in found], [
            (RESPONSE, ROW_DESCRIPTION), (RESPONSE, b""),
            (DATA, answer[len(ROW_DESCRIPTION):] + Z())])
        warnings = [e for e in events if e.get("event") == "passthrough"]
        self.assertEqual(len(warnings), 1)
        self.assertIn("server message type b'?'", warnings[0]["why"])

    def test_finishEndsOwedResponses(self) -> None:
        """
        When the server's side ends, the open response and those still
        owed end.
        """
        self.exchange(Q(b"SELECT 1") + Q(b"SELECT 2"), ROW_DESCRIPTION + b"D\x00")
        frames = self.session.downstream.finish()
        self.assertEqual([(f.message.kind, f.data, f.first, f.last) for f in frames],
                         [(RESPONSE, b"D\x00", False, True), (RESPONSE, b"", True, True)])


class ErrorReplyTests(SynchronousTestCase):
    """
    The ErrorResponses the session writes for behaviors.
    """

    def test_errorAnswersTheRequest(self) -> None:
        """
        The error reply is an ErrorResponse with severity ERROR, the
        configured SQLSTATE and the reason, then ReadyForQuery with the
        current transaction status.
        """
        session = newSession(error_sqlstate="40001")
        started(session)
        run(session.downstream, [], finish=False)
        [(request, _)] = messages(send(session, Q(b"SELECT 1")))
        session.status = b"T"
        reply = session.errorReply(request, "injected", code=500)
        fields = b"SERROR\x00VERROR\x00C40001\x00Minjected\x00\x00"
        self.assertEqual(reply, b"E" + struct.pack("!I", len(fields) + 4) + fields
                         + b"Z\x00\x00\x00\x05T")

    def test_noReplyForRequestsWithoutResponse(self) -> None:
        """
        Terminate gets no error reply.
        """
        session = newSession()
        started(session)
        [(request, _)] = messages(send(session, X))
        self.assertEqual(session.errorReply(request, "x"), b"")

    def test_errorDuringStartup(self) -> None:
        """
        Before the startup is over, the error reply is a FATAL
        ErrorResponse alone.
        """
        session = newSession()
        send(session, startup())
        self.assertEqual(session.errorReply(None, "no"), errorResponse("FATAL", "XX000", "no"))

    def test_connectFailed(self) -> None:
        """
        An unreachable backend is answered with a FATAL ErrorResponse with
        the configured SQLSTATE.
        """
        session = newSession(connect_sqlstate="57P03")
        self.assertEqual(session.connectFailed("refused"), errorResponse(
            "FATAL", "57P03", "txvaurien: could not connect to the backend: refused"))


class ProxyTests(SynchronousTestCase):
    """
    The handler in the in-memory proxy.
    """

    def setUp(self) -> None:
        self.harness = Harness("100:swallow", protocol="postgresql", scope=REQUEST_SCOPE,
                               settings={"swallow": {"only": "Parse"}})
        self.client = self.harness.accept()
        self.backend = self.harness.backendConnects()
        self.client.send(startup())
        self.assertEqual(self.backend.received(), startup())
        self.backend.send(STARTED)
        self.assertEqual(self.client.received(), STARTED)

    def test_swallowedBatchAnsweredInPlace(self) -> None:
        """
        Under request scope, an extended-query batch a behavior answers
        never reaches the server, and its ErrorResponse and ReadyForQuery
        reach the client between the responses to the requests before and
        after it.
        """
        batch = P(b"SELECT 1") + B() + E + S
        self.client.send(Q(b"SELECT 0") + batch[:10])
        self.client.send(batch[10:] + Q(b"SELECT 2"))
        self.assertEqual(self.backend.received(), Q(b"SELECT 0") + Q(b"SELECT 2"))
        first = ROW_DESCRIPTION + row(b"0") + complete(b"SELECT 1") + Z()
        cut = len(ROW_DESCRIPTION) + 3
        self.backend.send(first[:cut])
        # The start of a message is held until its header and the bytes
        # that say what it is are there.
        self.assertEqual(self.client.received(), first[:cut - 3])
        self.backend.send(first[cut:] + Z())
        self.assertEqual(self.client.received(), first[cut - 3:] + errorResponse(
            "ERROR", "XX000", "swallowed") + Z() + Z())

    def test_connectFailedReachesClient(self) -> None:
        """
        When the backend cannot be reached, the client gets the FATAL
        ErrorResponse before the connection closes.
        """
        harness = Harness(protocol="postgresql")
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError()))
        data = client.received()
        self.assertEqual(data[:1], b"E")
        self.assertIn(b"C08006\x00", data)
        self.assertTrue(client.transport.disconnecting)


# Fuzzing


@st.composite
def conversations(draw: Any) -> tuple[bytes, bytes]:
    """
    A valid conversation: startup (possibly after a refused SSLRequest),
    then simple queries, extended batches, COPY both ways, with
    notifications between them.

    @return: the client's bytes and the server's bytes.
    """
    up = b""
    down = b""
    if draw(st.booleans()):
        up += untyped(SSL_REQUEST)
        down += b"N"
    up += startup()
    down += STARTED
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["query", "batch", "error", "copyin", "copyout", "push"]))
        sql = b"SELECT " + b"x" * draw(st.integers(0, 300))
        if kind == "push":
            down += notification(b"c")
        elif kind == "query":
            up += Q(sql)
            rows = draw(st.integers(0, 5))
            down += (ROW_DESCRIPTION + b"".join(row(b"%d" % i) for i in range(rows))
                     + complete(b"SELECT") + Z())
        elif kind == "batch":
            up += P(sql, b"n") + B(b"n") + D + E + S
            down += PARSED + BOUND + NO_DATA + complete(b"SELECT 0") + Z()
        elif kind == "error":
            up += P(sql) + B() + E + S
            down += errorResponse("ERROR", "42601", "bad") + Z()
        elif kind == "copyin":
            up += Q(b"COPY t FROM STDIN") + copyData(b"1\n") + DONE
            down += COPY_IN + complete(b"COPY 1") + Z()
        else:
            up += Q(b"COPY t TO STDOUT")
            down += COPY_OUT + copyData(b"1\n") + DONE + complete(b"COPY 1") + Z()
    return up, down


def framedConversation(up: bytes, down: bytes, upCuts: list[int],
                       downCuts: list[int]) -> tuple[list[Any], list[Any], Any]:
    """
    Frame the client's bytes (each request written to the backend), then
    the server's.
    """
    session = newSession()
    upFrames = send(session, up, upCuts) + session.upstream.finish()
    downFrames = run(session.downstream, chunks(down, downCuts))
    return upFrames, downFrames, session


def cutsFor(data: bytes) -> Any:
    return st.lists(st.integers(0, max(len(data), 1)), max_size=20)


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
        responses they are, and framing never gives up.
        """
        up, down = data.draw(conversations())
        upCuts = data.draw(cutsFor(up))
        downCuts = data.draw(cutsFor(down))
        upFrames, downFrames, session = framedConversation(up, down, upCuts, downCuts)
        self.assertEqual(b"".join(f.data for f in upFrames), up)
        self.assertEqual(b"".join(f.data for f in downFrames), down)
        self.assertFalse(session.raw)
        requests = [m for m, _ in messages(upFrames) if m.kind == REQUEST]
        responses = [m for m, _ in messages(downFrames) if m.kind == RESPONSE]
        self.assertEqual([r.request for r in responses], requests)
        whole = framedConversation(up, down, [], [])
        self.assertEqual(boundaries(upFrames), boundaries(whole[0]))
        self.assertEqual(boundaries(downFrames), boundaries(whole[1]))

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_corruptedConversations(self, data: Any) -> None:
        """
        Valid conversations with a byte changed in each direction: frames
        still concatenate to the input, the same way for any chunking.
        """
        up, down = data.draw(conversations())
        position = data.draw(st.integers(0, len(up) - 1))
        up = up[:position] + bytes([data.draw(st.integers(0, 255))]) + up[position + 1:]
        position = data.draw(st.integers(0, len(down) - 1))
        down = down[:position] + bytes([data.draw(st.integers(0, 255))]) + down[position + 1:]
        upCuts = data.draw(cutsFor(up))
        downCuts = data.draw(cutsFor(down))
        upFrames, downFrames, _ = framedConversation(up, down, upCuts, downCuts)
        self.assertEqual(b"".join(f.data for f in upFrames), up)
        self.assertEqual(b"".join(f.data for f in downFrames), down)
        whole = framedConversation(up, down, [], [])
        self.assertEqual(boundaries(upFrames), boundaries(whole[0]))
        self.assertEqual(boundaries(downFrames), boundaries(whole[1]))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=20),
           st.sampled_from([UPSTREAM, DOWNSTREAM]), st.booleans())
    def test_randomBytes(self, data: bytes, cuts: list[int], direction: str,
                         afterStartup: bool) -> None:
        """
        Random bytes in either direction, before or after the startup:
        frames concatenate to the input, boundaries do not depend on
        chunking, and the framer holds back at most a header and the
        prefix it classifies messages with.
        """
        def frame(pieces: list[bytes]) -> list[Any]:
            session = newSession()
            if afterStartup:
                started(session)
            framer = session.upstream if direction == UPSTREAM else session.downstream
            frames = []
            fed = 0
            for piece in pieces:
                frames.extend(framer.feed(piece))
                fed += len(piece)
                self.assertLessEqual(fed - sum(len(f.data) for f in frames), 8 + PREFIX)
            frames.extend(framer.finish())
            return frames

        frames = frame(chunks(data, cuts))
        self.assertEqual(b"".join(f.data for f in frames), data)
        messages(frames)
        self.assertEqual(boundaries(frames), boundaries(frame([data])))
