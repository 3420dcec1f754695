#!/usr/bin/env python3
"""
Benchmark txvaurien against a direct connection, haproxy (C{mode tcp}),
socat and Twisted's port forwarder, on loopback, and its framing
protocols against C{--protocol tcp} in front of nginx and redis-server,
in one run.

The script starts its own backend (C{_backend.py}, its own process) and
one process per proxy target, measures the same workloads through each
target (this process is the client), then runs the request/response
groups of C{_framed.py}, and prints absolute numbers, ratios to haproxy,
and issue 13's targets with PASS or MISS (C{_report.py}).  Timings on a
shared machine are noisy; ratios between targets measured in the same
run, interleaved round by round, are what matter.

Run C{python bench/bench.py --help}; see C{bench/README.md}.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import selectors
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _workloads as w  # noqa: E402
from _common import NotListening, childEnv, freePort, stop, waitForPort  # noqa: E402
from _peers import haproxyCommand, socatCommand  # noqa: E402
import _framed  # noqa: E402
import _report  # noqa: E402

GiB = 1024 ** 3
MiB = 1024 ** 2
START_TIMEOUT = 30.0

BUILTIN = ("direct", "haproxy", "socat", "portforward", "txvaurien", "txvaurien-nosplice")
CHECKED = ("txvaurien", "txvaurien-nosplice")
#: Workloads a target kind does not take part in: socat forks a process per
#: connection, so its parent's RSS says nothing of what a connection costs.
SKIPS = {"socat": ("idle", "pressure")}
# In this order: the memory workloads first, on fresh proxy processes,
# since memory a proxy freed stays in its RSS and would hide later growth.
# The request/response groups (nginx, redis, the tiny backend) come last:
# they start their own backends and proxies.
WORKLOADS = ("pressure", "idle", "echo", "connect", "bulk", "framed")

_T0 = time.monotonic()


def progress(text: str) -> None:
    sys.stderr.write("[{:6.1f}s] {}\n".format(time.monotonic() - _T0, text))
    sys.stderr.flush()


class TargetError(Exception):
    """
    A target could not be started or died.
    """


# Subprocesses


def _dieWithParent() -> None:
    """
    In the child, before exec: get SIGTERM when the parent dies (Linux).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _lastLine(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Backend:
    """
    The backend process.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "_backend.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=_dieWithParent, start_new_session=True,
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(START_TIMEOUT):
                raise TargetError("the backend did not start in {}s".format(START_TIMEOUT))
        line = self.proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "PORT":
            raise TargetError("the backend did not start: {!r}".format(line))
        self.port = int(line[1])

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        stop(self.proc, 5)


class Target:
    """
    One way to reach the backend: directly or through a proxy process.

    @ivar name: the column name.
    @ivar kind: C{direct}, C{haproxy}, C{socat}, C{portforward} or
        C{vaurien}.
    @ivar args: extra command-line arguments of a C{vaurien} target.
    """

    def __init__(self, name: str, kind: str, args: list[str] | None = None) -> None:
        self.name = name
        self.kind = kind
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = ""
        self.command: list[str] = []
        self.failed: str | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self, backendPort: int, twistd: str, workdir: str) -> None:
        if self.kind == "direct":
            self.port = backendPort
            return
        self.port = freePort()
        listen = "tcp:{}:interface=127.0.0.1".format(self.port)
        if self.kind == "haproxy":
            command = haproxyCommand(workdir, self.name, self.port,
                                     "127.0.0.1:{}".format(backendPort))
        elif self.kind == "socat":
            command = socatCommand(self.port, backendPort)
        elif self.kind == "portforward":
            command = [twistd, "-n", "--pidfile=", "portforward", "--port", listen,
                       "--host", "127.0.0.1", "--dest_port", str(backendPort)]
        else:
            command = [twistd, "-n", "--pidfile=", "vaurien", "--proxy", listen,
                       "--backend", "127.0.0.1:{}".format(backendPort),
                       "--log-level", "warn"] + self.args
        self.command = command
        self.log = os.path.join(workdir, self.name + ".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=workdir, preexec_fn=_dieWithParent, start_new_session=True,
                env=childEnv(),
            )
        self._waitReady()

    def _waitReady(self) -> None:
        assert self.proc is not None
        try:
            waitForPort(self.port, self.proc, START_TIMEOUT)
        except NotListening as e:
            raise TargetError("{} {}:\n  $ {}\n{}".format(
                self.name, e.reason, shlex.join(self.command), _tail(self.log)))
        # One exchange end to end, so a proxy that listens but cannot
        # forward fails here with a clear message.
        try:
            w.oneExchange(self.address, memoryview(bytearray(w.HEADER)))
        except Exception as e:
            raise TargetError("{} listens but does not forward ({}):\n{}".format(
                self.name, e, _tail(self.log)))

    def takes(self, workload: str) -> bool:
        """
        Whether this target takes part in C{workload}.
        """
        return workload not in SKIPS.get(self.kind, ())

    def alive(self) -> bool:
        return self.kind == "direct" or (self.proc is not None and self.proc.poll() is None)

    def stop(self) -> None:
        stop(self.proc, 5)


def fdCount(pid: int) -> int:
    return len(os.listdir("/proc/{}/fd".format(pid)))


def waitFds(pid: int, most: int, timeout: float = 30.0) -> None:
    """
    Wait until process C{pid} holds at most C{most} file descriptors (its
    connections are closed).
    """
    deadline = time.monotonic() + timeout
    while fdCount(pid) > most and time.monotonic() < deadline:
        time.sleep(0.1)


# Running workloads


class Run:
    """
    Measures every workload for every target and keeps the results.
    """

    def __init__(self, opts: argparse.Namespace, targets: list[Target]) -> None:
        self.opts = opts
        self.targets = targets
        self.results: dict[str, dict[str, Any]] = {t.name: {} for t in targets}
        self.raw: dict[str, dict[str, list[Any]]] = {t.name: {} for t in targets}
        self.errors: dict[str, dict[str, str]] = {t.name: {} for t in targets}
        self.loadStart = " ".join("{:.2f}".format(x) for x in os.getloadavg())
        self.framedResults: dict[str, Any] = {}

    def live(self, workload: str = "") -> list[Target]:
        out = []
        for target in self.targets:
            if target.failed or not target.takes(workload):
                continue
            if not target.alive():
                assert target.proc is not None
                target.failed = "exited with status {}:\n{}".format(
                    target.proc.returncode, _tail(target.log))
                progress("!! {} {}".format(target.name, target.failed))
                continue
            out.append(target)
        return out

    def attempt(self, target: Target, what: str, f: Callable[[], Any]) -> Any:
        try:
            return f()
        except (w.WorkloadError, OSError) as e:
            message = "{}: {}".format(type(e).__name__, e)
            self.errors[target.name][what] = message
            progress("!! {} {}: {}".format(target.name, what, message))
            return None

    def keep(self, target: Target, key: str, value: Any) -> None:
        self.raw[target.name].setdefault(key, []).append(value)

    # Workloads

    def idle(self) -> None:
        count = self.opts.idle
        for target in self.live("idle"):
            if target.pid is None:
                continue
            pid = target.pid
            fds = fdCount(pid)
            view = memoryview(bytearray(w.HEADER))
            # Warm up: code paths and lazy imports, not memory pools.
            for _ in range(50):
                self.attempt(target, "idle", lambda: w.oneExchange(target.address, view))
            waitFds(pid, fds, 5.0)
            time.sleep(0.5)
            before = w.rssKiB(pid)
            socks = self.attempt(target, "idle", lambda: w.openIdle(target.address, count))
            if socks is None:
                continue
            try:
                time.sleep(1.0)
                after = w.rssKiB(pid)
                held = fdCount(pid) - fds
            finally:
                for sock in socks:
                    sock.close()
            perConn = (after - before) / count
            self.results[target.name].update(
                rssBeforeKiB=before, rssAfterKiB=after, rssPerConnKiB=perConn,
                idleFds=held)
            progress("{}: {} idle connections: RSS {} -> {} KiB, {:.2f} KiB each, "
                     "{} proxy fds".format(target.name, count, before, after, perConn, held))
            waitFds(pid, fds + 2)
            self.results[target.name]["rssClosedKiB"] = w.rssKiB(pid)

    def pressure(self) -> None:
        seconds, rate = self.opts.pressure_seconds, self.opts.pressure_rate
        for target in self.live("pressure"):
            pid = target.pid
            if pid is None:
                continue
            for key, f in (("slowClient", w.slowClient), ("slowBackend", w.slowBackend)):
                r = self.attempt(target, key, lambda: f(target.address, pid, seconds, rate))
                if r is None:
                    continue
                self.results[target.name][key] = r
                progress("{}: {}: RSS {} -> peak {} KiB (+{:.2f} MiB), {:.2f} MB/s".format(
                    target.name, key, r["baselineKiB"], r["peakKiB"],
                    r["growthKiB"] / 1024, r["rateMBps"]))
                time.sleep(0.5)

    def echo(self) -> None:
        rounds = self.opts.rounds
        per = max(1, self.opts.rtt_count // rounds)
        warmup = max(100, self.opts.rtt_warmup // rounds)
        for r in range(rounds):
            for target in self.live():
                times = self.attempt(target, "echo", lambda: w.echoRTT(
                    target.address, per, warmup, self.opts.rtt_seconds / rounds))
                if times is not None:
                    self.raw[target.name].setdefault("rtt", []).extend(times)
                    progress("{}: echo round {}: p50 {:.1f} us".format(
                        target.name, r + 1, w.percentile(times, 50) / 1000))
        for target in self.targets:
            times = self.raw[target.name].pop("rtt", None)
            if times:
                self.results[target.name].update(
                    rttP50=w.percentile(times, 50) / 1000,
                    rttP99=w.percentile(times, 99) / 1000,
                    rttCount=len(times))

    def connect(self) -> None:
        rounds = self.opts.rounds
        seconds = self.opts.connect_seconds / rounds
        for r in range(rounds):
            for target in self.live():
                for key, clients in (("connRate", 1), ("connRateParallel", self.opts.parallel)):
                    if clients < 1:
                        continue
                    rate = self.attempt(target, key,
                                        lambda: w.connectionRate(target.address, seconds, clients))
                    if rate is not None:
                        self.keep(target, key, rate)
                        progress("{}: {} round {}: {:.0f}/s".format(target.name, key, r + 1, rate))
        for target in self.targets:
            for key in ("connRate", "connRateParallel"):
                values = self.raw[target.name].get(key)
                if values:
                    self.results[target.name][key] = statistics.median(values)

    def bulk(self) -> None:
        n = self.opts.bytes
        rounds = self.opts.rounds
        for target in self.live():
            ok = w.carriesHalfClose(target.address)
            self.results[target.name]["halfClose"] = ok
            progress("{}: half-close carried: {}".format(target.name, "yes" if ok else "no"))
        for r in range(rounds):
            for target in self.live():
                jobs = [("download", w.download), ("uploadLength", w.uploadLength)]
                if self.results[target.name].get("halfClose"):
                    jobs.insert(1, ("uploadHalfClose", w.uploadHalfClose))
                for key, f in jobs:
                    # socat's work is done by a child per connection.
                    meter = w.CPUMeter(None if target.kind == "socat" else target.pid)
                    with meter:
                        seconds = self.attempt(target, key, lambda: f(target.address, n))
                    if seconds is None:
                        continue
                    self.keep(target, key, n / seconds / 1e6)
                    if meter.used is not None:
                        self.keep(target, key + "CPU", meter.used / (n / GiB))
                    progress("{}: {} round {}: {:.0f} MB/s{}".format(
                        target.name, key, r + 1, n / seconds / 1e6,
                        "" if meter.used is None else
                        ", proxy CPU {:.2f} s/GiB".format(meter.used / (n / GiB))))
                    time.sleep(0.2)
        for target in self.targets:
            raw = self.raw[target.name]
            res = self.results[target.name]
            for key in ("download", "uploadHalfClose", "uploadLength"):
                if raw.get(key):
                    res[key + "MBps"] = statistics.median(raw[key])
                if raw.get(key + "CPU"):
                    res[key + "CPU"] = statistics.median(raw[key + "CPU"])
            # The "upload": with half-close where the target carries
            # it, length-prefixed otherwise.
            if "uploadHalfCloseMBps" in res:
                res["uploadMBps"] = res["uploadHalfCloseMBps"]
            elif "uploadLengthMBps" in res:
                res["uploadMBps"] = res["uploadLengthMBps"]

    def framed(self) -> None:
        self.framedResults = _framed.run(self.opts, progress)

    def derive(self) -> None:
        direct = self.results.get("direct", {})
        for name, res in self.results.items():
            for key, added in (("rttP50", "addedP50"), ("rttP99", "addedP99")):
                if key in res and key in direct and name != "direct":
                    res[added] = res[key] - direct[key]
            for key in ("slowClient", "slowBackend"):
                if key in res:
                    res[key + "GrowthMiB"] = res[key]["growthKiB"] / 1024
            if "slowBackend" in res:
                res["slowBackendQueuedMiB"] = res["slowBackend"]["queuedMiB"]


# Command line


def parseTarget(text: str) -> Target:
    name, eq, args = text.partition("=")
    name = name.strip()
    if not eq or not name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError(
            "--target takes NAME='extra vaurien args', got {!r}".format(text))
    if name in BUILTIN:
        raise argparse.ArgumentTypeError("--target {!r}: that name is built in".format(name))
    return Target(name, "vaurien", shlex.split(args))


def parseArgs(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark txvaurien against a direct connection, haproxy, "
        "socat and Twisted's portforward, on loopback, and the framing protocols "
        "against nginx and redis-server.")
    p.add_argument("--quick", action="store_true",
                   help="smaller run (under 3 minutes): 128 MiB transfers, 2 rounds, "
                   "fewer round trips and idle connections, shorter phases")
    p.add_argument("--target", action="append", type=parseTarget, default=[],
                   metavar="NAME='ARGS'",
                   help="add a txvaurien target with extra 'twistd vaurien' arguments, "
                   "e.g. latency100='--behavior 100:latency' (repeatable)")
    p.add_argument("--only", metavar="NAMES",
                   help="comma-separated built-in targets to run (default: all of "
                   "{}); --target ones always run".format(", ".join(BUILTIN)))
    p.add_argument("--workloads", metavar="NAMES", default=",".join(WORKLOADS),
                   help="comma-separated subset of: " + ", ".join(WORKLOADS))
    p.add_argument("--venv", help="virtualenv holding twistd (default: the one of "
                   "this Python, {})".format(os.path.dirname(sys.executable)))
    p.add_argument("--twistd", help="path of twistd (overrides --venv)")
    p.add_argument("--bytes", type=_bytes, help="bytes per transfer (default 1G; quick 128M)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    p.add_argument("--rtt-count", type=int, help="echo round trips per target "
                   "(default 20000; quick 5000)")
    p.add_argument("--rtt-warmup", type=int, default=1000, help="warm-up round trips")
    p.add_argument("--rtt-seconds", type=float, default=20.0,
                   help="most seconds spent on round trips per target (a slow target "
                   "gets fewer samples)")
    p.add_argument("--connect-seconds", type=float,
                   help="seconds of connect/exchange/close per target and client count "
                   "(default 4; quick 2)")
    p.add_argument("--parallel", type=int, default=4,
                   help="clients of the parallel connection-rate run (0: skip)")
    p.add_argument("--idle", type=int, help="idle connections for RSS/conn "
                   "(default 5000; quick 1000)")
    p.add_argument("--pressure-seconds", type=float,
                   help="duration of each backpressure phase (default 10; quick 4)")
    p.add_argument("--pressure-rate", type=float, default=1e6,
                   help="bytes/s of the slow reader (default 1e6)")
    p.add_argument("--wrk-seconds", type=float,
                   help="seconds of each wrk run of the framed workload (default 10; "
                   "quick 3)")
    p.add_argument("--wrk-connections", type=int, default=10,
                   help="wrk's keep-alive connections (one thread)")
    p.add_argument("--redis-requests", type=int,
                   help="requests of each redis-benchmark test (default 100000; "
                   "quick 20000)")
    p.add_argument("--redis-clients", type=int, default=20,
                   help="redis-benchmark's clients (no pipelining)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON "
                   "('-': to stdout, and the table to stderr)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the proxies' logs even when every target ran")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a target of the issue is missed")
    opts = p.parse_args(argv)
    defaults = {
        "bytes": (GiB, 128 * MiB),
        "rounds": (3, 2),
        "rtt_count": (20000, 5000),
        "connect_seconds": (4.0, 2.0),
        "pressure_seconds": (10.0, 3.0),
        "idle": (5000, 1000),
        "wrk_seconds": (10.0, 3.0),
        "redis_requests": (100000, 20000),
    }
    for key, (full, quick) in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, quick if opts.quick else full)
    if opts.rounds < 1:
        p.error("--rounds must be at least 1")
    unknown = set(opts.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        p.error("unknown workloads: {}".format(", ".join(sorted(unknown))))
    return opts


def _bytes(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": GiB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def findTwistd(opts: argparse.Namespace) -> str:
    if opts.twistd:
        path = opts.twistd
    elif opts.venv:
        path = os.path.join(opts.venv, "bin", "twistd")
    else:
        path = os.path.join(os.path.dirname(sys.executable), "twistd")
    if not os.access(path, os.X_OK):
        raise SystemExit("bench: no twistd at {} (use --venv or --twistd)".format(path))
    return path


def raiseNoFile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main(argv: list[str] | None = None) -> int:
    opts = parseArgs(argv)
    twistd = findTwistd(opts)
    soft, hard = raiseNoFile()
    if soft < 3 * opts.idle + 1000:
        progress("warning: RLIMIT_NOFILE is {}; {} idle connections need about {}".format(
            soft, opts.idle, 3 * opts.idle + 1000))
    targets = [Target("direct", "direct"), Target("haproxy", "haproxy"),
               Target("socat", "socat"), Target("portforward", "portforward"),
               Target("txvaurien", "vaurien"),
               Target("txvaurien-nosplice", "vaurien", ["--no-splice"])]
    if opts.only:
        wanted = set(opts.only.split(","))
        missing = wanted - set(BUILTIN)
        if missing:
            raise SystemExit("bench: unknown targets in --only: {} (built in: {})".format(
                ", ".join(sorted(missing)), ", ".join(BUILTIN)))
        targets = [t for t in targets if t.name in wanted]
    names = [t.name for t in opts.target]
    if len(set(names)) != len(names):
        raise SystemExit("bench: --target names must differ")
    targets += opts.target

    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so cleanup runs.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt()

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    backend = Backend()
    workdir = tempfile.mkdtemp(prefix="txvaurien-bench-")
    failedStart: dict[str, str] = {}
    try:
        backend.start()
        progress("backend on port {} (pid {}); logs in {}".format(
            backend.port, backend.pid, workdir))
        started = []
        for target in targets:
            try:
                target.start(backend.port, twistd, workdir)
            except TargetError as e:
                failedStart[target.name] = str(e)
                progress("!! target {} failed to start: {}".format(target.name, e))
                target.stop()
                continue
            started.append(target)
            if target.pid:
                progress("{} on port {} (pid {})".format(target.name, target.port, target.pid))
        run = Run(opts, started)
        selected = opts.workloads.split(",")
        for name in WORKLOADS:
            if name in selected:
                progress("== {}".format(name))
                getattr(run, name)()
        run.derive()
    except KeyboardInterrupt:
        progress("interrupted; stopping subprocesses")
        return 130
    finally:
        for target in targets:
            target.stop()
        backend.stop()

    names = [t.name for t in run.targets]
    found = _report.checks(run.results, run.framedResults, CHECKED)
    report = "\n\n".join(filter(None, [
        _report.table(opts, names, run.results, run.loadStart),
        _report.framedTable(run.framedResults) if run.framedResults else "",
        found.lines()]))
    died = {t.name: t.failed for t in run.targets if t.failed}
    problems = dict(failedStart, **died)
    if problems:
        report += "\n\nTargets that failed (see the progress output for the whole log):\n" + \
            "\n".join("  {}: {}".format(n, _lastLine(m)) for n, m in problems.items())
    errors = {n: e for n, e in run.errors.items() if e}
    if errors:
        report += "\n\nWorkload errors:\n" + "\n".join(
            "  {} {}: {}".format(n, k, m) for n, e in errors.items() for k, m in e.items())
    out = sys.stderr if opts.json == "-" else sys.stdout
    out.write(report + "\n")
    if opts.json:
        data = {
            "options": {k: v for k, v in vars(opts).items() if k != "target"},
            "targets": {t.name: {"kind": t.kind, "command": t.command} for t in run.targets},
            "results": run.results,
            "framed": run.framedResults,
            "checks": found.found,
            "failed": problems,
            "errors": errors,
            "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                        "rlimitNofile": [soft, hard]},
        }
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
        if opts.json == "-":
            sys.stdout.write(text + "\n")
        else:
            with open(opts.json, "w") as f:
                f.write(text + "\n")
    if problems or errors or opts.keep_logs:
        progress("proxy logs kept in {}".format(workdir))
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if problems or errors:
        return 2
    if opts.strict and any(c["result"] == "MISS" and c["target"] != "txvaurien-nosplice"
                           for c in found.found):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
