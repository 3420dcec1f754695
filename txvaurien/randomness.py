"""
The one source of randomness.

A proxy run has one seed (C{--seed}, or one drawn from the operating
system and logged, so any run can be repeated).  Each connection gets its
own L{random.Random}, derived from the seed and the connection's number, so
the decisions made on one connection do not depend on how its traffic
interleaves with others'.
"""

from __future__ import annotations

import os
import random


class RandomSource:
    """
    Seeded randomness for a proxy.

    @ivar seed: the seed, an C{int}.
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "big")
        self.seed = seed

    def stream(self, *key: object) -> random.Random:
        """
        An independent random stream for C{key} (for example
        C{("connection", 7)}); the same seed and key always give the same
        stream.
        """
        return random.Random("{}/{}".format(self.seed, "/".join(map(str, key))))
