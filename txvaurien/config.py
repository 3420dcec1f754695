# -*- test-case-name: txvaurien.test.test_config -*-
"""
Configuration apart from the command line.

This module turns what a user gives, from any source, into plain checked
values: a L{Configuration}.  The sources are

  - the core options given on the command line or, for embedding, as
    Python values (L{resolve}, L{fromValues});
  - an INI file (C{[vaurien]}, C{[behavior:NAME]}, C{[protocol:NAME]};
    L{readINI});
  - a Toxiproxy-style JSON proxy list (a C{--config} file ending in
    C{.json}; L{txvaurien.control.config.loadConfig}).

Precedence: command line > configuration file > declared default.  Every
core option is declared once, in L{CORE}, and L{txvaurien.options} makes
flags, INI keys and documentation of it.

Neither L{txvaurien.tap} nor any service is imported here: the command
line (C{tap}), embedding (L{txvaurien.service.makeProxyService}) and the
reload on C{SIGHUP} all build a L{Configuration} the same way.  Every
error is a L{ConfigurationError}; C{tap} turns it into a usage error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from twisted.internet.endpoints import serverFromString

from txvaurien import endpoints, inifile, journal, logs, options, scenario, statsd
from txvaurien.datagram.addresses import DATAGRAM_OPTIONS, isDatagram
from txvaurien.options import Choice, Duration, ListOf, Number, OptionError, String
from txvaurien.registry import Registry, UnknownPlugin
from txvaurien.table import CONNECTION_SCOPE, REQUEST_SCOPE, BehaviorTable, TableError, buildTable

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
        "unix:/path, tls:...), host:port, 'demo' for the built-in demo "
        "HTTP backend, or routes NAME=BACKEND|...|*=BACKEND chosen by the "
        "TLS server name (sni:...) or the HTTP Host (host:..., with "
        "--protocol http)",
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
        Choice("auto", CONNECTION_SCOPE, REQUEST_SCOPE),
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
    "half_closed_timeout": (
        "Close a half-closed connection after this long idle (0: never)",
        Duration("s"),
        300.0,
    ),
    "gc_interval": (
        "Run full garbage collections on this timer (0: when Python decides)",
        Duration("s"),
        300.0,
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
    "backlog": (
        "Listen backlog of the proxy and control ports (default: the "
        "system's maximum, net.core.somaxconn)",
        Number(int, 1, 65535),
        None,
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
    "http_request_timeout": (
        "Time a control API client may take to send a whole request (a "
        "slower one is cut off)",
        Duration("s", 0, exclusiveMinimum=True),
        10.0,
    ),
    "http_idle_timeout": (
        "Close a control API connection after this long without a "
        "request",
        Duration("s", 0, exclusiveMinimum=True),
        60.0,
    ),
}

CORE.update(DATAGRAM_OPTIONS)
CORE.update(statsd.OPTIONS)
CORE.update(journal.OPTIONS)
CORE.update(scenario.OPTIONS)

_log = logs.logger("txvaurien.config")


class ConfigurationError(ValueError):
    """
    A configuration is invalid: a bad option value, an unreadable or
    invalid configuration file, an unknown plugin, an unusable endpoint.
    The message says which option, file, section or key, and why.
    """


#: Kept for code that knew the INI reader's error by its first name.
ConfigError = ConfigurationError

#: What the per-plugin option values look like: C{(kind, name)} (kind
#: C{"behavior"} or C{"protocol"}) to option name to value.
PluginValues = dict[tuple[str, str], dict[str, Any]]


@dataclass
class Configuration:
    """
    Everything a running C{twistd vaurien} (or an embedded proxy) is made
    of, checked.

    @ivar core: every core option (L{CORE}) by name, with its value: text
        parsed, defaults filled in; C{proxy} holds server endpoint strings
        and C{behavior_scope} is resolved (never C{auto}).
    @ivar handler: the configured protocol handler.
    @ivar table: the behavior table.
    @ivar behaviorSettings: behavior name to the option values given for
        it (from the file and the command line).
    @ivar protocolSettings: the checked options of the protocol handler.
    @ivar proxies: the proxies of a JSON configuration file
        (L{txvaurien.control.config.ProxySpec}s).
    @ivar httpListen: the control API's endpoint string, with C{--http}.
    @ivar registry: the plugins names were looked up in.
    @ivar path: the configuration file, or L{None}.
    """

    core: dict[str, Any]
    handler: Any
    table: BehaviorTable
    registry: Registry
    behaviorSettings: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocolSettings: dict[str, Any] = field(default_factory=dict)
    proxies: list[Any] = field(default_factory=list)
    httpListen: str | None = None
    path: str | None = None
    scenarioPlan: Any = None

    def __getitem__(self, name: str) -> Any:
        """
        A core option's value (C{configuration["timeout"]}).
        """
        return self.core[name]

    def get(self, name: str, default: Any = None) -> Any:
        """
        A core option's value, or C{default} for an unknown name.
        """
        return self.core.get(name, default)


def isJSON(path: str) -> bool:
    """
    Whether a C{--config} file is a Toxiproxy-style JSON proxy list rather
    than an INI file.
    """
    return path.lower().endswith(".json")


def readConfig(path: str) -> dict[str, dict[str, str]]:
    """
    Read an INI file into section name to raw values.

    @raise ConfigurationError: if it cannot be read or parsed.
    """
    try:
        return inifile.readINI(path)
    except inifile.INIError as e:
        raise ConfigurationError(str(e))


def readINI(path: str) -> tuple[dict[str, Any], PluginValues]:
    """
    The core and plugin option values an INI file gives, as text.

    @raise ConfigurationError: for an unreadable file, an unknown section
        or an unknown key of C{[vaurien]}.
    """
    core: dict[str, Any] = {}
    plugins: PluginValues = {}
    for section, values in readConfig(path).items():
        where = "config file {!r} [{}]".format(path, section)
        if section in ("vaurien", "statsd"):
            try:
                given, notes = inifile.vaurienValues(section, values, CORE)
            except inifile.INIError as e:
                raise ConfigurationError("config file {!r} {}".format(path, e))
            for key, why in notes:
                _log.info("{where} {key}: {why}", where=where, key=key, why=why)
            for name, value in given.items():
                if name == "proxy":
                    value = ",".join(value.split())
                core[name] = value
            continue
        kind, colon, name = section.partition(":")
        if not colon or kind not in ("behavior", "protocol") or not name.strip():
            raise ConfigurationError(
                "{}: unknown section; use [vaurien], [behavior:NAME], "
                "[protocol:NAME] or [statsd]".format(where))
        plugins[(kind, name.strip())] = values
    return core, plugins


def _globalReactor() -> Any:
    from twisted.internet import reactor

    return reactor


def resolve(
    given: Mapping[str, Any],
    plugins: Mapping[tuple[str, str], Mapping[str, Any]],
    path: str | None,
    registry: Registry,
    reactor: Any = None,
    where: str = "--",
) -> Configuration:
    """
    Check everything and build the L{Configuration}.

    @param given: core option values given directly (command line or
        Python), by name; they win over the file's.
    @param plugins: plugin option values given directly.
    @param path: the configuration file (INI, or JSON ending in C{.json}),
        or L{None}.
    @param reactor: used only to check endpoint strings (the global
        reactor by default).
    @param where: the prefix of a directly given option in messages.
    @raise ConfigurationError: naming the first thing wrong.
    """
    try:
        return _resolve(given, plugins, path, registry,
                        reactor if reactor is not None else _globalReactor(), where)
    except ConfigurationError:
        raise
    except (OptionError, TableError, UnknownPlugin, endpoints.EndpointError) as e:
        raise ConfigurationError(str(e)) from e


def _resolve(
    given: Mapping[str, Any],
    givenPlugins: Mapping[tuple[str, str], Mapping[str, Any]],
    path: str | None,
    registry: Registry,
    reactor: Any,
    where: str,
) -> Configuration:
    fileCore: dict[str, Any] = {}
    filePlugins: PluginValues = {}
    if path and not isJSON(path):
        fileCore, filePlugins = readINI(path)
    core = options.validate(CORE, {})
    core.update(options.validate(
        CORE, fileCore, where="config file {!r} [vaurien] ".format(path), partial=True))
    core.update(options.validate(
        CORE, {k.replace("_", "-"): v for k, v in given.items()}, where=where,
        partial=True))
    if (core["backend"] is not None and core["backend"].strip() == "demo"
            and "protocol" not in given and "protocol" not in fileCore):
        # The demo backend speaks HTTP: frame it so, so that errors are
        # HTTP responses a client can parse.
        core["protocol"] = "http"

    proxies: list[Any] = []
    if path and isJSON(path):
        from txvaurien.control.config import loadConfig

        try:
            proxies = loadConfig(reactor, registry, path)
        except ValueError as e:
            raise ConfigurationError(str(e)) from e
    if core["backend"] is None and (core["http"] or proxies):
        for name in ("proxy", "protocol", "behavior", "behavior_scope"):
            if name in given or name in fileCore:
                raise OptionError(
                    "--" + name.replace("_", "-"),
                    "applies to the proxy --backend describes; without it, "
                    "create proxies through the control API or a JSON --config")
    if core["backend"] is None and not (core["http"] or proxies):
        raise OptionError(
            "--backend",
            "required: an endpoint (tcp:host=127.0.0.1:port=6379), "
            "host:port, or demo (optional with --http, which can start "
            "a bare control server, or with a JSON --config)",
        )
    core["proxy"] = [p if isDatagram(p) else endpoints.checkListen(reactor, p)
                     for p in core["proxy"]]
    backend = None
    if (core["backend"] is not None and core["backend"].strip() != "demo"
            and not isDatagram(core["backend"])):
        backend = endpoints.parseBackend(reactor, core["backend"])
    httpListen = None
    if core["http"]:
        from txvaurien.control.server import controlEndpoint

        httpListen = controlEndpoint(
            core["http_host"], core["http_port"], core["http_endpoint"])
        try:
            serverFromString(reactor, httpListen)
        except Exception as e:
            raise OptionError(
                "--http-endpoint" if core["http_endpoint"] else "--http-host",
                "cannot listen on {!r}: {}".format(httpListen, e or type(e).__name__))

    for (kind, name), values in filePlugins.items():
        # Checked alone first, so that an error names the file, the
        # section and the key.
        fileWhere = "config file {!r} [{}:{}] ".format(path, kind, name)
        found = registry.behaviors if kind == "behavior" else registry.protocols
        try:
            options.validate(found.get(name), values, where=fileWhere, partial=True)
        except UnknownPlugin as e:
            raise ConfigurationError("{}: {}".format(fileWhere.strip(), e))
    pluginValues: PluginValues = {}
    for plugin in set(filePlugins) | set(givenPlugins):
        pluginValues[plugin] = {
            **filePlugins.get(plugin, {}), **givenPlugins.get(plugin, {})}

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
    protocolSettings = options.validate(
        template, protocolValues, where="protocol {} option ".format(template.name))
    handler = template.configure(protocolSettings)
    if backend is not None:
        endpoints.checkProtocol(backend, handler.name)

    scope = core["behavior_scope"]
    if scope == "auto":
        scope = REQUEST_SCOPE if handler.framesRequests else CONNECTION_SCOPE
    elif scope == REQUEST_SCOPE and not handler.framesRequests:
        raise OptionError(
            "--behavior-scope",
            "protocol {} does not frame requests; use connection".format(handler.name))
    core["behavior_scope"] = scope
    table = buildTable(core["behavior"], registry, behaviorSettings, scope, handler.name)
    configuration = Configuration(
        core=core, handler=handler, table=table, registry=registry,
        behaviorSettings=behaviorSettings, protocolSettings=protocolSettings,
        proxies=proxies, httpListen=httpListen, path=path or None)
    configuration.scenarioPlan = scenario.checkedFile(configuration)
    from txvaurien.datagram.service import checkConfig

    checkConfig(core["proxy"], core["backend"], table)
    return configuration


def splitValues(
    values: Mapping[str, Any],
) -> tuple[dict[str, Any], PluginValues, str | None]:
    """
    Python keyword values, as L{txvaurien.service.makeProxyService} takes
    them, split into core values, plugin values and the configuration
    file.

    @param values: core options with underscores (or dashes; L{None}
        for an option leaves it unset, at its default), plus
        C{behavior_options} and C{protocol_options} (plugin name to option
        values) and C{config} (a file path).
    @raise ConfigurationError: for an unknown option.
    """
    values = dict(values)
    plugins: PluginValues = {}
    for kind in ("behavior", "protocol"):
        for name, given in (values.pop(kind + "_options", None) or {}).items():
            plugins.setdefault((kind, name), {}).update(given)
    path = values.pop("config", None)
    core: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in CORE:
            raise ConfigurationError("unknown option {!r}".format(key))
        if value is None:
            # Unset: the declared default (as an option not given).
            continue
        if name == "proxy" and isinstance(value, str):
            value = [value]
        core[name] = value
    return core, plugins, path


def fromValues(
    values: Mapping[str, Any], registry: Registry | None = None, reactor: Any = None
) -> Configuration:
    """
    The L{Configuration} for Python keyword values (see L{splitValues}),
    checked as the command line checks them.

    @param registry: where plugin names are looked up; the process-wide
        registry (discovered on first use) by default.
    @raise ConfigurationError: naming the first thing wrong.
    """
    if registry is None:
        from txvaurien.registry import defaultRegistry

        registry = defaultRegistry()
    core, plugins, path = splitValues(values)
    return resolve(core, plugins, path, registry, reactor)
