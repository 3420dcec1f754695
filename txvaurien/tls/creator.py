# -*- test-case-name: txvaurien.test.test_tls_origination -*-
"""
The client side of the TLS connections to a backend: L{ClientTLS} makes
each one (verification against the trust roots, the name check with
service-identity, SNI, ALPN, a client certificate, session resumption)
and says in words why a handshake failed.  L{BACKEND_OPTIONS} are the
keywords of C{--backend tls:...} it is built from.

L{txvaurien.tls.client} connects with it and re-exports every public
name defined here.
"""

from __future__ import annotations

import ipaddress
import weakref
from typing import Any, Sequence

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname, verify_ip_address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs, options
from txvaurien.tls import certs

_log = logs.logger("txvaurien.tls")

#: Options of a TLS backend, given as keywords of its endpoint string.
BACKEND_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "host": ("Backend host name or address (also what its certificate must "
             "name)", str, None),
    "port": ("Backend port", options.Number(int, 1, 65535), None),
    "timeout": ("Ignored: the proxy's --timeout bounds connect and handshake",
                float, None),
    "verify": ("Verify the backend's certificate and name (turn off only "
               "for tests: verify=no)", bool, True),
    "caFile": ("PEM file of the CAs to trust instead of the system's", str, None),
    "caDir": ("Directory of hashed CA certificates to trust instead of the "
              "system's", str, None),
    "trustRoots": ("Same as caDir (Twisted's name)", str, None),
    "sni": ("Server name to ask for (default: host, unless it is an address)",
            str, None),
    "certificate": ("PEM file of a client certificate to present (and its key, "
                    "unless privateKey is given)", str, None),
    "privateKey": ("PEM file of the client certificate's private key", str, None),
    "alpn": ("Protocols to offer over ALPN, comma-separated", list[str], None),
}

#: OpenSSL's X509_V_ERR_* codes clients meet most, in words.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate (untrusted CA)",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
    62: "hostname mismatch",
}

_warned: set[str] = set()


class TLSBackendError(Exception):
    """
    The TLS connection to the backend failed; the message says why.
    """


def _isAddress(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _sslReason(error: SSL.Error) -> str:
    """
    The last reason in an OpenSSL error queue (C{"tlsv1 alert unknown ca"}).
    """
    queue = error.args[0] if error.args else None
    if isinstance(queue, list) and queue and isinstance(queue[-1], tuple):
        return str(queue[-1][-1])
    return str(error) or type(error).__name__


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS:
    """
    Makes the client side of each TLS connection to one backend.

    @ivar host: the name (or address) the certificate must match.
    @ivar verify: whether the certificate is checked at all.
    @ivar sni: the server name sent, or L{None}.
    @ivar trust: what the backend is verified against: C{"system"}, the
        CA file or directory, or L{None} when verification is off.
    @ivar hasClientCertificate: whether a client certificate is presented.
    """

    def __init__(
        self,
        host: str,
        verify: bool = True,
        caFile: str | None = None,
        caDir: str | None = None,
        sni: str | None = None,
        chain: Sequence[Any] = (),
        key: Any = None,
        alpn: Sequence[bytes] = (),
    ) -> None:
        self.host = host
        self.verify = verify
        self.sni = sni if sni is not None else (None if _isAddress(host) else host)
        self.alpn = list(alpn)
        self.trust = (caFile or caDir or "system") if verify else None
        self.hasClientCertificate = bool(chain)
        self.errors: "weakref.WeakKeyDictionary[Any, tuple[int, int]]" = (
            weakref.WeakKeyDictionary())
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_options(SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3)
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        if verify:
            if caFile or caDir:
                ctx.load_verify_locations(caFile, caDir)
            else:
                ctx.set_default_verify_paths()
            ctx.set_verify(SSL.VERIFY_PEER, self._verified)
        else:
            ctx.set_verify(SSL.VERIFY_NONE)
        if chain:
            ctx.use_certificate(chain[0])
            for extra in chain[1:]:
                ctx.add_extra_chain_cert(extra)
            ctx.use_privatekey(key)
        self._context = ctx
        # The latest connection whose handshake succeeded: its session
        # (ticket) resumes the next handshake, as clients do.
        self._latest: SSL.Connection | None = None

    @classmethod
    def fromSettings(cls, settings: dict[str, Any], description: str) -> "ClientTLS":
        """
        A L{ClientTLS} from checked L{BACKEND_OPTIONS}.

        @raise certs.TLSConfigError: if a file is unusable.
        """
        caFile = settings.get("caFile")
        caDir = settings.get("caDir") or settings.get("trustRoots")
        if caFile:
            certs.checkTrustFile(caFile)
        if caDir:
            certs.checkTrustDirectory(caDir)
        chain: Sequence[Any] = ()
        key = None
        if settings.get("certificate") or settings.get("privateKey"):
            if not settings.get("certificate"):
                raise certs.TLSConfigError("backend {}: privateKey without certificate".format(
                    description))
            chain, key = certs.loadKeyPair(settings["certificate"], settings.get("privateKey"))
        if not settings["verify"] and description not in _warned:
            _warned.add(description)
            _log.warn(
                "TLS VERIFICATION IS OFF for backend {backend} (verify=no): any "
                "certificate is accepted, so this connection is not authenticated",
                backend=description,
            )
        return cls(
            settings["host"], settings["verify"], caFile, caDir, settings.get("sni"),
            chain, key, [p.encode("ascii") for p in settings.get("alpn") or ()],
        )

    def _verified(self, conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
        if not ok and conn.get_app_data() not in self.errors:
            self.errors[conn.get_app_data()] = (errno, depth)
        return bool(ok)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self._context, None)
        latest = self._latest
        if latest is not None:
            session = latest.get_session()
            if session is not None:
                conn.set_session(session)
        if self.sni:
            conn.set_tlsext_host_name(self.sni.encode("idna"))
        if self.alpn:
            conn.set_alpn_protos(self.alpn)
        return conn

    def failureReason(self, tlsProtocol: Any, reason: Failure) -> str:
        """
        Why a handshake failed, in words.
        """
        recorded = self.errors.get(tlsProtocol)
        if recorded is not None:
            errno, depth = recorded
            return "certificate verify failed: {}{}".format(
                _VERIFY_ERRORS.get(errno, "X509 verify error {}".format(errno)),
                "" if depth == 0 else " (at chain depth {})".format(depth),
            )
        if isinstance(reason.value, SSL.Error):
            return "TLS handshake failed: " + _sslReason(reason.value)
        return "connection lost during the TLS handshake: " + reason.getErrorMessage()

    def checkName(self, conn: SSL.Connection) -> str | None:
        """
        The reason the certificate does not name the backend, or L{None};
        a connection that passes may lend its session to the next one.
        """
        why = self._checkName(conn)
        if why is None:
            self._latest = conn
        return why

    def _checkName(self, conn: SSL.Connection) -> str | None:
        if not self.verify:
            return None
        try:
            if _isAddress(self.host):
                verify_ip_address(conn, self.host)
            else:
                verify_hostname(conn, self.host)
        except VerificationError:
            return "certificate verify failed: it does not name {!r}".format(self.host)
        return None
