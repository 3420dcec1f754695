"""
Tests for C{vaurienctl} (L{txvaurien.ctl}) against a real control server:
human and JSON output, exit codes, and the server's messages on failure.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor, threads
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien import ctl
from txvaurien import __version__
from txvaurien.test.controlhelpers import (
    Control, EchoControlTestCase, childEnvironment, refused)
from txvaurien.test.servers import freePort


class CtlTestCase(EchoControlTestCase):
    def ctl(self, *argv: str) -> defer.Deferred:
        """
        Run C{vaurienctl --host URL ARGV} in a thread.

        @return: a L{Deferred} firing with C{(status, stdout, stderr)}.
        """
        def run() -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            status = ctl.main(["--host", self.control.url, *argv], out, err)
            return status, out.getvalue(), err.getvalue()

        return threads.deferToThread(run)


class BehaviorCommandTests(CtlTestCase):
    """
    The commands of Vaurien's API.
    """

    @defer.inlineCallbacks
    def test_setAndGet(self) -> Generator[Any, Any, None]:
        """
        C{set-behavior NAME --opt k=v} sets it; C{get-behavior} shows it
        for people, or as the server's JSON with C{--json}.
        """
        result = yield self.ctl("set-behavior", "delay", "--opt", "sleep=0.5",
                                "--opt", "before=false")
        self.assertEqual(result, (0, "behavior set to delay\n", ""))
        result = yield self.ctl("get-behavior")
        self.assertEqual(result, (
            0, "delay (sleep=0.5, before=false, direction=both, toxicity=1, match=None)\n",
            ""))
        status, out, _ = yield self.ctl("--json", "get-behavior")
        self.assertEqual((status, json.loads(out)), (0, {"behavior": "delay", "options": {
            "sleep": 0.5, "before": False, "direction": "both", "toxicity": 1.0,
            "match": None}}))
        yield self.ctl("set-behavior", "20:delay,10:error", "--opt", "delay.sleep=2",
                       "--opt", "error.codes=[503]")
        status, out, _ = yield self.ctl("get-behavior")
        self.assertEqual(out.splitlines()[0], "20:delay,10:error")
        self.assertIn("    delay: sleep=2, before=true, direction=both, toxicity=1", out)
        self.assertIn("    error: codes=503,", out)

    @defer.inlineCallbacks
    def test_dashedNamesAndUnits(self) -> Generator[Any, Any, None]:
        """
        The control API takes behavior names with dashes and durations with
        units: C{set-behavior slow-close --opt delay=1.5s} sets
        C{slow_close}'s delay to 1500 (milliseconds).
        """
        result = yield self.ctl("set-behavior", "slow-close", "--opt", "delay=1.5s")
        self.assertEqual(result, (0, "behavior set to slow-close\n", ""))
        status, out, _ = yield self.ctl("--json", "get-behavior")
        self.assertEqual(json.loads(out)["options"]["delay"], 1500.0)
        result = yield self.ctl("set-behavior", "20:slow-close,10:limit-data",
                                "--opt", "slow-close.delay=2ms", "--opt", "limit-data.bytes=7")
        self.assertEqual(result[0], 0, result)
        status, out, _ = yield self.ctl("--json", "get-behavior")
        options = json.loads(out)["options"]
        self.assertEqual((options["slow_close"]["delay"], options["limit_data"]["bytes"]),
                         (2.0, 7))

    @defer.inlineCallbacks
    def test_listAndBackend(self) -> Generator[Any, Any, None]:
        """
        C{list-behaviors}, C{get-backend}, C{set-backend} and
        C{connections}.
        """
        status, out, _ = yield self.ctl("list-behaviors")
        self.assertEqual(status, 0)
        self.assertIn("delay: ", out)
        self.assertIn("    sleep (number >= 0, default 1): ", out)
        status, out, _ = yield self.ctl("--json", "list-behaviors")
        self.assertIn("latency", [b["name"] for b in json.loads(out)])
        result = yield self.ctl("get-backend")
        self.assertEqual(result, (0, "127.0.0.1:{}\n".format(self.backend), ""))
        result = yield self.ctl("set-backend", "localhost:{}".format(self.backend))
        self.assertEqual(result, (0, "backend set to localhost:{}\n".format(self.backend), ""))
        status, out, _ = yield self.ctl("--json", "get-backend")
        self.assertEqual(json.loads(out), {"backend": "localhost:{}".format(self.backend)})
        status, out, _ = yield self.ctl("connections")
        self.assertEqual((status, out), (0, "vaurien: 0 connection(s)\n"))

    @defer.inlineCallbacks
    def test_failures(self) -> Generator[Any, Any, None]:
        """
        A refused command exits with 1 and the server's message on standard
        error (as JSON with C{--json}); a wrong command line exits with 2;
        an unreachable server exits with 1 saying so.
        """
        status, out, err = yield self.ctl("set-behavior", "delay", "--opt", "sleep=-1")
        self.assertEqual((status, out, err), (
            1, "", "vaurienctl: HTTP 400: sleep: expected number >= 0, got -1.0\n"))
        status, out, err = yield self.ctl("--json", "set-backend", "nonsense:x")
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(json.loads(err), {
            "error": "backend: cannot connect to 'nonsense:x': Unknown endpoint type: "
                     "'nonsense'", "status": 400})
        status, out, err = yield self.ctl("set-behavior", "delay", "--opt", "sleep")
        self.assertEqual((status, err), (2, "vaurienctl: --opt takes KEY=VALUE, got 'sleep'\n"))
        status, out, err = yield self.ctl("toxics", "add")
        self.assertEqual(status, 2)
        self.assertIn("the following arguments are required: proxy, --type/-t", err)
        err = io.StringIO()
        port = freePort()
        status = yield threads.deferToThread(
            ctl.main, ["--host", "http://127.0.0.1:{}".format(port), "version"],
            io.StringIO(), err)
        self.assertEqual((status, err.getvalue()), (
            1, "vaurienctl: cannot reach http://127.0.0.1:{}: [Errno 111] Connection "
               "refused\n".format(port)))


class ToxiproxyCommandTests(CtlTestCase):
    """
    C{proxies}, C{toxics}, C{reset}, C{version}, C{metrics}.
    """

    @defer.inlineCallbacks
    def test_proxies(self) -> Generator[Any, Any, None]:
        """
        Proxies are created, listed, shown, disabled (port closed),
        enabled, updated, populated from a file and deleted.
        """
        upstream = "127.0.0.1:{}".format(self.backend)
        listen = freePort()
        status, out, _ = yield self.ctl(
            "proxies", "create", "p", "--upstream", upstream,
            "--listen", "127.0.0.1:{}".format(listen))
        self.assertEqual(status, 0)
        self.assertTrue(out.startswith("created p "), out)
        self.assertIn("127.0.0.1:{}".format(listen), out)
        status, out, _ = yield self.ctl("proxies", "list")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "LISTEN", "UPSTREAM", "STATE", "TOXICS"])
        self.assertEqual(lines[1].split(), ["p", "127.0.0.1:{}".format(listen), upstream,
                                            "enabled", "-"])
        status, out, _ = yield self.ctl("--json", "proxies", "disable", "p")
        self.assertEqual((status, json.loads(out)["enabled"]), (0, False))
        self.assertTrue(refused(listen))
        status, out, _ = yield self.ctl("proxies", "enable", "p")
        self.assertTrue(out.startswith("enabled p "))
        self.assertFalse(refused(listen))
        other = freePort()
        status, out, _ = yield self.ctl("proxies", "update", "p", "--listen",
                                        "127.0.0.1:{}".format(other))
        self.assertEqual(status, 0)
        self.assertFalse(refused(other))
        path = FilePath(self.mktemp())
        path.setContent(json.dumps([{"name": "q", "upstream": upstream}]).encode("ascii"))
        status, out, _ = yield self.ctl("--json", "proxies", "populate", path.path)
        self.assertEqual([p["name"] for p in json.loads(out)], ["q"])
        result = yield self.ctl("proxies", "delete", "p")
        self.assertEqual(result, (0, "deleted p\n", ""))
        status, _, err = yield self.ctl("proxies", "show", "p")
        self.assertEqual((status, err), (1, "vaurienctl: HTTP 404: proxy not found\n"))

    @defer.inlineCallbacks
    def test_toxics(self) -> Generator[Any, Any, None]:
        """
        Toxics are added (attribute values read as JSON), listed, shown,
        updated and removed; C{reset}, C{version} and C{metrics} work.
        """
        yield self.ctl("proxies", "create", "p", "--upstream",
                       "127.0.0.1:{}".format(self.backend))
        status, out, _ = yield self.ctl(
            "toxics", "add", "p", "--type", "latency", "--attribute", "latency=100",
            "-a", "distribution=normal", "--toxicity", "0.5")
        self.assertEqual((status, out.split()), (0, [
            "added", "latency_downstream", "latency", "downstream", "0.5",
            "latency=100,", "jitter=0,", "distribution=normal"]))
        status, out, _ = yield self.ctl("--json", "toxics", "list", "p")
        self.assertEqual(json.loads(out), [{
            "attributes": {"latency": 100, "jitter": 0, "distribution": "normal"},
            "name": "latency_downstream", "type": "latency", "stream": "downstream",
            "toxicity": 0.5}])
        status, out, _ = yield self.ctl(
            "--json", "toxics", "update", "p", "latency_downstream", "-a", "jitter=5")
        self.assertEqual(json.loads(out)["attributes"]["jitter"], 5)
        status, out, _ = yield self.ctl("toxics", "show", "p", "latency_downstream")
        self.assertIn("jitter=5", out)
        status, _, err = yield self.ctl("toxics", "add", "p", "-t", "bandwidth",
                                        "-a", "rate=0")
        self.assertEqual((status, err), (
            1, "vaurienctl: HTTP 400: bad request body: rate: expected number > 0, "
               "got 0.0\n"))
        result = yield self.ctl("toxics", "remove", "p", "latency_downstream")
        self.assertEqual(result, (0, "removed latency_downstream from p\n", ""))
        result = yield self.ctl("reset")
        self.assertEqual(result, (0, "every proxy enabled, every toxic removed\n", ""))
        result = yield self.ctl("version")
        self.assertEqual(result, (0, "2.12.0\n", ""))
        status, out, _ = yield self.ctl("metrics")
        self.assertIn('txvaurien_proxy_enabled{proxy="p"} 1.0', out)


class _Collect(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value.exitCode)


class ModuleTests(CtlTestCase):
    """
    C{python -m txvaurien.ctl}, as a process.
    """

    @defer.inlineCallbacks
    def spawn(self, *argv: str) -> Generator[Any, Any, Any]:
        collect = _Collect()
        reactor.spawnProcess(
            collect, sys.executable,
            [sys.executable, "-m", "txvaurien.ctl", "--host", self.control.url, *argv],
            env=childEnvironment())
        code = yield collect.ended
        return code, collect.out, collect.err

    @defer.inlineCallbacks
    def test_runsAsModule(self) -> Generator[Any, Any, None]:
        """
        C{python -m txvaurien.ctl} prints the answer and exits 0, or prints
        the server's message and exits 1.
        """
        result = yield self.spawn("version")
        self.assertEqual(result, (0, b"2.12.0\n", b""))
        result = yield self.spawn("set-behavior", "nosuch")
        self.assertEqual(result[:2], (1, b""))
        self.assertTrue(result[2].startswith(
            b"vaurienctl: HTTP 400: name: unknown behavior 'nosuch'; known: "), result)


    @defer.inlineCallbacks
    def test_versionNamesTxvaurien(self) -> Generator[Any, Any, None]:
        """
        C{vaurienctl --version} prints txvaurien's version and exits 0.
        """
        result = yield self.spawn("--version")
        self.assertEqual(result, (0, "vaurienctl (txvaurien {})\n".format(
            __version__).encode("ascii"), b""))


class ServerChoiceTests(TestCase):
    """
    Which server vaurienctl talks to, and how it names its own flags in
    the server's errors.
    """

    timeout = 60

    def test_precedence(self) -> None:
        """
        C{--host} wins over C{$VAURIEN_URL}, which wins over
        C{$TOXIPROXY_URL}, which wins over the default; empty variables
        are ignored.
        """
        both = {"VAURIEN_URL": "http://v:1", "TOXIPROXY_URL": "http://t:2"}
        self.assertEqual(ctl.serverURL("http://f:3", both), "http://f:3")
        self.assertEqual(ctl.serverURL(None, both), "http://v:1")
        self.assertEqual(ctl.serverURL(None, {"VAURIEN_URL": "", "TOXIPROXY_URL": "http://t:2"}),
                         "http://t:2")
        self.assertEqual(ctl.serverURL(None, {}), ctl.DEFAULT_URL)

    def test_timeoutTakesAUnit(self) -> None:
        """
        C{--timeout} takes seconds or a duration with a unit; a bad one is a
        usage error (exit 2) saying why.
        """
        parser = ctl.buildParser()
        self.assertEqual(parser.parse_args(["--timeout", "500ms", "version"]).timeout, 0.5)
        self.assertEqual(parser.parse_args(["--timeout", "2", "version"]).timeout, 2.0)
        err = io.StringIO()
        self.assertEqual(ctl.main(["--timeout", "0", "version"], io.StringIO(), err), 2)
        self.assertIn("expected number > 0, got 0.0", err.getvalue())

    @defer.inlineCallbacks
    def test_toxiproxyURLReachesTheServer(self) -> Generator[Any, Any, None]:
        """
        Without C{--host}, a real server named by C{$TOXIPROXY_URL} answers;
        its missing default proxy is reported with vaurienctl's C{--proxy}
        flag, not the API's C{?proxy=} query.
        """
        control = Control(self, [])
        self.patch(ctl.os, "environ", {"TOXIPROXY_URL": control.url})

        def run() -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            status = ctl.main(["get-behavior"], out, err)
            return status, out.getvalue(), err.getvalue()

        status, out, err = yield threads.deferToThread(run)
        self.assertEqual((status, out), (1, ""))
        self.assertIn("HTTP 404: no default proxy", err)
        self.assertIn("vaurienctl --proxy NAME", err)
        self.assertNotIn("?proxy=", err)
