#!/usr/bin/env python
"""
redis-benchmark through txvaurien: C{--protocol redis} against
C{--protocol tcp}, in one run.

Starts a redis-server (no persistence, temporary directory) and two proxies
in front of it, C{twistd -n --pidfile= vaurien --protocol tcp} and C{...
--protocol redis}, both with the C{dummy} behavior, then runs
C{redis-benchmark} with C{--csv} against redis directly and through each
proxy, alternating the targets over several rounds so that a burst of load
from elsewhere on the machine hits them alike.  It prints requests per
second for each command and target (the median over rounds), the ratio
redis/tcp, and each proxy's CPU time per request (user plus system, from
C{/proc}), which depends much less than rates on what else the machine
runs.

Usage::

    python bench/bench_redis.py [--requests 100000] [--clients 50]
        [--rounds 3] [--tests get,set] [--pipeline 1] [--json out.json]
        [--no-splice] [--extra dotted.Protocol]

C{--no-splice} also measures C{--protocol tcp --no-splice} (Twisted's own
write path instead of C{splice(2)}); C{--extra} any other protocol handler
(a dotted name importable by twistd, e.g. through C{PYTHONPATH}).

The issue's target: GET and SET through C{--protocol redis} at least 0.7
times their rate through C{--protocol tcp}.  The exit status is 1 when a
ratio is below C{--target} (0.7), so CI can run it as a check, and 2 when
redis-benchmark reports an error.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import subprocess
import sys
from typing import Any

from _common import Children, binary, cpuSeconds, freePort, waitForPort


def startRedis(directory: str) -> tuple[subprocess.Popen, int]:
    port = freePort()
    process = subprocess.Popen(
        [binary("redis-server", "redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", directory,
         "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    waitForPort(port, process)
    return process, port


class BenchmarkError(RuntimeError):
    """
    redis-benchmark reported an error.
    """


def runBenchmark(port: int, tests: str, requests: int, clients: int, pipeline: int) -> dict[str, float]:
    """
    Run redis-benchmark once; return requests/s per test name.
    """
    result = subprocess.run(
        [binary("redis-benchmark", "redis-tools"), "-h", "127.0.0.1", "-p", str(port),
         "-q", "--csv",
         "-n", str(requests), "-c", str(clients), "-P", str(pipeline), "-t", tests],
        check=True, capture_output=True, text=True, timeout=600)
    out = result.stdout
    if "error" in (result.stderr + out).lower():
        raise BenchmarkError("redis-benchmark on port {}: {}".format(port, result.stderr + out))
    rates = {}
    for row in csv.reader(io.StringIO(out)):
        if not row or row[0] == "test":
            continue
        rates[row[0]] = float(row[1])
    if not rates:
        raise RuntimeError("no results from redis-benchmark:\n" + out)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", default="get,set")
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--extra", action="append", default=[],
                        help="also measure this --protocol (repeatable)")
    parser.add_argument("--no-splice", action="store_true",
                        help="also measure --protocol tcp --no-splice")
    args = parser.parse_args(argv)

    children = Children("bench-redis-")
    try:
        redisPort = children.add("direct", startRedis(children.directory))
        targets = {"direct": redisPort}
        proxies = [("tcp", ["--protocol", "tcp"]), ("redis", ["--protocol", "redis"])]
        if args.no_splice:
            proxies.append(("tcp-nosplice", ["--protocol", "tcp", "--no-splice"]))
        for spec in args.extra:
            proxies.append((spec.rsplit(".", 1)[-1], ["--protocol", spec]))
        for name, options in proxies:
            targets[name] = children.proxy(name, redisPort, options)
        # Warm up every path once (connections, caches, imports).
        for port in targets.values():
            runBenchmark(port, args.tests, min(args.requests, 5000), args.clients, args.pipeline)
        samples: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
        cpu: dict[str, list[float]] = {name: [] for name in targets if name != "direct"}
        pids = {name: pid for name, pid in children.pids.items() if name != "direct"}
        for _ in range(args.rounds):
            for name, port in targets.items():
                before = cpuSeconds(pids[name]) if name in pids else 0.0
                rates = runBenchmark(port, args.tests, args.requests, args.clients, args.pipeline)
                if name in pids:
                    used = cpuSeconds(pids[name]) - before
                    cpu[name].append(used / (args.requests * len(rates)) * 1e6)
                for test, rate in rates.items():
                    samples[name].setdefault(test, []).append(rate)
    except BenchmarkError as e:
        print(e, file=sys.stderr)
        return 2
    finally:
        children.close()

    results: dict[str, Any] = {"requests": args.requests, "clients": args.clients,
                               "pipeline": args.pipeline, "rounds": args.rounds, "tests": {}}
    ok = True
    names = list(targets)
    print(("{:<8}" + " {:>12}" * (len(names) + 1)).format("test", *names, "redis/tcp"))
    for test in samples["direct"]:
        median = {name: statistics.median(samples[name][test]) for name in targets}
        ratio = median["redis"] / median["tcp"]
        ok = ok and ratio >= args.target
        results["tests"][test] = {**median, "ratio": ratio,
                                  "samples": {name: samples[name][test] for name in targets}}
        print(("{:<8}" + " {:>12.0f}" * len(names) + " {:>12.2f}").format(
            test, *(median[name] for name in names), ratio))
    print("proxy CPU per request (median, microseconds): " + ", ".join(
        "{} {:.1f}".format(name, statistics.median(values)) for name, values in cpu.items()))
    results["cpuMicroseconds"] = cpu
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
