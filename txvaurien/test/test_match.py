"""
Tests for L{txvaurien.match} and the behavior table's use of matches.
"""

from __future__ import annotations

import os
import random
import shlex
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txvaurien import match, tap
from txvaurien.frames import REQUEST, UPSTREAM, Message
from txvaurien.options import OptionError
from txvaurien.table import REQUEST_SCOPE
from txvaurien.table import TableError, buildTable
from txvaurien.test.helpers import Harness, testRegistry


class _Transport:
    def __init__(self, host: str) -> None:
        self.host = host

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", self.host, 40000)


class _Named:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def fakeConnection(protocol: str = "http", host: str = "127.0.0.1", id: int = 0) -> Any:
    """
    What a match reads of a connection: its number, client and protocol.
    """
    return _Named(
        id=id,
        client=_Named(transport=_Transport(host)),
        proxy=_Named(handler=_Named(name=protocol)),
    )


def request(index: int = 0, **meta: Any) -> Message:
    return Message(UPSTREAM, index, REQUEST, meta)


class ParseTests(SynchronousTestCase):
    """
    Reading a match, and its errors.
    """

    def test_emptyMatchesEverything(self) -> None:
        """
        An empty or blank match is no match at all (L{None}).
        """
        self.assertIsNone(match.parse(""))
        self.assertIsNone(match.parse("   "))

    def test_unknownFieldRefused(self) -> None:
        """
        A field no protocol has is an error naming it and the known ones.
        """
        e = self.assertRaises(match.MatchError, match.Match, "methd=POST")
        self.assertIn("unknown match field 'methd'", str(e))
        self.assertIn("header.NAME", str(e))

    def test_invalidGlobRefused(self) -> None:
        """
        A glob with an unbalanced C{[} is an error, not a literal.
        """
        e = self.assertRaises(match.MatchError, match.Match, "path=/api/[v1")
        self.assertIn("invalid glob", str(e))

    def test_invalidRegexRefused(self) -> None:
        """
        A regular expression that does not compile is an error quoting the
        term.
        """
        e = self.assertRaises(match.MatchError, match.Match, "sql~(UPDATE")
        self.assertIn("invalid regular expression in 'sql~(UPDATE'", str(e))

    def test_invalidNetworkRefused(self) -> None:
        """
        C{client=} takes a network in CIDR notation.
        """
        e = self.assertRaises(match.MatchError, match.Match, "client=10.0.0/33")
        self.assertIn("invalid network", str(e))

    def test_termWithoutOperatorRefused(self) -> None:
        """
        A word without C{=} or C{~} is refused.
        """
        e = self.assertRaises(match.MatchError, match.Match, "POST")
        self.assertIn("not field=glob", str(e))

    def test_unbalancedQuoteRefused(self) -> None:
        """
        Values may be quoted; an unclosed quote is an error.
        """
        self.assertEqual(match.Match("sql~'UPDATE users'").terms[0].text, "sql~UPDATE users")
        self.assertRaises(match.MatchError, match.Match, "sql~'UPDATE")

    def test_fieldMissingFromProtocolRefused(self) -> None:
        """
        A field the chosen protocol lacks is an error naming the protocol
        and the fields it has.
        """
        e = self.assertRaises(match.MatchError, match.Match("method=GET").check, "redis")
        self.assertIn("does not exist for protocol redis", str(e))
        self.assertIn("command, connection, key", str(e))
        match.Match("method=GET client=10.0.0.0/8").check("http")

    def test_requestFieldUnderConnectionScopeRefused(self) -> None:
        """
        Under connection scope only the client and the connection ordinal
        are known.
        """
        m = match.Match("command=SET")
        self.assertRaises(match.MatchError, m.check, "redis", False)
        match.Match("client=127.0.0.0/8 connection=0-3").check("redis", False)


