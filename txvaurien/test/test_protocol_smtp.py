"""
Unit tests for the C{smtp} protocol handler (L{txvaurien.protocols.smtp}):
its framers on representative streams, hypothesis fuzzing of random
chunkings of valid, corrupted and random streams, its error replies, and
its behaviour inside the proxy, in memory.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, strategies as st
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.frames import DATA, GREETING, REQUEST, RESPONSE, Message
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.options import OptionError, validate
from txvaurien.protocols.smtp import CLOSE_WAIT, LINE_LIMIT, MESSAGE, SMTP, SMTPSession
from txvaurien.table import REQUEST_SCOPE
from txvaurien.test.helpers import Harness
from txvaurien.test.test_protocol_http import FUZZ, feedAll, messagesOf, shape, split


def newSession(**options: Any) -> SMTPSession:
    """
    The session of a fresh in-memory proxy connection whose C{smtp}
    handler has C{options}.
    """
    harness = Harness(protocol="smtp")
    harness.handler.settings.update(options)
    return harness.accept().protocol.connection.session


def commands(session: SMTPSession, data: bytes) -> list[Message]:
    """
    Frame C{data} from the client, tell the session every request was
    sent, and return the messages.
    """
    frames = session.upstream.feed(data)
    for frame in frames:
        if frame.first and frame.message.kind == REQUEST:
            session.requestSent(frame.message)
    return [f.message for f in frames if f.first]


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its session and framers provide their interfaces.
    """

    def test_interfaces(self) -> None:
        """
        L{SMTP} provides L{IProtocolHandler}, frames requests; its session
        says the server speaks first.
        """
        handler = SMTP()
        verifyObject(IProtocolHandler, handler)
        self.assertTrue(handler.framesRequests)
        self.assertEqual(handler.settings["error_code"], 451)
        self.assertEqual(handler.settings["tls_upgrade"], "auto")
        self.assertFalse(handler.tls.enabled)
        session = newSession()
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)
        self.assertTrue(session.serverSpeaksFirst)
        self.assertFalse(session.passthrough)

    def test_errorCodeOption(self) -> None:
        """
        C{error_code} takes 421, 451 or 554, as text or number, and refuses
        anything else with a clear message.
        """
        self.assertEqual(validate(SMTP(), {"error_code": "421"})["error_code"], 421)
        self.assertEqual(validate(SMTP(), {"error_code": 554})["error_code"], 554)
        with self.assertRaises(OptionError) as raised:
            validate(SMTP(), {"error_code": 500})
        self.assertIn("expected one of 421, 451, 554", str(raised.exception))


