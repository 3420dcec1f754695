"""
Process and port plumbing shared by the benchmark scripts: free ports,
waiting until a child process listens, finding binaries (and the
C{twistd} of this Python), starting a C{twistd vaurien} proxy, stopping
children, and reading a process's CPU time from C{/proc} (Linux).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: Where Debian puts server binaries outside PATH.
SEARCH = ["/usr/sbin", "/usr/local/sbin", "/usr/lib/postgresql/17/bin",
          "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"]

_TICK = os.sysconf("SC_CLK_TCK")


class NotListening(RuntimeError):
    """
    A child process exited, or did not listen in time.

    @ivar reason: what happened, without the command.
    """

    def __init__(self, process: subprocess.Popen, reason: str) -> None:
        args = process.args
        command = shlex.join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
        RuntimeError.__init__(self, "{}: {}".format(command, reason))
        self.reason = reason


def freePort() -> int:
    """
    A TCP port of 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitForPort(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """
    Return once 127.0.0.1:C{port} accepts a connection.

    @raise NotListening: if C{process} exits first, or after C{timeout}
        seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NotListening(process, "exited with status {} at start".format(
                process.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise NotListening(process, "did not listen on port {} within {}s".format(
                port, timeout))
        time.sleep(0.05)


def binary(name: str, package: str) -> str:
    """
    The path of binary C{name}, on PATH or in L{SEARCH}.

    @param package: the Debian package that provides it, for the message.
    @raise SystemExit: if it is missing.
    """
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SEARCH))
    if path is None:
        raise SystemExit("{} not found (Debian package {})".format(name, package))
    return path


def twistd() -> str:
    """
    The twistd next to this Python (a virtualenv's), else the one on PATH.
    """
    local = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(local, os.X_OK):
        return local
    return binary("twistd", "python3-twisted")


def childEnv() -> dict[str, str]:
    """
    The environment of a C{twistd vaurien} child: this one, with the
    repository's root first on C{PYTHONPATH}, so that the checkout's
    C{txvaurien} and its twistd plugin are used even when the package is
    not installed.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return env


def startVaurien(backendPort: int, log: str, args: list[str]) -> tuple[subprocess.Popen, int]:
    """
    Start C{twistd -n vaurien} with the C{dummy} behavior on a free port of
    127.0.0.1, forwarding to 127.0.0.1:C{backendPort}, with more
    arguments C{args}; its output goes to the file C{log}.  Return once
    it listens.

    @return: the process and its port.
    """
    port = freePort()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [twistd(), "-n", "--pidfile=", "--logfile=-", "vaurien",
             "--proxy", "tcp:{}:interface=127.0.0.1".format(port),
             "--backend", "tcp:host=127.0.0.1:port={}".format(backendPort),
             "--behavior", "100:dummy", "--log-level", "warn", *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=childEnv())
    try:
        waitForPort(port, process)
    except NotListening:
        stop(process)
        raise
    return process, port


class Children:
    """
    The child processes of a benchmark run, and a temporary directory for
    their files.

    @ivar pids: the process id of each child, by name.
    """

    def __init__(self, prefix: str) -> None:
        self.directory = tempfile.mkdtemp(prefix=prefix)
        self.processes: list[subprocess.Popen] = []
        self.pids: dict[str, int] = {}

    def add(self, name: str, started: tuple[subprocess.Popen, int]) -> int:
        """
        Keep a child started as C{(process, port)} under C{name}.

        @return: its port.
        """
        process, port = started
        self.processes.append(process)
        self.pids[name] = process.pid
        return port

    def proxy(self, name: str, backendPort: int, args: list[str]) -> int:
        """
        Start and keep a proxy (see L{startVaurien}) called C{name}, its
        log in the directory.

        @return: its port.
        """
        log = os.path.join(self.directory, "twistd-{}.log".format(name))
        return self.add(name, startVaurien(backendPort, log, args))

    def close(self) -> None:
        """
        Stop every child, the last started first, and remove the
        directory.
        """
        for process in reversed(self.processes):
            stop(process)
        shutil.rmtree(self.directory, ignore_errors=True)


def stop(process: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """
    Stop a child: SIGTERM, then SIGKILL if it has not exited after
    C{timeout} seconds.
    """
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def cpuSeconds(pid: int) -> float:
    """
    User plus system CPU time used so far by process C{pid}.
    """
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is the state (field 3); utime and stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / _TICK
