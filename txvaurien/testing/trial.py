# -*- test-case-name: txvaurien.test.test_testing_trial -*-
"""
Chaos proxies on the test's own reactor, for trial and other Twisted
tests: no thread, no child process.

    from txvaurien.testing.trial import startProxy

    class RetryTests(TestCase):
        @inlineCallbacks
        def test_retries(self):
            proxy = startProxy(self, "127.0.0.1:{}".format(backendPort))
            with proxy.behavior("error"):
                ...

L{startProxy} listens at once on an ephemeral port of 127.0.0.1 and
registers the proxy's removal with the test's C{addCleanup} (its port is
closed and its connections gone before the test ends, so trial's reactor
checks pass).  The handle has the shape of the pytest plugin's
L{txvaurien.testing.handle.ChaosProxy}; the calls that must wait for the
reactor (L{TrialProxy.disable}, L{TrialProxy.down}, L{TrialProxy.remove})
return L{Deferred}s.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from twisted.internet.defer import Deferred, succeed

from txvaurien.control.managed import ManagedProxy, baseOptions
from txvaurien.control.manager import ProxyManager
from txvaurien.testing._core import (
    Addressed,
    ChaosUsageError,
    addToxic,
    createProxy,
    journalEvents,
    newManager,
    setBehavior,
)


class TrialProxy(Addressed):
    """
    A proxy on the test's reactor.

    @ivar name: its name.
    @ivar host: C{"127.0.0.1"}.
    @ivar port: its ephemeral port.
    @ivar upstream: where it forwards.
    @ivar factory: its L{txvaurien.proxy.ProxyServerFactory}, for tests
        that look inside.
    """

    def __init__(self, manager: ProxyManager, managed: ManagedProxy) -> None:
        self._manager = manager
        self._managed: ManagedProxy | None = managed
        self.name = managed.name
        self.factory = managed.factory
        self.upstream = managed.upstream
        host, _, port = managed.listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)

    def __repr__(self) -> str:
        return "<TrialProxy {} {} -> {}{}>".format(
            self.name, self.address, self.upstream, "" if self._managed else " removed")

    def _proxy(self) -> ManagedProxy:
        if self._managed is None:
            raise ChaosUsageError(
                "chaos proxy {} ({}) was removed (its test ended); start a new one "
                "with startProxy(self, ...) in the test that uses it".format(
                    self.name, self.address))
        return self._managed

    def set_behavior(self, name: str, **options: Any) -> None:
        """
        Give the proxy the behavior C{name} with C{options}, at once.

        @raise ChaosUsageError: for an unknown behavior or option.
        """
        setBehavior(self._manager, self._proxy(), name, options)

    @contextmanager
    def behavior(self, name: str, **options: Any) -> Iterator["TrialProxy"]:
        """
        A context in which the proxy has the behavior C{name}; the previous
        one and its options come back on exit.
        """
        proxy = self._proxy()
        spec, previous = proxy.base.spec, baseOptions(proxy)
        self.set_behavior(name, **options)
        try:
            yield self
        finally:
            if self._managed is not None:
                setBehavior(self._manager, proxy, spec, previous)

    @contextmanager
    def toxic(self, type: str, stream: str = "downstream", toxicity: float = 1.0,
              name: str | None = None, **attributes: Any) -> Iterator["TrialProxy"]:
        """
        A context in which the proxy has a toxic of C{type}, removed on
        exit.
        """
        proxy = self._proxy()
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                "attributes": attributes}
        if name is not None:
            body["name"] = name
        toxicName = addToxic(self._manager, proxy, body)
        try:
            yield self
        finally:
            if self._managed is not None:
                self._manager.removeToxic(proxy, toxicName)

    def disable(self) -> Deferred:
        """
        Close the port and the proxy's connections.

        @return: a L{Deferred} that fires once connecting is refused.
        """
        return self._manager.setEnabled(self._proxy(), False)

    def enable(self) -> Deferred:
        """
        Listen on the same port again (at once: the L{Deferred} has
        fired).
        """
        return self._manager.setEnabled(self._proxy(), True)

    def down(self) -> Deferred:
        """
        Take the proxy down: a L{Deferred} that fires, once connecting is
        refused, with a context manager that brings it back up on exit::

            with (yield proxy.down()):
                ...
        """
        return self.disable().addCallback(lambda _: self._upOnExit())

    @contextmanager
    def _upOnExit(self) -> Iterator["TrialProxy"]:
        try:
            yield self
        finally:
            if self._managed is not None:
                self.enable()

    def connections(self) -> list[Any]:
        """
        The live L{txvaurien.proxy.Connection}s through the proxy.
        """
        return list(self._proxy().factory.connections)

    def journal(self) -> list[dict[str, Any]]:
        """
        The faults the proxy injected (its events in the fault journal,
        oldest first).

        @raise NotImplementedError: if this txvaurien has no journal yet.
        """
        return journalEvents(self._proxy().factory, self.name)

    def remove(self) -> Deferred:
        """
        Remove the proxy.

        @return: a L{Deferred} that fires once its port is closed and its
            connections are gone.
        """
        if self._managed is None:
            return succeed(None)
        proxy, self._managed = self._managed, None
        d = self._manager.delete(proxy.name)
        d.addCallback(lambda _: proxy.factory.drain(0))
        return d


def startProxy(
    case: Any,
    upstream: Any,
    protocol: str = "tcp",
    seed: int | None = None,
    behavior: str = "100:dummy",
    behavior_options: dict[str, dict[str, Any]] | None = None,
    scope: str = "auto",
    reactor: Any = None,
) -> TrialProxy:
    """
    Start a chaos proxy to C{upstream} on the test's reactor, listening on
    an ephemeral port of 127.0.0.1 when this returns; it is removed when
    the test ends (C{case.addCleanup}).

    @param case: the running L{twisted.trial.unittest.TestCase} (anything
        with C{addCleanup} that waits for a returned L{Deferred}).
    @param upstream: C{"host:port"}, C{(host, port)} or a client endpoint
        string.
    @param reactor: the reactor (the global one by default).
    @raise ChaosUsageError: for a bad value, with the reason.
    """
    if reactor is None:
        from twisted.internet import reactor
    managers = case.__dict__.setdefault("_txvaurienManagers", {})
    manager = managers.get(id(reactor))
    if manager is None:
        manager = managers[id(reactor)] = newManager(reactor)
        manager.startService()
    count = case.__dict__["_txvaurienCount"] = case.__dict__.get("_txvaurienCount", 0) + 1
    managed = createProxy(
        manager, "proxy-{}".format(count), upstream, protocol=protocol, seed=seed,
        behavior=behavior, behaviorOptions=behavior_options, scope=scope)
    proxy = TrialProxy(manager, managed)
    case.addCleanup(proxy.remove)
    return proxy


class ChaosProxyMixin:
    """
    A L{twisted.trial.unittest.TestCase} mixin: C{self.startProxy(upstream,
    ...)} is L{startProxy} for this test.
    """

    def startProxy(self, upstream: Any, **kwargs: Any) -> TrialProxy:
        """
        L{startProxy} for this test.
        """
        return startProxy(self, upstream, **kwargs)
