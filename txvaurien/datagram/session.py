# -*- test-case-name: txvaurien.test.test_datagram_proxy -*-
"""
One client address of a UDP proxy: its backend socket, its behaviors and
its random stream.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from zope.interface import implementer

from txvaurien import logs
from txvaurien.datagram.pipeline import Chain
from txvaurien.frames import DOWNSTREAM, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection
from txvaurien.table import REQUEST_SCOPE

_log = logs.logger("txvaurien.datagram")

#: Requests whose responses a session waits for at most (request scope).
MAX_EXCHANGES = 1024

#: Seconds by which the idle timer may fire early through rounding.
_SLACK = 1e-6


class _NoBytes:
    """
    What the control API reads of a stream connection's Pipes: a UDP
    proxy counts its bytes itself (C{bytesUp}, C{bytesDown}), so a
    session's own count is always 0.
    """

    nbytes = 0


@implementer(IConnection)
class DatagramSession:
    """
    The datagrams exchanged with one client address: an L{IConnection} for
    the faults, with its own connected backend socket so that the
    backend's replies can be told apart per client.

    Under connection scope the behaviors are chosen once, when the session
    opens (and again when the table changes); under request scope (a
    protocol that frames requests, such as C{dns}) once per request, and
    the response to that request goes through the same behaviors' faults.

    @ivar address: the client's C{(host, port)}.
    @ivar port: the connected backend L{IListeningPort}.
    @ivar last: when the last datagram came, either way (reactor seconds).
    @ivar fast: whether datagrams go straight through (no fault can act
        and the protocol needs no framing).
    @ivar up: the upstream L{Chain} under connection scope.
    @ivar down: the downstream L{Chain} under connection scope.
    @ivar exchanges: the request-scope chains of requests not yet answered,
        by request, oldest first; at most L{MAX_EXCHANGES}.
    """

    datagram = True

    # What the control API reads of a connection (metrics and Vaurien's
    # GET /connections): bytes are counted by the proxy.
    upstream = downstream = _NoBytes()

    def __init__(self, proxy: Any, address: tuple[str, int], id: int) -> None:
        self.proxy = proxy
        self.address = address
        self.id = id
        self.clock = proxy.reactor
        self.reason: str | None = None
        self.closed = False
        self._random: random.Random | None = None
        self._calls: list[Any] = []
        self._warned: set[str] = set()
        self.exchanges: dict[Message, tuple[Chain, Chain]] = {}
        self.up: Chain | None = None
        self.down: Chain | None = None
        self.fast = False
        self.session = proxy.handler.buildSession(self)
        self.opened = self.last = self.clock.seconds()
        backend = proxy.backend
        self.port = proxy.socketFactory(
            proxy.reactor, backend.host, backend.port, backend.interface,
            proxy.maxDatagram + 1, self._fromBackend, self.unreachable)
        self._idle = self.clock.callLater(proxy.sessionTimeout, self._checkIdle)
        self.choose()

    @property
    def random(self) -> random.Random:
        if self._random is None:
            self._random = self.proxy.random.stream(self.proxy.name, "session", self.id)
        return self._random

    # What the control API describes

    @property
    def requestScope(self) -> bool:
        return bool(self.proxy.table.scope == REQUEST_SCOPE)

    @property
    def behaviors(self) -> list[Any]:
        """
        The behaviors chosen for the whole session (none under request
        scope).
        """
        chosen: list[Any] = []
        for chain in (self.up, self.down):
            for stage in chain.stages if chain is not None else ():
                if stage.behavior not in chosen:
                    chosen.append(stage.behavior)
        return chosen

    @property
    def backend(self) -> Any:
        return None if self.closed else self.port

    @property
    def client(self) -> Any:
        return self

    @property
    def transport(self) -> Any:
        return self

    def getPeer(self) -> Any:
        """
        The client's address, as a stream connection's client transport
        gives it.
        """
        host, port = self.address[:2]
        if ":" in host:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    # Behaviors

    def _draw(self) -> tuple[Any, ...]:
        table = self.proxy.table
        behaviors = table.choose(None if table.inert else self.random)
        decisions = self.proxy.decisions
        for behavior in behaviors:
            decisions[behavior.name] = decisions.get(behavior.name, 0) + 1
        return behaviors

    def choose(self) -> None:
        """
        Choose the behaviors (under connection scope) and decide whether
        datagrams may go straight through.
        """
        table = self.proxy.table
        self.up = self.down = None
        if table.scope != REQUEST_SCOPE:
            behaviors = self._draw()
            if behaviors:
                self.up = Chain(self, UPSTREAM, behaviors) or None
                self.down = Chain(self, DOWNSTREAM, behaviors) or None
        self.fast = (
            getattr(self.session, "passthrough", False)
            and self.up is None and self.down is None
            and (table.scope != REQUEST_SCOPE or table.inert)
        )

    def tableChanged(self) -> None:
        """
        The proxy's table changed: faults let go of what they hold, and the
        behaviors are chosen again.
        """
        for chain in (self.up, self.down):
            if chain is not None:
                chain.unlink()
        self.choose()

    def _exchange(self, message: Message) -> Chain | None:
        """
        Under request scope, the upstream chain of a request, with its
        response's kept in C{message.exchange}.
        """
        if message.kind != REQUEST:
            return None
        matches = getattr(self.session, "matches", None)
        if matches is not None and not matches(message):
            return None
        behaviors = self._draw()
        if not behaviors:
            return None
        exchange = (Chain(self, UPSTREAM, behaviors, message),
                    Chain(self, DOWNSTREAM, behaviors, message))
        message.exchange = exchange
        exchanges = self.exchanges
        if len(exchanges) >= MAX_EXCHANGES:
            # The oldest request was lost, or its answer: forget it.
            self._forget(next(iter(exchanges)))
        exchanges[message] = exchange
        return exchange[0]

    # Datagrams

    def _fromBackend(self, data: bytes) -> None:
        self.proxy.backendDatagram(self, data)

    def fromClient(self, data: bytes) -> None:
        """
        A datagram from the client, on the framed path.
        """
        for frame in self.session.upstream.feed(data):
            if self.up is not None:
                self.up.receive(frame)
                continue
            chain = None
            if self.proxy.table.scope == REQUEST_SCOPE:
                chain = self._exchange(frame.message)
            if chain is None:
                self.deliver(UPSTREAM, frame)
            else:
                chain.receive(frame)

    def fromBackend(self, data: bytes) -> None:
        """
        A datagram from the backend, on the framed path.
        """
        for frame in self.session.downstream.feed(data):
            chain = self.down
            if chain is None:
                request = frame.message.request
                exchange = None if request is None else request.exchange
                if exchange is not None:
                    chain = exchange[1]
                    if frame.last:
                        self._forget(request)
            if chain is None:
                self.deliver(DOWNSTREAM, frame)
            else:
                chain.receive(frame)

    def deliver(self, direction: str, frame: Frame) -> None:
        """
        Send a datagram that left the faults.
        """
        if self.closed:
            return
        if direction == UPSTREAM:
            message = frame.message
            if frame.first and message.kind == REQUEST:
                self.session.requestSent(message)
            self.proxy.sendBackend(self, frame.data)
        else:
            self.proxy.sendClient(self, frame.data)

    def dropped(self, direction: str, frame: Frame) -> None:
        """
        A fault dropped a datagram; a request dropped gets no response, so
        its exchange is forgotten.
        """
        self.proxy.countDropped(direction)
        message = frame.message
        if direction == UPSTREAM and message.exchange is not None:
            self._forget(message)

    def _forget(self, request: Message) -> None:
        """
        Forget the exchange of C{request}.  Its faults are not told the
        connection is lost: what they keep per connection (C{drop}'s
        burst state) outlives one exchange.
        """
        self.exchanges.pop(request, None)
        request.exchange = None

    # Events

    def unreachable(self) -> None:
        """
        The backend answered with ICMP port unreachable: what was sent is
        lost; the session stays, in case the backend comes back.
        """
        self.proxy.unreachable += 1
        self.warnOnce(
            "unreachable",
            "{proxy} session #{sid} {peer}: backend {backend} unreachable "
            "(ICMP port unreachable); datagrams to it are lost",
            backend=self.proxy.backend.description)

    def warnOnce(self, key: str, format: str, **fields: Any) -> None:
        """
        Log a warning about this session once per C{key}.
        """
        if key in self._warned:
            return
        self._warned.add(key)
        _log.warn(format, proxy=self.proxy.name, sid=self.id,
                  peer="{}:{}".format(*self.address[:2]), **fields)

    def _checkIdle(self) -> None:
        timeout = self.proxy.sessionTimeout
        idle = self.clock.seconds() - self.last
        if idle + _SLACK >= timeout:
            self._idle = None
            self.end("idle for {:g}s".format(timeout))
        else:
            self._idle = self.clock.callLater(timeout - idle, self._checkIdle)

    # IConnection

    def callLater(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        call = self.clock.callLater(delay, f, *args, **kwargs)
        calls = self._calls
        if len(calls) >= 32:
            calls[:] = [c for c in calls if c.active()]
        calls.append(call)
        return call

    def reply(
        self,
        request: Message | None,
        data: bytes,
        close: bool = False,
        reason: str | None = None,
    ) -> None:
        message = Message(DOWNSTREAM, -1, RESPONSE, {"synthetic": True}, request)
        frame = Frame(data, message)
        exchange = None if request is None else request.exchange
        if exchange is not None:
            self._forget(request)  # type: ignore[arg-type]
            exchange[1].receive(frame)
        elif self.down is not None:
            self.down.receive(frame)
        else:
            self.deliver(DOWNSTREAM, frame)
        if close:
            self.end(reason)

    def close(self, reason: str | None = None) -> None:
        self.end(reason)

    def reset(self, reason: str | None = None) -> None:
        self.end(reason)

    def abort(self, reason: str | None = None) -> None:
        self.end(reason)

    def end(self, reason: str | None = None) -> None:
        """
        Forget this session: its backend socket closes, its faults drop
        what they hold, its timers stop.  A later datagram from the same
        client starts a new session.
        """
        if self.closed:
            return
        self.closed = True
        self.reason = self.reason or reason
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls = []
        for chain in (self.up, self.down):
            if chain is not None:
                chain.lost()
        for up, down in self.exchanges.values():
            up.lost()
            down.lost()
        self.exchanges.clear()
        self.port.close()
        self.proxy.sessionEnded(self)


__all__ = ["DatagramSession"]
