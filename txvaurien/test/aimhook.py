"""
Test support for request matching, until the proxy core passes what a
match needs to the behavior table.

L{BehaviorTable.choose<txvaurien.table.BehaviorTable.choose>} takes the
request, the connection and the bytes of the request's first frame;
C{Connection.choose} in L{txvaurien.proxy} calls it with the random stream
only.  L{aim} patches, for one test, C{Connection.choose} to pass them
(the first frame's bytes are remembered by C{Pipe.route} while it opens
the request's place).  Once the core passes them itself, L{aim} finds
nothing to do.
"""

from __future__ import annotations

import inspect
from typing import Any

from twisted.logger import LogLevel

from txvaurien import logs, proxy
from txvaurien.frames import UPSTREAM


def coreAims() -> bool:
    """
    Whether C{Connection.choose} already passes the request and the
    connection to the table.
    """
    source = inspect.getsource(proxy.Connection.choose)
    if "table.choose(" not in source:
        return False
    arguments = source.split("table.choose(", 1)[1].split(")", 1)[0]
    return "request" in arguments


def aim(case: Any) -> None:
    """
    For the test C{case}, make the proxy core give the behavior table the
    request, connection and first bytes of each request.
    """
    if coreAims():
        return
    heads: list[bytes | None] = [None]
    route = proxy.Pipe.route

    def routeRemembering(self: Any, frame: Any) -> None:
        if frame.first and self.direction == UPSTREAM:
            previous, heads[0] = heads[0], frame.data
            try:
                route(self, frame)
            finally:
                heads[0] = previous
        else:
            route(self, frame)

    def choose(self: Any, request: Any) -> tuple[Any, ...]:
        table = self.proxy.table
        head = heads[0] if request is not None else None
        behaviors = table.choose(None if table.inert else self.random, request, self, head)
        decisions = self.proxy.decisions
        for behavior in behaviors:
            decisions[behavior.name] = decisions.get(behavior.name, 0) + 1
        if logs.isEnabled(LogLevel.debug):
            proxy._log.debug(
                "{proxy} #{cid} request {request}: {decision}",
                proxy=self.proxy.name, cid=self.id,
                request=None if request is None else request.index,
                decision="+".join(b.name for b in behaviors) or "dummy",
                event="decision",
            )
        return behaviors

    case.patch(proxy.Pipe, "route", routeRemembering)
    case.patch(proxy.Connection, "choose", choose)
