"""
What a behavior-table change costs with many live connections.

Starts the benchmark backend and C{twistd -n vaurien --http}, opens
C{--connections} idle echo connections through the proxy in batches of
500, then, while one probe connection does 64-byte echo round trips as
fast as it can, issues C{PUT /behavior} at C{--rate} changes per second
for C{--seconds}, alternating C{dummy} and C{latency} (0 ms, so that the
probe measures the change's cost and not the delay).

It prints the PUT answer times and the probe's round trips (p50, p99,
max), and the kernel's C{ListenOverflows} counter for the whole run.

Targets (issue 14, B2): with 10,000 live connections, a PUT answers in
under 20 ms at p99, and the probe's p99 stays under 5 ms during 100
changes a second.  Each proxied connection costs the proxy two
descriptors, so the connection count is capped below half the proxy's
open-file limit; the run says what it used.

Usage: C{python bench/bench_table.py [--connections N] [--rate R]
[--seconds S]}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import freePort, stop, twistd, waitForPort  # noqa: E402

HEADER = b"E".ljust(64)


def listenOverflows() -> int:
    """
    The kernel's C{TcpExt ListenOverflows} counter.
    """
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def startBackend() -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "_backend.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    words = process.stdout.readline().decode().split()
    return process, int(words[1])


def startProxy(backendPort: int, log: str) -> tuple[subprocess.Popen, int, int]:
    port, control = freePort(), freePort()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [twistd(), "-n", "--pidfile=", "--logfile=-", "vaurien",
             "--proxy", "tcp:{}:interface=127.0.0.1".format(port),
             "--backend", "tcp:host=127.0.0.1:port={}".format(backendPort),
             "--behavior", "100:dummy", "--log-level", "warn",
             "--http", "--http-port", str(control)],
            stdout=out, stderr=subprocess.STDOUT,
            cwd=os.path.dirname(HERE))
    waitForPort(port, process)
    waitForPort(control, process)
    return process, port, control


def openConnections(port: int, count: int, size: int = 500) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    while len(sockets) < count:
        batch = []
        for _ in range(min(size, count - len(sockets))):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(HEADER)
            batch.append(s)
        for s in batch:
            got = b""
            while len(got) < len(HEADER):
                chunk = s.recv(len(HEADER) - len(got))
                if not chunk:
                    raise RuntimeError("a connection closed while opening")
                got += chunk
        sockets.extend(batch)
    return sockets


def probe(port: int, stop: threading.Event, rtts: list[float]) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(HEADER)
    s.recv(len(HEADER))
    payload = b"p" * 64
    while not stop.is_set():
        start = time.perf_counter()
        s.sendall(payload)
        got = 0
        while got < len(payload):
            got += len(s.recv(len(payload) - got))
        rtts.append(time.perf_counter() - start)
        time.sleep(0.001)
    s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=500,
                        help="connections opened at once (default 500)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(args.connections, (hard - 200) // 2)
    backend, backendPort = startBackend()
    log = "/tmp/bench_table-twistd.log"
    proxy = None
    try:
        overflowsBefore = listenOverflows()
        proxy, port, control = startProxy(backendPort, log)
        opened = time.perf_counter()
        sockets = openConnections(port, count, args.batch)
        openSeconds = time.perf_counter() - opened
        overflows = listenOverflows() - overflowsBefore
        rtts: list[float] = []
        done = threading.Event()
        thread = threading.Thread(target=probe, args=(port, done, rtts))
        thread.start()
        time.sleep(0.5)
        baseline = list(rtts)
        del rtts[:]
        api = http.client.HTTPConnection("127.0.0.1", control)
        puts: list[float] = []
        bodies = [{"name": "latency", "latency": 0}, {"name": "dummy"}]
        interval = 1.0 / args.rate
        deadline = time.perf_counter() + args.seconds
        n = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            api.request("PUT", "/behavior", json.dumps(bodies[n % 2]),
                        {"Content-Type": "application/json"})
            response = api.getresponse()
            response.read()
            if response.status >= 300:
                raise RuntimeError("PUT /behavior answered {}".format(response.status))
            puts.append(time.perf_counter() - start)
            n += 1
            time.sleep(max(0.0, interval - (time.perf_counter() - start)))
        during = list(rtts)
        done.set()
        thread.join()
        for s in sockets:
            s.close()
        ms = 1000.0
        print("connections: {} (open-file limit {}; opened in {:.1f}s, "
              "ListenOverflows +{})".format(count, hard, openSeconds, overflows))
        print("PUT /behavior x{}: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms "
              "(target p99 < 20 ms)".format(
                  len(puts), percentile(puts, .5) * ms, percentile(puts, .99) * ms,
                  max(puts) * ms))
        print("probe RTT before: p50 {:.3f} ms, p99 {:.3f} ms".format(
            percentile(baseline, .5) * ms, percentile(baseline, .99) * ms))
        print("probe RTT during: p50 {:.3f} ms, p99 {:.3f} ms, max {:.3f} ms, n={} "
              "(target p99 < 5 ms)".format(
                  percentile(during, .5) * ms, percentile(during, .99) * ms,
                  max(during) * ms, len(during)))
    finally:
        stop(proxy)
        backend.kill()
        backend.wait()


if __name__ == "__main__":
    main()
