# -*- test-case-name: txvaurien.test.test_reload -*-
"""
What C{twistd vaurien} does on the signals daemons get.

  - C{SIGHUP} reloads the configuration: the configuration file is read
    again (the command line still wins over it), and what changed is
    applied to the running proxy without dropping a connection: the
    behavior table (live connections take it as they take a
    C{PUT /behavior}), the protocol options, the backend and the timeouts
    for new connections, the control API's token and timeouts, the log
    level.  Listening ports are closed and opened again only if their
    addresses or backlog changed.  Every change is logged; a file that is
    now invalid is logged and the running configuration is kept.
  - C{SIGUSR1} reopens the log file.  twistd installs its own handler
    when it logs to a file (it rotates the file: C{twistd.log} becomes
    C{twistd.log.1}, and logging goes on in a new C{twistd.log}), which is
    kept; logging to standard output there is nothing to reopen, and the
    signal, which would otherwise kill the process, is logged and ignored.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred, succeed

from txvaurien import endpoints, logs
from txvaurien.config import Configuration, ConfigurationError, isJSON

_log = logs.logger("txvaurien.reload")

#: Core options whose change takes effect only when the process restarts.
RESTART_ONLY = ("seed", "http")

#: Core options whose values are not written in logs.
_SECRET = ("http_token",)


def _show(name: str, value: Any) -> str:
    if name in _SECRET and value is not None:
        return "(hidden)"
    return repr(value)


class ReloadingService(MultiService):
    """
    The top of C{twistd vaurien}'s service tree: reloads its children's
    configuration on C{SIGHUP}, and keeps C{SIGUSR1} from killing the
    process, and runs the process's garbage-collection policy
    (C{collector}, a L{txvaurien.gcpolicy.CollectorService}: started after
    the children, so that what they made at start is frozen, and stopped
    before them; not a child, as it belongs to the process, not to the
    configuration).  Its children are the services of the configuration
    (L{txvaurien.service.buildService}); the signal handlers are
    installed once they have started, and removed when they stop.

    @ivar configuration: the configuration in force.
    @ivar load: makes the configuration anew, raising
        L{ConfigurationError} if it is invalid.
    @ivar signals: whether to install the signal handlers (only on the
        main thread, where Python can).
    """

    signals = True
    collector: Any = None

    def __init__(
        self,
        configuration: Configuration,
        load: Callable[[], Configuration],
        reactor: Any,
    ) -> None:
        MultiService.__init__(self)
        self.configuration = configuration
        self.load = load
        self.reactor = reactor
        self._previous: dict[int, Any] = {}

    def startService(self) -> None:
        # Before the children start: once they have logged that they
        # listen, a signal must find its handler.
        if self.signals and threading.current_thread() is threading.main_thread():
            self._install(signal.SIGHUP, self._onHangUp)
            if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
                self._install(signal.SIGUSR1, self._onUser1)
        MultiService.startService(self)
        if self.collector is not None:
            self.collector.startService()

    def stopService(self) -> Any:
        if self.collector is not None and self.collector.running:
            self.collector.stopService()
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        return MultiService.stopService(self)

    def _install(self, number: int, handler: Callable[..., None]) -> None:
        self._previous[number] = signal.getsignal(number)
        signal.signal(number, handler)

    def _onHangUp(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def _onUser1(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(
            _log.info, "SIGUSR1: logging to standard output, no log file to reopen")

    # Reloading

    def reload(self) -> Deferred:
        """
        Load the configuration again and apply what changed.

        @return: a L{Deferred} firing with the list of changes (empty if
            nothing changed, L{None} if the new configuration was invalid).
        """
        path = self.configuration.path or "(no configuration file)"
        try:
            new = self.load()
        except ConfigurationError as e:
            _log.error(
                "SIGHUP: configuration not reloaded, the running one is kept: {error}",
                error=str(e))
            return succeed(None)
        d = maybeDeferred(self.apply, new)

        def done(changes: list[str]) -> list[str]:
            if changes:
                _log.info("SIGHUP: configuration reloaded from {path}: {changes}",
                          path=path, changes="; ".join(changes))
            else:
                _log.info("SIGHUP: configuration reloaded from {path}: nothing changed",
                          path=path)
            return changes

        def failed(failure: Any) -> None:
            _log.failure("SIGHUP: applying the new configuration failed", failure)

        return d.addCallback(done).addErrback(failed)

    def _child(self, name: str) -> Any:
        try:
            return self.getServiceNamed(name)
        except KeyError:
            return None

    @inlineCallbacks
    def apply(self, new: Configuration) -> Any:
        """
        Apply a new configuration to the running services.

        @return: a L{Deferred} firing with the changes, one line each.
        """
        old = self.configuration
        changes: list[str] = []
        kept = dict(new.core)
        for name in old.core:
            before, after = old.core[name], new.core[name]
            if before == after:
                continue
            if name in RESTART_ONLY or (name == "backend" and not _sameKind(before, after)):
                _log.warn(
                    "SIGHUP: {option} changed ({before} -> {after}); it takes effect "
                    "only when txvaurien restarts", option=name,
                    before=_show(name, before), after=_show(name, after))
                kept[name] = before
                continue
            changes.append("{}: {} -> {}".format(name, _show(name, before), _show(name, after)))
        new.core = kept
        core = new.core

        logs.setLevel(core["log_level"])
        proxy = self._child("proxy")
        manager = self._child("proxies")
        if proxy is not None:
            factory = proxy.factory
            managed = _managedFor(manager, proxy)
            if (old.table.spec != new.table.spec
                    or old.behaviorSettings != new.behaviorSettings
                    or old.table.scope != new.table.scope):
                if managed is not None:
                    managed.base = new.table
                    managed.apply()
                else:
                    factory.setTable(new.table)
                if old.behaviorSettings != new.behaviorSettings and "behavior: " not in (
                        " ".join(changes)):
                    changes.append("behavior options: {}".format(new.table.describe()))
            else:
                new.table = old.table
            if (old.handler.name != new.handler.name
                    or old.protocolSettings != new.protocolSettings):
                factory.handler = new.handler
                if old.protocolSettings != new.protocolSettings and (
                        old.handler.name == new.handler.name):
                    changes.append("protocol {} options".format(new.handler.name))
            else:
                new.handler = old.handler
            factory.connectTimeout = core["timeout"]
            factory.idleTimeout = core["idle_timeout"] or None
            factory.splice = core["splice"]
            proxy.grace = core["shutdown_grace"]
            if core["backend"] != old.core["backend"] and core["backend"].strip() != "demo":
                factory.backend = endpoints.parseBackend(self.reactor, core["backend"].strip())
                if managed is not None:
                    managed.upstream = core["backend"].strip()
            if core["proxy"] != old.core["proxy"] or core["backlog"] != old.core["backlog"]:
                yield _relisten(proxy, core["proxy"], core["backlog"])
        if manager is not None:
            defaults = manager.defaults
            defaults.connectTimeout = core["timeout"]
            defaults.idleTimeout = core["idle_timeout"] or None
            defaults.splice = core["splice"]
            defaults.grace = core["shutdown_grace"]
            defaults.backlog = core["backlog"]
            if new.path and isJSON(new.path):
                result = yield manager.serialized(manager.populate, new.proxies)
                if result[1] is not None:
                    _log.error("SIGHUP: proxy list: {error}", error=result[1].message)
                changes.append("proxies: {}".format(", ".join(p.name for p in result[0])))
        control = self._child("control")
        if control is not None:
            site = control.site
            site.resource.token = core["http_token"]
            site.resource.allowBrowsers = core["http_allow_browsers"]
            site.requestTimeout = core["http_request_timeout"]
            site.timeOut = core["http_idle_timeout"]
            if (new.httpListen != old.httpListen and new.httpListen is not None) or (
                    core["backlog"] != old.core["backlog"]):
                yield _relistenControl(control, new.httpListen or control.description,
                                       core["backlog"])
        self.configuration = new
        return changes


def _sameKind(before: Any, after: Any) -> bool:
    """
    Whether a backend can change from C{before} to C{after} at run time:
    not to or from none or the demo backend, which are services of their
    own.
    """
    special = (None, "demo")
    norm = [None if v is None else v.strip() for v in (before, after)]
    return norm[0] not in special and norm[1] not in special


def _managedFor(manager: Any, proxy: Any) -> Any:
    if manager is None:
        return None
    for managed in manager.proxies.values():
        if managed.service is proxy:
            return managed
    return None


@inlineCallbacks
def _relisten(proxy: Any, listen: list[str], backlog: int | None) -> Any:
    """
    Close a proxy's ports and listen where C{listen} says; live
    connections go on.  If the new ports cannot be bound, the old ones are
    bound again.
    """
    old, oldBacklog = list(proxy.listen), proxy.backlog
    yield proxy.stopListening()
    proxy.listen, proxy.backlog = list(listen), backlog
    try:
        proxy.startListening()
    except Exception as e:
        _log.error("SIGHUP: cannot listen on {listen}: {error}; listening on {old} again",
                   listen=", ".join(listen), error=str(e), old=", ".join(old))
        yield proxy.stopListening()
        proxy.listen, proxy.backlog = old, oldBacklog
        proxy.startListening()


@inlineCallbacks
def _relistenControl(control: Any, description: str, backlog: int | None) -> Any:
    """
    Move the control server to another endpoint (or backlog).
    """
    old, oldBacklog = control.description, control.backlog
    yield control.stopService()
    control.description, control.backlog = description, backlog
    control.exitOnListenFailure = False
    try:
        control.startService()
    except Exception as e:
        _log.error("SIGHUP: control API cannot listen on {listen}: {error}; back on {old}",
                   listen=description, error=str(e), old=old)
        control.description, control.backlog = old, oldBacklog
        control.startService()
