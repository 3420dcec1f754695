"""
Tests for L{txvaurien.protocols.memcache}: the framers on representative
streams of memcached's text protocol (storage with data blocks, noreply,
multi-key retrieval, stats, meta commands with quiet mode), pairing of
responses, error replies, the handler through the in-memory proxy, and
hypothesis fuzzing of both framers.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from hypothesis import HealthCheck, assume, given, settings, strategies as st
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.frames import DATA, PUSH, REQUEST, RESPONSE, Message
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.protocols.memcache import LINE_LIMIT, Memcache, MemcacheSession, parseCommand
from txvaurien.test.helpers import Harness
from txvaurien.test.test_protocol_redis import (
    _fuzz,
    cuts,
    edits,
    feedAll,
    messagesOf,
    mutate,
    newSession,
    sendAll,
    signature,
    split,
    unframedEvents,
)


def session(**settings: Any) -> Any:
    return newSession("memcache", **settings)


def runExchange(requests: bytes, replies: Sequence[bytes]) -> tuple[Any, list, list]:
    """
    Frame C{requests}, send them all, then frame the reply chunks.
    """
    s = session()
    up = feedAll(s.upstream, [requests])
    sendAll(s, up)
    return s, up, feedAll(s.downstream, replies)


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its sessions and framers provide their interfaces.
    """

    def test_providesInterfaces(self) -> None:
        """
        L{Memcache} provides L{IProtocolHandler} and frames requests; its
        sessions provide L{IProtocolSession} with two L{IFramer}s.
        """
        verifyObject(IProtocolHandler, Memcache())
        self.assertTrue(Memcache.framesRequests)
        s = session()
        self.assertIsInstance(s, MemcacheSession)
        verifyObject(IProtocolSession, s)
        verifyObject(IFramer, s.upstream)
        verifyObject(IFramer, s.downstream)
        self.assertFalse(s.serverSpeaksFirst)
        self.assertFalse(s.passthrough)


class ParseCommandTests(SynchronousTestCase):
    """
    L{parseCommand} reads a command line as memcached does.
    """

    def test_storage(self) -> None:
        """
        Storage commands have a data block of the announced size, and
        expect a response unless they end with C{noreply}.
        """
        self.assertEqual(parseCommand(b"set k 1 0 5"), ({"command": "set", "key": "k"}, True, 5))
        self.assertEqual(parseCommand(b"add k 1 0 5 noreply")[1:], (False, 5))
        self.assertEqual(parseCommand(b"cas k 1 0 5 99")[1:], (True, 5))
        self.assertEqual(parseCommand(b"cas k 1 0 5 99 noreply")[1:], (False, 5))
        self.assertEqual(parseCommand(b"append  k  0 0 3")[1:], (True, 3))

    def test_storageWithoutDataBlock(self) -> None:
        """
        A storage command memcached refuses before reading its data (a
        wrong number of words, a key over 250 bytes, a bad number) has no
        data block; with a wrong number of words it is answered even with
        C{noreply}.
        """
        self.assertEqual(parseCommand(b"set k 0 0")[1:], (True, None))
        self.assertEqual(parseCommand(b"set k 0 0 1 2 noreply")[1:], (True, None))
        self.assertEqual(parseCommand(b"set " + b"k" * 251 + b" 0 0 1")[1:], (True, None))
        self.assertEqual(parseCommand(b"set k 0 0 -1 noreply")[1:], (False, None))
        self.assertEqual(parseCommand(b"set k x 0 1")[1:], (True, None))
        self.assertEqual(parseCommand(b"cas k 0 0 1 x")[1:], (True, None))

    def test_otherCommands(self) -> None:
        """
        Retrieval, arithmetic, deletion and administrative commands.
        """
        self.assertEqual(parseCommand(b"get a b c"), ({"command": "get", "key": "a"}, True, None))
        self.assertEqual(parseCommand(b"gat 10 a b")[0], {"command": "gat", "key": "a"})
        self.assertEqual(parseCommand(b"incr n 5 noreply")[1:], (False, None))
        self.assertEqual(parseCommand(b"delete k noreply")[1:], (False, None))
        self.assertEqual(parseCommand(b"touch k 10")[1:], (True, None))
        self.assertEqual(parseCommand(b"flush_all noreply")[1:], (False, None))
        self.assertEqual(parseCommand(b"verbosity 1"), ({"command": "verbosity"}, True, None))
        self.assertEqual(parseCommand(b"quit")[1:], (False, None))
        self.assertEqual(parseCommand(b"version noreply")[1:], (True, None))
        self.assertEqual(parseCommand(b""), ({"command": ""}, True, None))

    def test_meta(self) -> None:
        """
        Meta commands: C{ms} has a data block; C{q} marks a quiet request,
        with its opaque token and whether it asked for its key back.
        """
        self.assertEqual(parseCommand(b"ms k 2 T0 q O12 k"), (
            {"command": "ms", "key": "k", "quiet": True, "opaque": "O12", "returnKey": True},
            True, 2))
        self.assertEqual(parseCommand(b"mg k v"), ({"command": "mg", "key": "k"}, True, None))
        self.assertEqual(parseCommand(b"md k q")[0]["quiet"], True)
        self.assertEqual(parseCommand(b"mn"), ({"command": "mn"}, True, None))
        self.assertEqual(parseCommand(b"ms k x")[2], None)


