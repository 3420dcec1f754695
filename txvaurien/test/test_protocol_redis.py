"""
Tests for L{txvaurien.protocols.redis}: the framers on representative RESP2
and RESP3 streams, pairing of replies with commands (pipelining, pub/sub,
MULTI/EXEC, HELLO, MONITOR, replication), error replies, the handler
through the in-memory proxy, and hypothesis fuzzing of both framers with
random bytes and random chunkings of valid and broken streams.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.frames import DATA, PUSH, REQUEST, RESPONSE, Frame, Message
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.protocols._resp import CAPTURE, INLINE_LIMIT
from txvaurien.protocols.redis import Redis, RedisSession
from txvaurien.test.helpers import Harness

# Helpers shared with test_protocol_memcache.


def newSession(protocol: str = "redis", **settings: Any) -> Any:
    """
    A session of a real connection of an in-memory proxy, with the
    handler configured with C{settings}.
    """
    harness = Harness(protocol=protocol)
    connection = harness.accept().protocol.connection
    handler = harness.registry.protocols.get(protocol).configure(settings)
    return handler.buildSession(connection)


def feedAll(framer: Any, chunks: Iterable[bytes], finish: bool = True) -> list[Frame]:
    """
    Feed C{chunks} to C{framer} (then end the stream) and return every
    frame it made.
    """
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    if finish:
        frames.extend(framer.finish())
    return frames


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """
    Cut C{data} at the given offsets (taken modulo its length).
    """
    if not data:
        return [data]
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


#: Where to cut a stream into chunks (see L{split}).
cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=12)


def messagesOf(
    case: SynchronousTestCase, frames: list[Frame], data: bytes | None = None,
    complete: bool = True,
) -> list[tuple[Message, bytes]]:
    """
    Check the frame flags (a message's first frame and only it has
    C{first}; its last frame and only it has C{last}; nothing follows the
    last), that the frames concatenate to C{data}, and return each message
    with its bytes, in the order of their first frames.

    @param complete: whether every message must have ended.
    """
    order: list[Message] = []
    pieces: dict[Message, list[Frame]] = {}
    for frame in frames:
        message = frame.message
        seen = pieces.get(message)
        if seen is None:
            case.assertTrue(frame.first, "first frame of {!r} lacks first".format(message))
            pieces[message] = [frame]
            order.append(message)
        else:
            case.assertFalse(frame.first, "later frame of {!r} has first".format(message))
            case.assertFalse(seen[-1].last, "frame after the last of {!r}".format(message))
            seen.append(frame)
    for message in order:
        last = [f.last for f in pieces[message]]
        case.assertNotIn(True, last[:-1], "last before the end of {!r}".format(message))
        if complete:
            case.assertTrue(last[-1], "{!r} never ended".format(message))
    if data is not None:
        case.assertEqual(b"".join(f.data for f in frames), data)
    indexes = [m.index for m in order]
    case.assertEqual(indexes, sorted(set(indexes)))
    return [(m, b"".join(f.data for f in pieces[m])) for m in order]


def signature(messages: list[tuple[Message, bytes]]) -> list[tuple[Any, ...]]:
    """
    What must not depend on chunking: each message's kind, metadata,
    request, whether it expects a response, and bytes; consecutive
    L{DATA} messages (one per chunk) are merged.
    """
    result: list[tuple[Any, ...]] = []
    for message, data in messages:
        if message.kind == DATA:
            if result and result[-1][0] == DATA:
                result[-1] = (DATA, None, None, None, result[-1][4] + data)
            else:
                result.append((DATA, None, None, None, data))
            continue
        request = message.request.index if message.request is not None else None
        result.append((message.kind, dict(message.meta), request, message.expectsResponse, data))
    return result


def sendAll(session: Any, frames: list[Frame]) -> None:
    """
    Tell C{session} every request among C{frames} was written to the
    backend, as the proxy does when their first bytes are.
    """
    for frame in frames:
        if frame.first and frame.message.kind == REQUEST:
            session.requestSent(frame.message)


def runExchange(
    requests: bytes, replies: Sequence[bytes], upChunks: Sequence[bytes] | None = None,
    **settings: Any,
) -> tuple[Any, list[Frame], list[Frame]]:
    """
    Frame C{requests} upstream, send them all, then frame the reply
    chunks downstream.

    @return: the session, the upstream frames and the downstream frames.
    """
    session = newSession(**settings)
    up = feedAll(session.upstream, upChunks if upChunks is not None else [requests])
    sendAll(session, up)
    down = feedAll(session.downstream, replies)
    return session, up, down


def command(*args: bytes) -> bytes:
    """
    A multi-bulk command.
    """
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(*items: bytes, kind: bytes = b"*") -> bytes:
    return kind + b"%d\r\n" % len(items) + b"".join(items)


def unframedEvents(events: EventLoggingObserver) -> list[dict]:
    return [e for e in events if e.get("event") == "unframed"]


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its sessions and framers provide their interfaces.
    """

    def test_providesInterfaces(self) -> None:
        """
        L{Redis} provides L{IProtocolHandler}, frames requests, and its
        sessions provide L{IProtocolSession} with two L{IFramer}s.
        """
        handler = Redis()
        verifyObject(IProtocolHandler, handler)
        self.assertTrue(handler.framesRequests)
        session = newSession()
        self.assertIsInstance(session, RedisSession)
        verifyObject(IProtocolSession, session)
        verifyObject(IFramer, session.upstream)
        verifyObject(IFramer, session.downstream)
        self.assertFalse(session.serverSpeaksFirst)
        self.assertFalse(session.passthrough)

    def test_foundByName(self) -> None:
        """
        The registry finds the handler as C{redis}.
        """
        self.assertIsInstance(Harness(protocol="redis").handler, Redis)


