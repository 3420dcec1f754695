"""
Helpers for the control plane's tests: a control server built by
C{twistd vaurien}'s own option parsing and service maker, on the real
reactor and ephemeral ports of 127.0.0.1; an HTTP client for it; echo and
greeting backends; clients that stream bytes or lines through a proxy;
C{twistd vaurien} run as a child process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

import treq
from treq.client import HTTPClient

from txvaurien import logs, tap
from txvaurien.test.helpers import testRegistry
from txvaurien.test.latencyprobe import echoExchange
from txvaurien.test.servers import listenBackend


class Echo(protocol.Protocol):
    """
    Sends back what it receives, and half-closes when its peer does.
    """

    def connectionMade(self) -> None:
        self.factory.live.add(self)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Any) -> None:
        factory = self.factory
        factory.live.discard(self)
        if not factory.live:
            waiting, factory.waiting = factory.waiting, []
            for d in waiting:
                d.callback(None)


class EchoFactory(protocol.Factory):
    protocol = Echo

    def __init__(self) -> None:
        self.live: set[Echo] = set()
        self.waiting: list[defer.Deferred] = []

    def whenIdle(self) -> defer.Deferred:
        if not self.live:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        return d


def echoServer(case: Any) -> int:
    """
    An echo backend on an ephemeral port, stopped (and its connections
    closed) when the test ends.

    @return: its port.
    """
    factory = EchoFactory()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")

    def stop() -> defer.Deferred:
        for live in list(factory.live):
            live.transport.abortConnection()
        return defer.gatherResults([
            defer.maybeDeferred(port.stopListening), factory.whenIdle()])

    case.addCleanup(stop)
    return port.getHost().port


#: What the backend of L{greeterServer} sends.
GREETING = b"other backend\n"


class _Greeter(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(GREETING)


def greeterServer(case: Any) -> int:
    """
    A backend on an ephemeral port that sends L{GREETING} on every
    connection (a backend other than the echo one), stopped when the test
    ends.

    @return: its port.
    """
    return listenBackend(case, protocol.Factory.forProtocol(_Greeter))


class Control:
    """
    A running C{twistd vaurien --http} service tree, in process.

    @ivar service: the top service.
    @ivar manager: the L{txvaurien.control.manager.ProxyManager}.
    @ivar url: the control API's base URL.
    """

    def __init__(self, case: Any, argv: list[str], registry: Any = None) -> None:
        options = tap.buildOptions(registry or testRegistry())()
        options.parseOptions([
            "--http", "--http-port", "0", "--log-level", "warn",
            "--shutdown-grace", "0", "--seed", "7", *argv])
        self.options = options
        self.service = tap.makeService(options, reactor)
        case.addCleanup(logs.setLevel, "info")
        self.service.startService()
        case.addCleanup(self.stop)
        self.manager = self.service.getServiceNamed("proxies")
        self.control = self.service.getServiceNamed("control")
        self.port = self.control.address.port
        self.url = "http://127.0.0.1:{}".format(self.port)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 64
        self.pool.retryAutomatically = False
        self.http = HTTPClient(Agent(reactor, pool=self.pool))

    def stop(self) -> defer.Deferred:
        d = self.pool.closeCachedConnections()
        d.addCallback(lambda _: self.service.stopService())
        return d

    def proxyPort(self, name: str = "vaurien") -> int:
        """
        The port a proxy listens on.
        """
        return int(self.manager.get(name).service.ports[0].getHost().port)

    @defer.inlineCallbacks
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """
        Send a request; C{body} is sent as JSON, C{raw} as is.

        @return: a L{Deferred} firing with C{(status, headers, body bytes)}.
        """
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
        sent = Headers({b"user-agent": [b"txvaurien-tests"]})
        for name, value in (headers or {}).items():
            sent.setRawHeaders(name.encode("ascii"), [value.encode("latin-1")])
        response = yield self.http.request(
            method, self.url + path, data=data, headers=sent)
        content = yield treq.content(response)
        return response.code, response.headers, content

    @defer.inlineCallbacks
    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Generator[Any, Any, Any]:
        """
        Send a request and decode the JSON answer.

        @return: C{(status, value)}.
        """
        status, _, content = yield self.request(method, path, body, **kw)
        return status, (json.loads(content) if content.strip() else None)


class EchoControlTestCase(TestCase):
    """
    Tests of a control server whose default proxy, on an ephemeral port,
    forwards to an echo backend.

    @ivar argv: more arguments of the control server.
    @ivar backend: the echo backend's port.
    @ivar control: the L{Control}.
    """

    timeout = 60
    argv: list[str] = []

    def setUp(self) -> None:
        self.backend, self.control = echoControl(self, self.argv)


def echoControl(case: Any, argv: list[str]) -> tuple[int, Control]:
    """
    An echo backend, and a control server with arguments C{argv} whose
    default proxy, on an ephemeral port, forwards to it.

    @return: the echo backend's port and the L{Control}.
    """
    backend = echoServer(case)
    control = Control(case, [
        "--backend", "127.0.0.1:{}".format(backend),
        "--proxy", "tcp:0:interface=127.0.0.1", *argv])
    return backend, control


class Streamer(protocol.Protocol):
    """
    Sends C{payload} through a proxy to an echo backend and collects the
    echo; C{done} fires with what came back once it has all of it (or the
    connection closed).
    """

    def __init__(self, payload: bytes, chunk: int = 16384) -> None:
        self.payload = payload
        self.chunk = chunk
        self.received: list[bytes] = []
        self.count = 0
        self.done: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.offset = 0
        self._sendSome()

    def _sendSome(self) -> None:
        if self.offset >= len(self.payload) or self.transport is None:
            return
        piece = self.payload[self.offset:self.offset + self.chunk]
        self.offset += len(piece)
        self.transport.write(piece)
        reactor.callLater(0, self._sendSome)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        self.count += len(data)
        if self.count >= len(self.payload) and not self.done.called:
            self.done.callback(b"".join(self.received))
            self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if not self.done.called:
            self.done.callback(b"".join(self.received))
        self.closed.callback(None)


@defer.inlineCallbacks
def stream(port: int, payload: bytes, chunk: int = 16384) -> Generator[Any, Any, Any]:
    """
    Stream C{payload} through 127.0.0.1:C{port} and wait for its echo and
    the close.

    @return: a L{Deferred} firing with the bytes that came back.
    """
    streamer = Streamer(payload, chunk)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    yield endpoint.connect(protocol.Factory.forProtocol(lambda: streamer))
    echoed = yield streamer.done
    yield streamer.closed
    return echoed


def roundTrip(port: int, payload: bytes = b"ping\n", timeout: float = 10.0) -> float:
    """
    In a thread: connect to 127.0.0.1:C{port}, send C{payload}, read its
    echo, and return the seconds from sending to the last byte back.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return echoExchange(s, payload)


