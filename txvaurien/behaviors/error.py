# -*- test-case-name: txvaurien.test.test_behaviors_vaurien -*-
"""
The C{error} behavior: answer requests with the protocol's own error, or
spoil real responses with random bytes.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors.base import Behavior, Fault, logDecision
from txvaurien.frames import BOTH, DATA, REQUEST, RESPONSE, UPSTREAM, Frame, Message
from txvaurien.interfaces import IStage
from txvaurien.options import ListOf, Number

#: Options shared by C{error} and C{transient}.
ERROR_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "codes": (
        "HTTP status codes an error reply is drawn from (protocols without "
        "numeric statuses use their own error)",
        ListOf(Number(int, 100, 599), nonEmpty=True),
        [500, 501, 502, 503],
    ),
    "inject": (
        "Forward the request and insert random bytes into the real response "
        "instead of answering with an error",
        bool,
        False,
    ),
    "inject_size": (
        "Bytes of random data inserted into a response with inject",
        Number(int, 1),
        64,
    ),
}


class ErrorFault(Fault):
    """
    The fault of C{error} and C{transient} on one direction.

    Upstream, without C{inject}: each request (under C{tcp}, each chunk of
    bytes) that the behavior's L{strikes<CountedErrors.strikes>} says
    fails is dropped, and once its last frame has arrived the client is
    sent the session's error reply in its place.

    Downstream, with C{inject}: each response (under C{tcp}, each chunk)
    that fails gets C{inject_size} random bytes inserted at a random
    position of its first non-empty frame.  Error replies made up by the
    proxy pass untouched.

    Requests that expect no response (memcache C{noreply}) always pass:
    answering them would break the protocol.
    """

    def __init__(self, stage: IStage) -> None:
        Fault.__init__(self, stage)
        self.behavior = stage.behavior
        self.message: Message | None = None
        self.failing = False
        self.injected = False

    def _targets(self, message: Message) -> bool:
        """
        Whether C{message} is what this fault acts on, given the current
        C{inject} setting.
        """
        inject = self.settings["inject"]
        if self.stage.direction == UPSTREAM:
            if inject:
                return False
            if message.kind == REQUEST:
                return message.expectsResponse
            return message.kind == DATA
        if not inject:
            return False
        if message.kind == RESPONSE:
            return not message.meta.get("synthetic")
        return message.kind == DATA

    def frameReceived(self, frame: Frame) -> None:
        message = frame.message
        if frame.first:
            self.message = message
            self.injected = False
            self.failing = self._targets(message) and self.behavior.strikes(self.stage)
        elif message is not self.message:
            self.stage.forward(frame)
            return
        if not self.failing:
            self.stage.forward(frame)
        elif self.stage.direction == UPSTREAM:
            self._replace(frame)
        else:
            self._inject(frame)

    def _replace(self, frame: Frame) -> None:
        stage = self.stage
        stage.drop(frame)
        if not frame.last:
            return
        self.failing = False
        connection = stage.connection
        message = frame.message
        request = message if message.kind == REQUEST else None
        code = connection.random.choice(self.settings["codes"])
        logDecision(stage, "error reply", code=code)
        self.journal("answered", message, code=code)
        reason = "{} injected by txvaurien".format(self.behavior.name)
        connection.reply(request, connection.session.errorReply(request, reason, code))

    def _inject(self, frame: Frame) -> None:
        if self.injected or not (frame.data or frame.last):
            self.stage.forward(frame)
            return
        self.injected = True
        rng = self.stage.connection.random
        data = frame.data
        position = rng.randint(0, len(data))
        size = self.settings["inject_size"]
        logDecision(self.stage, "inject random bytes", position=position, size=size)
        self.journal("injected", frame.message, bytes=size, position=position)
        spoiled = data[:position] + rng.randbytes(size) + data[position:]
        self.stage.forward(Frame(spoiled, frame.message, frame.first, frame.last))


class CountedErrors(Behavior):
    """
    What C{error} and C{transient} share: the L{ErrorFault} on each
    direction, and a count, kept per proxy across connections, of the
    requests (with C{inject}, the responses) the behavior was chosen for;
    subclasses say which of them fail (L{fails}).

    @ivar seen: requests (or responses) counted so far.
    """

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        Behavior.__init__(self, settings)
        self.seen = 0

    def reset(self) -> None:
        """
        Restart the count: the next C{warmup} requests pass again
        (C{error}), the next C{agitate} fail again (C{transient}).
        """
        self.seen = 0

    def strikes(self, stage: IStage) -> bool:
        """
        Count one request (or, with C{inject}, one response) and say
        whether it fails.

        @param stage: the stage of the fault asking, for the log.
        """
        index, self.seen = self.seen, self.seen + 1
        return self.fails(stage, index)

    def fails(self, stage: IStage, index: int) -> bool:
        """
        Whether the request (or response) counted C{index}, from 0, fails.

        @param stage: the stage of the fault asking, for the log.
        """
        raise NotImplementedError()

    def buildFault(self, stage: IStage) -> ErrorFault:
        return ErrorFault(stage)


class Error(CountedErrors):
    """
    Answer requests with the protocol's own error instead of forwarding
    them to the backend.

    The request never reaches the backend; the client gets, in its
    place, an error it can parse: for HTTP a well-formed response whose
    status is drawn from C{codes}, for Redis an C{-ERR} reply, for
    memcache C{SERVER_ERROR}, and so on.  Under C{tcp}, which has no
    errors, each chunk the client sends is answered with the random bytes
    the C{tcp} protocol's C{error_size} asks for, and the connection stays
    open.

    With C{inject}, requests are forwarded and the real response is
    spoiled instead: C{inject_size} random bytes are inserted at a random
    position of it (under C{tcp}, of each chunk from the backend).

    C{warmup} lets the first requests through.  It counts the requests
    (with C{inject}, the responses) this behavior was chosen for, across
    all connections of the proxy; the count restarts when the behavior
    table is rebuilt or when the control API resets it.  Under request
    scope each request is one decision of the table; under connection
    scope every request of a connection chosen for C{error} fails (once
    warmed up).

    The default C{direction} is C{both}: the error reply replaces requests
    upstream, C{inject} acts on responses downstream.

    Example::

        twistd -n vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:8080 \\
            --protocol http --behavior 10:error \\
            --behavior-error-codes 502,503 --behavior-error-warmup 100
    """

    name = "error"
    defaultDirection = BOTH
    options = {
        **ERROR_OPTIONS,
        "warmup": (
            "Requests let through, counted per proxy, before errors start",
            Number(int, 0),
            0,
        ),
    }

    def fails(self, stage: IStage, index: int) -> bool:
        """
        Let the first C{warmup} pass; fail the rest.
        """
        warmup = self.settings["warmup"]
        if index < warmup:
            logDecision(stage, "warm-up pass", count=index + 1, warmup=warmup)
            return False
        return True
