"""
Integration tests of the C{postgresql} protocol handler: a real PostgreSQL
server started for these tests (in a temporary directory, on an ephemeral
port of 127.0.0.1, as an unprivileged user since PostgreSQL refuses to
run as root), the real proxy (L{listenProxy}) and real clients: psycopg 3
(blocking, in a worker thread so the reactor keeps serving), pgbench, and
a small Twisted client where the test needs bytes psycopg would not send.

The server is shared by the tests of this module: it is started by the
first test that needs it and stopped when the test process exits (see
L{txvaurien.test.servers.sharedServer}).
"""

from __future__ import annotations

import os
import pwd
import tempfile
from typing import Any, Generator

from twisted.internet import defer, protocol, reactor, task, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from txvaurien.protocols.postgresql import message as pgMessage
from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import (
    Events,
    RealServerTestCase,
    SeededQueryTests,
    numberedQueries,
    recordMessages,
)
from txvaurien.test.servers import (
    ExternalServer,
    freePort,
    requireBinary,
    requireModule,
    run,
    selfSignedCertificate,
    sharedServer,
)

PASSWORD = "s3cret"


class PostgresServer(ExternalServer):
    """
    A PostgreSQL cluster: superuser C{postgres} with password L{PASSWORD}
    (SCRAM over TCP) and role C{trustee}, trusted without password, for
    hand-written clients.
    """


def _unprivileged() -> tuple[int, int]:
    """
    The uid and gid PostgreSQL runs as: C{postgres} (the Debian package's
    user) or C{nobody}.
    """
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise AssertionError("no unprivileged user (postgres, nobody) to run PostgreSQL as")


