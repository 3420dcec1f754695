"""
Tests of Vaurien's C{start_proxy} and C{stop_proxy}
(L{txvaurien.testing.vaurien}): a real C{twistd -n vaurien} child, a
threaded echo backend, plain sockets.
"""

from __future__ import annotations

import os
import socket
import socketserver
import tempfile
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from txvaurien.client import Client
from txvaurien.test.servers import freePort
from txvaurien.testing import ProxyStartError, start_proxy, stop_proxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class StartStopTests(SynchronousTestCase):
    """
    L{start_proxy} starts a proxy that listens when it returns;
    L{stop_proxy} stops it.
    """

    def setUp(self) -> None:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.backendPort = server.server_address[1]

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        self.addCleanup(stop)
        self.log = tempfile.mktemp(prefix="txvaurien-start-proxy-")
        self.addCleanup(lambda: os.path.exists(self.log) and os.unlink(self.log))

    def test_listensWhenStartedAndStops(self) -> None:
        """
        When L{start_proxy} returns (with Vaurien's keyword arguments), the
        proxy forwards to the backend and the control API answers at once;
        after L{stop_proxy} the process is gone and the port refuses
        connections.
        """
        proxyPort, httpPort = freePort(), freePort()
        started = time.monotonic()
        pid = start_proxy(proxy_port=proxyPort, backend_port=self.backendPort,
                          http_port=httpPort, log_output=self.log, log_level="info",
                          warmup=30)
        self.assertLess(time.monotonic() - started, 30)
        with socket.create_connection(("127.0.0.1", proxyPort), timeout=5) as s:
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
        self.assertEqual(Client("127.0.0.1", httpPort).get_behavior(), "100:dummy")
        stop_proxy(pid)
        self.assertRaises(ProcessLookupError, os.kill, pid, 0)
        self.assertRaises(ConnectionRefusedError, socket.create_connection,
                          ("127.0.0.1", proxyPort), 5)
        with open(self.log) as f:
            self.assertIn("Proxy vaurien listening on 127.0.0.1:{}".format(proxyPort), f.read())

    def test_optionsPassed(self) -> None:
        """
        C{options} reach the command line: a behavior given there is the
        proxy's.
        """
        httpPort = freePort()
        pid = start_proxy(proxy_port=freePort(), backend_port=self.backendPort,
                          http_port=httpPort, log_output=self.log,
                          options=["--behavior", "30:delay"])
        self.addCleanup(stop_proxy, pid)
        self.assertEqual(Client("127.0.0.1", httpPort).get_behavior(), "30:delay")

    def test_badOptionRaisesWithOutput(self) -> None:
        """
        A proxy that exits at once (an unknown behavior) makes
        L{start_proxy} raise L{ProxyStartError} with its message.
        """
        e = self.assertRaises(ProxyStartError, start_proxy, proxy_port=freePort(),
                              backend_port=self.backendPort, http=False,
                              options=["--behavior", "nope"])
        self.assertIn("unknown behavior 'nope'", str(e))
        self.assertIn("exited with status", str(e))

    def test_stopUnknownPid(self) -> None:
        """
        L{stop_proxy} refuses a pid L{start_proxy} did not start.
        """
        e = self.assertRaises(ValueError, stop_proxy, os.getpid())
        self.assertIn("not a proxy start_proxy() started", str(e))
