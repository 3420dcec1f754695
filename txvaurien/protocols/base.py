"""
Base classes for protocol handlers and their sessions.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from twisted.plugin import IPlugin
from zope.interface import implementer

from txvaurien.frames import DATA, Frame, Message
from txvaurien.interfaces import (
    IConnection,
    IFramer,
    IProtocolHandler,
    IProtocolSession,
)
from txvaurien.plugin import Configurable


@implementer(IPlugin, IProtocolHandler)
class ProtocolHandler(Configurable):
    """
    A base for protocol handlers: subclasses set C{name}, C{options},
    C{framesRequests} and C{sessionClass}.
    """

    framesRequests: ClassVar[bool] = False
    sessionClass: ClassVar[Any] = None

    def buildSession(self, connection: IConnection) -> IProtocolSession:
        return self.sessionClass(self, connection)


@implementer(IFramer)
class ChunkFramer:
    """
    Each chunk of bytes is one L{DATA} message.
    """

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.count = 0

    def feed(self, data: bytes) -> list[Frame]:
        message = Message(self.direction, self.count, DATA)
        self.count += 1
        return [Frame(data, message)]

    def finish(self) -> list[Frame]:
        return []


class PairingSession:
    """
    A base for protocol sessions (L{txvaurien.interfaces.IProtocolSession})
    whose downstream framer pairs each response with the oldest request
    the backend was sent and has not answered.

    Requests a fault swallowed never reach the backend, and requests that
    get no response (C{expectsResponse} false) are never answered: neither
    waits in C{sent}.

    @ivar handler: the protocol handler, whose C{settings} the session
        reads.
    @ivar connection: the L{IConnection}.
    @ivar sent: the requests written to the backend that still wait for
        their response, oldest first.
    """

    serverSpeaksFirst = False

    def __init__(self, handler: Any, connection: IConnection) -> None:
        self.handler = handler
        self.connection = connection
        self.sent: deque[Message] = deque()

    def requestSent(self, request: Message) -> None:
        if request.expectsResponse:
            self.sent.append(request)
