# -*- test-case-name: txvaurien.test.test_ctl -*-
"""
C{vaurienctl}: drive a running txvaurien from the command line.

::

    vaurienctl list-behaviors
    vaurienctl set-behavior delay --opt sleep=0.5
    vaurienctl set-behavior 20:delay,10:error --opt delay.sleep=2
    vaurienctl get-behavior
    vaurienctl set-backend 127.0.0.1:6380
    vaurienctl proxies create redis --upstream 127.0.0.1:6379 --listen 127.0.0.1:26379
    vaurienctl proxies create api --upstream localhost:8443 --ca-file ca.pem \
        --cert-key cert.pem --private-key key.pem
    vaurienctl toxics add redis --type latency --attribute latency=100
    vaurienctl --json proxies list

The server is C{--host}, else C{$VAURIEN_URL}, else C{$TOXIPROXY_URL} (as
Toxiproxy's clients read it), else C{http://127.0.0.1:8080}.  Output is for
people by default and JSON with C{--json}.  A failure exits
with status 1 and the server's message on standard error; a usage error
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Mapping, TextIO

from txvaurien._version import __version__
from txvaurien.client import Client, ClientError
from txvaurien.options import Duration

DEFAULT_URL = "http://127.0.0.1:8080"


def _value(text: str) -> Any:
    """
    A C{--opt}/C{--attribute} value: a JSON number, boolean or list if it
    reads as one, else the text (the server parses it by the option's
    declared type).
    """
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (bool, int, float, list)):
        return value
    return text


def _pairs(items: list[str] | None, what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items or []:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise UsageError("{} takes KEY=VALUE, got {!r}".format(what, item))
        result[key.strip()] = _value(raw)
    return result


def _behaviorOptions(items: list[str] | None) -> dict[str, Any]:
    """
    C{--opt} values: C{k=v}, or C{behavior.k=v} for a specification of
    several behaviors.
    """
    result: dict[str, Any] = {}
    for key, value in _pairs(items, "--opt").items():
        behavior, dot, option = key.rpartition(".")
        if dot:
            if "." not in behavior:
                behavior = behavior.replace("-", "_")  # as the server names it
            result.setdefault(behavior, {})[option] = value
        else:
            result[key] = value
    return result


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_format(v) for v in value)
    return str(value)


def _options(options: dict[str, Any]) -> str:
    return ", ".join("{}={}".format(k, _format(v)) for k, v in options.items())


class _Output:
    """
    Writes results for people or as JSON.
    """

    def __init__(self, stream: TextIO, asJSON: bool) -> None:
        self.stream = stream
        self.asJSON = asJSON

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def json(self, value: Any) -> None:
        self.stream.write(json.dumps(value, indent=2, sort_keys=False) + "\n")

    def show(self, value: Any, human: Callable[[Any], None]) -> None:
        if self.asJSON:
            self.json(value)
        else:
            human(value)

    def done(self, what: str, value: Any = None) -> None:
        if self.asJSON:
            self.json(value if value is not None else {"status": "ok"})
        else:
            self.line(what)


def _proxyLine(proxy: dict[str, Any]) -> str:
    toxics = ", ".join(t["name"] for t in proxy.get("toxics", [])) or "-"
    return "{:<20} {:<22} {:<28} {:<8} {}".format(
        proxy["name"], proxy["listen"], proxy["upstream"],
        "enabled" if proxy["enabled"] else "disabled", toxics)


def _toxicLine(toxic: dict[str, Any]) -> str:
    return "{:<24} {:<12} {:<10} {:<8} {}".format(
        toxic["name"], toxic["type"], toxic["stream"], _format(toxic["toxicity"]),
        _options(toxic.get("attributes", {})))


# Commands


def listBehaviors(client: Client, args: Any, out: _Output) -> None:
    behaviors = client.list_behaviors()

    def human(value: Any) -> None:
        for behavior in value:
            out.line("{}: {}".format(behavior["name"], behavior["description"]))
            for name, spec in behavior["options"].items():
                out.line("    {} ({}, default {}): {}".format(
                    name, spec["type"], _format(spec["default"]), spec["description"]))

    out.show(behaviors, human)


def getBehavior(client: Client, args: Any, out: _Output) -> None:
    state = client.get_behavior_state()

    def human(value: Any) -> None:
        options = value["options"]
        if options and all(isinstance(v, dict) for v in options.values()):
            out.line(value["behavior"])
            for name, opts in options.items():
                out.line("    {}: {}".format(name, _options(opts)))
        elif options:
            out.line("{} ({})".format(value["behavior"], _options(options)))
        else:
            out.line(value["behavior"])

    out.show(state, human)


def setBehavior(client: Client, args: Any, out: _Output) -> None:
    client.set_behavior(args.name, **_behaviorOptions(args.opt))
    out.done("behavior set to {}".format(args.name))


def getBackend(client: Client, args: Any, out: _Output) -> None:
    state = client.get_backend_state()

    def human(value: Any) -> None:
        out.line(value["backend"])
        if value.get("tls"):
            for line in _tlsBackendLines(value["tls"]):
                out.line(line)

    out.show(state, human)


def _tlsBackendLines(tls: dict[str, Any], indent: str = "    ") -> list[str]:
    """
    A backend's TLS as C{GET /backend} shows it, for people.
    """
    routes = tls.get("routes")
    if isinstance(routes, dict):
        lines = []
        for name, route in routes.items():
            lines.append("{}route {}: {}".format(indent, name, route["backend"]))
            if route.get("tls"):
                lines.extend(_tlsBackendLines(route["tls"], indent + "    "))
        return lines
    parts = ["TLS", "verify " + ("on" if tls.get("verify") else "OFF")]
    if tls.get("verify"):
        parts.append("trust " + str(tls.get("trust")))
    if tls.get("server_name"):
        parts.append("server name " + str(tls["server_name"]))
    if tls.get("client_certificate"):
        parts.append("client certificate")
    if tls.get("alpn"):
        parts.append("alpn " + ",".join(tls["alpn"]))
    return [indent + ", ".join(parts)]


def _tlsProxyLines(proxy: dict[str, Any]) -> list[str]:
    """
    A proxy's C{tls} object (our extension), for people.
    """
    tls = proxy.get("tls")
    if not isinstance(tls, dict):
        return []
    return ["    tls {}: {}".format(leg, _options(tls[leg]) or "defaults")
            for leg in ("listen", "upstream") if isinstance(tls.get(leg), dict)]


def setBackend(client: Client, args: Any, out: _Output) -> None:
    client.set_backend(args.backend)
    out.done("backend set to {}".format(args.backend))


def connections(client: Client, args: Any, out: _Output) -> None:
    result = client.connections(args.proxy_name)

    def human(value: Any) -> None:
        for proxy, conns in value.items():
            out.line("{}: {} connection(s)".format(proxy, len(conns)))
            for c in conns:
                out.line("    #{} {} age {:.1f}s up {} down {} behaviors {}".format(
                    c["id"], c["peer"], c["age"], c["bytes"]["upstream"],
                    c["bytes"]["downstream"], ",".join(c["behaviors"]) or "-"))

    out.show(result, human)


def proxiesList(client: Client, args: Any, out: _Output) -> None:
    proxies = client.proxies()

    def human(value: Any) -> None:
        out.line("{:<20} {:<22} {:<28} {:<8} {}".format(
            "NAME", "LISTEN", "UPSTREAM", "STATE", "TOXICS"))
        for name in sorted(value):
            out.line(_proxyLine(value[name]))

    out.show(proxies, human)


def proxiesShow(client: Client, args: Any, out: _Output) -> None:
    proxy = client.get_proxy(args.name)

    def human(value: Any) -> None:
        out.line(_proxyLine(value))
        for line in _tlsProxyLines(value):
            out.line(line)
        for toxic in value["toxics"]:
            out.line("    " + _toxicLine(toxic))

    out.show(proxy, human)


def _tlsObject(args: Any) -> dict[str, Any] | None:
    """
    The C{tls} object of C{proxies create}'s TLS flags, or L{None}.
    """
    tls: dict[str, Any] = {}
    upstream: dict[str, Any] = {}
    if args.ca_file:
        upstream["caFile"] = args.ca_file
    if args.server_name:
        upstream["serverName"] = args.server_name
    if args.no_verify:
        upstream["verify"] = False
    if upstream or args.tls_upstream:
        tls["upstream"] = upstream
    if args.private_key and not args.cert_key:
        raise UsageError("--private-key needs --cert-key")
    if args.cert_key:
        tls["listen"] = {"certKey": args.cert_key}
        if args.private_key:
            tls["listen"]["privateKey"] = args.private_key
    return tls or None


def proxiesCreate(client: Client, args: Any, out: _Output) -> None:
    proxy = client.create_proxy(args.name, args.upstream, args.listen, not args.disabled,
                                tls=_tlsObject(args))

    def human(value: Any) -> None:
        out.line("created " + _proxyLine(value))
        for line in _tlsProxyLines(value):
            out.line(line)

    out.show(proxy, human)


def proxiesUpdate(client: Client, args: Any, out: _Output) -> None:
    fields: dict[str, Any] = {}
    if args.listen is not None:
        fields["listen"] = args.listen
    if args.upstream is not None:
        fields["upstream"] = args.upstream
    proxy = client.update_proxy(args.name, **fields)
    out.show(proxy, lambda value: out.line("updated " + _proxyLine(value)))


def proxiesEnable(client: Client, args: Any, out: _Output) -> None:
    proxy = client.enable_proxy(args.name)
    out.show(proxy, lambda value: out.line("enabled " + _proxyLine(value)))


def proxiesDisable(client: Client, args: Any, out: _Output) -> None:
    proxy = client.disable_proxy(args.name)
    out.show(proxy, lambda value: out.line("disabled " + _proxyLine(value)))


def proxiesDelete(client: Client, args: Any, out: _Output) -> None:
    client.delete_proxy(args.name)
    out.done("deleted {}".format(args.name))


def proxiesPopulate(client: Client, args: Any, out: _Output) -> None:
    with open(args.file, encoding="utf-8") as f:
        try:
            listed = json.load(f)
        except ValueError as e:
            raise ClientError("{}: not JSON: {}".format(args.file, e))
    proxies = client.populate(listed)

    def human(value: Any) -> None:
        for proxy in value:
            out.line(_proxyLine(proxy))

    out.show(proxies, human)


def toxicsList(client: Client, args: Any, out: _Output) -> None:
    toxics = client.toxics(args.proxy)

    def human(value: Any) -> None:
        out.line("{:<24} {:<12} {:<10} {:<8} {}".format(
            "NAME", "TYPE", "STREAM", "TOXICITY", "ATTRIBUTES"))
        for toxic in value:
            out.line(_toxicLine(toxic))

    out.show(toxics, human)


def toxicsShow(client: Client, args: Any, out: _Output) -> None:
    toxic = client.get_toxic(args.proxy, args.name)
    out.show(toxic, lambda value: out.line(_toxicLine(value)))


def toxicsAdd(client: Client, args: Any, out: _Output) -> None:
    toxic = client.add_toxic(
        args.proxy, args.type, _pairs(args.attribute, "--attribute"),
        args.stream, args.toxicity, args.toxic_name)
    out.show(toxic, lambda value: out.line("added " + _toxicLine(value)))


def toxicsUpdate(client: Client, args: Any, out: _Output) -> None:
    toxic = client.update_toxic(
        args.proxy, args.name, _pairs(args.attribute, "--attribute"), args.toxicity)
    out.show(toxic, lambda value: out.line("updated " + _toxicLine(value)))


def toxicsRemove(client: Client, args: Any, out: _Output) -> None:
    client.remove_toxic(args.proxy, args.name)
    out.done("removed {} from {}".format(args.name, args.proxy))


def reset(client: Client, args: Any, out: _Output) -> None:
    client.reset()
    out.done("every proxy enabled, every toxic removed")


def version(client: Client, args: Any, out: _Output) -> None:
    value = client.version()
    out.show({"version": value}, lambda v: out.line(v["version"]))


def metrics(client: Client, args: Any, out: _Output) -> None:
    out.stream.write(client.metrics())


class UsageError(Exception):
    """
    The command line is wrong.
    """


class _Parser(argparse.ArgumentParser):
    """
    Reports usage errors as L{UsageError}, so L{main} writes them where
    it writes everything else.
    """

    def error(self, message: str) -> Any:
        raise UsageError("{}\n{}".format(message, self.format_usage().strip()))


def _seconds(text: str) -> float:
    """
    A C{--timeout}: a bare number of seconds or a duration with a unit.
    """
    try:
        return float(Duration("s", 0, exclusiveMinimum=True).parse(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


#: Environment variables naming the server, in order of precedence (after
#: C{--host}).  C{TOXIPROXY_URL} is the one Toxiproxy's clients read;
#: C{VAURIENCTL_URL} is kept from earlier versions.
URL_VARIABLES = ("VAURIEN_URL", "VAURIENCTL_URL", "TOXIPROXY_URL")


def serverURL(flag: str | None, environ: Mapping[str, str]) -> str:
    """
    The control API's URL: C{--host}, else the first of L{URL_VARIABLES}
    set (and not empty), else L{DEFAULT_URL}.
    """
    if flag:
        return flag
    for name in URL_VARIABLES:
        if environ.get(name):
            return environ[name]
    return DEFAULT_URL


def _explained(error: Exception) -> str:
    """
    The server's message, in vaurienctl's terms: a missing default proxy
    is named with C{--proxy}, the flag that names another, not with the
    API's C{?proxy=} query.
    """
    message = getattr(error, "message", str(error))
    if getattr(error, "status", None) == 404 and "no default proxy" in message:
        return ("no default proxy: the server was started without --backend; "
                "name a proxy with vaurienctl --proxy NAME (see 'vaurienctl proxies list')")
    return message


def buildParser() -> argparse.ArgumentParser:
    """
    The command line of C{vaurienctl}.
    """
    parser = _Parser(
        prog="vaurienctl", description="Drive a running txvaurien control API.")
    parser.add_argument(
        "--version", action="version",
        version="vaurienctl (txvaurien {})".format(__version__))
    parser.add_argument(
        "--host", default=None,
        help="control API URL (default: $VAURIEN_URL, else $TOXIPROXY_URL, "
             "else {})".format(DEFAULT_URL))
    parser.add_argument(
        "--token", default=os.environ.get("VAURIENCTL_TOKEN"),
        help="bearer token (default: $VAURIENCTL_TOKEN)")
    parser.add_argument(
        "--proxy", dest="proxy_name", default=None,
        help="proxy the behavior and backend commands act on (default: the default proxy)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--timeout", type=_seconds, default=30.0,
                        help="time to wait for an answer: seconds, or with a unit "
                             "(500ms, 2m; default 30)")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(parent: Any, name: str, handler: Any, help: str) -> Any:
        sub = parent.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    command(commands, "list-behaviors", listBehaviors, "list behaviors and their options")
    command(commands, "get-behavior", getBehavior, "show the behavior and its options")
    sub = command(commands, "set-behavior", setBehavior, "set the behavior")
    sub.add_argument("name", help="behavior name or weighted specification (20:delay,10:error)")
    sub.add_argument("--opt", action="append", metavar="OPTION=VALUE",
                     help="an option (BEHAVIOR.OPTION=VALUE with several behaviors); repeatable")
    command(commands, "get-backend", getBackend, "show the backend")
    sub = command(commands, "set-backend", setBackend, "set the backend")
    sub.add_argument("backend", help="endpoint string or host:port")
    command(commands, "connections", connections, "show live connections")
    command(commands, "reset", reset, "enable every proxy and remove every toxic")
    command(commands, "version", version, "show the Toxiproxy API version")
    command(commands, "metrics", metrics, "print Prometheus metrics")

    proxies = commands.add_parser("proxies", help="manage proxies (Toxiproxy API)")
    pcommands = proxies.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
    pcommands.required = True
    command(pcommands, "list", proxiesList, "list proxies")
    sub = command(pcommands, "show", proxiesShow, "show a proxy and its toxics")
    sub.add_argument("name")
    sub = command(pcommands, "create", proxiesCreate, "create a proxy")
    sub.add_argument("name")
    sub.add_argument("--upstream", "-u", required=True, help="backend host:port")
    sub.add_argument("--listen", "-l", default="127.0.0.1:0", help="host:port to listen on")
    sub.add_argument("--disabled", action="store_true", help="create it disabled")
    tls = sub.add_argument_group(
        "TLS (txvaurien's extension to Toxiproxy's proxies)")
    tls.add_argument("--tls-upstream", action="store_true",
                     help="speak TLS to the upstream, verified against the system's CAs")
    tls.add_argument("--ca-file", metavar="PEM",
                     help="verify the upstream against these CAs (implies --tls-upstream)")
    tls.add_argument("--server-name", metavar="NAME",
                     help="server name (SNI) to ask the upstream for (implies --tls-upstream)")
    tls.add_argument("--no-verify", action="store_true",
                     help="do not verify the upstream's certificate, for tests only "
                          "(implies --tls-upstream)")
    tls.add_argument("--cert-key", metavar="PEM",
                     help="terminate clients' TLS with this certificate (and chain)")
    tls.add_argument("--private-key", metavar="PEM",
                     help="the certificate's private key, if not in --cert-key's file")
    sub = command(pcommands, "update", proxiesUpdate, "change a proxy's listen or upstream")
    sub.add_argument("name")
    sub.add_argument("--listen", "-l")
    sub.add_argument("--upstream", "-u")
    for name, handler, help in [
        ("enable", proxiesEnable, "listen again"),
        ("disable", proxiesDisable, "stop listening and close connections"),
        ("delete", proxiesDelete, "delete a proxy"),
    ]:
        command(pcommands, name, handler, help).add_argument("name")
    sub = command(pcommands, "populate", proxiesPopulate,
                  "create or replace proxies from a JSON file")
    sub.add_argument("file")

    toxics = commands.add_parser("toxics", help="manage a proxy's toxics (Toxiproxy API)")
    tcommands = toxics.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
    tcommands.required = True
    command(tcommands, "list", toxicsList, "list a proxy's toxics").add_argument("proxy")
    sub = command(tcommands, "show", toxicsShow, "show a toxic")
    sub.add_argument("proxy")
    sub.add_argument("name")
    sub = command(tcommands, "add", toxicsAdd, "add a toxic")
    sub.add_argument("proxy")
    sub.add_argument("--type", "-t", required=True, help="behavior name (latency, bandwidth, ...)")
    sub.add_argument("--stream", "-s", default="downstream", help="upstream or downstream")
    sub.add_argument("--toxicity", type=float, default=1.0, help="probability, 0 to 1")
    sub.add_argument("--name", "-n", dest="toxic_name", help="default: TYPE_STREAM")
    sub.add_argument("--attribute", "-a", action="append", metavar="KEY=VALUE",
                     help="an attribute; repeatable")
    sub = command(tcommands, "update", toxicsUpdate, "change a toxic's attributes or toxicity")
    sub.add_argument("proxy")
    sub.add_argument("name")
    sub.add_argument("--toxicity", type=float)
    sub.add_argument("--attribute", "-a", action="append", metavar="KEY=VALUE")
    sub = command(tcommands, "remove", toxicsRemove, "remove a toxic")
    sub.add_argument("proxy")
    sub.add_argument("name")
    return parser


def main(argv: list[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """
    Run C{vaurienctl}.

    @return: the exit status: 0 on success, 1 when the server refused or
        could not be reached, 2 for a usage error.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
        client = Client.fromURL(serverURL(args.host, os.environ), token=args.token, proxy=args.proxy_name,
                                timeout=args.timeout)
    except SystemExit as e:
        return int(e.code or 0)
    except (UsageError, ValueError) as e:
        stderr.write("vaurienctl: {}\n".format(e))
        return 2
    out = _Output(stdout, args.json)
    try:
        args.handler(client, args, out)
    except (UsageError, argparse.ArgumentTypeError) as e:
        stderr.write("vaurienctl: {}\n".format(e))
        return 2
    except (ClientError, OSError) as e:
        status = getattr(e, "status", None)
        if args.json:
            stderr.write(json.dumps({"error": _explained(e), "status": status}) + "\n")
        elif status is not None:
            stderr.write("vaurienctl: HTTP {}: {}\n".format(status, _explained(e)))
        else:
            stderr.write("vaurienctl: {}\n".format(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
