"""
Where a proxy's memory per idle connection goes, by allocation site.

Usage::

    python bench/_memprofile.py [--count N] [--group lineno|traceback] \\
        -- vaurien --proxy tcp:PORT --backend 127.0.0.1:BACKEND [args]

(C{PORT} and C{BACKEND} are filled in; C{portforward --port tcp:PORT
--host 127.0.0.1 --dest_port BACKEND} works the same way.)

It starts the benchmark backend, runs C{twistd -n <args>} in a child
process with C{tracemalloc} on, opens C{N} idle connections through it
(each after one echo exchange, as the benchmark does), and prints the
allocation sites that grew, in bytes per connection, with the RSS growth
per connection for comparison.  C{tracemalloc} sees Python allocations
only; RSS also counts the allocator's own overhead and fragmentation.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def child(snapshotDir: str, argv: list[str]) -> None:
    """
    Run twistd; the first SIGUSR1 starts tracemalloc (tracing from the
    start makes twistd's start-up very slow), and each writes a numbered
    snapshot.
    """
    import tracemalloc

    counter = [0]

    def dump(signum: int, frame: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("MEMPROFILE_FRAMES", "8")))
        counter[0] += 1
        path = os.path.join(snapshotDir, "{}.snap".format(counter[0]))
        tracemalloc.take_snapshot().dump(path + ".tmp")
        os.rename(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, dump)
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", "-n", "--pidfile="] + argv
    run()


def snapshot(proc: subprocess.Popen, directory: str, number: int) -> Any:
    import tracemalloc

    path = os.path.join(directory, "{}.snap".format(number))
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("no snapshot from the proxy")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(path)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    sys.path.insert(0, HERE)
    import bench
    import _workloads as w
    from _common import stop

    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--group", default="lineno", choices=["lineno", "traceback", "filename"])
    p.add_argument("--top", type=int, default=25)
    p.add_argument("args", nargs=argparse.REMAINDER)
    opts = p.parse_args()
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    bench.raiseNoFile()
    backend = bench.Backend()
    backend.start()
    port = bench.freePort()
    args = [a.replace("PORT", str(port)).replace("BACKEND", str(backend.port)) for a in args]
    directory = tempfile.mkdtemp(prefix="txvaurien-mem-")
    log = open(os.path.join(directory, "proxy.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", directory] + args,
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=bench._dieWithParent)
    try:
        target = bench.Target("profiled", "direct")
        target.port = port
        deadline = time.monotonic() + 30
        while True:
            try:
                w.oneExchange(target.address, memoryview(bytearray(w.HEADER)))
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the proxy did not start; see " + log.name)
                time.sleep(0.1)
        for _ in range(50):
            w.oneExchange(target.address, memoryview(bytearray(w.HEADER)))
        time.sleep(1.0)
        before = snapshot(proc, directory, 1)
        rss0 = w.rssKiB(proc.pid)
        socks = w.openIdle(target.address, opts.count)
        time.sleep(1.0)
        rss1 = w.rssKiB(proc.pid)
        after = snapshot(proc, directory, 2)
        for s in socks:
            s.close()
    finally:
        stop(proc, 10)
        backend.stop()

    n = opts.count
    stats = after.compare_to(before, opts.group)
    grown = sum(s.size_diff for s in stats)
    print("{} connections: RSS +{:.0f} B/conn; traced Python allocations +{:.0f} B/conn".format(
        n, (rss1 - rss0) * 1024 / n, grown / n))
    print("{:>9} {:>8}  site".format("B/conn", "obj/conn"))
    for s in stats[: opts.top]:
        if s.size_diff <= 0:
            continue
        frames = s.traceback if opts.group == "traceback" else s.traceback[:1]
        where = " <- ".join("{}:{}".format(
            f.filename.replace(sys.prefix, "<venv>").split("site-packages/")[-1], f.lineno)
            for f in frames)
        print("{:9.1f} {:8.2f}  {}".format(s.size_diff / n, s.count_diff / n, where))


if __name__ == "__main__":
    main()
