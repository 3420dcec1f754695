"""
Integration tests of the C{mysql} protocol handler: a real MariaDB server
started for these tests (in a temporary directory, on an ephemeral port of
127.0.0.1), the real proxy (L{listenProxy}) and real clients: PyMySQL,
MySQL Connector/Python (server-side prepared statements) and the
C{mariadb} command-line client (MariaDB Connector/C, which negotiates
C{CLIENT_DEPRECATE_EOF}), blocking, in worker threads or subprocesses so
the reactor keeps serving.

The server is shared by the tests of this module, started by the first
test that needs it and stopped when the test process exits (see
L{txvaurien.test.servers.sharedServer}).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Generator, Sequence

from twisted.internet import defer, reactor, threads

from txvaurien.protocols.mysql import CLIENT_DEPRECATE_EOF
from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import (
    Events,
    RealServerTestCase,
    SeededQueryTests,
    numberedQueries,
    readAll,
    recordMessages,
    whenFinished,
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

USER = "tester"
PASSWORD = "s3cret"
ED_USER = "edtester"
ED_PASSWORD = "edsecret"

INIT = """\
INSTALL SONAME 'auth_ed25519';
CREATE USER '{user}'@'%' IDENTIFIED BY '{password}';
GRANT ALL ON *.* TO '{user}'@'%';
CREATE USER '{eduser}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{edpassword}');
GRANT ALL ON *.* TO '{eduser}'@'%';
CREATE DATABASE txvaurien;
CREATE DATABASE other;
CREATE DEFINER='tester'@'%' PROCEDURE txvaurien.two_results() BEGIN SELECT 1; SELECT seq, 'b' FROM txvaurien.seq_1_to_5; END;
""".format(user=USER, password=PASSWORD, eduser=ED_USER, edpassword=ED_PASSWORD)


class MariaDBServer(ExternalServer):
    """
    A MariaDB server: user L{USER} (C{mysql_native_password}), user
    L{ED_USER} (C{ed25519}, so clients go through an authentication
    switch), databases C{txvaurien} and C{other}.
    """


@defer.inlineCallbacks
def startMariaDB(ssl: bool = False, certificate: tuple[str, str] | None = None,
                 extra: Sequence[str] = ()) -> Generator[Any, Any, Any]:
    """
    Create a data directory in a temporary directory and start MariaDB on
    an ephemeral port of 127.0.0.1.

    @param ssl: whether the server offers SSL (a self-signed certificate).
    @param certificate: the files of the certificate and key to serve
        instead, with C{ssl}.
    @param extra: more command-line options of the server.
    @return: a L{defer.Deferred} firing with the running L{MariaDBServer}.
    """
    installDB = requireBinary("mariadb-install-db", "mariadb-server")
    mariadbd = requireBinary("mariadbd", "mariadb-server")
    directory = tempfile.mkdtemp(prefix="txvaurien-mariadb-")
    data = os.path.join(directory, "data")
    # Its own temporary directory: servers set up at the same time (trial
    # -j) otherwise collide on the temporary tables of /tmp.
    tmp = os.path.join(directory, "tmp")
    os.mkdir(tmp)
    common = ["--tmpdir=" + tmp] + (["--user=root"] if os.getuid() == 0 else [])
    yield run([installDB, "--no-defaults", "--datadir=" + data,
               "--auth-root-authentication-method=normal", "--skip-test-db"] + common,
              path=directory)
    init = os.path.join(directory, "init.sql")
    with open(init, "w") as f:
        f.write(INIT)
    port = freePort()
    argv = [mariadbd, "--no-defaults", "--datadir=" + data, "--port=" + str(port),
            "--bind-address=127.0.0.1", "--socket=" + os.path.join(directory, "sock"),
            "--pid-file=" + os.path.join(directory, "pid"), "--init-file=" + init,
            "--skip-name-resolve", "--local-infile=1", "--max-connections=50",
            "--innodb-buffer-pool-size=16M", "--skip-log-bin"] + common
    if ssl:
        cert, key = certificate or selfSignedCertificate(directory)
        argv += ["--ssl-cert=" + cert, "--ssl-key=" + key]
    argv += list(extra)
    server = MariaDBServer(argv, directory, port)
    yield server.start()
    return server


class MySQLTestCase(RealServerTestCase):
    """
    Tests that talk to the MariaDB server (without SSL) shared by this
    module's tests, through a proxy.
    """

    protocol = "mysql"

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        self.pymysql = requireModule("pymysql", "PyMySQL")
        self.server = yield sharedServer("mariadb", startMariaDB)

    def connect(self, port: int, **kwargs: Any) -> Any:
        """
        A blocking PyMySQL connection to 127.0.0.1:C{port} (call it in a
        thread).
        """
        options = dict(host="127.0.0.1", port=port, user=USER, password=PASSWORD,
                       database="txvaurien", connect_timeout=10, read_timeout=30)
        options.update(kwargs)
        return self.pymysql.connect(**options)

    def failures(self, behavior: str, seed: int, codes: set[int],
                 count: int = 100) -> defer.Deferred:
        """
        Run C{count} queries on one connection through a proxy with
        C{behavior} under request scope and seed C{seed}; every query that
        does not fail must return its own data.

        @param codes: the error codes of the failures are added to it.
        @return: a L{defer.Deferred} firing with the indexes of the queries
            that failed.
        """
        proxy = self.proxy("100:dummy", seed=seed)
        pymysql = self.pymysql

        def work() -> Any:
            connection = self.connect(proxy.port)
            # PyMySQL's own commands at connection time pass (a dummy-only
            # table draws no random numbers); the queries meet C{behavior}.
            threads.blockingCallFromThread(
                reactor, self.setTable, proxy, behavior)
            with connection:
                cursor = connection.cursor()

                def query(i: int) -> Any:
                    cursor.execute("SELECT %s, CONCAT('v', %s)", (i, i))
                    return cursor.fetchone()

                return numberedQueries(query, pymysql.MySQLError, lambda e: e.args[0], count)

        return self.failedQueries(work, codes)


# Capability flags the raw client may ask for.
PROTOCOL_41 = 0x200
SECURE_CONNECTION = 0x8000
PLUGIN_AUTH = 1 << 19
CONNECT_WITH_DB = 8
TRANSACTIONS = 0x2000
MULTI_STATEMENTS = 1 << 16
MULTI_RESULTS = 1 << 17
PS_MULTI_RESULTS = 1 << 18
CACHE_METADATA = 1 << 4  # MariaDB's extended flag 36, shifted by 32.
BASIC = (PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | CONNECT_WITH_DB | TRANSACTIONS
         | MULTI_STATEMENTS | MULTI_RESULTS | PS_MULTI_RESULTS)


def command(code: int, argument: bytes = b"") -> bytes:
    """
    A command packet (sequence id 0).
    """
    from txvaurien.protocols.mysql import packet
    return packet(0, bytes([code]) + argument)


PING = command(0x0E)
END = command(0x03, b"SELECT 'end'")


class RawMySQL:
    """
    A minimal blocking MySQL client for byte-level tests: it logs in with
    C{mysql_native_password} asking for exactly the capabilities it is
    given (MariaDB's extended ones too, which PyMySQL cannot ask for), then
    sends commands as given and reads raw bytes.
    """

    def __init__(self, port: int, capabilities: int, extended: int = 0) -> None:
        import hashlib
        import socket
        import struct
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        greeting = self.packet()
        end = greeting.index(b"\x00", 1)
        scramble = greeting[end + 5:end + 13]
        pos = end + 14 + 2 + 1 + 2 + 2 + 1 + 10
        scramble += greeting[pos:pos + 12]
        stage1 = hashlib.sha1(PASSWORD.encode()).digest()
        token = bytes(a ^ b for a, b in zip(
            stage1, hashlib.sha1(scramble + hashlib.sha1(stage1).digest()).digest()))
        if extended:
            capabilities &= ~1
        payload = (struct.pack("<IIB", capabilities, 1 << 24, 33) + b"\x00" * 19
                   + struct.pack("<I", extended) + USER.encode() + b"\x00"
                   + bytes([len(token)]) + token + b"txvaurien\x00"
                   + b"mysql_native_password\x00")
        from txvaurien.protocols.mysql import packet
        self.socket.sendall(packet(1, payload))
        ok = self.packet()
        assert ok[:1] == b"\x00", ok

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.socket.recv(size - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return data

    def packet(self) -> bytes:
        header = self.read(4)
        return self.read(int.from_bytes(header[:3], "little"))

    def exchange(self, *packets: bytes) -> bytes:
        """
        Send C{packets} at once, then C{COM_QUIT}, and read everything
        until the server closes the connection.
        """
        self.socket.sendall(b"".join(packets) + command(0x01))
        received = readAll(self.socket)
        self.socket.close()
        return received


class ResponseBoundaryTests(MySQLTestCase):
    """
    The framer ends each response exactly where the real server ends it,
    whatever the negotiated capabilities: a C{COM_PING} pipelined between
    other commands and answered by the proxy (C{swallow}) gets its ERR
    packet exactly where the server's OK would have been, and every other
    byte is the server's, unchanged.
    """

    @defer.inlineCallbacks
    def _check(self, capabilities: int, extended: int, commands: list[bytes],
               normalize: Callable[[bytes], bytes] = bytes) -> Any:
        """
        Send C{commands} at once, directly and through a proxy that answers
        every C{COM_PING} itself, and compare; the framers must have
        followed the whole conversation (a response they end too late or
        too early shows as a sequence id out of place at the next one:
        the last command should have a response).
        """
        from txvaurien.protocols.mysql import errPacket
        port = self.server.port

        def direct(commands: list[bytes]) -> bytes:
            return normalize(RawMySQL(port, capabilities, extended).exchange(*commands))

        answered = yield self.inThread(direct, commands)
        error = errPacket(1, 1105, "HY000", "swallowed")
        expected = b""
        done = 0
        for index, sent in enumerate(commands):
            if sent != PING:
                continue
            # The server's OK to this ping follows the answers to what
            # came before it.
            before = yield self.inThread(direct, commands[:index])
            self.assertEqual(answered[:len(before)], before)
            size = 4 + int.from_bytes(answered[len(before):len(before) + 3], "little")
            self.assertEqual(answered[len(before) + 3:len(before) + 5], b"\x01\x00")
            expected += answered[done:len(before)] + error
            done = len(before) + size
        expected += answered[done:]
        proxy = self.proxy("100:swallow", settings={"swallow": {"only": "COM_PING"}})
        finished = whenFinished(proxy)
        events = Events(self)
        received = yield self.inThread(
            lambda: normalize(RawMySQL(proxy.port, capabilities, extended).exchange(*commands)))
        self.assertEqual(received, expected)
        yield finished
        self.assertEqual([e for e in events if e.get("event") == "passthrough"], [])

    def test_textResults(self) -> Any:
        """
        Result sets with EOF packets (wrapping sequence ids past 255 rows),
        several results of one multi-statement query (one of them an OK
        packet saying more results follow), and an empty result.
        """
        query = command(0x03, b"SELECT seq, REPEAT('x', seq) FROM seq_1_to_300; DO 1; SELECT 'two'")
        empty = command(0x03, b"SELECT 1 FROM seq_1_to_3 WHERE seq > 5")
        return self._check(BASIC, 0, [query, PING, empty, PING, END])

    def test_textResultsDeprecateEOF(self) -> Any:
        """
        The same with C{CLIENT_DEPRECATE_EOF}: no EOF after the column
        definitions, an OK packet with header 0xfe after the rows.
        """
        query = command(0x03, b"SELECT seq, REPEAT('x', seq) FROM seq_1_to_300; DO 1; SELECT 'two'")
        empty = command(0x03, b"SELECT 1 FROM seq_1_to_3 WHERE seq > 5")
        return self._check(BASIC | CLIENT_DEPRECATE_EOF, 0,
                           [query, PING, empty, PING, END])

    @defer.inlineCallbacks
    def test_storedProcedure(self) -> Generator[Any, Any, Any]:
        """
        A stored procedure's results and its final OK, with and without
        C{CLIENT_DEPRECATE_EOF}.
        """
        call = command(0x03, b"CALL txvaurien.two_results()")
        yield self._check(BASIC, 0, [call, PING, call, PING, END])
        yield self._check(BASIC | CLIENT_DEPRECATE_EOF, 0, [call, PING, call, PING, END])

    @defer.inlineCallbacks
    def test_preparedStatements(self) -> Generator[Any, Any, Any]:
        """
        A prepared statement's definition packets and binary result sets,
        executed twice with MariaDB's metadata cache (the second result
        carries no column definitions), and C{COM_STMT_CLOSE}, which has
        no response.
        """
        import struct
        prepare = command(0x16, b"SELECT seq, CONCAT('r', seq), ? FROM seq_1_to_2")
        # MariaDB numbers statements server-wide; -1 means the last one
        # this connection prepared.
        last = struct.pack("<I", 0xFFFFFFFF)
        execute = command(0x17, last + struct.pack("<BI", 0, 1) + b"\x00\x01\x08\x00"
                          + struct.pack("<q", 7))
        close = command(0x19, last)

        def normalize(data: bytes) -> bytes:
            # The statement id in the answer to COM_STMT_PREPARE.
            return data[:5] + b"\x00" * 4 + data[9:]

        for capabilities, extended in ((BASIC, 0), (BASIC | CLIENT_DEPRECATE_EOF, 0),
                                       (BASIC | CLIENT_DEPRECATE_EOF, CACHE_METADATA)):
            yield self._check(
                capabilities, extended,
                [prepare, PING, execute, PING, execute, PING, close, PING, END], normalize)


class DummyTests(MySQLTestCase):
    """
    Real clients work normally through the C{mysql} handler, and the
    framing follows the conversation.
    """

    @defer.inlineCallbacks
    def test_pymysql(self) -> Generator[Any, Any, Any]:
        """
        PyMySQL: queries, a multi-row result, inserts, a multi-statement
        query and a stored procedure (several results), C{LOAD DATA LOCAL
        INFILE}, C{COM_INIT_DB} and C{COM_PING} all give the right
        answers; each command was framed as a request with its name and
        SQL verb, and the framing never gave up.
        """
        proxy = self.proxy()
        messages = recordMessages(proxy)
        pymysql = self.pymysql
        directory = self.mktemp()
        os.makedirs(directory)
        infile = os.path.join(directory, "rows.tsv")
        with open(infile, "w") as f:
            f.write("".join("{}\tline {}\n".format(i, i) for i in range(3000)))

        def work() -> Any:
            results: dict[str, Any] = {}
            connection = self.connect(
                proxy.port, local_infile=True,
                client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
            with connection:
                cursor = connection.cursor()
                cursor.execute("SELECT 1 + 1, 'two'")
                results["simple"] = cursor.fetchall()
                cursor.execute("SELECT seq, REPEAT('z', seq % 100) FROM seq_1_to_5000")
                results["rows"] = cursor.fetchall()
                cursor.execute("CREATE TEMPORARY TABLE t (a INT, b TEXT)")
                results["inserted"] = cursor.executemany(
                    "INSERT INTO t VALUES (%s, %s)", [(i, "v%d" % i) for i in range(50)])
                cursor.execute("SELECT COUNT(*) FROM t; SELECT SUM(a) FROM t")
                first = cursor.fetchall()
                cursor.nextset()
                results["multi"] = (first, cursor.fetchall())
                cursor.execute("CALL two_results()")
                procedure = [tuple(cursor.fetchall())]
                while cursor.nextset():
                    procedure.append(tuple(cursor.fetchall()))
                results["procedure"] = procedure
                cursor.execute("CREATE TEMPORARY TABLE loaded (a INT, b TEXT)")
                cursor.execute("LOAD DATA LOCAL INFILE %s INTO TABLE loaded", (infile,))
                cursor.execute("SELECT COUNT(*), SUM(a), MAX(b) FROM loaded")
                results["loaded"] = cursor.fetchall()
                connection.select_db("other")
                cursor.execute("SELECT DATABASE()")
                results["database"] = cursor.fetchall()
                connection.ping(reconnect=False)
                results["raw"] = self.liveSession(proxy).raw
            return results

        results = yield self.inThread(work)
        self.assertEqual(results["simple"], ((2, "two"),))
        self.assertEqual(results["rows"], tuple((i, "z" * (i % 100)) for i in range(1, 5001)))
        self.assertEqual(results["inserted"], 50)
        self.assertEqual(results["multi"], (((50,),), ((sum(range(50)),),)))
        self.assertEqual(results["procedure"],
                         [((1,),), tuple((i, "b") for i in range(1, 6)), ()])
        self.assertEqual(results["loaded"], ((3000, sum(range(3000)), "line 999"),))
        self.assertEqual(results["database"], (("other",),))
        self.assertFalse(results["raw"])
        requests = [(m.meta["command"], m.meta.get("verb")) for m in messages
                    if m.kind == "request"]
        self.assertIn(("COM_QUERY", "LOAD"), requests)
        self.assertIn(("COM_QUERY", "CALL"), requests)
        self.assertIn(("COM_INIT_DB", None), requests)
        self.assertIn(("COM_PING", None), requests)
        infileData = [m for m in messages if m.kind == "data" and m.meta["phase"] == "command"]
        self.assertTrue(infileData)

    @defer.inlineCallbacks
    def test_authenticationSwitch(self) -> Generator[Any, Any, Any]:
        """
        A user whose password is checked by ed25519: the server asks
        PyMySQL to switch authentication method, and the extra exchange
        passes untouched (all of it handshake data, none a request, so no
        request-scope behavior acts on it).
        """
        requireModule("nacl", "PyNaCl")
        proxy = self.proxy()
        messages = recordMessages(proxy)

        def work() -> Any:
            connection = self.connect(proxy.port, user=ED_USER, password=ED_PASSWORD)
            with connection:
                cursor = connection.cursor()
                cursor.execute("SELECT CURRENT_USER()")
                return cursor.fetchall()

        user = yield self.inThread(work)
        self.assertEqual(user, (("edtester@%",),))
        handshake = [(m.direction, m.kind) for m in messages
                     if m.meta.get("phase") in ("greeting", "handshake")]
        self.assertEqual(handshake, [
            ("downstream", "greeting"), ("upstream", "data"), ("downstream", "data"),
            ("upstream", "data"), ("downstream", "data")])

    @defer.inlineCallbacks
    def test_preparedStatements(self) -> Generator[Any, Any, Any]:
        """
        MySQL Connector/Python's server-side prepared statements
        (C{COM_STMT_PREPARE}, C{COM_STMT_EXECUTE} with binary results,
        C{COM_STMT_RESET}, C{COM_STMT_CLOSE}, which has no response) work,
        and executions are requests with the verb of their statement.
        """
        connector = requireModule("mysql.connector", "mysql-connector-python")
        proxy = self.proxy()
        messages = recordMessages(proxy)

        def work() -> Any:
            connection = connector.connect(
                host="127.0.0.1", port=proxy.port, user=USER, password=PASSWORD,
                database="txvaurien", use_pure=True, ssl_disabled=True)
            try:
                cursor = connection.cursor(prepared=True)
                rows = []
                for i in range(5):
                    cursor.execute("SELECT seq * ?, CONCAT('p', ?) FROM seq_1_to_3", (i, i))
                    rows.append(cursor.fetchall())
                cursor.close()
                plain = connection.cursor()
                plain.execute("SELECT 'after'")
                return rows, plain.fetchall()
            finally:
                connection.close()

        rows, after = yield self.inThread(work)
        self.assertEqual(rows, [[(j * i, "p%d" % i) for j in range(1, 4)] for i in range(5)])
        self.assertEqual(after, [("after",)])
        requests = [(m.meta["command"], m.meta.get("verb"), m.expectsResponse)
                    for m in messages if m.kind == "request"]
        self.assertIn(("COM_STMT_PREPARE", "SELECT", True), requests)
        self.assertEqual(requests.count(("COM_STMT_EXECUTE", "SELECT", True)), 5)
        self.assertIn(("COM_STMT_CLOSE", "SELECT", False), requests)

    @defer.inlineCallbacks
    def test_commandLineClient(self) -> Generator[Any, Any, Any]:
        """
        The C{mariadb} client (MariaDB Connector/C, which negotiates
        MariaDB's metadata cache and progress reports) runs several
        statements through the proxy.
        """
        mariadb = requireBinary("mariadb", "mariadb-client")
        proxy = self.proxy()
        output = yield run([
            mariadb, "-h127.0.0.1", "-P%d" % proxy.port, "-u" + USER, "-p" + PASSWORD,
            "--ssl=0", "-Dtxvaurien", "--batch", "-e",
            "SELECT 'a' AS x; SELECT seq FROM seq_1_to_4; CALL two_results(); DO 1"])
        self.assertEqual(output, "x\na\nseq\n1\n2\n3\n4\n1\n1\nseq\tb\n"
                         + "".join("{}\tb\n".format(i) for i in range(1, 6)))


class ErrorTests(SeededQueryTests, MySQLTestCase):
    """
    Errors a behavior injects reach PyMySQL as ERR packets it raises with
    the configured code, and the connection stays usable.
    """

    errorCode = 1105

    @defer.inlineCallbacks
    def _failThenRecover(self, behavior: str, settings: dict[str, Any]) -> Generator[Any, Any, Any]:
        proxy = self.proxy("100:dummy", protocolSettings=settings)
        pymysql = self.pymysql
        connection = yield self.inThread(self.connect, proxy.port)
        self.addCleanup(connection.close)
        cursor = connection.cursor()

        def begin() -> None:
            cursor.execute("CREATE TEMPORARY TABLE kept (a INT) ENGINE=InnoDB")
            connection.begin()
            cursor.execute("INSERT INTO kept VALUES (1)")

        def fail() -> Any:
            try:
                cursor.execute("SELECT 1")
            except pymysql.MySQLError as e:
                return type(e), e.args
            return None

        def finish() -> Any:
            connection.ping(reconnect=False)
            cursor.execute("INSERT INTO kept VALUES (2)")
            connection.commit()
            cursor.execute("SELECT GROUP_CONCAT(a ORDER BY a) FROM kept")
            return cursor.fetchall()

        yield self.inThread(begin)
        self.setTable(proxy, behavior)
        failure = yield self.inThread(fail)
        again = yield self.inThread(fail)
        self.setTable(proxy, "100:dummy")
        kept = yield self.inThread(finish)
        self.assertEqual(again, failure)
        self.assertEqual(kept, (("1,2",),))
        return failure

    @defer.inlineCallbacks
    def test_errorBehaviorDefaultCode(self) -> Generator[Any, Any, Any]:
        """
        With C{error}, a query raises PyMySQL's C{OperationalError} with
        code 1105 and the behavior's message; the transaction open on the
        connection goes on and commits afterwards.
        """
        errorClass, args = yield self._failThenRecover("100:error", {})
        self.assertIs(errorClass, self.pymysql.err.OperationalError)
        self.assertEqual(args[0], 1105)
        self.assertIn("injected", args[1])

    @defer.inlineCallbacks
    def test_errorBehaviorConfiguredCode(self) -> Generator[Any, Any, Any]:
        """
        The code and SQLSTATE are protocol options: 1064 makes PyMySQL
        raise its C{ProgrammingError}.
        """
        errorClass, args = yield self._failThenRecover(
            "100:error", {"error_code": 1064, "error_sqlstate": "42000"})
        self.assertIs(errorClass, self.pymysql.err.ProgrammingError)
        self.assertEqual(args[0], 1064)

    @defer.inlineCallbacks
    def test_swallowBehavior(self) -> Generator[Any, Any, Any]:
        """
        The same with the test-only C{swallow}.
        """
        errorClass, args = yield self._failThenRecover("100:swallow", {"error_code": 1213})
        self.assertIs(errorClass, self.pymysql.err.OperationalError)
        self.assertEqual(args, (1213, "swallowed"))


class EncryptionTests(MySQLTestCase):
    """
    A connection that switches to TLS is passed through unframed.
    """

    @defer.inlineCallbacks
    def test_sslRequestIsPassedThrough(self) -> Generator[Any, Any, Any]:
        """
        With a server that offers SSL, PyMySQL's SSL request switches the
        connection to passthrough: queries work even under C{100:error},
        which only fails requests, and nothing after the SSL request is
        framed.
        """
        server = yield startMariaDB(ssl=True)
        self.addCleanup(server.stop)
        proxy = listenProxy(self, server.port, "100:error", protocol="mysql")
        messages = recordMessages(proxy)

        def work() -> Any:
            connection = self.connect(proxy.port, ssl={"check_hostname": False},
                                      ssl_verify_cert=False)
            with connection:
                cursor = connection.cursor()
                cursor.execute("SELECT 6 * 7")
                value = cursor.fetchall()
                cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
                return value, cursor.fetchall()

        value, version = yield self.inThread(work)
        self.assertEqual(value, ((42,),))
        self.assertTrue(version[0][1].startswith("TLS"), version)
        self.assertEqual([(m.kind, m.meta.get("ssl")) for m in messages[:2]],
                         [("greeting", None), ("data", True)])
        self.assertTrue(all(m.meta.get("unframed") for m in messages[2:]))


class RobustnessTests(MySQLTestCase):
    """
    An unreachable backend, a backend dying mid-response and a client
    leaving mid-request.
    """

    def setUp(self) -> Any:
        self.events = Events(self)
        return MySQLTestCase.setUp(self)

    @defer.inlineCallbacks
    def test_connectFailed(self) -> Generator[Any, Any, Any]:
        """
        When the backend cannot be reached, PyMySQL gets an ERR packet in
        place of the greeting and raises C{OperationalError} 2003, as when
        it cannot connect itself.
        """
        proxy = listenProxy(self, freePort(), protocol="mysql")
        pymysql = self.pymysql

        def work() -> Any:
            try:
                self.connect(proxy.port).close()
            except pymysql.err.OperationalError as e:
                return e.args
            return None

        args = yield self.inThread(work)
        self.assertEqual(args[0], 2003)
        self.assertIn("Can't connect to MySQL server", args[1])
        self.assertIn("refused", args[1])

    @defer.inlineCallbacks
    def test_backendDiesMidResponse(self) -> Generator[Any, Any, Any]:
        """
        The server's connection is killed while PyMySQL streams a large
        result: PyMySQL raises an error, the proxy forgets the connection
        and logs its end once, without an error.
        """
        proxy = self.proxy()
        pymysql = self.pymysql

        def work() -> Any:
            connection = self.connect(proxy.port, cursorclass=pymysql.cursors.SSCursor)
            cursor = connection.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            [(ident,)] = cursor.fetchall()
            cursor.execute("SELECT seq, REPEAT('x', 500) FROM seq_1_to_200000")
            cursor.fetchmany(10)
            killer = self.connect(self.server.port)
            with killer:
                killer.cursor().execute("KILL %s" % ident)
            try:
                cursor.fetchall()
            except pymysql.MySQLError as e:
                # The result would try to read the rest when collected.
                cursor._result.unbuffered_active = False
                return type(e)
            finally:
                connection.close()
            return None

        errorClass = yield self.inThread(work)
        self.assertTrue(errorClass is not None and issubclass(errorClass, pymysql.MySQLError))
        yield self.events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_clientLeavesMidRequest(self) -> Generator[Any, Any, Any]:
        """
        A client that sends the start of a query and disconnects: the
        backend connection is closed, the connection forgotten and its end
        logged once, without an error.
        """
        proxy = self.proxy()

        def work() -> None:
            connection = self.connect(proxy.port)
            query = command(0x03, b"SELECT '" + b"q" * 5000 + b"'")
            connection._sock.sendall(query[:100])
            connection._sock.close()

        yield self.inThread(work)
        yield self.events.assertForgotten(proxy)
