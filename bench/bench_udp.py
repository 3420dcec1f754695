"""
UDP benchmark: datagrams/s through txvaurien's UDP proxy with no faults,
against socat's UDP relay (C{socat UDP-LISTEN:P,fork UDP:127.0.0.1:B}) and
a direct exchange, in the same run; and the proxy's memory as 10,000
client addresses come and go.

Usage (from the repository root)::

    python bench/bench_udp.py            # 10 s per relay and size
    python bench/bench_udp.py --quick    # 4 s per relay and size
    python bench/bench_udp.py --json -   # the figures as JSON on stdout

The backend is an echo server in a child Python.  The client (this
process) keeps C{--window} datagrams in flight and counts the echoes that
come back per second (a datagram lost is sent again after 50 ms).  The
relays take turns, C{--rounds} times, and the median of each is kept.
The ratios between relays measured in the same run are what to look at:
the machine is shared and absolute figures move.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ROOT, Children, binary, cpuSeconds, twistd  # noqa: E402

ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
recvfrom, sendto = s.recvfrom, s.sendto
while True:
    data, addr = recvfrom(65535)
    sendto(data, addr)
"""


def freeUDPPort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitUDP(port: int, seconds: float = 30.0) -> None:
    """
    Return once a datagram sent to 127.0.0.1:C{port} comes back.
    """
    deadline = time.monotonic() + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                s.recvfrom(100)
                return
            except OSError:
                pass
    raise RuntimeError("nothing answers on udp:{}".format(port))


#: Times the last measurement waited 50 ms for an echo (a datagram lost).
stalls = [0]


