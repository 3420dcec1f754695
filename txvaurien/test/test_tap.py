"""
Tests for L{txvaurien.tap}: command-line options, the configuration file,
their precedence, and the service they make.
"""

from __future__ import annotations

from twisted.application.service import IService, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from txvaurien import logs, tap
from txvaurien.demo import DemoBackend
from txvaurien.endpoints import EndpointBackend, TCPBackend
from txvaurien.service import ProxyService
from txvaurien.test.helpers import testRegistry

Options = tap.buildOptions(testRegistry())


def parse(*argv: str) -> tap.BaseOptions:
    options = Options()
    options.parseOptions(list(argv))
    return options


class DefaultsTests(TestCase):
    """
    What C{twistd vaurien --backend X} means with nothing else said.
    """

    def test_defaults(self) -> None:
        """
        Every core option takes its declared default.
        """
        options = parse("--backend", "127.0.0.1:6379")
        self.assertEqual(options["proxy"], ["tcp:8000:interface=127.0.0.1"])
        self.assertEqual(options["protocol"], "tcp")
        self.assertEqual(options["behavior"], "100:dummy")
        self.assertEqual(options["behavior_scope"], "connection")
        self.assertEqual(options["timeout"], 30.0)
        self.assertEqual(options["idle_timeout"], 0.0)
        self.assertEqual(options["shutdown_grace"], 5.0)
        self.assertIsNone(options["seed"])
        self.assertEqual(options["log_level"], "info")
        self.assertIs(options["splice"], True)
        self.assertTrue(options.table.inert)
        self.assertEqual(options.handler.name, "tcp")

    def test_backendRequired(self) -> None:
        """
        Without C{--backend}, the error says what to give.
        """
        with self.assertRaises(UsageError) as caught:
            parse()
        self.assertIn("--backend", str(caught.exception))
        self.assertIn("demo", str(caught.exception))

    def test_requestScopeByProtocol(self) -> None:
        """
        A protocol that frames requests makes request scope the default.
        """
        self.assertEqual(parse("--backend", "h:1", "--protocol", "lines")["behavior_scope"], "request")