class MatchesTests(SynchronousTestCase):
    """
    Which requests a match holds for.
    """

    def test_methodAndPathGlob(self) -> None:
        """
        Every term must hold; the method compares without case, the path
        as a glob.
        """
        m = match.Match("method=POST path=/api/*")
        connection = fakeConnection()
        self.assertTrue(m.matches(request(method="post", path="/api/orders"), connection))
        self.assertFalse(m.matches(request(method="GET", path="/api/orders"), connection))
        self.assertFalse(m.matches(request(method="POST", path="/health"), connection))

    def test_headerAndHostFromHead(self) -> None:
        """
        Headers and the host, which the HTTP framer does not record, are
        read from the request's first bytes; C{header.NAME=*} tests
        presence.
        """
        head = b"GET / HTTP/1.1\r\nHost: api.example\r\nX-Canary: yes\r\n\r\n"
        connection = fakeConnection()
        r = request(method="GET", path="/")
        self.assertTrue(match.Match("header.x-canary=*").matches(r, connection, head))
        self.assertTrue(match.Match("host=API.*").matches(r, connection, head))
        self.assertFalse(match.Match("header.x-other=*").matches(r, connection, head))

    def test_redisKeyFromHead(self) -> None:
        """
        A redis command's key is read from its first frame, in RESP or
        inline form.
        """
        connection = fakeConnection("redis")
        m = match.Match("command=SET key=user:*")
        r = request(command="SET")
        self.assertTrue(m.matches(r, connection, b"*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$1\r\nx\r\n"))
        self.assertFalse(m.matches(r, connection, b"*3\r\n$3\r\nSET\r\n$5\r\norder\r\n$1\r\nx\r\n"))
        self.assertTrue(m.matches(r, connection, b"SET user:2 x\r\n"))

    def test_sqlVerbAndText(self) -> None:
        """
        SQL requests match on their statement kind (C{verb}) and, by
        regular expression, their text read from the first frame.
        """
        pg = b"Q\x00\x00\x00\x1eUPDATE users SET a = 1\x00"
        my = b"\x17\x00\x00\x00\x03UPDATE users SET a = 1"
        m = match.Match("verb=UPDATE sql~users")
        r = request(command="Query", verb="UPDATE")
        self.assertTrue(m.matches(r, fakeConnection("postgresql"), pg))
        self.assertTrue(m.matches(r, fakeConnection("mysql"), my))
        self.assertFalse(m.matches(request(verb="SELECT"), fakeConnection("mysql"), my))

    def test_clientNetwork(self) -> None:
        """
        C{client=CIDR} holds for clients inside the network only.
        """
        m = match.Match("client=127.0.0.1/32")
        self.assertTrue(m.matches(None, fakeConnection(host="127.0.0.1")))
        self.assertFalse(m.matches(None, fakeConnection(host="127.0.0.2")))
        self.assertFalse(m.matches(None, fakeConnection(host="::1")))

    def test_connectionOrdinalAndNegation(self) -> None:
        """
        Ordinals take a number or a range; C{!} negates a term.
        """
        m = match.Match("connection=2-4 !request=0")
        self.assertTrue(m.matches(request(1), fakeConnection(id=3)))
        self.assertFalse(m.matches(request(0), fakeConnection(id=3)))
        self.assertFalse(m.matches(request(1), fakeConnection(id=5)))

    def test_noConnectionNoMatch(self) -> None:
        """
        Without the connection (a proxy core that does not pass it),
        nothing matches: an aimed behavior never acts by accident.
        """
        self.assertFalse(match.Match("command=GET").matches(request(command="GET"), None))


class TableMatchTests(SynchronousTestCase):
    """
    The behavior table honours matches.
    """

    def table(self, spec: str, matchText: str, protocol: str = "http") -> Any:
        return buildTable(
            spec, testRegistry(), {"error": {"match": matchText}}, REQUEST_SCOPE, protocol)

    def test_unmatchedRequestsConsumeNoRandomness(self) -> None:
        """
        A request no behavior of the table can act on draws nothing: the
        random stream is where it was.
        """
        table = self.table("10:error", "method=POST")
        rng = random.Random(5)
        state = rng.getstate()
        chosen = table.choose(rng, request(method="GET"), fakeConnection())
        self.assertEqual((chosen, rng.getstate()), ((), state))

    def test_unrelatedTrafficDoesNotShiftHits(self) -> None:
        """
        With the same seed, the same matching requests are hit whatever
        unmatched requests come between them.
        """
        table = self.table("30:error", "method=POST")
        connection = fakeConnection()

        def hits(interleave: int) -> list[int]:
            rng = random.Random(9)
            result = []
            for i in range(200):
                for _ in range(interleave):
                    table.choose(rng, request(method="GET"), connection)
                if table.choose(rng, request(method="POST"), connection):
                    result.append(i)
            return result

        self.assertEqual(hits(0), hits(3))
        self.assertTrue(30 < len(hits(0)) < 90)

    def test_unmatchedBehaviorLeavesChain(self) -> None:
        """
        In a chain, a behavior whose match fails is left out while the
        others act.
        """
        table = self.table("100:latency+error", "method=POST")
        rng = random.Random(1)
        names = [b.name for b in table.choose(rng, request(method="GET"), fakeConnection())]
        self.assertEqual(names, ["latency"])

    def test_protocolFieldChecked(self) -> None:
        """
        L{buildTable} with a protocol refuses a field it lacks.
        """
        e = self.assertRaises(TableError, self.table, "10:error", "method=POST", "redis")
        self.assertIn("behavior error option match", str(e))

    def test_badMatchIsOptionError(self) -> None:
        """
        A malformed match fails where options are validated, naming the
        option.
        """
        e = self.assertRaises(OptionError, self.table, "10:error", "path~(")
        self.assertIn("match", e.name)

    def test_connectionOnlyBehaviorWarned(self) -> None:
        """
        A behavior acting on whole connections only (C{slow_open},
        C{slow_close}) gets a warning under request scope, and none under
        connection scope.
        """
        table = buildTable("10:slow_open,10:slow_close,10:delay", testRegistry(), {},
                           REQUEST_SCOPE)
        self.assertEqual(len(table.warnings), 2)
        self.assertIn("slow_open", table.warnings[0])
        self.assertIn("slow_close", table.warnings[1])
        self.assertEqual(buildTable("10:slow_open", testRegistry(), {}).warnings, [])


