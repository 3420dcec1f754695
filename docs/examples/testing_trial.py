"""
trial + treq: a deadline under txvaurien's latency toxic, on the test's own
reactor (no thread, no child process).  Run it with:
python -m twisted.trial testing_trial
"""

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.client import ResponseNeverReceived
from twisted.web.server import Site

from txvaurien.testing import startProxy


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


class LatencyTests(TestCase):
    def setUp(self):
        port = reactor.listenTCP(0, Site(Hello()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.backend = "127.0.0.1:{}".format(port.getHost().port)

    @inlineCallbacks
    def test_slowAnswerWithinDeadline(self):
        proxy = startProxy(self, self.backend, protocol="http")
        with proxy.toxic("latency", latency=200):
            started = reactor.seconds()
            response = yield treq.get(proxy.url, timeout=2, persistent=False)
            body = yield response.text()
        self.assertEqual(body, "hello")
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)

    @inlineCallbacks
    def test_deadlineCancelsSlowerAnswer(self):
        proxy = startProxy(self, self.backend, protocol="http")
        with proxy.toxic("latency", latency=1000):
            request = treq.get(proxy.url, timeout=0.3, persistent=False)
            yield self.assertFailure(request, ResponseNeverReceived)