class CommandLineTests(TestCase):
    """
    Options given on the command line.
    """

    def test_hostPortForms(self) -> None:
        """
        Vaurien's C{host:port} is accepted for both ends, and C{--proxy}
        repeats.
        """
        options = parse("--backend", "localhost:6379", "--proxy", "0.0.0.0:8001",
                        "--proxy", "tcp:8002:interface=127.0.0.1", "-p", "8003")
        self.assertEqual(options["proxy"], [
            "tcp:8001:interface=0.0.0.0",
            "tcp:8002:interface=127.0.0.1",
            "tcp:8003:interface=127.0.0.1",
        ])

    def test_generatedPluginOptions(self) -> None:
        """
        Each declared plugin option has its flag; booleans have an off
        form; values reach the configured behaviors and protocol.
        """
        options = parse(
            "--backend", "h:1", "--behavior", "30:slowdown,10:swallow",
            "--behavior-slowdown-seconds", "2.5", "--behavior-slowdown-direction", "upstream",
            "--protocol-tcp-error-size", "9")
        slowdown = options.table.behaviors["slowdown"]
        self.assertEqual(slowdown.settings["seconds"], 2.5)
        self.assertEqual(slowdown.settings["direction"], "upstream")
        self.assertEqual(options.handler.settings["error_size"], 9)
        self.assertEqual(options.table.describe(), "30:slowdown,10:swallow,60:dummy")

    def test_booleanOffForm(self) -> None:
        """
        C{--no-splice} turns a default-true boolean off; giving both forms
        is an error.
        """
        self.assertIs(parse("--backend", "h:1", "--no-splice")["splice"], False)
        with self.assertRaises(UsageError) as caught:
            parse("--backend", "h:1", "--no-splice", "--splice")
        self.assertIn("--splice", str(caught.exception))

    def test_dottedPathBehavior(self) -> None:
        """
        A behavior given by dotted path works, with options through
        C{--behavior-option NAME.OPTION=VALUE}.
        """
        options = parse(
            "--backend", "h:1", "--behavior", "100:txvaurien.test.plugins.SlowDown",
            "--behavior-option", "txvaurien.test.plugins.SlowDown.seconds=4")
        [behavior] = options.table.behaviors.values()
        self.assertEqual(behavior.settings["seconds"], 4.0)

    def test_badValues(self) -> None:
        """
        Each bad value is a L{UsageError} naming the option and the
        problem.
        """
        cases = [
            (("--timeout", "0"), "--timeout"),
            (("--timeout", "soon"), "--timeout"),
            (("--idle-timeout", "-1"), "--idle-timeout"),
            (("--seed", "x"), "--seed"),
            (("--log-level", "loud"), "--log-level"),
            (("--behavior", "120:slowdown"), "not between 0 and 100"),
            (("--behavior", "20:slowdown,90:swallow"), "add up to 110"),
            (("--behavior", "a:slowdown"), "not an integer"),
            (("--behavior", "20:nonesuch"), "unknown behavior 'nonesuch'"),
            (("--protocol", "gopher"), "unknown protocol 'gopher'"),
            (("--behavior-slowdown-seconds", "-3"), "behavior slowdown option seconds"),
            (("--behavior-slowdown-toxicity", "1.5"), "toxicity"),
            (("--behavior-option", "noequals"), "NAME.OPTION=VALUE"),
            (("--proxy", "nonsense:thing:x"), "cannot listen on 'nonsense:thing:x'"),
            (("--behavior-scope", "request"), "does not frame requests"),
        ]
        for extra, message in cases:
            with self.assertRaises(UsageError, msg=repr(extra)) as caught:
                parse("--backend", "h:1", *extra)
            self.assertIn(message, str(caught.exception), extra)

    def test_badBackend(self) -> None:
        """
        A backend that is neither C{host:port}, an endpoint string nor
        C{demo} is refused with the reason.
        """
        for backend, message in [
            ("h:0", "must not be 0"),
            ("h:99999", "out of range"),
            ("nonsense:x", "cannot connect to 'nonsense:x'"),
        ]:
            with self.assertRaises(UsageError) as caught:
                parse("--backend", backend)
            self.assertIn(message, str(caught.exception))


