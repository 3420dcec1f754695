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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEARCH = "/usr/lib/postgresql/17/bin:/usr/lib/postgresql/16/bin:/usr/lib/postgresql/15/bin"


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitForPort(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("{!r} exited with status {}".format(process.args, process.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port {} after {}s".format(port, timeout))


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=SEARCH)
    if path is None:
        raise SystemExit("{} not found (Debian package postgresql)".format(name))
    return path


def twistd() -> str:
    """
    The twistd next to this Python (a virtualenv's), else the one on PATH.
    """
    local = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("twistd")
    if found is None:
        raise SystemExit("twistd not found")
    return found


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
    subprocess.run([binary("initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-N",
                    "--locale=C", "-E", "UTF8"], check=True, capture_output=True,
                   preexec_fn=switch, cwd=directory)
    port = freePort()
    log = open(os.path.join(directory, "postgres.log"), "wb")
    process = subprocess.Popen(
        [binary("postgres"), "-D", data, "-p", str(port), "-c", "listen_addresses=127.0.0.1",
         "-c", "unix_socket_directories=" + directory, "-c", "fsync=off",
         "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=100"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=switch, cwd=directory)
    waitForPort(port, process)
    return process, port


def startProxy(protocol: str, backendPort: int, directory: str,
               scope: str = "auto") -> tuple[subprocess.Popen, int]:
    port = freePort()
    log = open(os.path.join(directory, "twistd-{}-{}.log".format(protocol, scope)), "wb")
    process = subprocess.Popen(
        [twistd(), "-n", "--pidfile=", "--logfile=-",
         "vaurien", "--protocol", protocol,
         "--proxy", "tcp:{}:interface=127.0.0.1".format(port),
         "--backend", "tcp:host=127.0.0.1:port={}".format(backendPort),
         "--behavior", "100:dummy", "--behavior-scope", scope, "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    waitForPort(port, process)
    return process, port


def pgbench(port: int, *arguments: str) -> str:
    result = subprocess.run(
        [binary("pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
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


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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

    directory = tempfile.mkdtemp(prefix="bench-pg-")
    processes = []
    modes = args.modes.split(",")
    try:
        postgres, postgresPort = startPostgres(directory)
        processes.append(postgres)
        tcp, tcpPort = startProxy("tcp", postgresPort, directory)
        processes.append(tcp)
        framed, framedPort = startProxy("postgresql", postgresPort, directory)
        processes.append(framed)
        connectionScope, connectionPort = startProxy(
            "postgresql", postgresPort, directory, "connection")
        processes.append(connectionScope)
        targets = {"direct": postgresPort, "tcp": tcpPort, "postgresql": framedPort,
                   "pg-conn": connectionPort}
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
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(directory, ignore_errors=True)

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
