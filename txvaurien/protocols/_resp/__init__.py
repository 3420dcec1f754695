# -*- test-case-name: txvaurien.test.test_protocol_redis -*-
"""
All the scanning of RESP, the Redis serialization protocol, used by
L{txvaurien.protocols.redis}: the fast paths that take whole commands and
simple replies that arrived in one piece in one go, and the incremental
scanners that take everything else.

A scanner never copies a value: it finds where each one ends, whatever the
chunking, so that a big bulk string passes through in as many pieces as it
arrived in.  It keeps just enough state to resume in the middle of any
token, and captures the few small values the framers classify messages
by (a request's command name, a push's kind).

Both scanners raise L{ProtocolError} with the offset of the byte at which
the stream stopped being valid.  That offset depends only on the bytes,
never on how they were split into chunks.

All of it lives in this package and nowhere else, as one module did
before: the package is that module cut along its seams, so that no file
is over a few hundred lines.  It stays one place to look for RESP
scanning (issue 13 asks for one), and its leading underscore keeps it
out of the protocol handlers the registry lists:

  - L{txvaurien.protocols._resp.base}: the limits, the type bytes,
    L{ProtocolError} and what both incremental scanners share;
  - L{txvaurien.protocols._resp.replies}: L{ReplyScanner};
  - L{txvaurien.protocols._resp.requests}: L{RequestScanner};
  - L{txvaurien.protocols._resp.fast}: the fast paths.

Every public name is importable from here, as it was from the module.
"""

from __future__ import annotations

from txvaurien.protocols._resp.base import (
    AGGREGATE_TYPES,
    BULK_TYPES,
    CAPTURE,
    INLINE_LIMIT,
    LINE_TYPES,
    NUMBER_LIMIT,
    ProtocolError,
)
from txvaurien.protocols._resp.fast import (
    BULK_LINES,
    SPLIT_LIMIT,
    fastCommand,
    fastReply,
    fastScalar,
    splitCommands,
)
from txvaurien.protocols._resp.replies import ReplyScanner
from txvaurien.protocols._resp.requests import Request, RequestScanner

__all__ = [
    "AGGREGATE_TYPES",
    "BULK_LINES",
    "BULK_TYPES",
    "CAPTURE",
    "INLINE_LIMIT",
    "LINE_TYPES",
    "NUMBER_LIMIT",
    "SPLIT_LIMIT",
    "ProtocolError",
    "ReplyScanner",
    "Request",
    "RequestScanner",
    "fastCommand",
    "fastReply",
    "fastScalar",
    "splitCommands",
]
