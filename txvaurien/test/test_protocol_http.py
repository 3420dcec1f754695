"""
Unit tests for the C{http} protocol handler (L{txvaurien.protocols.http}):
its framers on representative streams, hypothesis fuzzing of random
chunkings of valid, invalid and random streams, its error replies, and
its behaviour inside the proxy, in memory.
"""

from __future__ import annotations

from typing import Any

import h11
from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.endpoints import EndpointBackend, TCPBackend
from txvaurien.frames import DATA, REQUEST, RESPONSE, Frame, Message
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.protocols._httpframing import HEAD_LIMIT, LINE_LIMIT, findHeadEnd
from txvaurien.protocols._httpheads import H11, HTTPTOOLS, HeadReader, InvalidHead
from txvaurien.protocols.http import HTTP, HTTPSession, backendAuthority
from txvaurien.table import REQUEST_SCOPE
from txvaurien.test.helpers import Harness

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def newSession(parser: str = HTTPTOOLS, **options: Any) -> HTTPSession:
    """
    The session of a fresh in-memory proxy connection whose C{http}
    handler has C{parser} and C{options}.
    """
    harness = Harness(protocol="http")
    harness.handler.settings["parser"] = parser
    harness.handler.settings.update(options)
    return harness.accept().protocol.connection.session


def feedAll(framer: Any, chunks: list[bytes], finish: bool = False) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    if finish:
        frames.extend(framer.finish())
    return frames


def messagesOf(case: Any, frames: list[Frame]) -> list[tuple[Message, bytes, bool]]:
    """
    Group frames into messages, checking the frame contract on the way:
    frames of a message are contiguous, the first has C{first}, only the
    last may have C{last}.

    @return: C{(message, bytes, complete)} in order.
    """
    result: list[tuple[Message, bytes, bool]] = []
    current: Message | None = None
    done = True
    for frame in frames:
        if frame.message is not current:
            case.assertTrue(done, "message {!r} interrupted".format(current))
            case.assertTrue(frame.first, "{!r} lacks first".format(frame))
            current = frame.message
            result.append((current, b"", False))
        else:
            case.assertFalse(frame.first, "{!r} has first again".format(frame))
        message, data, _ = result[-1]
        result[-1] = (message, data + frame.data, frame.last)
        done = frame.last
    return result


