# -*- test-case-name: txvaurien.test.test_testing_pytest -*-
"""
Chaos proxies for synchronous test code (pytest, unittest, scripts): one
L{ChaosServer} process per test session, and a L{ChaosProxy} handle per
proxy, driven through the control API.

    server = ChaosServer()
    server.start()
    proxy = server.proxy("127.0.0.1:6379", protocol="redis", seed=1)
    with proxy.behavior("error"):
        ...                      # every request through proxy.address fails
    proxy.remove()
    server.stop()

The pytest plugin (L{txvaurien.testing.pytest_plugin}) does the starting
and removing for you.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

from txvaurien.client import BadRequest, Client, ClientError, NotFound
from txvaurien.testing._core import Addressed, ChaosUsageError, checkUpstream

READY = "Control API listening on "


class ChaosServer:
    """
    A C{python -m txvaurien.testing.server} child process: the control API
    on an ephemeral port of 127.0.0.1, making proxies on ephemeral ports.

    @ivar client: a L{txvaurien.client.Client} of its control API, once
        started.
    @ivar url: the control API's base URL, once started.
    @ivar logPath: the server's log file.
    """

    def __init__(self, logLevel: str = "info", startTimeout: float = 30.0,
                 python: str | None = None) -> None:
        self.logLevel = logLevel
        self.startTimeout = startTimeout
        self.python = python or sys.executable
        self.directory = tempfile.mkdtemp(prefix="txvaurien-testing-")
        self.logPath = os.path.join(self.directory, "server.log")
        self.popen: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None
        self.url = ""
        self.proxies: dict[str, ChaosProxy] = {}
        self._names = itertools.count(1)

    @property
    def pid(self) -> int | None:
        """
        The server's process id, while it runs.
        """
        return None if self.popen is None else self.popen.pid

    def start(self) -> None:
        """
        Start the server (unless L{spawn} did) and return once its control
        API listens (its C{Control API listening on} line, read from its
        standard output; no polling).

        @raise RuntimeError: if it exits or says nothing in time, with its
            log.
        """
        if self.client is not None:
            return
        if self.popen is None:
            self.spawn()
        assert self.popen is not None and self.popen.stdout is not None
        address = self._waitReady(self.popen.stdout)
        host, _, port = address.rpartition(":")
        self.client = Client(host.strip("[]"), int(port), timeout=30.0)
        self.url = self.client.url

    def spawn(self) -> None:
        """
        Start the server's process and return at once; L{start} waits
        until it is ready.  Starting early lets the interpreter start
        while other work goes on.
        """
        package = os.path.dirname(os.path.dirname(os.path.abspath(
            sys.modules["txvaurien"].__file__ or "")))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [package] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        with open(self.logPath, "ab") as errors:
            self.popen = subprocess.Popen(
                [self.python, "-m", "txvaurien.testing.server", "--log", self.logPath,
                 "--log-level", self.logLevel],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                env=env, close_fds=True)

    def _waitReady(self, stdout: Any) -> str:
        deadline = time.monotonic() + self.startTimeout
        buffered = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([stdout], [], [], left)[0]:
                    raise self._failed("did not start within {}s".format(self.startTimeout))
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise self._failed("exited before its control API listened")
                buffered += chunk
                for line in buffered.decode("utf-8", "replace").splitlines():
                    if READY in line:
                        return line.split(READY, 1)[1].split()[0]
        finally:
            stdout.close()

    def _failed(self, why: str) -> RuntimeError:
        log = self.log(0)
        self.stop(timeout=1.0)
        return RuntimeError("txvaurien's test server {}; its log:\n{}".format(why, log))

    def logSize(self) -> int:
        """
        The size of the log so far: give it to L{log} to read what follows.
        """
        try:
            return os.path.getsize(self.logPath)
        except OSError:
            return 0

    def log(self, offset: int = 0) -> str:
        """
        The server's log from C{offset} (bytes) on.
        """
        try:
            with open(self.logPath, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def proxy(
        self,
        upstream: Any,
        protocol: str = "tcp",
        seed: int | None = None,
        behavior: str = "100:dummy",
        behavior_options: dict[str, dict[str, Any]] | None = None,
        scope: str = "auto",
        name: str | None = None,
    ) -> "ChaosProxy":
        """
        A new proxy to C{upstream} on an ephemeral port of 127.0.0.1.

        @param upstream: C{"host:port"}, C{(host, port)} or a client
            endpoint string.
        @param protocol: the protocol handler (C{tcp}, C{redis}, C{http},
            ...), so that errors are ones the client parses.
        @param seed: the seed of the proxy's randomness, to repeat a run.
        @param behavior: its behavior table (C{"100:dummy"}: none).
        @param behavior_options: options by behavior name.
        @param scope: C{"auto"}, C{"connection"} or C{"request"}.
        @param name: its name in the server (default: C{proxy-N}).
        @raise ChaosUsageError: for a bad value, with the reason.
        """
        __tracebackhide__ = True
        client = self._client()
        upstream = checkUpstream(upstream)
        name = name or "proxy-{}".format(next(self._names))
        try:
            _, body = client.request("POST", "/testing/proxies", {
                "name": name, "upstream": upstream, "protocol": protocol, "seed": seed,
                "behavior": behavior, "behavior_options": behavior_options or {},
                "scope": scope})
        except BadRequest as e:
            raise ChaosUsageError(e.message) from None
        import json

        listen = json.loads(body)["listen"]
        host, _, port = listen.rpartition(":")
        proxy = ChaosProxy(self, name, host.strip("[]"), int(port), upstream)
        self.proxies[name] = proxy
        return proxy

    def _client(self) -> Client:
        if self.client is None:
            raise ChaosUsageError("the chaos server is not running (start() it first)")
        return self.client

    def stop(self, timeout: float = 10.0) -> None:
        """
        Stop the server (closing its standard input; C{SIGKILL} after
        C{timeout} seconds), wait for it, and remove its directory.
        """
        popen, self.popen = self.popen, None
        self.client = None
        for proxy in self.proxies.values():
            proxy._removed = True
        if popen is not None:
            if popen.stdin is not None:
                popen.stdin.close()
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
            if popen.stdout is not None and not popen.stdout.closed:
                popen.stdout.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class ChaosProxy(Addressed):
    """
    One proxy of a L{ChaosServer}: connect your client to L{host} and
    L{port} (or L{address}, L{url}) instead of the real server.

    @ivar name: its name in the server.
    @ivar host: C{"127.0.0.1"}.
    @ivar port: its ephemeral port.
    @ivar upstream: where it forwards.
    """

    def __init__(self, server: ChaosServer, name: str, host: str, port: int,
                 upstream: str) -> None:
        self.server = server
        self.name = name
        self.host = host
        self.port = port
        self.upstream = upstream
        self._removed = False

    def __repr__(self) -> str:
        return "<ChaosProxy {} {} -> {}{}>".format(
            self.name, self.address, self.upstream, " removed" if self._removed else "")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if self._removed or self.server.client is None:
            raise ChaosUsageError(
                "chaos proxy {} ({}) was removed when its test ended (or its "
                "server stopped); make a new one with chaos_proxy(...) in the "
                "test that uses it".format(self.name, self.address))
        client = Client(self.server.client.host, self.server.client.port, proxy=self.name)
        try:
            return getattr(client, method)(*args, **kwargs)
        except BadRequest as e:
            raise ChaosUsageError("chaos proxy {}: {}".format(self.name, e.message)) from None

    def set_behavior(self, name: str, **options: Any) -> None:
        """
        Give the proxy the behavior C{name} (or a weighted table such as
        C{"50:delay,10:error"}) with C{options}, until changed again.

        @raise ChaosUsageError: for an unknown behavior or option.
        """
        __tracebackhide__ = True
        self._call("set_behavior", name, **options)

    @contextmanager
    def behavior(self, name: str, **options: Any) -> Iterator["ChaosProxy"]:
        """
        A context in which the proxy has the behavior C{name} with
        C{options}; the previous behavior and its options come back on exit.

        @raise ChaosUsageError: for an unknown behavior or option.
        """
        __tracebackhide__ = True
        state = self._call("get_behavior_state")
        self.set_behavior(name, **options)
        try:
            yield self
        finally:
            if not self._removed:
                self._call("set_behavior", state["behavior"], **state["options"])

    @contextmanager
    def toxic(self, type: str, stream: str = "downstream", toxicity: float = 1.0,
              name: str | None = None, **attributes: Any) -> Iterator["ChaosProxy"]:
        """
        A context in which the proxy has a Toxiproxy toxic (C{latency},
        C{bandwidth}, C{timeout}, C{slicer}, C{limit_data}, C{reset_peer},
        C{slow_close}, or any behavior) with C{attributes}; it is removed on
        exit.

        @raise ChaosUsageError: for an unknown type or attribute.
        """
        __tracebackhide__ = True
        toxic = self._call("add_toxic", self.name, type, attributes=attributes,
                           stream=stream, toxicity=toxicity, name=name)
        try:
            yield self
        finally:
            if not self._removed:
                self._call("remove_toxic", self.name, toxic["name"])

    def disable(self) -> None:
        """
        Close the port and every connection: connecting is refused.
        """
        __tracebackhide__ = True
        self._call("disable_proxy", self.name)

    def enable(self) -> None:
        """
        Listen on the same port again.
        """
        __tracebackhide__ = True
        self._call("enable_proxy", self.name)

    @contextmanager
    def down(self) -> Iterator["ChaosProxy"]:
        """
        A context in which the proxy's port refuses connections and its live
        connections are closed; it listens on the same port again on exit.
        """
        __tracebackhide__ = True
        self.disable()
        try:
            yield self
        finally:
            if not self._removed:
                self.enable()

    def connections(self) -> list[dict[str, Any]]:
        """
        The live connections through the proxy, as C{GET /connections}
        lists them.
        """
        return list(self._call("connections", self.name).get(self.name, []))

    def journal(self) -> list[dict[str, Any]]:
        """
        The faults the proxy injected, oldest first, from the server's
        fault journal (C{GET /events}).

        @raise NotImplementedError: if this txvaurien has no journal yet.
        """
        import json

        events: list[dict[str, Any]] = []
        cursor = 0
        while True:
            try:
                _, body = self._call(
                    "request", "GET", "/events?since={}&limit=10000".format(cursor))
            except (NotFound, ClientError) as e:
                if getattr(e, "status", None) in (404, 405):
                    raise NotImplementedError(
                        "proxy.journal() needs the fault journal (GET /events), which "
                        "this txvaurien's control API does not serve") from None
                raise
            value = json.loads(body or b"{}")
            page = value.get("events", []) if isinstance(value, dict) else list(value)
            events += [e for e in page if e.get("proxy") == self.name]
            following = value.get("cursor", cursor) if isinstance(value, dict) else cursor
            if not page or following == cursor:
                return events
            cursor = following

    def remove(self) -> None:
        """
        Remove the proxy: its connections are closed and its port is free
        when this returns.  Further calls raise L{ChaosUsageError}.
        """
        __tracebackhide__ = True
        if self._removed:
            return
        try:
            self._call("delete_proxy", self.name)
        finally:
            self._removed = True
            self.server.proxies.pop(self.name, None)
