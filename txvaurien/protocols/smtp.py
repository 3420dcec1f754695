# -*- test-case-name: txvaurien.test.test_protocol_smtp -*-
"""
The C{smtp} protocol handler (RFC 5321): commands and replies.

The server speaks first: its greeting is a L{GREETING} message.  Each
command line the client sends is a request whose metadata C{command} is
its verb (C{MAIL}, C{RCPT}, ...); each reply (one line, or several joined
with C{-} after the code) is the response to the oldest command the
backend was sent and has not answered, so pipelined commands (RFC 2920)
are paired in order.

C{DATA} is a request answered by the C{354} reply; the message content
that follows, up to and including the line holding a single dot, is the
next request, with the pseudo-verb C{MESSAGE}, answered by the final
reply.  A C{BDAT} command (RFC 3030) is one request with its chunk of
data.

After C{STARTTLS} is accepted (C{220}), the connection is either
upgraded (with C{tls_upgrade} and a certificate: the proxy terminates the
client's TLS and originates its own to the backend, and framing goes on
inside TLS; see L{txvaurien.upgrade}) or passed through (the encrypted
bytes are copied unframed).  With C{tls_backend=always}, the proxy
switches the backend leg to TLS itself for clients in clear
(L{txvaurien.protocols._smtptls}).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from zope.interface import implementer

from txvaurien.frames import CLOSE_AFTER, Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.options import Choice
from txvaurien.protocols._smtpframers import (
    LINE_LIMIT,
    MESSAGE,
    CommandFramer,
    ReplyFramer,
    _log,
)
from txvaurien.protocols._smtptls import prepareBackend
from txvaurien.protocols.base import ProtocolHandler, Session
from txvaurien.upgrade import BACKEND_OPTIONS as BACKEND_UPGRADE_OPTIONS
from txvaurien.upgrade import OPTIONS as UPGRADE_OPTIONS
from txvaurien.upgrade import InbandTLS

#: How long an error that closes the connection waits for its reply (and
#: the replies before it) to be written before closing anyway.
CLOSE_WAIT = 10.0

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


class ReplyCode(Choice):
    """
    An SMTP reply code among a fixed set, given as a number or as text.
    """

    def __init__(self, *codes: int) -> None:
        Choice.__init__(self, *(str(code) for code in codes))

    def parse(self, text: str) -> int:  # type: ignore[override]
        return int(Choice.parse(self, text))

    def check(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            return self.parse(value)
        raise ValueError("expected one of {}, got {!r}".format(
            ", ".join(self.choices), value))




@implementer(IProtocolSession)
class SMTPSession(Session):
    """
    One connection's SMTP: a L{CommandFramer} upstream, a L{ReplyFramer}
    downstream, and the commands the backend was sent and has not answered
    yet (C{sent}), oldest first.

    @ivar switched: whether the connection left SMTP (an accepted
        C{STARTTLS}, or a backend that does not speak SMTP).
    @ivar closing: whether an error reply asked to close the connection.
    """

    serverSpeaksFirst = True
    protocolName = "SMTP"
    log = _log
    handler: "SMTP"

    def __init__(self, handler: "SMTP", connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.closing = False
        self.upgradeDue = False
        self.preparing: Any = None
        self.upstream = CommandFramer(self)
        self.downstream = ReplyFramer(self)

    def errorReply(
        self, request: Message | None, reason: str, code: int | None = None
    ) -> bytes:
        """
        A reply with the handler's C{error_code} (C{code}, an HTTP status,
        does not apply to SMTP).

        With C{421} the connection is closed once the reply (and the
        replies due before it) are written, as an SMTP server closes after
        a C{421}.  An error in place of message content, or of an answer to
        an C{AUTH} challenge, closes it too: the backend is still waiting
        for them and would read the client's next command as more of the
        same.  An error in place of C{DATA} means no content follows.
        """
        status = self.handler.settings["error_code"]
        text = _UNPRINTABLE.sub(" ", reason).strip() or "error"
        meta = request.meta if request is not None else {}
        command = meta.get("command")
        if command == "DATA":
            self.upstream.dataRefused()
        if status == 421:
            self._closeAfterReply(request, "SMTP error reply 421")
        elif command == MESSAGE or meta.get("continuation"):
            self._closeAfterReply(
                request, "SMTP error reply in place of {}".format(
                    "message content" if command == MESSAGE else "an AUTH answer"))
        return "{} txvaurien: {}\r\n".format(status, text).encode("ascii")

    @property
    def passthrough(self) -> bool:
        """
        Whether the connection is passed through (after a C{STARTTLS} that
        is not upgraded).

        The proxy asks after every read and whenever a Pipe's path may
        change, in particular right after the backend's C{220} to
        C{STARTTLS} was written to the client (at once, or later, when
        faults held it: the last reply leaving the sequencer makes it
        idle, and the proxy asks again).  That is when an upgrade starts
        (L{txvaurien.upgrade.InbandTLS.start}): the client sends its hello
        only after reading the C{220}, so no byte of it can have been read
        as SMTP.
        """
        if self.upgradeDue:
            connection: Any = self.connection
            sequencer = connection.downstream.sequencer
            if sequencer is None or sequencer.idle:
                self.upgradeDue = False
                self.handler.tls.start(connection)
        return self.raw and self.upstream.quiet and self.downstream.quiet

    def prepareBackend(self) -> bool:
        """
        With C{tls_backend=always}, switch the backend leg to TLS before
        the client's commands flow (L{txvaurien.protocols._smtptls}).

        @return: whether the client's bytes wait for it.
        """
        return prepareBackend(self)

    def backendReady(self) -> None:
        """
        The backend leg the proxy switched to TLS itself is verified: the
        client gets the greeting held for it.
        """
        preparing = self.preparing
        if preparing is not None:
            self.preparing = None
            preparing.ready()

    def connectFailed(self, reason: str) -> bytes:
        """
        A C{421} greeting (or, after an in-band upgrade the backend failed,
        reply): the service is not available.
        """
        text = _UNPRINTABLE.sub(" ", reason).strip()
        return "421 txvaurien: backend unreachable: {}\r\n".format(text).encode("ascii")

    def _closeAfterReply(self, request: Message | None, why: str) -> None:
        """
        Close the connection once the reply to C{request} is written (the
        proxy does, see L{CLOSE_AFTER}), or after L{CLOSE_WAIT} seconds if
        replies owed before it never come; frame no more commands
        meanwhile.

        @param why: the reason logged when the connection ends.
        """
        if self.closing:
            return
        self.closing = True
        self.upstream.stop()
        connection = self.connection
        if request is not None:
            request.meta[CLOSE_AFTER] = why
            connection.callLater(CLOSE_WAIT, connection.close, why)
        else:
            connection.callLater(0, connection.close, why)


class SMTP(ProtocolHandler):
    """
    SMTP: the greeting, each command and each reply is a message.

    Commands are paired with replies in order, pipelined or not; the
    message content after C{DATA} is a request of its own.  The C{error}
    behavior answers a command with a reply of code C{error_code}.
    C{STARTTLS} upgrades the connection (the proxy speaks TLS to both
    sides and goes on framing) when a certificate is given
    (C{tls_certificate} or C{tls_ca_dir}), and passes it through
    otherwise (or with C{tls_upgrade=passthrough}).

    Example::

        twistd -n vaurien --proxy 127.0.0.1:2525 --backend 127.0.0.1:25 \\
            --protocol smtp --behavior 10:error --protocol-smtp-error-code 421

    @ivar tls: what the settings say about in-band upgrades.
    """

    name = "smtp"
    options: ClassVar[dict[str, tuple[str, Any, Any]]] = {
        "error_code": (
            "Reply code of error replies: 451 (local error, try again), 554 "
            "(transaction failed) or 421 (service not available; the "
            "connection is then closed)",
            ReplyCode(421, 451, 554),
            451,
        ),
        **UPGRADE_OPTIONS,
        **BACKEND_UPGRADE_OPTIONS,
    }
    framesRequests = True
    sessionClass = SMTPSession

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        ProtocolHandler.__init__(self, settings)
        self.tls = InbandTLS(self.settings, "protocol-smtp-")


__all__ = ["LINE_LIMIT", "MESSAGE", "SMTP", "SMTPSession", "CommandFramer", "ReplyFramer"]