def shape(case: Any, frames: list[Frame]) -> list[tuple[Any, bytes, bool]]:
    """
    The message boundaries of C{frames}: each message's kind, metadata
    (but the text of an C{invalid} reason), request, bytes and whether it
    ended; consecutive unframed (L{DATA}) messages are merged, since their
    cuts follow the reads.
    """
    result: list[tuple[Any, bytes, bool]] = []
    for message, data, complete in messagesOf(case, frames):
        meta = sorted((k, v) for k, v in message.meta.items() if k != "invalid")
        key = (message.kind, meta,
               None if message.request is None else message.request.index)
        if message.kind == DATA and result and result[-1][0][0] == DATA:
            previousKey, previousData, _ = result[-1]
            result[-1] = (previousKey, previousData + data, complete)
            continue
        result.append((key, data, complete))
    return result


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """
    C{data} cut at the given offsets (taken modulo its length).
    """
    if not data:
        return []
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def sendAll(session: HTTPSession, frames: list[Frame]) -> None:
    """
    Tell the session that every request among C{frames} was written.
    """
    for frame in frames:
        if frame.first and frame.message.kind == REQUEST:
            session.requestSent(frame.message)


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its session and framers provide their interfaces.
    """

    def test_interfaces(self) -> None:
        """
        L{HTTP} provides L{IProtocolHandler}, frames requests, and builds
        an L{IProtocolSession} whose framers provide L{IFramer}.
        """
        handler = HTTP()
        verifyObject(IProtocolHandler, handler)
        self.assertTrue(handler.framesRequests)
        self.assertEqual(handler.name, "http")
        self.assertEqual(handler.settings, {
            "overwrite_host_header": False, "parser": "httptools"})
        session = newSession()
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)
        self.assertFalse(session.serverSpeaksFirst)
        self.assertFalse(session.passthrough)

    def test_parserOptionRefusesUnknown(self) -> None:
        """
        The C{parser} option accepts only the two libraries.
        """
        self.assertEqual(HTTP({"parser": "h11"}).settings["parser"], "h11")
        self.assertRaises(ValueError, HTTP, {"parser": "picohttp"})


class FindHeadEndTests(SynchronousTestCase):
    """
    L{findHeadEnd} finds the first empty line.
    """

    def test_crlfAndLf(self) -> None:
        """
        An empty line ends with CRLF or a bare LF; the earliest one wins.
        """
        self.assertEqual(findHeadEnd(b"GET / HTTP/1.1\r\n\r\nX", 0), 18)
        self.assertEqual(findHeadEnd(b"GET / HTTP/1.1\n\nX", 0), 16)
        self.assertEqual(findHeadEnd(b"a\n\nb\r\n\r\n", 0), 3)
        self.assertEqual(findHeadEnd(b"a\r\n\r\nb\n\n", 0), 5)
        self.assertEqual(findHeadEnd(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), -1)


class HeadReaderTests(SynchronousTestCase):
    """
    L{HeadReader} turns a head into a L{Head} with either library.
    """

    def test_requestBothParsers(self) -> None:
        """
        Both libraries read method, target, version and framing fields
        alike.
        """
        head = (b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
                b"Connection: close\r\nExpect: 100-continue\r\n\r\n")
        for parser in (HTTPTOOLS, H11):
            parsed = HeadReader(True, parser).finish(head, head)
            self.assertEqual(
                (parsed.method, parsed.target, parsed.version, parsed.contentLength,
                 parsed.chunked, parsed.close, parsed.expectContinue),
                ("POST", "/upload?x=1", "1.1", 12, False, True, True), parser)

    def test_responseBothParsers(self) -> None:
        """
        Both libraries read status, version and transfer coding.
        """
        head = b"HTTP/1.0 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        for parser in (HTTPTOOLS, H11):
            parsed = HeadReader(False, parser).finish(head, head)
            self.assertEqual((parsed.status, parsed.version, parsed.chunked, parsed.close),
                             (404, "1.0", True, True), parser)

    def test_partialGarbageRefusedAtOnce(self) -> None:
        """
        With httptools, bytes that cannot begin a request are refused
        before any empty line; an HTTP/0.9 request line too.
        """
        self.assertRaises(InvalidHead, HeadReader(True).feedPartial, b"hello")
        self.assertRaises(InvalidHead, HeadReader(True).feedPartial, b"GET /\r\nH")
        HeadReader(True).feedPartial(b"GET / HTTP/1.1\r\nHo")

    def test_twoMessagesInOneHeadRefused(self) -> None:
        """
        A head in which the parser sees more than one message is refused.
        """
        head = b"GET /\r\nGET / HTTP/1.1\r\n\r\n"
        self.assertRaises(InvalidHead, HeadReader(True).finish, head, head)

    def test_badFieldsRefused(self) -> None:
        """
        Conflicting or invalid C{Content-Length} fields are refused.
        """
        for head in (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                     b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"):
            for parser in (HTTPTOOLS, H11):
                self.assertRaises(InvalidHead, HeadReader(True, parser).finish, head, head)


class RequestFramingTests(SynchronousTestCase):
    """
    Exact frames for representative request streams.
    """

    def test_getInOneRead(self) -> None:
        """
        A request without a body is one frame, first and last, with its
        method, path and version.
        """
        session = newSession()
        data = b"GET /a/b?c=d HTTP/1.1\r\nHost: example\r\n\r\n"
        [frame] = session.upstream.feed(data)
        self.assertEqual((frame.data, frame.first, frame.last), (data, True, True))
        message = frame.message
        self.assertEqual(message.kind, REQUEST)
        self.assertEqual(
            (message.meta["method"], message.meta["path"], message.meta["version"],
             message.meta["command"]),
            ("GET", "/a/b?c=d", "1.1", "GET"))
        self.assertTrue(message.expectsResponse)

    def test_pipelinedRequests(self) -> None:
        """
        Pipelined requests in one read are separate messages, in order.
        """
        session = newSession()
        one = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        two = b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        three = b"DELETE /3 HTTP/1.1\r\nHost: a\r\n\r\n"
        frames = session.upstream.feed(one + two + three)
        self.assertEqual([f.data for f in frames], [one, two, three])
        self.assertEqual([f.message.meta["path"] for f in frames], ["/1", "/2", "/3"])
        self.assertEqual([f.message.index for f in frames], [0, 1, 2])
        self.assertTrue(all(f.first and f.last for f in frames))

    def test_bodyStreamsAsItArrives(self) -> None:
        """
        A body is not buffered: each read gives a frame of what arrived,
        the last one marked C{last}.
        """
        session = newSession()
        head = b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
        first = session.upstream.feed(head + b"0123")
        middle = session.upstream.feed(b"456")
        last = session.upstream.feed(b"789GET")
        self.assertEqual([(f.data, f.first, f.last) for f in first],
                         [(head + b"0123", True, False)])
        self.assertEqual([(f.data, f.first, f.last) for f in middle],
                         [(b"456", False, False)])
        self.assertEqual([(f.data, f.first, f.last) for f in last],
                         [(b"789", False, True)])
        self.assertEqual(session.upstream.held, b"GET")

    def test_headHeldUntilComplete(self) -> None:
        """
        An incomplete head gives no frame; the complete head is one frame
        with all its bytes.
        """
        session = newSession()
        self.assertEqual(session.upstream.feed(b"GET / HT"), [])
        self.assertEqual(session.upstream.feed(b"TP/1.1\r\nHost: a\r\n"), [])
        [frame] = session.upstream.feed(b"\r\n")
        self.assertEqual(frame.data, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(frame.message.meta["path"], "/")

    def test_chunkedWithTrailers(self) -> None:
        """
        A chunked body ends after the last chunk and its trailer fields;
        chunk extensions are allowed.
        """
        session = newSession()
        request = (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5;ext=1\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n"
                   b"0\r\nChecksum: 1\r\nOther: 2\r\n\r\n")
        frames = session.upstream.feed(request + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual([f.data for f in frames][0], request)
        self.assertEqual(len(frames), 2)
        self.assertTrue(frames[0].last)
        self.assertEqual(frames[1].message.meta["method"], "GET")

    def test_expectContinueHeadFramedAtOnce(self) -> None:
        """
        The head of a request with C{Expect: 100-continue} leaves at once,
        without its body, which the client sends only after the interim
        response.
        """
        session = newSession()
        head = (b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                b"Expect: 100-continue\r\n\r\n")
        [frame] = session.upstream.feed(head)
        self.assertEqual((frame.data, frame.first, frame.last), (head, True, False))
        self.assertTrue(frame.message.meta["expect_continue"])
        [rest] = session.upstream.feed(b"data")
        self.assertEqual((rest.data, rest.first, rest.last), (b"data", False, True))

    def test_emptyLinesBeforeRequestBelongToIt(self) -> None:
        """
        Empty lines before a request line (allowed by RFC 9112) are part of
        the next request.
        """
        session = newSession()
        self.assertEqual(session.upstream.feed(b"\r\n"), [])
        [frame] = session.upstream.feed(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(frame.data, b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(frame.message.kind, REQUEST)

    def test_bareLineFeeds(self) -> None:
        """
        h11 reads a request whose lines end with a bare LF; httptools
        (llhttp) wants a CRLF after the request line, so the request passes
        unframed.  Either way the bytes go on.
        """
        data = b"GET /lf HTTP/1.1\nHost: a\n\n"
        [frame] = newSession(H11).upstream.feed(data)
        self.assertEqual((frame.message.kind, frame.data), (REQUEST, data))
        [frame] = newSession(HTTPTOOLS).upstream.feed(data)
        self.assertEqual((frame.message.kind, frame.data), (DATA, data))

    def test_http10(self) -> None:
        """
        An HTTP/1.0 request is framed; without C{keep-alive} it asks to
        close.
        """
        session = newSession()
        [frame] = session.upstream.feed(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(frame.message.meta["version"], "1.0")
        self.assertTrue(frame.message.meta["close"])
        [frame] = session.upstream.feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertNotIn("close", frame.message.meta)

    def test_h11ParserFramesAlike(self) -> None:
        """
        With the h11 parser, the same pipelined stream gives the same
        frames.
        """
        stream = (b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n")
        results = []
        for parser in (HTTPTOOLS, H11):
            frames = newSession(parser).upstream.feed(stream)
            results.append([(f.data, f.message.meta["path"], f.last) for f in frames])
        self.assertEqual(results[0], results[1])
        self.assertEqual(len(results[0]), 2)


class InvalidRequestTests(SynchronousTestCase):
    """
    Bytes that are not HTTP pass through unframed, logged once.
    """

    def setUp(self) -> None:
        self.events = EventLoggingObserver()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)

    def invalidEvents(self) -> list[Any]:
        return [e for e in self.events if e.get("event") == "invalid"]

    def test_garbageBecomesData(self) -> None:
        """
        A stream that does not start like a request is L{DATA} at once,
        without waiting for an empty line, and so is the rest of it; the
        event is logged once.
        """
        session = newSession()
        [frame] = session.upstream.feed(b"hello")
        self.assertEqual((frame.message.kind, frame.data), (DATA, b"hello"))
        [frame] = session.upstream.feed(b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(frame.message.kind, DATA)
        [event] = self.invalidEvents()
        self.assertEqual(event["side"], "client")

    def test_http09IsData(self) -> None:
        """
        An HTTP/0.9 request line (no version) is not framed.
        """
        session = newSession()
        self.assertEqual(session.upstream.feed(b"GET /\r\n"), [])
        [frame] = session.upstream.feed(b"Host: a\r\n\r\n")
        self.assertEqual((frame.message.kind, frame.data),
                         (DATA, b"GET /\r\nHost: a\r\n\r\n"))

    def test_headTooLong(self) -> None:
        """
        A head longer than L{HEAD_LIMIT} passes unframed.
        """
        session = newSession()
        data = b"GET / HTTP/1.1\r\nX: " + b"a" * HEAD_LIMIT
        frames = feedAll(session.upstream, split(data, list(range(0, len(data), 4096))))
        self.assertEqual(b"".join(f.data for f in frames), data)
        self.assertEqual({f.message.kind for f in frames}, {DATA})

    def test_h2PriorKnowledgeIsData(self) -> None:
        """
        The HTTP/2 connection preface is not HTTP/1: it passes unframed.
        """
        session = newSession()
        frames = session.upstream.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.assertEqual([f.message.kind for f in frames], [DATA])

    def test_badChunkEndsRequest(self) -> None:
        """
        A chunked body that stops making sense ends its request just before
        the offending line; what follows is unframed.
        """
        session = newSession()
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        frames = session.upstream.feed(head + b"2\r\nab\r\nzz\r\nmore")
        self.assertEqual(
            [(f.message.kind, f.data, f.last) for f in frames],
            [(REQUEST, head + b"2\r\nab\r\n", True), (DATA, b"zz\r\nmore", True)])
        self.assertEqual(len(self.invalidEvents()), 1)

    def test_longChunkLine(self) -> None:
        """
        A chunk size line longer than L{LINE_LIMIT} is invalid.
        """
        session = newSession()
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        frames = session.upstream.feed(head + b"1" * (LINE_LIMIT + 1))
        self.assertEqual([(f.message.kind, f.last) for f in frames],
                         [(REQUEST, True), (DATA, True)])

    def test_transferCodingNotChunked(self) -> None:
        """
        A request whose body has a transfer coding other than chunked
        cannot be delimited: it passes unframed.
        """
        for parser in (HTTPTOOLS, H11):
            session = newSession(parser)
            [frame] = session.upstream.feed(
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxx")
            self.assertEqual(frame.message.kind, DATA, parser)


class HostRewriteTests(SynchronousTestCase):
    """
    C{overwrite_host_header} rewrites the C{Host} field, the one change
    framing makes to bytes.
    """

    def test_rewrittenCaseInsensitively(self) -> None:
        """
        The C{Host} field's value is rewritten to the backend's host and
        port, whatever the case of its name; the whitespace around it,
        other fields and the body are kept.
        """
        session = newSession(overwrite_host_header=True)
        [frame] = session.upstream.feed(
            b"POST / HTTP/1.1\r\nhOsT:  public.example:80 \r\nX-Host: keep\r\n"
            b"Content-Length: 2\r\n\r\nok")
        self.assertEqual(
            frame.data,
            b"POST / HTTP/1.1\r\nhOsT:  127.0.0.1:6379 \r\nX-Host: keep\r\n"
            b"Content-Length: 2\r\n\r\nok")

    def test_rewrittenWhateverTheChunking(self) -> None:
        """
        A head that arrives byte by byte, with a chunked body, is rewritten
        the same.
        """
        data = (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"1\r\nz\r\n0\r\n\r\n")
        expected = data.replace(b"Host: a", b"Host: 127.0.0.1:6379")
        session = newSession(overwrite_host_header=True)
        frames = feedAll(session.upstream, [data[i:i + 1] for i in range(len(data))])
        self.assertEqual(b"".join(f.data for f in frames), expected)
        self.assertTrue(frames[-1].last)

    def test_offByDefault(self) -> None:
        """
        Without the option, bytes are untouched.
        """
        session = newSession()
        data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        [frame] = session.upstream.feed(data)
        self.assertIs(frame.data, data)

    def test_unnamedBackendWarnsOnce(self) -> None:
        """
        A backend with no name for C{Host} leaves the field alone and is
        reported once per proxy, not once per connection.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        harness = Harness(protocol="http")
        harness.handler.settings["overwrite_host_header"] = True
        sessions = [harness.accept().protocol.connection.session for _ in range(3)]
        # The Host value is read from the backend when first needed.
        harness.factory.backend = EndpointBackend(None, None, "onion:x")
        data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        for session in sessions:
            [frame] = session.upstream.feed(data)
            self.assertEqual(frame.data, data)
        warnings = [e for e in events if "cannot tell a Host" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)

    def test_backendAuthority(self) -> None:
        """
        The C{Host} value is derived from TCP backends and endpoint
        descriptions; default ports are left out, IPv6 is bracketed, a UNIX
        socket is C{localhost}.
        """
        self.assertEqual(backendAuthority(TCPBackend(None, "10.0.0.1", 8080)), "10.0.0.1:8080")
        self.assertEqual(backendAuthority(TCPBackend(None, "www", 80)), "www")
        self.assertEqual(backendAuthority(TCPBackend(None, "::1", 81)), "[::1]:81")
        self.assertEqual(
            backendAuthority(EndpointBackend(None, None, "tls:host=api.example:port=443")),
            "api.example")
        self.assertEqual(
            backendAuthority(EndpointBackend(None, None, "tcp:api.example:8443")),
            "api.example:8443")
        self.assertEqual(backendAuthority(EndpointBackend(None, None, "unix:/tmp/s")),
                         "localhost")
        self.assertIsNone(backendAuthority(EndpointBackend(None, None, "onion:x")))


