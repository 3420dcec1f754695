# -*- test-case-name: txvaurien.test.test_protocol_memcache -*-
"""
The C{memcache} protocol handler: memcached's text protocol, classic and
meta commands.

Upstream, a frame is (part of) one command: its line and, for storage
commands, its data block.  Downstream, a frame is (part of) the response to
one command, paired in order with the commands the backend was really
sent: one line, a line and a data block (C{VA}), or many lines up to
C{END} (retrieval, C{stats}).
"""

from __future__ import annotations

from zope.interface import implementer

from txvaurien.frames import Message
from txvaurien.interfaces import IConnection, IProtocolSession
from txvaurien.options import Choice
from txvaurien.protocols._memcacheframers import CommandFramer, ResponseFramer
from txvaurien.protocols._memcachetext import (
    KEY_LIMIT,
    KEYED,
    LINE_LIMIT,
    LISTING,
    NOREPLY,
    QUIET_CODES,
    RESPONSE_LINE_LIMIT,
    RETRIEVAL,
    STORAGE,
    parseCommand,
)
from txvaurien.protocols.base import ProtocolHandler, Session, oneLine

__all__ = [
    "KEYED",
    "KEY_LIMIT",
    "LINE_LIMIT",
    "LISTING",
    "NOREPLY",
    "QUIET_CODES",
    "RESPONSE_LINE_LIMIT",
    "RETRIEVAL",
    "STORAGE",
    "CommandFramer",
    "Memcache",
    "MemcacheSession",
    "ResponseFramer",
    "parseCommand",
]


@implementer(IProtocolSession)
class MemcacheSession(Session):
    """
    One connection's memcache framing (L{IProtocolSession}): C{sent} holds
    the commands written to the backend that still wait for their
    response.
    """

    handler: "Memcache"

    def __init__(self, handler: "Memcache", connection: IConnection) -> None:
        Session.__init__(self, handler, connection)
        self.upstream = CommandFramer(self)
        self.downstream = ResponseFramer(self)

    @property
    def passthrough(self) -> bool:
        """
        C{True} once both framers gave up framing (each on its own, see
        L{txvaurien.protocols.base.Framer.giveUp}).
        """
        return self.upstream.raw and self.downstream.raw

    def errorReply(
        self, request: Message | None, reason: str, code: int | None = None
    ) -> bytes:
        """
        C{SERVER_ERROR <reason>} (or the C{error} option's kind); nothing
        for a C{noreply} command, whose client reads no response.
        """
        if request is not None and not request.expectsResponse:
            return b""
        if request is not None:
            self._settleQuiet(request)
        kind = self.handler.settings["error"]
        if kind == "ERROR":
            return b"ERROR\r\n"
        return kind.encode("ascii") + b" " + oneLine(reason) + b"\r\n"

    def _settleQuiet(self, request: Message) -> None:
        """
        C{request} is answered by the proxy, so the backend never sees it.
        If the backend was only sent quiet requests since, nothing may
        ever come from it to show they succeeded: take them as having
        succeeded now, so the answer to C{request} is not held behind
        them.
        """
        sent = self.sent
        if not sent or request in sent:
            return
        if not all(r.meta.get("quiet") for r in sent):
            return
        quiet = list(sent)
        sent.clear()
        for r in quiet:
            self.connection.reply(r, b"")

    def connectFailed(self, reason: str) -> bytes:
        return b"SERVER_ERROR backend unavailable: " + oneLine(reason) + b"\r\n"


class Memcache(ProtocolHandler):
    """
    memcached's text protocol: a frame is a command or part of one, or a
    response or part of one.  Errors are C{SERVER_ERROR} lines, which
    client libraries raise as a server error.

    Classic commands (storage with data blocks, C{noreply}, multi-key
    retrieval, C{stats}) and meta commands (C{mg}, C{ms}, C{md}, C{ma},
    C{mn}, quiet mode) are paired with their responses; the metadata of a
    command is its name (C{command}) and first key (C{key}).

    Example::

        twistd -n vaurien --proxy 127.0.0.1:11212 --backend 127.0.0.1:11211 \\
            --protocol memcache --behavior 10:error --seed 42
    """

    name = "memcache"
    options = {
        "error": (
            "Kind of error line the proxy makes up: SERVER_ERROR, CLIENT_ERROR "
            "(both followed by the reason) or ERROR",
            Choice("SERVER_ERROR", "CLIENT_ERROR", "ERROR"),
            "SERVER_ERROR",
        ),
    }
    framesRequests = True
    sessionClass = MemcacheSession
