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

from txvaurien import logs
from txvaurien.frames import (
    CLOSE_AFTER,
    DATA,
    DOWNSTREAM,
    GREETING,
    REQUEST,
    RESPONSE,
    UPSTREAM,
    Frame,
    Message,
)
from txvaurien.interfaces import IConnection, IFramer, IProtocolSession
from txvaurien.options import Choice
from txvaurien.protocols._smtptls import prepareBackend
from txvaurien.protocols.base import Framer, ProtocolHandler, Session
from txvaurien.upgrade import BACKEND_OPTIONS as BACKEND_UPGRADE_OPTIONS
from txvaurien.upgrade import OPTIONS as UPGRADE_OPTIONS
from txvaurien.upgrade import InbandTLS

_log = logs.logger("txvaurien.protocols.smtp")

#: The longest command or reply line read; RFC 5321 allows 512 bytes and
#: RFC 4954 12288 for AUTH.  A longer line is not SMTP.
LINE_LIMIT = 64 * 1024

#: The pseudo-verb of the message content sent after C{DATA}.
MESSAGE = "MESSAGE"

#: How long an error that closes the connection waits for its reply (and
#: the replies before it) to be written before closing anyway.
CLOSE_WAIT = 10.0

# Framer states.
_LINE = 0  # at the start of a line (command or reply)
_BODY = 1  # message content after DATA, until <CRLF>.<CRLF>
_CHUNK = 2  # BDAT chunk data; `remaining` bytes to go
_CLOSE = 100  # the current message goes on until the end of the stream
_DATA = 101  # unframed: each chunk read is one DATA message

_TERMINATOR = b"\r\n.\r\n"
_BDAT = re.compile(rb"^BDAT[ \t]+(\d{1,18})(?:[ \t]+LAST)?[ \t]*\r?\n$", re.IGNORECASE)
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


def _verb(line: bytes) -> str:
    """
    The verb of a command line: its first word, upper case.
    """
    word = line.split(None, 1)[0] if line.strip() else b""
    return word[:16].upper().decode("ascii", "replace")


class _Framer(Framer):
    """
    What both SMTP framers share.
    """

    protocolName = "SMTP"
    lineLimit = LINE_LIMIT
    log = _log

    def __init__(self, session: SMTPSession) -> None:
        Framer.__init__(self, session)
        self.state = _LINE

    @property
    def quiet(self) -> bool:
        """
        Whether the proxy may skip this framer: once the connection left
        SMTP, the client's framer once it frames every chunk as it
        comes and holds nothing, the backend's at once (what it still
        frames runs until the end of the stream, and no byte depends on
        it).
        """
        if self.direction == DOWNSTREAM:
            return bool(self.session.raw)
        return bool(self.session.raw) and self.state == _DATA and not self.held

    def finish(self) -> list[Frame]:
        """
        The stream ended: what was held is framed, an open message ends,
        and requests still waiting get an empty response.
        """
        if self.message is not None:
            self.state = _CLOSE
        return Framer.finish(self)


@implementer(IFramer)
class CommandFramer(_Framer):
    """
    Frames the client's commands, the message content after C{DATA} and
    C{BDAT} chunks.

    A command line is held until its line end; message content and
    chunks go on as they arrive.

    @ivar authNext: whether the next line answers a C{334} challenge of
        C{AUTH} rather than being a command.
    """

    direction = UPSTREAM

    def __init__(self, session: SMTPSession) -> None:
        _Framer.__init__(self, session)
        self.remaining = 0
        self.tail = b""
        self.authNext = False

    def stop(self) -> None:
        """
        Frame no more commands: after the message in progress, if any, the
        rest is unframed.
        """
        if self.message is None and self.state in (_LINE, _BODY):
            self.state = _DATA

    def dataRefused(self) -> None:
        """
        C{DATA} was not accepted: unless message content already arrived,
        the next line is a command again.
        """
        if self.state == _BODY and self.message is None:
            self.state = _LINE

    def _command(self, line: bytes) -> Message:
        """
        Open the request for a command line and choose what follows it.
        """
        if self.authNext:
            self.authNext = False
            return self.openMessage(REQUEST, {"command": "AUTH", "continuation": True})
        verb = _verb(line)
        message = self.openMessage(REQUEST, {"command": verb})
        if verb == "DATA":
            # Until the backend refuses it, what follows is the content.
            self.state = _BODY
            self.tail = b"\r\n"
        elif verb == "BDAT":
            match = _BDAT.match(line)
            if match is not None:
                self.remaining = int(match.group(1))
                if self.remaining:
                    self.state = _CHUNK
        return message

    def feed(self, data: bytes) -> list[Frame]:
        """
        Frame the next bytes from the client.
        """
        if self.held:
            data = self.held + data
            self.held = b""
        frames: list[Frame] = []
        n = len(data)
        pos = 0
        mark = 0
        while pos < n:
            state = self.state
            if state == _LINE:
                if self.session.switched or self.session.closing:
                    self.state = _DATA
                    continue
                eol = data.find(b"\n", pos, pos + self.lineLimit)
                if eol < 0:
                    if n - pos >= self.lineLimit:
                        self.logInvalid("line longer than {} bytes".format(self.lineLimit))
                        self.state = _DATA
                        continue
                    self.held = data[pos:]
                    return frames
                end = eol + 1
                self._command(data[pos:end])
                self.emit(frames, data[pos:end], self.state != _CHUNK)
                pos = mark = end
            elif state == _BODY:
                if self.message is None:
                    self.openMessage(REQUEST, {"command": MESSAGE})
                    mark = pos
                tail = self.tail
                probe = tail + data[pos:pos + 4]
                found = probe.find(_TERMINATOR)
                if found >= 0:
                    end = pos + found + 5 - len(tail)
                else:
                    found = data.find(_TERMINATOR, pos)
                    end = found + 5 if found >= 0 else -1
                if end < 0:
                    self.tail = (tail + data[pos:])[-4:]
                    pos = n
                    break
                self.state = _LINE
                self.emit(frames, data[mark:end], True)
                pos = mark = end
            elif state == _CHUNK:
                take = min(self.remaining, n - pos)
                self.remaining -= take
                pos += take
                if not self.remaining:
                    self.state = _LINE
                    self.emit(frames, data[mark:pos], True)
                    mark = pos
            elif state == _DATA:
                frames.append(Frame(data[pos:], self.openMessage(DATA, {}), True, True))
                self.message = None
                pos = mark = n
            else:  # _CLOSE
                pos = n
        if self.message is not None and pos > mark:
            self.emit(frames, data[mark:pos], False)
        return frames


