"""
Tests for L{txvaurien.reload}: C{SIGHUP} reloads the configuration file,
C{SIGUSR1} reopens the log; in process on a memory reactor, and through a
real C{twistd} child.
"""

from __future__ import annotations

import re
import signal
from typing import Any, Generator

from twisted.application.service import IService
from twisted.internet import defer, reactor, task
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien import logs, tap
from txvaurien.reload import ReloadingService
from txvaurien.test.controlhelpers import (
    CONTROL_LISTENING,
    Control,
    echoServer,
    pinger,
    spawnTwistd,
    twistdArguments,
)
from txvaurien.test.helpers import testRegistry

Options = tap.buildOptions(testRegistry())


class ReloadTests(TestCase):
    """
    L{ReloadingService.reload} on a memory reactor, the configuration file
    rewritten between loads.
    """

    def setUp(self) -> None:
        self.addCleanup(logs.setLevel, "info")
        self.path = FilePath(self.mktemp())
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def write(self, text: str) -> None:
        self.path.setContent(text.encode("utf-8"))

    def start(self, *argv: str) -> tuple[ReloadingService, MemoryReactorClock]:
        options = Options()
        options.parseOptions(["--config", self.path.path, *argv])
        memory = MemoryReactorClock()
        service = tap.makeService(options, memory)
        self.assertIsInstance(service, ReloadingService)
        assert isinstance(service, ReloadingService)
        service.signals = False
        IService(service).startService()
        self.addCleanup(service.stopService)
        return service, memory

    def logged(self, level: LogLevel) -> list[str]:
        return [e.get("log_format", "") for e in self.events if e.get("log_level") == level]

    @defer.inlineCallbacks
    def test_behaviorTableChanges(self) -> Generator[Any, Any, None]:
        """
        A new behavior and its options in the file become the proxy's
        table, and the change is logged.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nbehavior = 100:dummy\n")
        service, _ = self.start()
        factory = service.getServiceNamed("proxy").factory
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nbehavior = 50:delay\n"
                   "[behavior:delay]\nsleep = 2\n")
        changes = yield service.reload()
        self.assertEqual(factory.table.describe(), "50:delay,50:dummy")
        self.assertEqual(factory.table.behaviors["delay"].settings["sleep"], 2.0)
        self.assertIn("behavior: '100:dummy' -> '50:delay'", changes)
        self.assertTrue(any("configuration reloaded" in f for f in self.logged(LogLevel.info)))

    @defer.inlineCallbacks
    def test_commandLineStillWins(self) -> Generator[Any, Any, None]:
        """
        A value given on the command line stays, whatever the file says
        now; values only in the file change.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\ntimeout = 4\nidle_timeout = 1\n")
        service, _ = self.start("--timeout", "3")
        factory = service.getServiceNamed("proxy").factory
        self.write("[vaurien]\nbackend = 127.0.0.1:1\ntimeout = 9\nidle_timeout = 7\n")
        yield service.reload()
        self.assertEqual((factory.connectTimeout, factory.idleTimeout), (3.0, 7.0))

    @defer.inlineCallbacks
    def test_badFileKeepsRunningConfiguration(self) -> Generator[Any, Any, None]:
        """
        A file that is now invalid is logged as an error naming the
        problem, and the running configuration is kept.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nbehavior = 20:delay\n")
        service, _ = self.start()
        factory = service.getServiceNamed("proxy").factory
        table = factory.table
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nbehavior = 120:delay\n")
        result = yield service.reload()
        self.assertIsNone(result)
        self.assertIs(factory.table, table)
        errors = [e for e in self.events if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("120", errors[0]["error"])

    @defer.inlineCallbacks
    def test_listenersOnlyIfChanged(self) -> Generator[Any, Any, None]:
        """
        The proxy's port is left alone when its address did not change,
        and moved when it did.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nproxy = tcp:7001\n")
        service, memory = self.start()
        proxy = service.getServiceNamed("proxy")
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nproxy = tcp:7001\nbehavior = 10:delay\n")
        yield service.reload()
        self.assertEqual([p for p, _, _, _ in memory.tcpServers], [7001])
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nproxy = tcp:7002\n")
        changes = yield service.reload()
        self.assertEqual([p for p, _, _, _ in memory.tcpServers], [7001, 7002])
        self.assertEqual(proxy.listen, ["tcp:7002"])
        self.assertEqual(len(proxy.ports), 1)
        self.assertIn("proxy: ['tcp:7001'] -> ['tcp:7002']", changes)

    @defer.inlineCallbacks
    def test_restartOnlyOptionsWarned(self) -> Generator[Any, Any, None]:
        """
        A new seed cannot apply to a running process: it is logged as a
        warning and kept as it was.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nseed = 1\n")
        service, _ = self.start()
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nseed = 2\n")
        changes = yield service.reload()
        self.assertEqual(changes, [])
        self.assertEqual(service.getServiceNamed("proxy").factory.random.seed, 1)
        self.assertEqual(service.configuration["seed"], 1)
        self.assertTrue(any("restarts" in f for f in self.logged(LogLevel.warn)))

    @defer.inlineCallbacks
    def test_controlAPISettings(self) -> Generator[Any, Any, None]:
        """
        The control API's token and timeouts follow the file.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nhttp = true\nhttp_port = 7003\n")
        service, _ = self.start()
        site = service.getServiceNamed("control").site
        self.write("[vaurien]\nbackend = 127.0.0.1:1\nhttp = true\nhttp_port = 7003\n"
                   "http_token = abc\nhttp_request_timeout = 3\n")
        changes = yield service.reload()
        self.assertEqual((site.resource.token, site.requestTimeout), ("abc", 3.0))
        self.assertIn("http_token: None -> (hidden)", changes)

    @defer.inlineCallbacks
    def test_jsonProxyList(self) -> Generator[Any, Any, None]:
        """
        With a JSON configuration, the proxy list is applied again as
        C{POST /populate} applies one: a new entry is created, a changed one
        replaced.
        """
        self.path = FilePath(self.mktemp() + ".json")
        self.write('[{"name": "a", "listen": "127.0.0.1:7101", "upstream": "127.0.0.1:1"}]')
        service, memory = self.start()
        manager = service.getServiceNamed("proxies")
        self.assertEqual(sorted(manager.proxies), ["a"])
        self.write('[{"name": "a", "listen": "127.0.0.1:7101", "upstream": "127.0.0.1:1"},'
                   ' {"name": "b", "listen": "127.0.0.1:7102", "upstream": "127.0.0.1:2"}]')
        changes = yield service.reload()
        self.assertEqual(sorted(manager.proxies), ["a", "b"])
        self.assertIn("proxies: a, b", changes)
        self.assertEqual(sorted(p for p, _, _, _ in memory.tcpServers), [7101, 7102])

    def test_signalHandlersInstalledAndRestored(self) -> None:
        """
        Started, the service handles C{SIGHUP} (and C{SIGUSR1} if nothing
        else does); stopped, it puts the previous handlers back.
        """
        self.write("[vaurien]\nbackend = 127.0.0.1:1\n")
        before = signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGUSR1)
        options = Options()
        options.parseOptions(["--config", self.path.path])
        service = tap.makeService(options, MemoryReactorClock())
        service.startService()
        try:
            self.assertNotIn(signal.getsignal(signal.SIGHUP), (before[0], signal.SIG_DFL))
            if before[1] in (signal.SIG_DFL, None):
                self.assertNotEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)
        finally:
            service.stopService()
        self.assertEqual((signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGUSR1)),
                         before)


