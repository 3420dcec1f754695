"""
Real servers for integration tests: find a binary, start it on an
ephemeral port or in a temporary directory, wait until it accepts
connections, stop it.

A missing binary skips the test on a developer's machine, but fails it
under CI (C{CI=true}), where C{.ci/run} installs every server: a skipped
real-server test in CI would hide that nothing was tested.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from typing import Any, Generator, Sequence

from twisted.internet import defer, error, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import SkipTest

#: Extra directories searched for server binaries (Debian puts some
#: outside PATH).
SEARCH = [
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
]


def inCI() -> bool:
    """
    Whether the tests run under CI, where every server must be present.
    """
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def requireBinary(name: str, package: str) -> str:
    """
    The path of binary C{name}.

    @param package: the Debian package that provides it, for the message.
    @raise SkipTest: if it is missing, outside CI.
    @raise AssertionError: if it is missing under CI.
    """
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SEARCH))
    if path is None:
        message = "{} not found (Debian package {})".format(name, package)
        if inCI():
            raise AssertionError("CI=true but " + message)
        raise SkipTest(message)
    return path


def requireModule(name: str, package: str) -> Any:
    """
    Import a client library, skipping (or failing under CI) if it is
    missing.
    """
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        message = "Python module {} not installed (PyPI package {})".format(name, package)
        if inCI():
            raise AssertionError("CI=true but " + message)
        raise SkipTest(message)


def freePort() -> int:
    """
    A TCP port of 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Output(protocol.ProcessProtocol):
    """
    Collects a server's output and notices when it exits.
    """

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data[-65536:]

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value)


def waitForPort(
    reactor: Any, port: int, timeout: float = 30.0, host: str = "127.0.0.1",
    process: Any = None,
) -> defer.Deferred:
    """
    Fire once C{host:port} accepts a TCP connection; fail after
    C{timeout} seconds or if C{process} (a L{ServerProcess}) exits first.
    """

    @defer.inlineCallbacks
    def attempt() -> Generator[Any, Any, Any]:
        deadline = reactor.seconds() + timeout
        delay = 0.01
        while True:
            if process is not None and process.exited:
                raise AssertionError(
                    "server exited before listening:\n" + process.output())
            try:
                endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=2)
                connected = yield endpoint.connect(
                    protocol.Factory.forProtocol(protocol.Protocol))
            except (error.ConnectError, error.TimeoutError, error.ConnectionRefusedError):
                if reactor.seconds() > deadline:
                    raise AssertionError(
                        "nothing listens on {}:{} after {}s".format(host, port, timeout)
                        + ("\n" + process.output() if process is not None else ""))
                yield task.deferLater(reactor, delay, lambda: None)
                delay = min(delay * 2, 0.2)
                continue
            connected.transport.loseConnection()
            return None

    return attempt()


class ServerProcess:
    """
    A server run for the duration of a test.
    """

    def __init__(self, reactor: Any, argv: Sequence[str], env: dict[str, str] | None = None,
                 path: str | None = None, uid: int | None = None, gid: int | None = None):
        self.reactor = reactor
        self.argv = list(argv)
        self.env = env if env is not None else dict(os.environ)
        self.path = path
        self.uid = uid
        self.gid = gid
        self._protocol = _Output()
        self._transport: Any = None
        self.exited = False

    def start(self) -> None:
        self._transport = self.reactor.spawnProcess(
            self._protocol, self.argv[0], self.argv, env=self.env, path=self.path,
            uid=self.uid, gid=self.gid)
        self._protocol.ended.addBoth(self._ended)

    def _ended(self, result: Any) -> Any:
        self.exited = True
        return result

    def output(self) -> str:
        return self._protocol.output.decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> defer.Deferred:
        """
        Signal the server and wait for it to exit (SIGKILL after
        C{timeout} seconds).
        """
        if self.exited or self._transport is None:
            return defer.succeed(None)
        try:
            self._transport.signalProcess(sig)
        except error.ProcessExitedAlready:
            return defer.succeed(None)
        killer = self.reactor.callLater(timeout, self._kill)
        d: defer.Deferred = defer.Deferred()

        def done(_: Any) -> None:
            if killer.active():
                killer.cancel()
            d.callback(None)

        self._protocol.ended.addBoth(done)
        return d

    def _kill(self) -> None:
        try:
            self._transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass
