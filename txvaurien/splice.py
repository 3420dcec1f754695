"""
Zero-copy forwarding on Linux.

When nothing inspects or delays a direction (a passthrough protocol and no
fault), its bytes need not enter Python at all: L{Splicer} replaces the
source transport's C{doRead} so that, when the reactor reports the socket
readable, the bytes are moved with C{splice(2)} from the source socket into
a kernel pipe and from the pipe into the sink socket, and Python only sees
byte counts.

Kernel pipes come from a L{PipePool}.  A read goes through the pool's
scratch pipe, which is empty again once its bytes reach the sink; only when
the sink cannot take them all does the direction keep the pipe (its
backlog), stop reading its source, and take over the sink's C{doWrite}
until the backlog is drained.  An idle connection therefore holds no pipe.

The transports stay the reactor's selectables and keep doing everything
else (closing, half-closing, the other direction's writes); the Splicer
gives C{doRead} and C{doWrite} back when it stops, after moving any backlog
into the sink transport's ordinary write buffer.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Any, Callable

from twisted.internet import main

from txvaurien import _twisted

_splice: Callable[..., int] = getattr(os, "splice", None)  # type: ignore[assignment]
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Larger pipes move more per system call but let Linux grow the source
# socket's receive buffer (it sizes it from how much is drained per round
# trip): with 1 MiB pipes a slow backend had ~21 MiB queued in the kernel,
# with 256 KiB ~8 MiB, at the same throughput.
PIPE_SIZE = 256 * 1024
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)
#: After this many reads in a row smaller than L{SMALL_READ}, the traffic
#: is interactive again: the Splicer gives the sockets back to the plain
#: path (the Pipe takes over again at the next bulk read).
SMALL_READS = 8
SMALL_READ = 16 * 1024


def available() -> bool:
    """
    Whether this platform can splice (Linux with Python 3.10 or newer).
    """
    return getattr(os, "splice", None) is not None


def eligible(transport: Any) -> bool:
    """
    Whether C{transport} is a plain stream socket transport that a
    L{Splicer} may drive: a TCP or UNIX socket connection of a POSIX
    reactor, without TLS.
    """
    return _twisted.plainSocketTransport(transport)


class PipePool:
    """
    Kernel pipes for splicing, reused.

    @ivar size: the capacity asked for each pipe.
    @ivar spare: the most idle pipes kept open.
    """

    def __init__(self, size: int = PIPE_SIZE, spare: int = 16) -> None:
        self.size = size
        self.spare = spare
        self._idle: list[tuple[int, int]] = []
        self.created = 0

    def take(self) -> tuple[int, int]:
        """
        An empty pipe, as C{(readFD, writeFD)}.
        """
        if self._idle:
            return self._idle.pop()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, self.size)
        except OSError:
            pass
        self.created += 1
        return r, w

    def give(self, pipe: tuple[int, int]) -> None:
        """
        Return an empty pipe.
        """
        if len(self._idle) < self.spare:
            self._idle.append(pipe)
        else:
            self.close(pipe)

    def close(self, pipe: tuple[int, int]) -> None:
        """
        Close a pipe that may hold data.
        """
        for fd in pipe:
            try:
                os.close(fd)
            except OSError:
                pass

    def clear(self) -> None:
        """
        Close every idle pipe.
        """
        while self._idle:
            self.close(self._idle.pop())


pool = PipePool()


class Splicer:
    """
    Drives one direction with C{splice(2)}.

    @ivar backlog: bytes read from the source and not yet written to the
        sink (held in C{pipe}).
    @ivar active: whether the Splicer is driving its transports.
    """

    __slots__ = (
        "owner",
        "source",
        "sink",
        "pool",
        "pipe",
        "backlog",
        "active",
        "_srcfd",
        "_sinkfd",
        "_small",
    )

    def __init__(self, owner: Any, source: Any, sink: Any, pool: PipePool = pool) -> None:
        """
        @param owner: the Pipe of this direction: its C{nbytes} counts the
            bytes read; its C{spliceBlocked(blocked)} is called with C{True}
            when the sink cannot take more (the source must stop reading)
            and C{False} when it can again; its C{spliceDrained()} when a
            backlog was fully written.
        """
        self.owner = owner
        self.source = source
        self.sink = sink
        self.pool = pool
        self.pipe: tuple[int, int] | None = None
        self.backlog = 0
        self.active = False
        self._srcfd = -1
        self._sinkfd = -1
        self._small = 0

    def start(self) -> None:
        """
        Take over reading the source.
        """
        self._srcfd = _twisted.fileno(self.source)
        self._sinkfd = _twisted.fileno(self.sink)
        self.active = True
        self._small = 0
        _twisted.takeRead(self.source, self.doRead)

    def doRead(self) -> Any:
        """
        The source socket is readable: move what it holds to the sink.
        """
        if self.pipe is not None:
            # A backlog waits for the sink; read nothing more until it is
            # written, whoever asked the source to read.
            self.source.stopReading()
            return None
        pipe = self.pool.take()
        try:
            n = _splice(self._srcfd, pipe[1], self.pool.size, flags=_FLAGS)
        except OSError as e:
            self.pool.give(pipe)
            if e.errno in _AGAIN:
                return None
            return main.CONNECTION_LOST
        if not n:
            self.pool.give(pipe)
            return main.CONNECTION_DONE
        owner = self.owner
        owner.nbytes += n
        owner.count.total += n
        left = self._flush(pipe[0], n)
        if left:
            self.pipe = pipe
            self.backlog = left
            _twisted.takeWrite(self.sink, self.doWrite)
            self.owner.spliceBlocked(True)
            return None
        self.pool.give(pipe)
        if n < SMALL_READ:
            self._small += 1
            if self._small >= SMALL_READS:
                self.stop()
        else:
            self._small = 0
        return None

    def _flush(self, fd: int, n: int) -> int:
        """
        Write up to C{n} bytes from pipe C{fd} to the sink.

        @return: how many are left; on a write error, all of them (the
            sink's C{doWrite} then meets the error and reports it).
        """
        while n:
            try:
                sent = _splice(fd, self._sinkfd, n, flags=_FLAGS)
            except OSError:
                return n
            if not sent:
                return n
            n -= sent
        return 0

    def doWrite(self) -> Any:
        """
        The sink socket is writable and a backlog waits: write it.
        """
        assert self.pipe is not None
        try:
            left = self.backlog
            while left:
                sent = _splice(self.pipe[0], self._sinkfd, left, flags=_FLAGS)
                if not sent:
                    break
                left -= sent
        except OSError as e:
            self.backlog = left
            if e.errno in _AGAIN:
                return None
            return main.CONNECTION_LOST
        self.backlog = left
        if left:
            return None
        self.pool.give(self.pipe)
        self.pipe = None
        result = self._restoreWrite()
        if self.active:
            self.owner.spliceBlocked(False)
        self.owner.spliceDrained()
        return result

    def _restoreWrite(self) -> Any:
        """
        Give the sink its own C{doWrite} back and let it run once, so that
        a close or producer resumption it was waiting for happens.
        """
        _twisted.giveWrite(self.sink, self.doWrite)
        return self.sink.doWrite()

    def stop(self) -> None:
        """
        Give both transports back.  A backlog is read out of the kernel
        pipe and written to the sink transport, ahead of anything written
        after.
        """
        if not self.active:
            return
        self.active = False
        _twisted.giveRead(self.source, self.doRead)
        if self.pipe is not None:
            chunks = []
            while self.backlog:
                data = os.read(self.pipe[0], self.backlog)
                if not data:
                    break
                chunks.append(data)
                self.backlog -= len(data)
            self.pool.give(self.pipe) if not self.backlog else self.pool.close(self.pipe)
            self.pipe = None
            self.backlog = 0
            _twisted.giveWrite(self.sink, self.doWrite)
            self.sink.write(b"".join(chunks))
            self.owner.spliceBlocked(False)

    def release(self) -> None:
        """
        The connection is gone: close any pipe still held.
        """
        self.active = False
        if self.pipe is not None:
            self.pool.close(self.pipe)
            self.pipe = None
            self.backlog = 0