def refused(port: int) -> bool:
    """
    In a thread or not: whether nothing accepts on 127.0.0.1:C{port}.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def portFree(port: int) -> bool:
    """
    Whether a server could listen on 127.0.0.1:C{port} now (with
    C{SO_REUSEADDR}, as Twisted and Go listen, so connections still
    closing on that port do not count).
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True


TWISTD = (
    "import sys; sys.argv[0] = 'twistd'; "
    "from twisted.scripts.twistd import run; run()"
)

CONTROL_LISTENING = re.compile(rb"Control API listening on 127\.0\.0\.1:(\d+)")
PROXY_LISTENING = re.compile(rb"Proxy vaurien listening on 127\.0\.0\.1:(\d+)")


def childEnvironment() -> dict[str, str]:
    """
    The environment for a child Python that imports what this one does.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def twistdArguments(args: list[str]) -> list[str]:
    """
    The arguments of a child Python that runs C{twistd -n vaurien ARGS}.
    """
    return ["-c", TWISTD, "-n", "--pidfile=", "vaurien", *args]


class ChildOutput(protocol.ProcessProtocol):
    """
    Watches a child's output for a line matching C{pattern}; C{ready}
    fires with its first group as an C{int}.
    """

    def __init__(self, pattern: Any = CONTROL_LISTENING) -> None:
        self.pattern = pattern
        self.output = b""
        self.ready: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        match = self.pattern.search(self.output)
        if match and not self.ready.called:
            self.ready.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(AssertionError(
                "exited before it was ready:\n" + self.output.decode("utf-8", "replace")))
        self.ended.callback((reason.value.exitCode, reason.value.signal))


def _spawn(arguments: list[str], pattern: Any) -> tuple[ChildOutput, Any]:
    """
    Run C{python ARGUMENTS} as a child process.

    @return: its L{ChildOutput} and its process transport.
    """
    output = ChildOutput(pattern)
    process = reactor.spawnProcess(
        output, sys.executable, [sys.executable, *arguments], env=childEnvironment())
    return output, process


@defer.inlineCallbacks
def spawnPython(case: Any, arguments: list[str],
                pattern: Any = CONTROL_LISTENING) -> Generator[Any, Any, Any]:
    """
    Run C{python ARGUMENTS} as a child process, stopped with SIGTERM (then
    SIGKILL after 15 seconds) when the test ends; wait (by its log, not by
    sleeping) for the line matching C{pattern}.

    @return: a L{Deferred} firing with C{(port, output)}: the port in the
        line, and the L{ChildOutput}.
    """
    output, process = _spawn(arguments, pattern)

    def stop() -> Any:
        if output.ended.called:
            return None
        process.signalProcess("TERM")
        killer = reactor.callLater(15, lambda: output.ended.called or process.signalProcess("KILL"))
        return output.ended.addBoth(lambda r: killer.active() and killer.cancel())

    case.addCleanup(stop)
    port = yield output.ready
    return port, output


def spawnTwistd(case: Any, args: list[str], pattern: Any = CONTROL_LISTENING) -> defer.Deferred:
    """
    Run C{twistd -n vaurien ARGS} as a child process, as L{spawnPython}
    does.
    """
    return spawnPython(case, twistdArguments(args), pattern)


@defer.inlineCallbacks
def assertTwistdFails(case: Any, args: list[str], *messages: bytes) -> Generator[Any, Any, Any]:
    """
    Run C{twistd -n vaurien ARGS}, which must exit by itself with a
    non-zero status, print each of C{messages}, and print no traceback.

    @return: a L{Deferred} firing with its output.
    """
    output, _ = _spawn(twistdArguments(args), CONTROL_LISTENING)
    output.ready.addErrback(lambda _: None)
    code, _ = yield output.ended
    case.assertNotEqual(code, 0, output.output)
    for message in messages:
        case.assertIn(message, output.output)
    case.assertNotIn(b"Traceback", output.output)
    return output.output


class Pinger(protocol.Protocol):
    """
    A client that times echoes on one connection through a proxy.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: tuple[int, float, defer.Deferred] | None = None
        self.closed: defer.Deferred = defer.Deferred()

    def ping(self, data: bytes = b"ping\n") -> defer.Deferred:
        """
        Send C{data}; the result is the seconds until its echo is back.
        """
        d: defer.Deferred = defer.Deferred()
        self.buffer = b""
        self.waiting = (len(data), time.monotonic(), d)
        self.transport.write(data)
        return d

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is not None and len(self.buffer) >= self.waiting[0]:
            _, started, d = self.waiting
            self.waiting = None
            d.callback(time.monotonic() - started)

    def connectionLost(self, reason: Any) -> None:
        if self.waiting is not None:
            d = self.waiting[2]
            self.waiting = None
            d.errback(reason)
        self.closed.callback(None)


@defer.inlineCallbacks
def pinger(case: Any, port: int) -> Generator[Any, Any, Any]:
    """
    A connected L{Pinger} to 127.0.0.1:C{port}, closed when the test ends.
    """
    client = Pinger()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))

    def close() -> Any:
        if not client.closed.called:
            client.transport.loseConnection()
        return client.closed

    case.addCleanup(close)
    return client


class LineAsker(LineReceiver):
    """
    A client of a line protocol: each line sent gets the next line back.
    """

    delimiter = b"\n"

    def __init__(self) -> None:
        self.waiting: list[defer.Deferred] = []

    def ask(self, line: bytes) -> defer.Deferred:
        """
        Send C{line}; the result is the line that comes back.
        """
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        self.sendLine(line)
        return d

    def lineReceived(self, line: bytes) -> None:
        self.waiting.pop(0).callback(line)


@defer.inlineCallbacks
def lineAsker(case: Any, port: int) -> Generator[Any, Any, Any]:
    """
    A L{LineAsker} connected to 127.0.0.1:C{port}, disconnected when the
    test ends.
    """
    client = LineAsker()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))
    case.addCleanup(client.transport.loseConnection)
    return client
