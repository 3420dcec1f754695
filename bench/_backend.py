"""
The backend of the benchmark, run as its own process by C{bench.py}.

One listening socket serves every workload.  A connection starts with a
L{HEADER}-byte header (ASCII, padded with spaces) whose first word names
what the backend does with it:

    - C{E}: echo.  The header itself is echoed, then every byte until EOF.
      Echo connections stay in one C{selectors} loop, so thousands of idle
      ones cost almost nothing.
    - C{D n}: download.  Send C{n} bytes, then close.
    - C{H n}: upload with half-close.  Read to EOF, then reply with the
      byte count (ASCII, newline) and close.
    - C{L n}: length-prefixed upload.  Read exactly C{n} bytes, reply with
      the count and close (for proxies that do not carry half-close).
    - C{P seconds}: push as fast as possible until the peer goes away or
      C{seconds} have passed.
    - C{R rate seconds}: read at C{rate} bytes per second until EOF or
      until C{seconds} have passed, then reset the connection.

Bulk connections (every mode but C{E}) get a thread each with a blocking
socket: they run one at a time, and C{sendall}/C{recv_into} release the
GIL, so the backend is not the bottleneck.  Payloads are one preallocated
buffer; nothing is hashed or copied in Python.

Usage: C{python _backend.py [port]}.  The process prints C{PORT <n>} once
it listens, and exits when its standard input closes (its parent died).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import threading
import time

HEADER = 64
CHUNK = 4 * 1024 * 1024
OP_TIMEOUT = 60.0
PAYLOAD = memoryview(bytearray(b"x" * CHUNK))


def header(*words: object) -> bytes:
    """
    The header that asks for C{words} (a mode letter and its numbers).
    """
    text = " ".join(str(w) for w in words).encode("ascii")
    if len(text) > HEADER:
        raise ValueError("header too long: {!r}".format(text))
    return text.ljust(HEADER)


def reset(sock: socket.socket) -> None:
    """
    Close with RST (SO_LINGER 0), so nothing lingers.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def sendBytes(sock: socket.socket, n: int) -> None:
    """
    Send C{n} bytes of L{PAYLOAD}, blocking.
    """
    while n >= CHUNK:
        sock.sendall(PAYLOAD)
        n -= CHUNK
    if n:
        sock.sendall(PAYLOAD[:n])


def _download(sock: socket.socket, n: int) -> None:
    sendBytes(sock, n)
    sock.shutdown(socket.SHUT_WR)
    # Wait for the client to close, so the last bytes are not lost to a
    # reset if it still had something in flight.
    _drain(sock)


def _drain(sock: socket.socket) -> int:
    buf = bytearray(CHUNK)
    total = 0
    while True:
        n = sock.recv_into(buf)
        if not n:
            return total
        total += n


def _readExactly(sock: socket.socket, n: int) -> int:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    while total < n:
        got = sock.recv_into(view, min(CHUNK, n - total))
        if not got:
            break
        total += got
    return total


def sendFor(sock: socket.socket, seconds: float, data: bytes | memoryview,
            timeout: float) -> int:
    """
    Send C{data} again and again for C{seconds} (a send blocked for
    C{timeout} seconds is tried again).

    @return: how many bytes were sent.
    """
    deadline = time.monotonic() + seconds
    sock.settimeout(timeout)
    sent = 0
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
        except socket.timeout:
            continue
    return sent


def readAtRate(sock: socket.socket, rate: float, seconds: float) -> tuple[int, bool]:
    """
    Read at C{rate} bytes per second at most, for C{seconds}.

    @return: how many bytes were read, and whether the peer closed the
        connection before the time was up.
    """
    view = memoryview(bytearray(65536))
    sock.settimeout(0.05)
    start = time.monotonic()
    total = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            return total, False
        allowed = int(rate * (now - start)) - total
        if allowed <= 0:
            time.sleep(0.01)
            continue
        try:
            got = sock.recv_into(view, min(allowed, len(view)))
        except socket.timeout:
            continue
        if not got:
            return total, True
        total += got


def _push(sock: socket.socket, seconds: float) -> None:
    sendFor(sock, seconds, PAYLOAD, 1.0)
    reset(sock)


def _slowRead(sock: socket.socket, rate: float, seconds: float) -> None:
    readAtRate(sock, rate, seconds)
    reset(sock)


def _bulk(sock: socket.socket, words: list[str], early: bytes) -> None:
    try:
        sock.setblocking(True)
        sock.settimeout(OP_TIMEOUT)
        mode = words[0]
        if mode == "D":
            _download(sock, int(words[1]))
        elif mode == "H":
            count = len(early) + _drain(sock)
            sock.sendall(b"%d\n" % count)
            sock.close()
        elif mode == "L":
            n = int(words[1])
            count = len(early) + _readExactly(sock, n - len(early))
            sock.sendall(b"%d\n" % count)
            _drain(sock)
        elif mode == "P":
            _push(sock, float(words[1]))
        elif mode == "R":
            _slowRead(sock, float(words[1]), float(words[2]))
        else:
            reset(sock)
    except OSError:
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


class _Echo:
    __slots__ = ("sock", "inbuf", "outbuf", "started", "events")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.started = False
        self.events = selectors.EVENT_READ


class Backend:
    """
    The selectors loop: accepts, reads headers, echoes, and hands bulk
    connections to threads.
    """

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)

    def run(self) -> None:
        select = self.selector.select
        while True:
            for key, mask in select():
                state = key.data
                if state is None:
                    self._accept()
                    continue
                if mask & selectors.EVENT_WRITE:
                    self._flush(state)
                if mask & selectors.EVENT_READ and state.sock.fileno() >= 0:
                    self._read(state)

    def _accept(self) -> None:
        for _ in range(256):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # EMFILE and friends: leave the rest in the backlog.
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, _Echo(sock))

    def _close(self, state: _Echo) -> None:
        try:
            self.selector.unregister(state.sock)
        except (KeyError, ValueError):
            pass
        state.sock.close()

    def _read(self, state: _Echo) -> None:
        try:
            data = state.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(state)
            return
        if not data:
            self._close(state)
            return
        if not state.started:
            state.inbuf += data
            if len(state.inbuf) < HEADER:
                return
            head, rest = state.inbuf[:HEADER], state.inbuf[HEADER:]
            state.inbuf = b""
            words = head.decode("ascii", "replace").split()
            if not words or words[0] != "E":
                self.selector.unregister(state.sock)
                threading.Thread(
                    target=_bulk, args=(state.sock, words or ["?"], rest), daemon=True
                ).start()
                return
            state.started = True
            data = head + rest
        state.outbuf += data
        self._flush(state)

    def _flush(self, state: _Echo) -> None:
        if state.outbuf:
            try:
                sent = state.sock.send(state.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(state)
                return
            state.outbuf = state.outbuf[sent:]
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if state.outbuf else 0)
        if state.outbuf and len(state.outbuf) > CHUNK:
            # The peer does not read: stop reading until it does.
            wanted = selectors.EVENT_WRITE
        if wanted != state.events:
            state.events = wanted
            self.selector.modify(state.sock, wanted, state)


def _watchParent() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    backend = Backend(port)
    threading.Thread(target=_watchParent, daemon=True).start()
    sys.stdout.write("PORT {}\n".format(backend.port))
    sys.stdout.flush()
    backend.run()


if __name__ == "__main__":
    main()