def _replyCode(line: bytes) -> int | None:
    """
    The code of a reply line, or L{None} if it does not start like one.
    """
    code = line[:3]
    if len(code) != 3 or not code.isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
        return None
    return int(code)


@implementer(IFramer)
class ReplyFramer(_Framer):
    """
    Frames the server's greeting and replies.  A reply's metadata is its
    C{code}; the lines of a multi-line reply are one message.  Reply lines
    are held until their line end.
    """

    direction = DOWNSTREAM

    def __init__(self, session: SMTPSession) -> None:
        _Framer.__init__(self, session)
        self.greeted = False

    def _invalid(self, why: str) -> None:
        self.logInvalid(why)
        if self.message is None:
            sent = self.session.sent
            if sent:
                self.openMessage(RESPONSE, {"invalid": why}, sent.popleft())
            elif not self.greeted:
                self.greeted = True
                self.openMessage(GREETING, {"invalid": why})
            else:
                self.openMessage(DATA, {"invalid": why})
        self.state = _CLOSE
        self.session.switch()

    def _start(self, code: int) -> Message:
        if not self.greeted:
            self.greeted = True
            return self.openMessage(GREETING, {"code": code})
        sent = self.session.sent
        request = sent.popleft() if sent else None
        return self.openMessage(RESPONSE, {"code": code}, request)

    def _replied(self, message: Message) -> bool:
        """
        A reply is complete: act on what it accepts or refuses.

        @return: whether the reply goes on until the end of the stream
            (an accepted C{STARTTLS}).
        """
        request = message.request
        if request is None:
            return False
        code = message.meta["code"]
        command = request.meta.get("command")
        upstream = self.session.upstream
        if code == 334:
            upstream.authNext = True
        if command == "DATA":
            if code != 354:
                upstream.dataRefused()
        elif command == "STARTTLS" and code == 220:
            if self.session.handler.tls.enabled:
                # Framing goes on inside TLS once this reply is written.
                self.session.upgradeDue = True
                return False
            self.session.switch()
            return True
        return False

    def feed(self, data: bytes) -> list[Frame]:
        """
        Frame the next bytes from the server.
        """
        if self.held:
            data = self.held + data
            self.held = b""
        frames: list[Frame] = []
        n = len(data)
        pos = 0
        mark = 0
        while pos < n:
            if self.state == _CLOSE:
                pos = n
                break
            eol = data.find(b"\n", pos, pos + self.lineLimit)
            if eol < 0:
                if n - pos >= self.lineLimit:
                    self._invalid("line longer than {} bytes".format(self.lineLimit))
                    continue
                self.held = data[pos:]
                break
            line = data[pos:eol + 1]
            code = _replyCode(line)
            if code is None:
                self._invalid("not a reply line: {!r}".format(line[:40]))
                continue
            message = self.message
            if message is None:
                message = self._start(code)
                mark = pos
            pos = eol + 1
            if line[3:4] != b"-":
                if self._replied(message):
                    self.state = _CLOSE
                    pos = n
                    break
                self.emit(frames, data[mark:pos], True)
                mark = pos
        if self.message is not None and pos > mark:
            self.emit(frames, data[mark:pos], False)
        return frames

    def finish(self) -> list[Frame]:
        if self.message is None and self.held:
            # An incomplete reply line: it answers what it would have.
            held = self.held
            code = _replyCode(held + b"\n")
            self._start(code if code is not None else 0)
            self.held = held
        return _Framer.finish(self)


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


__all__ = ["MESSAGE", "SMTP", "SMTPSession", "CommandFramer", "ReplyFramer"]
