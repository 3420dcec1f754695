"""
txvaurien in your test suites.

  - pytest: the C{chaos_proxy} fixture (L{txvaurien.testing.pytest_plugin},
    registered through the C{pytest11} entry point);
  - any synchronous code: L{ChaosServer} and its L{ChaosProxy} handles;
  - trial and Twisted code: L{startProxy} (L{txvaurien.testing.trial}), on
    the test's own reactor;
  - no sockets at all: L{MemoryChaos} (L{txvaurien.testing.memory}), a
    client and a server protocol connected through the proxy in memory, on
    a fake clock;
  - authors of behaviors and protocol handlers:
    L{BehaviorConformanceMixin} and L{ProtocolConformanceMixin}
    (L{txvaurien.testing.conformance});
  - Vaurien's L{start_proxy} and L{stop_proxy}.

See the "Chaos in your test suite" page of the documentation.
"""

from txvaurien.testing._core import ChaosUsageError
from txvaurien.testing.conformance import (
    BehaviorConformanceMixin,
    FakeConnection,
    ProtocolConformanceMixin,
    RecordingStage,
)
from txvaurien.testing.handle import ChaosProxy, ChaosServer
from txvaurien.testing.memory import MemoryChaos, MemoryTransport
from txvaurien.testing.trial import ChaosProxyMixin, TrialProxy, startProxy
from txvaurien.testing.vaurien import ProxyStartError, start_proxy, stop_proxy

__all__ = [
    "BehaviorConformanceMixin",
    "ChaosProxy",
    "ChaosProxyMixin",
    "ChaosServer",
    "ChaosUsageError",
    "FakeConnection",
    "MemoryChaos",
    "MemoryTransport",
    "ProtocolConformanceMixin",
    "ProxyStartError",
    "RecordingStage",
    "start_proxy",
    "startProxy",
    "stop_proxy",
    "TrialProxy",
]
