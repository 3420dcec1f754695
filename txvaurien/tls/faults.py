# -*- test-case-name: txvaurien.test.test_tls_faults -*-
"""
What the C{tls_*} behaviors do to a client's handshake.

A behavior's C{connectionMade(connection)} runs when the client has
connected and before its hello is read (the proxy reads nothing from the
client until the backend is connected).  L{clientTLS} finds the TLS
layer of the client's connection; L{CertificateFault} and
L{VersionFault} are given to L{txvaurien.tls.server.setFault} and choose
the context the client is shown when its hello arrives.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from typing import Any

from OpenSSL import SSL

from txvaurien import logs
from txvaurien.tls import certs

_log = logs.logger("txvaurien.tls")

#: The kinds of bad certificates L{CertificateFault} presents.
CERTIFICATE_KINDS = ("expired", "not_yet_valid", "wrong_host", "self_signed", "untrusted_ca")

#: Old protocol versions L{VersionFault} limits the handshake to.
OLD_VERSIONS = {"TLSv1": SSL.TLS1_VERSION, "TLSv1.1": SSL.TLS1_1_VERSION}

_fallbackCA: certs.CertificateAuthority | None = None
_untrustedCA: certs.CertificateAuthority | None = None
_warned: set[str] = set()


def clientTLS(connection: Any, behavior: str) -> tuple[Any, Any] | None:
    """
    The TLS layer of a connection's client side and its L{ServerTLS}, or
    L{None} (with a warning, once per behavior) if the proxy does not
    terminate TLS there.
    """
    from txvaurien.tls.server import ServerTLS

    transport = getattr(getattr(connection, "client", None), "transport", None)
    creator = getattr(getattr(transport, "factory", None), "creator", None)
    if not isinstance(creator, ServerTLS):
        if behavior not in _warned:
            _warned.add(behavior)
            _log.warn(
                "{behavior} acts on TLS handshakes, and this proxy does not terminate "
                "TLS (--proxy ssl:...): it does nothing", behavior=behavior)
        return None
    return transport, creator


def _caOf(server: Any) -> certs.CertificateAuthority:
    global _fallbackCA
    if server.ca is not None:
        return server.ca
    if _fallbackCA is None:
        _fallbackCA = certs.CertificateAuthority.generate("txvaurien faults CA")
        _log.warn("TLS faults: the listener has no minting CA (caCert/caDir), so bad "
                  "certificates are signed by a CA no client trusts")
    return _fallbackCA


def _untrusted() -> certs.CertificateAuthority:
    global _untrustedCA
    if _untrustedCA is None:
        _untrustedCA = certs.CertificateAuthority.generate("txvaurien untrusted CA")
    return _untrustedCA


class _Cache:
    """
    A small LRU cache of contexts.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.entries: OrderedDict[Any, SSL.Context] = OrderedDict()

    def get(self, key: Any, make: Any) -> SSL.Context:
        ctx = self.entries.get(key)
        if ctx is None:
            ctx = self.entries[key] = make()
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
        return ctx


class CertificateFault:
    """
    Shows the client a bad certificate of kind C{kind} for the name it
    asked for, minted by the listener's CA (so that the only thing wrong
    is the one intended).
    """

    _cache = _Cache()

    def __init__(self, kind: str, wrongName: str = "wrong.host.invalid") -> None:
        self.kind = kind
        self.wrongName = wrongName

    def contextFor(self, server: Any, name: str | None) -> SSL.Context:
        name = name or server.defaultName
        return self._cache.get((id(server), self.kind, name, self.wrongName),
                               lambda: self._make(server, name))

    def _make(self, server: Any, name: str) -> SSL.Context:
        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        ca = _caOf(server)
        if self.kind == "self_signed":
            key = certs.newKey()
            return server.context([certs.selfSigned([name], key)], key)
        if self.kind == "untrusted_ca":
            # Without its CA in the chain, as servers send it.
            ca = _untrusted()
            return server.context([ca.mint([name])], ca.leafKey)
        if self.kind == "expired":
            certificate = ca.mint([name], now - 30 * day, now - day)
        elif self.kind == "not_yet_valid":
            certificate = ca.mint([name], now + day, now + 30 * day)
        else:
            certificate = ca.mint([self.wrongName])
        return server.context([certificate, ca.certificate], ca.leafKey)


class VersionFault:
    """
    Offers only an old protocol version (C{TLSv1} or C{TLSv1.1}), with the
    certificate the client would otherwise get.
    """

    _cache = _Cache()

    def __init__(self, version: str) -> None:
        self.version = version

    def apply(self, tlsProtocol: Any, server: Any) -> None:
        """
        Make C{tlsProtocol}'s TLS speak only the old version, before its
        handshake: the version is fixed when the connection is made.
        """
        tlsProtocol.useContext(self._cache.get(
            (id(server), self.version, None),
            lambda: self._make(server, server.chain, server.key)))

    def contextFor(self, server: Any, name: str | None) -> SSL.Context:
        if server.ca is None:
            return self._cache.get((id(server), self.version, None),
                                   lambda: self._make(server, server.chain, server.key))
        name = name or server.defaultName
        return self._cache.get((id(server), self.version, name), lambda: self._make(
            server, [server.ca.mint([name]), server.ca.certificate], server.ca.leafKey))

    def _make(self, server: Any, chain: Any, key: Any) -> SSL.Context:
        number = OLD_VERSIONS[self.version]
        # Old versions need the SHA-1 based ciphers that security level 0
        # allows.
        return server.context(chain, key, number, number, b"DEFAULT:@SECLEVEL=0")


__all__ = [
    "CERTIFICATE_KINDS",
    "CertificateFault",
    "OLD_VERSIONS",
    "VersionFault",
    "clientTLS",
]
