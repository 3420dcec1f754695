"""
The protocol contract every built-in handler keeps (L{txvaurien.interfaces}):
a bound on what a framer holds against garbage, one meta key on the empty
responses owed at the end of a stream, and the bases that implement it
(L{txvaurien.protocols.base}).
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from txvaurien.frames import DOWNSTREAM, REQUEST, RESPONSE, UNANSWERED, UPSTREAM, Frame, Message
from txvaurien.interfaces import IFramer, IProtocolSession
from txvaurien.protocols import _mysqlpg
from txvaurien.protocols.base import Framer, Session
from txvaurien.protocols.http import HTTP
from txvaurien.protocols.memcache import Memcache
from txvaurien.protocols.mysql import MySQL
from txvaurien.protocols.postgresql import PostgreSQL
from txvaurien.protocols.redis import Redis
from txvaurien.protocols.smtp import SMTP

HANDLERS = {"http": HTTP, "memcache": Memcache, "mysql": MySQL, "postgresql": PostgreSQL,
            "redis": Redis, "smtp": SMTP}

CHUNK = 4096


def newSession(name: str) -> Any:
    """
    A session of the handler C{name}, on a stand-in connection (only its
    proxy's name and its id are used, for logs).
    """
    connection = SimpleNamespace(id=0, proxy=SimpleNamespace(name="test"))
    return HANDLERS[name]().configure({}).buildSession(connection)


def request(session: Any, command: str = "GET") -> Message:
    """
    A request the backend was sent (and has not answered).
    """
    message = Message(UPSTREAM, 0, REQUEST, {"command": command, "method": command})
    session.requestSent(message)
    return message


class BoundedHoldingMixin(SynchronousTestCase):
    """
    Helpers for the tests of the bound on held bytes.
    """

    def feedGarbage(
        self, framer: Any, lead: bytes, filler: bytes = b"x"
    ) -> tuple[list[Frame], bytes]:
        """
        Feed C{framer} C{lead} then C{filler} repeated well past its
        C{lineLimit}, in chunks of L{CHUNK} bytes, checking after each one
        that it holds at most C{lineLimit} bytes and that the frames and
        what is held add up to the bytes fed.

        @return: the frames and the bytes fed.
        """
        data = lead + filler * ((3 * framer.lineLimit) // len(filler) + CHUNK)
        frames: list[Frame] = []
        for start in range(0, len(data), CHUNK):
            frames.extend(framer.feed(data[start:start + CHUNK]))
            self.assertLessEqual(len(framer.held), framer.lineLimit)
        self.assertEqual(
            b"".join(f.data for f in frames) + framer.held, data)
        return frames, data


class BoundedHoldingTests(BoundedHoldingMixin):
    """
    Every handler declares C{lineLimit} on its framers and never holds more
    than that, whatever garbage it is fed.
    """

    def test_redisLongArgumentBeforeTheDecision(self) -> None:
        """
        A C{CLIENT} command whose second argument is too long to capture is
        opened as it arrives, not held until its third argument (which once
        held the whole argument, without limit).
        """
        session = newSession("redis")
        frames, data = self.feedGarbage(
            session.upstream, b"*3\r\n$6\r\nCLIENT\r\n$100000000\r\n")
        self.assertEqual(frames[0].message.meta["command"], "CLIENT")
        self.assertEqual(len(frames[0].data), CHUNK)
        self.assertFalse(session.upstream.raw)

    def test_redisInlineGarbage(self) -> None:
        """
        Garbage without a line end is an inline command too long: held up
        to the limit, then the direction passes unframed.
        """
        session = newSession("redis")
        self.feedGarbage(session.upstream, b"")
        self.assertTrue(session.upstream.raw)

    def test_redisReplyGarbage(self) -> None:
        """
        A reply line that never ends does not make the reply framer hold it.
        """
        session = newSession("redis")
        request(session)
        frames, _ = self.feedGarbage(session.downstream, b"+")
        self.assertEqual(frames[0].message.kind, RESPONSE)

    def test_memcacheCommandGarbage(self) -> None:
        """
        A command line longer than the limit makes the direction pass
        unframed.
        """
        session = newSession("memcache")
        self.feedGarbage(session.upstream, b"")
        self.assertTrue(session.upstream.raw)

    def test_memcacheResponseGarbage(self) -> None:
        """
        A response line that never ends is held up to the limit, then
        framed as the response it starts.
        """
        session = newSession("memcache")
        request(session, "version")
        frames, _ = self.feedGarbage(session.downstream, b"VERSION ")
        self.assertEqual(frames[0].message.kind, RESPONSE)

    def test_httpHeadGarbage(self) -> None:
        """
        A request head that never ends is held up to the limit, then the
        rest of the stream passes unframed.
        """
        session = newSession("http")
        self.feedGarbage(session.upstream, b"GET / HTTP/1.1\r\nX: ")
        self.assertIsNotNone(session.upstream.invalid)

    def test_httpResponseHeadGarbage(self) -> None:
        """
        A response head that never ends is not held past the limit either.
        """
        session = newSession("http")
        request(session)
        self.feedGarbage(session.downstream, b"HTTP/1.1 200 OK\r\nX: ")
        self.assertIsNotNone(session.downstream.invalid)

    def test_smtpCommandGarbage(self) -> None:
        """
        A command line longer than the limit is not SMTP.
        """
        session = newSession("smtp")
        self.feedGarbage(session.upstream, b"HELO ")
        self.assertIsNotNone(session.upstream.invalid)

    def test_smtpReplyGarbage(self) -> None:
        """
        A reply line longer than the limit is not SMTP either.
        """
        session = newSession("smtp")
        self.feedGarbage(session.downstream, b"220-")
        self.assertIsNotNone(session.downstream.invalid)

    def test_mysqlHugePacket(self) -> None:
        """
        A packet of the largest length streams through: the framer holds
        its header and the start of its body at most.
        """
        session = newSession("mysql")
        frames, _ = self.feedGarbage(session.downstream, b"\xff\xff\xff\x00\x0a")
        self.assertTrue(frames)

    def test_postgresqlHugeMessage(self) -> None:
        """
        A startup message of the largest length is not PostgreSQL; a query
        of the largest length after a startup streams through.  Neither is
        held past the limit.
        """
        session = newSession("postgresql")
        self.feedGarbage(session.upstream, b"\x3f\xff\xff\xff")
        self.assertTrue(session.raw)
        session = newSession("postgresql")
        body = b"user\x00postgres\x00\x00"
        session.upstream.feed(struct.pack("!II", 8 + len(body), 196608) + body)
        session.downstream.feed(b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I")
        frames, _ = self.feedGarbage(session.upstream, b"Q\x3f\xff\xff\xff")
        self.assertEqual((frames[0].message.kind, frames[0].message.meta["command"]),
                         (REQUEST, "Query"))
        self.assertFalse(session.raw)

    def test_declared(self) -> None:
        """
        Every framer of every handler declares a positive C{lineLimit}.
        """
        for name in HANDLERS:
            session = newSession(name)
            for framer in (session.upstream, session.downstream):
                self.assertIsInstance(framer, Framer)
                self.assertGreater(framer.lineLimit, 0)


class UnansweredTests(SynchronousTestCase):
    """
    At the end of the stream every handler answers the requests still
    waiting with an empty response that carries L{UNANSWERED}.
    """

    def test_everyHandler(self) -> None:
        """
        For each handler, a request the backend never answered gets an
        empty response marked L{UNANSWERED} from the downstream framer's
        C{finish}, and nothing waits any more.
        """
        for name in HANDLERS:
            session = newSession(name)
            if name == "mysql":
                session.phase = "command"
            elif name == "smtp":
                session.downstream.feed(b"220 ready\r\n")
            elif name == "postgresql":
                session.startup = False
            sent = request(session)
            frames = session.downstream.finish()
            owed = [f for f in frames if f.message.request is sent]
            self.assertEqual(len(owed), 1, name)
            self.assertEqual((owed[0].data, owed[0].first, owed[0].last), (b"", True, True))
            self.assertTrue(owed[0].message.meta[UNANSWERED], name)
            self.assertEqual(list(session.sent), [], name)


class BaseTests(SynchronousTestCase):
    """
    L{Framer} and L{Session}.
    """

    def test_interfaces(self) -> None:
        """
        L{Framer} implements L{IFramer}; every built-in session provides
        L{IProtocolSession} and its framers L{IFramer}.
        """
        self.assertTrue(verifyClass(IFramer, Framer))
        for name in HANDLERS:
            session = newSession(name)
            self.assertIsInstance(session, Session)
            self.assertTrue(verifyObject(IProtocolSession, session))
            self.assertTrue(verifyObject(IFramer, session.upstream))
            self.assertTrue(verifyObject(IFramer, session.downstream))

    def test_hotMethodsCopiedPerSubclass(self) -> None:
        """
        A subclass of L{Framer} gets its own copy of every method its bases
        list in C{hot}, without a decorator; a method it defines is its
        own.
        """

        class Cutter(Framer):
            hot = ("cut",)

            def cut(self) -> int:
                return self.count

        class Up(Cutter):
            pass

        class Down(Cutter):
            def newMessage(self, *args: Any, **kwargs: Any) -> Message:
                return Framer.newMessage(self, *args, **kwargs)

        self.assertIn("cut", vars(Up))
        self.assertIsNot(Up.cut.__code__, Cutter.cut.__code__)
        self.assertIsNot(Up.newMessage.__code__, Framer.newMessage.__code__)
        self.assertIsNot(Down.cut.__code__, Up.cut.__code__)
        self.assertIs(vars(Down)["newMessage"].__code__, Down.newMessage.__code__)
        self.assertEqual(Up(None).cut(), 0)

    def test_sqlHotMethods(self) -> None:
        """
        The hot methods of the length-prefixed framer are those its class
        and L{Framer} list.
        """
        self.assertEqual(set(_mysqlpg.HOT_METHODS),
                         set(_mysqlpg.UnitFramer.hot) | set(Framer.hot))

    def test_defaultFinish(self) -> None:
        """
        L{Framer.finish} frames what is held as the end of the open message,
        and a downstream framer answers what is still owed after it.
        """
        session = Session(None, SimpleNamespace(id=0, proxy=SimpleNamespace(name="t")))
        framer = Framer(session, DOWNSTREAM)
        sent = Message(UPSTREAM, 0, REQUEST, {})
        session.requestSent(sent)
        session.requestSent(Message(UPSTREAM, 1, REQUEST, {}))
        framer.openMessage(RESPONSE, {}, session.sent.popleft())
        framer.held = b"tail"
        frames = framer.finish()
        self.assertEqual([(f.data, f.message.index, f.last) for f in frames],
                         [(b"tail", 0, True), (b"", 1, True)])
        self.assertIs(frames[0].message.request, sent)
        self.assertEqual(frames[1].message.meta, {UNANSWERED: True})