class RequestFramingTests(SynchronousTestCase):
    """
    The upstream framer: one message per command.
    """

    def frame(self, data: bytes, chunks: Sequence[bytes] | None = None) -> list[tuple[Message, bytes]]:
        session = newSession()
        frames = feedAll(session.upstream, chunks if chunks is not None else [data])
        return messagesOf(self, frames, data)

    def test_multiBulkCommand(self) -> None:
        """
        A multi-bulk command is one request, whose metadata is the command
        name in upper case, and which expects a response.
        """
        data = command(b"set", b"key", b"value")
        [(message, raw)] = self.frame(data)
        self.assertEqual(raw, data)
        self.assertEqual(message.kind, REQUEST)
        self.assertEqual(message.meta, {"command": "SET"})
        self.assertTrue(message.expectsResponse)
        self.assertEqual(message.index, 0)

    def test_inlineCommands(self) -> None:
        """
        Inline commands are requests too, ended by LF with or without CR;
        the command name is their first word.
        """
        data = b"ping\r\nset  k v\nGET k\r\n"
        messages = self.frame(data)
        self.assertEqual(
            [(m.meta["command"], raw) for m, raw in messages],
            [("PING", b"ping\r\n"), ("SET", b"set  k v\n"), ("GET", b"GET k\r\n")],
        )

    def test_pipelinedCommands(self) -> None:
        """
        Commands sent back to back are cut apart exactly, in order, even
        when their arguments contain CRLF or look like commands.
        """
        parts = [
            command(b"SET", b"a", b"x\r\n*1\r\n$4\r\nPING\r\n"),
            command(b"GET", b"a"),
            b"PING\r\n",
            command(b"MGET", b"a", b"b", b"c"),
        ]
        messages = self.frame(b"".join(parts))
        self.assertEqual([raw for _, raw in messages], parts)
        self.assertEqual([m.meta["command"] for m, _ in messages], ["SET", "GET", "PING", "MGET"])
        self.assertEqual([m.index for m, _ in messages], [0, 1, 2, 3])

    def test_wholeReadsFrameAsByteByByte(self) -> None:
        """
        Commands that arrive whole in one read (the fast path, which splits
        the read at every CRLF) are framed exactly as when they arrive
        byte by byte (the general scanner): arguments holding CRLF, or
        pieces that look like length lines, arguments around the sizes
        whose length lines are precomputed, and a read of more than
        64 KiB.
        """
        streams = [
            command(b"SET", b"k", b"ab\r\n$2\r\nab") + command(b"GET", b"k"),
            command(b"SET", b"k", b"\r\n") + command(b"SET", b"k", b"$0\r\n\r\n"),
            command(b"SET", b"k", b"x" * 1023) + command(b"SET", b"k", b"y" * 1024),
            command(b"SET", b"k", b"z" * 2000) + command(b"GET", b"k"),
            command(b"GET", b"k") * 5000,
            command(b"GET", b"k") + b"*2\r\n$3\r\nGET\r\n$03\r\nabc\r\n",
        ]
        for data in streams:
            whole = signature(self.frame(data))
            self.assertEqual(signature(self.frame(data, split(data, range(len(data))))), whole)
            self.assertNotIn(DATA, [kind for kind, *_ in whole])

    def test_commandsWithoutCommandExpectNoResponse(self) -> None:
        """
        A multi-bulk count of zero or less and an empty inline line are
        requests the server does not answer.
        """
        messages = self.frame(b"*0\r\n*-1\r\n\r\n   \r\nPING\r\n")
        self.assertEqual(
            [(raw, m.expectsResponse) for m, raw in messages],
            [(b"*0\r\n", False), (b"*-1\r\n", False), (b"\r\n", False),
             (b"   \r\n", False), (b"PING\r\n", True)],
        )

    def test_firstFrameWaitsForCommandName(self) -> None:
        """
        Fed one byte at a time, a command gives no frame until its name is
        known; its first frame then holds every byte so far, and the rest
        follows byte by byte.
        """
        session = newSession()
        data = command(b"GET", b"somekey")
        nameEnd = data.index(b"GET\r\n") + len(b"GET\r\n")
        frames = []
        for i in range(len(data)):
            new = session.upstream.feed(data[i : i + 1])
            if i < nameEnd - 1:
                self.assertEqual(new, [])
            frames.extend(new)
        self.assertEqual(frames[0].data, data[:nameEnd])
        self.assertEqual(frames[0].message.meta["command"], "GET")
        self.assertTrue(frames[-1].last)
        messagesOf(self, frames, data)

    def test_bigArgumentIsStreamed(self) -> None:
        """
        A command with a 4 MiB argument, arriving in 64 KiB chunks, leaves
        the framer as it arrives: one frame per chunk, nothing held.
        """
        value = bytes(range(256)) * (4 * 4096)
        data = command(b"SET", b"big", value)
        chunks = split(data, range(0, len(data), 65536))
        session = newSession()
        for chunk in chunks:
            frames = session.upstream.feed(chunk)
            self.assertEqual(b"".join(f.data for f in frames), chunk)
        self.assertEqual(session.upstream.held, b"")

    def test_clientReplyOffAndSkip(self) -> None:
        """
        After C{CLIENT REPLY OFF} no command expects a response until
        C{CLIENT REPLY ON} (which does); C{CLIENT REPLY SKIP} and the
        command after it expect none.
        """
        data = b"".join([
            command(b"client", b"reply", b"off"),
            command(b"SET", b"a", b"1"),
            command(b"CLIENT", b"REPLY", b"ON"),
            command(b"CLIENT", b"REPLY", b"SKIP"),
            command(b"SET", b"b", b"2"),
            command(b"GET", b"b"),
            b"CLIENT REPLY OFF\r\n",
            b"GET b\r\n",
        ])
        messages = self.frame(data)
        self.assertEqual(
            [m.expectsResponse for m, _ in messages],
            [False, False, True, False, False, True, False, False],
        )

    def test_pubsubCommandsCountChannels(self) -> None:
        """
        The (un)subscribe commands record how many channels they name.
        """
        messages = self.frame(
            command(b"SUBSCRIBE", b"a", b"b") + b"PSUBSCRIBE p*\r\n" + command(b"UNSUBSCRIBE"))
        self.assertEqual(
            [m.meta for m, _ in messages],
            [{"command": "SUBSCRIBE", "channels": 2},
             {"command": "PSUBSCRIBE", "channels": 1},
             {"command": "UNSUBSCRIBE", "channels": 0}],
        )

    def test_longCommandNameIsNotCaptured(self) -> None:
        """
        A first argument longer than any command name is not kept: the
        request's command is empty.
        """
        name = b"X" * (CAPTURE + 1)
        [(message, _)] = self.frame(command(name, b"arg"))
        self.assertEqual(message.meta["command"], "")

    def test_invalidCommandPassesThroughAsData(self) -> None:
        """
        A multi-bulk command with something other than C{$} where an
        argument should start ends at that byte; the rest of the stream
        is L{DATA}, and one warning is logged.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        good = command(b"PING")
        bad = b"*2\r\n$3\r\nGET\r\n"
        rest = b"+garbage\r\n" + command(b"PING")
        session = newSession()
        frames = feedAll(session.upstream, [good + bad + rest, command(b"GET", b"x")])
        messages = messagesOf(self, frames, good + bad + rest + command(b"GET", b"x"))
        self.assertEqual(
            [(m.kind, raw) for m, raw in messages],
            [(REQUEST, good), (REQUEST, bad), (DATA, rest), (DATA, command(b"GET", b"x"))],
        )
        [event] = unframedEvents(events)
        self.assertEqual(event["offset"], len(good + bad))
        self.assertEqual(event["direction"], "upstream")
        self.assertTrue(session.upstream.raw)

    def test_inlineTooLong(self) -> None:
        """
        An inline command longer than the server accepts (64 KiB) makes
        the rest of the stream L{DATA}, from the byte past the limit.
        """
        data = b"A" * (INLINE_LIMIT + 10)
        session = newSession()
        frames = feedAll(session.upstream, split(data, [1000, 40000]))
        messages = messagesOf(self, frames, data)
        self.assertEqual(messages[0][1], b"A" * INLINE_LIMIT)
        self.assertEqual(messages[0][0].kind, REQUEST)
        self.assertEqual({m.kind for m, _ in messages[1:]}, {DATA})

    def test_tlsHandshakeIsData(self) -> None:
        """
        A TLS client hello (first byte 0x16, which starts no command) is
        not taken for an inline command waiting for its LF: the stream is
        L{DATA} from its first byte, at once.
        """
        hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(11, 60))
        session = newSession()
        frames = session.upstream.feed(hello)
        self.assertEqual([(f.message.kind, f.data) for f in frames], [(DATA, hello)])
        self.assertTrue(session.upstream.raw)

    def test_replicationTurnsIntoData(self) -> None:
        """
        After C{PSYNC} (or C{SYNC}) the client is a replica: what it sends
        next is L{DATA}.
        """
        data = command(b"PSYNC", b"?", b"-1") + command(b"REPLCONF", b"ACK", b"0")
        messages = self.frame(data)
        self.assertEqual([m.kind for m, _ in messages], [REQUEST, DATA])

    def test_endOfStreamEndsPartialCommand(self) -> None:
        """
        A command cut by the end of the stream ends there; one whose name
        never arrived is a request with an empty command.
        """
        session = newSession()
        frames = feedAll(session.upstream, [command(b"SET", b"k", b"v")[:-3]])
        [(message, _)] = messagesOf(self, frames)
        self.assertEqual(message.meta["command"], "SET")
        session = newSession()
        frames = feedAll(session.upstream, [b"*2\r\n$3\r\nGE"])
        [(message, raw)] = messagesOf(self, frames)
        self.assertEqual((message.kind, message.meta["command"], raw),
                         (REQUEST, "", b"*2\r\n$3\r\nGE"))


class ReplyFramingTests(SynchronousTestCase):
    """
    The downstream framer: one message per reply, paired with the
    commands in the order they were sent; pushes apart.
    """

    def exchange(
        self, requests: bytes, replies: bytes, chunks: Sequence[bytes] | None = None,
    ) -> tuple[list[Message], list[tuple[Message, bytes]]]:
        _, up, down = runExchange(requests, chunks if chunks is not None else [replies])
        sent = [m for m, _ in messagesOf(self, up, requests)]
        return sent, messagesOf(self, down, replies)

    def assertPaired(
        self, sent: list[Message], messages: list[tuple[Message, bytes]],
        expected: list[tuple[str, int | None, bytes]],
    ) -> None:
        """
        Each message's kind, the index of the request it answers and its
        bytes are as expected.
        """
        self.assertEqual(
            [(m.kind, sent.index(m.request) if m.request is not None else None, raw)
             for m, raw in messages],
            expected,
        )

    def test_everyRESP3Type(self) -> None:
        """
        Every RESP2 and RESP3 type, scalar or aggregate, nested, is one
        reply to one command.
        """
        replies = [
            b"+OK\r\n",
            b"-ERR wrong\r\n",
            b":-42\r\n",
            bulk(b"hello\r\nworld"),
            b"$-1\r\n",
            b"*-1\r\n",
            b"_\r\n",
            b"#t\r\n",
            b",3.14\r\n",
            b",inf\r\n",
            b"(3492890328409238509324850943850943825024385\r\n",
            b"=15\r\ntxt:Some string\r\n",
            b"!21\r\nSYNTAX invalid syntax\r\n",
            array(bulk(b"a"), array(b":1\r\n", array()), b"_\r\n"),
            b"%2\r\n+first\r\n:1\r\n+second\r\n" + array(b"#f\r\n", b"=4\r\ntxt:\r\n"),
            b"~3\r\n+a\r\n+b\r\n" + b"%1\r\n+k\r\n~0\r\n",
            b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;0\r\n",
            b"*?\r\n:1\r\n" + b"%?\r\n+a\r\n:1\r\n.\r\n" + b".\r\n",
            b"$0\r\n\r\n",
        ]
        requests = command(b"GET", b"k") * len(replies)
        sent, messages = self.exchange(requests, b"".join(replies))
        self.assertPaired(sent, messages, [(RESPONSE, i, r) for i, r in enumerate(replies)])
        self.assertEqual({m.meta["command"] for m, _ in messages}, {"GET"})

    def test_attributeBelongsToNextValue(self) -> None:
        """
        An attribute, at the top or nested, is part of the value after it.
        """
        first = b"|1\r\n+key-popularity\r\n" + array(b",0.19\r\n") + b"*2\r\n:2\r\n:3\r\n"
        second = b"*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n"
        sent, messages = self.exchange(command(b"GET", b"a") * 2, first + second)
        self.assertPaired(sent, messages, [(RESPONSE, 0, first), (RESPONSE, 1, second)])

    def test_unsolicitedReplyIsPush(self) -> None:
        """
        A reply when no command waits for one is a push, not a response.
        """
        sent, messages = self.exchange(b"", b"-ERR max number of clients reached\r\n")
        [(message, _)] = messages
        self.assertEqual(message.kind, PUSH)
        self.assertIsNone(message.request)
        self.assertTrue(message.meta["unsolicited"])

    def test_resp2PubSub(self) -> None:
        """
        In RESP2, a C{SUBSCRIBE} to N channels is answered by N
        confirmations, one response; messages then arriving as arrays are
        pushes; C{PING} is still answered; C{UNSUBSCRIBE} with no channel
        gets one confirmation per subscription, after which an array
        starting with C{message} is an ordinary reply again.
        """
        requests = b"".join([
            command(b"SUBSCRIBE", b"a", b"b"),
            command(b"PSUBSCRIBE", b"n*"),
            command(b"PING"),
            command(b"UNSUBSCRIBE"),
            command(b"PUNSUBSCRIBE"),
            command(b"LRANGE", b"l", b"0", b"-1"),
        ])
        sub = array(bulk(b"subscribe"), bulk(b"a"), b":1\r\n") + array(
            bulk(b"subscribe"), bulk(b"b"), b":2\r\n")
        psub = array(bulk(b"psubscribe"), bulk(b"n*"), b":3\r\n")
        message = array(bulk(b"message"), bulk(b"a"), bulk(b"hello"))
        pmessage = array(bulk(b"pmessage"), bulk(b"n*"), bulk(b"news"), bulk(b"x"))
        pong = array(bulk(b"pong"), bulk(b""))
        unsub = array(bulk(b"unsubscribe"), bulk(b"a"), b":2\r\n") + array(
            bulk(b"unsubscribe"), bulk(b"b"), b":1\r\n")
        punsub = array(bulk(b"punsubscribe"), bulk(b"n*"), b":0\r\n")
        lrange = array(bulk(b"message"), bulk(b"x"), bulk(b"y"))
        replies = sub + message + psub + pmessage + pong + message + unsub + punsub + lrange
        sent, messages = self.exchange(requests, replies)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, sub), (PUSH, None, message), (RESPONSE, 1, psub),
            (PUSH, None, pmessage), (RESPONSE, 2, pong), (PUSH, None, message),
            (RESPONSE, 3, unsub), (RESPONSE, 4, punsub), (RESPONSE, 5, lrange),
        ])
        self.assertEqual(messages[1][0].meta["push"], "message")

    def test_messageBetweenSubscriptions(self) -> None:
        """
        A message arriving between the confirmations of two pipelined
        C{SUBSCRIBE}s is a push between two responses.
        """
        requests = command(b"SUBSCRIBE", b"a") + command(b"SUBSCRIBE", b"b")
        first = array(bulk(b"subscribe"), bulk(b"a"), b":1\r\n")
        message = array(bulk(b"message"), bulk(b"a"), bulk(b"hi"))
        second = array(bulk(b"subscribe"), bulk(b"b"), b":2\r\n")
        sent, messages = self.exchange(requests, first + message + second)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, first), (PUSH, None, message), (RESPONSE, 1, second)])

    def test_shardedPubSub(self) -> None:
        """
        C{SSUBSCRIBE} confirmations and C{smessage} pushes follow the same
        rules, counted apart from channels and patterns.
        """
        requests = command(b"SSUBSCRIBE", b"s1", b"s2") + command(b"SUNSUBSCRIBE") + command(b"GET", b"k")
        sub = array(bulk(b"ssubscribe"), bulk(b"s1"), b":1\r\n") + array(
            bulk(b"ssubscribe"), bulk(b"s2"), b":2\r\n")
        smessage = array(bulk(b"smessage"), bulk(b"s1"), bulk(b"x"))
        unsub = array(bulk(b"sunsubscribe"), bulk(b"s1"), b":1\r\n") + array(
            bulk(b"sunsubscribe"), bulk(b"s2"), b":0\r\n")
        get = bulk(b"v")
        sent, messages = self.exchange(requests, sub + smessage + unsub + get)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, sub), (PUSH, None, smessage), (RESPONSE, 1, unsub), (RESPONSE, 2, get)])

    def test_unsubscribeWithoutSubscriptions(self) -> None:
        """
        C{UNSUBSCRIBE} with no channel and no subscription is answered by
        one confirmation with a null channel.
        """
        requests = command(b"UNSUBSCRIBE") + command(b"PING")
        unsub = array(bulk(b"unsubscribe"), b"$-1\r\n", b":0\r\n")
        sent, messages = self.exchange(requests, unsub + b"+PONG\r\n")
        self.assertPaired(sent, messages, [(RESPONSE, 0, unsub), (RESPONSE, 1, b"+PONG\r\n")])

    def test_subscribeRefusedOrQueued(self) -> None:
        """
        A (un)subscribe command answered by something other than
        confirmations (an error, C{QUEUED} inside MULTI) gets that one
        reply.
        """
        requests = command(b"SUBSCRIBE", b"a", b"b") + command(b"MULTI") + command(
            b"SUBSCRIBE", b"c", b"d") + command(b"GET", b"k")
        replies = [b"-NOPERM no permissions\r\n", b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n"]
        sent, messages = self.exchange(requests, b"".join(replies))
        self.assertPaired(sent, messages, [(RESPONSE, i, r) for i, r in enumerate(replies)])

    def test_multiExec(self) -> None:
        """
        MULTI, the queued commands (each answered C{QUEUED}) and EXEC (an
        array of the results) are each paired with their reply.
        """
        requests = b"".join([command(b"MULTI"), command(b"SET", b"k", b"v"),
                             command(b"INCR", b"n"), command(b"EXEC")])
        replies = [b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n", array(b"+OK\r\n", b":1\r\n")]
        sent, messages = self.exchange(requests, b"".join(replies))
        self.assertPaired(sent, messages, [(RESPONSE, i, r) for i, r in enumerate(replies)])
        self.assertEqual([m.meta["command"] for m, _ in messages], ["MULTI", "SET", "INCR", "EXEC"])

    def test_resp3PubSubAndPushes(self) -> None:
        """
        After C{HELLO 3} (answered with a map) pushes are C{>} values:
        subscription confirmations answer their command, messages and
        invalidations are pushes, and an array starting with C{message}
        is an ordinary reply even while subscribed.
        """
        requests = b"".join([command(b"HELLO", b"3"), command(b"SUBSCRIBE", b"a", b"b"),
                             command(b"LRANGE", b"l", b"0", b"-1"), command(b"GET", b"k")])
        hello = b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n"
        sub = array(bulk(b"subscribe"), bulk(b"a"), b":1\r\n", kind=b">") + array(
            bulk(b"subscribe"), bulk(b"b"), b":2\r\n", kind=b">")
        push = array(bulk(b"message"), bulk(b"a"), bulk(b"x"), kind=b">")
        invalidate = array(bulk(b"invalidate"), array(bulk(b"k")), kind=b">")
        lrange = array(bulk(b"message"), bulk(b"b"), bulk(b"c"))
        get = bulk(b"v")
        replies = hello + sub + push + lrange + invalidate + get
        sent, messages = self.exchange(requests, replies)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, hello), (RESPONSE, 1, sub), (PUSH, None, push),
            (RESPONSE, 2, lrange), (PUSH, None, invalidate), (RESPONSE, 3, get)])
        self.assertEqual(messages[4][0].meta["push"], "invalidate")

    def test_helloTwoKeepsResp2(self) -> None:
        """
        C{HELLO 2} (answered with an array) keeps RESP2 rules: once
        subscribed, C{message} arrays are pushes.
        """
        requests = command(b"HELLO", b"2") + command(b"SUBSCRIBE", b"a")
        hello = array(bulk(b"proto"), b":2\r\n")
        sub = array(bulk(b"subscribe"), bulk(b"a"), b":1\r\n")
        message = array(bulk(b"message"), bulk(b"a"), bulk(b"x"))
        sent, messages = self.exchange(requests, hello + sub + message)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, hello), (RESPONSE, 1, sub), (PUSH, None, message)])

    def test_monitorAndReset(self) -> None:
        """
        After C{MONITOR}'s C{+OK}, the lines it streams are pushes; the
        C{+RESET} answering C{RESET} is a response, after which a C{+}
        starting with a digit is a reply again.
        """
        requests = command(b"MONITOR") + command(b"RESET") + command(b"ECHO", b"1")
        line = b'+1700000000.123456 [0 127.0.0.1:5555] "get" "k"\r\n'
        replies = b"+OK\r\n" + line + line + b"+RESET\r\n" + b"+1\r\n"
        sent, messages = self.exchange(requests, replies)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, b"+OK\r\n"), (PUSH, None, line), (PUSH, None, line),
            (RESPONSE, 1, b"+RESET\r\n"), (RESPONSE, 2, b"+1\r\n")])

    def test_resetEndsSubscriptions(self) -> None:
        """
        After C{RESET}, a RESP2 connection is no longer subscribed.
        """
        requests = command(b"SUBSCRIBE", b"a") + command(b"RESET") + command(b"LRANGE", b"l", b"0", b"1")
        sub = array(bulk(b"subscribe"), bulk(b"a"), b":1\r\n")
        lrange = array(bulk(b"message"), bulk(b"x"), bulk(b"y"))
        sent, messages = self.exchange(requests, sub + b"+RESET\r\n" + lrange)
        self.assertPaired(sent, messages, [
            (RESPONSE, 0, sub), (RESPONSE, 1, b"+RESET\r\n"), (RESPONSE, 2, lrange)])

    def test_replicationStreamIsOneResponse(self) -> None:
        """
        The reply to C{PSYNC} (a status line, an RDB payload with no CRLF,
        then the command stream) is one response that ends with the
        stream.
        """
        replies = b"+FULLRESYNC abc 0\r\n$5\r\nREDIS" + command(b"SET", b"a", b"1")
        session, up, down = runExchange(command(b"PSYNC", b"?", b"-1"), split(replies, [7, 25]))
        [(message, raw)] = messagesOf(self, down, replies)
        self.assertEqual((message.kind, message.request, raw), (RESPONSE, up[0].message, replies))

    def test_firstFrameWaitsForPushKind(self) -> None:
        """
        A RESP3 push is held until its kind is known, then released whole
        so far.
        """
        session = newSession()
        push = array(bulk(b"message"), bulk(b"a"), bulk(b"x"), kind=b">")
        frames = feedAll(session.downstream, [push[:6], push[6:16]], finish=False)
        self.assertEqual(frames, [])
        [frame] = feedAll(session.downstream, [push[16:17]], finish=False)
        self.assertEqual((frame.data, frame.message.kind), (push[:17], PUSH))
        [frame] = feedAll(session.downstream, [push[17:]], finish=False)
        self.assertEqual((frame.data, frame.last), (push[17:], True))

    def test_invalidReplyPassesThroughAsData(self) -> None:
        """
        A byte that cannot start a RESP value ends the reply in progress
        there; commands still waiting get empty responses, the rest of
        the stream is L{DATA}, one warning is logged, and commands framed
        afterwards upstream are L{DATA} too.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        requests = command(b"GET", b"a") * 3
        replies = bulk(b"ok") + b"*2\r\n:1\r\n" + b"?junk\r\n"
        session, up, down = runExchange(requests, [replies, b"more"])
        messages = messagesOf(self, down, replies + b"more")
        self.assertEqual(
            [(m.kind, m.request is not None and m.request.index, raw) for m, raw in messages],
            [(RESPONSE, 0, bulk(b"ok")), (RESPONSE, 1, b"*2\r\n:1\r\n"), (RESPONSE, 2, b""),
             (DATA, False, b"?junk\r\n"), (DATA, False, b"more")],
        )
        self.assertTrue(messages[2][0].meta["empty"])
        [event] = unframedEvents(events)
        self.assertEqual((event["offset"], event["direction"]), (len(bulk(b"ok")) + 8, "downstream"))
        later = messagesOf(self, feedAll(session.upstream, [command(b"PING")]))
        self.assertEqual([m.kind for m, _ in later], [DATA])
        self.assertTrue(session.passthrough)

    def test_bulkWithoutCRLFIsInvalid(self) -> None:
        """
        A bulk string not followed by CRLF is invalid at the first wrong
        byte.
        """
        session, _, down = runExchange(command(b"GET", b"a"), [b"$2\r\nokXY"])
        messages = messagesOf(self, down)
        self.assertEqual([(m.kind, raw) for m, raw in messages],
                         [(RESPONSE, b"$2\r\nok"), (DATA, b"XY")])

    def test_endOfStreamCompletesWaitingCommands(self) -> None:
        """
        When the server's stream ends, the reply in progress ends, and
        every command still waiting gets an empty response.
        """
        session, up, down = runExchange(command(b"GET", b"a") * 3, [b"$5\r\nhel"])
        messages = messagesOf(self, down)
        self.assertEqual(
            [(m.request and m.request.index, raw) for m, raw in messages],
            [(0, b"$5\r\nhel"), (1, b""), (2, b"")])

    def test_bigBulkIsStreamed(self) -> None:
        """
        A 4 MiB bulk reply arriving in 64 KiB chunks leaves the framer one
        frame per chunk.
        """
        data = bulk(b"x" * (4 << 20))
        chunks = split(data, range(0, len(data), 65536))
        session, _, _ = runExchange(command(b"GET", b"big"), [])
        for chunk in chunks:
            frames = session.downstream.feed(chunk)
            self.assertEqual([f.data for f in frames], [chunk])
        self.assertTrue(frames[0].last)


