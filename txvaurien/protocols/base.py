"""
Base classes for protocol handlers and their sessions.
"""

from __future__ import annotations

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
