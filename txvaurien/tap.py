"""
C{twistd vaurien}: command-line options and the service they make.

Every option has one declaration (L{CORE} here, C{options} on each
behavior and protocol handler), from which L{txvaurien.options} makes the
command-line option, the configuration-file key and the checks.  A value
given on the command line wins over the configuration file (C{--config}),
which wins over the declared default.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from txvaurien import clihelp, endpoints, inifile, logs, options, scopes, statsd
from txvaurien.demo import DemoBackend, DemoService
from txvaurien.options import Choice, Duration, ListOf, Number, OptionError, String
from txvaurien.proxy import ProxyServerFactory
from txvaurien.randomness import RandomSource
from txvaurien.registry import Registry, UnknownPlugin, defaultRegistry
from txvaurien.service import ProxyService
from txvaurien.table import CONNECTION, REQUEST, TableError, buildTable

DEFAULT_LISTEN = "tcp:8000:interface=127.0.0.1"

CORE: dict[str, tuple[str, Any, Any]] = {
    "proxy": (
        "Endpoint to listen on, repeatable: a Twisted endpoint string or "
        "host:port",
        ListOf(String(), nonEmpty=True),
        [DEFAULT_LISTEN],
    ),
    "backend": (
        "Where to forward: a client endpoint string (tcp:host=H:port=P, "
        "unix:/path, tls:...), host:port, or 'demo' for the built-in demo "
        "HTTP backend",
        str,
        None,
    ),
    "protocol": ("Protocol handler framing the traffic", str, "tcp"),
    "behavior": (
        "Behavior table: weighted behaviors such as 20:delay,10:error "
        "(the rest of 100 is dummy); join behaviors with + to chain them",
        str,
        "100:dummy",
    ),
    "behavior_scope": (
        "Choose behaviors per connection or per request (auto: per request "
        "when the protocol frames requests)",
        Choice("auto", CONNECTION, REQUEST),
        "auto",
    ),
    "timeout": (
        "Time to wait for the backend to accept a connection",
        Duration("s", 0, exclusiveMinimum=True),
        30.0,
    ),
    "idle_timeout": (
        "Close a connection after this long without traffic (0: never)",
        Duration("s"),
        0.0,
    ),
    "shutdown_grace": (
        "On stop, time to let live connections finish before closing them",
        Duration("s"),
        5.0,
    ),
    "seed": (
        "Seed of all randomness, to repeat a run (default: drawn and logged)",
        Number(int, 0),
        None,
    ),
    "log_level": ("Least level logged", Choice(*logs.LEVELS), "info"),
    "splice": (
        "Forward untouched bytes with splice(2) inside the kernel (Linux)",
        bool,
        True,
    ),
    "http": (
        "Serve the control API (Vaurien's and Toxiproxy's REST APIs and "
        "Prometheus metrics); --backend becomes optional",
        bool,
        False,
    ),
    "http_host": ("Interface the control API listens on", str, "127.0.0.1"),
    "http_port": (
        "Port the control API listens on (Toxiproxy's is 8474)",
        Number(int, 0, 65535),
        8080,
    ),
    "http_endpoint": (
        "Endpoint string for the control API, instead of --http-host and "
        "--http-port (for example ssl:8443:privateKey=key.pem)",
        str,
        None,
    ),
    "http_token": (
        "Require 'Authorization: Bearer TOKEN' on every control API request",
        str,
        None,
    ),
    "http_allow_browsers": (
        "Serve control API requests from web browsers (User-Agent "
        "Mozilla/...), refused by default so that web pages cannot drive it",
        bool,
        False,
    ),
}

CORE.update(statsd.OPTIONS)

_SHORT = {"proxy": "p", "backend": "b"}

_log = logs.logger("txvaurien.tap")


class ConfigError(ValueError):
    """
    The configuration file is unreadable or invalid.
    """


def _coreParameters() -> tuple[list[list[Any]], list[list[Any]]]:
    parameters, flags = [], []
    for spec in options.specs(CORE).values():
        if spec.name == "proxy":
            continue
        long = spec.name.replace("_", "-")
        default = "none" if spec.default is None else spec.type.format(spec.default)
        if spec.isFlag:
            flags.append([long, None, "{} (default: {})".format(spec.description, default)])
            flags.append(["no-" + long, None, "Turn off --{}.".format(long)])
        else:
            parameters.append([
                long, _SHORT.get(spec.name), None,
                "{} [{}] (default: {})".format(spec.description, spec.type.name, default),
            ])
    return parameters, flags


def readConfig(path: str) -> dict[str, dict[str, str]]:
    """
    Read an INI file into section name to raw values.

    @raise ConfigError: if it cannot be read or parsed (see
        L{txvaurien.inifile.readINI}).
    """
    try:
        return inifile.readINI(path)
    except inifile.INIError as e:
        raise ConfigError(str(e))


class BaseOptions(usage.Options):
    """
    Options of C{twistd vaurien}, without the generated per-plugin ones
    (see L{buildOptions}).
    """

    synopsis = "--backend ENDPOINT [options] | --http [options]"
    longdesc = (
        "Run a chaos TCP proxy: listen on --proxy, forward to --backend, and "
        "inject faults chosen from --behavior.  Try --backend demo.  With "
        "--http, drive it at run time through Vaurien's and Toxiproxy's REST "
        "APIs (--http alone starts a bare server, like toxiproxy-server)."
    )
    _coreParams, _coreFlags = _coreParameters()
    optParameters = _coreParams + [
        ["config", "c", None, "INI file with [vaurien], [behavior:NAME] and "
         "[protocol:NAME] sections, or a Toxiproxy-style JSON list of proxies "
         "(a name ending in .json)"],
    ]
    optFlags = _coreFlags

    registry: Registry
    _pluginIndex: dict[str, tuple[str, str, str, bool | None]] = {}

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["proxy"] = []
        self._pluginValues: dict[tuple[str, str], dict[str, Any]] = {}

    _fullHelp = False

    def parseOptions(self, options: Any = None) -> None:
        """
        Parse the command line; an unknown option close to a known one is
        reported with a suggestion.
        """
        try:
            usage.Options.parseOptions(self, options)
        except usage.UsageError as e:
            raise usage.UsageError(
                clihelp.explain(str(e), clihelp.longOptions(self))) from None

    def getUsage(self, width: int | None = None) -> str:
        """
        The full help after C{--help}; otherwise (a usage error) the
        synopsis and where to get help, so that the reason stays visible.
        """
        if self._fullHelp:
            return clihelp.fullUsage(self, CORE, _SHORT, width)
        return clihelp.briefUsage(self)

    def opt_help(self) -> None:
        """
        Display this help and exit.
        """
        self._fullHelp = True
        _exitWith(str(self) + "\n")

    def opt_help_behaviors(self) -> None:
        """
        Describe every behavior and its options, then exit.
        """
        _exitWith(clihelp.pluginHelp("behavior", self.registry.behaviors))

    def opt_help_behavior(self, name: str) -> None:
        """
        Describe one behavior (NAME) and its options, then exit.
        """
        _exitWith(clihelp.onePlugin("behavior", self._plugin("behavior", name)))

    def opt_help_protocols(self) -> None:
        """
        Describe every protocol handler and its options, then exit.
        """
        _exitWith(clihelp.pluginHelp("protocol", self.registry.protocols))

    def opt_help_protocol(self, name: str) -> None:
        """
        Describe one protocol handler (NAME) and its options, then exit.
        """
        _exitWith(clihelp.onePlugin("protocol", self._plugin("protocol", name)))

    def opt_version(self) -> None:
        """
        Print txvaurien's version and exit.
        """
        _exitWith(clihelp.versionText() + "\n")

    def _plugin(self, kind: str, name: str) -> Any:
        plugins = self.registry.behaviors if kind == "behavior" else self.registry.protocols
        try:
            return plugins.get(name)
        except UnknownPlugin as e:
            raise usage.UsageError("--help-{}: {}".format(kind, e))

    def opt_proxy(self, value: str) -> None:
        """
        Endpoint to listen on: a Twisted endpoint string or host:port
        (repeatable; default: tcp:8000:interface=127.0.0.1).
        """
        self["proxy"].append(value)

    opt_p = opt_proxy

    def opt_behavior_option(self, value: str) -> None:
        """
        NAME.OPTION=VALUE for a behavior loaded by dotted path (repeatable).
        """
        self._genericOption("behavior", value)

    def opt_protocol_option(self, value: str) -> None:
        """
        NAME.OPTION=VALUE for a protocol loaded by dotted path (repeatable).
        """
        self._genericOption("protocol", value)

    def _genericOption(self, kind: str, value: str) -> None:
        target, eq, raw = value.partition("=")
        name, dot, option = target.rpartition(".")
        if not (eq and dot and name and option):
            raise usage.UsageError(
                "--{}-option takes NAME.OPTION=VALUE, got {!r}".format(kind, value)
            )
        self._pluginValues.setdefault((kind, name), {})[option] = raw

    def parseValues(self, values: Mapping[str, Any]) -> None:
        """
        Take option values from Python (for embedding), as if given on the
        command line, and check them.
        """
        values = dict(values)
        for kind in ("behavior", "protocol"):
            for name, given in (values.pop(kind + "_options", None) or {}).items():
                self._pluginValues.setdefault((kind, name), {}).update(given)
        config = values.pop("config", None)
        if config is not None:
            self["config"] = config
        for key, value in values.items():
            if key.replace("-", "_") not in CORE:
                raise usage.UsageError("unknown option {!r}".format(key))
            name = key.replace("_", "-")
            if key == "proxy":
                self["proxy"] = [value] if isinstance(value, str) else list(value)
            elif isinstance(value, bool):
                self[name if value else "no-" + name] = 1
            else:
                self[name] = value
        self.postOptions()

    def postOptions(self) -> None:
        try:
            self._resolve()
        except (OptionError, TableError, UnknownPlugin, ConfigError,
                endpoints.EndpointError) as e:
            message = str(e)
            closest = getattr(e, "closest", None) or getattr(e.__context__, "closest", None)
            if closest:
                message += " (did you mean {}?)".format(closest)
            raise usage.UsageError(message)

    def _given(self) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
        """
        What the command line set: core values and plugin option values.
        """
        core: dict[str, Any] = {}
        for spec in options.specs(CORE).values():
            long = spec.name.replace("_", "-")
            if spec.name == "proxy":
                if self["proxy"]:
                    core["proxy"] = list(self["proxy"])
            elif spec.isFlag:
                on, off = self.get(long), self.get("no-" + long)
                if on and off:
                    raise OptionError("--" + long, "given with --no-" + long)
                if on or off:
                    core[spec.name] = bool(on)
            elif self.get(long) is not None:
                core[spec.name] = self[long]
        plugins = {key: dict(values) for key, values in self._pluginValues.items()}
        for long, (kind, name, option, flag) in self._pluginIndex.items():
            given = self.get(long)
            if flag is None:
                if given is not None:
                    plugins.setdefault((kind, name), {})[option] = given
            elif given:
                values = plugins.setdefault((kind, name), {})
                if option in values and values[option] != flag:
                    raise OptionError(
                        "--" + long, "contradicts another flag for the same option")
                values[option] = flag
        return core, plugins

    def _fromConfig(self) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
        path = self.get("config")
        if not path or _isJSON(path):
            return {}, {}
        core: dict[str, Any] = {}
        plugins: dict[tuple[str, str], dict[str, Any]] = {}
        for section, values in readConfig(path).items():
            where = "config file {!r} [{}]".format(path, section)
            if section in ("vaurien", "statsd"):
                try:
                    given, notes = inifile.vaurienValues(section, values, CORE)
                except inifile.INIError as e:
                    raise ConfigError("config file {!r} {}".format(path, e))
                for key, why in notes:
                    _log.info("{where} {key}: {why}", where=where, key=key, why=why)
                for name, value in given.items():
                    if name == "proxy":
                        value = ",".join(value.split())
                    core[name] = value
                continue
            kind, colon, name = section.partition(":")
            if not colon or kind not in ("behavior", "protocol") or not name.strip():
                raise ConfigError(
                    "{}: unknown section; use [vaurien], [behavior:NAME], "
                    "[protocol:NAME] or [statsd]".format(where))
            plugins[(kind, name.strip())] = values
        return core, plugins

    def _resolve(self) -> None:
        cliCore, cliPlugins = self._given()
        fileCore, filePlugins = self._fromConfig()
        core = options.validate(CORE, {})
        core.update(options.validate(
            CORE, fileCore, where="config file {!r} [vaurien] ".format(self.get("config")),
            partial=True))
        core.update(options.validate(
            CORE, {k.replace("_", "-"): v for k, v in cliCore.items()}, where="--",
            partial=True))
        if (core["backend"] is not None and core["backend"].strip() == "demo"
                and "protocol" not in cliCore and "protocol" not in fileCore):
            # The demo backend speaks HTTP: frame it so, so that errors are
            # HTTP responses a client can parse.
            core["protocol"] = "http"
        for key, value in core.items():
            self[key] = value
        registry = self.registry

        path = self.get("config")
        self.proxiesConfig: list[Any] = []
        if path and _isJSON(path):
            from txvaurien.control.config import loadConfig

            try:
                self.proxiesConfig = loadConfig(_reactor(), registry, path)
            except ValueError as e:
                raise ConfigError(str(e))
        if core["backend"] is None and (core["http"] or self.proxiesConfig):
            for name in ("proxy", "protocol", "behavior", "behavior_scope"):
                if name in cliCore or name in fileCore:
                    raise OptionError(
                        "--" + name.replace("_", "-"),
                        "applies to the proxy --backend describes; without it, "
                        "create proxies through the control API or a JSON --config")
        if core["backend"] is None and not (core["http"] or self.proxiesConfig):
            raise OptionError(
                "--backend",
                "required: an endpoint (tcp:host=127.0.0.1:port=6379), "
                "host:port, or demo (optional with --http, which can start "
                "a bare control server, or with a JSON --config)",
            )
        self["proxy"] = [endpoints.checkListen(_reactor(), p) for p in core["proxy"]]
        if core["backend"] is not None and core["backend"].strip() != "demo":
            endpoints.parseBackend(_reactor(), core["backend"])
        if core["http"]:
            from txvaurien.control.server import controlEndpoint

            self["http_listen"] = controlEndpoint(
                core["http_host"], core["http_port"], core["http_endpoint"])
            try:
                serverFromString(_reactor(), self["http_listen"])
            except Exception as e:
                raise OptionError(
                    "--http-endpoint" if core["http_endpoint"] else "--http-host",
                    "cannot listen on {!r}: {}".format(
                        self["http_listen"], e or type(e).__name__))

        for (kind, name), values in filePlugins.items():
            # Checked alone first, so that an error names the file, the
            # section and the key.
            where = "config file {!r} [{}:{}] ".format(self.get("config"), kind, name)
            plugins = registry.behaviors if kind == "behavior" else registry.protocols
            try:
                options.validate(plugins.get(name), values, where=where, partial=True)
            except UnknownPlugin as e:
                raise ConfigError("{}: {}".format(where.strip(), e))
        pluginValues: dict[tuple[str, str], dict[str, Any]] = {}
        for plugin in set(filePlugins) | set(cliPlugins):
            pluginValues[plugin] = {
                **filePlugins.get(plugin, {}), **cliPlugins.get(plugin, {})}

        behaviorSettings: dict[str, dict[str, Any]] = {}
        for (kind, name), values in pluginValues.items():
            plugin = (registry.behaviors if kind == "behavior" else registry.protocols).get(name)
            checked = options.validate(
                plugin, values, where="{} {} option ".format(kind, name), partial=True)
            if kind == "behavior":
                behaviorSettings[plugin.name] = checked
                behaviorSettings[name] = checked

        template = registry.protocols.get(core["protocol"])
        protocolValues = pluginValues.get(("protocol", core["protocol"]), {})
        self.handler = template.configure(options.validate(
            template, protocolValues,
            where="protocol {} option ".format(template.name)))

        scope = core["behavior_scope"]
        if scope == "auto":
            scope = REQUEST if self.handler.framesRequests else CONNECTION
        elif scope == REQUEST and not self.handler.framesRequests:
            raise OptionError(
                "--behavior-scope",
                "protocol {} does not frame requests; use connection".format(
                    self.handler.name))
        self["behavior_scope"] = scope
        self.table = buildTable(core["behavior"], registry, behaviorSettings, scope)
        for warning in scopes.warnings(self.table, self.handler.name):
            _log.warn("{problem}", problem=warning)


def _exitWith(text: str) -> None:
    """
    Print C{text} (help asked for) and exit with success, as
    L{usage.Options.opt_help} does.
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) stopped early: nothing went wrong.  Point
        # stdout at /dev/null so that the flush at exit does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _isJSON(path: str) -> bool:
    """
    Whether a C{--config} file is a Toxiproxy-style JSON proxy list rather
    than an INI file.
    """
    return path.lower().endswith(".json")


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def buildOptions(registry: Registry | None = None) -> type[BaseOptions]:
    """
    The C{Options} class for C{registry}'s plugins: the core options plus
    C{--behavior-NAME-OPTION} and C{--protocol-NAME-OPTION} for every
    option every plugin declares.
    """
    registry = registry or defaultRegistry()
    parameters: list[list[Any]] = []
    flags: list[list[Any]] = []
    index: dict[str, tuple[str, str, str, bool | None]] = {}
    for kind, plugins in (("behavior", registry.behaviors), ("protocol", registry.protocols)):
        p, f, i = options.usageParameters(kind, plugins)
        parameters += p
        flags += f
        for long, (name, option, flag) in i.items():
            index[long] = (kind, name, option, flag)
    return type(
        "Options",
        (BaseOptions,),
        {
            "optParameters": parameters,
            "optFlags": flags,
            "registry": registry,
            "_pluginIndex": index,
            "__doc__": BaseOptions.__doc__,
        },
    )


