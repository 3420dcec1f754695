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
from typing import Any, Mapping, TextIO

from txvaurien._ctlcommands import (
    UsageError,
    _Output,
    connections,
    getBackend,
    getBehavior,
    listBehaviors,
    metrics,
    proxiesCreate,
    proxiesDelete,
    proxiesDisable,
    proxiesEnable,
    proxiesList,
    proxiesPopulate,
    proxiesShow,
    proxiesUpdate,
    reset,
    setBackend,
    setBehavior,
    toxicsAdd,
    toxicsList,
    toxicsRemove,
    toxicsShow,
    toxicsUpdate,
    version,
)
from txvaurien._version import __version__
from txvaurien.client import Client, ClientError
from txvaurien.options import Duration

DEFAULT_URL = "http://127.0.0.1:8080"

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