@defer.inlineCallbacks
def startPostgres(ssl: bool = False,
                  certificate: tuple[str, str] | None = None) -> Generator[Any, Any, Any]:
    """
    Create a cluster in a temporary directory and start PostgreSQL on an
    ephemeral port of 127.0.0.1.

    @param ssl: whether the server accepts SSL (a self-signed certificate).
    @param certificate: the files of the certificate and key to serve
        instead (copied into the cluster's directory), with C{ssl}.
    @return: a L{defer.Deferred} firing with the running L{PostgresServer}.
    """
    initdb = requireBinary("initdb", "postgresql")
    postgres = requireBinary("postgres", "postgresql")
    uid, gid = _unprivileged() if os.getuid() == 0 else (None, None)
    directory = tempfile.mkdtemp(prefix="txvaurien-pg-")
    data = os.path.join(directory, "data")
    passwordFile = os.path.join(directory, "password")
    with open(passwordFile, "w") as f:
        f.write(PASSWORD + "\n")
    if uid is not None and gid is not None:
        for path in (directory, passwordFile):
            os.chown(path, uid, gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    yield run([initdb, "-D", data, "-U", "postgres", "--pwfile", passwordFile,
               "-A", "scram-sha-256", "-N", "-E", "UTF8", "--locale=C"],
              uid=uid, gid=gid, env=env, path=directory)
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write("local all all trust\n"
                "host all trustee 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n")
    port = freePort()
    argv = [postgres, "-D", data, "-p", str(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=" + directory,
            "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=40",
            "-c", "shared_buffers=16MB", "-c", "logging_collector=off"]
    if ssl:
        cert, key = selfSignedCertificate(directory, uid)
        if certificate is not None:
            for source, target in zip(certificate, (cert, key)):
                with open(source, "rb") as given, open(target, "wb") as copy:
                    copy.write(given.read())
        argv += ["-c", "ssl=on", "-c", "ssl_cert_file=" + cert, "-c", "ssl_key_file=" + key]
    server = PostgresServer(argv, directory, port, uid, gid)
    yield server.start()
    psycopg = requireModule("psycopg", "psycopg[binary]")

    def createRole() -> bool:
        try:
            connection = psycopg.connect(host=directory, port=port, user="postgres",
                                         dbname="postgres", autocommit=True)
        except psycopg.OperationalError as e:
            # SQLSTATE 57P03, which libpq does not expose at connection.
            if "starting up" in str(e) or "not yet accepting" in str(e):
                return False
            raise
        with connection:
            connection.execute("CREATE ROLE trustee LOGIN SUPERUSER")
        return True

    # The port accepts connections while the cluster still starts up.
    delay = 0.01
    while not (yield threads.deferToThread(createRole)):
        if server.exited:
            raise AssertionError("PostgreSQL exited:\n" + server.output())
        yield task.deferLater(reactor, delay, lambda: None)
        delay = min(delay * 2, 0.2)
    return server


class PostgresTestCase(RealServerTestCase):
    """
    Tests that talk to the PostgreSQL server (without SSL) shared by this
    module's tests, through a proxy.
    """

    protocol = "postgresql"

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.psycopg = requireModule("psycopg", "psycopg[binary]")
        self.server = yield sharedServer("postgres", startPostgres)

    def connect(self, port: int, **kwargs: Any) -> Any:
        """
        A blocking psycopg connection to 127.0.0.1:C{port} (call it in a
        thread).
        """
        options = dict(host="127.0.0.1", port=port, user="postgres", password=PASSWORD,
                       dbname="postgres", connect_timeout=10)
        options.update(kwargs)
        return self.psycopg.connect(**options)

    def failures(self, behavior: str, seed: int, states: set[str],
                 count: int = 100) -> defer.Deferred:
        """
        Run C{count} queries on one connection through a proxy with
        C{behavior} under request scope and seed C{seed}; every query that
        does not fail must return its own data.

        @param states: the SQLSTATEs of the failures are added to it.
        @return: a L{defer.Deferred} firing with the indexes of the queries
            that failed.
        """
        proxy = self.proxy(behavior, seed=seed)
        psycopg = self.psycopg

        def work() -> Any:
            with self.connect(proxy.port, autocommit=True) as connection:

                def query(i: int) -> Any:
                    if i % 2:
                        return connection.execute("SELECT %s::int, 'v' || %s", [i, i]).fetchone()
                    return connection.execute("SELECT {0}, 'v{0}'".format(i)).fetchone()

                return numberedQueries(query, psycopg.Error, lambda e: e.sqlstate, count)

        return self.failedQueries(work, states)


class DummyTests(PostgresTestCase):
    """
    psycopg works normally through the C{postgresql} handler, and the
    framing follows the conversation.
    """

    @defer.inlineCallbacks
    def test_simpleAndExtendedQueries(self) -> Generator[Any, Any, Any]:
        """
        Simple queries, parameterised (extended) queries, a multi-row
        result and a server-side prepared statement all return the right
        data; the session framed each as a request and is still framing
        (the server answered psycopg's SSLRequest with C{N}).
        """
        proxy = self.proxy()

        def work() -> Any:
            with self.connect(proxy.port) as connection:
                results = {}
                results["simple"] = connection.execute("SELECT 1 + 1").fetchone()
                results["params"] = connection.execute(
                    "SELECT %s::int * 2, %s::text", [21, "x"]).fetchone()
                results["rows"] = connection.execute(
                    "SELECT g, repeat('y', g % 50) FROM generate_series(1, 5000) g").fetchall()
                cursor = connection.cursor()
                for i in range(3):
                    cursor.execute("SELECT %s::int + 100", [i], prepare=True)
                    results.setdefault("prepared", []).append(cursor.fetchone()[0])
                session = self.liveSession(proxy)
                results["raw"] = session.raw
                results["requests"] = session.upstream.count
                return results

        results = yield self.inThread(work)
        self.assertEqual(results["simple"], (2,))
        self.assertEqual(results["params"], (42, "x"))
        self.assertEqual(results["rows"], [(g, "y" * (g % 50)) for g in range(1, 5001)])
        self.assertEqual(results["prepared"], [100, 101, 102])
        self.assertFalse(results["raw"])
        self.assertGreater(results["requests"], 6)

    @defer.inlineCallbacks
    def test_pipelineMode(self) -> Generator[Any, Any, Any]:
        """
        psycopg's pipeline mode (extended queries sent back to back, with
        Flush and Sync) gets every result, in order, including when one
        query fails in the server and aborts the rest of its batch.
        """
        proxy = self.proxy()
        psycopg = self.psycopg

        def work() -> Any:
            with self.connect(proxy.port, autocommit=True) as connection:
                with connection.pipeline() as pipeline:
                    cursors = [connection.execute("SELECT %s::int * 3", [i]) for i in range(20)]
                    pipeline.sync()
                    values = [c.fetchone()[0] for c in cursors]
                    early = connection.execute("SELECT 'flushed'").fetchone()[0]
                failed = None
                try:
                    with connection.pipeline():
                        connection.execute("SELECT 1")
                        connection.execute("SELECT 1/0")
                        connection.execute("SELECT 2")
                except psycopg.Error as e:
                    failed = e.sqlstate
                after = connection.execute("SELECT 'after'").fetchone()[0]
                return values, early, failed, after

        values, early, failed, after = yield self.inThread(work)
        self.assertEqual(values, [i * 3 for i in range(20)])
        self.assertEqual(early, "flushed")
        self.assertEqual(failed, "22012")
        self.assertEqual(after, "after")

    @defer.inlineCallbacks
    def test_copyInAndOut(self) -> Generator[Any, Any, Any]:
        """
        COPY FROM STDIN and COPY TO STDOUT carry their data both ways, and
        the connection goes on afterwards.
        """
        proxy = self.proxy()

        def work() -> Any:
            with self.connect(proxy.port) as connection:
                connection.execute("CREATE TEMP TABLE copied (a int, b text)")
                with connection.cursor().copy("COPY copied FROM STDIN") as copy:
                    for i in range(2000):
                        copy.write_row((i, "row %d" % i))
                out = b""
                with connection.cursor().copy("COPY copied TO STDOUT") as copy:
                    for chunk in copy:
                        out += bytes(chunk)
                count = connection.execute("SELECT count(*), sum(a) FROM copied").fetchone()
                return out, count

        out, count = yield self.inThread(work)
        self.assertEqual(count, (2000, sum(range(2000))))
        self.assertEqual(out, b"".join(b"%d\trow %d\n" % (i, i) for i in range(2000)))

    @defer.inlineCallbacks
    def test_notificationsArePushes(self) -> Generator[Any, Any, Any]:
        """
        A NOTIFY from another connection reaches a listening client through
        the proxy, and the framer counted it as a push (no request was
        waiting for it).
        """
        proxy = self.proxy()
        messages = recordMessages(proxy)

        def work() -> Any:
            with self.connect(proxy.port, autocommit=True) as listener:
                listener.execute("LISTEN txvaurien")
                with self.connect(self.server.port, autocommit=True) as other:
                    other.execute("NOTIFY txvaurien, 'hello'")
                received = next(listener.notifies(timeout=10))
                return received.channel, received.payload

        channel, payload = yield self.inThread(work)
        self.assertEqual((channel, payload), ("txvaurien", "hello"))
        pushes = [m.meta["command"] for m in messages if m.kind == "push"]
        self.assertEqual(pushes, ["NotificationResponse"])



class ErrorTests(SeededQueryTests, PostgresTestCase):
    """
    Errors a behavior injects reach psycopg as ErrorResponses it raises
    with the configured SQLSTATE, and the connection stays usable.
    """

    errorCode = "XX000"

    @defer.inlineCallbacks
    def _failThenRecover(self, behavior: str) -> Generator[Any, Any, Any]:
        proxy = self.proxy("100:dummy", protocolSettings={"error_sqlstate": "40001"})
        psycopg = self.psycopg
        connection = yield self.inThread(self.connect, proxy.port)
        self.addCleanup(connection.close)

        def begin() -> Any:
            connection.execute("CREATE TEMP TABLE kept (a int)")
            connection.execute("INSERT INTO kept VALUES (1)")
            return connection.info.transaction_status

        def fail(query: str, params: Any) -> Any:
            try:
                connection.execute(query, params)
            except psycopg.Error as e:
                return type(e), e.sqlstate, str(e), connection.info.transaction_status
            return None

        def finish() -> Any:
            connection.execute("INSERT INTO kept VALUES (2)")
            connection.commit()
            return connection.execute("SELECT array_agg(a ORDER BY a) FROM kept").fetchone()[0]

        status = yield self.inThread(begin)
        self.assertEqual(status, psycopg.pq.TransactionStatus.INTRANS)
        self.setTable(proxy, behavior)
        simple = yield self.inThread(fail, "SELECT 1", None)
        extended = yield self.inThread(fail, "SELECT %s::int", [1])
        self.setTable(proxy, "100:dummy")
        kept = yield self.inThread(finish)
        for failure in (simple, extended):
            self.assertIsNotNone(failure)
            errorClass, sqlstate, text, status = failure
            self.assertTrue(issubclass(errorClass, psycopg.errors.SerializationFailure))
            self.assertEqual(sqlstate, "40001")
            self.assertEqual(status, psycopg.pq.TransactionStatus.INTRANS)
        self.assertEqual(kept, [1, 2])
        return simple[2]

    @defer.inlineCallbacks
    def test_errorBehavior(self) -> Generator[Any, Any, Any]:
        """
        With C{error}, a simple query and an extended-query batch each
        raise psycopg's error for the configured SQLSTATE; the transaction
        the client had open is still open (the server never saw the failed
        requests), and it commits once the behavior is gone.
        """
        text = yield self._failThenRecover("100:error")
        self.assertIn("injected", text)

    @defer.inlineCallbacks
    def test_swallowBehavior(self) -> Generator[Any, Any, Any]:
        """
        The same with the test-only C{swallow}, which answers with
        C{session.errorReply} too.
        """
        text = yield self._failThenRecover("100:swallow")
        self.assertIn("swallowed", text)


class EncryptionTests(PostgresTestCase):
    """
    A connection that switches to TLS is passed through; one whose
    SSLRequest is refused keeps being framed.
    """

    @defer.inlineCallbacks
    def test_sslAcceptedIsPassedThrough(self) -> Generator[Any, Any, Any]:
        """
        With a server that accepts SSL, psycopg (C{sslmode=require}) works
        through the proxy even under C{100:error}: after the server's
        C{S}, nothing is framed, so no request is failed.
        """
        server = yield startPostgres(ssl=True)
        self.addCleanup(server.stop)
        proxy = listenProxy(self, server.port, "100:error", protocol="postgresql")
        messages = recordMessages(proxy)

        def work() -> Any:
            with self.connect(proxy.port, sslmode="require") as connection:
                value = connection.execute("SELECT 6 * 7").fetchone()[0]
                return value, connection.pgconn.ssl_in_use

        value, encrypted = yield self.inThread(work)
        self.assertEqual((value, encrypted), (42, True))
        kinds = [(m.kind, m.meta.get("command")) for m in messages[:2]]
        self.assertEqual(kinds, [("data", "SSLRequest"), ("data", "SSLResponse")])
        self.assertEqual(messages[1].meta["accepted"], True)
        self.assertEqual({m.kind for m in messages[2:]}, {"data"})
        self.assertTrue(all(m.meta.get("unframed") for m in messages[2:]))

    @defer.inlineCallbacks
    def test_sslRefusedKeepsFraming(self) -> Generator[Any, Any, Any]:
        """
        When the server answers psycopg's SSLRequest with C{N}, the
        startup goes on in clear and requests are framed: C{100:error}
        fails the query.
        """
        proxy = self.proxy("100:error")
        messages = recordMessages(proxy)
        psycopg = self.psycopg

        def work() -> Any:
            with self.connect(proxy.port, sslmode="prefer") as connection:
                try:
                    connection.execute("SELECT 1")
                except psycopg.Error as e:
                    return e.sqlstate
            return None

        sqlstate = yield self.inThread(work)
        self.assertEqual(sqlstate, "XX000")
        self.assertEqual(messages[1].meta, {"command": "SSLResponse", "accepted": False})
        self.assertIn(("request", "Query"), [(m.kind, m.meta.get("command")) for m in messages])


class PgbenchTests(PostgresTestCase):
    """
    pgbench, a standard load tool, runs through the proxy without errors.
    """

    timeout = 180

    @defer.inlineCallbacks
    def _pgbench(self, port: int, *arguments: str) -> Generator[Any, Any, Any]:
        pgbench = requireBinary("pgbench", "postgresql")
        env = {"PGPASSWORD": PASSWORD, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        output = yield run(
            [pgbench, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            + list(arguments) + ["postgres"], env=env)
        return output

    @defer.inlineCallbacks
    def test_pgbench(self) -> Generator[Any, Any, Any]:
        """
        C{pgbench -i} and 200 transactions on each of two clients, with the
        simple and the extended (prepared) protocol, complete without a
        failed transaction.
        """
        proxy = self.proxy()
        yield self._pgbench(proxy.port, "-i", "-s", "1", "-q")
        for mode in ("simple", "prepared"):
            output = yield self._pgbench(proxy.port, "-c", "2", "-j", "1", "-t", "200",
                                         "-M", mode)
            self.assertIn("number of transactions actually processed: 400/400", output)
            self.assertIn("number of failed transactions: 0", output)


class RobustnessTests(PostgresTestCase):
    """
    A backend dying mid-response and a client leaving mid-request free
    the connection, which is logged once.
    """

    def setUp(self) -> Any:
        self.events = Events(self)
        return PostgresTestCase.setUp(self)

    @defer.inlineCallbacks
    def test_backendDiesMidResponse(self) -> Generator[Any, Any, Any]:
        """
        A backend that terminates itself while it streams a result: psycopg
        gets an error, and the proxy forgets the connection and logs its
        end once, without an error.
        """
        proxy = self.proxy()
        psycopg = self.psycopg

        def work() -> Any:
            connection = self.connect(proxy.port, autocommit=True)
            try:
                connection.execute(
                    "SELECT g, repeat('x', 200), CASE WHEN g = 20000 THEN "
                    "pg_terminate_backend(pg_backend_pid()) END "
                    "FROM generate_series(1, 40000) g").fetchall()
            except psycopg.Error as e:
                return type(e)
            finally:
                connection.close()
            return None

        errorClass = yield self.inThread(work)
        self.assertTrue(errorClass is not None and issubclass(errorClass, psycopg.Error))
        yield self.events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_clientLeavesMidRequest(self) -> Generator[Any, Any, Any]:
        """
        A client that sends the start of a Query and disconnects: the
        backend connection is closed, the connection forgotten and logged
        once, without an error.
        """
        proxy = self.proxy()
        client = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port), RawClient())
        client.transport.write(startupMessage(user="trustee", database="postgres"))
        yield client.waitFor(b"Z\x00\x00\x00\x05I")
        query = pgMessage(b"Q", b"SELECT 1" + b" " * 1000 + b"\x00")
        client.transport.write(query[:40])
        client.transport.loseConnection()
        yield self.events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_connectFailed(self) -> Generator[Any, Any, Any]:
        """
        When the backend cannot be reached, a client that does not ask for
        SSL gets a FATAL ErrorResponse it reports; libpq with
        C{sslmode=prefer} sent an SSLRequest first and reports an error
        during the SSL exchange instead (it does not show server messages
        received before SSL is settled).
        """
        proxy = listenProxy(self, freePort(), protocol="postgresql")
        psycopg = self.psycopg

        def work(mode: str) -> Any:
            try:
                self.connect(proxy.port, sslmode=mode).close()
            except psycopg.OperationalError as e:
                return str(e)
            return None

        clear = yield self.inThread(work, "disable")
        prefer = yield self.inThread(work, "prefer")
        self.assertIn("FATAL:  txvaurien: could not connect to the backend", clear)
        self.assertIn("connection refused", clear.lower())
        self.assertIn("error response during SSL exchange", prefer)


def startupMessage(**parameters: str) -> bytes:
    """
    A protocol 3.0 StartupMessage.
    """
    body = b"\x00\x03\x00\x00"
    for key, value in parameters.items():
        body += key.encode() + b"\x00" + value.encode() + b"\x00"
    body += b"\x00"
    return (len(body) + 4).to_bytes(4, "big") + body


class RawClient(protocol.Protocol):
    """
    A client that collects what it receives and can wait for some bytes.
    """

    def __init__(self) -> None:
        self.received = b""
        self.waiting: list[tuple[bytes, defer.Deferred]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        for expected, d in list(self.waiting):
            if expected in self.received:
                self.waiting.remove((expected, d))
                d.callback(self.received)

    def waitFor(self, expected: bytes) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if expected in self.received:
            d.callback(self.received)
        else:
            self.waiting.append((expected, d))
        return d
