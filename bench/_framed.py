"""
The request/response workloads of C{bench.py}, against real backends:

    - B{nginx}: C{wrk -t1 -c10} (keep-alive) for a small static file,
      directly, through haproxy (C{mode tcp}), through txvaurien C{--protocol
      tcp} and through txvaurien C{--protocol http};
    - B{redis}: C{redis-benchmark -c 20 -t get,set} (no pipelining),
      directly, through txvaurien C{--protocol tcp} and C{--protocol redis};
    - B{tiny}: the microscope, C{wrk} against a tiny Python backend that
      answers every request head at once (see C{bench_http.py}), so that
      the proxy's own cost is what is measured: C{--protocol tcp} and
      C{--protocol http}.

Each group starts its backend and proxies (C{--behavior 100:dummy}), warms
every path up, then runs rounds that interleave the targets, and keeps for
each target the median rate and the median CPU time its process used per
request (user plus system, from C{/proc}: unlike rates, it hardly moves
with other load on the machine).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any, Callable

from _common import Children, NotListening, cpuSeconds, freePort, stop, waitForPort
from _peers import haproxyCommand, nginxCommand

Progress = Callable[[str], None]


def startChild(children: Children, name: str, command: list[str], port: int) -> int:
    """
    Start C{command}, which listens on C{port}, keep it in C{children} as
    C{name}, and return C{port} once it listens.
    """
    log = open("{}/{}.log".format(children.directory, name), "wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, cwd=children.directory)
    log.close()
    try:
        waitForPort(port, process)
    except NotListening:
        stop(process)
        raise
    return children.add(name, (process, port))


def _rounds(targets: dict[str, int], pids: dict[str, int], rounds: int,
            measure: Callable[[int], tuple[dict[str, float], int]],
            progress: Progress, group: str) -> dict[str, Any]:
    """
    Run C{measure(port)} (which returns the rates by test and the number
    of requests made) C{rounds} times for every target, interleaved, and
    return the medians: C{{target: {"rates": {test: rate}, "cpu": us}}}.
    """
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    for r in range(rounds):
        for name, port in targets.items():
            before = cpuSeconds(pids[name])
            rates, requests = measure(port)
            cpu[name].append((cpuSeconds(pids[name]) - before) / max(1, requests) * 1e6)
            for test, rate in rates.items():
                samples[name].setdefault(test, []).append(rate)
            progress("{} {}: round {}: {}".format(group, name, r + 1, ", ".join(
                "{} {:.0f}/s".format(test, rate) for test, rate in rates.items())))
            time.sleep(0.2)
    return {name: {"rates": {test: statistics.median(v) for test, v in samples[name].items()},
                   "samples": samples[name],
                   "cpuMicroseconds": statistics.median(cpu[name])}
            for name in targets}


def _wrk(seconds: float, connections: int, path: str = "/") -> Callable[[int], tuple[dict[str, float], int]]:
    from bench_http import runWrk

    def measure(port: int) -> tuple[dict[str, float], int]:
        result = runWrk(port, seconds, connections, 1, path)
        if result["errors"] or result["non2xx"]:
            raise RuntimeError("wrk on port {}: {} socket errors, {} non-2xx".format(
                port, result["errors"], result["non2xx"]))
        return {"wrk": result["rate"]}, result["requests"]
    return measure


def nginx(opts: Any, progress: Progress) -> dict[str, Any]:
    """
    wrk against nginx directly, through haproxy, and through txvaurien
    C{tcp} and C{http}.
    """
    children = Children("txvaurien-bench-nginx-")
    try:
        port = freePort()
        startChild(children, "direct", nginxCommand(children.directory, port), port)
        targets = {"direct": port}
        hport = freePort()
        targets["haproxy"] = startChild(
            children, "haproxy",
            haproxyCommand(children.directory, "nginx", hport, "127.0.0.1:{}".format(port)),
            hport)
        targets["tcp"] = children.proxy("tcp", port, ["--protocol", "tcp"])
        targets["http"] = children.proxy("http", port, ["--protocol", "http"])
        measure = _wrk(opts.wrk_seconds, opts.wrk_connections, "/index.html")
        warm = _wrk(1, opts.wrk_connections, "/index.html")
        for each in targets.values():
            warm(each)
        return _rounds(targets, children.pids, opts.rounds, measure, progress, "nginx")
    finally:
        children.close()


def tiny(opts: Any, progress: Progress) -> dict[str, Any]:
    """
    The microscope: wrk against the tiny backend, directly and through
    txvaurien C{tcp} and C{http}.
    """
    from bench_http import startBackend
    children = Children("txvaurien-bench-tiny-")
    try:
        port = children.add("direct", startBackend("tiny"))
        targets = {"direct": port}
        targets["tcp"] = children.proxy("tcp", port, ["--protocol", "tcp"])
        targets["http"] = children.proxy("http", port, ["--protocol", "http"])
        measure = _wrk(opts.wrk_seconds, opts.wrk_connections)
        warm = _wrk(1, opts.wrk_connections)
        for each in targets.values():
            warm(each)
        return _rounds(targets, children.pids, opts.rounds, measure, progress, "tiny")
    finally:
        children.close()


def redis(opts: Any, progress: Progress) -> dict[str, Any]:
    """
    redis-benchmark GET and SET against redis-server directly and through
    txvaurien C{tcp} and C{redis}.
    """
    from bench_redis import runBenchmark, startRedis
    children = Children("txvaurien-bench-redis-")
    try:
        port = children.add("direct", startRedis(children.directory))
        targets = {"direct": port}
        targets["tcp"] = children.proxy("tcp", port, ["--protocol", "tcp"])
        targets["redis"] = children.proxy("redis", port, ["--protocol", "redis"])
        n, clients = opts.redis_requests, opts.redis_clients

        def measure(p: int) -> tuple[dict[str, float], int]:
            rates = runBenchmark(p, "get,set", n, clients, 1)
            return rates, n * len(rates)

        for each in targets.values():
            runBenchmark(each, "get,set", min(n, 5000), clients, 1)
        return _rounds(targets, children.pids, opts.rounds, measure, progress, "redis")
    finally:
        children.close()


GROUPS = {"nginx": nginx, "redis": redis, "tiny": tiny}


def run(opts: Any, progress: Progress) -> dict[str, Any]:
    """
    Every group, in turn; a group that fails is reported as
    C{{"error": message}}.
    """
    out: dict[str, Any] = {}
    for name, group in GROUPS.items():
        progress("== framed: {}".format(name))
        try:
            out[name] = group(opts, progress)
        except (RuntimeError, OSError, subprocess.SubprocessError, SystemExit) as e:
            out[name] = {"error": "{}: {}".format(type(e).__name__, e)}
            progress("!! framed {}: {}".format(name, out[name]["error"]))
    return out
