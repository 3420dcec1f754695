# -*- test-case-name: txvaurien.test.test_protocol_dns -*-
"""
The C{dns} protocol handler: DNS queries and responses, over UDP (one
message a datagram) and over TCP (each message after a two-byte length),
parsed with Twisted Names.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from twisted.logger import LogLevel
from twisted.names import dns
from zope.interface import implementer

from txvaurien import logs
from txvaurien.frames import DATA, DOWNSTREAM, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection, IFramer, IProtocolSession
from txvaurien.options import Choice, ListOf, OptionType, String
from txvaurien.protocols.base import ProtocolHandler

_log = logs.logger("txvaurien.protocols.dns")

#: Requests remembered while they wait for their response, per session.
MAX_PENDING = 4096

RCODES = {
    "servfail": dns.ESERVER,
    "nxdomain": dns.ENAME,
    "refused": dns.EREFUSED,
    "truncated": dns.OK,
}


class RecordType(OptionType):
    """
    A DNS record type name (C{A}, C{AAAA}, C{MX}, ...), or C{*} for any.
    """

    name = "record type"

    def parse(self, text: str) -> str:
        word = text.strip().upper()
        if word == "*" or word in dns.REV_TYPES:
            return word
        raise ValueError("expected a DNS record type (A, AAAA, MX, TXT, ...) or *, "
                         "got {!r}".format(text))


def _typeName(code: int) -> str:
    return dns.QUERY_TYPES.get(code) or dns.EXT_QUERIES.get(code) or str(code)


class _Framing:
    """
    What both framers share: parsing one message into a L{Message}.
    """

    def __init__(self, session: "DNSSession", direction: str) -> None:
        self.session = session
        self.direction = direction
        self.count = 0

    def message(self, payload: bytes) -> Message:
        index, self.count = self.count, self.count + 1
        session = self.session
        parsed = dns.Message()
        try:
            parsed.fromStr(payload)
        except Exception as e:
            session.handler.malformed[self.direction] += 1
            if logs.isEnabled(LogLevel.debug):
                _log.debug("{direction} DNS message #{index} is malformed ({error}); "
                           "passed as opaque data", direction=self.direction,
                           index=index, error=str(e) or type(e).__name__)
            return Message(self.direction, index, DATA, {"malformed": True})
        question = parsed.queries[0] if parsed.queries else None
        meta: dict[str, Any] = {
            "id": parsed.id,
            "name": question.name.name.decode("ascii", "replace").rstrip(".") if question
            else "",
            "type": _typeName(question.type) if question else "",
            "query": parsed,
        }
        if self.direction == UPSTREAM:
            if parsed.answer:
                return Message(UPSTREAM, index, DATA, meta)
            return Message(UPSTREAM, index, REQUEST, meta)
        meta["rcode"] = parsed.rCode
        request = session.sent.pop(parsed.id, None)
        return Message(DOWNSTREAM, index, RESPONSE, meta, request)


@implementer(IFramer)
class DatagramFramer(_Framing):
    """
    One datagram is one message.
    """

    def feed(self, data: bytes) -> list[Frame]:
        return [Frame(data, self.message(data))]

    def finish(self) -> list[Frame]:
        return []


@implementer(IFramer)
class StreamFramer(_Framing):
    """
    DNS over TCP: each message after its length in two bytes (RFC 1035
    4.2.2).  A message is one frame, its length prefix included; bytes of
    an incomplete message wait for the rest (65,537 bytes at most), and
    what is left at the end of the stream goes as one opaque frame.
    """

    def __init__(self, session: "DNSSession", direction: str) -> None:
        _Framing.__init__(self, session, direction)
        self.buffer = b""

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self.buffer + data if self.buffer else data
        frames = []
        start = 0
        while len(buffer) - start >= 2:
            size = int.from_bytes(buffer[start:start + 2], "big")
            end = start + 2 + size
            if len(buffer) < end:
                break
            frames.append(Frame(buffer[start:end], self.message(buffer[start + 2:end])))
            start = end
        self.buffer = buffer[start:]
        return frames

    def finish(self) -> list[Frame]:
        if not self.buffer:
            return []
        rest, self.buffer = self.buffer, b""
        index, self.count = self.count, self.count + 1
        self.session.handler.malformed[self.direction] += 1
        return [Frame(rest, Message(self.direction, index, DATA, {"malformed": True}))]


@implementer(IProtocolSession)
class DNSSession:
    """
    One client's DNS conversation, over a UDP session or a TCP connection.

    Responses are paired with requests by their DNS id (a server may
    answer out of order).  Faults act only on requests whose question
    L{matches} the handler's C{match_name} and C{match_type}.

    @ivar sent: DNS id to the request the backend received, still
        unanswered.
    """

    serverSpeaksFirst = False
    passthrough = False

    def __init__(self, handler: "DNS", connection: IConnection) -> None:
        self.handler = handler
        self.connection = connection
        self.datagram = bool(getattr(connection, "datagram", False))
        framer = DatagramFramer if self.datagram else StreamFramer
        self.upstream = framer(self, UPSTREAM)
        self.downstream = framer(self, DOWNSTREAM)
        self.sent: dict[int, Message] = {}

    def matches(self, request: Message) -> bool:
        """
        Whether faults may act on C{request}: a well-formed query whose
        name matches C{match_name} and type C{match_type}.
        """
        meta = request.meta
        if request.kind != REQUEST or "query" not in meta:
            return False
        settings = self.handler.settings
        types = settings["match_type"]
        if "*" not in types and meta["type"] not in types:
            return False
        name = meta["name"].lower()
        return any(fnmatch.fnmatchcase(name, pattern.lower().rstrip(".") or "*")
                   for pattern in settings["match_name"])

    def requestSent(self, request: Message) -> None:
        if request.kind != REQUEST:
            return
        sent = self.sent
        if len(sent) >= MAX_PENDING:
            del sent[next(iter(sent))]
        sent[request.meta["id"]] = request

    def errorReply(self, request: Message | None, reason: str, code: int | None = None) -> bytes:
        """
        An answer to C{request} with the handler's C{rcode}: SERVFAIL,
        NXDOMAIN, REFUSED, or an empty answer with the TC (truncated) bit
        set, which tells a client to ask again over TCP.  Over TCP, where
        truncation means nothing, C{truncated} answers SERVFAIL.  Nothing
        can answer a request that is not a well-formed query.
        """
        if request is None or "query" not in request.meta:
            return b""
        query = request.meta["query"]
        kind = self.handler.settings["rcode"]
        if kind == "truncated" and not self.datagram:
            kind = "servfail"
        answer = dns.Message(
            id=query.id, answer=1, opCode=query.opCode, recDes=query.recDes,
            recAv=1, rCode=RCODES[kind], trunc=int(kind == "truncated"))
        answer.queries = list(query.queries)
        data: bytes = answer.toStr()
        if not self.datagram:
            data = len(data).to_bytes(2, "big") + data
        return data

    def connectFailed(self, reason: str) -> bytes:
        return b""


class DNS(ProtocolHandler):
    """
    DNS queries and responses, over UDP (C{--proxy udp:...}) or TCP.

    Each query is a request and each response is paired with its query
    by DNS id, so behaviors act per query (request scope): C{error}
    answers a query itself with C{rcode} (SERVFAIL, NXDOMAIN, REFUSED, or
    an empty truncated answer that makes the client retry over TCP),
    C{drop} loses queries or responses so that the client times out and
    retries, C{delay} and C{latency} make them late.  Only queries whose
    name matches one of the C{match_name} globs and whose type is in
    C{match_type} draw behaviors; the others pass untouched.

    A message Twisted Names cannot parse passes unchanged, as opaque
    data no behavior acts on, and is counted (the handler's C{malformed}
    count, per direction).

    Example::

        twistd -n vaurien --proxy udp:5353:interface=127.0.0.1 \\
            --backend udp:host=127.0.0.1:port=53 --protocol dns \\
            --behavior 100:error --protocol-dns-rcode nxdomain \\
            --protocol-dns-match-name '*.example.com' --protocol-dns-match-type A
    """

    name = "dns"
    framesRequests = True
    sessionClass = DNSSession
    options = {
        "rcode": (
            "What the error behavior answers a query with: servfail, nxdomain, "
            "refused, or truncated (an empty answer with the TC bit set)",
            Choice(*RCODES),
            "servfail",
        ),
        "match_name": (
            "Glob patterns (fnmatch, case-insensitive) of the query names "
            "behaviors act on; the default matches every name",
            ListOf(String(), nonEmpty=True),
            ["*"],
        ),
        "match_type": (
            "Query types behaviors act on (A, AAAA, MX, ...); the default "
            "matches every type",
            ListOf(RecordType(), nonEmpty=True),
            ["*"],
        ),
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        ProtocolHandler.__init__(self, settings)
        self.malformed = {UPSTREAM: 0, DOWNSTREAM: 0}


__all__ = ["DNS", "DNSSession", "DatagramFramer", "RecordType", "StreamFramer"]
