"""
Real servers for integration tests: find a binary, start it on an
ephemeral port or in a temporary directory, wait until it accepts
connections, stop it; run a command to its end; make a self-signed
certificate; listen with an in-process backend.

A missing binary skips the test on a developer's machine, but fails it
under CI (C{CI=true}), where C{.ci/run} installs every server: a skipped
real-server test in CI would hide that nothing was tested.
"""

from __future__ import annotations

import atexit
import ctypes
import datetime
import os
import shutil
import signal
import socket
import subprocess
from typing import Any, Callable, Generator, Sequence

from twisted.internet import defer, error, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import SkipTest, TestCase

#: Extra directories searched for server binaries (Debian puts some
#: outside PATH).
SEARCH = [
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
]


def inCI() -> bool:
    """
    Whether the tests run under CI, where every server must be present.
    """
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def requireBinary(name: str, package: str) -> str:
    """
    The path of binary C{name}.

    @param package: the Debian package that provides it, for the message.
    @raise SkipTest: if it is missing, outside CI.
    @raise AssertionError: if it is missing under CI.
    """
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SEARCH))
    if path is None:
        message = "{} not found (Debian package {})".format(name, package)
        if inCI():
            raise AssertionError("CI=true but " + message)
        raise SkipTest(message)
    return path


def requireModule(name: str, package: str) -> Any:
    """
    Import a client library, skipping (or failing under CI) if it is
    missing.
    """
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        message = "Python module {} not installed (PyPI package {})".format(name, package)
        if inCI():
            raise AssertionError("CI=true but " + message)
        raise SkipTest(message)


