# -*- test-case-name: txvaurien.test.test_datagram_proxy -*-
"""
The listening side of a UDP proxy: sessions per client address, their
bound and expiry, and the counters metrics read.
"""

from __future__ import annotations

import errno
import itertools
from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import LogLevel

from txvaurien import logs
from txvaurien.datagram.session import DatagramSession
from txvaurien.datagram.sockets import ConnectedSocket
from txvaurien.frames import DOWNSTREAM, UPSTREAM
from txvaurien.randomness import RandomSource

_log = logs.logger("txvaurien.datagram")


class DatagramProxy(DatagramProtocol):
    """
    Relays datagrams between clients and a UDP backend, through the
    behaviors of its table.

    Every client address gets a L{DatagramSession} with its own connected
    backend socket.  A session ends after C{sessionTimeout} seconds without
    a datagram either way; while C{maxSessions} are open, datagrams from
    new client addresses are dropped and counted in L{refused}.  Datagrams
    longer than C{maxDatagram} bytes are dropped and counted in
    L{oversize}.

    @ivar name: the proxy's name, in logs and metrics.
    @ivar backend: the L{txvaurien.datagram.addresses.UDPBackend}.
    @ivar handler: the configured protocol handler.
    @ivar table: the L{txvaurien.table.BehaviorTable}.
    @ivar sessions: client address to live L{DatagramSession}.
    @ivar connections: the live sessions (what behaviors call
        connections).
    @ivar received: datagrams read, by direction (upstream: from clients).
    @ivar sent: datagrams written, by direction.
    @ivar droppedCount: datagrams dropped by faults, by direction.
    @ivar oversize: datagrams over C{maxDatagram}, by direction.
    @ivar refused: datagrams dropped because no session could be opened.
    @ivar unreachable: ICMP port unreachable errors from the backend.
    @ivar accepted: sessions opened.
    @ivar expired: sessions ended.
    @ivar decisions: behavior name to times it was chosen and acted.
    @ivar bytesUp: bytes read from clients.
    @ivar bytesDown: bytes read from the backend.
    @ivar latencyObservers: what the control API's metrics register (no
        latency is observed on datagrams yet).
    """

    noisy = False

    #: Makes a session's backend socket: called with the reactor, the
    #: backend's host and port, the interface, the largest datagram read,
    #: and the callables for a datagram read and for ICMP unreachable.
    #: Tests replace it.
    socketFactory: Any = ConnectedSocket

    def __init__(
        self,
        backend: Any,
        handler: Any,
        table: Any,
        reactor: Any,
        random: RandomSource | None = None,
        name: str = "vaurien",
        sessionTimeout: float = 60.0,
        maxSessions: int = 1024,
        maxDatagram: int = 65507,
    ) -> None:
        self.backend = backend
        self.handler = handler
        self.table = table
        self.reactor = reactor
        self.random = random or RandomSource()
        self.name = name
        self.sessionTimeout = sessionTimeout
        self.maxSessions = maxSessions
        self.maxDatagram = maxDatagram
        self.sessions: dict[Any, DatagramSession] = {}
        self.connections: dict[DatagramSession, None] = {}
        self.received = {UPSTREAM: 0, DOWNSTREAM: 0}
        self.sent = {UPSTREAM: 0, DOWNSTREAM: 0}
        self.droppedCount = {UPSTREAM: 0, DOWNSTREAM: 0}
        self.oversize = {UPSTREAM: 0, DOWNSTREAM: 0}
        self.refused = 0
        self.unreachable = 0
        self.sendErrors = 0
        self.bytesUp = 0
        self.bytesDown = 0
        self.latencyObservers: list[Any] = []
        self.accepted = 0
        self.expired = 0
        self.decisions: dict[str, int] = {}
        self._ids = itertools.count()
        self._refusing = False
        self._seconds = reactor.seconds
        self._sendto: Any = None

    def startProtocol(self) -> None:
        """
        Bound: replies to clients are written on the port's socket
        directly.  Their addresses came from C{recvfrom}, so the checks
        C{IUDPTransport.write} makes of every address (three parses of it)
        are not needed.
        """
        sock = getattr(self.transport, "socket", None)
        self._sendto = None if sock is None else sock.sendto

    def stopProtocol(self) -> None:
        self._sendto = None

    # Sessions

    def _open(self, address: Any) -> DatagramSession | None:
        if len(self.sessions) >= self.maxSessions:
            self.refused += 1
            if not self._refusing:
                self._refusing = True
                _log.warn(
                    "{proxy}: {count} sessions open, the most allowed; datagrams "
                    "from new clients ({peer} first) are dropped until one ends",
                    proxy=self.name, count=len(self.sessions),
                    peer="{}:{}".format(*address[:2]))
            return None
        self._refusing = False
        session = DatagramSession(self, address, next(self._ids))
        self.accepted += 1
        self.sessions[address] = session
        self.connections[session] = None
        if logs.isEnabled(LogLevel.debug):
            _log.debug("{proxy} session #{sid} {peer} opened", proxy=self.name,
                       sid=session.id, peer="{}:{}".format(*address[:2]))
        return session

    def sessionEnded(self, session: DatagramSession) -> None:
        """
        C{session} ended: forget it.
        """
        if self.sessions.get(session.address) is session:
            del self.sessions[session.address]
        self.connections.pop(session, None)
        self.expired += 1
        if logs.isEnabled(LogLevel.debug):
            _log.debug("{proxy} session #{sid} {peer} ended ({why})", proxy=self.name,
                       sid=session.id, peer="{}:{}".format(*session.address[:2]),
                       why=session.reason or "closed")

    def setTable(self, table: Any) -> None:
        """
        Use a new behavior table; live sessions choose again.
        """
        self.table = table
        for session in list(self.connections):
            session.tableChanged()

    def closeAll(self, reason: str = "proxy stopping") -> None:
        """
        End every session.
        """
        for session in list(self.connections):
            session.end(reason)

    def drain(self, grace: float) -> Deferred:
        """
        End every session (datagrams have no exchange to finish).
        """
        self.closeAll()
        return succeed(None)

    # Datagrams

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        """
        A datagram from a client.
        """
        self.received[UPSTREAM] += 1
        self.bytesUp += len(data)
        session = self.sessions.get(addr)
        if session is None:
            session = self._open(addr)
            if session is None:
                return
        if len(data) > self.maxDatagram:
            self._tooLong(session, UPSTREAM, len(data))
            return
        session.last = self._seconds()
        if session.fast:
            self.sendBackend(session, data)
        else:
            session.fromClient(data)

    def backendDatagram(self, session: DatagramSession, data: bytes) -> None:
        """
        A datagram from the backend, for C{session}'s client.
        """
        self.received[DOWNSTREAM] += 1
        self.bytesDown += len(data)
        if len(data) > self.maxDatagram:
            self._tooLong(session, DOWNSTREAM, len(data))
            return
        session.last = self._seconds()
        if session.fast:
            self.sendClient(session, data)
        else:
            session.fromBackend(data)

    def sendBackend(self, session: DatagramSession, data: bytes) -> None:
        """
        Write C{data} on C{session}'s backend socket.
        """
        try:
            if not session.port.write(data):
                self.sendErrors += 1
                return
        except error.MessageLengthError:
            self._tooLong(session, UPSTREAM, len(data))
            return
        except OSError as e:
            self._sendFailed(session, "backend", e)
            return
        self.sent[UPSTREAM] += 1

    def sendClient(self, session: DatagramSession, data: bytes) -> None:
        """
        Write C{data} to C{session}'s client.
        """
        sendto = self._sendto
        try:
            if sendto is None:
                self.transport.write(data, session.address)  # type: ignore[union-attr]
            else:
                sendto(data, session.address)
        except error.MessageLengthError:
            self._tooLong(session, DOWNSTREAM, len(data))
            return
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                self._tooLong(session, DOWNSTREAM, len(data))
            else:
                self._sendFailed(session, "client", e)
            return
        self.sent[DOWNSTREAM] += 1

    def countDropped(self, direction: str) -> None:
        """
        A fault dropped a datagram going C{direction}.
        """
        self.droppedCount[direction] += 1

    def _tooLong(self, session: DatagramSession, direction: str, size: int) -> None:
        self.oversize[direction] += 1
        session.warnOnce(
            "oversize " + direction,
            "{proxy} session #{sid} {peer}: dropped a {direction} datagram of "
            "{size} bytes or more, over the bound of {bound} (--udp-max-datagram)",
            direction=direction, size=size, bound=self.maxDatagram)

    def _sendFailed(self, session: DatagramSession, to: str, e: OSError) -> None:
        self.sendErrors += 1
        session.warnOnce(
            "send " + to,
            "{proxy} session #{sid} {peer}: cannot send to the {to}: {error}",
            to=to, error=e.strerror or str(e))

    @property
    def backendFailures(self) -> int:
        """
        What the control API calls backend connect failures: ICMP
        unreachable errors.
        """
        return self.unreachable

    def counters(self) -> dict[str, Any]:
        """
        Every counter, for metrics and the control API.
        """
        return {
            "received": dict(self.received),
            "sent": dict(self.sent),
            "dropped": dict(self.droppedCount),
            "oversize": dict(self.oversize),
            "malformed": dict(getattr(self.handler, "malformed", {}) or {}),
            "sessions_active": len(self.sessions),
            "sessions_opened": self.accepted,
            "sessions_refused": self.refused,
            "unreachable": self.unreachable,
            "send_errors": self.sendErrors,
        }


__all__ = ["DatagramProxy"]
