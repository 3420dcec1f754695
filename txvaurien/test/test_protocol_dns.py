"""
Tests of the C{dns} protocol handler: framing DNS over UDP and TCP with
Twisted Names, pairing responses by id, answering with an rcode or TC,
matching names and types, and malformed messages.
"""

from __future__ import annotations

from typing import Any

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txvaurien.frames import DATA, DOWNSTREAM, REQUEST, RESPONSE, UPSTREAM
from txvaurien.interfaces import IFramer, IProtocolHandler, IProtocolSession
from txvaurien.options import OptionError, validate
from txvaurien.protocols.dns import DNS, DNSSession
from txvaurien.test.test_datagram_behaviors import CLIENT, Rig, registry


def query(name: str = "www.example.com", type: int = dns.A, id: int = 1) -> bytes:
    message = dns.Message(id=id, recDes=1)
    message.queries = [dns.Query(name, type, dns.IN)]
    return message.toStr()


def answer(raw: bytes, address: str = "192.0.2.10") -> bytes:
    q = dns.Message()
    q.fromStr(raw)
    message = dns.Message(id=q.id, answer=1, auth=1)
    message.queries = q.queries
    message.answers = [dns.RRHeader(q.queries[0].name.name, dns.A, dns.IN, 60,
                                    dns.Record_A(address))]
    return message.toStr()


def parsed(data: bytes) -> dns.Message:
    message = dns.Message()
    message.fromStr(data)
    return message


class Connection:
    """
    Just enough of an L{IConnection} to build a session.
    """

    def __init__(self, datagram: bool) -> None:
        if datagram:
            self.datagram = True


def session(datagram: bool = True, **settings: Any) -> DNSSession:
    handler = DNS(settings)
    return handler.buildSession(Connection(datagram))


class InterfaceTests(SynchronousTestCase):
    """
    The handler, its sessions and framers provide their interfaces.
    """

    def test_interfaces(self) -> None:
        """
        L{DNS} is an L{IProtocolHandler}; its UDP and TCP sessions are
        L{IProtocolSession}s with L{IFramer}s.
        """
        verifyObject(IProtocolHandler, registry().protocols.get("dns"))
        for datagram in (True, False):
            s = session(datagram)
            verifyObject(IProtocolSession, s)
            verifyObject(IFramer, s.upstream)
            verifyObject(IFramer, s.downstream)

    def test_badTypeRefused(self) -> None:
        """
        An unknown record type in C{match_type} is refused, naming it.
        """
        e = self.assertRaises(OptionError, validate, DNS(), {"match_type": "A,BOGUS"})
        self.assertIn("'BOGUS'", str(e))
        self.assertEqual(validate(DNS(), {"match_type": "a,*"})["match_type"], ["A", "*"])


class DatagramFramingTests(SynchronousTestCase):
    """
    Over UDP each datagram is one message.
    """

    def test_queryIsRequest(self) -> None:
        """
        A query is a request carrying its id, name and type.
        """
        (frame,) = session().upstream.feed(query("WWW.Example.com", dns.AAAA, 7))
        meta = frame.message.meta
        self.assertEqual(frame.message.kind, REQUEST)
        self.assertEqual((meta["id"], meta["name"], meta["type"]),
                         (7, "WWW.Example.com", "AAAA"))
        self.assertTrue(frame.first and frame.last)

    def test_responsesPairedById(self) -> None:
        """
        Responses are paired with the requests sent by DNS id, in whatever
        order they come.
        """
        s = session()
        (a,) = s.upstream.feed(query(id=1))
        (b,) = s.upstream.feed(query(id=2))
        s.requestSent(a.message)
        s.requestSent(b.message)
        (second,) = s.downstream.feed(answer(query(id=2)))
        (first,) = s.downstream.feed(answer(query(id=1)))
        self.assertEqual(second.message.kind, RESPONSE)
        self.assertIs(second.message.request, b.message)
        self.assertIs(first.message.request, a.message)
        self.assertEqual(s.sent, {})

    def test_malformedPassesOpaqueAndCounted(self) -> None:
        """
        Bytes Twisted Names cannot parse make an opaque data message,
        counted per direction, that faults never act on.
        """
        s = session()
        (frame,) = s.upstream.feed(b"\x00\x01garbage")
        self.assertEqual(frame.data, b"\x00\x01garbage")
        self.assertEqual(frame.message.kind, DATA)
        self.assertFalse(s.matches(frame.message))
        s.downstream.feed(b"\xff")
        self.assertEqual(s.handler.malformed, {UPSTREAM: 1, DOWNSTREAM: 1})