def freePort() -> int:
    """
    A TCP port of 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listenBackend(case: TestCase, factory: protocol.Factory) -> int:
    """
    Listen with C{factory} on an ephemeral port of 127.0.0.1 until the
    test ends.

    @return: the port number.
    """
    from twisted.internet import reactor

    port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return int(port.getHost().port)


class _Output(protocol.ProcessProtocol):
    """
    Collects a process's output (standard output and error) and notices
    when it exits.

    @ivar chunk: how much of each piece of output to keep (the end of
        it), or L{None} for all of it.
    """

    def __init__(self, chunk: int | None = 65536) -> None:
        self.chunk = chunk
        self.output = bytearray()
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data if self.chunk is None else data[-self.chunk:]

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value)


def waitForPort(
    reactor: Any, port: int, timeout: float = 30.0, host: str = "127.0.0.1",
    process: Any = None,
) -> defer.Deferred:
    """
    Fire once C{host:port} accepts a TCP connection; fail after
    C{timeout} seconds or if C{process} (a L{ServerProcess}) exits first.
    """

    @defer.inlineCallbacks
    def attempt() -> Generator[Any, Any, Any]:
        deadline = reactor.seconds() + timeout
        delay = 0.01
        while True:
            if process is not None and process.exited:
                raise AssertionError(
                    "server exited before listening:\n" + process.output())
            try:
                endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=2)
                connected = yield endpoint.connect(
                    protocol.Factory.forProtocol(protocol.Protocol))
            except (error.ConnectError, error.TimeoutError, error.ConnectionRefusedError):
                if reactor.seconds() > deadline:
                    raise AssertionError(
                        "nothing listens on {}:{} after {}s".format(host, port, timeout)
                        + ("\n" + process.output() if process is not None else ""))
                yield task.deferLater(reactor, delay, lambda: None)
                delay = min(delay * 2, 0.2)
                continue
            connected.transport.loseConnection()
            return None

    return attempt()


class ServerProcess:
    """
    A server run for the duration of a test.
    """

    def __init__(self, reactor: Any, argv: Sequence[str], env: dict[str, str] | None = None,
                 path: str | None = None, uid: int | None = None, gid: int | None = None):
        self.reactor = reactor
        self.argv = list(argv)
        self.env = env if env is not None else dict(os.environ)
        self.path = path
        self.uid = uid
        self.gid = gid
        self._protocol = _Output()
        self._transport: Any = None
        self.exited = False

    def start(self) -> None:
        self._transport = self.reactor.spawnProcess(
            self._protocol, self.argv[0], self.argv, env=self.env, path=self.path,
            uid=self.uid, gid=self.gid)
        self._protocol.ended.addBoth(self._ended)

    def _ended(self, result: Any) -> Any:
        self.exited = True
        return result

    def output(self) -> str:
        return self._protocol.output.decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> defer.Deferred:
        """
        Signal the server and wait for it to exit (SIGKILL after
        C{timeout} seconds).
        """
        if self.exited or self._transport is None:
            return defer.succeed(None)
        try:
            self._transport.signalProcess(sig)
        except error.ProcessExitedAlready:
            return defer.succeed(None)
        killer = self.reactor.callLater(timeout, self._kill)
        d: defer.Deferred = defer.Deferred()

        def done(_: Any) -> None:
            if killer.active():
                killer.cancel()
            d.callback(None)

        self._protocol.ended.addBoth(done)
        return d

    def _kill(self) -> None:
        try:
            self._transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass


class RunningServer:
    """
    A server started for one test by L{startServer}.

    @ivar port: its TCP port on 127.0.0.1.
    @ivar process: its L{ServerProcess}.
    """

    def __init__(self, port: int, process: ServerProcess) -> None:
        self.port = port
        self.process = process


@defer.inlineCallbacks
def startServer(case: TestCase, argv: Sequence[str], port: int,
                path: str | None = None) -> Generator[Any, Any, Any]:
    """
    Start a server for C{case} (stopped when it ends) and wait until it
    listens on C{port}.

    @return: a L{defer.Deferred} firing with the L{RunningServer}.
    """
    from twisted.internet import reactor

    process = ServerProcess(reactor, argv, path=path)
    process.start()
    case.addCleanup(process.stop)
    yield waitForPort(reactor, port, process=process)
    return RunningServer(port, process)


@defer.inlineCallbacks
def run(argv: list[str], uid: int | None = None, gid: int | None = None,
        env: dict[str, str] | None = None, path: str | None = None) -> Any:
    """
    Run a command to its end on the reactor.

    @return: a L{defer.Deferred} firing with its output (standard output
        and error), or failing with L{AssertionError} if it exits with a
        non-zero status.
    """
    from twisted.internet import reactor

    collect = _Output(chunk=None)
    reactor.spawnProcess(collect, argv[0], argv, env=env if env is not None else dict(os.environ),
                         path=path, uid=uid, gid=gid)
    ended = yield collect.ended
    output = collect.output.decode("utf-8", "replace")
    if ended.exitCode != 0:
        raise AssertionError("{} exited with {}:\n{}".format(argv, ended.exitCode, output))
    return output


def _dieWithParent(uid: int | None, gid: int | None) -> Callable[[], None]:
    """
    A C{preexec_fn}: drop to C{uid}/C{gid}, then ask the kernel to
    terminate the child when the test process dies (after the credential
    change, which would clear the request).
    """

    def preexec() -> None:
        os.setsid()
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


class ExternalServer:
    """
    A server process shared by several tests: started with L{subprocess}
    rather than the reactor (so trial's janitor, which kills every process
    the reactor spawned when a test ends, lets it live between tests),
    killed by the kernel if the test process dies, and stopped by L{stop}
    (registered with L{atexit}).

    @ivar port: its TCP port on 127.0.0.1.
    @ivar directory: a temporary directory removed when it stops.
    """

    def __init__(self, argv: list[str], directory: str, port: int, uid: int | None = None,
                 gid: int | None = None) -> None:
        self.argv = argv
        self.directory = directory
        self.port = port
        self.uid = uid
        self.gid = gid
        self.log = os.path.join(directory, "server.log")
        self.popen: subprocess.Popen | None = None

    def start(self) -> defer.Deferred:
        """
        Start the server.

        @return: a L{defer.Deferred} that fires once it accepts
            connections on L{port}.
        """
        from twisted.internet import reactor

        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.directory, preexec_fn=_dieWithParent(self.uid, self.gid))
        atexit.register(self.stop)
        return waitForPort(reactor, self.port, process=self)

    @property
    def exited(self) -> bool:
        return self.popen is None or self.popen.poll() is not None

    def output(self) -> str:
        try:
            with open(self.log, "rb") as log:
                return log.read()[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """
        Stop the server (SIGTERM, then SIGKILL after 15 seconds) and remove
        its directory.
        """
        popen = self.popen
        if popen is not None and popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: dict[str, ExternalServer] = {}


@defer.inlineCallbacks
def sharedServer(name: str, start: Callable[[], defer.Deferred]) -> Generator[Any, Any, Any]:
    """
    The L{ExternalServer} called C{name} shared by the tests of a module:
    started by C{start} for the first test that needs it (and again if it
    died), stopped when the test process exits.
    """
    server = _shared.get(name)
    if server is None or server.exited:
        server = yield start()
        _shared[name] = server
    return server


def selfSignedPEM(commonName: str) -> tuple[bytes, bytes]:
    """
    A new private key (elliptic curve P-256) and a certificate for
    C{commonName} signed with it, valid from yesterday for 30 days.

    @return: the key and the certificate, in PEM.
    """
    requireModule("cryptography", "cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256()))
    keyPEM = key.private_bytes(serialization.Encoding.PEM,
                               serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption())
    return keyPEM, certificate.public_bytes(serialization.Encoding.PEM)


def selfSignedCertificate(directory: str, uid: int | None = None,
                          commonName: str = "localhost") -> tuple[str, str]:
    """
    Write a self-signed certificate for C{commonName} and its key (mode
    0600, both owned by C{uid} if given) into C{directory}.

    @return: the paths of the certificate and the key.
    """
    key, certificate = selfSignedPEM(commonName)
    certPath = os.path.join(directory, "server.crt")
    keyPath = os.path.join(directory, "server.key")
    with open(certPath, "wb") as f:
        f.write(certificate)
    with open(keyPath, "wb") as f:
        f.write(key)
    os.chmod(keyPath, 0o600)
    if uid is not None:
        os.chown(certPath, uid, -1)
        os.chown(keyPath, uid, -1)
    return certPath, keyPath