class ResponseFramingTests(SynchronousTestCase):
    """
    Exact frames for representative response streams, paired with the
    requests the backend was sent.
    """

    def requests(self, session: HTTPSession, *heads: bytes) -> list[Message]:
        frames = session.upstream.feed(b"".join(heads))
        sendAll(session, frames)
        return [f.message for f in frames if f.first]

    def test_pairedInOrder(self) -> None:
        """
        Responses are paired with requests in the order they were sent,
        with their status.
        """
        session = newSession()
        one, two = self.requests(
            session, b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        r2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        frames = session.downstream.feed(r1 + r2)
        self.assertEqual([(f.data, f.message.kind, f.message.request, f.message.meta["status"])
                          for f in frames],
                         [(r1, RESPONSE, one, 200), (r2, RESPONSE, two, 404)])
        self.assertEqual(len(session.sent), 0)

    def test_headResponseHasNoBody(self) -> None:
        """
        The response to HEAD ends with its head, whatever its
        C{Content-Length}.
        """
        session = newSession()
        self.requests(session, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
                      b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        get = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        frames = session.downstream.feed(head + get)
        self.assertEqual([(f.data, f.last) for f in frames], [(head, True), (get, True)])

    def test_204And304HaveNoBody(self) -> None:
        """
        204 and 304 responses end with their head.
        """
        session = newSession()
        self.requests(session, *[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"] * 2)
        r204 = b"HTTP/1.1 204 No Content\r\n\r\n"
        r304 = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
        frames = session.downstream.feed(r204 + r304)
        self.assertEqual([f.data for f in frames], [r204, r304])

    def test_interimResponseIsNotTheFinalOne(self) -> None:
        """
        A C{100 Continue} leaves at once as the first frame of the
        response, which goes on with the final head and body; the request
        stays unanswered until then.
        """
        session = newSession()
        [request] = self.requests(
            session, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        [frame] = session.downstream.feed(interim)
        self.assertEqual((frame.data, frame.first, frame.last), (interim, True, False))
        self.assertIs(frame.message.request, request)
        self.assertEqual(list(session.sent), [request])
        final = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        [frame2] = session.downstream.feed(b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                                           + final)
        self.assertIs(frame2.message, frame.message)
        self.assertEqual((frame2.first, frame2.last), (False, True))
        self.assertEqual(frame.message.meta["status"], 201)
        self.assertEqual(frame.message.meta["interim"], [100, 103])
        self.assertEqual(len(session.sent), 0)

    def test_chunkedResponseWithTrailers(self) -> None:
        """
        A chunked response ends after its trailers, even when cut in the
        middle of a size line, a CRLF or a trailer.
        """
        session = newSession()
        self.requests(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\nwiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n")
        cuts = [data.index(b"5\r"), data.index(b"pedia") + 5, data.index(b"Expires") + 3]
        frames = feedAll(session.downstream, split(data, [c + 1 for c in cuts]))
        self.assertEqual(b"".join(f.data for f in frames), data)
        self.assertEqual([f.last for f in frames], [False] * (len(frames) - 1) + [True])

    def test_closeDelimitedResponse(self) -> None:
        """
        A response without length ends with the stream: L{finish} gives
        its last, empty, frame.
        """
        session = newSession()
        self.requests(session, b"GET / HTTP/1.0\r\n\r\n")
        frames = session.downstream.feed(b"HTTP/1.0 200 OK\r\n\r\nbody...")
        self.assertEqual([f.last for f in frames], [False])
        [end] = session.downstream.finish()
        self.assertEqual((end.data, end.last, end.message), (b"", True, frames[0].message))

    def test_unsolicitedResponse(self) -> None:
        """
        A response when no request is waiting (a 408 before a close) is
        framed with no request.
        """
        session = newSession()
        [frame] = session.downstream.feed(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual((frame.message.kind, frame.message.request), (RESPONSE, None))

    def test_unansweredRequestsEndAtEOF(self) -> None:
        """
        At the end of the backend's stream, requests it never answered get
        an empty response each, so the end of stream is not held behind
        them.
        """
        session = newSession()
        one, two = self.requests(session, *[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"] * 2)
        frames = session.downstream.finish()
        self.assertEqual([(f.data, f.first, f.last, f.message.request) for f in frames],
                         [(b"", True, True, one), (b"", True, True, two)])

    def test_upgradeSwitchesToPassthrough(self) -> None:
        """
        After a C{101 Switching Protocols}, the response goes on until the
        end of the stream and the client's bytes are unframed; the session
        says it is passthrough.
        """
        session = newSession()
        [request] = self.requests(
            session, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        self.assertTrue(request.meta["upgrade"])
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        [frame] = session.downstream.feed(head + b"\x81\x02hi")
        self.assertEqual((frame.data, frame.last), (head + b"\x81\x02hi", False))
        self.assertTrue(session.passthrough)
        [up] = session.upstream.feed(b"\x81\x82GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(up.message.kind, DATA)
        [more] = session.downstream.feed(b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertIs(more.message, frame.message)

    def test_connectSwitchesOnSuccessOnly(self) -> None:
        """
        C{CONNECT} refused (407) keeps HTTP; accepted (200, whose
        C{Content-Length} means nothing) starts a tunnel.
        """
        session = newSession()
        self.requests(session, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")
        refused = b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n"
        [frame] = session.downstream.feed(refused)
        self.assertTrue(frame.last)
        self.assertFalse(session.switched)
        self.requests(session, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")
        [frame] = session.downstream.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nTLS..."
                                          b"more than five")
        self.assertFalse(frame.last)
        self.assertTrue(session.switched)

    def test_upgradeWhileClientHeadIsHeld(self) -> None:
        """
        Bytes the client sent before the switch and the framer still holds
        keep the session out of passthrough until they are passed on, so
        the fast path cannot overtake them.
        """
        session = newSession()
        self.requests(session, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n"
                               b"Connection: upgrade\r\n\r\n")
        self.assertEqual(session.upstream.feed(b"PUT / HTTP/1.1\r\n"), [])
        session.downstream.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        self.assertTrue(session.switched)
        self.assertFalse(session.passthrough)
        [frame] = session.upstream.feed(b"x")
        self.assertEqual((frame.message.kind, frame.data), (DATA, b"PUT / HTTP/1.1\r\nx"))
        self.assertTrue(session.passthrough)

    def test_invalidResponseEndsWithStream(self) -> None:
        """
        A backend that does not answer in HTTP: the rest of its stream is
        the response to the waiting request, until the end; the connection
        is switched to passthrough.
        """
        session = newSession()
        [request] = self.requests(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        [frame] = session.downstream.feed(b"SSH-2.0-OpenSSH\r\n")
        self.assertEqual((frame.message.kind, frame.message.request, frame.last),
                         (RESPONSE, request, False))
        self.assertTrue(session.switched)
        [end] = session.downstream.finish()
        self.assertTrue(end.last)


class ErrorReplyTests(SynchronousTestCase):
    """
    L{HTTPSession.errorReply} and L{HTTPSession.connectFailed} are
    responses an HTTP client parses.
    """

    def parse(self, data: bytes, method: bytes = b"GET") -> tuple[Any, bytes, Any]:
        """
        Read C{data} with h11 as the answer to a C{method} request.
        """
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
        client.send(h11.EndOfMessage())
        client.receive_data(data)
        response = client.next_event()
        body = b""
        while True:
            event = client.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            else:
                break
        self.assertIsInstance(event, h11.EndOfMessage)
        self.assertEqual(client.trailing_data, (b"", False))
        return response, body, client

    def request(self, session: HTTPSession, head: bytes) -> Message:
        [frame] = session.upstream.feed(head)
        return frame.message

    def test_statusAndBody(self) -> None:
        """
        The reply has the status asked for, CRLF line ends, a
        C{Content-Length} matching its short text body, and keeps the
        connection alive.
        """
        session = newSession()
        request = self.request(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = session.errorReply(request, "injected", 502)
        self.assertTrue(data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))
        self.assertNotIn(b"\n", data.replace(b"\r\n", b"").split(b"txvaurien")[0])
        response, body, client = self.parse(data)
        self.assertEqual(response.status_code, 502)
        self.assertEqual(body, b"txvaurien: injected\n")
        self.assertIn((b"content-length", str(len(body)).encode()), list(response.headers))
        self.assertNotIn(b"connection", [k for k, _ in response.headers])
        self.assertEqual(client.their_state, h11.DONE)

    def test_defaultStatus503(self) -> None:
        """
        Without a code, the status is 503; a code below 200, which would
        not end the exchange, becomes 503 too.
        """
        session = newSession()
        request = self.request(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(self.parse(session.errorReply(request, "x"))[0].status_code, 503)
        self.assertEqual(self.parse(session.errorReply(request, "x", 100))[0].status_code, 503)

    def test_closeWhenClientAsked(self) -> None:
        """
        The reply says C{Connection: close} when the request asked to close;
        an HTTP/1.0 keep-alive request is told C{keep-alive}.
        """
        session = newSession()
        closing = self.request(session, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertIn(b"\r\nConnection: close\r\n", session.errorReply(closing, "x", 500))
        old = self.request(session, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertIn(b"\r\nConnection: keep-alive\r\n", session.errorReply(old, "x", 500))
        self.assertIn(b"\r\nConnection: close\r\n", session.errorReply(None, "x", 500))

    def test_headAndNoContent(self) -> None:
        """
        The reply to HEAD has no body (but its length); a 204 reply has
        neither.
        """
        session = newSession()
        head = self.request(session, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = session.errorReply(head, "x", 500)
        self.assertTrue(data.endswith(b"\r\n\r\n"))
        response, body, _ = self.parse(data, b"HEAD")
        self.assertEqual((response.status_code, body), (500, b""))
        data = session.errorReply(self.request(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                                  "x", 204)
        self.assertNotIn(b"Content-Length", data)
        self.assertTrue(data.endswith(b"\r\n\r\n"))

    def test_reasonSanitized(self) -> None:
        """
        A reason with line breaks cannot break the response.
        """
        session = newSession()
        data = session.errorReply(None, "a\r\nSet-Cookie: x\r\n\r\nb", 500)
        response, body, _ = self.parse(data)
        self.assertEqual(body, b"txvaurien: a Set-Cookie: x b\n")

    def test_connectFailed(self) -> None:
        """
        A failed backend connection gives a 502 that closes.
        """
        data = newSession().connectFailed("Connection refused")
        response, body, _ = self.parse(data)
        self.assertEqual(response.status_code, 502)
        self.assertIn((b"connection", b"close"), list(response.headers))
        self.assertIn(b"Connection refused", body)


class ProxyTests(SynchronousTestCase):
    """
    The handler inside the proxy, in memory.
    """

    def test_errorKeepsOrderAndKeepAlive(self) -> None:
        """
        Under request scope, a swallowed pipelined request gets its error
        reply between the responses to the requests around it, and the
        requests after it still reach the backend on the same connection.
        """
        harness = Harness("100:swallow", protocol="http", scope=REQUEST_SCOPE,
                          settings={"swallow": {"only": "DELETE"}})
        client, backend = harness.pair()
        client.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nDELETE /2 HTTP/1.1\r\nHost: a\r\n"
                    b"Content-Length: 3\r\n\r\nxyzGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(backend.received(), b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                                             b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        backend.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        backend.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")
        received = client.received()
        first = received.index(b"\r\n\r\n1")
        error = received.index(b"503 Service Unavailable")
        third = received.index(b"\r\n\r\n3")
        self.assertTrue(first < error < third)
        self.assertFalse(client.transport.disconnecting)

    def test_largeBodyNotBuffered(self) -> None:
        """
        A large upload reaches the backend as it arrives: the proxy holds
        none of it.
        """
        client, backend = Harness(protocol="http", scope=REQUEST_SCOPE).pair()
        client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
        backend.received()
        for _ in range(10):
            client.send(b"x" * 65536)
            self.assertEqual(len(backend.received()), 65536)

    def test_upgradeGoesFast(self) -> None:
        """
        Under connection scope with no fault, once an upgrade is accepted
        the client's bytes take the fast path.
        """
        harness = Harness(protocol="http")
        client, backend = harness.pair()
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
        backend.received()
        backend.send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        client.received()
        client.send(b"binary")
        self.assertEqual(backend.received(), b"binary")
        self.assertTrue(client.protocol.connection.upstream.fast)

    def test_connectFailedSends502(self) -> None:
        """
        When the backend cannot be reached, the client gets a 502.
        """
        from twisted.internet.error import ConnectionRefusedError
        from twisted.python.failure import Failure
        harness = Harness(protocol="http")
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError()))
        self.assertTrue(client.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))
        self.assertTrue(client.transport.disconnecting)


# Hypothesis strategies: valid requests and responses, and their bytes.

_token = st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
_path = st.text("abcxyz019/._-~%", min_size=0, max_size=20).map(lambda p: "/" + p)
_value = st.text("abcdefXYZ0123 -_=;,", max_size=15).map(str.strip)
_extra = st.lists(st.tuples(st.sampled_from(["X-A", "Accept", "User-Agent", "X-Host"]),
                            _value), max_size=3)
_body = st.one_of(
    st.none(),
    st.binary(max_size=40).map(lambda b: ("length", b)),
    st.tuples(st.lists(st.binary(min_size=1, max_size=20), max_size=4),
              st.lists(st.tuples(st.sampled_from(["Trailer-A", "Checksum"]), _value),
                       max_size=2)).map(lambda c: ("chunked", c)),
)


def _chunkedBody(chunks: list[bytes], trailers: list[tuple[str, str]]) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n"
    out += b"".join("{}: {}\r\n".format(k, v).encode() for k, v in trailers)
    return out + b"\r\n"


@st.composite
def requests(draw: Any) -> tuple[bytes, dict[str, Any]]:
    method = draw(_token)
    path = draw(_path)
    version = draw(st.sampled_from(["1.0", "1.1"]))
    lines = ["{} {} HTTP/{}".format(method, path, version), "Host: example"]
    lines += ["{}: {}".format(k, v) for k, v in draw(_extra)]
    body = draw(_body)
    payload = b""
    if body is not None and body[0] == "length":
        lines.append("Content-Length: {}".format(len(body[1])))
        payload = body[1]
    elif body is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = _chunkedBody(*body[1])
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    return data, {"method": method, "path": path, "version": version}


@st.composite
def responses(draw: Any) -> tuple[bytes, bytes, dict[str, Any]]:
    """
    A request head and a response to it (ending on its own, not with the
    stream).
    """
    method = draw(st.sampled_from(["GET", "HEAD", "POST"]))
    request = "{} / HTTP/1.1\r\nHost: a\r\n\r\n".format(method).encode()
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]))
    interim = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    head = b"".join(b"HTTP/1.1 %d Interim\r\n\r\n" % s for s in interim)
    lines = ["HTTP/1.1 {} Whatever".format(status)]
    lines += ["{}: {}".format(k, v) for k, v in draw(_extra)]
    body = draw(_body)
    payload = b""
    if body is None:
        lines.append("Content-Length: 0")
    elif body[0] == "length":
        lines.append("Content-Length: {}".format(len(body[1])))
        payload = body[1]
    else:
        lines.append("Transfer-Encoding: chunked")
        payload = _chunkedBody(*body[1])
    if method == "HEAD" or status in (204, 304):
        payload = b""
    data = head + ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    return request, data, {"status": status, "interim": interim}


_cuts = st.lists(st.integers(min_value=0, max_value=10 ** 6), max_size=12)
_parsers = st.sampled_from([HTTPTOOLS, H11])


class FuzzTests(SynchronousTestCase):
    """
    Hypothesis: whatever the chunking, frames concatenate to the input,
    nothing raises, and message boundaries are the same.
    """

    @FUZZ
    @given(st.lists(requests(), min_size=1, max_size=5), _cuts, _parsers)
    def test_validRequests(self, reqs: list[tuple[bytes, dict[str, Any]]],
                           cuts: list[int], parser: str) -> None:
        """
        Pipelined valid requests give exactly one message each, with their
        bytes and metadata, whatever the chunking.
        """
        stream = b"".join(data for data, _ in reqs)
        frames = feedAll(newSession(parser).upstream, split(stream, cuts))
        got = messagesOf(self, frames)
        self.assertEqual([data for _, data, _ in got], [data for data, _ in reqs])
        self.assertTrue(all(complete for _, _, complete in got))
        for (message, _, _), (_, meta) in zip(got, reqs):
            self.assertEqual(message.kind, REQUEST)
            self.assertEqual({k: message.meta[k] for k in meta}, meta)

    @FUZZ
    @given(st.lists(responses(), min_size=1, max_size=5), _cuts, _parsers)
    def test_validResponses(self, exchanges: list[tuple[bytes, bytes, dict[str, Any]]],
                            cuts: list[int], parser: str) -> None:
        """
        Responses (with interim heads, to HEAD, 204, 304, chunked) are one
        message each, paired with their requests, whatever the chunking.
        """
        session = newSession(parser)
        frames = session.upstream.feed(b"".join(r for r, _, _ in exchanges))
        sendAll(session, frames)
        requestMessages = [f.message for f in frames]
        stream = b"".join(data for _, data, _ in exchanges)
        got = messagesOf(self, feedAll(session.downstream, split(stream, cuts)))
        self.assertEqual([data for _, data, _ in got], [data for _, data, _ in exchanges])
        for (message, _, complete), request, (_, _, meta) in zip(
                got, requestMessages, exchanges):
            self.assertTrue(complete)
            self.assertIs(message.request, request)
            self.assertEqual(message.meta["status"], meta["status"])
            self.assertEqual(message.meta.get("interim", []), meta["interim"])

    @FUZZ
    @given(st.binary(max_size=300), _cuts, _parsers, st.booleans())
    def test_randomBytes(self, data: bytes, cuts: list[int], parser: str,
                         upstream: bool) -> None:
        """
        Random bytes in either direction: frames concatenate to the input,
        and boundaries do not depend on the chunking.
        """
        shapes = []
        for chunks in ([data] if data else [], split(data, cuts)):
            session = newSession(parser)
            framer = session.upstream if upstream else session.downstream
            frames = feedAll(framer, chunks, finish=True)
            self.assertEqual(b"".join(f.data for f in frames), data)
            shapes.append(shape(self, frames))
        self.assertEqual(shapes[0], shapes[1])

    @FUZZ
    @given(st.lists(requests(), min_size=1, max_size=3), st.binary(max_size=60),
           st.integers(min_value=0, max_value=10 ** 6), _cuts, _parsers)
    def test_corruptedRequests(self, reqs: list[tuple[bytes, dict[str, Any]]],
                               garbage: bytes, where: int, cuts: list[int],
                               parser: str) -> None:
        """
        Valid requests with random bytes inserted anywhere: frames
        concatenate to the input and boundaries do not depend on the
        chunking.
        """
        stream = b"".join(data for data, _ in reqs)
        where %= len(stream) + 1
        stream = stream[:where] + garbage + stream[where:]
        shapes = []
        for chunks in ([stream], split(stream, cuts), [stream[i:i + 1] for i in range(len(stream))]):
            frames = feedAll(newSession(parser).upstream, chunks, finish=True)
            self.assertEqual(b"".join(f.data for f in frames), stream)
            shapes.append(shape(self, frames))
        self.assertEqual(shapes[0], shapes[1])
        self.assertEqual(shapes[0], shapes[2])

    @FUZZ
    @given(st.lists(responses(), min_size=1, max_size=3), st.binary(max_size=60),
           st.integers(min_value=0, max_value=10 ** 6), _cuts, _parsers)
    def test_corruptedResponses(self, exchanges: list[tuple[bytes, bytes, dict[str, Any]]],
                                garbage: bytes, where: int, cuts: list[int],
                                parser: str) -> None:
        """
        Valid responses with random bytes inserted anywhere: frames
        concatenate to the input, boundaries do not depend on the chunking
        and every request sent gets a complete response by the end.
        """
        stream = b"".join(data for _, data, _ in exchanges)
        where %= len(stream) + 1
        stream = stream[:where] + garbage + stream[where:]
        shapes = []
        for chunks in ([stream], split(stream, cuts)):
            session = newSession(parser)
            sendAll(session, session.upstream.feed(b"".join(r for r, _, _ in exchanges)))
            frames = feedAll(session.downstream, chunks, finish=True)
            self.assertEqual(b"".join(f.data for f in frames), stream)
            got = messagesOf(self, frames)
            self.assertTrue(all(complete for _, _, complete in got))
            answered = [m.request.index for m, _, _ in got
                        if m.kind == RESPONSE and m.request is not None]
            self.assertEqual(answered, list(range(len(exchanges))))
            shapes.append(shape(self, frames))
        self.assertEqual(shapes[0], shapes[1])
