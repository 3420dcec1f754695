# -*- test-case-name: txvaurien.test.test_scenario_api -*-
"""
Scenarios at run time (Vaurien API family), on the default proxy or the
one C{?proxy=NAME} names:

  - C{POST /scenario}: start a scenario (the JSON of
    L{txvaurien.scenario}); one already running on that proxy is stopped
    first.  C{201} with its state; C{400} naming what is wrong.
  - C{GET /scenario}: the running scenario, its elapsed time and the step
    in force; C{404} if none.
  - C{DELETE /scenario}: stop it and give the proxy its own table back
    (its behavior and toxics); C{204}.
"""

from __future__ import annotations

from typing import Any

from txvaurien.control import errors
from txvaurien.control.jsonio import decodeStrict
from txvaurien.control.resource import VAURIEN, Reply, Route, queryArgument, readBody, vaurienReply
from txvaurien.scenario import ScenarioError, ScenarioRunner, parseScenario


class ScenarioAPI:
    """
    C{/scenario}: the scenario of a proxy is its factory's C{scenario}
    (see L{ScenarioRunner}), whether it came from C{--scenario} or from
    this API.
    """

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        manager.listeners.append(self)

    def proxyAdded(self, proxy: Any) -> None:
        pass

    def proxyRemoved(self, proxy: Any) -> None:
        runner = getattr(proxy.factory, "scenario", None)
        if runner is not None:
            runner.stop()

    def routes(self) -> list[Route]:
        return [Route("/scenario", VAURIEN, {
            "GET": self.get, "POST": self.post, "DELETE": self.delete})]

    def _proxy(self, request: Any) -> Any:
        try:
            return self.manager.default(queryArgument(request, "proxy"))
        except errors.ApiError as e:
            raise errors.ApiError(e.message, 404, "proxy", "querystring")

    def post(self, request: Any) -> Reply:
        proxy = self._proxy(request)
        body = decodeStrict(readBody(request))
        factory = proxy.factory
        try:
            scenario = parseScenario(
                body, self.manager.defaults.registry, factory.table.scope,
                factory.handler.name)
        except ScenarioError as e:
            raise errors.ApiError(str(e), 400, "body")
        old = getattr(factory, "scenario", None)
        if old is not None:
            old.stop()
        runner = ScenarioRunner(
            scenario, factory, self.manager.defaults.registry,
            self.manager.defaults.reactor, restore=proxy.apply)
        runner.start()
        return vaurienReply(runner.asJSON(), 201)

    def get(self, request: Any) -> Reply:
        proxy = self._proxy(request)
        runner = getattr(proxy.factory, "scenario", None)
        if runner is None:
            raise errors.ApiError("no scenario on proxy {}".format(proxy.name), 404,
                                  "scenario", "path")
        return vaurienReply(runner.asJSON())

    def delete(self, request: Any) -> Reply:
        proxy = self._proxy(request)
        runner = getattr(proxy.factory, "scenario", None)
        if runner is None:
            raise errors.ApiError("no scenario on proxy {}".format(proxy.name), 404,
                                  "scenario", "path")
        runner.stop()
        return Reply(204, b"", None)
