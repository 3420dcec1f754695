# -*- test-case-name: txvaurien.test.test_protocol_smtp -*-
"""
The SMTP framers (L{txvaurien.protocols.smtp}): L{CommandFramer} frames
what the client sends (command lines, message content after C{DATA},
C{BDAT} chunks), L{ReplyFramer} what the server sends (one reply, single
or multi-line, per message).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from zope.interface import implementer

from txvaurien import logs
from txvaurien.frames import (
    DATA,
    DOWNSTREAM,
    GREETING,
    REQUEST,
    RESPONSE,
    UPSTREAM,
    Frame,
    Message,
)
from txvaurien.interfaces import IFramer
from txvaurien.protocols.base import UNFRAMED, Framer, SwitchingFramer

if TYPE_CHECKING:
    from txvaurien.protocols.smtp import SMTPSession

_log = logs.logger("txvaurien.protocols.smtp")

#: The longest command or reply line read; RFC 5321 allows 512 bytes and
#: RFC 4954 12288 for AUTH.  A longer line is not SMTP.
LINE_LIMIT = 64 * 1024

#: The pseudo-verb of the message content sent after C{DATA}.
MESSAGE = "MESSAGE"

# Framer states.
_LINE = 0  # at the start of a line (command or reply)
_BODY = 1  # message content after DATA, until <CRLF>.<CRLF>
_CHUNK = 2  # BDAT chunk data; `remaining` bytes to go
_CLOSE = 100  # the current message goes on until the end of the stream
_DATA = UNFRAMED  # unframed: each chunk read is one DATA message

_TERMINATOR = b"\r\n.\r\n"
_BDAT = re.compile(rb"^BDAT[ \t]+(\d{1,18})(?:[ \t]+LAST)?[ \t]*\r?\n$", re.IGNORECASE)


def _verb(line: bytes) -> str:
    """
    The verb of a command line: its first word, upper case.
    """
    word = line.split(None, 1)[0] if line.strip() else b""
    return word[:16].upper().decode("ascii", "replace")


class _Framer(SwitchingFramer):
    """
    What both SMTP framers share.
    """

    protocolName = "SMTP"
    lineLimit = LINE_LIMIT
    log = _log

    def __init__(self, session: SMTPSession) -> None:
        Framer.__init__(self, session)
        self.state = _LINE

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


__all__ = ["LINE_LIMIT", "MESSAGE", "CommandFramer", "ReplyFramer"]
