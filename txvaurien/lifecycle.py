# -*- test-case-name: txvaurien.test.test_lifecycle -*-
"""
A connection's life, as one explicit state machine.

::

    OPENING ──backend connected──► OPEN ──one direction's EOF delivered──► HALF_CLOSED
       │                            │                                        │
       └──── close, reset, abort, a side lost, backend unreachable ─────────┴─► CLOSING
                                                                                 │
                              both transports gone, no dial outstanding ─────────┴─► CLOSED

  - B{OPENING}: the client is accepted and paused; behaviors'
    C{connectionMade} run and the backend is dialled (the I{attempt}).
  - B{OPEN}: both legs are connected and bytes flow both ways.
  - B{HALF_CLOSED}: one direction delivered its end of stream (the other
    side's write half is shut); the other still flows.  A half-closed
    connection with no traffic for C{halfClosedTimeout} seconds is closed.
  - B{CLOSING}: a close, reset or abort was asked for, or one side went
    away: the dial is cancelled, sinks are released (so that a pending
    close is not turned into a producer resumption) and splicers stopped;
    the connection waits for both transports to be gone.
  - B{CLOSED}: timers are cancelled, faults hear C{connectionLost}, and the
    proxy is told (once).

L{TRANSITIONS} is the whole table; L{LifecycleMixin._enter} refuses any
other move, so a bug that would close twice or reopen a closed connection
fails loudly.  The machine is a table rather than an C{automat} machine
because it is entered on every accepted connection, where the cost of
building a per-instance transitioner shows in the connection rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from txvaurien.pipe import Pipe

OPENING = "opening"
OPEN = "open"
HALF_CLOSED = "half-closed"
CLOSING = "closing"
CLOSED = "closed"

#: state -> the states it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPENING: frozenset({OPEN, CLOSING}),
    OPEN: frozenset({HALF_CLOSED, CLOSING}),
    HALF_CLOSED: frozenset({CLOSING}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}


class LifecycleError(Exception):
    """
    A move the lifecycle table does not allow: a bug.
    """


class IdleWatch:
    """
    Closes a connection once C{timeout} seconds pass without traffic in
    either direction, checking four times per period (so a busy
    connection costs one timer, not one per read).
    """

    __slots__ = ("connection", "timeout", "why", "seen", "since")

    def __init__(self, connection: Any, timeout: float, why: str) -> None:
        self.connection = connection
        self.timeout = timeout
        self.why = why
        self.seen = connection.upstream.nbytes + connection.downstream.nbytes
        self.since = connection.clock.seconds()
        connection.callLater(timeout / 4, self.check)

    def check(self) -> None:
        connection = self.connection
        if connection.closing:
            return
        seen = connection.upstream.nbytes + connection.downstream.nbytes
        now = connection.clock.seconds()
        if seen != self.seen:
            self.seen = seen
            self.since = now
        elif now - self.since >= self.timeout:
            connection.reason = self.why
            connection.close()
            return
        connection.callLater(self.timeout / 4, self.check)


class LifecycleMixin:
    """
    Closing, resetting and finishing a L{txvaurien.connection.Connection}.

    The connection provides C{state}, C{closing} and C{finished} (kept by
    L{_enter}), C{client}, C{backend}, C{upstream}, C{downstream},
    C{reason}, C{_attempt}, C{_timers}, C{_exchanges}, C{_clientLost},
    C{_backendLost} and C{proxy}.
    """

    if not TYPE_CHECKING:
        __slots__ = ()

    state: str
    closing: bool
    finished: bool
    client: Any
    backend: Any
    upstream: Pipe
    downstream: Pipe
    reason: str | None
    proxy: Any
    _attempt: Any
    _timers: list[Any] | None
    _exchanges: Any
    _clientLost: bool
    _backendLost: bool

    def _enter(self, state: str) -> None:
        """
        Move to C{state}, running what entering it does.

        @raise LifecycleError: if the table does not allow the move.
        """
        if state not in TRANSITIONS[self.state]:
            raise LifecycleError("{} cannot go from {} to {}".format(self, self.state, state))
        self.state = state
        if state == HALF_CLOSED:
            timeout = self.proxy.halfClosedTimeout
            if timeout:
                IdleWatch(self, timeout, "half-closed idle timeout")
        elif state == CLOSING:
            self.closing = True
            attempt, self._attempt = self._attempt, None
            if attempt is not None:
                attempt.cancel()
            for pipe in (self.upstream, self.downstream):
                pipe.releaseSink()
                if pipe.splicer is not None:
                    pipe.splicer.stop()
        elif state == CLOSED:
            self.finished = True
            for call in self._timers or ():
                if call.active():
                    call.cancel()
            self._timers = None
            self.upstream.stopAll()
            self.downstream.stopAll()
            for exchange in self._exchanges or ():
                for stages in exchange.stages.values():
                    for stage in stages:
                        stage.fault.connectionLost()
            self._exchanges = None
            self.proxy.connectionFinished(self)

    # Inputs

    def pipeDone(self) -> None:
        """
        A direction delivered its end of stream; when both have, close.
        """
        if self.upstream.done and self.downstream.done:
            self.close()
        elif self.state == OPEN:
            self._enter(HALF_CLOSED)

    def close(self, reason: str | None = None) -> None:
        """
        Close both sides after writing what is buffered.

        @param reason: why, for the log line that ends the connection.
        """
        self._closing(reason)
        if self.backend is not None:
            _t(self.backend).loseConnection()
        _t(self.client).loseConnection()
        self._maybeFinish()

    def reset(self, reason: str | None = None) -> None:
        """
        Reset the client (RST) and drop the backend.
        """
        self._closing(reason)
        if self.backend is not None:
            _abort(self.backend.transport)
        _abort(self.client.transport)
        self._maybeFinish()

    def abort(self, reason: str | None = None) -> None:
        """
        Drop both sides without writing what is buffered.
        """
        self.reset(reason)

    def _closing(self, reason: str | None = None) -> None:
        if reason is not None and self.reason is None:
            self.reason = reason
        if not self.closing:
            self._enter(CLOSING)

    def clientLost(self, reason: Failure) -> None:
        """
        The client transport is gone.
        """
        self._clientLost = True
        self._noteReason("client", reason)
        self._closing()
        if self.backend is not None and not self._backendLost:
            _t(self.backend).loseConnection()
        self._maybeFinish()

    def backendLost(self, reason: Failure) -> None:
        """
        The backend transport is gone.
        """
        self._backendLost = True
        self._noteReason("backend", reason)
        if not self._clientLost:
            self._closing()
            _t(self.client).loseConnection()
        self._maybeFinish()

    def attemptEnded(self) -> None:
        """
        A dial or a behavior's wait ended while closing.
        """
        self._attempt = None
        self._maybeFinish()

    def _noteReason(self, side: str, reason: Failure) -> None:
        if self.reason is None and not reason.check(ConnectionDone):
            self.reason = "{} {}".format(side, reason.getErrorMessage())

    def _maybeFinish(self) -> None:
        if self.state != CLOSING or not self._clientLost:
            return
        if self.backend is not None and not self._backendLost:
            return
        if self._attempt is not None:
            return
        self._enter(CLOSED)


def _t(protocol: Any) -> Any:
    """
    A connected protocol's transport.
    """
    assert protocol.transport is not None
    return protocol.transport


def _abort(transport: Any) -> None:
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


__all__ = [
    "CLOSED",
    "CLOSING",
    "HALF_CLOSED",
    "IdleWatch",
    "LifecycleError",
    "LifecycleMixin",
    "OPEN",
    "OPENING",
    "TRANSITIONS",
]