class StreamFramingTests(SynchronousTestCase):
    """
    Over TCP each message follows its two-byte length.
    """

    def test_byteByByte(self) -> None:
        """
        Fed one byte at a time, two messages come out as two frames whose
        bytes are exactly what was fed.
        """
        s = session(datagram=False)
        q1, q2 = query(id=1), query("other.example.com", id=2)
        stream = len(q1).to_bytes(2, "big") + q1 + len(q2).to_bytes(2, "big") + q2
        frames = []
        for i in range(len(stream)):
            frames += s.upstream.feed(stream[i:i + 1])
        self.assertEqual(b"".join(f.data for f in frames), stream)
        self.assertEqual([f.message.meta["id"] for f in frames], [1, 2])

    def test_leftoverAtEndIsOpaque(self) -> None:
        """
        An incomplete message at the end of the stream goes as one opaque
        frame, counted as malformed.
        """
        s = session(datagram=False)
        self.assertEqual(s.upstream.feed(b"\x00\x30abc"), [])
        (frame,) = s.upstream.finish()
        self.assertEqual(frame.data, b"\x00\x30abc")
        self.assertEqual(s.handler.malformed[UPSTREAM], 1)


class MatchTests(SynchronousTestCase):
    """
    Only queries matching C{match_name} and C{match_type} draw behaviors.
    """

    def test_globAndType(self) -> None:
        """
        C{*.example.com} with type C{A} matches A queries under
        example.com, case-insensitively, and nothing else.
        """
        s = session(match_name=["*.example.com"], match_type=["A"])

        def matches(name: str, type: int = dns.A) -> bool:
            (frame,) = s.upstream.feed(query(name, type))
            return s.matches(frame.message)

        self.assertTrue(matches("www.Example.COM"))
        self.assertFalse(matches("www.example.org"))
        self.assertFalse(matches("www.example.com", dns.MX))


class ErrorReplyTests(SynchronousTestCase):
    """
    C{errorReply} answers a query with the handler's C{rcode}.
    """

    def reply(self, datagram: bool = True, **settings: Any) -> dns.Message:
        s = session(datagram, **settings)
        raw = query(id=99)
        if not datagram:
            raw = len(raw).to_bytes(2, "big") + raw
        (frame,) = s.upstream.feed(raw)
        data = s.errorReply(frame.message, "test")
        if not datagram:
            self.assertEqual(int.from_bytes(data[:2], "big"), len(data) - 2)
            data = data[2:]
        return parsed(data)

    def test_rcodes(self) -> None:
        """
        SERVFAIL, NXDOMAIN and REFUSED answer with the query's id and
        question.
        """
        for name, code in (("servfail", dns.ESERVER), ("nxdomain", dns.ENAME),
                           ("refused", dns.EREFUSED)):
            message = self.reply(rcode=name)
            self.assertEqual((message.id, message.answer, message.rCode), (99, 1, code))
            self.assertEqual(message.queries[0].name.name, b"www.example.com")

    def test_truncated(self) -> None:
        """
        C{truncated} is an empty NOERROR answer with TC set over UDP, and
        SERVFAIL over TCP.
        """
        message = self.reply(rcode="truncated")
        self.assertEqual((message.trunc, message.rCode, message.answers), (1, dns.OK, []))
        self.assertEqual(self.reply(False, rcode="truncated").rCode, dns.ESERVER)

    def test_nothingForOpaque(self) -> None:
        """
        Nothing can answer a malformed message.
        """
        s = session()
        (frame,) = s.upstream.feed(b"bad")
        self.assertEqual(s.errorReply(frame.message, "x"), b"")
        self.assertEqual(s.errorReply(None, "x"), b"")