class _Watcher:
    """
    Watches a child's accumulated output for patterns, by wrapping its
    output callbacks.
    """

    def __init__(self, output: Any) -> None:
        self.output = output
        self.waiting: list[tuple[Any, int, defer.Deferred]] = []
        for name in ("outReceived", "errReceived"):
            original = getattr(output, name)
            setattr(output, name, self._wrap(original))

    def _wrap(self, original: Any) -> Any:
        def received(data: bytes) -> None:
            original(data)
            self._check()
        return received

    def _check(self) -> None:
        for entry in list(self.waiting):
            pattern, start, d = entry
            if pattern.search(self.output.output, start):
                self.waiting.remove(entry)
                d.callback(None)

    def waitFor(self, pattern: bytes) -> defer.Deferred:
        """
        Fire when C{pattern} appears in output from now on.
        """
        d: defer.Deferred = defer.Deferred()
        self.waiting.append((re.compile(pattern), len(self.output.output), d))
        return d


class SignalTests(TestCase):
    """
    Signals sent to a real C{twistd -n vaurien} child.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_hangUpReloadsAndStreamsSurvive(self) -> Generator[Any, Any, None]:
        """
        After C{SIGHUP}, with the file's behavior changed: the process is
        still running, a connection opened before still echoes (and its
        echo arrived before too), the change is logged, and the control
        API shows the new behavior table.
        """
        backend = echoServer(self)
        path = FilePath(self.mktemp())
        path.setContent(b"[vaurien]\nbehavior = 100:dummy\n")
        port, output = yield spawnTwistd(self, [
            "--config", path.path, "--http", "--http-port", "0",
            "--backend", "127.0.0.1:{}".format(backend),
            "--proxy", "tcp:0:interface=127.0.0.1", "--seed", "3"])
        watcher = _Watcher(output)
        control = Control.__new__(Control)
        control.url = "http://127.0.0.1:{}".format(port)
        proxyPort = yield self.proxyPort(control)
        before = yield pinger(self, proxyPort)
        yield before.ping(b"before\n")
        path.setContent(b"[vaurien]\nbehavior = 30:delay\n[behavior:delay]\nsleep = 0\n")
        reloaded = watcher.waitFor(rb"configuration reloaded from .*behavior")
        self.process(output).signalProcess("HUP")
        yield reloaded
        self.assertFalse(output.ended.called)
        yield before.ping(b"after\n")
        status, value = yield self.getJSON(control, "/behavior")
        self.assertEqual((status, value["behavior"]), (200, "30:delay"))
        self.assertIn(b"behavior: '100:dummy' -> '30:delay'", output.output)

    @defer.inlineCallbacks
    def test_hangUpWithBadFileKeepsRunning(self) -> Generator[Any, Any, None]:
        """
        After C{SIGHUP} with a broken file, the process logs the error
        and goes on with the old table.
        """
        backend = echoServer(self)
        path = FilePath(self.mktemp())
        path.setContent(b"[vaurien]\nbehavior = 20:delay\n")
        port, output = yield spawnTwistd(self, [
            "--config", path.path, "--http", "--http-port", "0",
            "--backend", "127.0.0.1:{}".format(backend),
            "--proxy", "tcp:0:interface=127.0.0.1"])
        watcher = _Watcher(output)
        path.setContent(b"[vaurien\nbehavior = 20:delay\n")
        refused = watcher.waitFor(rb"configuration not reloaded")
        self.process(output).signalProcess("HUP")
        yield refused.addTimeout(20, reactor).addErrback(
            lambda f: self.fail(output.output.decode("utf-8", "replace")))
        control = Control.__new__(Control)
        control.url = "http://127.0.0.1:{}".format(port)
        status, value = yield self.getJSON(control, "/behavior")
        self.assertEqual((status, value["behavior"]), (200, "20:delay"))

    @defer.inlineCallbacks
    def test_hangUpWithoutConfigFile(self) -> Generator[Any, Any, None]:
        """
        Without C{--config}, C{SIGHUP} (which used to kill the process at
        once) finds nothing to change, says so, and the process goes on.
        """
        port, output = yield spawnTwistd(self, ["--http", "--http-port", "0"])
        watcher = _Watcher(output)
        noted = watcher.waitFor(rb"nothing changed")
        self.process(output).signalProcess("HUP")
        yield noted
        control = Control.__new__(Control)
        control.url = "http://127.0.0.1:{}".format(port)
        status, _ = yield self.getJSON(control, "/version")
        self.assertEqual(status, 200)
        self.assertFalse(output.ended.called)

    @defer.inlineCallbacks
    def test_user1WithoutLogFileIgnored(self) -> Generator[Any, Any, None]:
        """
        Logging to standard output, C{SIGUSR1} (which would kill a
        process without a handler) is logged and the process goes on.
        """
        port, output = yield spawnTwistd(self, ["--http", "--http-port", "0"])
        watcher = _Watcher(output)
        noted = watcher.waitFor(rb"SIGUSR1")
        self.process(output).signalProcess(signal.SIGUSR1)
        yield noted
        control = Control.__new__(Control)
        control.url = "http://127.0.0.1:{}".format(port)
        status, _ = yield self.getJSON(control, "/proxies")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_user1ReopensLogFile(self) -> Generator[Any, Any, None]:
        """
        Logging to a file, C{SIGUSR1} makes twistd start a new file (the
        old one is renamed C{.1}), and the process logs on in the new one.
        """
        from txvaurien.test.controlhelpers import _spawn

        logfile = FilePath(self.mktemp())
        logfile.parent().makedirs(ignoreExistingDirectory=True)
        args = twistdArguments(["--http", "--http-port", "0"])
        args.insert(args.index("-n") + 1, "--logfile=" + logfile.path)
        output, process = _spawn(args, CONTROL_LISTENING)
        output.ready.addErrback(lambda _: None)
        self.addCleanup(lambda: output.ended.called or (
            process.signalProcess("KILL"), output.ended)[1])
        yield self.poll(lambda: CONTROL_LISTENING.search(_read(logfile)))
        port = int(CONTROL_LISTENING.search(_read(logfile)).group(1))
        process.signalProcess(signal.SIGUSR1)
        rotated = logfile.sibling(logfile.basename() + ".1")
        yield self.poll(rotated.exists)
        control = Control.__new__(Control)
        control.url = "http://127.0.0.1:{}".format(port)
        status, _ = yield self.getJSON(control, "/version")
        self.assertEqual(status, 200)
        self.assertFalse(output.ended.called)
        process.signalProcess("TERM")
        yield output.ended
        self.assertIn(b"Main loop terminated", _read(logfile))

    # Helpers

    def process(self, output: Any) -> Any:
        return output.transport

    def poll(self, condition: Any, interval: float = 0.05) -> defer.Deferred:
        """
        Fire once C{condition()} is true, checking every C{interval}
        seconds on the reactor (the test's timeout bounds it).
        """
        d: defer.Deferred = defer.Deferred()

        def check() -> None:
            if condition():
                loop.stop()
                d.callback(None)

        loop = task.LoopingCall(check)
        loop.start(interval)
        return d

    @defer.inlineCallbacks
    def getJSON(self, control: Any, path: str) -> Generator[Any, Any, Any]:
        import json

        import treq

        response = yield treq.get(control.url + path,
                                  headers={"User-Agent": "txvaurien-tests"},
                                  persistent=False)
        content = yield treq.content(response)
        return response.code, json.loads(content) if content.strip() else None

    @defer.inlineCallbacks
    def proxyPort(self, control: Any) -> Generator[Any, Any, int]:
        status, value = yield self.getJSON(control, "/proxies")
        self.assertEqual(status, 200)
        return int(value["vaurien"]["listen"].rsplit(":", 1)[1])


def _read(path: FilePath) -> bytes:
    return path.getContent() if path.exists() else b""