class ConfigFileTests(TestCase):
    """
    The INI file given with C{--config}, and its precedence.
    """

    def writeConfig(self, text: str) -> str:
        path = FilePath(self.mktemp())
        path.setContent(text.encode("utf-8"))
        return path.path

    def test_configFileValues(self) -> None:
        """
        C{[vaurien]} keys (with dashes or underscores), C{[behavior:NAME]}
        and C{[protocol:NAME]} sections set values.
        """
        config = self.writeConfig(
            "[vaurien]\nbackend = 127.0.0.1:6379\nproxy = 127.0.0.1:7001\n 127.0.0.1:7002\n"
            "behavior = 40:slowdown\nidle-timeout = 30\nseed = 99\n\n"
            "[behavior:slowdown]\nseconds = 0.25\n\n[protocol:tcp]\nerror_size = 7\n")
        options = parse("--config", config)
        self.assertEqual(options["backend"], "127.0.0.1:6379")
        self.assertEqual(options["proxy"], ["tcp:7001:interface=127.0.0.1",
                                            "tcp:7002:interface=127.0.0.1"])
        self.assertEqual(options["idle_timeout"], 30.0)
        self.assertEqual(options["seed"], 99)
        self.assertEqual(options.table.behaviors["slowdown"].settings["seconds"], 0.25)
        self.assertEqual(options.handler.settings["error_size"], 7)

    def test_commandLineWins(self) -> None:
        """
        A value on the command line wins over the file, which wins over the
        default.
        """
        config = self.writeConfig(
            "[vaurien]\nbackend = 127.0.0.1:6379\ntimeout = 3\nbehavior = 40:slowdown\n"
            "[behavior:slowdown]\nseconds = 0.25\nhold = 10\n")
        options = parse("--config", config, "--timeout", "4",
                        "--behavior-slowdown-seconds", "0.5")
        self.assertEqual(options["timeout"], 4.0)
        slowdown = options.table.behaviors["slowdown"]
        self.assertEqual(slowdown.settings["seconds"], 0.5)
        self.assertEqual(slowdown.settings["hold"], 10)
        self.assertEqual(slowdown.settings["only"], "")

    def test_dashedBehaviorNames(self) -> None:
        """
        Behavior names with dashes work in the table, in C{[behavior:NAME]}
        sections and in C{--behavior-option}: C{limit-data} is
        C{limit_data}.
        """
        config = self.writeConfig("[behavior:limit-data]\nbytes = 10\n")
        options = parse("--backend", "h:1", "--config", config,
                        "--behavior", "50:limit-data,10:slow-open+reset-peer",
                        "--behavior-option", "reset-peer.timeout=5")
        behaviors = options.table.behaviors
        self.assertEqual(behaviors["limit_data"].settings["bytes"], 10)
        self.assertEqual(behaviors["reset_peer"].settings["timeout"], 5.0)
        self.assertEqual(sorted(behaviors), ["limit_data", "reset_peer", "slow_open"])

    def test_durationsWithUnits(self) -> None:
        """
        Time options take a unit on the command line and in the file, and
        a bare number keeps each option's own unit (seconds for the core
        timeouts, milliseconds for latency, microseconds for slicer).
        """
        config = self.writeConfig("[vaurien]\nidle-timeout = 2m\n"
                                  "[behavior:latency]\nlatency = 1.5s\n")
        options = parse("--backend", "h:1", "--config", config, "--timeout", "250ms",
                        "--shutdown-grace", "3", "--behavior", "latency+slicer",
                        "--behavior-latency-jitter", "20", "--behavior-slicer-delay", "2ms")
        self.assertEqual(options["timeout"], 0.25)
        self.assertEqual(options["idle_timeout"], 120.0)
        self.assertEqual(options["shutdown_grace"], 3.0)
        latency = options.table.behaviors["latency"].settings
        self.assertEqual((latency["latency"], latency["jitter"]), (1500.0, 20.0))
        self.assertEqual(options.table.behaviors["slicer"].settings["delay"], 2000.0)
        with self.assertRaises(UsageError) as caught:
            parse("--backend", "h:1", "--timeout", "5 parsecs")
        self.assertIn("unknown unit 'parsecs'", str(caught.exception))

    def test_badConfigFiles(self) -> None:
        """
        Unknown sections and keys, bad values and unreadable files are
        refused with the file, section and key.
        """
        cases = [
            ("[vaurien]\nbackend = h:1\nbakend = x\n", "unknown key 'bakend'"),
            ("[vaurien]\nbackend = h:1\n[proxy]\nx = 1\n", "unknown section"),
            ("[vaurien]\nbackend = h:1\n[behavior:slowdown]\nsecs = 1\n", "secs"),
            ("[vaurien]\nbackend = h:1\n[behavior:nosuch]\na = 1\n", "unknown behavior 'nosuch'"),
            ("[vaurien]\nbackend = h:1\ntimeout = never\n", "[vaurien] timeout"),
            ("no section header\n", "config file"),
        ]
        for text, message in cases:
            config = self.writeConfig(text)
            with self.assertRaises(UsageError) as caught:
                parse("--config", config)
            self.assertIn(message, str(caught.exception), text)
        with self.assertRaises(UsageError) as caught:
            parse("--config", "/nonexistent/txvaurien.ini")
        self.assertIn("cannot read config file", str(caught.exception))


