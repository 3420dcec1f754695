# -*- test-case-name: txvaurien.test.test_testing_pytest -*-
"""
The pytest plugin of txvaurien, registered through the C{pytest11} entry
point (pytest loads it; nothing else imports it).

Fixtures:

  - C{chaos_proxy}: a factory; C{chaos_proxy("127.0.0.1:6379",
    protocol="redis", seed=1)} returns a L{ChaosProxy} on an ephemeral
    port, removed (port freed) when the test ends;
  - C{chaos_server}: the session's L{ChaosServer}, started the first time
    a test asks for a proxy.

Why a subprocess rather than a thread with its own reactor: the server
never shares the test process's GIL, signal handlers, global log observers
or a C{twisted.internet.reactor} that pytest-twisted or the code under test
may install; a proxy that hangs on purpose cannot hang the test runner; and
the server is exactly C{twistd vaurien --http}'s service tree.  Its start
costs one interpreter start per session (about a second).

A failing test's report gets a C{txvaurien} section: the server's log
lines written while the test ran.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from txvaurien import logs
from txvaurien.testing.handle import ChaosProxy, ChaosServer

_server = pytest.StashKey[ChaosServer]()
_logStart = pytest.StashKey[int]()
_early = pytest.StashKey[ChaosServer]()

_FIXTURES = ("chaos_proxy", "chaos_server")


def pytest_collection_finish(session: Any) -> None:
    """
    If a test will use a chaos proxy, start the server's process now, so
    that its interpreter starts while the first tests run.
    """
    if any(name in _FIXTURES for item in session.items
           for name in getattr(item, "fixturenames", ())):
        server = ChaosServer(logLevel=session.config.getoption("chaos_log_level"))
        server.spawn()
        session.config.stash[_early] = server


def pytest_sessionfinish(session: Any) -> None:
    """
    Stop a server started early that no test used.
    """
    server = session.config.stash.get(_early, None)
    if server is not None:
        del session.config.stash[_early]
        server.stop()


def pytest_addoption(parser: Any) -> None:
    """
    C{--chaos-log-level}.
    """
    group = parser.getgroup("txvaurien", "chaos proxies (txvaurien)")
    group.addoption(
        "--chaos-log-level", default="info",
        choices=logs.LEVELS,
        help="log level of the chaos proxy server (its log is attached to failing tests)")


@pytest.fixture(scope="session")
def chaos_server(request: Any) -> Iterator[ChaosServer]:
    """
    The session's chaos proxy server, started on first use and stopped
    (no process, port or descriptor left) when the session ends.
    """
    config = request.config
    server = config.stash.get(_early, None)
    if server is None:
        server = ChaosServer(logLevel=config.getoption("chaos_log_level"))
    else:
        del config.stash[_early]
    server.start()
    config.stash[_server] = server
    try:
        yield server
    finally:
        del config.stash[_server]
        server.stop()


@pytest.fixture
def chaos_proxy(chaos_server: ChaosServer) -> Iterator["ChaosProxyFactory"]:
    """
    A factory of chaos proxies: C{chaos_proxy(upstream, protocol="tcp",
    seed=None, behavior="100:dummy", behavior_options=None,
    scope="auto", name=None)}.  Every proxy it made is removed when the
    test ends.
    """
    factory = ChaosProxyFactory(chaos_server)
    yield factory
    factory.removeAll()


class ChaosProxyFactory:
    """
    What the C{chaos_proxy} fixture gives a test: call it to make a proxy.

    @ivar made: the proxies made so far.
    """

    def __init__(self, server: ChaosServer) -> None:
        self.server = server
        self.made: list[ChaosProxy] = []

    def __repr__(self) -> str:
        return "<chaos_proxy factory: {}>".format(self.made)

    def __call__(self, upstream: Any, **kwargs: Any) -> ChaosProxy:
        """
        A new proxy to C{upstream}; see L{ChaosServer.proxy}.
        """
        __tracebackhide__ = True
        proxy = self.server.proxy(upstream, **kwargs)
        self.made.append(proxy)
        return proxy

    def removeAll(self) -> None:
        """
        Remove every proxy made (ports freed).
        """
        for proxy in self.made:
            proxy.remove()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    """
    Remember where the server's log stands when a test starts.
    """
    server = item.config.stash.get(_server, None)
    item.stash[_logStart] = server.logSize() if server is not None else 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    """
    Attach the server's log lines of a failing test to its report.
    """
    server = item.config.stash.get(_server, None)
    if server is not None and call.excinfo is not None and call.when in ("setup", "call"):
        text = server.log(item.stash.get(_logStart, 0))
        if text:
            item.add_report_section(call.when, "txvaurien", text)
    yield
