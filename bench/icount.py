#!/usr/bin/env python
"""
Instructions per request in the proxy, counted by valgrind's callgrind:
C{--protocol http} or C{--protocol redis} against C{--protocol tcp}, with
the load generators and backends of C{bench_http.py} and C{bench_redis.py},
but 10 connections instead of their 50 (the proxy is much slower under
valgrind).

Rates on a shared machine move by a third from one run to the next, which
hides changes of a few percent in the data path.  The number of
instructions the proxy's process executes per request barely moves (it
counts user space only: system calls and the kernel's side of the
sockets are not in it), so it shows what a change to the framing or to
the Pipe saved, before a rate benchmark says what that is worth.

Each proxy runs under callgrind with instrumentation off, gets some load
to warm up, then counts while the load generator runs (C{wrk} against
the tiny HTTP backend of C{bench_http.py}, or C{redis-benchmark} SET and
GET against a redis-server).  Needs valgrind (Debian package valgrind),
and wrk or redis-server and redis-tools.

Usage::

    python bench/icount.py [--protocol http|redis] [--seconds 15]
        [--requests 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

from _common import ROOT, binary, childEnv, freePort, stop, twistd, waitForPort


def startProxy(backendPort: int, protocol: str, out: str) -> tuple[subprocess.Popen, int]:
    """
    Start C{twistd -n vaurien} with the dummy behavior under callgrind,
    instrumentation off; return it and its port once it listens.
    """
    port = freePort()
    process = subprocess.Popen(
        [binary("valgrind", "valgrind"), "--tool=callgrind", "--instr-atstart=no",
         "--callgrind-out-file=" + out,
         twistd(), "-n", "--pidfile=", "--logfile=/dev/null", "vaurien",
         "--proxy", "tcp:{}:interface=127.0.0.1".format(port),
         "--backend", "tcp:host=127.0.0.1:port={}".format(backendPort),
         "--behavior", "100:dummy", "--log-level", "warn", "--protocol", protocol],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=childEnv())
    try:
        waitForPort(port, process, timeout=600)
    except Exception:
        stop(process)
        raise
    return process, port


def control(pid: int, *args: str) -> None:
    subprocess.run([binary("callgrind_control", "valgrind"), *args, str(pid)],
                   check=True, capture_output=True, timeout=120)


def instructions(out: str) -> int:
    """
    The instructions counted in the dumps callgrind wrote for C{out}.
    """
    total = 0
    for path in glob.glob(out + "*"):
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
    return total


def loadHTTP(port: int, seconds: int) -> int:
    """
    Run wrk (10 keep-alive connections); return the requests it made.
    """
    out = subprocess.run(
        [binary("wrk", "wrk"), "-t", "1", "-c", "10", "-d", "{}s".format(seconds),
         "http://127.0.0.1:{}/".format(port)],
        check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    match = re.search(r"(\d+) requests in", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk failed:\n" + out)
    return int(match.group(1))


def loadRedis(port: int, requests: int) -> int:
    """
    Run redis-benchmark SET then GET (10 clients); return the requests.
    """
    result = subprocess.run(
        [binary("redis-benchmark", "redis-tools"), "-h", "127.0.0.1", "-p", str(port),
         "-q", "-n", str(requests), "-c", "10", "-t", "set,get"],
        check=True, capture_output=True, text=True, timeout=3600)
    if "error" in (result.stdout + result.stderr).lower():
        raise RuntimeError("redis-benchmark failed:\n" + result.stdout + result.stderr)
    return 2 * requests


def startBackend(protocol: str, directory: str) -> tuple[subprocess.Popen, int]:
    if protocol == "http":
        from bench_http import startBackend as startHTTP
        return startHTTP("tiny")
    from bench_redis import startRedis
    return startRedis(directory)


def measure(protocol: str, target: str, backendPort: int, options: Any, directory: str) -> dict[str, int]:
    """
    Instructions per request through a proxy with C{--protocol target}.
    """
    out = os.path.join(directory, "callgrind.{}".format(target))
    process, port = startProxy(backendPort, target, out)
    try:
        if protocol == "http":
            loadHTTP(port, 3)
        else:
            loadRedis(port, 2000)
        control(process.pid, "-z")
        control(process.pid, "-i", "on")
        if protocol == "http":
            requests = loadHTTP(port, options.seconds)
        else:
            requests = loadRedis(port, options.requests)
        control(process.pid, "-i", "off")
        control(process.pid, "-d")
    finally:
        stop(process, timeout=60)
    total = instructions(out)
    return {"requests": requests, "instructions": total, "perRequest": total // requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--protocol", choices=["http", "redis"], default="http")
    parser.add_argument("--seconds", type=int, default=15, help="wrk run (http)")
    parser.add_argument("--requests", type=int, default=20000,
                        help="redis-benchmark requests per command (redis)")
    parser.add_argument("--json", help="also write the results to this file")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="txvaurien-icount-") as directory:
        backend, backendPort = startBackend(options.protocol, directory)
        try:
            results = {target: measure(options.protocol, target, backendPort, options, directory)
                       for target in ("tcp", options.protocol)}
        finally:
            stop(backend)
    base = results["tcp"]["perRequest"]
    mine = results[options.protocol]["perRequest"]
    print("{:<8} {:>10} {:>14} {:>12}".format("target", "requests", "instructions", "per request"))
    for target, row in results.items():
        print("{:<8} {:>10} {:>14} {:>12}".format(
            target, row["requests"], row["instructions"], row["perRequest"]))
    print("{}/tcp instructions per request: {:.2f} ({} more)".format(
        options.protocol, mine / base, mine - base))
    if options.json:
        with open(options.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
