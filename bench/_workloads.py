"""
The client side of the benchmark workloads, and reading a process's memory
and CPU time from C{/proc}.

Every socket has a timeout, and every loop a deadline: a target that
stalls makes a workload fail with L{WorkloadError}, never hang.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from typing import Callable

from _backend import CHUNK, HEADER, PAYLOAD, header, readAtRate, reset, sendBytes, sendFor
from _common import cpuSeconds

OP_TIMEOUT = 30.0
ECHO = header("E")
Address = tuple[str, int]


class WorkloadError(Exception):
    """
    A workload could not complete against a target.
    """


# /proc


def rssKiB(pid: int) -> int:
    """
    The resident set size of process C{pid}, in KiB (C{VmRSS}).
    """
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise WorkloadError("no VmRSS for pid {}".format(pid))


class CPUMeter:
    """
    CPU seconds a process spends between C{start} and C{stop}.
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.begin = 0.0
        self.used: float | None = None

    def __enter__(self) -> "CPUMeter":
        if self.pid is not None:
            self.begin = cpuSeconds(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pid is not None:
            self.used = cpuSeconds(self.pid) - self.begin


# Small helpers


def connect(address: Address, timeout: float = OP_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recvExactly(sock: socket.socket, view: memoryview, n: int) -> None:
    got = 0
    while got < n:
        k = sock.recv_into(view[got:n])
        if not k:
            raise WorkloadError("connection closed after {} of {} bytes".format(got, n))
        got += k


def recvLine(sock: socket.socket, limit: int = 64) -> bytes:
    """
    Read up to a newline, EOF or C{limit} bytes.
    """
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = sock.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _reply(sock: socket.socket, n: int, what: str) -> None:
    reply = recvLine(sock)
    if reply.strip() != str(n).encode():
        raise WorkloadError(
            "{}: backend replied {!r}, expected the count {}".format(what, reply, n)
        )


# Bulk throughput


def download(address: Address, n: int) -> float:
    """
    The backend sends C{n} bytes; return the seconds until the client has
    them all.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with connect(address) as sock:
        start = time.perf_counter()
        sock.sendall(header("D", n))
        got = 0
        while got < n:
            k = sock.recv_into(view)
            if not k:
                raise WorkloadError("download: closed after {} of {} bytes".format(got, n))
            got += k
        elapsed = time.perf_counter() - start
    if got != n:
        raise WorkloadError("download: got {} bytes, expected {}".format(got, n))
    return elapsed


def uploadHalfClose(address: Address, n: int) -> float:
    """
    Send C{n} bytes then C{shutdown(SHUT_WR)}; the backend reads to EOF and
    replies with the count.  Return the seconds until that reply.
    """
    with connect(address) as sock:
        start = time.perf_counter()
        sock.sendall(header("H", n))
        sendBytes(sock, n)
        sock.shutdown(socket.SHUT_WR)
        _reply(sock, n, "upload (half-close)")
        return time.perf_counter() - start


def uploadLength(address: Address, n: int) -> float:
    """
    Send a header announcing C{n} bytes, then the bytes; the backend replies
    with the count once it has them all (no half-close involved).
    """
    with connect(address) as sock:
        start = time.perf_counter()
        sock.sendall(header("L", n))
        sendBytes(sock, n)
        _reply(sock, n, "upload (length-prefixed)")
        return time.perf_counter() - start


def carriesHalfClose(address: Address, timeout: float = 5.0) -> bool:
    """
    Whether a half-close from the client reaches the backend while the
    reply can still come back.
    """
    n = 1024
    try:
        with connect(address, timeout) as sock:
            sock.sendall(header("H", n))
            sendBytes(sock, n)
            sock.shutdown(socket.SHUT_WR)
            return recvLine(sock).strip() == str(n).encode()
    except OSError:
        return False


# Latency


def echoRTT(address: Address, count: int, warmup: int, seconds: float = 60.0,
            size: int = 64) -> list[int]:
    """
    Round trips of C{size} bytes over one connection; return their
    durations in nanoseconds.  At most C{seconds} are spent (a fifth of
    them at most on the C{warmup} round trips), so a slow target gives
    fewer samples rather than a long run.
    """
    message = b"m" * size
    view = memoryview(bytearray(size))
    times: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    warmupEnd = start + int(seconds * 0.2e9)
    end = start + int(seconds * 1e9)
    with connect(address) as sock:
        sock.sendall(ECHO)
        recvExactly(sock, memoryview(bytearray(HEADER)), HEADER)
        for _ in range(warmup):
            sock.sendall(message)
            recvExactly(sock, view, size)
            if clock() > warmupEnd:
                break
        for _ in range(count):
            t0 = clock()
            sock.sendall(message)
            recvExactly(sock, view, size)
            t1 = clock()
            times.append(t1 - t0)
            if t1 > end:
                break
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# Connection rate


def oneExchange(address: Address, view: memoryview) -> None:
    """
    Connect, exchange one 64-byte message with the echo backend, close.
    """
    with connect(address, 10.0) as sock:
        sock.sendall(ECHO)
        recvExactly(sock, view, HEADER)


def connectionRate(address: Address, seconds: float, clients: int = 1) -> float:
    """
    Connections per second completed by C{clients} sequential clients
    (threads) for C{seconds}.
    """
    counts = [0] * clients
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def run(i: int) -> None:
        view = memoryview(bytearray(HEADER))
        try:
            while time.perf_counter() < deadline:
                oneExchange(address, view)
                counts[i] += 1
        except BaseException as e:
            errors.append(e)

    start = time.perf_counter()
    if clients == 1:
        run(0)
    else:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 30)
    elapsed = time.perf_counter() - start
    if errors:
        raise WorkloadError("connection rate: {!r}".format(errors[0]))
    return sum(counts) / elapsed


# Many idle connections


class _Opening:
    __slots__ = ("sock", "got", "sent")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.got = 0
        self.sent = False


def openIdle(address: Address, count: int, window: int = 32,
             timeout: float = 120.0) -> list[socket.socket]:
    """
    Open C{count} connections, each completing one echo exchange (so the
    proxy has connected it to the backend), at most C{window} at a time.

    @return: the open sockets; the caller closes them.
    """
    selector = selectors.DefaultSelector()
    done: list[socket.socket] = []
    pending = 0
    started = 0
    deadline = time.monotonic() + timeout
    try:
        while len(done) < count:
            while pending < window and started < count:
                sock = socket.socket()
                sock.setblocking(False)
                err = sock.connect_ex(address)
                if err not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise WorkloadError("connect: {}".format(errno.errorcode.get(err, err)))
                selector.register(sock, selectors.EVENT_WRITE, _Opening(sock))
                pending += 1
                started += 1
            if time.monotonic() > deadline:
                raise WorkloadError(
                    "opened only {} of {} connections in {}s".format(len(done), count, timeout))
            for key, _mask in selector.select(1.0):
                state = key.data
                sock = state.sock
                if not state.sent:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise WorkloadError("connect: {}".format(errno.errorcode.get(err, err)))
                    sock.send(ECHO)
                    state.sent = True
                    selector.modify(sock, selectors.EVENT_READ, state)
                    continue
                try:
                    data = sock.recv(HEADER)
                except BlockingIOError:
                    continue
                if not data:
                    raise WorkloadError(
                        "connection {} closed by the target".format(len(done)))
                state.got += len(data)
                if state.got >= HEADER:
                    selector.unregister(sock)
                    pending -= 1
                    done.append(sock)
    except BaseException:
        for key in list(selector.get_map().values()):
            key.data.sock.close()
        for sock in done:
            sock.close()
        raise
    finally:
        selector.close()
    return done


# Backpressure


def _sampler(pid: int, stop: threading.Event, out: list[int], every: float) -> None:
    while not stop.is_set():
        try:
            out.append(rssKiB(pid))
        except (OSError, WorkloadError):
            return
        stop.wait(every)


def slowClient(address: Address, pid: int, seconds: float, rate: float,
               every: float = 0.1) -> dict[str, float]:
    """
    The backend pushes as fast as it can; the client reads at C{rate}
    bytes per second for C{seconds}, while the proxy's RSS is sampled.
    """
    return _backpressure(pid, every, lambda: _readSlowly(address, seconds, rate))


def slowBackend(address: Address, pid: int, seconds: float, rate: float,
                every: float = 0.1) -> dict[str, float]:
    """
    The client pushes as fast as it can for C{seconds}; the backend reads
    at C{rate} bytes per second, while the proxy's RSS is sampled.
    """
    result = _backpressure(pid, every, lambda: _pushHard(address, seconds, rate))
    # What the client could write beyond what the backend read sits in
    # buffers: the kernel's (socket buffers, splice pipes) and the proxy's.
    result["queuedMiB"] = (result["bytes"] - rate * result["seconds"]) / (1024 * 1024)
    return result


def _backpressure(pid: int, every: float,
                  run: Callable[[], tuple[int, float]]) -> dict[str, float]:
    baseline = rssKiB(pid)
    samples: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sampler, args=(pid, stop, samples, every))
    sampler.start()
    try:
        moved, seconds = run()
    finally:
        stop.set()
        sampler.join(5)
    peak = max(samples) if samples else baseline
    return {
        "baselineKiB": baseline,
        "peakKiB": peak,
        "growthKiB": peak - baseline,
        "bytes": moved,
        "seconds": seconds,
        "rateMBps": moved / seconds / 1e6,
        "samples": len(samples),
    }


def _readSlowly(address: Address, seconds: float, rate: float) -> tuple[int, float]:
    sock = connect(address)
    try:
        sock.sendall(header("P", seconds + 5))
        start = time.monotonic()
        got, closed = readAtRate(sock, rate, seconds)
        if closed:
            raise WorkloadError("slow client: the target closed after {} bytes".format(got))
        return got, time.monotonic() - start
    finally:
        reset(sock)


def _pushHard(address: Address, seconds: float, rate: float) -> tuple[int, float]:
    sock = connect(address)
    try:
        sock.sendall(header("R", rate, seconds + 5))
        start = time.monotonic()
        sent = sendFor(sock, seconds, PAYLOAD[:262144], 0.05)
        return sent, time.monotonic() - start
    finally:
        reset(sock)
