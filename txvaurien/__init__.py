"""
txvaurien: a chaos TCP proxy built on Twisted.

Run it with C{twistd -n vaurien --backend ...}, embed it with
L{txvaurien.service.makeProxyService}, and extend it with behaviors
(L{txvaurien.interfaces.IBehavior}) and protocol handlers
(L{txvaurien.interfaces.IProtocolHandler}).
"""

from txvaurien._version import __version__

__all__ = ["__version__"]
