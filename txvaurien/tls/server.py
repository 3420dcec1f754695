# -*- test-case-name: txvaurien.test.test_tls_server -*-
"""
The proxy's TLS listener: C{--proxy ssl:PORT:...}.

L{ServerTLS} makes the OpenSSL connection of each client.  It answers
ALPN itself (with what the protocol handler speaks, or nothing: a
handshake never fails over ALPN), serves the user's certificate or one
minted for the server name the client asked for (SNI), can require client
certificates, counts handshakes, and lets the TLS fault behaviors choose
what a given connection is shown (L{setFault}).

L{TLSServerParser} is the endpoint parser behind it (prefix
C{txvaurien-tls}); L{txvaurien.endpoints.listenDescription} turns
C{ssl:} strings into it.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Callable, Sequence

from OpenSSL import SSL, crypto
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

from txvaurien import logs, options
from txvaurien.tls import certs
from txvaurien.tls.metrics import ALERTS, METRICS
from txvaurien.tls.transport import TLSFactory

_log = logs.logger("txvaurien.tls")

#: What each protocol handler speaks over ALPN (a handler may also
#: declare an C{alpn} attribute of its own).
HANDLER_ALPN: dict[str, tuple[bytes, ...]] = {
    "http": (b"http/1.1",),
    "postgresql": (b"postgresql",),
}

#: Options of a TLS listener, given as keywords of its endpoint string
#: (C{ssl:8443:privateKey=key.pem:certKey=cert.pem}).
SERVER_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "privateKey": ("PEM file of the server's private key (and its certificate, "
                   "unless certKey is given)", str, None),
    "certKey": ("PEM file of the server's certificate, then its chain", str, None),
    "extraCertChain": ("PEM file of intermediate certificates to send", str, None),
    "interface": ("Address to listen on (default: all)", str, None),
    "backlog": ("Listen queue length", options.Number(int, 1), 50),
    "caCert": ("PEM file of a CA that signs a certificate for each server "
               "name clients ask for (with caKey)", str, None),
    "caKey": ("PEM file of caCert's private key (default: in caCert's file)", str, None),
    "caDir": ("Directory of the minting CA (ca.pem, ca.key), generated there "
              "on first use", str, None),
    "serverName": ("Name of the minted certificate for clients that send no "
                   "server name (SNI)", str, "localhost"),
    "cacheSize": ("How many minted certificates to keep (least recently used "
                  "go first)", options.Number(int, 1), 1000),
    "clientCA": ("PEM file of the CAs client certificates must chain to; "
                 "clients without one are refused (mTLS)", str, None),
    "alpn": ("Protocols to answer over ALPN, comma-separated (default: what "
             "the protocol handler speaks)", list[str], None),
}

# tlsProtocol -> fault / callbacks waiting for the client's server name.
_faults: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_nameWaiters: "weakref.WeakKeyDictionary[Any, list[Callable[[str | None], None]]]" = (
    weakref.WeakKeyDictionary())
_names: "weakref.WeakKeyDictionary[Any, str | None]" = weakref.WeakKeyDictionary()


def setFault(tlsProtocol: Any, fault: Any) -> None:
    """
    Make the handshake of one connection go wrong: when the client's
    hello arrives, C{fault.contextFor(server, name)} gives the context
    (certificate, versions) it is shown instead.
    """
    _faults[tlsProtocol] = fault


def whenServerName(tlsProtocol: Any, callback: Callable[[str | None], None]) -> None:
    """
    Call C{callback} with the server name the client asks for (L{None}
    without SNI) once its hello has arrived (at once if it has).
    """
    if tlsProtocol in _names:
        callback(_names[tlsProtocol])
    else:
        _nameWaiters.setdefault(tlsProtocol, []).append(callback)


def serverName(tlsProtocol: Any) -> str | None:
    """
    The server name a client asked for, if its hello has arrived.
    """
    return _names.get(tlsProtocol)


def refuse(tlsProtocol: Any, alert: str) -> None:
    """
    End a client's handshake with the fatal TLS alert named C{alert}
    (C{"unrecognized_name"}, C{"handshake_failure"}...; see
    L{txvaurien.tls.metrics.ALERTS}), written on the socket beneath TLS,
    then close the connection.
    """
    from txvaurien.tls.metrics import ALERT_NUMBERS

    raw = tlsProtocol.transport
    METRICS.failure("server", "proxy sent " + alert)
    # An alert record: content type 21, TLS 1.2 record version, length 2,
    # level fatal (2), description.
    raw.write(b"\x15\x03\x03\x00\x02\x02" + bytes([ALERT_NUMBERS[alert]]))
    tlsProtocol._aborted = True
    raw.loseConnection()


def _alpnFor(tlsProtocol: Any) -> Sequence[bytes]:
    factory = getattr(getattr(tlsProtocol, "factory", None), "wrappedFactory", None)
    handler = getattr(factory, "handler", None)
    declared = getattr(handler, "alpn", None)
    if declared is not None:
        return tuple(declared)
    return HANDLER_ALPN.get(getattr(handler, "name", ""), ())


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    Makes the server side of each client's TLS connection.

    @ivar ca: the L{certs.CertificateAuthority} that mints certificates
        per server name, or L{None} to serve only the given certificate.
    @ivar alpn: protocols to answer over ALPN, or L{None} for the
        protocol handler's.
    @ivar chain: the certificate chain given (leaf first), or empty.
    @ivar key: its private key.
    """

    def __init__(
        self,
        chain: Sequence[Any] | None = None,
        key: Any = None,
        ca: certs.CertificateAuthority | None = None,
        clientCA: Sequence[Any] = (),
        alpn: Sequence[bytes] | None = None,
        cacheSize: int = 1000,
        defaultName: str = "localhost",
    ) -> None:
        if not chain and ca is None:
            raise certs.TLSConfigError("a TLS listener needs a certificate or a CA")
        self.ca = ca
        self.alpn = None if alpn is None else tuple(alpn)
        self.cacheSize = cacheSize
        self.defaultName = defaultName
        self._clientCA = list(clientCA)
        self._minted: OrderedDict[str, SSL.Context] = OrderedDict()
        self.chain = list(chain or ())
        self.key = key
        if chain:
            self._front = self.context(chain, key)
        else:
            self._front = self.context()

    @classmethod
    def fromSettings(cls, settings: dict[str, Any]) -> "ServerTLS":
        """
        A L{ServerTLS} from checked L{SERVER_OPTIONS}.

        @raise certs.TLSConfigError: if a file is missing, unreadable,
            not PEM, mismatched or expired.
        """
        chain = key = ca = None
        if settings.get("privateKey") or settings.get("certKey"):
            keyPath = settings.get("privateKey") or settings["certKey"]
            chain, key = certs.loadKeyPair(settings.get("certKey") or keyPath, keyPath)
            certs.checkCurrent(chain[0], settings.get("certKey") or keyPath, "certificate")
            if settings.get("extraCertChain"):
                chain = chain + certs.loadCertificates(
                    settings["extraCertChain"], "certificate chain")
        if settings.get("caCert"):
            ca = certs.CertificateAuthority.load(settings["caCert"], settings.get("caKey"))
        elif settings.get("caDir"):
            ca = certs.CertificateAuthority.inDirectory(settings["caDir"])
        if chain is None and ca is None:
            raise certs.TLSConfigError(
                "TLS listener: give privateKey (and certKey), or caCert/caDir to "
                "mint certificates")
        clientCA = []
        if settings.get("clientCA"):
            clientCA = certs.loadCertificates(settings["clientCA"], "client CA file")
        alpn = settings.get("alpn")
        return cls(
            chain, key, ca, clientCA,
            None if alpn is None else [p.encode("ascii") for p in alpn],
            settings.get("cacheSize") or 1000,
            settings.get("serverName") or "localhost",
        )

    def context(
        self,
        chain: Sequence[Any] = (),
        key: Any = None,
        minVersion: int | None = None,
        maxVersion: int | None = None,
        ciphers: bytes | None = None,
    ) -> SSL.Context:
        """
        A server context with this listener's callbacks (ALPN, server
        name, client certificates, counters), serving C{chain} and
        C{key} if given.
        """
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_options(SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_CIPHER_SERVER_PREFERENCE)
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        ctx.set_session_id(b"txvaurien")
        if ciphers is not None:
            ctx.set_cipher_list(ciphers)
        if minVersion is not None:
            ctx.set_min_proto_version(minVersion)
        if maxVersion is not None:
            ctx.set_max_proto_version(maxVersion)
        if chain:
            ctx.use_certificate(chain[0])
            for extra in chain[1:]:
                ctx.add_extra_chain_cert(extra)
            ctx.use_privatekey(key)
            ctx.check_privatekey()
        if self._clientCA:
            store = ctx.get_cert_store()
            assert store is not None
            for ca in self._clientCA:
                store.add_cert(crypto.X509.from_cryptography(ca))
                ctx.add_client_ca(ca)
            ctx.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                lambda conn, cert, errno, depth, ok: bool(ok),
            )
        ctx.set_alpn_select_callback(self._selectALPN)
        ctx.set_tlsext_servername_callback(self._serverNameReceived)
        ctx.set_info_callback(self._info)
        return ctx

    def mintedContext(self, name: str) -> SSL.Context:
        """
        The context serving a certificate minted for C{name} by L{ca},
        from the bounded cache.
        """
        ctx = self._minted.get(name)
        if ctx is not None:
            self._minted.move_to_end(name)
            return ctx
        assert self.ca is not None
        certificate = self.ca.mint([name])
        METRICS.minted += 1
        ctx = self.context([certificate, self.ca.certificate], self.ca.leafKey)
        self._minted[name] = ctx
        if len(self._minted) > self.cacheSize:
            self._minted.popitem(last=False)
        return ctx

    # IOpenSSLServerConnectionCreator

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self._front, None)

    # OpenSSL callbacks

    def _selectALPN(self, conn: SSL.Connection, offered: list[bytes]) -> Any:
        mine = self.alpn if self.alpn is not None else _alpnFor(conn.get_app_data())
        for protocol in mine:
            if protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS

    def _serverNameReceived(self, conn: SSL.Connection) -> None:
        try:
            self._chooseContext(conn)
        except Exception:
            _log.failure("TLS: choosing the certificate failed")
            raise

    def _chooseContext(self, conn: SSL.Connection) -> None:
        tlsProtocol = conn.get_app_data()
        raw = conn.get_servername()
        # Server names are ASCII (IDNA A-labels) on the wire.
        name = raw.decode("ascii", "replace").lower() if raw else None
        fault = _faults.get(tlsProtocol)
        if fault is not None:
            conn.set_context(fault.contextFor(self, name))
        elif self.ca is not None:
            try:
                conn.set_context(self.mintedContext(name or self.defaultName))
            except ValueError as e:
                # A name no certificate can carry: keep the front context.
                _log.warn("TLS: cannot mint a certificate for {name!r}: {why}",
                          name=name, why=str(e))
        _names[tlsProtocol] = name
        for callback in _nameWaiters.pop(tlsProtocol, ()):
            callback(name)

    def _info(self, conn: SSL.Connection, where: int, ret: int) -> None:
        if where & SSL.SSL_CB_HANDSHAKE_DONE:
            METRICS.handshake("server")
        elif where & SSL.SSL_CB_ALERT:
            level, description = ret >> 8, ret & 0xFF
            if level != 2:  # warnings, close_notify
                return
            side = "client" if where & SSL.SSL_CB_READ else "proxy"
            METRICS.failure("server", "{} sent {}".format(
                side, ALERTS.get(description, str(description))))


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """
    Listens on TCP and serves TLS made by a L{ServerTLS}, on half-closing
    transports (L{txvaurien.tls.transport.HalfCloseTLS}).

    @ivar creator: the L{ServerTLS}.
    """

    def __init__(self, reactor: Any, port: int, creator: ServerTLS, backlog: int = 50,
                 interface: str = "") -> None:
        self.creator = creator
        self._tcp = TCP4ServerEndpoint(reactor, port, backlog, interface)

    def listen(self, protocolFactory: Any) -> Deferred:
        return self._tcp.listen(TLSFactory(self.creator, False, protocolFactory))


