# -*- test-case-name: txvaurien.test.test_datagram_proxy -*-
"""
A session's connected backend socket.

Twisted's UDP port logs a line each time one is bound and closed; a proxy
opens one per client address, so this lighter reader is used instead.  It
is connected, so the kernel delivers only the backend's datagrams to it,
and reports the backend's ICMP port unreachable as C{ECONNREFUSED}.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Callable

from twisted.internet import error
from twisted.internet.abstract import isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHalfCloseableDescriptor, IReadDescriptor
from zope.interface import implementer

#: The errors that say the peer cannot be reached (ICMP unreachable).
_UNREACHABLE = frozenset([errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH])

#: Datagrams read in one C{doRead} at most, so that one busy socket does
#: not starve the others.
READS_PER_TURN = 64


@implementer(IReadDescriptor, IHalfCloseableDescriptor)
class ConnectedSocket:
    """
    A UDP socket connected to one address, read on the reactor.

    A pending socket error with nothing to read (the ICMP error of a
    connected UDP socket) makes a poll-based reactor report a disconnection
    instead of a read; as an L{IHalfCloseableDescriptor} the socket is told
    through L{readConnectionLost}, reads the error, and is read again.

    @ivar received: called with each datagram read.
    @ivar refused: called when the peer answered with ICMP unreachable.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        interface: str,
        maxPacketSize: int,
        received: Callable[[bytes], None],
        refused: Callable[[], None],
    ) -> None:
        family = socket.AF_INET6 if isIPv6Address(host) else socket.AF_INET
        self.reactor = reactor
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        try:
            self.socket.bind((interface, 0))
            self.socket.connect((host, port))
        except OSError:
            self.socket.close()
            raise
        self.maxPacketSize = maxPacketSize
        self.received = received
        self.refused = refused
        self._fileno = self.socket.fileno()
        self.closed = False
        reactor.addReader(self)

    def fileno(self) -> int:
        return self._fileno

    def logPrefix(self) -> str:
        return "ConnectedSocket"

    def getHost(self) -> Any:
        host, port = self.socket.getsockname()[:2]
        if self.socket.family == socket.AF_INET6:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def doRead(self) -> None:
        recv = self.socket.recv
        size = self.maxPacketSize
        received = self.received
        for _ in range(READS_PER_TURN):
            try:
                data = recv(size)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in _UNREACHABLE:
                    self.refused()
                    continue
                return
            received(data)
            if self.closed:
                return

    def write(self, data: bytes) -> bool:
        """
        Send C{data}.

        @return: whether the kernel took it (C{False} when its buffer is
            full or the peer refused an earlier datagram).
        @raise error.MessageLengthError: if C{data} is too long.
        """
        try:
            self.socket.send(data)
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno in _UNREACHABLE:
                self.refused()
                return False
            if e.errno == errno.EMSGSIZE:
                raise error.MessageLengthError("message too long")
            raise
        return True

    def readConnectionLost(self, reason: Any) -> None:
        """
        The reactor saw an error and stopped reading: take the error (ICMP
        unreachable) and read again.
        """
        if self.closed:
            return
        self.doRead()
        if not self.closed:
            self.reactor.addReader(self)

    def writeConnectionLost(self, reason: Any) -> None:
        """
        Never written through the reactor.
        """

    def connectionLost(self, reason: Any) -> None:
        self.close()

    def close(self) -> None:
        """
        Stop reading and close the socket.
        """
        if self.closed:
            return
        self.closed = True
        self.reactor.removeReader(self)
        self.socket.close()


__all__ = ["ConnectedSocket", "READS_PER_TURN"]
