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
from twisted.python import usage

from txvaurien import config as _config
from txvaurien import _twisted, clihelp, endpoints, limits, logs, options, scopes, statsd
from txvaurien.config import (
    CORE,
    DEFAULT_LISTEN,
    ConfigError,
    ConfigurationError,
    readConfig,
)
from txvaurien.options import OptionError
from txvaurien.gcpolicy import CollectorService
from txvaurien.registry import Registry, UnknownPlugin, defaultRegistry
from txvaurien.table import TableError

__all__ = [
    "CORE", "DEFAULT_LISTEN", "ConfigError", "ConfigurationError", "readConfig",
    "BaseOptions", "Options", "buildOptions", "makeService",
]

_SHORT = {"proxy": "p", "backend": "b"}

_log = logs.logger("txvaurien.tap")


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
        # Before anything imports the default reactor: twistd's, when no
        # --reactor was given, is txvaurien's epoll reactor (see
        # txvaurien._twisted.EPollReactor).
        _twisted.installReactor()
        try:
            usage.Options.parseOptions(self, options)
        except usage.UsageError as e:
            error = usage.UsageError(clihelp.explain(str(e), clihelp.longOptions(self)))
            _exitUnderTwistd(self, error)
            raise error from None

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
        except (OptionError, TableError, UnknownPlugin, ConfigurationError,
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

    def _resolve(self) -> None:
        """
        Build the L{txvaurien.config.Configuration} of what was given, and
        expose its values as options (C{self["timeout"]}, C{self.table},
        C{self.handler}, C{self.proxiesConfig}).
        """
        cliCore, cliPlugins = self._given()
        configuration = _config.resolve(
            cliCore, cliPlugins, self.get("config"), self.registry, _reactor())
        #: What the command line gave, resolved again with the
        #: configuration file on C{SIGHUP}.
        self.given = (cliCore, cliPlugins)
        self.configuration = configuration
        for key, value in configuration.core.items():
            self[key] = value
        if configuration.httpListen is not None:
            self["http_listen"] = configuration.httpListen
        self.proxiesConfig: list[Any] = configuration.proxies
        self.handler = configuration.handler
        self.table = configuration.table
        for warning in scopes.warnings(self.table, self.handler.name):
            _log.warn("{problem}", problem=warning)

    def reload(self) -> _config.Configuration:
        """
        Read the configuration file again, with the command line's values
        still winning over it.

        @raise txvaurien.config.ConfigurationError: if it is now invalid.
        """
        cliCore, cliPlugins = self.given
        return _config.resolve(
            cliCore, cliPlugins, self.get("config"), self.registry, _reactor())


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


def _exitUnderTwistd(options: Any, error: usage.UsageError) -> None:
    """
    Under C{twistd}, report a usage error as it does and exit with status
    1.  Twisted before 26.10 printed it and exited with status 0, so that
    scripts could not tell; C{twist} and embedding get the error raised.
    """
    from twisted.application import app

    parent = getattr(options, "parent", None)
    if isinstance(parent, app.ServerOptions):
        print(parent)
        print("{}: {}".format(" ".join(sys.argv[0:2]), error))
        sys.exit(1)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def buildOptions(
    registry: Registry | None = None, base: type[BaseOptions] | None = None
) -> type[BaseOptions]:
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
        (base or BaseOptions,),
        {
            "optParameters": parameters,
            "optFlags": flags,
            "registry": registry,
            "_pluginIndex": index,
            "__doc__": BaseOptions.__doc__,
        },
    )


class Options(BaseOptions):
    """
    Options of C{twistd vaurien}: the core options and one per option of
    every plugin the process knows.

    The plugins are discovered when the options are first made (twistd
    makes them to parse a command line), not when this module is
    imported: listing twistd's commands stays cheap, and plugins
    installed after import are found.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        made: type[BaseOptions] = _defaultOptions() if cls is Options else cls
        return BaseOptions.__new__(made)


_defaultClass: list[type[BaseOptions]] = []


def _defaultOptions() -> type[BaseOptions]:
    """
    The L{Options} class for the process-wide registry, made on first use.
    """
    if not _defaultClass:
        _defaultClass.append(buildOptions(defaultRegistry(), Options))
    return _defaultClass[0]


def makeService(config: Any, reactor: Any = None) -> MultiService:
    """
    Build the proxy service from parsed L{Options}: the service tree of
    their configuration (L{txvaurien.service.buildService}), after raising
    the open-file limit, plus the service that reloads the configuration
    on C{SIGHUP} and reopens the log on C{SIGUSR1}.

    @param reactor: the reactor to use; the global one by default.
    """
    if reactor is None:
        reactor = _reactor()
    from txvaurien.reload import ReloadingService
    from txvaurien.service import buildService

    limits.raiseOpenFileLimit()
    parent = ReloadingService(config.configuration, config.reload, reactor)
    service = buildService(config.configuration, reactor, parent)
    statsd.attach(config.configuration.core, service, reactor)
    parent.collector = CollectorService(
        reactor, config.configuration.core["gc_interval"] or None)
    return service
