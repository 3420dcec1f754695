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

from typing import Any

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs, options
from txvaurien.endpoints import RoutedBackend
from txvaurien.tls.creator import BACKEND_OPTIONS, ClientTLS, TLSBackendError
from txvaurien.tls.metrics import METRICS
from txvaurien.tls.transport import TLSFactory

_log = logs.logger("txvaurien.tls")


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


class SNIBackend(RoutedBackend):
    """
    Chooses a backend by the server name (SNI) the client asks for, on a
    TLS listener: C{sni:a.test=BACKEND|b.test=BACKEND|*=BACKEND} (the
    routes are L{RoutedBackend}'s).
    """

    prefix = "sni:"

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
