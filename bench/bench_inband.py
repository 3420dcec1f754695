#!/usr/bin/env python
"""
MySQL's in-band TLS through txvaurien, in one run: what upgrading (the
proxy terminates the client's TLS, originates its own, and frames inside)
and a backend-only TLS leg (C{tls_backend=always}, the client in clear)
cost against passing the client's TLS through.

Starts MariaDB with TLS in a temporary directory, on an ephemeral port of
127.0.0.1, and three proxies in front of it, all with C{--protocol mysql}
and the C{dummy} behavior:

  - C{passthrough}: no certificate, so the client's TLS goes through
    unframed (the server's own certificate reaches the client); the same
    proxy with a client in clear (C{clear}) frames every command, without
    TLS anywhere;
  - C{upgrade}: C{tls_certificate} and C{tls_ca_file}: both legs TLS,
    commands framed;
  - C{backend}: C{tls_backend=always}: the client in clear, the backend
    leg TLS, commands framed.

PyMySQL (TLS verified, except against C{backend}) measures, for each
target and the server itself (C{direct}), the p50 of a connection's setup
(TCP, TLS, login) over C{--connections} connections, and the queries per
second of C{--queries} C{SELECT 1} on one connection, with the CPU time
the proxy spends per query; the targets are taken in turn over
C{--rounds} rounds and the medians kept.

Usage::

    python bench/bench_inband.py [--connections 100] [--queries 5000]
        [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import Children, binary, cpuSeconds, freePort, waitForPort
from bench_tls import writeCertificates

USER = "bench"
PASSWORD = "bench"


def startMariaDB(directory: str, files: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """
    A MariaDB with TLS (the bench certificate) and the user C{bench}.
    """
    installDB = binary("mariadb-install-db", "mariadb-server")
    mariadbd = binary("mariadbd", "mariadb-server")
    data = os.path.join(directory, "data")
    tmp = os.path.join(directory, "tmp")
    os.mkdir(tmp)
    common = ["--tmpdir=" + tmp] + (["--user=root"] if os.getuid() == 0 else [])
    subprocess.run([installDB, "--no-defaults", "--datadir=" + data, "--skip-test-db",
                    "--auth-root-authentication-method=normal"] + common,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    init = os.path.join(directory, "init.sql")
    with open(init, "w") as f:
        f.write("CREATE USER '{0}'@'%' IDENTIFIED BY '{1}';\n"
                "GRANT ALL ON *.* TO '{0}'@'%';\n".format(USER, PASSWORD))
    port = freePort()
    log = open(os.path.join(directory, "mariadb.log"), "wb")
    process = subprocess.Popen(
        [mariadbd, "--no-defaults", "--datadir=" + data, "--port=" + str(port),
         "--bind-address=127.0.0.1", "--socket=" + os.path.join(directory, "sock"),
         "--pid-file=" + os.path.join(directory, "pid"), "--init-file=" + init,
         "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
         "--ssl-cert=" + files["server.crt"], "--ssl-key=" + files["server.key"]] + common,
        stdout=log, stderr=subprocess.STDOUT)
    waitForPort(port, process)
    return process, port


def connect(port: int, caFile: str | None) -> Any:
    import pymysql

    options: dict[str, Any] = {"ssl_ca": caFile, "ssl_verify_identity": True} if caFile else {
        "ssl_disabled": True}
    for _ in range(100):
        try:
            return pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD,
                                   connect_timeout=10, **options)
        except pymysql.OperationalError:
            # The server may still be running its init file.
            time.sleep(0.1)
    raise RuntimeError("cannot log in on port {}".format(port))


def setupTimes(port: int, caFile: str | None, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection = connect(port, caFile)
        times.append(time.perf_counter() - started)
        connection.close()
    return times


def queries(port: int, caFile: str | None, count: int, pid: int | None) -> tuple[float, float]:
    """
    Run C{count} C{SELECT 1} on one connection.

    @return: queries per second, and the CPU time process C{pid} (the
        proxy) spent per query, in microseconds (0 without C{pid}).
    """
    connection = connect(port, caFile)
    try:
        cursor = connection.cursor()
        cpu = cpuSeconds(pid) if pid else 0.0
        started = time.perf_counter()
        for _ in range(count):
            cursor.execute("SELECT 1")
            cursor.fetchall()
        elapsed = time.perf_counter() - started
        used = cpuSeconds(pid) - cpu if pid else 0.0
        return count / elapsed, used / count * 1e6
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    children = Children("bench-inband-")
    try:
        files = writeCertificates(children.directory)
        server = children.add("direct", startMariaDB(children.directory, files))
        ca = files["ca.pem"]
        mysql = ["--protocol", "mysql", "--protocol-mysql-tls-ca-file", ca]
        passthrough = children.proxy("passthrough", server, ["--protocol", "mysql"])
        targets = {
            "direct": (server, ca),
            "clear": (passthrough, None),
            "passthrough": (passthrough, ca),
            "upgrade": (children.proxy("upgrade", server, mysql + [
                "--protocol-mysql-tls-certificate", files["server.crt"],
                "--protocol-mysql-tls-key", files["server.key"]]), ca),
            "backend": (children.proxy("backend", server, mysql + [
                "--protocol-mysql-tls-backend", "always"]), None),
        }
        setup: dict[str, list[float]] = {name: [] for name in targets}
        rate: dict[str, list[float]] = {name: [] for name in targets}
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        pids = {name: children.pids.get("passthrough" if name == "clear" else name)
                for name in targets if name != "direct"}
        for port, caFile in targets.values():
            setupTimes(port, caFile, 5)
        for _ in range(args.rounds):
            for name, (port, caFile) in targets.items():
                setup[name].append(statistics.median(
                    setupTimes(port, caFile, args.connections)))
                qps, perQuery = queries(port, caFile, args.queries, pids.get(name))
                rate[name].append(qps)
                cpu[name].append(perQuery)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    finally:
        children.close()

    results: dict[str, Any] = {"connections": args.connections, "queries": args.queries,
                               "rounds": args.rounds, "targets": {}}
    print("{:<12} {:>16} {:>12} {:>16} {:>16}".format(
        "target", "setup p50 (ms)", "queries/s", "vs passthrough", "proxy CPU/query"))
    base = statistics.median(rate["passthrough"])
    for name in targets:
        p50 = statistics.median(setup[name]) * 1000
        qps = statistics.median(rate[name])
        perQuery = statistics.median(cpu[name])
        results["targets"][name] = {"setupP50ms": p50, "queriesPerSecond": qps,
                                    "proxyCPUPerQueryUs": perQuery,
                                    "samples": {"setup": setup[name], "rate": rate[name],
                                                "cpu": cpu[name]}}
        print("{:<12} {:>16.2f} {:>12.0f} {:>15.2f}x {:>13.1f} us".format(
            name, p50, qps, qps / base, perQuery))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
