# -*- test-case-name: txvaurien.test.test_limits -*-
"""
The operating system's limits a proxy runs into: the listen backlog and the
number of open files.

Twisted listens with a backlog of 50 by default: a burst of a few hundred
connections then overflows the kernel's accept queue (C{ListenOverflows}
in C{/proc/net/netstat}) and clients see resets or retransmitted SYNs.
Every proxied connection costs two descriptors, so a proxy also raises its
soft open-file limit to the hard one at start, as relays do.
"""

from __future__ import annotations

from typing import Any

from txvaurien import logs

_log = logs.logger("txvaurien.limits")

#: The backlog used where the system's maximum cannot be read.
FALLBACK_BACKLOG = 4096

SOMAXCONN = "/proc/sys/net/core/somaxconn"

#: Endpoint types whose server endpoint strings take a C{backlog}.
_BACKLOG_TYPES = frozenset(["tcp", "tcp6", "ssl", "unix"])


def systemBacklog(path: str = SOMAXCONN) -> int:
    """
    The largest listen backlog the system grants (C{net.core.somaxconn}),
    or L{FALLBACK_BACKLOG} if it cannot be read.
    """
    try:
        with open(path, encoding="ascii") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return FALLBACK_BACKLOG
    return value if value > 0 else FALLBACK_BACKLOG


def withBacklog(description: str, backlog: int) -> str:
    """
    A server endpoint string with a C{backlog} parameter, unless it has
    one already or its type takes none (C{systemd}, plugins).
    """
    kind, sep, rest = description.partition(":")
    if not sep or kind not in _BACKLOG_TYPES:
        return description
    if any(part.startswith("backlog=") for part in _unescapedParts(rest)):
        return description
    return "{}:backlog={}".format(description, backlog)


def _unescapedParts(text: str) -> list[str]:
    """
    The C{:}-separated parts of an endpoint string, where C{\\:} does not
    separate.
    """
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def raiseOpenFileLimit(resourceModule: Any = None) -> tuple[int, int] | None:
    """
    Raise the soft limit on open files to the hard limit, and log it.

    @param resourceModule: the L{resource} module, or a fake of it.
    @return: C{(before, after)} soft limits, or L{None} if there is no
        such limit on this platform or it could not be changed.
    """
    if resourceModule is None:
        try:
            import resource as resourceModule
        except ImportError:
            return None
    try:
        soft, hard = resourceModule.getrlimit(resourceModule.RLIMIT_NOFILE)
    except (OSError, ValueError) as e:
        _log.warn("Cannot read the open-file limit: {error}", error=e)
        return None
    target = hard
    if target == resourceModule.RLIM_INFINITY:
        # Linux refuses an infinite RLIMIT_NOFILE; macOS caps it at
        # OPEN_MAX.  A million is far beyond any proxy's needs.
        target = max(soft, 1 << 20)
    if soft == target:
        _log.info("Open-file limit: {limit} (already the hard limit)", limit=soft)
        return soft, soft
    try:
        resourceModule.setrlimit(resourceModule.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        _log.warn(
            "Cannot raise the open-file limit from {soft} to {hard}: {error}",
            soft=soft, hard=target, error=e)
        return None
    _log.info("Open-file limit raised from {soft} to {hard}", soft=soft, hard=target)
    return soft, target