class CommandFramingTests(SynchronousTestCase):
    """
    The upstream framer: one message per command, data block included.
    """

    def frame(self, data: bytes, chunks: Sequence[bytes] | None = None) -> list[tuple[Message, bytes]]:
        s = session()
        return messagesOf(self, feedAll(s.upstream, chunks if chunks is not None else [data]), data)

    def test_storageCommandWithData(self) -> None:
        """
        A storage command and its data block, which may contain anything
        (CRLF, a command), is one request.
        """
        parts = [b"set k 0 0 12\r\nget x\r\nEND\r\n\r\n", b"get k\r\n"]
        messages = self.frame(b"".join(parts))
        self.assertEqual([(m.kind, m.meta["command"], raw) for m, raw in messages],
                         [(REQUEST, "set", parts[0]), (REQUEST, "get", parts[1])])

    def test_noreplyExpectsNoResponse(self) -> None:
        """
        C{noreply} commands are requests that expect no response.
        """
        messages = self.frame(b"set a 0 0 1 noreply\r\n1\r\ndelete a noreply\r\nget a\r\n")
        self.assertEqual([m.expectsResponse for m, _ in messages], [False, False, True])

    def test_lineWaitsThenDataStreams(self) -> None:
        """
        The first frame of a command waits for its whole line; a big data
        block then leaves as it arrives.
        """
        value = b"v" * 300000
        data = b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n"
        s = session()
        self.assertEqual(s.upstream.feed(data[:5]), [])
        [frame] = s.upstream.feed(data[5:100])
        self.assertEqual((frame.data, frame.first, frame.last), (data[:100], True, False))
        for start in range(100, len(data), 65536):
            [frame] = s.upstream.feed(data[start : start + 65536])
            self.assertEqual(frame.data, data[start : start + 65536])
        self.assertTrue(frame.last)

    def test_longMultiGetStreams(self) -> None:
        """
        A multi-key C{get} line longer than the line limit is streamed
        once its command is known.
        """
        keys = b" ".join(b"key%05d" % i for i in range(2000))
        data = b"get " + keys + b"\r\nversion\r\n"
        messages = self.frame(data, split(data, [3000, 9000, 12000]))
        self.assertEqual([(m.meta["command"], raw) for m, raw in messages],
                         [("get", data[:-9]), ("version", b"version\r\n")])

    def test_longLineIsInvalid(self) -> None:
        """
        Any other line longer than the limit (memcached would close the
        connection) makes the rest of the stream L{DATA}, from the line's
        start; one warning is logged.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        data = b"version\r\n" + b"x" * (LINE_LIMIT + 5) + b"\r\nversion\r\n"
        messages = self.frame(data, split(data, [20, 5000]))
        self.assertEqual([m.kind for m, _ in messages][:2], [REQUEST, DATA])
        self.assertEqual(b"".join(raw for m, raw in messages[1:]), data[9:])
        [event] = unframedEvents(events)
        self.assertEqual(event["offset"], 9)

    def test_binaryProtocolIsData(self) -> None:
        """
        The binary protocol (first byte 0x80) is not framed.
        """
        data = b"\x80\x0a\x00\x00" + b"\x00" * 20
        messages = self.frame(data)
        self.assertEqual([m.kind for m, _ in messages], [DATA])

    def test_tlsHandshakeIsData(self) -> None:
        """
        A TLS client hello is not taken for a command line waiting for its
        LF: the stream is L{DATA} from its first byte, at once.
        """
        hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(11, 60))
        s = session()
        frames = s.upstream.feed(hello)
        self.assertEqual([(f.message.kind, f.data) for f in frames], [(DATA, hello)])

    def test_partialCommandEndsAtEndOfStream(self) -> None:
        """
        A command cut by the end of the stream ends there.
        """
        s = session()
        [(message, raw)] = messagesOf(self, feedAll(s.upstream, [b"set k 0 0 10\r\nabc"]))
        self.assertEqual((message.meta["command"], raw), ("set", b"set k 0 0 10\r\nabc"))
        s = session()
        [(message, raw)] = messagesOf(self, feedAll(s.upstream, [b"get k"]))
        self.assertEqual((message.meta["command"], raw), ("get", b"get k"))


class ResponseFramingTests(SynchronousTestCase):
    """
    The downstream framer: one message per response, paired in order.
    """

    def exchange(self, requests: bytes, replies: bytes,
                 chunks: Sequence[bytes] | None = None) -> list[tuple[str, int | None, bytes]]:
        s, up, down = runExchange(requests, chunks if chunks is not None else [replies])
        sent = [f.message for f in up if f.first]
        return [(m.kind, sent.index(m.request) if m.request is not None else None, raw)
                for m, raw in messagesOf(self, down, replies)]

    def test_classicCommands(self) -> None:
        """
        Storage, arithmetic, touch, delete, flush, version and verbosity
        each get a one-line response; C{noreply} ones none.
        """
        requests = (b"set a 0 0 1\r\n1\r\nset b 0 0 1 noreply\r\n2\r\nincr a 2\r\n"
                    b"decr a 1\r\ntouch a 10\r\ndelete b\r\nflush_all\r\nversion\r\n"
                    b"verbosity 1\r\ncas a 0 0 1 5\r\nx\r\nbogus\r\n")
        replies = [b"STORED\r\n", b"3\r\n", b"2\r\n", b"TOUCHED\r\n", b"DELETED\r\n",
                   b"OK\r\n", b"VERSION 1.6.18\r\n", b"OK\r\n", b"EXISTS\r\n", b"ERROR\r\n"]
        self.assertEqual(self.exchange(requests, b"".join(replies)),
                         [(RESPONSE, i if i == 0 else i + 1, r) for i, r in enumerate(replies)])

    def test_multiKeyRetrieval(self) -> None:
        """
        The response to a multi-key C{get}/C{gets}/C{gat} is every C{VALUE}
        item, data blocks included (whatever they contain), up to C{END}.
        """
        requests = b"get a b c\r\ngets a\r\ngat 0 zz\r\nget\r\n"
        first = b"VALUE a 0 8\r\nEND\r\nx\r\n\r\nVALUE c 5 3\r\nabc\r\nEND\r\n"
        second = b"VALUE a 0 8 77\r\nEND\r\nx\r\n\r\nEND\r\n"
        replies = [first, second, b"END\r\n", b"ERROR\r\n"]
        self.assertEqual(self.exchange(requests, b"".join(replies)),
                         [(RESPONSE, i, r) for i, r in enumerate(replies)])

    def test_statsListing(self) -> None:
        """
        C{stats} answers with C{STAT} lines up to C{END}; C{stats reset}
        and C{stats detail on} with one line; C{lru_crawler} dumps end
        with C{END} (C{EN} for C{mgdump}) or are refused with one line.
        """
        requests = (b"stats\r\nstats reset\r\nstats detail on\r\nstats items\r\n"
                    b"lru_crawler metadump all\r\nlru_crawler mgdump all\r\n"
                    b"lru_crawler metadump 1\r\n")
        replies = [b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n", b"RESET\r\n", b"OK\r\n",
                   b"STAT items:1:number 1\r\nEND\r\n",
                   b"key=a exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\nEND\r\n",
                   b"mg a\r\nmg b\r\nEN\r\n", b"BUSY currently processing crawler request\r\n"]
        self.assertEqual(self.exchange(requests, b"".join(replies)),
                         [(RESPONSE, i, r) for i, r in enumerate(replies)])

    def test_metaCommands(self) -> None:
        """
        Meta responses: C{VA} has a data block, the others are one line.
        """
        requests = b"mg a v\r\nmg b\r\nms c 2\r\nhi\r\nmd c\r\nma n v\r\nme a\r\nmn\r\n"
        replies = [b"VA 4 f0\r\nEN\r\n\r\n", b"EN\r\n", b"HD\r\n", b"HD\r\n", b"VA 1\r\n8\r\n",
                   b"ME a exp=-1 la=1\r\n", b"MN\r\n"]
        self.assertEqual(self.exchange(requests, b"".join(replies)),
                         [(RESPONSE, i, r) for i, r in enumerate(replies)])

    def test_quietRequestsSucceedSilently(self) -> None:
        """
        A quiet request that succeeds gets no bytes from memcached: it is
        given an empty response when a later response (another code, or
        C{MN}) shows it succeeded; a quiet request that failed gets its
        response.
        """
        requests = (b"mg zz v q\r\nms b 1 q ME\r\n2\r\nmg a v q\r\nmg yy v q\r\n"
                    b"md zz q\r\nms c 1 q\r\n3\r\nmn\r\n")
        replies = [b"NS\r\n", b"VA 1\r\n1\r\n", b"NF\r\n", b"MN\r\n"]
        self.assertEqual(self.exchange(requests, b"".join(replies)), [
            (RESPONSE, 0, b""), (RESPONSE, 1, b"NS\r\n"), (RESPONSE, 2, b"VA 1\r\n1\r\n"),
            (RESPONSE, 3, b""), (RESPONSE, 4, b"NF\r\n"), (RESPONSE, 5, b""),
            (RESPONSE, 6, b"MN\r\n")])

    def test_ambiguousQuietResponseGoesToOldest(self) -> None:
        """
        Without an opaque token or key to tell them apart, a response two
        waiting quiet requests could both have got is taken as the oldest
        one's (the bytes reach the client in order all the same).
        """
        requests = b"ms a 1 q\r\n1\r\nms b 1 q ME\r\n2\r\nmn\r\n"
        self.assertEqual(self.exchange(requests, b"NS\r\nMN\r\n"), [
            (RESPONSE, 0, b"NS\r\n"), (RESPONSE, 1, b""), (RESPONSE, 2, b"MN\r\n")])

    def test_quietRequestMatchedByOpaque(self) -> None:
        """
        A response without a quiet request's opaque token is not its own:
        the quiet request succeeded.
        """
        requests = b"mg a v q O1\r\nmg b v O2\r\n"
        replies = b"VA 1 O2\r\nx\r\n"
        self.assertEqual(self.exchange(requests, replies),
                         [(RESPONSE, 0, b""), (RESPONSE, 1, replies)])

    def test_quietRequestMatchedByKey(self) -> None:
        """
        A response without the key a quiet request asked back (C{k}) is
        not its own.
        """
        requests = b"mg a v q k\r\nmg b v k\r\n"
        replies = b"VA 1 kb\r\nx\r\n"
        self.assertEqual(self.exchange(requests, replies),
                         [(RESPONSE, 0, b""), (RESPONSE, 1, replies)])

    def test_errorAnswersOldestQuietRequest(self) -> None:
        """
        An error line is taken as the response of the oldest quiet
        request still waiting.
        """
        requests = b"ms a 1 q\r\n1\r\nmn\r\n"
        replies = b"SERVER_ERROR out of memory\r\nMN\r\n"
        self.assertEqual(self.exchange(requests, replies), [
            (RESPONSE, 0, b"SERVER_ERROR out of memory\r\n"), (RESPONSE, 1, b"MN\r\n")])

    def test_firstFrameWaitsForLine(self) -> None:
        """
        Fed byte by byte, a response gives no frame until its first line
        is complete.
        """
        s, _, _ = runExchange(b"get a\r\n", [])
        data = b"VALUE a 0 2\r\nhi\r\nEND\r\n"
        frames = []
        for i in range(len(data)):
            new = s.downstream.feed(data[i : i + 1])
            if i < 12:
                self.assertEqual(new, [])
            frames.extend(new)
        self.assertEqual(frames[0].data, data[:13])
        messagesOf(self, frames, data)

    def test_unsolicitedLineIsPush(self) -> None:
        """
        A line when nothing waits for a response is a push.
        """
        self.assertEqual(self.exchange(b"", b"ERROR Too many open connections\r\n"),
                         [(PUSH, None, b"ERROR Too many open connections\r\n")])

    def test_watchStreamIsOneResponse(self) -> None:
        """
        After C{watch}'s C{OK}, the log lines that follow for as long as
        the connection lasts are part of its response.
        """
        replies = b"OK\r\nts=1 gid=1 type=item_get\r\nts=2 gid=2 type=item_get\r\n"
        self.assertEqual(self.exchange(b"watch fetchers\r\n", replies, split(replies, [3, 20])),
                         [(RESPONSE, 0, replies)])

    def test_badValueLineIsInvalid(self) -> None:
        """
        A C{VALUE} line without a valid size ends the response there; the
        rest is L{DATA} and waiting requests get empty responses.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        replies = b"VALUE a 0 zz\r\nhello\r\nEND\r\n"
        self.assertEqual(self.exchange(b"get a\r\nget b\r\n", replies), [
            (RESPONSE, 0, b"VALUE a 0 zz\r"), (RESPONSE, 1, b""), (DATA, None, replies[13:])])
        self.assertEqual(len(unframedEvents(events)), 1)

    def test_endOfStreamCompletesWaitingRequests(self) -> None:
        """
        When memcached's stream ends, the response in progress ends and
        every request still waiting gets an empty response.
        """
        self.assertEqual(self.exchange(b"get a\r\nversion\r\n", b"VALUE a 0 5\r\nhe"),
                         [(RESPONSE, 0, b"VALUE a 0 5\r\nhe"), (RESPONSE, 1, b"")])


