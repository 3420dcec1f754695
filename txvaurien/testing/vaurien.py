# -*- test-case-name: txvaurien.test.test_testing_vaurien -*-
"""
Vaurien's C{start_proxy()} and C{stop_proxy()}, for test suites moving from
Vaurien: the same names and keyword arguments, running C{twistd -n
vaurien} as a child process.

    from txvaurien.testing import start_proxy, stop_proxy

    pid = start_proxy(proxy_port=8000, backend_port=6379, protocol="redis")
    try:
        ...
    finally:
        stop_proxy(pid)

Two differences from Vaurien: C{start_proxy} returns once the proxy (and
the control API, with C{http}) listens, read from its log, so C{warmup}
is accepted and ignored; and C{stop_proxy} stops it with C{SIGTERM} (a
C{SIGHUP} would ask txvaurien to reload its configuration).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from typing import IO

_TWISTD = (
    "import sys; sys.argv[0] = 'twistd'; "
    "from twisted.scripts.twistd import run; run()"
)

_running: dict[int, tuple[subprocess.Popen[bytes], threading.Thread]] = {}


class ProxyStartError(RuntimeError):
    """
    The proxy exited, or was not listening, before C{start_proxy} could
    return; the message holds its output.
    """


def _environment() -> dict[str, str]:
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def start_proxy(
    proxy_host: str = "localhost",
    proxy_port: int = 8000,
    backend_host: str = "localhost",
    backend_port: int = 8888,
    protocol: str = "tcp",
    http: bool = True,
    warmup: float = 2,
    http_host: str = "localhost",
    http_port: int = 8080,
    options: list[str] | None = None,
    log_level: str = "info",
    log_output: str = "-",
    timeout: float = 30.0,
) -> int:
    """
    Start C{twistd -n vaurien} in a child process and return its pid once
    it listens.

    @param options: more command-line arguments (C{["--behavior",
        "50:delay"]}).
    @param warmup: ignored: readiness is read from the proxy's log.
    @param log_output: C{"-"} for this process's standard output, or a file
        name.
    @param timeout: seconds to wait for it to listen.
    @raise ProxyStartError: if it exits or is not listening in time, with
        its output (a bad option is one).
    """
    argv = [
        sys.executable, "-c", _TWISTD, "-n", "--pidfile=", "vaurien",
        "--proxy", "tcp:{}:interface={}".format(proxy_port, _interface(proxy_host)),
        "--backend", "{}:{}".format(backend_host, backend_port),
        "--protocol", protocol, "--log-level", log_level,
    ]
    if http:
        argv += ["--http", "--http-host", _interface(http_host), "--http-port", str(http_port)]
    argv += list(options or [])
    popen = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=_environment(), close_fds=True)
    assert popen.stdout is not None
    wanted = ["Proxy vaurien listening on "] + (["Control API listening on "] if http else [])
    seen = _readUntil(popen, popen.stdout, wanted, timeout)
    sink: IO[bytes] = (sys.stdout.buffer if log_output == "-"
                       else open(log_output, "ab"))
    sink.write(seen)
    sink.flush()
    copier = threading.Thread(target=_copy, args=(popen.stdout, sink, log_output != "-"),
                              daemon=True)
    copier.start()
    _running[popen.pid] = (popen, copier)
    return popen.pid


def _interface(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _readUntil(popen: subprocess.Popen[bytes], stdout: IO[bytes], wanted: list[str],
               timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    output = b""
    while not all(w.encode() in output for w in wanted):
        left = deadline - time.monotonic()
        chunk = b""
        if left > 0 and select.select([stdout], [], [], left)[0]:
            chunk = os.read(stdout.fileno(), 65536)
        if not chunk:
            popen.kill()
            popen.wait()
            stdout.close()
            raise ProxyStartError("the proxy {} before it listened:\n{}".format(
                "exited with status {}".format(popen.returncode) if left > 0
                else "did not start in {}s".format(timeout),
                output.decode("utf-8", "replace")))
        output += chunk
    return output


def _copy(source: IO[bytes], sink: IO[bytes], close: bool) -> None:
    try:
        while True:
            chunk = os.read(source.fileno(), 65536)
            if not chunk:
                break
            sink.write(chunk)
            sink.flush()
    except (OSError, ValueError):
        pass
    finally:
        source.close()
        if close:
            sink.close()


def stop_proxy(pid: int, timeout: float = 15.0) -> None:
    """
    Stop a proxy C{start_proxy} started (C{SIGTERM}, then C{SIGKILL} after
    C{timeout} seconds) and wait until it has exited.

    @raise ValueError: if C{pid} is not one of them.
    """
    running = _running.pop(pid, None)
    if running is None:
        raise ValueError("pid {!r} is not a proxy start_proxy() started "
                         "(or it was stopped already)".format(pid))
    popen, copier = running
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
    copier.join(timeout)
