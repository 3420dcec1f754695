"""
Tests for the twistd plugin: it is discoverable, and C{twistd -n vaurien}
and C{twist vaurien} really run a proxy.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any, Generator

from twisted.application.service import IServiceMaker
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.plugin import IPlugin, getPlugins
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txvaurien import tap

_LISTENING = re.compile(rb"Proxy vaurien listening on 127\.0\.0\.1:(\d+)")

TWISTD = (
    "import sys; sys.argv[0] = 'twistd'; "
    "from twisted.scripts.twistd import run; run()"
)


def childEnvironment() -> dict[str, str]:
    """
    The environment for a child Python that must import exactly what this
    test process imports.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


class PluginDiscoveryTests(TestCase):
    """
    The plugin is found by Twisted's plugin system.
    """

    def test_serviceMakerDiscoverable(self) -> None:
        """
        C{getPlugins(IServiceMaker)} finds a service maker named
        C{vaurien} whose options are txvaurien's and which provides
        L{IServiceMaker} and L{IPlugin}.
        """
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "vaurien"]
        self.assertTrue(makers, "no 'vaurien' IServiceMaker plugin found")
        maker = makers[0]
        verifyObject(IServiceMaker, maker)
        self.assertTrue(IPlugin.providedBy(maker))
        self.assertIs(maker.options, tap.Options)
        self.assertIn("chaos", maker.description)


class _Output(protocol.ProcessProtocol):
    """
    Watches a child's output for the listening line.
    """

    def __init__(self) -> None:
        self.output = b""
        self.listening: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        match = _LISTENING.search(self.output)
        if match and not self.listening.called:
            self.listening.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        if not self.listening.called:
            self.listening.errback(AssertionError(
                "exited before listening:\n" + self.output.decode("utf-8", "replace")))
        self.ended.callback((reason.value.exitCode, reason.value.signal))


class _Greeter(LineReceiver):
    """
    A backend that answers each line with C{echo: line}.
    """

    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(b"echo: " + line)


class _Asker(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.answers: defer.Deferred = defer.Deferred()
        self.lines: list[bytes] = []

    def connectionMade(self) -> None:
        self.sendLine(b"hello")
        self.sendLine(b"through the proxy")

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) == 2:
            self.answers.callback(self.lines)


class RunTests(TestCase):
    """
    The plugin run by the real commands, as a subprocess.
    """

    timeout = 60

    def backend(self) -> int:
        factory = protocol.Factory.forProtocol(_Greeter)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def runProxy(self, command: list[str]) -> Generator[Any, Any, Any]:
        """
        Start C{command}, wait for it to listen (by its log line, not by
        sleeping), push lines through it to a real backend, then stop it
        with SIGTERM and check it exits cleanly.
        """
        output = _Output()
        process = reactor.spawnProcess(
            output, sys.executable, [sys.executable] + command,
            env=childEnvironment())

        def kill() -> None:
            if not output.ended.called:
                process.signalProcess("KILL")

        self.addCleanup(kill)
        port = yield output.listening
        asker = _Asker()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        client = yield endpoint.connect(protocol.Factory.forProtocol(lambda: asker))
        lines = yield asker.answers
        self.assertEqual(lines, [b"echo: hello", b"echo: through the proxy"])
        client.transport.loseConnection()
        process.signalProcess(signal.SIGTERM)
        code, sig = yield output.ended
        # twistd re-raises the signal it stopped on once it has shut down.
        self.assertIn((code, sig), [(0, None), (None, signal.SIGTERM)],
                      output.output.decode("utf-8", "replace"))
        self.assertIn(b"closed after", output.output)
        self.assertIn(b"Main loop terminated", output.output)

    def test_twistdRunsProxy(self) -> None:
        """
        C{twistd -n vaurien --backend host:port} proxies bytes to the
        backend and stops cleanly on SIGTERM.
        """
        return self.runProxy([
            "-c", TWISTD, "-n", "--pidfile=", "vaurien",
            "--proxy", "tcp:0:interface=127.0.0.1",
            "--backend", "127.0.0.1:{}".format(self.backend()),
        ])

    def test_twistRunsProxy(self) -> None:
        """
        C{twist vaurien} works the same.
        """
        return self.runProxy([
            "-m", "twisted", "--log-format=text", "vaurien",
            "--proxy", "tcp:0:interface=127.0.0.1",
            "--backend", "tcp:host=127.0.0.1:port={}".format(self.backend()),
        ])

    @defer.inlineCallbacks
    def test_badOptionExitsWithMessage(self) -> Generator[Any, Any, None]:
        """
        A bad option makes twistd exit non-zero with the specific message
        and no traceback.
        """
        output = _Output()
        output.listening.addErrback(lambda _: None)
        reactor.spawnProcess(
            output, sys.executable,
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "vaurien",
             "--backend", "127.0.0.1:1", "--behavior", "120:dummy"],
            env=childEnvironment())
        code, _ = yield output.ended
        self.assertNotEqual(code, 0)
        self.assertIn(b"weight 120 in '120:dummy' is not between 0 and 100", output.output)
        self.assertNotIn(b"Traceback", output.output)

    @defer.inlineCallbacks
    def test_portInUseExitsWithMessage(self) -> Generator[Any, Any, None]:
        """
        A port already in use makes twistd exit non-zero with a one-line
        reason rather than a traceback.
        """
        taken = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        output = _Output()
        output.listening.addErrback(lambda _: None)
        reactor.spawnProcess(
            output, sys.executable,
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "vaurien",
             "--proxy", "tcp:{}:interface=127.0.0.1".format(taken.getHost().port),
             "--backend", "127.0.0.1:1"],
            env=childEnvironment())
        code, _ = yield output.ended
        self.assertNotEqual(code, 0)
        self.assertIn(b"Address already in use", output.output)
        self.assertNotIn(b"Traceback", output.output)