class DatagramProxyTests(SynchronousTestCase):
    """
    The C{dns} handler on the UDP proxy, under request scope.
    """

    def test_errorAnswersMatchingQueriesOnly(self) -> None:
        """
        C{error} with C{nxdomain} answers the matching query itself; the
        other one reaches the backend, and its answer the client.
        """
        rig = Rig("100:error", protocol="dns",
                  protocolSettings={"rcode": "nxdomain", "match_name": ["bad.*"]})
        rig.send(query("bad.example.com", id=1))
        rig.send(query("good.example.com", id=2))
        (forwarded,) = rig.backend().written
        self.assertEqual(parsed(forwarded).id, 2)
        rig.backend().reply(answer(forwarded))
        first, second = rig.transport.to()
        self.assertEqual((parsed(first).id, parsed(first).rCode), (1, dns.ENAME))
        self.assertEqual((parsed(second).id, parsed(second).rCode), (2, dns.OK))

    def test_delayedResponseOfMatchedQuery(self) -> None:
        """
        C{delay} after the backend (C{no-before}) holds the response of a
        matching query, paired by id, and not the others'.
        """
        rig = Rig("100:delay", {"delay": {"sleep": 1.0, "before": False}}, protocol="dns",
                  protocolSettings={"match_type": ["MX"]})
        rig.send(query(type=dns.MX, id=1))
        rig.send(query(type=dns.A, id=2))
        mx, a = rig.backend().written
        rig.backend().reply(answer(mx))
        rig.backend().reply(answer(a))
        self.assertEqual([parsed(d).id for d in rig.transport.to()], [2])
        rig.clock.advance(1.0)
        self.assertEqual([parsed(d).id for d in rig.transport.to()], [2, 1])
        self.assertEqual(rig.proxy.sessions[CLIENT].exchanges, {})

    def test_dropQueries(self) -> None:
        """
        C{drop} upstream with loss 1 loses matching queries.
        """
        rig = Rig("100:drop", {"drop": {"loss_rate": 1, "direction": "upstream"}},
                  protocol="dns", protocolSettings={"match_name": ["*.test"]})
        rig.send(query("a.test", id=1))
        rig.send(query("a.example", id=2))
        self.assertEqual([parsed(d).id for d in rig.backend().written], [2])

    def test_truncatedAnswer(self) -> None:
        """
        C{error} with C{truncated} answers with TC set.
        """
        rig = Rig("100:error", protocol="dns", protocolSettings={"rcode": "truncated"})
        rig.send(query(id=5))
        (reply,) = rig.transport.to()
        self.assertEqual(parsed(reply).trunc, 1)

    def test_malformedDatagramPasses(self) -> None:
        """
        A malformed datagram reaches the backend unchanged even under a
        table that answers every query, and is counted.
        """
        rig = Rig("100:error", protocol="dns")
        rig.send(b"not dns")
        self.assertEqual(rig.backend().written, [b"not dns"])
        self.assertEqual(rig.proxy.counters()["malformed"][UPSTREAM], 1)


class ExchangeTests(SynchronousTestCase):
    """
    A UDP session forgets the exchanges of requests that get no answer.
    """

    def test_droppedQueryForgotten(self) -> None:
        """
        A query a fault drops leaves no exchange behind.
        """
        rig = Rig("100:drop", {"drop": {"loss_rate": 1, "direction": "upstream"}},
                  protocol="dns")
        rig.send(query(id=1))
        self.assertEqual(rig.proxy.sessions[CLIENT].exchanges, {})

    def test_unansweredBounded(self) -> None:
        """
        Queries the backend never answers are remembered up to
        C{MAX_EXCHANGES}, oldest forgotten first.
        """
        from txvaurien.datagram.session import MAX_EXCHANGES

        rig = Rig("100:delay", {"delay": {"sleep": 0.0}}, protocol="dns")
        for i in range(MAX_EXCHANGES + 10):
            rig.send(query(id=i % 65536))
        exchanges = rig.proxy.sessions[CLIENT].exchanges
        self.assertEqual(len(exchanges), MAX_EXCHANGES)
        self.assertEqual(next(iter(exchanges)).meta["id"], 10)


class StreamMatchTests(SynchronousTestCase):
    """
    DNS over TCP through the stream proxy honours C{match_name}: the core
    asks the session whether faults may act on a request.
    """

    def test_matchNameOverTCP(self) -> None:
        """
        With C{match_name=*.example.com} and C{100:error}, a query for
        C{www.example.com} is answered by the proxy with SERVFAIL, while
        one for C{www.example.org} reaches the backend untouched.
        """
        from txvaurien.table import REQUEST_SCOPE, buildTable
        from txvaurien.test.helpers import Harness

        harness = Harness(protocol="dns", scope=REQUEST_SCOPE)
        handler = harness.registry.protocols.get("dns").configure(
            {"match_name": ["*.example.com"]})
        harness.factory.handler = handler
        harness.factory.setTable(buildTable(
            "100:error", harness.registry, None, REQUEST_SCOPE, "dns"))
        client, backend = harness.pair()

        def framed(data: bytes) -> bytes:
            return len(data).to_bytes(2, "big") + data

        spared = query("www.example.org", id=2)
        client.send(framed(spared))
        self.assertEqual(backend.received(), framed(spared))
        hit = query("www.example.com", id=3)
        client.send(framed(hit))
        self.assertEqual(backend.received(), b"")
        # Replies keep the order of the queries: the backend's answer to
        # the first, then the proxy's SERVFAIL to the second.
        backend.send(framed(answer(spared)))
        replies = client.received()
        first = int.from_bytes(replies[:2], "big")
        self.assertEqual(parsed(replies[2:2 + first]).id, 2)
        self.assertEqual(parsed(replies[2:2 + first]).rCode, dns.OK)
        second = replies[2 + first:]
        self.assertEqual(parsed(second[2:]).id, 3)
        self.assertEqual(parsed(second[2:]).rCode, dns.ESERVER)