class OptionSurfaceTests(SynchronousTestCase):
    """
    C{match} is an option of every behavior, on every surface.
    """

    def test_commandLineFlag(self) -> None:
        """
        C{--behavior-error-match} sets the option; the protocol's fields
        are checked at start.
        """
        config = tap.Options()
        config.parseOptions([
            "--backend", "127.0.0.1:80", "--protocol", "http", "--behavior", "10:error",
            "--behavior-error-match", "method=POST path=/api/*"])
        self.assertIn(config.table.behaviors["error"], config.table.matches)

    def test_commandLineErrors(self) -> None:
        """
        An unknown field, a field the protocol lacks and a bad regular
        expression are usage errors.
        """
        for text, expected in [
            ("verb=SELECT", "does not exist for protocol http"),
            ("flavour=x", "unknown match field"),
            ("path~[", "invalid regular expression"),
        ]:
            config = tap.Options()
            e = self.assertRaises(usage.UsageError, config.parseOptions, [
                "--backend", "127.0.0.1:80", "--protocol", "http",
                "--behavior", "10:error", "--behavior-error-match", text])
            self.assertIn(expected, str(e))

    def test_configFile(self) -> None:
        """
        C{match = ...} in a C{[behavior:NAME]} section sets the option.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[vaurien]\nbackend = 127.0.0.1:6379\nprotocol = redis\n"
                    "behavior = 10:error\n[behavior:error]\nmatch = command=SET key=user:*\n")
        config = tap.Options()
        config.parseOptions(["--config", path])
        self.assertEqual(
            config.table.behaviors["error"].settings["match"], "command=SET key=user:*")


class ProxyMatchTests(SynchronousTestCase):
    """
    In the proxy (in memory), an aimed error hits matching requests only.
    """

    def test_errorOnPostOnly(self) -> None:
        """
        With C{error} matching C{POST /api/*}, a GET reaches the backend
        and a matching POST is answered with an error by the proxy.
        """
        harness = Harness(
            "100:error", "http", REQUEST_SCOPE,
            {"error": {"match": "method=POST path=/api/*", "codes": [503]}})
        client, backend = harness.pair()
        client.send(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(backend.received().startswith(b"GET /api/x"))
        backend.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertTrue(client.received().startswith(b"HTTP/1.1 200"))
        client.send(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nz")
        self.assertEqual(backend.received(), b"")
        self.assertTrue(client.received().startswith(b"HTTP/1.1 503"))


class DocsExampleTests(SynchronousTestCase):
    """
    The command lines of C{docs/matching.rst} are valid.
    """

    def test_commandLinesParse(self) -> None:
        """
        Every C{twistd -n vaurien} example of the matching guide parses,
        and its table has the match it gives.
        """
        docs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "docs", "matching.rst")
        with open(docs) as f:
            commands = [line.strip() for line in f if line.strip().startswith("twistd -n vaurien")]
        self.assertEqual(len(commands), 5)
        for command in commands:
            argv = shlex.split(command)[3:]
            config = tap.Options()
            config.parseOptions(argv)
            given = argv[argv.index(next(a for a in argv if a.endswith("-match"))) + 1]
            self.assertIn(given, [m.text for m in config.table.matches.values()])


class ProxyHeadTests(SynchronousTestCase):
    """
    Fields read from a request's first bytes, in the proxy (in memory).
    """

    def test_headerPresence(self) -> None:
        """
        An error aimed at requests with an C{X-Canary} header answers them
        and passes the others to the backend.
        """
        harness = Harness("100:error", "http", REQUEST_SCOPE,
                          {"error": {"match": "header.x-canary=*", "codes": [502]}})
        client, backend = harness.pair()
        client.send(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Canary: 1\r\n\r\n")
        self.assertEqual(backend.received(), b"")
        self.assertTrue(client.received().startswith(b"HTTP/1.1 502"))
        client.send(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(backend.received().startswith(b"GET /b"))

    def test_redisKey(self) -> None:
        """
        An error aimed at C{SET user:*} answers C{SET user:1} and passes
        C{SET order:1}.
        """
        harness = Harness("100:error", "redis", REQUEST_SCOPE,
                          {"error": {"match": "command=SET key=user:*"}})
        client, backend = harness.pair()
        client.send(b"*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$1\r\nx\r\n")
        self.assertEqual(backend.received(), b"")
        self.assertTrue(client.received().startswith(b"-"))
        client.send(b"*3\r\n$3\r\nSET\r\n$7\r\norder:1\r\n$1\r\nx\r\n")
        self.assertTrue(backend.received().startswith(b"*3"))