class ErrorReplyTests(SynchronousTestCase):
    """
    What the proxy sends when it answers for the server.
    """

    def test_errorReplyIsRESPError(self) -> None:
        """
        C{errorReply} is a RESP error, C{-ERR <reason>}, on one line.
        """
        session = newSession()
        request = Message("upstream", 0, REQUEST, {"command": "GET"})
        self.assertEqual(session.errorReply(request, "injected\r\nfault"), b"-ERR injected fault\r\n")
        self.assertEqual(session.errorReply(None, "x", 503), b"-ERR x\r\n")

    def test_errorPrefixOption(self) -> None:
        """
        The C{error_prefix} option changes the error's first word.
        """
        session = newSession(error_prefix="BUSY")
        self.assertEqual(session.errorReply(None, "script running"), b"-BUSY script running\r\n")

    def test_errorPrefixMustBeAWord(self) -> None:
        """
        An C{error_prefix} that is not an upper-case word is refused with
        a message saying what is expected.
        """
        from txvaurien.options import OptionError

        for bad in ("", "err", "TWO WORDS", "1ERR", "ERR\x00"):
            with self.assertRaises(OptionError) as caught:
                Redis().configure({"error_prefix": bad})
            self.assertIn("upper-case word", str(caught.exception))

    def test_noErrorForCommandWithoutReply(self) -> None:
        """
        A command the server would not answer gets no error either.
        """
        session = newSession()
        request = Message("upstream", 0, REQUEST, {"command": "SET"}, None, False)
        self.assertEqual(session.errorReply(request, "x"), b"")

    def test_connectFailed(self) -> None:
        """
        A client whose backend is unreachable gets a RESP error saying so.
        """
        session = newSession()
        self.assertEqual(session.connectFailed("Connection refused."),
                         b"-ERR backend unavailable: Connection refused.\r\n")


