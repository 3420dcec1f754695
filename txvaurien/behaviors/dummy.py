"""
The C{dummy} behavior: no fault at all.
"""

from txvaurien.behaviors.base import Behavior


class Dummy(Behavior):
    """
    Pass every byte through untouched.  A connection whose only behavior is
    C{dummy} takes the proxy's fast path.
    """

    name = "dummy"
    options = {}
    inert = True
