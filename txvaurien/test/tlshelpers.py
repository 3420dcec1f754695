"""
Fixtures of the TLS tests: certificates made for the test (never
committed), an HTTPS backend, a proxy listening with TLS, and real
clients (Python's C{ssl}, curl) run off the reactor thread.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import tempfile
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, threads, utils
from twisted.internet.endpoints import serverFromString
from twisted.internet.ssl import CertificateOptions
from twisted.web import resource, server

from txvaurien.endpoints import listenDescription
from txvaurien.proxy import ProxyServerFactory
from txvaurien.randomness import RandomSource
from txvaurien.table import CONNECTION_SCOPE, buildTable
from txvaurien.test.helpers import testRegistry


def _key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _pemKey(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _certificate(subject: str, key: Any, issuer: tuple[x509.Certificate, Any] | None,
                 names: Sequence[str] = (), ca: bool = False,
                 days: tuple[int, int] = (-1, 30)) -> x509.Certificate:
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuerName = issuer[0].subject if issuer else name
    signer = issuer[1] if issuer else key
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuerName)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(signer, hashes.SHA256())


class TestCertificates:
    """
    A CA, a server certificate for C{localhost} and C{127.0.0.1} signed by
    it, and a client certificate signed by a second CA, written in a
    temporary directory.

    @ivar caFile: the CA's certificate.
    @ivar caKeyFile: the CA's key.
    @ivar certFile: the server's certificate.
    @ivar keyFile: the server's key.
    @ivar clientCAFile: the CA of client certificates.
    @ivar clientCertFile: a client certificate (its key in C{clientKeyFile}).
    """

    def __init__(self, case: Any) -> None:
        self.directory = tempfile.mkdtemp(prefix="txvaurien-tls-")
        case.addCleanup(self._remove)
        d = self.directory
        caKey = _key()
        self.ca = _certificate("Test CA", caKey, None, ca=True, days=(-1, 365))
        self.caFile = _write(os.path.join(d, "ca.pem"), self.ca.public_bytes(
            serialization.Encoding.PEM))
        self.caKeyFile = _write(os.path.join(d, "ca.key"), _pemKey(caKey))
        key = _key()
        cert = _certificate("localhost", key, (self.ca, caKey), ["localhost", "127.0.0.1"])
        self.certFile = _write(os.path.join(d, "server.pem"),
                               cert.public_bytes(serialization.Encoding.PEM))
        self.keyFile = _write(os.path.join(d, "server.key"), _pemKey(key))
        clientCAKey = _key()
        clientCA = _certificate("Client CA", clientCAKey, None, ca=True, days=(-1, 365))
        self.clientCAFile = _write(os.path.join(d, "client-ca.pem"), clientCA.public_bytes(
            serialization.Encoding.PEM))
        clientKey = _key()
        clientCert = _certificate("client", clientKey, (clientCA, clientCAKey))
        self.clientCertFile = _write(os.path.join(d, "client.pem"),
                                     clientCert.public_bytes(serialization.Encoding.PEM))
        self.clientKeyFile = _write(os.path.join(d, "client.key"), _pemKey(clientKey))
        self._caKey = caKey

    def write(self, name: str, data: bytes) -> str:
        """
        Write C{data} into the directory as C{name}; return its path.
        """
        return _write(os.path.join(self.directory, name), data)

    def expiredCA(self) -> tuple[str, str]:
        """
        Files of a CA that expired yesterday: C{(certificate, key)}.
        """
        key = _key()
        cert = _certificate("Old CA", key, None, ca=True, days=(-30, -1))
        return (self.write("old-ca.pem", cert.public_bytes(serialization.Encoding.PEM)),
                self.write("old-ca.key", _pemKey(key)))

    def serverCertificate(self, names: Sequence[str], days: tuple[int, int] = (-1, 30),
                          prefix: str = "extra") -> tuple[str, str]:
        """
        Files of a server certificate for C{names} signed by the test CA:
        C{(certificate, key)}.
        """
        key = _key()
        cert = _certificate(names[0], key, (self.ca, self._caKey), names, days=days)
        return (self.write(prefix + ".pem", cert.public_bytes(serialization.Encoding.PEM)),
                self.write(prefix + ".key", _pemKey(key)))

    def otherKey(self) -> str:
        """
        A key file that matches no certificate here.
        """
        return self.write("other.key", _pemKey(_key()))

    def _remove(self) -> None:
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)


class _Kept:
    """
    Stands for a test case whose cleanups run when the test process
    exits: certificates that outlive any one test (those of a server the
    tests of a module share).
    """

    def addCleanup(self, f: Any, *args: Any) -> None:
        import atexit

        atexit.register(f, *args)


_shared: dict[str, TestCertificates] = {}


def sharedCertificates(name: str) -> TestCertificates:
    """
    The certificates called C{name}, made once per test process (for a
    server shared by several tests, see
    L{txvaurien.test.servers.sharedServer}).
    """
    if name not in _shared:
        _shared[name] = TestCertificates(_Kept())
    return _shared[name]


class BackendTLSProxies:
    """
    For test cases of C{tls_backend=always} against a shared server
    (C{self.server}, whose certificates are C{self.certs}): proxies of
    L{protocolName} in front of it.
    """

    protocolName: str
    certs: TestCertificates
    server: Any

    def proxy(self, behavior: str = "100:dummy", port: int | None = None,
              **settings: Any) -> Any:
        """
        A proxy with C{tls_backend=always}, verifying the server with the
        test CA, to C{port} (default: the shared server's), with more
        protocol C{settings}.
        """
        from txvaurien.test.helpers import listenProxy

        protocolSettings = {"tls_backend": "always", "tls_ca_file": self.certs.caFile}
        protocolSettings.update(settings)
        return listenProxy(self, port or self.server.port, behavior,
                           protocol=self.protocolName, protocolSettings=protocolSettings)


class _Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"hello over TLS from " + (request.getHeader(b"host") or b"?")


class Named(resource.Resource):
    """
    Answers every GET with C{I am NAME}.
    """

    isLeaf = True

    def __init__(self, name: str) -> None:
        resource.Resource.__init__(self)
        self.name = name

    def render_GET(self, request: Any) -> bytes:
        return "I am {}".format(self.name).encode()


def listenHTTPS(case: Any, certificates: TestCertificates, files: tuple[str, str] | None = None,
                clientCA: str | None = None) -> int:
    """
    An HTTPS server (Twisted's own TLS, not the proxy's) with the test
    server certificate (or C{files}: certificate and key) on an ephemeral
    port of 127.0.0.1, until the test ends.

    @param clientCA: if given, clients must present a certificate from it.
    @return: its port.
    """
    from twisted.internet import reactor
    from OpenSSL import crypto

    certFile, keyFile = files or (certificates.certFile, certificates.keyFile)
    with open(certFile, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(keyFile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    extra: dict[str, Any] = {}
    if clientCA:
        with open(clientCA, "rb") as f:
            extra["caCerts"] = [crypto.X509.from_cryptography(
                x509.load_pem_x509_certificate(f.read()))]
        extra["verify"] = True
        extra["requireCertificate"] = True
    options = CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),
        certificate=crypto.X509.from_cryptography(cert), **extra
    )
    port = reactor.listenSSL(0, server.Site(_Hello()), options, interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return int(port.getHost().port)


@defer.inlineCallbacks
def listenTLSProxy(case: Any, backend: Any, listen: str, protocol: str = "http",
                   behavior: str = "100:dummy",
                   settings: dict[str, dict[str, Any]] | None = None,
                   scope: str | None = None) -> Any:
    """
    A proxy on the real reactor listening on C{listen} (an endpoint string
    such as C{ssl:0:privateKey=...}; C{ssl:} goes through
    L{listenDescription} as C{--proxy} values do) and forwarding to
    C{backend} (an object of L{txvaurien.endpoints}), until the test ends.

    @return: a L{Deferred} firing with the L{ProxyServerFactory}, whose
        C{port} attribute is the port to connect to.
    """
    from twisted.internet import reactor

    registry = testRegistry()
    handler = registry.protocols.get(protocol).configure({})
    if scope is None:
        scope = "request" if handler.framesRequests else CONNECTION_SCOPE
    table = buildTable(behavior, registry, settings, scope)
    factory = ProxyServerFactory(backend, handler, table, reactor, RandomSource(1))
    endpoint = serverFromString(reactor, listenDescription(listen))
    port = yield endpoint.listen(factory)
    factory.port = port.getHost().port
    case.addCleanup(port.stopListening)
    case.addCleanup(lambda: factory.drain(0))
    return factory


def pythonClient(port: int, cafile: str | None, alpn: Sequence[str] = (),
                 serverName: str | None = "localhost", request: bytes | None = None,
                 certfile: str | None = None, keyfile: str | None = None,
                 timeout: float = 10.0) -> tuple[str | None, bytes]:
    """
    Connect with Python's C{ssl} (verifying against C{cafile}), offering
    C{alpn}; send C{request} and read to the end.  Blocking: run it in a
    thread.

    @return: C{(negotiated ALPN protocol, bytes read)}.
    @raise ssl.SSLError: if the handshake fails.
    """
    context = ssl.create_default_context(cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=serverName) as s:
            chosen = s.selected_alpn_protocol()
            received = b""
            if request is not None:
                s.sendall(request)
                while True:
                    try:
                        data = s.recv(65536)
                    except ssl.SSLZeroReturnError:
                        break
                    if not data:
                        break
                    received += data
            return chosen, received


def inThread(f: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
    """
    Run a blocking client off the reactor thread.
    """
    return threads.deferToThread(f, *args, **kwargs)


def exchange(port: int, send: bytes = b"", timeout: float = 10.0) -> bytes:
    """
    Connect over plain TCP, send C{send}, read until the server closes.
    Blocking: run it in a thread.
    """
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if send:
            s.sendall(send)
        while True:
            data = s.recv(65536)
            if not data:
                return received
            received += data


def curl(*args: str) -> defer.Deferred:
    """
    Run curl with C{args}; fires with C{(stdout, stderr, exit code)}.
    """
    return utils.getProcessOutputAndValue("curl", ["-sS", "--max-time", "10", *args],
                                          env=dict(os.environ))


def get(host: str = "localhost") -> bytes:
    """
    An HTTP/1.1 GET of C{/} for C{host} that closes the connection.
    """
    return ("GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n".format(host)).encode()
