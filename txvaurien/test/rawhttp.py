"""
A raw HTTP client for tests of the control server's limits: it writes
bytes exactly as given (a head, then optionally a body streamed in chunks
or trickled one byte at a time) and records the answer and when the
server closed the connection.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint


class RawClient(protocol.Protocol):
    """
    Writes C{head}, then streams C{stream} bytes of body (in 64 KiB
    chunks, as fast as the server reads them), or trickles C{trickle}
    one byte every C{interval} seconds.

    @ivar answer: every byte the server sent.
    @ivar sent: how many bytes were written after C{head}.
    @ivar closed: fires when the connection is gone (by either side).
    @ivar closedAt: L{time.monotonic} then.
    @ivar startedAt: L{time.monotonic} when the connection was made.
    """

    def __init__(
        self,
        head: bytes,
        stream: int = 0,
        trickle: bytes = b"",
        interval: float = 0.1,
        clock: Any = reactor,
    ) -> None:
        self.head = head
        self.stream = stream
        self.trickle = trickle
        self.interval = interval
        self.clock = clock
        self.answer = b""
        self.sent = 0
        self.closed: defer.Deferred = defer.Deferred()
        self.closedAt: float | None = None
        self.startedAt = 0.0
        self._paused = False
        self._next: Any = None
        self._done = False

    def connectionMade(self) -> None:
        self.startedAt = time.monotonic()
        self.transport.write(self.head)
        if self.stream:
            self.transport.registerProducer(self, True)
            self._pump()
        elif self.trickle:
            self._drip()

    # Streaming

    def _pump(self) -> None:
        while not self._paused and not self._done and self.sent < self.stream:
            chunk = min(65536, self.stream - self.sent)
            self.sent += chunk
            self.transport.write(b" " * chunk)
        if self.sent >= self.stream and not self._done:
            self._done = True
            self.transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self._done = True

    # Trickling

    def _drip(self) -> None:
        self._next = None
        if self.sent < len(self.trickle) and not self._done:
            self.transport.write(self.trickle[self.sent:self.sent + 1])
            self.sent += 1
            self._next = self.clock.callLater(self.interval, self._drip)

    def dataReceived(self, data: bytes) -> None:
        self.answer += data

    def connectionLost(self, reason: Any) -> None:
        self._done = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        self.closedAt = time.monotonic()
        self.closed.callback(None)


@defer.inlineCallbacks
def connectRaw(port: int, client: RawClient) -> Any:
    """
    Connect C{client} to 127.0.0.1:C{port}.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))
    return client
