"""
What the C{http} and C{smtp} handlers share: framers that frame one
message at a time, give up on a stream that stops being the protocol
(after one warning in the log) and owe an empty response to each request
never answered; and a session that leaves the protocol for good (an
accepted upgrade, C{CONNECT} or C{STARTTLS}, or a backend that does not
speak the protocol) and is then passthrough.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.logger import Logger

from txvaurien.frames import DATA, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IConnection
from txvaurien.protocols.base import PairingSession

#: The framer states both handlers have (each numbers its others from 0):
#: the current message goes on until the end of the stream, or every chunk
#: read is one L{DATA} message.
CLOSE = 100
UNFRAMED = 101


class MessageFramer:
    """
    A base for the framers of one direction.

    @ivar state: what the next byte is (L{CLOSE}, L{UNFRAMED}, or a state
        of the subclass).
    @ivar message: the message being framed, or L{None} between messages.
    @ivar first: whether the next frame of C{message} is its first.
    @ivar held: bytes read but not yet framed (an incomplete line or
        head); they come before the next bytes fed.
    @ivar count: the index the next message gets.
    @ivar invalid: why the stream stopped being the protocol, or L{None}.
    """

    direction = UPSTREAM
    #: The protocol's name, in log messages.
    protocolName: ClassVar[str] = "?"
    #: The protocol's logger.
    log: ClassVar[Logger]

    state: int

    def __init__(self, session: Any) -> None:
        self.session = session
        self.message: Message | None = None
        self.first = True
        self.held = b""
        self.count = 0
        self.invalid: str | None = None

    def _newMessage(
        self, kind: str, meta: dict[str, Any], request: Message | None = None,
        expectsResponse: bool = True,
    ) -> Message:
        """
        Open the next message of this direction.
        """
        index = self.count
        self.count = index + 1
        message = self.message = Message(
            self.direction, index, kind, meta, request, expectsResponse)
        self.first = True
        return message

    def _emit(self, frames: list[Frame], data: bytes, last: bool) -> None:
        """
        Frame C{data} as the next bytes of the open message, its last ones
        if C{last}.
        """
        message = self.message
        assert message is not None
        frames.append(Frame(data, message, self.first, last))
        self.first = False
        if last:
            self.message = None
            self.first = True

    def _logInvalid(self, why: str) -> None:
        """
        Say, once, that the stream stopped being the protocol.
        """
        if self.invalid is not None:
            return
        self.invalid = why
        connection = self.session.connection
        self.log.warn(
            "{proxy} #{cid} invalid {protocol} from the {side}: {why}; "
            "the rest of the {direction} stream passes unframed",
            proxy=connection.proxy.name,
            cid=connection.id,
            protocol=self.protocolName,
            side="client" if self.direction == UPSTREAM else "backend",
            why=why,
            direction=self.direction,
            event="invalid",
        )

    def _answerAll(self, frames: list[Frame]) -> None:
        """
        The stream ended: requests the backend never answered get an empty
        response, so that the end of the stream is not held behind them.
        """
        sent = self.session.sent
        while sent:
            message = self._newMessage(RESPONSE, {"unanswered": True}, sent.popleft())
            frames.append(Frame(b"", message, True, True))
            self.message = None

    @property
    def quiet(self) -> bool:
        """
        Whether this framer would frame every byte fed as it comes, holding
        nothing: then it need not see them at all.
        """
        return self.state == UNFRAMED and not self.held

    # IFramer

    def finish(self) -> list[Frame]:
        """
        The stream ended: what was held is framed, and an open message
        ends.
        """
        frames: list[Frame] = []
        held, self.held = self.held, b""
        if self.message is not None:
            self.state = CLOSE
            self._emit(frames, held, True)
        elif held:
            frames.append(Frame(held, self._newMessage(DATA, {}), True, True))
            self.message = None
        return frames


class SwitchingSession(PairingSession):
    """
    A session that may leave its protocol: from then on what follows the
    current messages is passed through unframed, and once the client's
    framer holds nothing the session is passthrough.

    @ivar switched: whether the connection left the protocol.
    """

    #: The protocol's name, in log messages.
    protocolName: ClassVar[str] = "?"
    #: The protocol's logger.
    log: ClassVar[Logger]

    #: The client's framer: a L{MessageFramer} with a C{stop} method.
    upstream: Any

    def __init__(self, handler: Any, connection: IConnection) -> None:
        PairingSession.__init__(self, handler, connection)
        self.switched = False

    @property
    def passthrough(self) -> bool:
        """
        C{True} once the connection left the protocol and the client's
        framer holds nothing.
        """
        return self.switched and self.upstream.quiet

    def switch(self) -> None:
        """
        The connection leaves the protocol: the client's framer frames no
        request after the current one (its C{stop}).
        """
        if self.switched:
            return
        self.switched = True
        self.upstream.stop()
        self.log.debug(
            "{proxy} #{cid} leaves {protocol}; the rest passes through",
            proxy=self.connection.proxy.name,
            cid=self.connection.id,
            protocol=self.protocolName,
        )


__all__ = ["CLOSE", "UNFRAMED", "MessageFramer", "SwitchingSession"]