def rate(port: int, size: int, seconds: float, window: int) -> float:
    """
    Echoes per second from 127.0.0.1:C{port}, with C{window} datagrams of
    C{size} bytes in flight.
    """
    payload = b"x" * size
    target = ("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.connect(target)
        s.settimeout(0.05)
        send, recv = s.send, s.recv
        for _ in range(window):
            send(payload)
        received = 0
        stalls[0] = 0
        start = time.monotonic()
        end = start + seconds
        while True:
            try:
                recv(65535)
                received += 1
                send(payload)
            except socket.timeout:
                stalls[0] += 1
                for _ in range(window):
                    send(payload)
            if received & 255 == 0 and time.monotonic() >= end:
                break
        return received / (time.monotonic() - start)


def tree(pid: int) -> list[int]:
    """
    C{pid} and its descendants (socat relays each client in a child).
    """
    found = [pid]
    try:
        with open("/proc/{0}/task/{0}/children".format(pid)) as f:
            for child in f.read().split():
                found += tree(int(child))
    except OSError:
        pass
    return found


def treeCPU(pid: int) -> float:
    """
    CPU seconds used so far by C{pid} and its live descendants.
    """
    total = 0.0
    for member in tree(pid):
        try:
            total += cpuSeconds(member)
        except OSError:
            pass
    return total


def rss(pid: int) -> int:
    """
    Resident memory of C{pid}, in KiB.
    """
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def clients(port: int, count: int) -> None:
    """
    C{count} client addresses, each sending one datagram and waiting for
    its echo, 100 at a time.
    """
    target = ("127.0.0.1", port)
    for start in range(0, count, 100):
        sockets = []
        for _ in range(min(100, count - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.5)
            s.sendto(b"hello", target)
            sockets.append(s)
        for s in sockets:
            try:
                s.recv(100)
            except OSError:
                pass
            s.close()


def startProxy(children: Children, name: str, argv: list[str], port: int) -> int:
    log = open(os.path.join(children.directory, name + ".log"), "wb")
    # The checkout's own txvaurien, installed or not.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p))
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    children.processes.append(process)
    children.pids[name] = process.pid
    waitUDP(port)
    return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s per measurement")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10,
                        help="turns each relay takes per datagram size")
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--json", default=None, help="write the figures as JSON ('-': stdout)")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 10.0)
    children = Children("bench-udp-")
    results: dict[str, object] = {}
    try:
        echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE)
        children.processes.append(echo)
        assert echo.stdout is not None
        backend = int(echo.stdout.readline())
        port = freeUDPPort()
        # -T 5: socat's per-client children exit 5 s after their last
        # datagram (they outlive the parent otherwise).
        socatPort = startProxy(children, "socat", [
            binary("socat", "socat"), "-T", "5",
            "UDP-LISTEN:{},bind=127.0.0.1,fork,reuseaddr".format(port),
            "UDP:127.0.0.1:{}".format(backend)], port)
        port = freeUDPPort()
        vaurienPort = startProxy(children, "txvaurien", [
            twistd(), "-n", "--pidfile=", "--logfile=-", "vaurien",
            "--proxy", "udp:{}:interface=127.0.0.1".format(port),
            "--backend", "udp:host=127.0.0.1:port={}".format(backend),
            "--log-level", "warn", "--udp-session-timeout", "1",
            "--udp-max-sessions", str(2 * args.clients)], port)
        targets = {"direct": backend, "socat": socatPort, "txvaurien": vaurienPort}
        relayPids = {"socat": children.pids["socat"], "txvaurien": children.pids["txvaurien"]}
        names = list(targets)
        for size in (64, 1400):
            samples: dict[str, list[float]] = {name: [] for name in names}
            cpu: dict[str, list[float]] = {name: [] for name in relayPids}
            lost: dict[str, int] = {name: 0 for name in names}
            print("{} bytes, {} rounds...".format(size, args.rounds), file=sys.stderr,
                  flush=True)
            # The targets take turns, in a rotating order, so that a change
            # of the machine's load hits them alike; the median counts.
            for round in range(args.rounds):
                for name in names[round % 3:] + names[:round % 3]:
                    pid = relayPids.get(name)
                    before = treeCPU(pid) if pid else 0.0
                    started = time.monotonic()
                    perSecond = rate(targets[name], size, seconds / args.rounds, args.window)
                    if pid:
                        relayed = perSecond * (time.monotonic() - started)
                        # Each echo is two datagrams relayed.
                        cpu[name].append((treeCPU(pid) - before) / (2 * relayed) * 1e6)
                    samples[name].append(perSecond)
                    lost[name] += stalls[0]
            row: dict[str, float] = {}
            for name in names:
                row[name] = statistics.median(samples[name])
                row[name + "_samples"] = samples[name]  # type: ignore[assignment]
                row[name + "_stalls"] = lost[name]
            row["ratio_socat"] = row["txvaurien"] / row["socat"]
            for name in relayPids:
                row[name + "_cpu_us_per_datagram"] = statistics.median(cpu[name])
            results["datagrams_per_second_{}".format(size)] = row
        pid = children.pids["txvaurien"]
        memory: dict[str, int] = {"start_kib": rss(pid)}
        for round in (1, 2, 3):
            print("{} client addresses, round {}...".format(args.clients, round),
                  file=sys.stderr, flush=True)
            clients(vaurienPort, args.clients)
            memory["round{}_kib".format(round)] = rss(pid)
            time.sleep(2.5)
            clients(vaurienPort, 1)
            memory["round{}_expired_kib".format(round)] = rss(pid)
        results["memory"] = memory
    finally:
        children.close()
    for size in (64, 1400):
        row = results["datagrams_per_second_{}".format(size)]  # type: ignore[assignment]
        print("{:>5} B: direct {:>9.0f}/s  socat {:>9.0f}/s  txvaurien {:>9.0f}/s  "
              "txvaurien/socat {:.2f}x".format(
                  size, row["direct"], row["socat"], row["txvaurien"], row["ratio_socat"]))
        print("         CPU per datagram relayed: socat {:.1f} us, txvaurien {:.1f} us".format(
            row["socat_cpu_us_per_datagram"], row["txvaurien_cpu_us_per_datagram"]))
    memory = results["memory"]  # type: ignore[assignment]
    print("RSS of txvaurien (KiB) at start: {}".format(memory["start_kib"]))
    for round in (1, 2, 3):
        print("  after {} client addresses (round {}): {}, once their sessions "
              "expired: {}".format(args.clients, round, memory["round{}_kib".format(round)],
                                   memory["round{}_expired_kib".format(round)]))
    if args.json:
        text = json.dumps(results, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