class ErrorReplyTests(SynchronousTestCase):
    """
    What the proxy sends when it answers for memcached.
    """

    def test_serverError(self) -> None:
        """
        C{errorReply} is a C{SERVER_ERROR} line with the reason.
        """
        s = session()
        request = Message("upstream", 0, REQUEST, {"command": "get"})
        self.assertEqual(s.errorReply(request, "injected\nfault", 500),
                         b"SERVER_ERROR injected fault\r\n")

    def test_errorOption(self) -> None:
        """
        The C{error} option picks C{CLIENT_ERROR} or C{ERROR} instead.
        """
        self.assertEqual(session(error="CLIENT_ERROR").errorReply(None, "bad"),
                         b"CLIENT_ERROR bad\r\n")
        self.assertEqual(session(error="ERROR").errorReply(None, "bad"), b"ERROR\r\n")

    def test_noreplyGetsNothing(self) -> None:
        """
        A C{noreply} command's client reads no response: its error is
        empty.
        """
        request = Message("upstream", 0, REQUEST, {"command": "set"}, None, False)
        self.assertEqual(session().errorReply(request, "x"), b"")

    def test_connectFailed(self) -> None:
        """
        A client of an unreachable backend gets a C{SERVER_ERROR}.
        """
        self.assertEqual(session().connectFailed("refused"),
                         b"SERVER_ERROR backend unavailable: refused\r\n")