Options = buildOptions()


def makeService(config: Any, reactor: Any = None) -> MultiService:
    """
    Build the proxy service from parsed L{Options}.

    @param reactor: the reactor to use; the global one by default.
    """
    if reactor is None:
        reactor = _reactor()
    logs.setLevel(config["log_level"])
    parent = MultiService()
    random = RandomSource(config["seed"])
    proxy: ProxyService | None = None
    if config["backend"] is not None:
        backendText = config["backend"].strip()
        if backendText == "demo":
            demo = DemoService(reactor)
            demo.setServiceParent(parent)
            backend: Any = DemoBackend(reactor, demo)
        else:
            backend = endpoints.parseBackend(reactor, backendText)
        factory = ProxyServerFactory(
            backend,
            config.handler,
            config.table,
            reactor,
            random,
            connectTimeout=config["timeout"],
            idleTimeout=config["idle_timeout"] or None,
            splice=config["splice"],
        )
        proxy = ProxyService(factory, config["proxy"], reactor, config["shutdown_grace"])
        proxy.exitOnListenFailure = True
        proxy.setName("proxy")
        proxy.setServiceParent(parent)
    proxiesConfig = getattr(config, "proxiesConfig", [])
    if config.get("http") or proxiesConfig:
        _controlPlane(config, reactor, parent, proxy, random, proxiesConfig)
    statsd.attach(config, parent, reactor)
    return parent


def _controlPlane(
    config: Any,
    reactor: Any,
    parent: MultiService,
    proxy: ProxyService | None,
    random: RandomSource,
    proxiesConfig: list[Any],
) -> None:
    """
    Add the proxy manager (with the proxies of a JSON C{--config}) and, with
    C{--http}, the control server, to C{parent}.  The control server is
    added last, so it starts once every proxy listens and stops first.
    """
    from txvaurien.control.manager import ProxyDefaults, ProxyManager
    from txvaurien.control.server import ControlService, buildSite

    manager = ProxyManager(ProxyDefaults(
        reactor,
        config.registry,
        random,
        connectTimeout=config["timeout"],
        idleTimeout=config["idle_timeout"] or None,
        splice=config["splice"],
        grace=config["shutdown_grace"],
    ))
    manager.setName("proxies")
    if proxy is not None:
        manager.adopt(proxy, config["backend"].strip())
    for spec in proxiesConfig:
        manager.create(spec, exitOnListenFailure=True)
    manager.setServiceParent(parent)
    if config.get("http"):
        site = buildSite(manager, config["http_token"], config["http_allow_browsers"])
        control = ControlService(site, config["http_listen"], reactor)
        control.setName("control")
        control.setServiceParent(parent)
