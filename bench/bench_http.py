#!/usr/bin/env python
"""
HTTP keep-alive requests per second through txvaurien: C{--protocol http}
(with each head parser) against C{--protocol tcp}, in one run.

Starts an HTTP backend and three proxies in front of it, all with the
C{dummy} behavior: C{twistd -n vaurien --protocol tcp}, C{... --protocol
http} (httptools) and C{... --protocol http --protocol-http-parser h11}.
Then it runs C{wrk} (keep-alive, one thread) against the backend directly
and through each proxy, alternating the targets over several rounds so
that a burst of load from elsewhere on the machine hits them alike, and
prints the median requests per second of each target and the ratios
http/tcp.

The default backend is a tiny single-threaded server (this script with
C{--serve tiny}) that answers every request head with the same 13-byte
response, so that the proxies, not the backend, are what is measured;
C{--backend web} uses twisted.web instead (slower than the proxies, so the
ratios then say little).

Usage::

    python bench/bench_http.py [--duration 10] [--connections 50]
        [--rounds 3] [--backend tiny|web] [--json out.json]

The issue's target: C{--protocol http} at least 0.7 times the rate of
C{--protocol tcp}.  The exit status is 1 when the httptools ratio is below
C{--target} (0.7), so CI can run it as a check, and 2 when C{wrk} reports
errors or non-2xx responses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
from typing import Any

from _common import Children, binary, cpuSeconds, freePort, waitForPort

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            b"Hello, world!")


# The backends, run as child processes of this script.

def serveTiny(port: int) -> None:
    """
    Answer each request head (up to an empty line; bodies are not
    supported) with L{RESPONSE}, on any number of keep-alive connections.
    """
    selector = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    state: dict[socket.socket, list[bytes]] = {}  # [input, output]
    while True:
        for key, events in selector.select():
            sock = key.fileobj
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                state[conn] = [b"", b""]
                selector.register(conn, selectors.EVENT_READ)
                continue
            buffers = state[sock]  # type: ignore[index]
            if events & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    selector.unregister(sock)
                    del state[sock]  # type: ignore[arg-type]
                    sock.close()  # type: ignore[union-attr]
                    continue
                if data:
                    buffers[0] += data
                    count = buffers[0].count(b"\r\n\r\n")
                    if count:
                        buffers[0] = buffers[0][buffers[0].rindex(b"\r\n\r\n") + 4:]
                        buffers[1] += RESPONSE * count
            if buffers[1]:
                try:
                    sent = sock.send(buffers[1])  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = len(buffers[1])
                buffers[1] = buffers[1][sent:]
                selector.modify(sock, selectors.EVENT_READ | (
                    selectors.EVENT_WRITE if buffers[1] else 0))


def serveWeb(port: int) -> None:
    """
    twisted.web, answering every path with C{Hello, world!}.
    """
    from twisted.internet import reactor
    from twisted.web import resource, server

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"text/plain")
            return b"Hello, world!"

    site = server.Site(Hello())
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    reactor.listenTCP(port, site, interface="127.0.0.1", backlog=1024)  # type: ignore[arg-type]
    reactor.run()


def startBackend(kind: str) -> tuple[subprocess.Popen, int]:
    port = freePort()
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", kind, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    waitForPort(port, process)
    return process, port


def runWrk(port: int, duration: float, connections: int, threads: int,
           path: str = "/") -> dict[str, Any]:
    """
    Run wrk once against C{path} on C{port}; return its requests/s and
    error counts.
    """
    out = subprocess.run(
        [binary("wrk", "wrk"), "-t", str(threads), "-c", str(connections),
         "-d", "{}s".format(max(1, int(round(duration)))),
         "http://127.0.0.1:{}{}".format(port, path)],
        check=True, capture_output=True, text=True, timeout=duration + 120).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if match is None or count is None:
        raise RuntimeError("no result from wrk:\n" + out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(match.group(1)),
        "requests": int(count.group(1)),
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


TARGETS = [
    ("tcp", ["--protocol", "tcp"]),
    ("tcp-no-splice", ["--protocol", "tcp", "--no-splice"]),
    ("http-httptools", ["--protocol", "http", "--protocol-http-parser", "httptools"]),
    ("http-h11", ["--protocol", "http", "--protocol-http-parser", "h11"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["tiny", "web"], default="tiny")
    parser.add_argument("--no-splice", action="store_true",
                        help="run the proxies with --no-splice")
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--serve", choices=["tiny", "web"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        (serveTiny if args.serve == "tiny" else serveWeb)(args.port)
        return 0

    children = Children("bench-http-")
    pids = children.pids
    extra = ["--no-splice"] if args.no_splice else []
    try:
        backendPort = children.add("direct", startBackend(args.backend))
        targets = {"direct": backendPort}
        for name, options in TARGETS:
            targets[name] = children.proxy(name, backendPort, options + extra)
        for port in targets.values():
            runWrk(port, 2, args.connections, args.threads)  # warm up
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, port in targets.items():
                # The CPU time the proxy (or, for direct, the backend) used
                # per request: unlike requests/s, other processes' load
                # hardly changes it.
                before = cpuSeconds(pids[name])
                sample = runWrk(port, args.duration, args.connections, args.threads)
                sample["cpu"] = (cpuSeconds(pids[name]) - before) / max(1, sample["requests"])
                samples[name].append(sample)
    finally:
        children.close()

    median = {name: statistics.median(s["rate"] for s in runs) for name, runs in samples.items()}
    cpu = {name: statistics.median(s["cpu"] for s in runs) * 1e6
           for name, runs in samples.items()}
    problems = {name: (sum(s["errors"] for s in runs), sum(s["non2xx"] for s in runs))
                for name, runs in samples.items()}
    ratios = {name: median[name] / median["tcp"] for name, _ in TARGETS[1:]}
    print("backend {}, {} connections, {} rounds of {}s, medians:".format(
        args.backend, args.connections, args.rounds, args.duration))
    print("{:<16} {:>11} {:>7} {:>15} {:>12} {:>8}".format(
        "target", "requests/s", "vs tcp", "vs tcp-no-splice", "CPU us/req", "errors"))
    for name in targets:
        proxied = name != "direct"
        print("{:<16} {:>11.0f} {:>7} {:>15} {:>12.1f} {:>8}".format(
            name, median[name],
            "{:.2f}".format(median[name] / median["tcp"]) if proxied else "-",
            "{:.2f}".format(median[name] / median["tcp-no-splice"]) if proxied else "-",
            cpu[name], "{}/{}".format(*problems[name])))
    print("requests/s samples:",
          {name: [round(s["rate"]) for s in runs] for name, runs in samples.items()})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": args.backend, "connections": args.connections,
                       "duration": args.duration, "rounds": args.rounds,
                       "median": median, "cpuMicrosecondsPerRequest": cpu,
                       "ratios": ratios, "samples": samples}, f, indent=2)
    if any(errors or non2xx for errors, non2xx in problems.values()):
        return 2
    return 0 if ratios["http-httptools"] >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