class ProxyTests(SynchronousTestCase):
    """
    The handler in the in-memory proxy, under request scope.
    """

    def harness(self, only: str) -> Any:
        return Harness(protocol="memcache", behavior="100:swallow", scope="request",
                       settings={"swallow": {"only": only}})

    def test_swallowedCommandAnsweredInPlace(self) -> None:
        """
        A command answered by the proxy gets its C{SERVER_ERROR} in its
        place among the pipelined responses.
        """
        client, backend = self.harness("get").pair()
        client.send(b"set k 0 0 1\r\nv\r\nget k\r\nversion\r\n")
        self.assertEqual(backend.received(), b"set k 0 0 1\r\nv\r\nversion\r\n")
        backend.send(b"STORED\r\nVERS")
        self.assertEqual(client.received(), b"STORED\r\nSERVER_ERROR swallowed\r\n")
        backend.send(b"ION 1\r\n")
        self.assertEqual(client.received(), b"VERSION 1\r\n")

    def test_swallowedNoreplyIsSilent(self) -> None:
        """
        A swallowed C{noreply} command sends the client nothing.
        """
        client, backend = self.harness("set").pair()
        client.send(b"set k 0 0 1 noreply\r\nv\r\nversion\r\n")
        self.assertEqual(backend.received(), b"version\r\n")
        backend.send(b"VERSION 1\r\n")
        self.assertEqual(client.received(), b"VERSION 1\r\n")

    def test_swallowedAfterQuietRequests(self) -> None:
        """
        When the request swallowed follows quiet requests only, they are
        taken as successful at once, so its error is not held waiting for
        a response that will never come.
        """
        client, backend = self.harness("mn").pair()
        client.send(b"ms a 1 q\r\n1\r\nmg b v q\r\nmn\r\n")
        self.assertEqual(backend.received(), b"ms a 1 q\r\n1\r\nmg b v q\r\n")
        self.assertEqual(client.received(), b"SERVER_ERROR swallowed\r\n")

    def test_quietResponsesKeepTheirPlace(self) -> None:
        """
        A quiet request's failure reaches the client before the error of
        a later swallowed request, in protocol order.
        """
        client, backend = self.harness("get").pair()
        client.send(b"ms a 1 q ME\r\n1\r\nversion\r\nget a\r\n")
        self.assertEqual(client.received(), b"")
        backend.send(b"NS\r\n")
        self.assertEqual(client.received(), b"NS\r\n")
        backend.send(b"VERSION 1\r\n")
        self.assertEqual(client.received(), b"VERSION 1\r\nSERVER_ERROR swallowed\r\n")


    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(["get", "set", "setnr", "version"]), min_size=1,
                    max_size=20), st.integers(0, 2**32), cuts, cuts)
    def test_everyCommandAnsweredInOrder(self, kinds: list[str], seed: int,
                                         upCuts: list[int], downCuts: list[int]) -> None:
        """
        Through the proxy with C{50:swallow} under request scope, whatever
        the chunking both ways, the client gets the response of every
        command that expects one, in order: memcached's for the commands
        it received, the proxy's error for the others; C{noreply}
        commands get nothing either way.
        """
        harness = Harness(protocol="memcache", behavior="50:swallow", scope="request",
                          seed=seed)
        client, backend = harness.pair()
        commands = []
        for i, kind in enumerate(kinds):
            if kind == "get":
                commands.append(b"get k%d\r\n" % i)
            elif kind == "set":
                commands.append(b"set k%d 0 0 %d\r\n%d\r\n" % (i, len(b"%d" % i), i))
            elif kind == "setnr":
                commands.append(b"set k%d 0 0 %d noreply\r\n%d\r\n" % (i, len(b"%d" % i), i))
            else:
                commands.append(b"version %d\r\n" % i)
        data = b"".join(commands)
        for chunk in split(data, upCuts):
            client.send(chunk)
        received = messagesOf(self, feedAll(session().upstream, [backend.received()]))

        def answer(raw: bytes) -> bytes:
            if raw.startswith(b"get"):
                key = raw.split()[1]
                return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(key), key)
            if raw.startswith(b"set"):
                return b"" if b"noreply" in raw else b"STORED\r\n"
            return b"VERSION %s\r\n" % raw.split()[1]

        for chunk in split(b"".join(answer(raw) for _, raw in received), downCuts):
            backend.send(chunk)
        reached = {raw for _, raw in received}
        expected = b"".join(
            answer(c) if c in reached else (b"" if b"noreply" in c else b"SERVER_ERROR swallowed\r\n")
            for c in commands)
        self.assertEqual(client.received(), expected)


