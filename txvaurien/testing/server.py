# -*- test-case-name: txvaurien.test.test_testing_pytest -*-
"""
The chaos proxy server of a test session: C{python -m
txvaurien.testing.server --log FILE}.

It is C{twistd vaurien --http --http-port 0} (the same option parsing,
service tree and control API, Vaurien's and Toxiproxy's), plus one route
that the pytest plugin needs and the public API does not have:
C{POST /testing/proxies} makes a named proxy with its own C{protocol},
C{seed}, C{behavior} and C{scope}, on an ephemeral port of 127.0.0.1.

Its log goes to C{FILE}; until the control API listens it also goes to
standard output, whose last line is then the C{Control API listening on
HOST:PORT} line, and standard output is closed.  The server stops when
its standard input is closed, so that it never outlives the test process
that started it, even one killed with C{SIGKILL}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from twisted.internet import stdio
from twisted.internet.protocol import Protocol
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    eventAsText,
    formatEvent,
    globalLogBeginner,
)
from twisted.web.resource import Resource
from zope.interface import implementer

from txvaurien import logs
from txvaurien.testing._core import ChaosUsageError, createProxy

_log = logs.logger("txvaurien.testing")

READY = "Control API listening on "


class TestingResource(Resource):
    """
    The control API's root resource with C{POST /testing/proxies} added;
    every other request goes to the control API.
    """

    isLeaf = True

    def __init__(self, control: Resource, manager: Any) -> None:
        Resource.__init__(self)
        self.control = control
        self.manager = manager

    def render(self, request: Any) -> Any:
        """
        Make a proxy for C{POST /testing/proxies}; pass anything else to
        the control API.
        """
        if request.path.rstrip(b"/") != b"/testing/proxies":
            return self.control.render(request)
        request.setHeader(b"content-type", b"application/json")
        if request.method != b"POST":
            request.setResponseCode(405)
            return _json({"error": "POST only", "status": 405})
        try:
            body = json.loads(request.content.read() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            name = body.get("name")
            if not isinstance(name, str) or not name or "/" in name:
                raise ChaosUsageError("name: expected a proxy name without '/'")
            proxy = createProxy(
                self.manager,
                name,
                body.get("upstream", ""),
                protocol=str(body.get("protocol", "tcp")),
                seed=body.get("seed"),
                behavior=str(body.get("behavior", "100:dummy")),
                behaviorOptions=body.get("behavior_options") or {},
                scope=str(body.get("scope", "auto")),
            )
        except (ValueError, ChaosUsageError) as e:
            request.setResponseCode(400)
            return _json({"error": str(e), "status": 400})
        request.setResponseCode(201)
        return _json(proxy.asJSON())


def _json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8") + b"\n"


@implementer(ILogObserver)
class ReadyLog:
    """
    Writes events to the log file, and to standard output until the
    control API listens.
    """

    def __init__(self, log: TextIO, stdout: TextIO | None) -> None:
        self.file = FileLogObserver(log, lambda event: _line(event))
        self.stdout = stdout

    def __call__(self, event: dict[str, Any]) -> None:
        self.file(event)
        stdout = self.stdout
        if stdout is None:
            return
        line = _line(event)
        stdout.write(line)
        stdout.flush()
        if formatEvent(event).startswith(READY):
            self.stdout = None
            _detach(stdout)


def _detach(stdout: TextIO) -> None:
    """
    Point C{stdout}'s descriptor at C{/dev/null}: the parent reading it sees
    the end of the stream, and nothing else can take the descriptor.
    """
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, stdout.fileno())
    os.close(null)


def _line(event: dict[str, Any]) -> str:
    text = eventAsText(event, includeTimestamp=True, includeSystem=False)
    return text.replace("\n", "\n\t") + "\n"


class _StopOnEOF(Protocol):
    """
    Stops the reactor when standard input closes (the parent is gone or
    done with the server).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def connectionLost(self, reason: Any = None) -> None:
        if self.reactor.running:
            self.reactor.stop()


def main(argv: list[str] | None = None, reactor: Any = None) -> int:
    """
    Run the server until standard input closes or C{SIGTERM}.
    """
    parser = argparse.ArgumentParser(prog="python -m txvaurien.testing.server")
    parser.add_argument("--log", required=True, help="log file")
    parser.add_argument("--log-level", default="info", choices=logs.LEVELS)
    args = parser.parse_args(argv)
    if reactor is None:
        from twisted.internet import reactor
    from txvaurien.service import makeProxyService

    service = makeProxyService(
        reactor=reactor, http=True, http_port=0, shutdown_grace=0.0,
        log_level=args.log_level)
    control = service.getServiceNamed("control")
    manager = service.getServiceNamed("proxies")
    control.site.resource = TestingResource(control.site.resource, manager)
    log = open(args.log, "a", buffering=1, encoding="utf-8")
    globalLogBeginner.beginLoggingTo(
        [ReadyLog(log, sys.stdout)], redirectStandardIO=False, discardBuffer=True)
    # Standard output is the parent's until the ready line: StandardIO
    # writes nowhere.
    stdio.StandardIO(  # type: ignore[call-arg]
        _StopOnEOF(reactor), stdout=_devnull(), reactor=reactor)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    log.close()
    return 0


def _devnull() -> int:
    return os.open(os.devnull, os.O_WRONLY)


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # Nothing is left to clean up: skip the interpreter's slow teardown.
    os._exit(status)
