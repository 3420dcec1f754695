"""
Latency measurement through a real C{twistd vaurien} process, with every
party in a process of its own.

The accuracy tests of C{delay} and C{latency} measure milliseconds.  When
the proxy, the echo backend and the timing client all share the trial
process, what they measure includes that process's pauses: a garbage
collection of the heap built by hundreds of earlier tests, or the trial
reactor's own work, lands on some round trips as several milliseconds
that the proxy never added.  Here the proxy is the real command, the
backend and the client are small blocking programs (this module run as
C{python -m txvaurien.test.latencyprobe echo|ping}), and the trial
process only starts them and reads the numbers.

C{echo} serves on an ephemeral port of 127.0.0.1, one thread per
connection, and prints C{echo listening on 127.0.0.1:PORT}.  C{ping PORT
COUNT [CLIENTS SPACING]} opens C{CLIENTS} connections, the I{i}-th
starting C{i * SPACING} seconds after the first so that their timers do
not fire together; each makes two warm-up round trips of 32 bytes, then
C{COUNT} timed ones, and the program prints the round-trip times in
seconds as a JSON list.  Both disable Python's cyclic garbage collector:
they are the measuring instrument, not what is measured.
"""

from __future__ import annotations

import gc
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
from typing import Any, Generator

from twisted.internet import defer, utils

ECHO_LISTENING = re.compile(rb"echo listening on 127\.0\.0\.1:(\d+)")
PAYLOAD = b"p" * 32
WARMUP = 2
BASELINE = 21


def percentile(values: list[float], fraction: float) -> float:
    """
    The nearest-rank percentile of C{values}.
    """
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def echoExchange(s: socket.socket, payload: bytes) -> float:
    """
    Send C{payload} on the connected socket C{s} and read until as many
    bytes came back, which must be the same bytes.

    @return: the seconds from sending to the last byte back.
    """
    started = time.perf_counter()
    s.sendall(payload)
    received = b""
    while len(received) < len(payload):
        data = s.recv(65536)
        if not data:
            raise AssertionError("closed after {!r}".format(received))
        received += data
    elapsed = time.perf_counter() - started
    if received != payload:
        raise AssertionError("echo {!r} != {!r}".format(received, payload))
    return elapsed


class _EchoHandler(socketserver.BaseRequestHandler):
    """
    Sends back whatever one connection receives.
    """

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def echo() -> None:
    """
    Serve L{_EchoHandler} on an ephemeral port until killed.
    """
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    print("echo listening on 127.0.0.1:{}".format(server.server_address[1]), flush=True)
    server.serve_forever()


def _client(port: int, count: int, delay: float, results: list[float]) -> None:
    """
    One connection's round trips, appended to C{results}.
    """
    time.sleep(delay)  # stagger the clients; this paces the load generator
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(WARMUP + count):
            elapsed = echoExchange(s, PAYLOAD)
            if i >= WARMUP:
                results.append(elapsed)


def ping(port: int, count: int, clients: int = 1, spacing: float = 0.0) -> list[float]:
    """
    Round trips through C{port} from C{clients} connections at once.

    @return: the C{clients * count} round-trip times, in seconds.
    """
    results: list[float] = []
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            _client(port, count, i * spacing, results)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


def main(argv: list[str]) -> None:
    gc.disable()
    if argv[0] == "echo":
        echo()
    elif argv[0] == "ping":
        port, count = int(argv[1]), int(argv[2])
        clients = int(argv[3]) if len(argv) > 3 else 1
        spacing = float(argv[4]) if len(argv) > 4 else 0.0
        print(json.dumps(ping(port, count, clients, spacing)), flush=True)
    else:
        raise SystemExit("usage: latencyprobe echo | ping PORT COUNT [CLIENTS SPACING]")


@defer.inlineCallbacks
def roundTrips(
    case: Any, proxyArgs: list[str], count: int, clients: int = 1, spacing: float = 0.0
) -> Generator[Any, Any, Any]:
    """
    Round-trip times through C{twistd -n vaurien PROXYARGS} in front of an
    echo backend, measured by the C{ping} program.  All three processes
    are stopped when C{case} ends.

    @return: a L{Deferred} firing with the list of times, in seconds.
    """
    # Imported here: controlhelpers uses L{echoExchange}, and the child
    # programs need none of it.
    from txvaurien.test.controlhelpers import (
        PROXY_LISTENING,
        childEnvironment,
        spawnPython,
        spawnTwistd,
    )

    echoPort, _ = yield spawnPython(
        case, ["-m", "txvaurien.test.latencyprobe", "echo"], ECHO_LISTENING)
    proxyPort, _ = yield spawnTwistd(
        case,
        ["--backend", "tcp:host=127.0.0.1:port={}".format(echoPort),
         "--proxy", "tcp:0:interface=127.0.0.1", *proxyArgs],
        PROXY_LISTENING)
    out, err, code = yield utils.getProcessOutputAndValue(
        sys.executable,
        ["-m", "txvaurien.test.latencyprobe", "ping",
         str(proxyPort), str(count), str(clients), repr(spacing)],
        env=childEnvironment())
    if code != 0:
        raise AssertionError("ping failed ({}): {}".format(code, err.decode("utf-8", "replace")))
    return json.loads(out)


@defer.inlineCallbacks
def addedLatency(
    case: Any, baselineArgs: list[str], proxyArgs: list[str],
    count: int, clients: int = 1, spacing: float = 0.0
) -> Generator[Any, Any, Any]:
    """
    The latency C{twistd -n vaurien PROXYARGS} adds: its round trips
    (L{roundTrips}) minus the median of L{BASELINE} round trips through
    C{twistd -n vaurien BASELINEARGS}.

    @return: a L{Deferred} firing with C{(added, base)}: the added
        latency of each round trip, and the baseline median, in seconds.
    """
    baseline = yield roundTrips(case, baselineArgs, BASELINE)
    base = sorted(baseline)[len(baseline) // 2]
    samples = yield roundTrips(case, proxyArgs, count, clients, spacing)
    return [t - base for t in samples], base


if __name__ == "__main__":
    main(sys.argv[1:])