@implementer(IPlugin, IStreamServerEndpointStringParser)
class TLSServerParser:
    """
    Parses C{txvaurien-tls:PORT:key=value...} (what C{ssl:} strings given
    to C{--proxy} become) into an SSL endpoint served by L{ServerTLS}.
    """

    prefix = "txvaurien-tls"

    def parseStreamServer(self, reactor: Any, *args: Any, **kwargs: Any) -> TLSServerEndpoint:
        if "sslmethod" in kwargs or "dhParameters" in kwargs:
            kwargs.pop("sslmethod", None)
            kwargs.pop("dhParameters", None)
        if args:
            port = args[0]
            if len(args) > 1:
                kwargs.setdefault("privateKey", args[1])
        else:
            port = kwargs.pop("port", None)
        if port is None or not str(port).isdigit():
            raise ValueError("TLS listener: missing or invalid port in {!r}".format(port))
        settings = options.validate(SERVER_OPTIONS, kwargs, where="ssl:")
        creator = ServerTLS.fromSettings(settings)
        return TLSServerEndpoint(
            reactor, int(port), creator,
            backlog=settings["backlog"], interface=settings["interface"] or "",
        )


__all__ = [
    "HANDLER_ALPN",
    "SERVER_OPTIONS",
    "ServerTLS",
    "TLSServerEndpoint",
    "TLSServerParser",
    "serverName",
    "refuse",
    "setFault",
    "whenServerName",
]
