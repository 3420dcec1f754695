"""
Tests for the twistd plugin: it is discoverable, and C{twistd -n vaurien}
and C{twist vaurien} really run a proxy.
"""

from __future__ import annotations

import signal
from typing import Any, Generator

from twisted.application.service import IServiceMaker
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.plugin import IPlugin, getPlugins
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txvaurien import tap
from txvaurien.test.controlhelpers import (
    PROXY_LISTENING,
    assertTwistdFails,
    spawnPython,
    twistdArguments,
)
from txvaurien.test.servers import listenBackend


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
        return listenBackend(self, protocol.Factory.forProtocol(_Greeter))

    @defer.inlineCallbacks
    def runProxy(self, command: list[str]) -> Generator[Any, Any, Any]:
        """
        Start C{python COMMAND}, wait for it to listen (by its log line,
        not by sleeping), push lines through it to a real backend, then
        stop it with SIGTERM and check it exits cleanly.
        """
        port, output = yield spawnPython(self, command, PROXY_LISTENING)
        asker = _Asker()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        client = yield endpoint.connect(protocol.Factory.forProtocol(lambda: asker))
        lines = yield asker.answers
        self.assertEqual(lines, [b"echo: hello", b"echo: through the proxy"])
        client.transport.loseConnection()
        output.transport.signalProcess(signal.SIGTERM)
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
        return self.runProxy(twistdArguments([
            "--proxy", "tcp:0:interface=127.0.0.1",
            "--backend", "127.0.0.1:{}".format(self.backend()),
        ]))

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
        yield assertTwistdFails(
            self, ["--backend", "127.0.0.1:1", "--behavior", "120:dummy"],
            b"weight 120 in '120:dummy' is not between 0 and 100")

    @defer.inlineCallbacks
    def test_portInUseExitsWithMessage(self) -> Generator[Any, Any, None]:
        """
        A port already in use makes twistd exit non-zero with a one-line
        reason rather than a traceback.
        """
        taken = listenBackend(self, protocol.Factory())
        yield assertTwistdFails(
            self, ["--proxy", "tcp:{}:interface=127.0.0.1".format(taken),
                   "--backend", "127.0.0.1:1"],
            b"Address already in use")