class ProxyTests(SynchronousTestCase):
    """
    The handler in the in-memory proxy, under request scope.
    """

    def test_swallowedCommandAnsweredInPlace(self) -> None:
        """
        A command answered by the proxy gets its error in its place among
        the pipelined replies; the backend never sees it.
        """
        harness = Harness(protocol="redis", behavior="100:swallow", scope="request",
                          settings={"swallow": {"only": "GET"}})
        client, backend = harness.pair()
        client.send(command(b"SET", b"k", b"v") + command(b"GET", b"k") + b"PING\r\n")
        self.assertEqual(backend.received(), command(b"SET", b"k", b"v") + b"PING\r\n")
        self.assertEqual(client.received(), b"")
        backend.send(b"+OK\r\n+PO")
        self.assertEqual(client.received(), b"+OK\r\n-ERR swallowed\r\n+PO")
        backend.send(b"NG\r\n")
        self.assertEqual(client.received(), b"NG\r\n")

    def test_swallowedCommandWaitsForEarlierReply(self) -> None:
        """
        The error for a command waits for the replies to the commands
        before it, however they are chunked.
        """
        harness = Harness(protocol="redis", behavior="100:swallow", scope="request",
                          settings={"swallow": {"only": "GET"}})
        client, backend = harness.pair()
        client.send(command(b"SET", b"k", b"v"))
        client.send(command(b"GET", b"k"))
        self.assertEqual(client.received(), b"")
        backend.send(b"+O")
        self.assertEqual(client.received(), b"+O")
        backend.send(b"K\r\n")
        self.assertEqual(client.received(), b"K\r\n-ERR swallowed\r\n")

    def test_pubsubPushesFlowWhileSubscribed(self) -> None:
        """
        Pushes after a subscription reach the client even though no
        command waits for them.
        """
        harness = Harness(protocol="redis", scope="request")
        client, backend = harness.pair()
        client.send(command(b"SUBSCRIBE", b"a"))
        sub = array(bulk(b"subscribe"), bulk(b"a"), b":1\r\n")
        message = array(bulk(b"message"), bulk(b"a"), bulk(b"x"))
        backend.send(sub + message)
        backend.send(message)
        self.assertEqual(client.received(), sub + message + message)

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.booleans(), min_size=1, max_size=20), st.integers(0, 2**32),
           cuts, cuts)
    def test_everyCommandAnsweredInOrder(self, inline: list[bool], seed: int,
                                         upCuts: list[int], downCuts: list[int]) -> None:
        """
        Through the proxy with C{50:swallow} under request scope, whatever
        the chunking both ways, the client gets one reply per command, in
        order: the server's for the commands it received, the proxy's
        error for the others.
        """
        harness = Harness(protocol="redis", behavior="50:swallow", scope="request", seed=seed)
        client, backend = harness.pair()
        commands = [b"ECHO %d\r\n" % i if flag else command(b"ECHO", b"%d" % i)
                    for i, flag in enumerate(inline)]
        data = b"".join(commands)
        for chunk in split(data, upCuts):
            client.send(chunk)
        received = messagesOf(self, feedAll(newSession().upstream, [backend.received()]))
        echoed = [raw.split(b"ECHO", 1)[1].split()[-1] for _, raw in received]
        replies = b"".join(bulk(e) for e in echoed)
        for chunk in split(replies, downCuts):
            backend.send(chunk)
        expected = b"".join(
            bulk(b"%d" % i) if b"%d" % i in echoed else b"-ERR swallowed\r\n"
            for i in range(len(commands)))
        self.assertEqual(client.received(), expected)
        self.assertEqual(list(harness.factory.connections), [client.protocol.connection])

    def test_connectFailedSendsError(self) -> None:
        """
        A client of an unreachable backend receives a RESP error, then is
        disconnected.
        """
        from twisted.internet.error import ConnectionRefusedError
        from twisted.python.failure import Failure

        harness = Harness(protocol="redis")
        client = harness.accept()
        harness.backendFails(Failure(ConnectionRefusedError()))
        self.assertTrue(client.received().startswith(b"-ERR backend unavailable: "))
        self.assertTrue(client.transport.disconnecting)


