"""
The worked example of C{docs/extending.rst} runs: the third-party protocol
handler of C{docs/examples/textline.py} and the third-party behavior of
C{docs/examples/refuse.py}, imported from those very files.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType, SimpleNamespace
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

import txvaurien
from txvaurien.frames import DATA, PUSH, REQUEST, RESPONSE, UNANSWERED, UPSTREAM, Message
from txvaurien.interfaces import IBehavior, IFault, IFramer, IProtocolHandler, IProtocolSession
from txvaurien.table import REQUEST_SCOPE
from txvaurien.test.helpers import Harness, listenProxy

#: Where the examples live: docs/examples of the source tree.
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    txvaurien.__file__))), "docs", "examples")

#: The dotted paths the proxy is given, as a user gives them.
HANDLER = "textline.TextLine"
BEHAVIOR = "refuse.Refuse"


def example(name: str) -> ModuleType:
    """
    Import C{docs/examples/<name>.py}, the file the documentation includes.
    """
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    module = importlib.import_module(name)
    assert os.path.dirname(os.path.abspath(module.__file__ or "")) == EXAMPLES
    return module


def newSession() -> Any:
    connection = SimpleNamespace(id=0, proxy=SimpleNamespace(name="test"))
    return example("textline").TextLine().configure({}).buildSession(connection)


class InterfaceTests(SynchronousTestCase):
    """
    The examples implement the interfaces they claim.
    """

    def test_handler(self) -> None:
        """
        The handler provides L{IProtocolHandler}, its session
        L{IProtocolSession} and both its framers L{IFramer}.
        """
        handler = example("textline").TextLine()
        self.assertTrue(verifyObject(IProtocolHandler, handler))
        session = newSession()
        self.assertTrue(verifyObject(IProtocolSession, session))
        self.assertTrue(verifyObject(IFramer, session.upstream))
        self.assertTrue(verifyObject(IFramer, session.downstream))

    def test_behavior(self) -> None:
        """
        The behavior provides L{IBehavior}, and its fault L{IFault}.
        """
        behavior = example("refuse").Refuse().configure({})
        self.assertTrue(verifyObject(IBehavior, behavior))
        stage = SimpleNamespace(behavior=behavior)
        self.assertTrue(verifyObject(IFault, behavior.buildFault(stage)))


class FramingTests(SynchronousTestCase):
    """
    The example handler's framers.
    """

    def test_requestsHeldUntilTheirLineEnds(self) -> None:
        """
        A request line is one message, framed once its line end arrives,
        with its first word upper-cased as C{command}.
        """
        session = newSession()
        frames = session.upstream.feed(b"get a\r\nde")
        self.assertEqual([(f.data, f.message.kind, f.message.meta["command"], f.message.index)
                          for f in frames], [(b"get a\r\n", REQUEST, "GET", 0)])
        self.assertEqual(session.upstream.held, b"de")
        frames = session.upstream.feed(b"l a\r\n")
        self.assertEqual([(f.data, f.message.kind, f.message.meta["command"], f.message.index)
                          for f in frames], [(b"del a\r\n", REQUEST, "DEL", 1)])

    def test_responsesPairedInOrder(self) -> None:
        """
        Each response line answers the oldest request the backend was
        sent; a line nobody asked for is a push.
        """
        session = newSession()
        first = Message(UPSTREAM, 0, REQUEST, {"command": "GET"})
        second = Message(UPSTREAM, 1, REQUEST, {"command": "SET"})
        session.requestSent(first)
        session.requestSent(second)
        frames = session.downstream.feed(b"1\r\nOK\r\nhello\r\n")
        self.assertEqual([(f.message.kind, f.message.request) for f in frames],
                         [(RESPONSE, first), (RESPONSE, second), (PUSH, None)])

    def test_finishAnswersWhatIsOwed(self) -> None:
        """
        At the end of the stream a partial line ends its message and a
        request never answered gets an empty L{UNANSWERED} response.
        """
        session = newSession()
        first = Message(UPSTREAM, 0, REQUEST, {"command": "GET"})
        second = Message(UPSTREAM, 1, REQUEST, {"command": "GET"})
        session.requestSent(first)
        session.requestSent(second)
        self.assertEqual(session.downstream.feed(b"partial"), [])
        frames = session.downstream.finish()
        self.assertEqual([(f.data, f.message.kind, f.message.request) for f in frames],
                         [(b"partial", DATA, None), (b"", RESPONSE, first),
                          (b"", RESPONSE, second)])
        self.assertTrue(frames[2].message.meta[UNANSWERED])

    def test_lineTooLong(self) -> None:
        """
        A line longer than C{lineLimit} is not the protocol: the bytes pass
        on unchanged as data, and the framer holds nothing more.
        """
        session = newSession()
        limit = session.upstream.lineLimit
        data = b"x" * (limit + 10)
        frames = session.upstream.feed(data[:limit]) + session.upstream.feed(data[limit:])
        self.assertEqual(b"".join(f.data for f in frames), data)
        self.assertEqual({f.message.kind for f in frames}, {DATA})
        self.assertTrue(session.upstream.raw)
        self.assertEqual(session.upstream.held, b"")

    def test_errorReply(self) -> None:
        """
        An error is one C{ERR} line, whatever line ends the reason holds.
        """
        self.assertEqual(newSession().errorReply(None, "no\r\nway"), b"ERR no way\r\n")


class HarnessTests(SynchronousTestCase):
    """
    The example handler and behavior in an in-memory proxy.
    """

    def test_refusedRequestAnsweredInPlace(self) -> None:
        """
        With C{refuse}, a C{DEL} never reaches the backend and its error
        comes back between the responses to the requests around it.
        """
        example("textline")
        example("refuse")
        harness = Harness(behavior="100:" + BEHAVIOR, protocol=HANDLER, scope=REQUEST_SCOPE)
        client, backend = harness.pair()
        client.send(b"GET a\r\nDEL a\r\nGET b\r\n")
        self.assertEqual(backend.received(), b"GET a\r\nGET b\r\n")
        backend.send(b"1\r\n")
        self.assertEqual(client.received(), b"1\r\nERR refused by txvaurien\r\n")
        backend.send(b"2\r\n")
        self.assertEqual(client.received(), b"2\r\n")


class _Store(LineReceiver):
    """
    A tiny line-based key-value server: C{SET k v}, C{GET k}, C{DEL k}.
    """

    delimiter = b"\r\n"

    def lineReceived(self, line: bytes) -> None:
        words = line.split()
        store = self.factory.store
        if words[:1] == [b"SET"] and len(words) == 3:
            store[words[1]] = words[2]
            self.sendLine(b"OK")
        elif words[:1] == [b"GET"] and len(words) == 2:
            self.sendLine(store.get(words[1], b"NIL"))
        elif words[:1] == [b"DEL"] and len(words) == 2:
            self.sendLine(b"%d" % (store.pop(words[1], None) is not None))
        else:
            self.sendLine(b"ERR unknown command")


class _Client(LineReceiver):
    """
    Sends lines and collects as many reply lines.
    """

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.expected = 0
        self.done: defer.Deferred[list[bytes]] = defer.Deferred()

    def ask(self, *lines: bytes) -> defer.Deferred[list[bytes]]:
        self.expected = len(lines)
        self.transport.write(b"".join(line + b"\r\n" for line in lines))
        return self.done

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) == self.expected:
            self.done.callback(self.lines)


class LoopbackTests(TestCase):
    """
    The example handler and behavior in a proxy on real sockets of
    127.0.0.1, in front of a real line-based server.
    """

    @defer.inlineCallbacks
    def test_refuseThroughTheProxy(self) -> Any:
        """
        Pipelined requests through C{--protocol textline} with
        C{refuse}: the C{DEL} is answered by the proxy with C{ERR}, in its
        place, and the server's data is untouched by it.
        """
        example("textline")
        example("refuse")
        factory = protocol.Factory.forProtocol(_Store)
        factory.store = {}
        server = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(server.stopListening)
        proxy = listenProxy(self, server.getHost().port, behavior="100:" + BEHAVIOR,
                            protocol=HANDLER)
        client = _Client()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port), client)
        self.addCleanup(client.transport.loseConnection)
        lines = yield client.ask(b"SET a 1", b"DEL a", b"GET a")
        self.assertEqual(lines, [b"OK", b"ERR refused by txvaurien", b"1"])
        self.assertEqual(factory.store, {b"a": b"1"})