# Hypothesis strategies.

_keys = st.from_regex(rb"[a-z0-9_:]{1,12}", fullmatch=True)
_blocks = st.binary(max_size=40)


@st.composite
def exchanges(draw: Any) -> tuple[bytes, bytes, list[int]]:
    """
    A command and the response memcached would give it; the list says how
    many responses the command gets (0 for noreply).
    """
    kind = draw(st.sampled_from(["set", "setnr", "get", "stats", "incr", "mg", "mgq", "ms",
                                 "msq", "mn", "version"]))
    key = draw(_keys)
    block = draw(_blocks)
    if kind == "set":
        return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(block), block), b"STORED\r\n", [1]
    if kind == "setnr":
        return b"set %s 0 0 %d noreply\r\n%s\r\n" % (key, len(block), block), b"", [0]
    if kind == "get":
        keys = draw(st.lists(_keys, min_size=1, max_size=3))
        values = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(block), block) for k in keys)
        return b"get " + b" ".join(keys) + b"\r\n", values + b"END\r\n", [1]
    if kind == "stats":
        return b"stats\r\n", b"STAT pid 1\r\nSTAT curr_items 3\r\nEND\r\n", [1]
    if kind == "incr":
        return b"incr %s 1\r\n" % key, b"5\r\n", [1]
    if kind == "mg":
        return b"mg %s v\r\n" % key, b"VA %d\r\n%s\r\n" % (len(block), block), [1]
    opaque = b"O%d" % draw(st.integers(0, 10**9))
    if kind == "mgq":
        hit = draw(st.booleans())
        return (b"mg %s v q %s\r\n" % (key, opaque),
                b"VA %d %s\r\n%s\r\n" % (len(block), opaque, block) if hit else b"", [1])
    if kind == "ms":
        return b"ms %s %d\r\n%s\r\n" % (key, len(block), block), b"HD\r\n", [1]
    if kind == "msq":
        fail = draw(st.booleans())
        return (b"ms %s %d q %s\r\n%s\r\n" % (key, len(block), opaque, block),
                b"NS %s\r\n" % opaque if fail else b"", [1])
    if kind == "mn":
        return b"mn\r\n", b"MN\r\n", [1]
    return b"version\r\n", b"VERSION 1.6.18\r\n", [1]


