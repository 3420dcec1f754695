"""
Helpers for integration tests that put the real proxy between real
clients and real servers: a base test case, blocking socket clients (run
them in worker threads so the reactor keeps serving), the proxy's log
events and the end of its connections, the messages its framers saw, and
the check that a seed makes request-scope faults reproducible.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Generator

from twisted.internet import defer, reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from txvaurien.table import buildTable
from txvaurien.test.helpers import listenProxy, testRegistry

#: Seconds a blocking client waits on its socket, and a test for the end
#: of a connection.
TIMEOUT = 20


@implementer(ILogObserver)
class Events:
    """
    Collects log events while a test runs, and tells when a connection's
    C{closed} event was logged.
    """

    def __init__(self, case: TestCase) -> None:
        self.case = case
        self.events: list[dict[str, Any]] = []
        self._waiting: list[tuple[Callable[[dict[str, Any]], bool], defer.Deferred]] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        for entry in list(self._waiting):
            match, d = entry
            if match(event):
                self._waiting.remove(entry)
                reactor.callLater(0, d.callback, event)

    def __iter__(self) -> Any:
        return iter(self.events)

    def closed(self, proxy: Any) -> list[dict[str, Any]]:
        """
        The C{closed} events of C{proxy}'s connections.
        """
        return [e for e in self.events
                if e.get("event") == "closed" and e.get("proxy") == proxy.name
                and e.get("log_namespace") == "txvaurien.proxy"]

    def failures(self) -> list[dict[str, Any]]:
        """
        Events that report a bug (a traceback).
        """
        return [e for e in self.events if "log_failure" in e]

    def whenClosed(self, proxy: Any, count: int = 1) -> defer.Deferred:
        """
        Fire once C{count} connections of C{proxy} were logged closed; fail
        after L{TIMEOUT} seconds.
        """
        if len(self.closed(proxy)) >= count:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()

        def match(event: dict[str, Any]) -> bool:
            return (event.get("event") == "closed" and event.get("proxy") == proxy.name
                    and len(self.closed(proxy)) >= count)

        self._waiting.append((match, d))
        return d.addTimeout(TIMEOUT, reactor)

    @defer.inlineCallbacks
    def assertForgotten(self, proxy: Any) -> Generator[Any, Any, None]:
        """
        Wait until C{proxy} logged the end of a connection, then check that
        it has no connection left, logged exactly one end, and logged no
        bug.
        """
        yield self.whenClosed(proxy)
        self.case.assertEqual(proxy.connections, {})
        self.case.assertEqual(len(self.closed(proxy)), 1)
        self.case.assertEqual(self.failures(), [])


def connect(port: int, protocol: Protocol) -> defer.Deferred:
    """
    Connect C{protocol} to 127.0.0.1:C{port}.

    @return: a L{defer.Deferred} firing with C{protocol} once connected.
    """
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)


def whenFinished(proxy: Any, count: int = 1) -> defer.Deferred:
    """
    Fire once C{count} more connections of C{proxy} have finished (left
    its C{connections}, their timers cancelled).
    """
    d: defer.Deferred = defer.Deferred()
    original = proxy.connectionFinished
    finished: list[Any] = []

    def spy(connection: Any) -> None:
        original(connection)
        finished.append(connection)
        if len(finished) == count and not d.called:
            d.callback(finished)

    proxy.connectionFinished = spy
    return d


def recordMessages(proxy: Any) -> list[Any]:
    """
    Record every message the framers of C{proxy}'s future connections
    start, in order.

    @return: the list the L{txvaurien.frames.Message}s are appended to.
    """
    messages: list[Any] = []
    handler = proxy.handler
    build = handler.buildSession

    def recording(framer: Any) -> None:
        for name in ("feed", "finish"):
            original = getattr(framer, name)

            def wrapper(*args: Any, original: Any = original) -> Any:
                frames = original(*args)
                messages.extend(frame.message for frame in frames if frame.first)
                return frames

            setattr(framer, name, wrapper)

    def buildSession(connection: Any) -> Any:
        session = build(connection)
        recording(session.upstream)
        recording(session.downstream)
        return session

    handler.buildSession = buildSession
    return messages


class RealServerTestCase(TestCase):
    """
    Tests that talk to a real server through proxies speaking
    L{protocol}.  A subclass's C{setUp} sets C{self.server} (anything
    with a C{port}).
    """

    timeout = 120
    protocol: str
    server: Any

    def proxy(self, behavior: str = "100:dummy", **kwargs: Any) -> Any:
        """
        A proxy to the server, with C{behavior} (see L{listenProxy}).
        """
        return listenProxy(self, self.server.port, behavior, protocol=self.protocol, **kwargs)

    def inThread(self, f: Callable[..., Any], *args: Any) -> defer.Deferred:
        return threads.deferToThread(f, *args)

    def liveSession(self, proxy: Any) -> Any:
        """
        The protocol session of C{proxy}'s only connection.
        """
        [connection] = proxy.connections
        return connection.session

    def setTable(self, proxy: Any, spec: str) -> None:
        """
        Give C{proxy} a new request-scope behavior table.
        """
        proxy.setTable(buildTable(spec, testRegistry(), None, "request"))

    @defer.inlineCallbacks
    def failedQueries(self, work: Callable[[], Any],
                      codes: set[Any]) -> Generator[Any, Any, Any]:
        """
        Run C{work} in a thread; it returns what L{numberedQueries} does.
        Every query that did not fail must have answered its own row.

        @param codes: the codes of the failures are added to it.
        @return: a L{defer.Deferred} firing with the indexes of the queries
            that failed.
        """
        failed, found, wrong = yield self.inThread(work)
        self.assertEqual(wrong, [])
        codes.update(found)
        return failed


class SeededQueryTests:
    """
    Request-scope faults on the queries of a SQL client, reproducible by
    seed: a mixin for a L{RealServerTestCase} whose C{failures(behavior,
    seed, codes)} runs 100 numbered queries (see L{numberedQueries}) on
    one connection through a new proxy and fires with the indexes of
    those that failed, adding their error codes to C{codes}.

    @ivar errorCode: the code of the errors of the C{error} behavior (the
        protocol's default).
    """

    errorCode: Any

    @defer.inlineCallbacks
    def test_requestScopeSubsetIsReproducible(self) -> Generator[Any, Any, Any]:
        """
        Under request scope, C{50:error} with a fixed seed fails a subset
        of 100 queries on one connection, the same subset on a second run
        (another seed, another subset), with the protocol's default error
        code; every other query returns its own data.
        """
        codes: set[Any] = set()
        yield assertSeededSubset(self, lambda seed: self.failures("50:error", seed, codes),
                                 7, 8)
        self.assertEqual(codes, {self.errorCode})

    @defer.inlineCallbacks
    def test_requestScopeSwallow(self) -> Generator[Any, Any, Any]:
        """
        The same with C{50:swallow}, whose failures all carry one code.
        """
        codes: set[Any] = set()
        yield assertSeededSubset(self, lambda seed: self.failures("50:swallow", seed, codes),
                                 3)
        self.assertEqual(len(codes), 1, codes)


def numberedQueries(query: Callable[[int], Any], error: type[BaseException],
                    code: Callable[[Any], Any],
                    count: int = 100) -> tuple[list[int], set[Any], list[Any]]:
    """
    In a thread: call C{query(i)} for each C{i} below C{count}; each should
    answer the row C{(i, "v<i>")} or raise C{error}.

    @param code: the code of an error.
    @return: the indexes of the queries that raised, their codes, and the
        wrong answers as C{(index, row)}.
    """
    failed: list[int] = []
    codes: set[Any] = set()
    wrong: list[Any] = []
    for i in range(count):
        try:
            row = query(i)
        except error as e:
            failed.append(i)
            codes.add(code(e))
            continue
        if row != (i, "v%d" % i):
            wrong.append((i, row))
    return failed, codes, wrong


def storeAndGetFailures(case: TestCase, responses: list[Any], failing: Callable[[Any], bool],
                        stored: Any, missing: Any, value: Callable[[int], Any]) -> list[int]:
    """
    Check the responses to pipelined pairs of commands, store key C{n}
    then get key C{n} for each C{n}: those for which C{failing} holds are
    errors; a store that did not fail answered C{stored} (of the same
    type); a get answered C{value(n)}, or, if its store failed, C{missing}
    or the value an earlier run left.

    @return: the indexes of the responses that were errors.
    """
    failed: list[int] = []
    for i, response in enumerate(responses):
        if failing(response):
            failed.append(i)
        elif i % 2 == 0:
            case.assertEqual((type(response), response), (type(stored), stored))
        elif i - 1 in failed:
            case.assertIn(response, (missing, value(i // 2)))
        else:
            case.assertEqual(response, value(i // 2))
    return failed


@defer.inlineCallbacks
def assertSeededSubset(case: TestCase, failed: Callable[[int], defer.Deferred], seed: int,
                       otherSeed: int | None = None, low: int = 20,
                       high: int = 80) -> Generator[Any, Any, Any]:
    """
    Check that request-scope faults are reproducible: C{failed(seed)} runs
    100 requests through a new proxy seeded with C{seed} and fires with
    the requests that failed (it checks the others itself).  Two runs with
    C{seed} fail the same ones; a run with C{otherSeed}, if given, other
    ones; each run fails more than C{low} and fewer than C{high}.

    @return: a L{defer.Deferred} firing with what C{failed(seed)} gave.
    """
    runs = []
    for each in (seed, seed) if otherSeed is None else (seed, seed, otherSeed):
        subset = yield failed(each)
        case.assertTrue(low < len(subset) < high, (each, subset))
        runs.append(subset)
    case.assertEqual(runs[1], runs[0])
    if otherSeed is not None:
        case.assertNotEqual(runs[2], runs[0])
    return runs[0]


def recv(sock: socket.socket, size: int) -> bytes:
    """
    Read exactly C{size} bytes (or up to EOF).
    """
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def readAll(sock: socket.socket) -> bytes:
    """
    Read until the peer closes the connection.
    """
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def transcript(port: int, requests: bytes, timeout: float = 30) -> bytes:
    """
    Send C{requests} (which should end the session) to 127.0.0.1:C{port}
    and read until the server closes the connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(requests)
        return readAll(sock)


def countToEnd(sock: socket.socket) -> int:
    """
    Read until EOF or a reset; return how many bytes came.
    """
    total = 0
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return total
            total += len(chunk)
    except ConnectionResetError:
        return total


@defer.inlineCallbacks
def cutMidResponse(case: TestCase, port: int, request: bytes, first: int,
                   kill: Callable[[], defer.Deferred]) -> Generator[Any, Any, Any]:
    """
    Send C{request} to 127.0.0.1:C{port} on a plain socket, read the first
    C{first} bytes of the response, call C{kill} (the server's death) and
    read what still comes; then close the socket, as a client library
    does on a broken connection.

    @return: a L{defer.Deferred} firing with the first bytes and the
        number of bytes read after them.
    """
    connected = socket.create_connection(("127.0.0.1", port), timeout=30)
    case.addCleanup(connected.close)

    def askAndReadSome() -> bytes:
        connected.sendall(request)
        return recv(connected, first)

    start = yield threads.deferToThread(askAndReadSome)
    yield kill()
    rest = yield threads.deferToThread(countToEnd, connected)
    connected.close()
    return start, rest


def leaveMidRequest(port: int, whole: bytes, answer: int, partial: bytes) -> bytes:
    """
    In a thread: send a C{whole} request to 127.0.0.1:C{port} and read
    C{answer} bytes of its response (so the proxy surely has the
    connection), then the start of another request, C{partial}, and close.

    @return: the response to the whole request.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(whole)
        answered = recv(sock, answer)
        sock.sendall(partial)
    return answered

