#!/usr/bin/env python
"""
pgbench through txvaurien: C{--protocol postgresql} against C{--protocol
tcp}, in one run.

Creates a PostgreSQL cluster in a temporary directory (as the C{postgres}
or C{nobody} user when run as root: PostgreSQL refuses root), starts it
on an ephemeral port of 127.0.0.1 and three proxies in front of it, all
with the C{dummy} behavior: C{twistd -n vaurien --protocol tcp}, C{...
--protocol postgresql} (which frames every message and, its behavior
table having request scope, sequences every request and its response),
and the same with C{--behavior-scope connection} (column C{pg-conn}:
framing without the per-request bookkeeping); initialises pgbench's
tables, then
runs C{pgbench -T SECONDS} against the server directly and through each
proxy, for each query mode, alternating the targets over several rounds
so that a burst of load from elsewhere on the machine hits them alike.
It prints transactions per second (the median over rounds) and the ratio
postgresql/tcp.

Usage::

    python bench/bench_pg.py [--seconds 5] [--clients 4] [--rounds 3]
        [--modes simple,extended,prepared] [--json out.json]

The exit status is 1 when a ratio is below C{--target} (default 0: only
report), 2 when a pgbench run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import statistics
import subprocess
import sys
from typing import Any, Callable

from _common import Children, binary, freePort, waitForPort


def asUser() -> tuple[int | None, int | None, Callable[[], None] | None]:
    """
    The uid and gid PostgreSQL must run as, and a C{preexec_fn} switching
    to them (nothing when not root).
    """
    if os.getuid() != 0:
        return None, None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        uid, gid = entry.pw_uid, entry.pw_gid

        def switch() -> None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        return uid, gid, switch
    raise SystemExit("running as root and no postgres or nobody user to run PostgreSQL as")


def startPostgres(directory: str) -> tuple[subprocess.Popen, int]:
    uid, gid, switch = asUser()
    data = os.path.join(directory, "data")
    if uid is not None and gid is not None:
        os.chown(directory, uid, gid)
    subprocess.run([binary("initdb", "postgresql"), "-D", data, "-U", "postgres",
                    "-A", "trust", "-N", "--locale=C", "-E", "UTF8"],
                   check=True, capture_output=True, preexec_fn=switch, cwd=directory)
    port = freePort()
    log = open(os.path.join(directory, "postgres.log"), "wb")
    process = subprocess.Popen(
        [binary("postgres", "postgresql"), "-D", data, "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + directory,
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=100"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=switch, cwd=directory)
    waitForPort(port, process)
    return process, port


def pgbench(port: int, *arguments: str) -> str:
    result = subprocess.run(
        [binary("pgbench", "postgresql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         *arguments, "postgres"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError("pgbench {} failed:\n{}{}".format(
            " ".join(arguments), result.stdout, result.stderr))
    return result.stdout + result.stderr


def tps(output: str) -> float:
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if match is None:
        raise RuntimeError("no tps in pgbench output:\n" + output)
    if not re.search(r"number of failed transactions: 0\b", output):
        raise RuntimeError("pgbench reports failed transactions:\n" + output)
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--modes", default="simple,extended,prepared")
    parser.add_argument("--select-only", action="store_true",
                        help="pgbench's built-in select-only script (-S)")
    parser.add_argument("--target", type=float, default=0.0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    children = Children("bench-pg-")
    modes = args.modes.split(",")
    try:
        postgresPort = children.add("direct", startPostgres(children.directory))
        targets = {"direct": postgresPort}
        for name, protocol, scope in (("tcp", "tcp", "auto"), ("postgresql", "postgresql", "auto"),
                                      ("pg-conn", "postgresql", "connection")):
            targets[name] = children.proxy(
                name, postgresPort, ["--protocol", protocol, "--behavior-scope", scope])
        framedPort = targets["postgresql"]
        pgbench(framedPort, "-i", "-q", "-s", str(args.scale))
        common = ["-c", str(args.clients), "-j", str(args.threads)]
        if args.select_only:
            common.append("-S")
        for port in targets.values():
            pgbench(port, *common, "-T", "1")
        samples: dict[str, dict[str, list[float]]] = {m: {t: [] for t in targets} for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                for name, port in targets.items():
                    output = pgbench(port, *common, "-M", mode, "-T", str(args.seconds))
                    samples[mode][name].append(tps(output))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    finally:
        children.close()

    results: dict[str, Any] = {"seconds": args.seconds, "clients": args.clients,
                               "rounds": args.rounds, "selectOnly": args.select_only,
                               "modes": {}}
    ok = True
    print("{:<9} {:>10} {:>10} {:>11} {:>10} {:>15}".format(
        "mode", "direct", "tcp", "postgresql", "pg-conn", "postgresql/tcp"))
    for mode in modes:
        median = {name: statistics.median(samples[mode][name]) for name in targets}
        ratio = median["postgresql"] / median["tcp"]
        ok = ok and ratio >= args.target
        results["modes"][mode] = {**median, "ratio": ratio, "samples": samples[mode]}
        print("{:<9} {:>10.0f} {:>10.0f} {:>11.0f} {:>10.0f} {:>15.2f}".format(
            mode, median["direct"], median["tcp"], median["postgresql"], median["pg-conn"],
            ratio))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
