"""
A feed that stands in for a framer's own for a while: what a protocol
handler reads itself around an in-band TLS switch (an answer that is the
proxy's to give, a reply to the proxy's own command) before framing goes
on as usual.
"""

from __future__ import annotations

from typing import Any, Callable

from txvaurien.frames import Frame


class StandIn:
    """
    Puts C{feed} in place of C{framer}'s C{feed} (an instance attribute,
    so the class's stays untouched) until L{giveWay}, which puts back
    whatever was there before: stand-ins nest, last in, first out.
    """

    def __init__(self, framer: Any, feed: Callable[[bytes], list[Frame]]) -> None:
        self.framer = framer
        self.before = framer.__dict__.get("feed")
        framer.feed = feed

    def passOn(self, data: bytes) -> list[Frame]:
        """
        Feed C{data} to the feed this one stands in for, staying in place.
        """
        if self.before is None:
            return type(self.framer).feed(self.framer, data)
        return self.before(data)

    def giveWay(self) -> None:
        """
        Put back the feed this one stood in for.
        """
        if self.before is None:
            self.framer.__dict__.pop("feed", None)
        else:
            self.framer.feed = self.before


__all__ = ["StandIn"]
