"""
The C{tcp} protocol handler: bytes without meaning.
"""

from __future__ import annotations

from zope.interface import implementer

from txvaurien.frames import DOWNSTREAM, UPSTREAM, Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.options import Number
from txvaurien.protocols.base import ChunkFramer, ProtocolHandler


@implementer(IProtocolSession)
class TCPSession:
    """
    A frame is whatever arrived in one read.  Errors are random bytes (the
    client cannot parse anything else), and a failed backend connection is
    a plain close.
    """

    __slots__ = ("handler", "connection", "_upstream", "_downstream")

    serverSpeaksFirst = False
    passthrough = True

    def __init__(self, handler: "TCP", connection: IConnection) -> None:
        self.handler = handler
        self.connection = connection
        self._upstream: ChunkFramer | None = None
        self._downstream: ChunkFramer | None = None

    @property
    def upstream(self) -> ChunkFramer:
        """
        The client-to-backend framer, made when first needed: a connection
        on the fast path never needs one.
        """
        if self._upstream is None:
            self._upstream = ChunkFramer(UPSTREAM)
        return self._upstream

    @property
    def downstream(self) -> ChunkFramer:
        """
        The backend-to-client framer, made when first needed.
        """
        if self._downstream is None:
            self._downstream = ChunkFramer(DOWNSTREAM)
        return self._downstream

    def requestSent(self, request: Message) -> None:
        pass

    def errorReply(
        self, request: Message | None, reason: str, code: int | None = None
    ) -> bytes:
        size = self.handler.settings["error_size"]
        return self.connection.random.randbytes(size)

    def connectFailed(self, reason: str) -> bytes:
        return b""


class TCP(ProtocolHandler):
    """
    Plain TCP: no framing, so behaviors act on chunks of bytes.
    """

    name = "tcp"
    options = {
        "error_size": ("Bytes of random data sent as an error", Number(int, 1), 64),
    }
    framesRequests = False
    sessionClass = TCPSession
