"""
Proof of the drop-in claim: the PyPI package C{toxiproxy-python}, unchanged,
drives C{twistd -n vaurien --http} run as a real process, exactly as it
drives C{toxiproxy-server}; and a Toxiproxy-style JSON config creates
proxies at start with their toxics.
"""

from __future__ import annotations

import json
import re
import signal
from typing import Any, Generator

from twisted.internet import defer, protocol, threads
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien.client import Client
from txvaurien.test.controlhelpers import (
    assertTwistdFails,
    echoServer,
    refused,
    roundTrip,
    spawnTwistd,
)
from txvaurien.test.servers import freePort, listenBackend, requireModule

#: Latency added by the toxics of these tests, in seconds.  A round trip
#: with it cannot be shorter; one without it on loopback takes well under
#: half of it, even on a loaded machine.
LATENCY = 0.5


class ToxiproxyPythonTests(TestCase):
    """
    C{toxiproxy-python} against a C{twistd} child.
    """

    timeout = 120

    def setUp(self) -> None:
        self.toxiproxy = requireModule("toxiproxy", "toxiproxy-python")
        self.backend = echoServer(self)

    @defer.inlineCallbacks
    def test_clientDrivesServer(self) -> Generator[Any, Any, None]:
        """
        Create, list, disable and enable (the port really closes and
        reopens), add and remove toxics with a latency the client sees,
        reset, populate, destroy, version: every call of the Python client
        works, and the server stops cleanly on SIGTERM.
        """
        port, output = yield spawnTwistd(self, [
            "--http", "--http-port", "0", "--shutdown-grace", "0"])
        upstream = "127.0.0.1:{}".format(self.backend)
        toxiproxy = self.toxiproxy
        exceptions = requireModule("toxiproxy.exceptions", "toxiproxy-python")

        def scenario() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            server = toxiproxy.Toxiproxy()
            server.update_api_consumer("127.0.0.1", port)
            seen["running"] = server.running()
            seen["version"] = server.version()
            proxy = server.create(upstream=upstream, name="echo")
            listen = int(proxy.listen.rsplit(":", 1)[1])
            seen["listen"] = proxy.listen
            seen["names"] = sorted(server.proxies())
            seen["plain"] = roundTrip(listen)
            try:
                server.create(upstream=upstream, name="echo")
            except exceptions.ProxyExists:
                seen["duplicate"] = "ProxyExists"
            proxy.add_toxic(type="latency", attributes={"latency": int(LATENCY * 1000)})
            seen["toxics"] = {name: (t.type, t.stream, t.attributes)
                              for name, t in proxy.toxics().items()}
            seen["slow"] = roundTrip(listen)
            proxy.disable()
            seen["disabledRefused"] = refused(listen)
            seen["disabledFlag"] = server.get_proxy("echo").enabled
            proxy.enable()
            seen["enabledAgain"] = roundTrip(listen)
            proxy.destroy_toxic("latency_downstream")
            seen["afterRemoval"] = roundTrip(listen)
            seen["toxicsAfterRemoval"] = proxy.toxics()
            proxy.add_toxic(type="latency", stream="upstream",
                            attributes={"latency": int(LATENCY * 1000)})
            proxy.disable()
            seen["reset"] = server.reset()
            seen["afterReset"] = (server.get_proxy("echo").enabled, proxy.toxics(),
                                  roundTrip(listen))
            with proxy.down():
                seen["down"] = refused(listen)
            seen["up"] = roundTrip(listen)
            populated = server.populate([
                {"name": "second", "upstream": upstream, "listen": "127.0.0.1:0"}])
            seen["populated"] = [p.name for p in populated]
            second = server.get_proxy("second")
            seen["secondWorks"] = roundTrip(int(second.listen.rsplit(":", 1)[1]))
            try:
                proxy.add_toxic(type="nosuch")
            except exceptions.InvalidToxic as e:
                seen["invalid"] = json.loads(e.args[0])
            server.destroy_all()
            seen["afterDestroy"] = (server.proxies(), refused(listen))
            return seen

        seen = yield threads.deferToThread(scenario)
        self.assertEqual(seen["running"], True)
        self.assertEqual(seen["version"], b'{"version": "2.12.0"}\n')
        self.assertRegex(seen["listen"], r"^127\.0\.0\.1:[1-9]\d*$")
        self.assertEqual(seen["names"], ["echo"])
        self.assertEqual(seen["duplicate"], "ProxyExists")
        self.assertEqual(seen["toxics"], {"latency_downstream": (
            "latency", "downstream", {"latency": int(LATENCY * 1000), "jitter": 0})})
        self.assertLess(seen["plain"], LATENCY / 2)
        self.assertGreaterEqual(seen["slow"], LATENCY)
        self.assertTrue(seen["disabledRefused"])
        self.assertIs(seen["disabledFlag"], False)
        self.assertGreaterEqual(seen["enabledAgain"], LATENCY)
        self.assertLess(seen["afterRemoval"], LATENCY / 2)
        self.assertEqual(seen["toxicsAfterRemoval"], {})
        self.assertTrue(seen["reset"])
        enabled, toxics, elapsed = seen["afterReset"]
        self.assertEqual((enabled, toxics), (True, {}))
        self.assertLess(elapsed, LATENCY / 2)
        self.assertTrue(seen["down"])
        self.assertLess(seen["up"], LATENCY / 2)
        self.assertEqual(seen["populated"], ["second"])
        self.assertLess(seen["secondWorks"], LATENCY / 2)
        self.assertEqual(seen["invalid"], {"error": "invalid toxic type", "status": 400})
        self.assertEqual(seen["afterDestroy"], ({}, True))