# Hypothesis strategies.

_args = st.lists(st.binary(max_size=40), min_size=1, max_size=5)
_words = st.lists(st.from_regex(rb"[A-Za-z0-9:_]{1,10}", fullmatch=True), min_size=0, max_size=4)


@st.composite
def commands(draw: Any) -> bytes:
    """
    A valid command: multi-bulk with random binary arguments, or inline.
    """
    if draw(st.booleans()):
        return command(*draw(_args))
    words = draw(_words)
    return b" ".join(words) + draw(st.sampled_from([b"\r\n", b"\n"]))


def _scalar() -> Any:
    return st.one_of(
        st.binary(max_size=30).map(bulk),
        st.from_regex(rb"[+\-][ -~]{0,20}", fullmatch=True).map(lambda s: s + b"\r\n"),
        st.integers().map(lambda i: b":%d\r\n" % i),
        st.sampled_from([b"_\r\n", b"#t\r\n", b"#f\r\n", b",1.5\r\n", b",-inf\r\n",
                         b"(123456789012345678901234567890\r\n", b"$-1\r\n", b"*-1\r\n",
                         b"=7\r\ntxt:abc\r\n", b"!3\r\nERR\r\n", b"$?\r\n;1\r\na\r\n;0\r\n"]),
    )


def _aggregate(children: Any) -> Any:
    def build(kind: bytes, items: list[bytes]) -> bytes:
        if kind in (b"%", b"|"):
            items = items[: len(items) // 2 * 2]
            return kind + b"%d\r\n" % (len(items) // 2) + b"".join(items)
        if kind == b"?":
            return b"*?\r\n" + b"".join(items) + b".\r\n"
        return kind + b"%d\r\n" % len(items) + b"".join(items)

    return st.builds(build, st.sampled_from([b"*", b"~", b"%", b"?"]),
                     st.lists(children, max_size=4))


values = st.recursive(_scalar(), _aggregate, max_leaves=12)


@st.composite
def replyValues(draw: Any) -> bytes:
    """
    A valid top-level reply, sometimes led by an attribute.
    """
    value = draw(values)
    if draw(st.booleans()):
        return value
    attribute = draw(st.lists(_scalar(), min_size=2, max_size=4))
    attribute = attribute[: len(attribute) // 2 * 2]
    return b"|%d\r\n" % (len(attribute) // 2) + b"".join(attribute) + value




def mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    """
    Overwrite or insert random bytes at random places.
    """
    out = bytearray(data)
    for position, byte in edits:
        if not out:
            out.append(byte)
            continue
        where = position % (len(out) + 1)
        if byte % 2:
            out.insert(where, byte)
        elif where < len(out):
            out[where] = byte
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)

_fuzz = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


class FuzzTests(SynchronousTestCase):
    """
    Random streams and random chunkings: frames always concatenate to the
    input, flags are consistent, no exception escapes, and messages
    (their boundaries, kinds, metadata and pairing) do not depend on how
    the input was split.
    """

    def upstream(self, data: bytes, chunks: list[bytes]) -> list[tuple[Any, ...]]:
        session = newSession()
        return signature(messagesOf(self, feedAll(session.upstream, chunks), data))

    def downstream(self, requests: bytes, data: bytes, chunks: list[bytes]) -> list[tuple[Any, ...]]:
        _, _, down = runExchange(requests, chunks)
        return signature(messagesOf(self, down, data))

    @_fuzz
    @given(st.lists(commands(), max_size=8), cuts)
    def test_validCommands(self, parts: list[bytes], positions: list[int]) -> None:
        """
        A valid command stream is one request per command, whatever the
        chunking.
        """
        data = b"".join(parts)
        whole = self.upstream(data, [data])
        self.assertEqual([s[4] for s in whole], parts)
        self.assertEqual({s[0] for s in whole} - {REQUEST}, set())
        self.assertEqual(self.upstream(data, split(data, positions)), whole)

    @_fuzz
    @given(st.lists(commands(), max_size=6), edits, cuts)
    def test_brokenCommands(self, parts: list[bytes], changes: list[tuple[int, int]],
                            positions: list[int]) -> None:
        """
        A corrupted command stream frames the same whatever the chunking.
        """
        data = mutate(b"".join(parts), changes)
        self.assertEqual(self.upstream(data, split(data, positions)), self.upstream(data, [data]))

    @_fuzz
    @given(st.binary(max_size=300), cuts)
    def test_randomBytesUpstream(self, data: bytes, positions: list[int]) -> None:
        """
        Random bytes upstream frame the same whatever the chunking.
        """
        self.assertEqual(self.upstream(data, split(data, positions)), self.upstream(data, [data]))

    @_fuzz
    @given(st.lists(replyValues(), max_size=8), cuts)
    def test_validReplies(self, parts: list[bytes], positions: list[int]) -> None:
        """
        A valid reply stream is one response per reply, paired in order,
        whatever the chunking.
        """
        data = b"".join(parts)
        requests = command(b"GET", b"k") * len(parts)
        whole = self.downstream(requests, data, [data])
        self.assertEqual([(s[0], s[2], s[4]) for s in whole],
                         [(RESPONSE, i, p) for i, p in enumerate(parts)])
        self.assertEqual(self.downstream(requests, data, split(data, positions)), whole)

    @_fuzz
    @given(st.lists(replyValues(), max_size=6), edits, st.integers(0, 8), cuts)
    def test_brokenReplies(self, parts: list[bytes], changes: list[tuple[int, int]],
                           waiting: int, positions: list[int]) -> None:
        """
        A corrupted reply stream frames the same whatever the chunking,
        and every command gets a response (maybe empty).
        """
        data = mutate(b"".join(parts), changes)
        requests = command(b"GET", b"k") * waiting
        whole = self.downstream(requests, data, [data])
        self.assertEqual(sorted(s[2] for s in whole if s[0] == RESPONSE), list(range(waiting)))
        self.assertEqual(self.downstream(requests, data, split(data, positions)), whole)

    @_fuzz
    @given(st.binary(max_size=300), st.integers(0, 5), cuts)
    def test_randomBytesDownstream(self, data: bytes, waiting: int, positions: list[int]) -> None:
        """
        Random bytes downstream frame the same whatever the chunking.
        """
        requests = command(b"GET", b"k") * waiting
        self.assertEqual(self.downstream(requests, data, split(data, positions)),
                         self.downstream(requests, data, [data]))

    @_fuzz
    @given(st.lists(st.sampled_from(["sub", "psub", "unsub", "unsuball", "ping", "message",
                                     "hello3", "get"]), max_size=10), cuts)
    def test_pubsubTranscripts(self, steps: list[str], positions: list[int]) -> None:
        """
        Random pub/sub conversations (commands with their real replies,
        messages in between) frame the same whatever the chunking, every
        command is answered by its own replies, and every message is a
        push.
        """
        requests, replies, expected = pubsubTranscript(steps)
        whole = self.downstream(requests, replies, [replies])
        self.assertEqual([(s[0], s[2], s[4]) for s in whole], expected)
        self.assertEqual(self.downstream(requests, replies, split(replies, positions)), whole)


def pubsubTranscript(steps: list[str]) -> tuple[bytes, bytes, list[tuple[str, int | None, bytes]]]:
    """
    Play a pub/sub conversation the way a Redis server would answer it.

    @return: the commands, the server's stream, and the expected
        messages (kind, index of the request answered, bytes).
    """
    channels: list[bytes] = []
    patterns: list[bytes] = []
    protocol = 2
    requests: list[bytes] = []
    replies: list[bytes] = []
    expected: list[tuple[str, int | None, bytes]] = []
    counter = 0

    def kind() -> bytes:
        return b">" if protocol == 3 else b"*"

    def confirm(name: bytes, channel: bytes | None) -> bytes:
        head = bulk(channel) if channel is not None else b"$-1\r\n"
        return array(bulk(name), head, b":%d\r\n" % (len(channels) + len(patterns)), kind=kind())

    for step in steps:
        index = len(requests)
        counter += 1
        name = b"c%d" % counter
        if step == "sub":
            requests.append(command(b"SUBSCRIBE", name, name + b"x"))
            reply = b""
            for channel in (name, name + b"x"):
                channels.append(channel)
                reply += confirm(b"subscribe", channel)
        elif step == "psub":
            requests.append(command(b"PSUBSCRIBE", name + b"*"))
            patterns.append(name + b"*")
            reply = confirm(b"psubscribe", name + b"*")
        elif step == "unsub":
            channel = channels[0] if channels else name
            requests.append(command(b"UNSUBSCRIBE", channel))
            if channel in channels:
                channels.remove(channel)
            reply = confirm(b"unsubscribe", channel)
        elif step == "unsuball":
            requests.append(command(b"UNSUBSCRIBE"))
            if not channels:
                reply = confirm(b"unsubscribe", None)
            else:
                reply = b""
                while channels:
                    channel = channels.pop(0)
                    reply += confirm(b"unsubscribe", channel)
        elif step == "ping":
            requests.append(command(b"PING"))
            if protocol == 2 and (channels or patterns):
                reply = array(bulk(b"pong"), bulk(b""))
            else:
                reply = b"+PONG\r\n"
        elif step == "hello3":
            if channels or patterns:
                continue
            requests.append(command(b"HELLO", b"3"))
            protocol = 3
            reply = b"%1\r\n+proto\r\n:3\r\n"
        elif step == "get":
            if protocol == 2 and (channels or patterns):
                requests.append(command(b"GET", b"k"))
                reply = b"-ERR Can't execute 'get'\r\n"
            else:
                requests.append(command(b"LRANGE", b"message", b"0"))
                reply = array(bulk(b"message"), bulk(b"a"), bulk(b"b"))
        else:
            if channels:
                push = array(bulk(b"message"), bulk(channels[-1]), bulk(b"payload"), kind=kind())
                replies.append(push)
                expected.append((PUSH, None, push))
            continue
        replies.append(reply)
        expected.append((RESPONSE, index, reply))
    return b"".join(requests), b"".join(replies), expected
