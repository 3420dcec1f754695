# -*- test-case-name: txvaurien.test.test_tls_client -*-
"""
TLS to the backend: C{--backend tls:host=H:port=P[:key=value...]}.

The backend is verified by default: its chain against the system's trust
roots (or C{caFile}/C{caDir}), its name with service-identity.  The proxy
tells its L{txvaurien.proxy.ProxyClientFactory} about the backend only once
the handshake has completed and the certificate matched, so a backend that
fails verification is a failed connection: the client gets its protocol's
error naming the reason (HTTP 502, redis C{-ERR}...), from the failure's
message (L{TLSBackendError}).

L{SNIBackend} chooses among several backends by the server name the
client asked for.
"""

from __future__ import annotations

import ipaddress
import weakref
from typing import Any, Callable, Sequence

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname, verify_ip_address
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs, options
from txvaurien.tls import certs
from txvaurien.tls.metrics import METRICS
from txvaurien.tls.transport import TLSFactory

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


@implementer(IHandshakeListener)
class _Handshake(Protocol):
    """
    Holds a backend connection until its handshake is over and checked,
    then hands the TLS transport to the real protocol.
    """

    def __init__(self, attempt: "_TLSAttempt") -> None:
        self.attempt = attempt
        self.done = False

    def handshakeCompleted(self) -> None:
        attempt = self.attempt
        tls: Any = self.transport
        why = attempt.creator.checkName(tls.getHandle())
        if why is not None:
            attempt.failed(why)
            tls.abortConnection()
            return
        self.done = True
        attempt.connected()
        METRICS.handshake("client")
        protocol = attempt.factory.buildProtocol(tls.getPeer())
        tls.wrappedProtocol = protocol
        protocol.makeConnection(tls)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        if not self.done:
            self.attempt.failed(self.attempt.creator.failureReason(self.transport, reason))


class _GateFactory(ClientFactory):
    noisy = False

    def __init__(self, attempt: "_TLSAttempt") -> None:
        self.attempt = attempt

    def buildProtocol(self, addr: Any) -> _Handshake:
        handshake = _Handshake(self.attempt)
        self.attempt.handshake = handshake
        return handshake

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.attempt.failed(reason.getErrorMessage(), tcp=reason)