class FuzzTests(SynchronousTestCase):
    """
    Random streams and chunkings: frames concatenate to the input, flags
    are consistent, nothing raises, and messages do not depend on the
    chunking.
    """

    def upstream(self, data: bytes, chunks: list[bytes]) -> list[tuple[Any, ...]]:
        s = session()
        return signature(messagesOf(self, feedAll(s.upstream, chunks), data))

    def downstream(self, requests: bytes, data: bytes, chunks: list[bytes]) -> list[tuple[Any, ...]]:
        s = session()
        sendAll(s, feedAll(s.upstream, [requests]))
        return signature(messagesOf(self, feedAll(s.downstream, chunks), data))

    @_fuzz
    @given(st.lists(exchanges(), max_size=8), cuts)
    def test_validConversations(self, parts: list[tuple[bytes, bytes, list[int]]],
                                positions: list[int]) -> None:
        """
        Valid commands are one request each and valid responses (quiet
        and noreply ones included) are paired with their commands,
        whatever the chunking; a quiet request that succeeded (and was
        followed by a response that is not its own) gets an empty
        response.
        """
        requests = b"".join(p[0] for p in parts)
        replies = b"".join(p[1] for p in parts)
        # A client tells its quiet requests apart by their opaque tokens:
        # two alike make the pairing ambiguous (memcached would answer
        # either the same way).
        opaques = re.findall(rb" q (O\d+)\r\n", requests)
        assume(len(set(opaques)) == len(opaques))
        whole = self.upstream(requests, [requests])
        self.assertEqual([s[4] for s in whole], [p[0] for p in parts])
        self.assertEqual(self.upstream(requests, split(requests, positions)), whole)
        down = self.downstream(requests, replies, [replies])
        self.assertEqual([(s[0], s[2], s[4]) for s in down],
                         [(RESPONSE, i, p[1]) for i, p in enumerate(parts) if p[2][0]])
        self.assertEqual(self.downstream(requests, replies, split(replies, positions)), down)

    @_fuzz
    @given(st.lists(exchanges(), max_size=6), edits, cuts)
    def test_brokenStreams(self, parts: list[tuple[bytes, bytes, list[int]]],
                           changes: list[tuple[int, int]], positions: list[int]) -> None:
        """
        Corrupted command and response streams frame the same whatever the
        chunking.
        """
        requests = mutate(b"".join(p[0] for p in parts), changes)
        replies = mutate(b"".join(p[1] for p in parts), changes)
        self.assertEqual(self.upstream(requests, split(requests, positions)),
                         self.upstream(requests, [requests]))
        self.assertEqual(self.downstream(requests, replies, split(replies, positions)),
                         self.downstream(requests, replies, [replies]))

    @_fuzz
    @given(st.binary(max_size=300), st.binary(max_size=300), cuts)
    def test_randomBytes(self, requests: bytes, replies: bytes, positions: list[int]) -> None:
        """
        Random bytes both ways frame the same whatever the chunking.
        """
        self.assertEqual(self.upstream(requests, split(requests, positions)),
                         self.upstream(requests, [requests]))
        self.assertEqual(self.downstream(requests, replies, split(replies, positions)),
                         self.downstream(requests, replies, [replies]))