class CommandFramingTests(SynchronousTestCase):
    """
    Exact frames for representative client streams.
    """

    def test_pipelinedCommands(self) -> None:
        """
        Commands written together (RFC 2920) are one request each, with
        their verb in upper case.
        """
        session = newSession()
        frames = session.upstream.feed(
            b"mail FROM:<a@example>\r\nRCPT TO:<b@example>\r\nRCPT TO:<c@example>\r\n")
        self.assertEqual([(f.data, f.message.kind, f.message.meta["command"], f.first, f.last)
                          for f in frames],
                         [(b"mail FROM:<a@example>\r\n", REQUEST, "MAIL", True, True),
                          (b"RCPT TO:<b@example>\r\n", REQUEST, "RCPT", True, True),
                          (b"RCPT TO:<c@example>\r\n", REQUEST, "RCPT", True, True)])

    def test_lineHeldUntilItsEnd(self) -> None:
        """
        A command line is framed once its line end arrives.
        """
        session = newSession()
        self.assertEqual(session.upstream.feed(b"NO"), [])
        self.assertEqual(session.upstream.feed(b"OP"), [])
        [frame] = session.upstream.feed(b"\r\n")
        self.assertEqual((frame.data, frame.message.meta["command"]), (b"NOOP\r\n", "NOOP"))

    def test_dataThenContent(self) -> None:
        """
        After C{DATA} (and its 354), the content up to the lone dot is one
        C{MESSAGE} request streamed as it arrives; the next line is a
        command again.
        """
        session = newSession()
        [data] = commands(session, b"DATA\r\n")
        self.assertEqual(data.meta["command"], "DATA")
        session.downstream.feed(b"220 hi\r\n354 go ahead\r\n")
        first = session.upstream.feed(b"Subject: x\r\n\r\n..dot-stuffed\r\n")
        last = session.upstream.feed(b"end\r\n.\r\nQUIT\r\n")
        self.assertEqual([(f.data, f.first, f.last) for f in first],
                         [(b"Subject: x\r\n\r\n..dot-stuffed\r\n", True, False)])
        self.assertEqual(first[0].message.meta["command"], MESSAGE)
        self.assertEqual([(f.data, f.first, f.last, f.message.meta["command"]) for f in last],
                         [(b"end\r\n.\r\n", False, True, MESSAGE),
                          (b"QUIT\r\n", True, True, "QUIT")])

    def test_terminatorAcrossReads(self) -> None:
        """
        The end of content is found when C{<CRLF>.<CRLF>} is cut between
        reads, and when the content is empty.
        """
        for cut in range(1, 6):
            session = newSession()
            commands(session, b"DATA\r\n")
            content = b"abc\r\n.\r\nRSET\r\n"
            frames = feedAll(session.upstream, [content[:3 + cut], content[3 + cut:]])
            got = messagesOf(self, frames)
            self.assertEqual([(m.meta["command"], d) for m, d, _ in got],
                             [(MESSAGE, b"abc\r\n.\r\n"), ("RSET", b"RSET\r\n")], cut)
        session = newSession()
        commands(session, b"DATA\r\n")
        [frame] = session.upstream.feed(b".\r\n")
        self.assertEqual((frame.message.meta["command"], frame.last), (MESSAGE, True))

    def test_refusedDataMeansCommands(self) -> None:
        """
        When the backend refuses C{DATA}, what the client sends next is a
        command.
        """
        session = newSession()
        commands(session, b"DATA\r\n")
        session.downstream.feed(b"220 hi\r\n554 no valid recipients\r\n")
        [frame] = session.upstream.feed(b"RSET\r\n")
        self.assertEqual(frame.message.meta["command"], "RSET")

    def test_bdatChunk(self) -> None:
        """
        C{BDAT} and its chunk of binary data (newlines included) are one
        request.
        """
        session = newSession()
        frames = feedAll(session.upstream, [b"BDAT 10 LAST\r\n0123\n", b"5678", b"9NOOP\r\n"])
        got = messagesOf(self, frames)
        self.assertEqual([(m.meta["command"], d, c) for m, d, c in got],
                         [("BDAT", b"BDAT 10 LAST\r\n0123\n56789", True),
                          ("NOOP", b"NOOP\r\n", True)])

    def test_authContinuation(self) -> None:
        """
        A line answering a C{334} challenge is an C{AUTH} continuation, not
        a command.
        """
        session = newSession()
        commands(session, b"AUTH LOGIN\r\n")
        session.downstream.feed(b"220 hi\r\n334 VXNlcm5hbWU6\r\n")
        [user] = commands(session, b"dXNlcg==\r\n")
        self.assertEqual(user.meta, {"command": "AUTH", "continuation": True})
        session.downstream.feed(b"334 UGFzc3dvcmQ6\r\n")
        [password] = commands(session, b"cGFzcw==\r\n")
        self.assertTrue(password.meta["continuation"])
        session.downstream.feed(b"235 ok\r\n")
        [noop] = commands(session, b"NOOP\r\n")
        self.assertEqual(noop.meta, {"command": "NOOP"})

    def test_startTLSSwitches(self) -> None:
        """
        After C{STARTTLS} is accepted, the client's bytes are unframed, the
        220 reply goes on until the end, and the session is passthrough.
        """
        session = newSession()
        commands(session, b"STARTTLS\r\n")
        session.downstream.feed(b"220 hi\r\n")
        [frame] = session.downstream.feed(b"220 go ahead\r\n")
        self.assertEqual((frame.message.meta["code"], frame.last), (220, False))
        self.assertTrue(session.passthrough)
        [hello] = session.upstream.feed(b"\x16\x03\x01\x00\xa5\x01")
        self.assertEqual(hello.message.kind, DATA)
        [more] = session.downstream.feed(b"\x16\x03\x03")
        self.assertIs(more.message, frame.message)

    def test_startTLSRefusedKeepsSMTP(self) -> None:
        """
        A refused C{STARTTLS} keeps the connection framed.
        """
        session = newSession()
        commands(session, b"STARTTLS\r\n")
        session.downstream.feed(b"220 hi\r\n454 TLS not available\r\n")
        self.assertFalse(session.switched)
        [frame] = session.upstream.feed(b"NOOP\r\n")
        self.assertEqual(frame.message.kind, REQUEST)

    def test_tooLongLineIsData(self) -> None:
        """
        A line longer than L{LINE_LIMIT} is not SMTP: the rest is unframed,
        logged once.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        session = newSession()
        frames = session.upstream.feed(b"x" * (LINE_LIMIT + 1))
        self.assertEqual([f.message.kind for f in frames], [DATA])
        session.upstream.feed(b"NOOP\r\n" + b"y" * LINE_LIMIT)
        self.assertEqual(len([e for e in events if e.get("event") == "invalid"]), 1)


class ReplyFramingTests(SynchronousTestCase):
    """
    Exact frames for representative server streams.
    """

    def test_greetingThenPairedReplies(self) -> None:
        """
        The first reply is the greeting; the others answer the commands in
        the order they were sent; a multi-line reply is one message.
        """
        session = newSession()
        ehlo, mail = commands(session, b"EHLO me\r\nMAIL FROM:<a@b>\r\n")
        frames = session.downstream.feed(
            b"220-first\r\n220 second\r\n250-x.example\r\n250-PIPELINING\r\n250 SIZE\r\n"
            b"250 2.1.0 Ok\r\n")
        self.assertEqual(
            [(f.data, f.message.kind, f.message.request, f.message.meta["code"]) for f in frames],
            [(b"220-first\r\n220 second\r\n", GREETING, None, 220),
             (b"250-x.example\r\n250-PIPELINING\r\n250 SIZE\r\n", RESPONSE, ehlo, 250),
             (b"250 2.1.0 Ok\r\n", RESPONSE, mail, 250)])

    def test_multiLineAcrossReads(self) -> None:
        """
        A multi-line reply cut between reads is one message, each complete
        line framed as it arrives.
        """
        session = newSession()
        session.downstream.feed(b"220 hi\r\n")
        commands(session, b"EHLO me\r\n")
        first = session.downstream.feed(b"250-one\r\n250-tw")
        second = session.downstream.feed(b"o\r\n250 three\r\n")
        self.assertEqual([(f.data, f.first, f.last) for f in first + second],
                         [(b"250-one\r\n", True, False), (b"250-two\r\n250 three\r\n", False, True)])

    def test_codeOnlyLine(self) -> None:
        """
        A reply line with only a code is a complete reply.
        """
        session = newSession()
        session.downstream.feed(b"220 hi\r\n")
        commands(session, b"NOOP\r\n")
        [frame] = session.downstream.feed(b"250\r\n")
        self.assertEqual((frame.message.meta["code"], frame.last), (250, True))

    def test_invalidReplyEndsWithStream(self) -> None:
        """
        A backend that does not answer in SMTP: the rest of its stream is
        the reply to the waiting command, until the end; the connection is
        switched to passthrough.
        """
        session = newSession()
        session.downstream.feed(b"220 hi\r\n")
        [noop] = commands(session, b"NOOP\r\n")
        [frame] = session.downstream.feed(b"HTTP/1.1 400 Bad\r\n")
        self.assertEqual((frame.message.request, frame.last), (noop, False))
        self.assertTrue(session.switched)
        [end] = session.downstream.finish()
        self.assertTrue(end.last)

    def test_unansweredCommandsEndAtEOF(self) -> None:
        """
        At the end of the backend's stream, every command it never answered
        gets an empty reply.
        """
        session = newSession()
        session.downstream.feed(b"220 hi\r\n")
        one, two = commands(session, b"NOOP\r\nNOOP\r\n")
        frames = session.downstream.finish()
        self.assertEqual([(f.data, f.message.request) for f in frames],
                         [(b"", one), (b"", two)])


class ErrorReplyTests(SynchronousTestCase):
    """
    Error replies and what they do to the connection.
    """

    def test_replyUsesOption(self) -> None:
        """
        The reply has the handler's C{error_code}, whatever HTTP status the
        behavior asked for, on one CRLF-terminated line.
        """
        for code in (451, 554):
            session = newSession(error_code=code)
            [mail] = commands(session, b"MAIL FROM:<a@b>\r\n")
            data = session.errorReply(mail, "injected\r\nby test", 503)
            self.assertEqual(data, b"%d txvaurien: injected by test\r\n" % code)
            self.assertFalse(session.closing)

    def test_connectFailed(self) -> None:
        """
        A backend that cannot be reached gives a 421 greeting.
        """
        self.assertEqual(newSession().connectFailed("refused"),
                         b"421 txvaurien: backend unreachable: refused\r\n")

    def test_errorForDataMeansCommands(self) -> None:
        """
        When C{DATA} is answered by an error, no content follows: the next
        line is a command.
        """
        session = newSession()
        [data] = commands(session, b"DATA\r\n")
        session.errorReply(data, "x")
        [frame] = session.upstream.feed(b"RSET\r\n")
        self.assertEqual(frame.message.meta["command"], "RSET")

    def closingHarness(self, **settings: Any) -> tuple[Harness, Any, Any]:
        harness = Harness("100:swallow", protocol="smtp", scope=REQUEST_SCOPE,
                          settings={"swallow": settings})
        harness.handler.settings["error_code"] = 451
        client, backend = harness.pair()
        backend.send(b"220 hi\r\n")
        return harness, client, backend

    def test_421ClosesAfterReply(self) -> None:
        """
        With C{error_code} 421, the client gets the reply, then the
        connection is closed.
        """
        harness, client, backend = self.closingHarness(only="MAIL")
        harness.handler.settings["error_code"] = 421
        client.received()
        client.send(b"MAIL FROM:<a@b>\r\n")
        self.assertEqual(client.received(), b"421 txvaurien: swallowed\r\n")
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.protocol.connection.reason, "SMTP error reply 421")

    def test_closeWaitsForEarlierReplies(self) -> None:
        """
        The close after a 421 waits for the replies owed before it.
        """
        harness, client, backend = self.closingHarness(only="MAIL")
        harness.handler.settings["error_code"] = 421
        client.send(b"NOOP\r\nMAIL FROM:<a@b>\r\n")
        self.assertEqual(backend.received(), b"NOOP\r\n")
        harness.reactor.advance(1)
        self.assertFalse(client.transport.disconnecting)
        backend.send(b"250 ok\r\n")
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.received(), b"220 hi\r\n250 ok\r\n421 txvaurien: swallowed\r\n")

    def test_closeGivesUpWaiting(self) -> None:
        """
        If the backend never answers what is owed, the connection is closed
        after L{CLOSE_WAIT} seconds anyway.
        """
        harness, client, backend = self.closingHarness(only="MAIL")
        harness.handler.settings["error_code"] = 421
        client.send(b"NOOP\r\nMAIL FROM:<a@b>\r\n")
        harness.reactor.advance(CLOSE_WAIT - 1)
        self.assertFalse(client.transport.disconnecting)
        harness.reactor.advance(1.1)
        self.assertTrue(client.transport.disconnecting)

    def test_451KeepsConnection(self) -> None:
        """
        With 451, the connection stays open and the next commands reach the
        backend.
        """
        harness, client, backend = self.closingHarness(only="MAIL")
        client.send(b"MAIL FROM:<a@b>\r\nNOOP\r\n")
        harness.reactor.advance(1)
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(backend.received(), b"NOOP\r\n")

    def test_errorInPlaceOfContentCloses(self) -> None:
        """
        An error in place of the message content (which the backend is
        still waiting for) closes the connection after its reply.
        """
        harness, client, backend = self.closingHarness(only=MESSAGE)
        client.send(b"DATA\r\n")
        backend.send(b"354 go\r\n")
        client.send(b"body\r\n.\r\n")
        self.assertEqual(backend.received(), b"DATA\r\n")
        harness.reactor.advance(0)
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(client.received().endswith(b"354 go\r\n451 txvaurien: swallowed\r\n"))


class ProxyTests(SynchronousTestCase):
    """
    The handler inside the proxy, in memory.
    """

    def test_connectFailedSends421(self) -> None:
        """
        When the backend cannot be reached, the client gets a 421 greeting.
        """
        harness = Harness(protocol="smtp")
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError()))
        self.assertTrue(client.received().startswith(b"421 txvaurien: backend unreachable"))
        self.assertTrue(client.transport.disconnecting)

    def test_swallowedCommandKeepsOrder(self) -> None:
        """
        A pipelined command answered by the proxy gets its reply between
        the backend's replies to the commands around it.
        """
        harness = Harness("100:swallow", protocol="smtp", scope=REQUEST_SCOPE,
                          settings={"swallow": {"only": "RCPT"}})
        client, backend = harness.pair()
        backend.send(b"220 hi\r\n")
        client.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nNOOP\r\n")
        self.assertEqual(backend.received(), b"MAIL FROM:<a@b>\r\nNOOP\r\n")
        backend.send(b"250 mail\r\n250 noop\r\n")
        self.assertEqual(client.received(),
                         b"220 hi\r\n250 mail\r\n451 txvaurien: swallowed\r\n250 noop\r\n")


# Hypothesis strategies: valid SMTP sessions.

_mailbox = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.example", fullmatch=True)
_contentLine = st.text("abcXYZ .:-!", max_size=30).map(lambda t: t.encode())


@st.composite
def sessions(draw: Any) -> tuple[bytes, bytes, list[tuple[str, int]]]:
    """
    A client stream and the server stream answering it, and the expected
    (command, reply code) of each exchange after the greeting.
    """
    client = [b"EHLO client.example\r\n"]
    server = [b"220-welcome\r\n220 ESMTP\r\n", b"250-hello\r\n250-PIPELINING\r\n250 OK\r\n"]
    expected = [("EHLO", 250)]
    for _ in range(draw(st.integers(0, 3))):
        mail = "MAIL FROM:<{}>\r\n".format(draw(_mailbox)).encode()
        rcpts = ["RCPT TO:<{}>\r\n".format(m).encode() for m in draw(st.lists(_mailbox, min_size=1, max_size=3))]
        accepted = draw(st.booleans())
        client += [mail] + rcpts + [b"DATA\r\n"]
        server += [b"250 ok\r\n"] + [b"250 ok\r\n"] * len(rcpts)
        expected += [("MAIL", 250)] + [("RCPT", 250)] * len(rcpts)
        if accepted:
            lines = draw(st.lists(_contentLine, max_size=5))
            content = b"".join(b"." + line + b"\r\n" if line.startswith(b".") else line + b"\r\n"
                               for line in lines) + b".\r\n"
            client.append(content)
            server += [b"354 go ahead\r\n", b"250 queued\r\n"]
            expected += [("DATA", 354), (MESSAGE, 250)]
        else:
            client.append(b"RSET\r\n")
            server += [b"554 no\r\n", b"250 reset\r\n"]
            expected += [("DATA", 554), ("RSET", 250)]
    if draw(st.booleans()):
        chunk = draw(st.binary(max_size=30))
        client.append(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        server.append(b"250 chunk\r\n")
        expected.append(("BDAT", 250))
    client.append(b"QUIT\r\n")
    server.append(b"221 bye\r\n")
    expected.append(("QUIT", 221))
    return b"".join(client), b"".join(server), expected


class FuzzTests(SynchronousTestCase):
    """
    Hypothesis: whatever the chunking, frames concatenate to the input,
    nothing raises, and message boundaries are the same.
    """

    @FUZZ
    @given(sessions(), st.lists(st.integers(0, 10 ** 6), max_size=10))
    def test_validClientStream(self, played: tuple[bytes, bytes, list[tuple[str, int]]],
                               cuts: list[int]) -> None:
        """
        A valid client stream whose every C{DATA} is accepted, cut
        anywhere, gives one complete request per command or content, with
        the right verbs, even before any reply is seen.
        """
        client, _, expected = played
        assume(all(code == 354 for command, code in expected if command == "DATA"))
        session = newSession()
        frames = feedAll(session.upstream, split(client, cuts))
        self.assertEqual(b"".join(f.data for f in frames), client)
        got = messagesOf(self, frames)
        self.assertTrue(all(complete for _, _, complete in got))
        self.assertEqual([m.meta["command"] for m, _, _ in got],
                         [command for command, _ in expected])

    @FUZZ
    @given(sessions(), st.lists(st.integers(0, 10 ** 6), max_size=10),
           st.lists(st.integers(0, 10 ** 6), max_size=10))
    def test_validSessionsPaired(self, played: tuple[bytes, bytes, list[tuple[str, int]]],
                                 clientCuts: list[int], serverCuts: list[int]) -> None:
        """
        Whole valid sessions, each piece cut anywhere, played as a real one
        goes (a command, then its reply): every reply is paired with the
        command it answers, with its code.
        """
        client, server, expected = played
        session = newSession()
        greetingEnd = server.index(b"220 ESMTP\r\n") + len(b"220 ESMTP\r\n")
        down = feedAll(session.downstream, split(server[:greetingEnd], serverCuts))
        up = []
        clientRest, serverRest = client, server[greetingEnd:]
        for command, _ in expected:
            end = _firstMessageEnd(clientRest, command)
            frames = feedAll(session.upstream, split(clientRest[:end], clientCuts))
            for frame in frames:
                if frame.first and frame.message.kind == REQUEST:
                    session.requestSent(frame.message)
            up += frames
            clientRest = clientRest[end:]
            end = _firstReplyEnd(serverRest)
            down += feedAll(session.downstream, split(serverRest[:end], serverCuts))
            serverRest = serverRest[end:]
        self.assertEqual(b"".join(f.data for f in up), client)
        self.assertEqual(b"".join(f.data for f in down), server)
        replies = [m for m, _, _ in messagesOf(self, down) if m.kind == RESPONSE]
        self.assertEqual([(r.request.meta["command"] if r.request else None, r.meta["code"])
                          for r in replies], expected)
        self.assertEqual(messagesOf(self, down)[0][0].kind, GREETING)

    @FUZZ
    @given(st.binary(max_size=300), st.lists(st.integers(0, 10 ** 6), max_size=12),
           st.booleans())
    def test_randomBytes(self, data: bytes, cuts: list[int], upstream: bool) -> None:
        """
        Random bytes in either direction: frames concatenate to the input,
        and boundaries do not depend on the chunking.
        """
        shapes = []
        for chunks in ([data] if data else [], split(data, cuts)):
            session = newSession()
            framer = session.upstream if upstream else session.downstream
            frames = feedAll(framer, chunks, finish=True)
            self.assertEqual(b"".join(f.data for f in frames), data)
            shapes.append(shape(self, frames))
        self.assertEqual(shapes[0], shapes[1])

    @FUZZ
    @given(sessions(), st.binary(max_size=40), st.integers(0, 10 ** 6),
           st.lists(st.integers(0, 10 ** 6), max_size=10), st.booleans())
    def test_corruptedStreams(self, played: tuple[bytes, bytes, list[tuple[str, int]]],
                              garbage: bytes, where: int, cuts: list[int],
                              upstream: bool) -> None:
        """
        A valid stream of either side with random bytes inserted anywhere:
        frames concatenate to the input, boundaries do not depend on the
        chunking, and every message ends by the end of the stream.
        """
        client, server, _ = played
        stream = client if upstream else server
        where %= len(stream) + 1
        stream = stream[:where] + garbage + stream[where:]
        shapes = []
        for chunks in ([stream], split(stream, cuts), [stream[i:i + 1] for i in range(len(stream))]):
            session = newSession()
            if upstream:
                session.downstream.feed(b"220 hi\r\n")
                frames = feedAll(session.upstream, chunks, finish=True)
            else:
                commands(session, client)
                frames = feedAll(session.downstream, chunks, finish=True)
            self.assertEqual(b"".join(f.data for f in frames), stream)
            self.assertTrue(all(c for _, _, c in messagesOf(self, frames)))
            shapes.append(shape(self, frames))
        self.assertEqual(shapes[0], shapes[1])
        self.assertEqual(shapes[0], shapes[2])


def _firstMessageEnd(client: bytes, command: str) -> int:
    """
    Where the client's next request (of C{command}) ends.
    """
    if command == MESSAGE:
        return client.index(b"\r\n.\r\n") + 5 if not client.startswith(b".\r\n") else 3
    if command == "BDAT":
        line = client.index(b"\n") + 1
        return line + int(client.split()[1])
    return client.index(b"\n") + 1


def _firstReplyEnd(server: bytes) -> int:
    """
    Where the server's next (possibly multi-line) reply ends.
    """
    pos = 0
    while True:
        eol = server.index(b"\n", pos) + 1
        if server[pos + 3:pos + 4] != b"-":
            return eol
        pos = eol