class _TLSAttempt:
    """
    One connection to a TLS backend: TCP connect, handshake, checks.
    """

    def __init__(self, backend: "TLSBackend", factory: Any, timeout: float) -> None:
        self.backend = backend
        self.creator = backend.creator
        self.factory = factory
        self.finished = False
        self.handshake: _Handshake | None = None
        reactor = backend.reactor
        tlsFactory = TLSFactory(self.creator, True, _GateFactory(self))
        self.connector = reactor.connectTCP(backend.host, backend.port, tlsFactory, timeout or 30)
        self.timer = None
        if timeout:
            self.timer = reactor.callLater(timeout, self._timedOut, timeout)

    def _stopTimer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _timedOut(self, timeout: float) -> None:
        self.timer = None
        self.failed("TLS handshake with the backend timed out after {}s".format(timeout))
        self._abort()

    def _abort(self) -> None:
        handshake = self.handshake
        tls: Any = handshake.transport if handshake is not None else None
        if tls is not None:
            tls.abortConnection()
        else:
            try:
                self.connector.stopConnecting()
            except Exception:
                pass

    def connected(self) -> None:
        self.finished = True
        self._stopTimer()

    def failed(self, why: str, tcp: Failure | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self._stopTimer()
        if tcp is None:
            METRICS.failure("client", why)
            reason = Failure(TLSBackendError(why))
        else:
            reason = tcp
        self.factory.clientConnectionFailed(None, reason)

    def cancel(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._stopTimer()
        self._abort()


class TLSBackend:
    """
    A backend reached over TLS, verified (see L{ClientTLS}).

    @ivar description: the endpoint string, for logs.
    """

    def __init__(self, reactor: Any, host: str, port: int, creator: ClientTLS,
                 description: str) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.creator = creator
        self.description = description

    @classmethod
    def fromString(cls, reactor: Any, text: str, keywords: dict[str, str]) -> "TLSBackend":
        """
        A L{TLSBackend} from the keywords of a C{tls:} string.

        @raise options.OptionError: for an unknown or invalid keyword.
        @raise certs.TLSConfigError: for an unusable file.
        @raise ValueError: if the host or port is missing.
        """
        settings = options.validate(BACKEND_OPTIONS, keywords, where="tls:")
        missing = [name for name in ("host", "port") if settings.get(name) is None]
        if missing:
            raise ValueError("{} is missing in {!r} (tls:host=H:port=P)".format(
                " and ".join(missing), text))
        creator = ClientTLS.fromSettings(settings, text)
        return cls(reactor, settings["host"], settings["port"], creator, text)

    def describe(self) -> dict[str, Any]:
        """
        What the control API shows of this backend's TLS (no key material).
        """
        creator = self.creator
        return {
            "host": self.host,
            "port": self.port,
            "verify": creator.verify,
            "sni": creator.sni,
            "alpn": [p.decode("ascii") for p in creator.alpn],
            "trust": creator.trust,
            "client_certificate": creator.hasClientCertificate,
        }

    def connect(self, factory: Any, timeout: float) -> _TLSAttempt:
        """
        Connect C{factory}'s protocol once the handshake is over and the
        backend verified; failures reach C{factory.clientConnectionFailed}
        with a L{TLSBackendError} saying why.
        """
        return _TLSAttempt(self, factory, timeout)


class _Choice:
    """
    A backend attempt made once the client's server name is known.
    """

    def __init__(self) -> None:
        self.inner: Any = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.cancel()


class SNIBackend:
    """
    Chooses a backend by the server name (SNI) the client asks for, on a
    TLS listener: C{sni:a.test=BACKEND|b.test=BACKEND|*=BACKEND}.

    @ivar routes: server name to backend; C{"*"} is the default.
    """

    def __init__(self, reactor: Any, routes: dict[str, Any], description: str) -> None:
        self.reactor = reactor
        self.routes = routes
        self.description = description

    @classmethod
    def fromString(cls, reactor: Any, text: str,
                   parse: Callable[[Any, str], Any]) -> "SNIBackend":
        """
        Parse C{sni:NAME=BACKEND|...}; each BACKEND is parsed by C{parse}.

        @raise ValueError: saying which route is malformed.
        """
        routes = {}
        for part in text[len("sni:"):].split("|"):
            name, eq, backend = part.partition("=")
            if not eq or not name.strip() or not backend.strip():
                raise ValueError("route {!r} in {!r} is not NAME=BACKEND".format(part, text))
            routes[name.strip().lower()] = parse(reactor, backend.strip())
        return cls(reactor, routes, text)

    def describe(self) -> dict[str, Any]:
        """
        What the control API shows: each route's backend.
        """
        return {"routes": {name: backend.description for name, backend in self.routes.items()}}

    def choose(self, name: str | None) -> Any:
        """
        The backend for server name C{name}, or L{None}.
        """
        if name is not None and name.lower() in self.routes:
            return self.routes[name.lower()]
        return self.routes.get("*")

    def connect(self, factory: Any, timeout: float) -> _Choice:
        from txvaurien.tls.server import refuse, whenServerName

        choice = _Choice()
        connection = getattr(factory, "connection", None)
        tlsProtocol = getattr(getattr(connection, "client", None), "transport", None)
        if not hasattr(tlsProtocol, "hold"):
            backend = self.choose(None)
            if backend is None:
                factory.clientConnectionFailed(None, Failure(TLSBackendError(
                    "the sni: backend needs a TLS listener (--proxy ssl:...)")))
            else:
                choice.inner = backend.connect(factory, timeout)
            return choice

        def named(name: str | None) -> None:
            # Called by OpenSSL while it reads the client's hello: act on
            # the next turn.
            backend = self.choose(name)
            if backend is None:
                _log.warn("{backend}: no backend for server name {name!r}: "
                          "refused with an unrecognized_name alert",
                          backend=self.description, name=name)
                refuse(tlsProtocol, "unrecognized_name")
                self.reactor.callLater(0, fail, name)
                return
            self.reactor.callLater(0, dial, backend)

        def dial(backend: Any) -> None:
            if not choice.cancelled:
                choice.inner = backend.connect(factory, timeout)

        def fail(name: str | None) -> None:
            if not choice.cancelled:
                factory.clientConnectionFailed(None, Failure(TLSBackendError(
                    "no backend for server name {!r}".format(name))))

        # The listener reads the client's hello while the proxy waits for
        # the backend (see txvaurien.tls.transport): its server name comes.
        whenServerName(tlsProtocol, named)
        return choice


__all__ = [
    "BACKEND_OPTIONS",
    "ClientTLS",
    "SNIBackend",
    "TLSBackend",
    "TLSBackendError",
]
