# -*- test-case-name: txvaurien.test.test_ctl -*-
"""
What each C{vaurienctl} command does (L{txvaurien.ctl} parses the
command line and calls them): one function per command, given the
L{Client}, the parsed arguments and the output, which prints for people
or as JSON.
"""

from __future__ import annotations

import json
from typing import Any, Callable, TextIO

from txvaurien.client import Client, ClientError


class UsageError(Exception):
    """
    The command line is wrong.
    """


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
