"""
Endpoint plugin: C{txvaurien-tls:PORT:...}, what C{--proxy ssl:...} becomes.
"""

from txvaurien.tls import ServerParser

txvaurienTLS = ServerParser()