class ConfigErrorTests(TestCase):
    """
    Every error in an INI file names the file, and the section and key
    where there is one.
    """

    def refused(self, data: bytes) -> tuple[str, str]:
        path = FilePath(self.mktemp())
        path.setContent(data)
        with self.assertRaises(UsageError) as caught:
            parse("--config", path.path)
        return path.path, str(caught.exception)

    def test_pluginKeyNamesFileSectionAndKey(self) -> None:
        """
        An unknown key in a C{[behavior:NAME]} or C{[protocol:NAME]}
        section names the file, the section and the key.
        """
        path, message = self.refused(b"[vaurien]\nbackend = h:1\n[behavior:delay]\nslep = 0.1\n")
        self.assertTrue(message.startswith(
            "config file {!r} [behavior:delay] slep: unknown option".format(path)), message)
        path, message = self.refused(b"[vaurien]\nbackend = h:1\n[protocol:tcp]\nerror_size = -1\n")
        self.assertTrue(message.startswith(
            "config file {!r} [protocol:tcp] error_size: expected".format(path)), message)
        path, message = self.refused(b"[vaurien]\nbackend = h:1\n[behavior:nosuch]\na = 1\n")
        self.assertEqual(message.split(";")[0], "config file {!r} [behavior:nosuch]: "
                                                "unknown behavior 'nosuch'".format(path))

    def test_closeNamesSuggested(self) -> None:
        """
        A mistyped behavior, protocol or option name, in the file or on the
        command line, gets the closest known one as a suggestion.
        """
        _, message = self.refused(b"[vaurien]\nbackend = h:1\n[behavior:delay]\nslep = 0.1\n")
        self.assertTrue(message.endswith("(did you mean sleep?)"), message)
        _, message = self.refused(b"[vaurien]\nbackend = h:1\n[behavior:dealy]\nsleep = 1\n")
        self.assertTrue(message.endswith("(did you mean delay?)"), message)
        for args, closest in [(("--behavior", "50:slow-opne"), "slow_open"),
                              (("--protocol", "htpp"), "http")]:
            with self.assertRaises(UsageError) as caught:
                parse("--backend", "h:1", *args)
            self.assertTrue(str(caught.exception).endswith(
                "(did you mean {}?)".format(closest)), str(caught.exception))
        with self.assertRaises(UsageError) as caught:
            parse("--backend", "h:1", "--behavior", "50:zzzzzz")
        self.assertNotIn("did you mean", str(caught.exception))

    def test_missingBracket(self) -> None:
        """
        A section header without its closing bracket is reported as such,
        with its line, not as an unknown key.
        """
        path, message = self.refused(b"[vaurien]\nbackend = h:1\n\n[behavior:delay\nsleep = 1\n")
        self.assertEqual(message, "config file {!r} line 4: section header "
                                  "'[behavior:delay' has no closing ']'".format(path))

    def test_binaryFile(self) -> None:
        """
        A file that is not UTF-8 text, or holds NUL bytes, gets a one-line
        error naming the file.
        """
        path, message = self.refused(b"\xff\xfe\x00garbage")
        self.assertEqual(message, "config file {!r}: not UTF-8 text (byte 0xff at offset 0); "
                                  "an INI file with [vaurien] and [behavior:NAME] sections "
                                  "is expected".format(path))
        path, message = self.refused(b"[vaurien]\x00\x01")
        self.assertIn("binary data (a NUL byte at offset 9)", message)
        self.assertNotIn("\n", message)


