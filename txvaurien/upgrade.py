# -*- test-case-name: txvaurien.test.test_tls_inband -*-
"""
In-band TLS upgrades (SMTP's C{STARTTLS}, PostgreSQL's C{SSLRequest},
MySQL's SSL request), framed on both sides.

When a client asks its server to switch to TLS in the middle of a
connection, the proxy can either copy the encrypted bytes (I{passthrough}:
nothing is framed any more, only connection-level faults act) or
I{upgrade}: it answers the client's handshake with its own certificate,
runs its own handshake with the backend (verifying it as a C{tls:} backend
is verified), and goes on framing the decrypted streams, so that
request-level faults act inside TLS.

A protocol handler that supports upgrades declares L{OPTIONS} among its
own and builds an L{InbandTLS} from its settings; its session calls
L{InbandTLS.start} when both sides have agreed to switch, which layers TLS
on both legs (L{layerTLS}) through
L{txvaurien.connection.Connection.startTLS}.

Each leg becomes a L{txvaurien.tls.transport.HalfCloseTLS} over the TCP
transport, exactly what a C{ssl:} listener or a C{tls:} backend gives the
proxy: it half-closes with C{close_notify}, names the Pipe as its
producer, and goes on reading the handshake while the Pipe pauses it.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txvaurien import logs
from txvaurien.options import Choice, OptionError, String

_log = logs.logger("txvaurien.tls")

class OptionalString(String):
    """
    Any text (a file name, a host name), or nothing (L{None}: not given).
    """

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        return String.check(self, value)


#: The options of in-band upgrades, declared once and shared by the
#: handlers that support them (C{smtp}, C{postgresql}, C{mysql}).
OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "tls_upgrade": (
        "When the client switches to TLS in band: upgrade (the proxy answers "
        "with its own certificate, upgrades its backend leg, and frames and "
        "injects faults inside TLS), passthrough (encrypted bytes are copied; "
        "connection-level faults only) or auto (upgrade when tls_certificate "
        "or tls_ca_dir is given, else passthrough)",
        Choice("auto", "upgrade", "passthrough"),
        "auto",
    ),
    "tls_certificate": (
        "PEM file of the certificate shown to clients that switch to TLS "
        "(with its key, unless tls_key is given)", OptionalString(), None),
    "tls_key": ("PEM file of tls_certificate's private key (default: in "
                "tls_certificate's file)", OptionalString(), None),
    "tls_ca_dir": (
        "Directory of a CA (ca.pem, ca.key; generated on first use) that mints "
        "the certificate shown to clients that switch to TLS, for the server "
        "name they ask for", OptionalString(), None),
    "tls_verify": (
        "Verify the backend's certificate and name when the proxy upgrades its "
        "backend leg (turn off only for tests)", bool, True),
    "tls_ca_file": (
        "PEM file of the CAs the backend's certificate must chain to when the "
        "proxy upgrades its backend leg (default: the system's)", OptionalString(), None),
    "tls_server_name": (
        "Name the backend's certificate must carry, also sent as the server "
        "name (default: the backend's host)", OptionalString(), None),
}


#: The option of handlers that can also switch the backend leg to TLS on
#: their own, for clients that do not ask (C{postgresql}, C{smtp},
#: C{mysql}).
BACKEND_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "tls_backend": (
        "When the backend leg switches to TLS: as_client (when the client "
        "asks) or always (the proxy asks the backend itself as soon as it "
        "connects, and verifies it as tls_ca_file, tls_verify and "
        "tls_server_name say; a backend that refuses or fails verification "
        "fails the connection with the protocol's error)",
        Choice("as_client", "always"),
        "as_client",
    ),
}


class InbandTLS:
    """
    What a handler's settings say about in-band upgrades: whether to
    upgrade, the certificate shown to clients (a
    L{txvaurien.tls.server.ServerTLS}) and how backends are verified (a
    L{txvaurien.tls.client.ClientTLS} per backend name).

    @ivar enabled: whether upgrades are made (else they pass through).
    @ivar server: the server side's connection creator, when enabled.
    @ivar backendAlways: whether the proxy switches the backend leg to TLS
        itself, whatever the client asks (C{tls_backend=always}).
    """

    def __init__(self, settings: dict[str, Any], where: str) -> None:
        """
        @param where: the prefix of option names in errors
            (C{"protocol-smtp-"}).

        @raise OptionError: if the certificate, key, CA directory or CA file
            cannot be used, or C{upgrade} is asked without a certificate.
        """
        self.settings = settings
        self.where = where
        self.server: Any = None
        self._clients: dict[str, Any] = {}
        mode = settings.get("tls_upgrade", "auto")
        configured = bool(settings.get("tls_certificate") or settings.get("tls_ca_dir"))
        if mode == "upgrade" and not configured:
            raise OptionError(
                where + "tls-upgrade",
                "upgrade needs a certificate: give tls_certificate or tls_ca_dir")
        self.enabled = mode == "upgrade" or (mode == "auto" and configured)
        self.backendAlways = settings.get("tls_backend") == "always"
        if self.enabled:
            self._load()
        if self.enabled or self.backendAlways:
            self._checkTrust()

    def _load(self) -> None:
        from txvaurien.tls import certs
        from txvaurien.tls.server import SERVER_OPTIONS, ServerTLS

        settings = self.settings
        server = {name: spec[2] for name, spec in SERVER_OPTIONS.items()}
        certificate = settings.get("tls_certificate")
        if certificate:
            server["certKey"] = certificate
            server["privateKey"] = settings.get("tls_key") or certificate
        server["caDir"] = settings.get("tls_ca_dir") or None
        try:
            self.server = ServerTLS.fromSettings(server)
        except certs.TLSConfigError as e:
            raise OptionError(
                self.where + ("tls-certificate" if certificate else "tls-ca-dir"), str(e))

    def _checkTrust(self) -> None:
        from txvaurien.tls import certs

        caFile = self.settings.get("tls_ca_file")
        if caFile:
            try:
                certs.checkTrustFile(caFile)
            except certs.TLSConfigError as e:
                raise OptionError(self.where + "tls-ca-file", str(e))

    def clientOptions(self, backend: Any) -> Any:
        """
        The L{txvaurien.tls.client.ClientTLS} verifying C{backend} (the
        proxy's backend), one per name.

        @raise ValueError: if the backend has no host name to verify and
            C{tls_server_name} is not given.
        """
        from txvaurien.tls.client import BACKEND_OPTIONS, ClientTLS

        settings = self.settings
        host = settings.get("tls_server_name") or getattr(backend, "host", None)
        if not host:
            raise ValueError("the backend has no host name to verify: give tls_server_name")
        creator = self._clients.get(host)
        if creator is None:
            values = {name: spec[2] for name, spec in BACKEND_OPTIONS.items()}
            values.update(host=host, verify=settings.get("tls_verify", True),
                          caFile=settings.get("tls_ca_file") or None)
            creator = self._clients[host] = ClientTLS.fromSettings(
                values, "{} (in-band TLS)".format(getattr(backend, "description", host)))
        return creator

    def start(self, connection: Any) -> None:
        """
        Both sides agreed to switch and everything before the switch has
        been written: layer TLS on both legs of C{connection}.  A backend
        that cannot be verified gets the client the session's
        C{connectFailed} error, inside TLS.
        """
        self._withBackend(connection, self.server)

    def startBackend(self, connection: Any) -> None:
        """
        Everything the proxy sent the backend before the switch has been
        written, and the backend agreed: layer TLS on the backend leg of
        C{connection} alone (the client speaks in clear, or switches with
        the proxy later: L{startClient}).
        """
        self._withBackend(connection, None)

    def _withBackend(self, connection: Any, serverOptions: Any) -> None:
        """
        Layer TLS on the backend leg, verified, and on the client's with
        C{serverOptions} unless it is L{None}.
        """
        try:
            clientOptions = self.clientOptions(connection.proxy.backend)
        except ValueError as e:
            connection.tlsUpgradeEnded(str(e))
            return
        connection.startTLS(serverOptions, clientOptions)

    def startClient(self, connection: Any) -> None:
        """
        The client switches to TLS while the backend leg already is: layer
        TLS on the client leg alone, answered with the proxy's certificate.
        """
        connection.startTLS(self.server, None)


def layerTLS(protocol: Any, creator: Any, isClient: bool,
             wrapped: Any = None) -> Any:
    """
    Put TLS between C{protocol} and its transport, from now on: reads go
    through a L{txvaurien.tls.transport.HalfCloseTLS} to C{wrapped} (or
    C{protocol}), and C{protocol.transport} becomes that TLS transport.

    @param isClient: whether this side sends the hello (the backend leg).
    @return: the TLS transport; its handshake has begun.
    """
    from txvaurien.tls.transport import TLSFactory

    raw = protocol.transport
    factory = TLSFactory(creator, isClient, None)
    tls = factory.protocol(factory, wrapped if wrapped is not None else protocol, False)
    raw.protocol = tls
    protocol.transport = tls
    tls.makeConnection(raw)
    return tls


@implementer(IHandshakeListener)
class BackendGate(Protocol):
    """
    Stands between the backend's TLS transport and the proxy's backend
    protocol until the handshake is over and the backend's name checked,
    then steps aside; says how it ended to C{ended} (L{None}, or the
    reason it failed), once.
    """

    def __init__(self, protocol: Any, creator: Any, ended: Callable[[str | None], None]) -> None:
        self.protocol = protocol
        self.creator = creator
        self.ended: Callable[[str | None], None] | None = ended
        self.tls: Any = None
        self.timer: Any = None

    def _end(self, why: str | None) -> None:
        ended, self.ended = self.ended, None
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if ended is None:
            return
        from txvaurien.tls.metrics import METRICS

        if why is None:
            METRICS.handshake("client")
        else:
            METRICS.failure("client", why)
        ended(why)

    def handshakeCompleted(self) -> None:
        tls = self.tls
        try:
            why = self.creator.checkName(tls.getHandle())
        except Exception as e:
            # service-identity's own errors (a certificate without any
            # subjectAltName) are verification failures too.
            why = "certificate verify failed: {}".format(e)
        if why is not None:
            self._end(why)
            tls.abortConnection()
            return
        tls.wrappedProtocol = self.protocol
        self._end(None)

    def timedOut(self, timeout: float) -> None:
        """
        The handshake took too long: give up on it.
        """
        self.timer = None
        self._end("TLS handshake with the backend timed out after {}s".format(timeout))
        self.tls.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        if self.ended is not None:
            self._end(self.creator.failureReason(self.tls, reason))
        self.protocol.connectionLost(reason)


__all__ = ["BACKEND_OPTIONS", "OPTIONS", "BackendGate", "InbandTLS", "layerTLS"]
