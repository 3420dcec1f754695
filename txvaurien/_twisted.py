# -*- test-case-name: txvaurien.test.test_twisted_internals -*-
"""
Every use of Twisted's private transport attributes, in one module.

The byte path saves reactor turns by reaching under the public
L{ITransport} of I{plain} stream socket transports (TCP and UNIX sockets of
a POSIX reactor, without TLS):

  - L{sinkIdle} reads the write buffer (C{_tempDataLen}, C{dataBuffer},
    C{offset}) to know that nothing is queued before a write;
  - L{socketSend} writes to the transport's C{socket} directly when nothing
    is queued;
  - L{takeRead}/L{giveRead} and L{takeWrite}/L{giveWrite} replace the
    transport's C{doRead}/C{doWrite} for the zero-copy path
    (L{txvaurien.splice}).

and L{EPollReactor}, the reactor C{twistd vaurien} installs unless told
otherwise, reuses the epoll reactor's C{_poller}, C{_selectables} and
C{_doReadOrWrite} to dispatch events without a log context per event.

Each transport function is only ever called on a transport for which L{plainSocketTransport}
is true; every other transport (TLS, wrapped, test doubles) goes through
the public C{write}.  L{REQUIRED} lists what is relied on, and the test
suite checks it against the installed Twisted, so that an upgrade that
renames one fails loudly instead of reordering bytes.
"""

from __future__ import annotations

import errno
import sys
from typing import Any, Callable

from twisted.internet import tcp

#: The attributes of C{twisted.internet.tcp.Connection} instances (a plain
#: connected socket transport) this module relies on.
REQUIRED = (
    "socket",
    "dataBuffer",
    "offset",
    "_tempDataLen",
    "connected",
    "disconnecting",
    "doRead",
    "doWrite",
    "startWriting",
    "stopReading",
)


def plainSocketTransport(transport: Any) -> bool:
    """
    Whether C{transport} is a plain stream socket transport whose private
    attributes this module may use: a TCP or UNIX socket connection of a
    POSIX reactor, without TLS.
    """
    return (
        isinstance(transport, tcp.Connection)
        and not getattr(transport, "TLS", False)
        and getattr(transport, "socket", None) is not None
    )


def sinkIdle(transport: Any) -> bool:
    """
    Whether a plain socket transport's write buffer is empty, so that bytes
    written to its socket directly cannot overtake buffered ones.
    """
    return not (
        transport._tempDataLen or len(transport.dataBuffer) - transport.offset
    )


def writable(transport: Any) -> bool:
    """
    Whether a plain socket transport may be written to directly now:
    connected, not closing, and nothing queued.
    """
    return transport.connected and not transport.disconnecting and sinkIdle(transport)


def socketSend(transport: Any, data: bytes) -> int:
    """
    Write what the socket takes of C{data} at once.

    @return: how many bytes were written; 0 on an error, which the
        transport meets again and reports when it writes the rest.
    """
    try:
        return transport.socket.send(data)
    except OSError:
        return 0


def fileno(transport: Any) -> int:
    """
    The transport's socket's file descriptor.
    """
    return transport.socket.fileno()


def takeRead(transport: Any, doRead: Callable[[], Any]) -> None:
    """
    Make the reactor call C{doRead} instead of the transport's own when its
    socket is readable.
    """
    transport.doRead = doRead


def giveRead(transport: Any, doRead: Callable[[], Any]) -> None:
    """
    Undo L{takeRead}, if C{doRead} is still the one installed.
    """
    if transport.__dict__.get("doRead") == doRead:
        del transport.doRead


def takeWrite(transport: Any, doWrite: Callable[[], Any]) -> None:
    """
    Make the reactor call C{doWrite} instead of the transport's own when its
    socket is writable, and ask for that.
    """
    transport.doWrite = doWrite
    transport.startWriting()


def giveWrite(transport: Any, doWrite: Callable[[], Any]) -> bool:
    """
    Undo L{takeWrite}, if C{doWrite} is still the one installed.

    @return: whether it was.
    """
    if transport.__dict__.get("doWrite") == doWrite:
        del transport.doWrite
        return True
    return False


def missing(transport: Any) -> list[str]:
    """
    The names of L{REQUIRED} that C{transport} lacks (none, on a supported
    Twisted).
    """
    return [name for name in REQUIRED if not hasattr(transport, name)]


# The reactor.  twistd's default epoll reactor wraps the dispatch of every
# event in log.callWithLogger, which pushes a log context (the selectable's
# logPrefix, as the "system" of legacy log events) and pops it again: about
# 16,000 instructions per event, a fifth of a small message's round trip
# through the proxy.  txvaurien logs with twisted.logger namespaces and
# does not use that context, so its reactor dispatches directly;
# _doReadOrWrite still catches and logs whatever a handler raises.

#: The attributes of Twisted's epoll reactor L{EPollReactor} relies on.
REACTOR_REQUIRED = ("_poller", "_selectables", "_doReadOrWrite", "doPoll")

try:
    from twisted.internet import epollreactor as _epoll
except ImportError:  # pragma: no cover (not Linux)
    _epoll = None  # type: ignore[assignment]


if _epoll is not None:

    class EPollReactor(_epoll.EPollReactor):
        """
        Twisted's epoll reactor, dispatching each event without a log
        context.
        """

        def doPoll(self, timeout: float | None) -> None:
            if timeout is None:
                timeout = -1
            try:
                events = self._poller.poll(timeout, len(self._selectables))
            except OSError as err:
                if err.errno == errno.EINTR:
                    return
                raise
            dispatch = self._doReadOrWrite
            get = self._selectables.get
            for fd, event in events:
                selectable = get(fd)
                if selectable is not None:
                    dispatch(selectable, fd, event)

        doIteration = doPoll


def installReactor() -> bool:
    """
    Install L{EPollReactor} as the global reactor, unless one is installed
    already (a C{--reactor} given to twistd, or any import of
    C{twisted.internet.reactor}) or the platform has no epoll.

    @return: whether it was installed.
    """
    if "twisted.internet.reactor" in sys.modules or _epoll is None:
        return False
    from twisted.internet.main import installReactor as install

    install(EPollReactor())
    return True