class MakeServiceTests(TestCase):
    """
    L{tap.makeService} turns options into a service tree.
    """

    def setUp(self) -> None:
        self.addCleanup(logs.setLevel, "info")

    def test_serviceTree(self) -> None:
        """
        The service is a L{MultiService} holding a L{ProxyService} whose
        factory has the configured backend, protocol, table and timeouts,
        listening where asked when started.
        """
        options = parse("--backend", "tcp:host=10.1.2.3:port=6379", "--proxy", "tcp:7777",
                        "--timeout", "2", "--idle-timeout", "9", "--seed", "5",
                        "--behavior", "10:slowdown", "--log-level", "warn")
        reactor = MemoryReactorClock()
        service = tap.makeService(options, reactor)
        self.assertIsInstance(service, MultiService)
        proxy = service.getServiceNamed("proxy")
        self.assertIsInstance(proxy, ProxyService)
        factory = proxy.factory
        self.assertIsInstance(factory.backend, TCPBackend)
        self.assertEqual((factory.backend.host, factory.backend.port), ("10.1.2.3", 6379))
        self.assertEqual(factory.connectTimeout, 2.0)
        self.assertEqual(factory.idleTimeout, 9.0)
        self.assertEqual(factory.random.seed, 5)
        self.assertIs(factory.table, options.table)
        self.assertFalse(logs.isEnabled(logs.LogLevel.info))
        IService(service).startService()
        self.addCleanup(service.stopService)
        [(port, _, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (7777, ""))

    def test_unixBackendUsesEndpoint(self) -> None:
        """
        Backends other than plain TCP are reached through their endpoint.
        """
        options = parse("--backend", "unix:/tmp/txvaurien-test.sock")
        service = tap.makeService(options, MemoryReactorClock())
        backend = service.getServiceNamed("proxy").factory.backend
        self.assertIsInstance(backend, EndpointBackend)
        self.assertEqual(backend.description, "unix:/tmp/txvaurien-test.sock")

    def test_demoBackend(self) -> None:
        """
        C{--backend demo} adds the demo service and points the proxy at it.
        """
        options = parse("--backend", "demo")
        service = tap.makeService(options, MemoryReactorClock())
        self.assertEqual(service.getServiceNamed("demo").name, "demo")
        self.assertIsInstance(service.getServiceNamed("proxy").factory.backend, DemoBackend)


class ControlOptionsTests(TestCase):
    """
    The control server's options, and a Toxiproxy-style JSON C{--config}.
    """

    def setUp(self) -> None:
        self.addCleanup(logs.setLevel, "info")

    def writeJSON(self, value: object) -> str:
        import json

        path = FilePath(self.mktemp() + ".json")
        path.setContent(json.dumps(value).encode("utf-8"))
        return path.path

    def test_defaults(self) -> None:
        """
        The control server is off; its address defaults to
        127.0.0.1:8080, with no token, refusing browsers.
        """
        options = parse("--backend", "h:1")
        self.assertIs(options["http"], False)
        self.assertEqual((options["http_host"], options["http_port"]), ("127.0.0.1", 8080))
        self.assertIsNone(options["http_endpoint"])
        self.assertIsNone(options["http_token"])
        self.assertIs(options["http_allow_browsers"], False)
        service = tap.makeService(options, MemoryReactorClock())
        self.assertRaises(KeyError, service.getServiceNamed, "control")
        self.assertRaises(KeyError, service.getServiceNamed, "proxies")

    def test_bareControlServer(self) -> None:
        """
        With C{--http}, C{--backend} is optional: the service is a proxy
        manager with no proxy and the control server, listening where
        asked once started.
        """
        options = parse("--http", "--http-port", "8474", "--http-host", "127.0.0.2",
                        "--http-token", "t")
        self.assertEqual(options["http_listen"], "tcp:8474:interface=127.0.0.2")
        reactor = MemoryReactorClock()
        service = tap.makeService(options, reactor)
        self.assertRaises(KeyError, service.getServiceNamed, "proxy")
        manager = service.getServiceNamed("proxies")
        self.assertEqual(manager.proxies, {})
        self.assertIsNone(manager.defaultName)
        control = service.getServiceNamed("control")
        self.assertEqual([s.name for s in service], ["proxies", "control"])
        self.assertEqual(control.site.resource.token, "t")
        IService(service).startService()
        self.addCleanup(service.stopService)
        [(port, _, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (8474, "127.0.0.2"))

    def test_defaultProxyManaged(self) -> None:
        """
        With C{--backend} and C{--http}, the proxy is the manager's default
        proxy, named C{vaurien}, and the control server comes after it.
        """
        options = parse("--backend", "127.0.0.1:6379", "--http", "--http-endpoint",
                        "tcp:9999:interface=127.0.0.1")
        service = tap.makeService(options, MemoryReactorClock())
        manager = service.getServiceNamed("proxies")
        self.assertEqual(manager.defaultName, "vaurien")
        self.assertIs(manager.get("vaurien").service, service.getServiceNamed("proxy"))
        self.assertEqual(manager.get("vaurien").upstream, "127.0.0.1:6379")
        self.assertEqual([s.name for s in service], ["proxy", "proxies", "control"])
        self.assertEqual(service.getServiceNamed("control").description,
                         "tcp:9999:interface=127.0.0.1")

    def test_badControlOptions(self) -> None:
        """
        A bad port or endpoint is refused naming the option.
        """
        for extra, message in [
            (("--http-port", "70000"), "--http-port"),
            (("--http-port", "x"), "--http-port"),
            (("--http-endpoint", "nonsense:1"), "--http-endpoint"),
        ]:
            with self.assertRaises(UsageError) as caught:
                parse("--http", *extra)
            self.assertIn(message, str(caught.exception), extra)

    def test_iniControlOptions(self) -> None:
        """
        The control options are keys of an INI file's C{[vaurien]}.
        """
        path = FilePath(self.mktemp())
        path.setContent(b"[vaurien]\nhttp = true\nhttp-port = 8475\nhttp_token = abc\n")
        options = parse("--config", path.path)
        self.assertEqual((options["http"], options["http_port"], options["http_token"]),
                         (True, 8475, "abc"))

    def test_jsonConfig(self) -> None:
        """
        A C{--config} file ending in C{.json} is a Toxiproxy proxy list:
        C{--backend} is then optional and its proxies, with their toxics,
        are the manager's, listening when the service starts.
        """
        config = self.writeJSON([
            {"name": "redis", "listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379",
             "toxics": [{"type": "latency", "attributes": {"latency": 10}}]},
            {"name": "off", "listen": "127.0.0.1:26380", "upstream": "127.0.0.1:6380",
             "enabled": False}])
        options = parse("--config", config)
        self.assertEqual([p.name for p in options.proxiesConfig], ["redis", "off"])
        reactor = MemoryReactorClock()
        service = tap.makeService(options, reactor)
        self.assertRaises(KeyError, service.getServiceNamed, "control")
        manager = service.getServiceNamed("proxies")
        redis = manager.get("redis")
        self.assertEqual([t.name for t in redis.toxics], ["latency_downstream"])
        self.assertEqual(redis.factory.table.describe(), "100:latency")
        self.assertEqual(reactor.tcpServers, [])
        IService(service).startService()
        self.addCleanup(service.stopService)
        self.assertEqual([(p[0], p[3]) for p in reactor.tcpServers], [(26379, "127.0.0.1")])

    def test_badJSONConfig(self) -> None:
        """
        A bad JSON config is refused with the file and the reason.
        """
        for value, message in [
            ({"name": "x"}, "cannot unmarshal object"),
            ([{"name": "x"}], "missing required field: upstream at proxy 1"),
            ([{"name": "x", "upstream": "h:1", "toxics": [{"type": "nosuch"}]}],
             "invalid toxic type (toxic 1 at proxy 1)"),
        ]:
            config = self.writeJSON(value)
            with self.assertRaises(UsageError) as caught:
                parse("--config", config)
            self.assertIn("config file {!r}: ".format(config), str(caught.exception))
            self.assertIn(message, str(caught.exception))

    def test_proxyOptionsNeedBackend(self) -> None:
        """
        Options of the default proxy given without C{--backend} are
        refused rather than ignored.
        """
        for extra in [("--proxy", "8001"), ("--behavior", "delay"), ("--protocol", "lines"),
                      ("--behavior-scope", "request")]:
            with self.assertRaises(UsageError) as caught:
                parse("--http", *extra)
            self.assertIn("{}: applies to the proxy --backend describes".format(extra[0]),
                          str(caught.exception))
