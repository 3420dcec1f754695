# -*- test-case-name: txvaurien.test.test_proxy -*-
"""
One client and its backend: L{Connection}.

A Connection owns both legs' protocols, the two L{txvaurien.pipe.Pipe}s,
the protocol session, the behaviors chosen for it, its timers (cancelled at
close) and its random stream.  Its exchange bookkeeping is
L{txvaurien.ordering.OrderingMixin}'s and its life (open, half-closed,
closing, closed) is L{txvaurien.lifecycle.LifecycleMixin}'s state machine.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import CancelledError, gatherResults, maybeDeferred
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs, splice
from txvaurien.frames import CLOSE_AFTER, DOWNSTREAM, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IUpgradableConnection
from txvaurien.lifecycle import OPEN, OPENING, IdleWatch, LifecycleMixin, _t
from txvaurien.ordering import Exchange, OrderingMixin
from txvaurien.pipe import CONNECTING, Pipe
from txvaurien.sequencer import Sequencer
from txvaurien.stage import chain
from txvaurien.table import REQUEST_SCOPE

if TYPE_CHECKING:
    from txvaurien.proxy import ProxyClient, ProxyServer, ProxyServerFactory

_log = logs.logger("txvaurien.proxy")


@implementer(IUpgradableConnection)
class Connection(OrderingMixin, LifecycleMixin):
    """
    One client and its backend connection: an
    L{txvaurien.interfaces.IConnection} that a session can switch to TLS
    (L{IUpgradableConnection}).

    @ivar id: the connection's number within its proxy.
    @ivar client: the L{ProxyServer}.
    @ivar backend: the L{ProxyClient}, once connected.
    @ivar upstream: the client-to-backend L{Pipe}.
    @ivar downstream: the backend-to-client L{Pipe}.
    @ivar behaviors: the behaviors chosen for the whole connection.
    @ivar requestScope: whether behaviors are chosen per request.
    @ivar tracked: requests written while no fault could act (see
        L{inert}) whose responses have not ended yet, oldest first.
    @ivar early: bytes a backend read from the client to choose itself
        (a C{host:} backend reads the first request head), or L{None}:
        the upstream Pipe gets them first when the backend connects.
    """

    __slots__ = (
        "id",
        "proxy",
        "clock",
        "session",
        "client",
        "backend",
        "upstream",
        "downstream",
        "behaviors",
        "requestScope",
        "opened",
        "closing",
        "finished",
        "reason",
        "_random",
        "_timers",
        "_attempt",
        "_exchanges",
        "_clientLost",
        "_backendLost",
        "state",
        "tableVersion",
        "tracked",
        "early",
    )

    def __init__(self, proxy: ProxyServerFactory, client: ProxyServer, id: int) -> None:
        self.id = id
        self.proxy = proxy
        self.clock = proxy.reactor
        self.client = client
        self.backend: ProxyClient | None = None
        self.behaviors: tuple[Any, ...] = ()
        self.requestScope = proxy.table.scope == REQUEST_SCOPE
        self.opened = self.clock.seconds()
        self.closing = False
        self.finished = False
        self.reason: str | None = None
        self._random: Any = None
        self._timers: list[Any] | None = None
        self._attempt: Any = None
        self._exchanges: set[Exchange] | None = None
        self._clientLost = False
        self._backendLost = False
        self.state = OPENING
        self.tableVersion = proxy.tableVersion
        self.early: bytes | None = None
        # A deque costs ~600 bytes: only protocols that pair responses
        # with requests need one.
        self.tracked: Any = deque() if proxy.handler.framesRequests else ()
        self.session = proxy.handler.buildSession(self)
        self.upstream = Pipe(self, UPSTREAM)
        self.downstream = Pipe(self, DOWNSTREAM)
        if proxy.handler.framesRequests:
            self.downstream.sequencer = Sequencer(
                self.downstream._write, self.downstream._sequencerFull,
                idleChanged=self.sequencerIdle,
            )
            if self.requestScope:
                self.upstream.sequencer = Sequencer(
                    self.upstream._write, self.upstream._sequencerFull,
                    idleChanged=self.sequencerIdle,
                )

    def __repr__(self) -> str:
        return "<Connection {}#{}>".format(self.proxy.name, self.id)

    @property
    def random(self) -> Any:
        if self._random is None:
            self._random = self.proxy.random.stream(self.proxy.name, "connection", self.id)
        return self._random

    # Opening

    def start(self) -> None:
        """
        The client connected: choose behaviors, then reach the backend.
        """
        proxy = self.proxy
        proxy.connections[self] = None
        transport = self.client.transport
        self.upstream.pause(CONNECTING)
        self.upstream.setSource(transport)
        self.downstream.setSink(transport)
        _noDelay(transport)
        if logs.isEnabled(LogLevel.debug):
            _log.debug(
                "{proxy} #{cid} accepted {peer}",
                proxy=proxy.name,
                cid=self.id,
                peer=_peer(transport),
            )
        if proxy.idleTimeout:
            IdleWatch(self, proxy.idleTimeout, "idle timeout")
        waits = []
        if not self.requestScope:
            self.behaviors = self.choose(None)
            for behavior in self.behaviors:
                waits.append(maybeDeferred(behavior.connectionMade, self))
                if self.closing:
                    return
        pending = [d for d in waits if not d.called]
        if not pending:
            for d in waits:
                d.addErrback(self._behaviorFailed)
            self._connectBackend()
            return
        self._attempt = gathered = gatherResults(waits, consumeErrors=True)
        gathered.addCallbacks(lambda _: self._connectBackend(), self._behaviorFailed)

    def _behaviorFailed(self, reason: Failure) -> None:
        self._attempt = None
        if reason.check(CancelledError) or self.closing:
            self._maybeFinish()
            return
        _log.failure(
            "{proxy} #{cid} behavior failed at connection start",
            reason,
            proxy=self.proxy.name,
            cid=self.id,
        )
        self.close()

    def choose(self, request: Message | None, head: bytes | None = None) -> tuple[Any, ...]:
        """
        Draw behaviors from the proxy's table, and log the decision.

        @param request: the request they are for, or L{None} for the whole
            connection.
        @param head: the bytes of the request's first frame, for match
            fields the framers do not record.
        """
        table = self.proxy.table
        if request is not None and not table.inert:
            # A handler may narrow which requests faults apply to (dns:
            # match_name, match_type); others draw no randomness.
            matches = getattr(self.session, "matches", None)
            if matches is not None and not matches(request):
                return ()
        behaviors = table.choose(None if table.inert else self.random, request, self, head)
        decisions = self.proxy.decisions
        for behavior in behaviors:
            decisions[behavior.name] = decisions.get(behavior.name, 0) + 1
        if logs.isEnabled(LogLevel.debug):
            _log.debug(
                "{proxy} #{cid} request {request}: {decision}",
                proxy=self.proxy.name,
                cid=self.id,
                request=None if request is None else request.index,
                decision="+".join(b.name for b in behaviors) or "dummy",
                behaviors=[(b.name, dict(b.settings)) for b in behaviors],
                event="decision",
            )
        return behaviors

    def _connectBackend(self) -> None:
        self._attempt = None
        if self.closing:
            return
        factory = self.proxy.clientFactory(self)
        self._attempt = self.proxy.backend.connect(
            factory, self.proxy.connectTimeout
        )

    def backendConnected(self, backend: ProxyClient) -> None:
        """
        The backend accepted: wire both Pipes and let bytes flow.
        """
        self._attempt = None
        if self.closing:
            _t(backend).loseConnection()
            return
        self.backend = backend
        self._enter(OPEN)
        transport = backend.transport
        _noDelay(transport)
        self.downstream.setSource(transport)
        self.upstream.setSink(transport)
        if self.proxy.splice and splice.available():
            client = self.client.transport
            if splice.eligible(client) and splice.eligible(transport):
                self.upstream.spliceable = self.downstream.spliceable = True
        self._installStages()
        # A session may have its own say with the backend first (switching
        # it to TLS): it lets the client's bytes flow when it is done
        # (tlsUpgradeEnded).
        prepare = getattr(self.session, "prepareBackend", None)
        if prepare is not None and prepare():
            return
        self._resumeClient()

    def _resumeClient(self) -> None:
        """
        Let the client's bytes flow to the backend: first those the
        backend read to choose itself (a resumed source delivers nothing
        before the next reactor turn), then the source's.
        """
        self.upstream.resume(CONNECTING)
        early = self.early
        if early is not None:
            self.early = None
            self.upstream.dataReceived(early)

    def _installStages(self) -> None:
        for pipe in (self.upstream, self.downstream):
            reuse = {stage.behavior: stage for stage in pipe.stages}
            pipe.setStages(chain(pipe, self.behaviors, None, reuse))

    def tableChanged(self) -> None:
        """
        The proxy's behavior table changed: under connection scope, choose
        again and replace the chains (faults leaving release what they
        hold).  Under request scope, the next request draws from the new
        table.
        """
        if self.closing:
            return
        if self.requestScope:
            # The next request draws from the new table; whether the
            # connection is inert may have changed with it.
            self.reroute()
            return
        old, self.behaviors = self.behaviors, self.choose(None)
        if self.backend is not None:
            self._installStages()
        for behavior in self.behaviors:
            if behavior not in old and not self.closing:
                behavior.connectionMade(self)

    def backendFailed(self, reason: Failure) -> None:
        """
        The backend could not be reached.
        """
        self._attempt = None
        if self.closing:
            self._maybeFinish()
            return
        why = reason.getErrorMessage()
        self.reason = "backend unreachable: " + why
        self.proxy.backendFailures += 1
        _log.warn(
            "{proxy} #{cid} cannot reach backend {backend}: {why}",
            proxy=self.proxy.name,
            cid=self.id,
            backend=self.proxy.backend.description,
            why=why,
        )
        self._tellClient(why)
        self._backendLost = True
        self.close()

    def _tellClient(self, why: str) -> None:
        """
        Write the session's error for a backend that could not be used
        (C{connectFailed}), counted as injected.
        """
        data = self.session.connectFailed(why)
        if data:
            self.downstream.injected += len(data)
            _t(self.client).write(data)

    def reply(
        self, request: Message | None, data: bytes, close: bool = False,
        reason: str | None = None,
    ) -> None:
        """
        Send C{data} to the client as the response to C{request}, through
        the downstream faults and in protocol order; with C{close}, close
        the connection once it is written.
        """
        if self._clientLost:
            return
        meta: dict[str, Any] = {"synthetic": True}
        if close:
            meta[CLOSE_AFTER] = reason or "closed after a reply"
        message = Message(DOWNSTREAM, -1, RESPONSE, meta, request)
        self.downstream.injected += len(data)
        self.downstream.route(Frame(data, message))

    # In-band TLS

    def startTLS(self, serverOptions: Any, clientOptions: Any) -> None:
        """
        Switch to TLS in band (SMTP's C{STARTTLS}, PostgreSQL's
        C{SSLRequest}, MySQL's SSL request), once everything before the
        switch is written: the proxy answers the client's handshake with
        C{serverOptions} (an C{IOpenSSLServerConnectionCreator}) and runs
        its own with the backend with C{clientOptions} (a
        L{txvaurien.tls.client.ClientTLS}: chain and name verified).
        Either may be L{None}: that leg stays as it is.  The session frames
        the decrypted streams; the client's bytes wait until the backend is
        verified, which ends with L{tlsUpgradeEnded}.
        """
        from txvaurien.upgrade import BackendGate, layerTLS

        backend = self.backend
        assert backend is not None
        for pipe in (self.upstream, self.downstream):
            # Spliced or written straight to a socket, bytes would skip TLS.
            if pipe.splicer is not None:
                pipe.splicer.stop()
            pipe.spliceable = False
        if serverOptions is not None:
            self.downstream.releaseSink()
            client = layerTLS(self.client, serverOptions, isClient=False)
            self.upstream.setSource(client)
            self.downstream.setSink(client)
        if clientOptions is not None:
            self.upstream.releaseSink()
            gate = BackendGate(backend, clientOptions, self.tlsUpgradeEnded)
            gate.tls = layerTLS(backend, clientOptions, isClient=True, wrapped=gate)
            self.downstream.setSource(gate.tls)
            self.upstream.setSink(gate.tls)
            self.upstream.pause(CONNECTING)
            timeout = self.proxy.connectTimeout
            if timeout and gate.ended is not None:
                gate.timer = self.callLater(timeout, gate.timedOut, timeout)
        self.reroute()

    def tlsUpgradeEnded(self, why: str | None) -> None:
        """
        The backend leg's in-band handshake ended: with C{why} L{None},
        verified (the session's optional C{backendReady} is called, then
        the client's bytes flow again); otherwise the client
        gets the session's C{connectFailed} error naming C{why} (inside
        TLS) and the connection is closed.
        """
        if self.closing:
            return
        if why is None:
            ready = getattr(self.session, "backendReady", None)
            if ready is not None:
                ready()
            self._resumeClient()
            return
        self.reason = "backend TLS upgrade failed: " + why
        _log.warn(
            "{proxy} #{cid} cannot upgrade backend {backend} to TLS: {why}",
            proxy=self.proxy.name,
            cid=self.id,
            backend=self.proxy.backend.description,
            why=why,
        )
        self._tellClient(why)
        # Read the client again, so that its close_notify ends the close.
        self.upstream.resume(CONNECTING)
        self.close()

    # Timers

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """
        Schedule a call that is cancelled when the connection ends.
        """
        timers = self._timers
        if timers is None:
            timers = self._timers = []
        else:
            timers[:] = [t for t in timers if t.active()]
        call = self.clock.callLater(delay, f, *args, **kw)
        timers.append(call)
        return call


    def adoptTable(self) -> None:
        """
        Take the proxy's current behavior table, if this connection has
        not yet (see L{txvaurien.proxy.ProxyServerFactory.setTable}).
        """
        version = self.proxy.tableVersion
        if self.tableVersion != version:
            self.tableVersion = version
            self.tableChanged()


def _noDelay(transport: Any) -> None:
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except Exception:
            pass


def _peer(transport: Any) -> str:
    try:
        address = transport.getPeer()
    except Exception:
        return "?"
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return "{}:{}".format(host, port)
    return str(getattr(address, "name", address))


__all__ = ["Connection"]