class JSONConfigTests(TestCase):
    """
    C{--config proxies.json}.
    """

    timeout = 120

    def setUp(self) -> None:
        self.backend = echoServer(self)

    def writeConfig(self, proxies: list[dict[str, Any]]) -> str:
        path = FilePath(self.mktemp() + ".json")
        path.setContent(json.dumps(proxies).encode("utf-8"))
        return path.path

    @defer.inlineCallbacks
    def test_configToxicsHonoured(self) -> Generator[Any, Any, None]:
        """
        Proxies listed in a JSON config listen at start with their toxics
        acting (Toxiproxy ignores them), no C{--backend} needed; a
        disabled one does not listen; the control API shows them.
        """
        listen, disabled = freePort(), freePort()
        config = self.writeConfig([
            {"name": "cfg", "listen": "127.0.0.1:{}".format(listen),
             "upstream": "127.0.0.1:{}".format(self.backend),
             "toxics": [{"type": "latency", "attributes": {"latency": int(LATENCY * 1000)}}]},
            {"name": "off", "listen": "127.0.0.1:{}".format(disabled),
             "upstream": "127.0.0.1:{}".format(self.backend), "enabled": False},
        ])
        port, output = yield spawnTwistd(
            self, ["--config", config, "--http", "--http-port", "0"])
        self.assertIn("Proxy cfg listening on 127.0.0.1:{}".format(listen).encode("ascii"),
                      output.output)
        elapsed = yield threads.deferToThread(roundTrip, listen)
        self.assertGreaterEqual(elapsed, LATENCY)
        self.assertTrue(refused(disabled))
        toxiproxy = requireModule("toxiproxy", "toxiproxy-python")

        def look() -> Any:
            server = toxiproxy.Toxiproxy()
            server.update_api_consumer("127.0.0.1", port)
            proxies = server.proxies()
            return ({name: p.enabled for name, p in proxies.items()},
                    sorted(proxies["cfg"].toxics()))

        enabled, toxics = yield threads.deferToThread(look)
        self.assertEqual(enabled, {"cfg": True, "off": False})
        self.assertEqual(toxics, ["latency_downstream"])

    @defer.inlineCallbacks
    def test_configWithoutControlServer(self) -> Generator[Any, Any, None]:
        """
        A JSON config works without C{--http}: the proxies run with their
        toxics.
        """
        listen = freePort()
        config = self.writeConfig([
            {"name": "solo", "listen": "127.0.0.1:{}".format(listen),
             "upstream": "127.0.0.1:{}".format(self.backend),
             "toxics": [{"type": "latency", "stream": "upstream",
                         "attributes": {"latency": int(LATENCY * 1000)}}]}])
        yield spawnTwistd(self, ["--config", config],
                          re.compile(rb"Proxy solo listening on 127\.0\.0\.1:(\d+)"))
        elapsed = yield threads.deferToThread(roundTrip, listen)
        self.assertGreaterEqual(elapsed, LATENCY)

    @defer.inlineCallbacks
    def test_badConfigExits(self) -> Generator[Any, Any, None]:
        """
        A bad toxic in the JSON config makes twistd exit non-zero with the
        file and the reason, before anything listens.
        """
        config = self.writeConfig([
            {"name": "bad", "upstream": "127.0.0.1:1",
             "toxics": [{"type": "bandwidth", "attributes": {"rate": 0}}]}])
        yield assertTwistdFails(
            self, ["--config", config, "--http", "--http-port", "0"],
            b"bad request body: rate: expected number > 0, got 0.0 (toxic 1 at proxy 1)",
            config.encode("utf-8"))


class ControlPortTests(TestCase):
    """
    The control server's own port.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_portInUseExits(self) -> Generator[Any, Any, None]:
        """
        A control port already in use makes twistd exit non-zero with a
        one-line reason.
        """
        taken = listenBackend(self, protocol.Factory())
        yield assertTwistdFails(
            self, ["--http", "--http-port", str(taken)],
            b"control API cannot listen on tcp:", b"Address already in use")

    @defer.inlineCallbacks
    def test_sigtermStopsCleanly(self) -> Generator[Any, Any, None]:
        """
        A bare control server stops cleanly on SIGTERM.
        """
        port, output = yield spawnTwistd(self, ["--http", "--http-port", "0"])
        # An answer proves the main loop runs, so SIGTERM has its handler.
        version = yield threads.deferToThread(Client("127.0.0.1", port).version)
        self.assertEqual(version, "2.12.0")
        output.transport.signalProcess(signal.SIGTERM)
        code, sig = yield output.ended
        self.assertIn((code, sig), [(0, None), (None, signal.SIGTERM)],
                      output.output.decode("utf-8", "replace"))
        self.assertIn(b"Main loop terminated", output.output)
