#!/usr/bin/env python
"""
TLS-to-TLS through txvaurien against haproxy doing the same job, in one
run, with the same certificates.

An nginx HTTPS backend serves a large file and a small one.  In front of
it, on loopback:

  - C{txvaurien}: C{twistd -n vaurien --proxy ssl:PORT:privateKey=...
    --backend tls:host=localhost:port=NGINX:caFile=ca.pem} (TLS
    terminated and originated, the backend verified);
  - C{haproxy}: C{bind ... ssl crt server.pem} and C{server ... ssl
    verify required ca-file ca.pem verifyhost localhost}, one thread
    (txvaurien uses one core);
  - C{direct}: nginx itself.

Throughput: curl downloads the large file through each target, the
targets taken in turn over several rounds; the median MB/s of each and the
ratio txvaurien / haproxy (the target is at least 0.5).

Handshake latency: a Python client makes many new connections to each
target (TCP connect, TLS handshake, a small GET, the answer); the p50 of
each and what each proxy adds to the direct p50.

Usage::

    python bench/bench_tls.py [--size 256M] [--rounds 3] [--connections 200]
        [--json out.json]

The certificates are made by the script (a CA and a server certificate for
C{localhost}) in a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import Children, binary, freePort, twistd, waitForPort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from txvaurien.tls import certs  # noqa: E402


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def writeCertificates(directory: str) -> dict[str, str]:
    """
    A CA and a server certificate for C{localhost} signed by it.
    """
    ca = certs.CertificateAuthority.generate("bench CA")
    leaf = ca.mint(["localhost", "127.0.0.1"])
    paths = {name: os.path.join(directory, name) for name in
             ("ca.pem", "server.crt", "server.key", "server-combined.pem")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.certificatePEM())
    with open(paths["server.crt"], "wb") as f:
        f.write(certs.pem(leaf) + ca.certificatePEM())
    with open(paths["server.key"], "wb") as f:
        f.write(certs.keyPEM(ca.leafKey))
    with open(paths["server-combined.pem"], "wb") as f:
        f.write(certs.pem(leaf) + ca.certificatePEM() + certs.keyPEM(ca.leafKey))
    return paths


def startNginx(children: Children, files: dict[str, str], size: int) -> int:
    """
    nginx serving C{/big} (C{size} bytes) and C{/small} over HTTPS.
    """
    directory = children.directory
    www = os.path.join(directory, "www")
    os.makedirs(www)
    with open(os.path.join(www, "big"), "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
    with open(os.path.join(www, "small"), "wb") as f:
        f.write(b"hello\n")
    port = freePort()
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1;
user root;
error_log {d}/nginx-error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    keepalive_timeout 60;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
    }}
}}
""".format(d=directory, port=port, cert=files["server.crt"], key=files["server.key"], www=www))
    log = open(os.path.join(directory, "nginx.out"), "wb")
    process = subprocess.Popen(
        [binary("nginx", "nginx-light"), "-c", conf, "-p", directory, "-g", "daemon off;"],
        stdout=log, stderr=subprocess.STDOUT)
    waitForPort(port, process)
    return children.add("nginx", (process, port))


def startHaproxy(children: Children, files: dict[str, str], backend: int) -> int:
    port = freePort()
    conf = os.path.join(children.directory, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write("""
global
    maxconn 4096
    nbthread 1
defaults
    mode tcp
    timeout connect 10s
    timeout client 120s
    timeout server 120s
frontend tls
    bind 127.0.0.1:{port} ssl crt {combined}
    default_backend nginx
backend nginx
    server s1 127.0.0.1:{backend} ssl verify required ca-file {ca} sni str(localhost) verifyhost localhost
""".format(port=port, combined=files["server-combined.pem"], backend=backend, ca=files["ca.pem"]))
    log = open(os.path.join(children.directory, "haproxy.out"), "wb")
    process = subprocess.Popen([binary("haproxy", "haproxy"), "-db", "-f", conf],
                               stdout=log, stderr=subprocess.STDOUT)
    waitForPort(port, process)
    return children.add("haproxy", (process, port))


def startVaurien(children: Children, files: dict[str, str], backend: int) -> int:
    port = freePort()
    env = dict(os.environ, PYTHONPATH=ROOT)
    log = open(os.path.join(children.directory, "txvaurien.out"), "wb")
    process = subprocess.Popen(
        [twistd(), "-n", "--pidfile=", "--logfile=-", "vaurien",
         "--proxy", "ssl:{}:interface=127.0.0.1:privateKey={}:certKey={}".format(
             port, files["server.key"], files["server.crt"]),
         "--backend", "tls:host=localhost:port={}:caFile={}".format(backend, files["ca.pem"]),
         "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    waitForPort(port, process)
    return children.add("txvaurien", (process, port))


def download(port: int, ca: str) -> float:
    """
    Download C{/big} with curl; return MB/s.
    """
    out = subprocess.run(
        ["curl", "-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{speed_download}",
         "https://localhost:{}/big".format(port)],
        check=True, capture_output=True, text=True, timeout=600)
    return float(out.stdout) / 1e6


def handshakes(port: int, ca: str, count: int) -> list[float]:
    """
    Seconds for each of C{count} new connections: connect, handshake,
    GET C{/small}, read the answer.
    """
    context = ssl.create_default_context(cafile=ca)
    request = b"GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(request)
                data = b""
                while b"hello" not in data:
                    more = s.recv(65536)
                    if not more:
                        break
                    data += more
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256M", help="size of the downloaded file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--json", help="also write the numbers as JSON to this file")
    args = parser.parse_args()
    binary("curl", "curl")
    children = Children("bench-tls-")
    try:
        files = writeCertificates(children.directory)
        nginx = startNginx(children, files, _size(args.size))
        targets = {
            "direct": nginx,
            "haproxy": startHaproxy(children, files, nginx),
            "txvaurien": startVaurien(children, files, nginx),
        }
        speeds: dict[str, list[float]] = {name: [] for name in targets}
        latency: dict[str, list[float]] = {name: [] for name in targets}
        for round in range(args.rounds):
            for name, port in targets.items():
                speeds[name].append(download(port, files["ca.pem"]))
                latency[name] += handshakes(port, files["ca.pem"],
                                            args.connections // args.rounds)
                print("round {} {}: {:.0f} MB/s".format(round + 1, name, speeds[name][-1]),
                      file=sys.stderr)
    finally:
        children.close()
    result: dict[str, Any] = {"size": _size(args.size), "targets": {}}
    print("{:<10} {:>10} {:>14} {:>14}".format("target", "MB/s", "p50 conn (ms)",
                                               "added p50 (ms)"))
    directP50 = statistics.median(latency["direct"]) * 1000
    for name in targets:
        mbs = statistics.median(speeds[name])
        p50 = statistics.median(latency[name]) * 1000
        result["targets"][name] = {"MBps": mbs, "p50_ms": p50, "added_p50_ms": p50 - directP50}
        print("{:<10} {:>10.0f} {:>14.2f} {:>14.2f}".format(name, mbs, p50, p50 - directP50))
    ratio = result["targets"]["txvaurien"]["MBps"] / result["targets"]["haproxy"]["MBps"]
    added = (result["targets"]["txvaurien"]["added_p50_ms"]
             - result["targets"]["haproxy"]["added_p50_ms"])
    result["ratio_txvaurien_haproxy"] = ratio
    result["added_p50_vs_haproxy_ms"] = added
    print("throughput txvaurien / haproxy: {:.2f} (target >= 0.5)".format(ratio))
    print("handshake p50 added by txvaurien beyond haproxy's: {:.2f} ms".format(added))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
