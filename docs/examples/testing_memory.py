"""
A Twisted line client that retries after its connection is reset, tested
in memory under txvaurien's reset_peer behavior: 7 seconds of back-off run
in a few milliseconds.  Run it with: python -m twisted.trial testing_memory
"""

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import ClientFactory, Factory
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import SynchronousTestCase

from txvaurien.testing import MemoryChaos


class Echo(LineReceiver):
    """The server: answers each line with the same line."""

    def lineReceived(self, line):
        self.sendLine(line)


class Ask(LineReceiver):
    """Sends the factory's question and hands it the answer."""

    def connectionMade(self):
        self.sendLine(self.factory.question)

    def lineReceived(self, line):
        self.factory.answered(line)
        self.transport.loseConnection()


class Asker(ClientFactory):
    """The code under test: ask once, retry with exponential back-off."""

    protocol = Ask

    def __init__(self, reactor, host, port, question, retries=3, backoff=1.0):
        self.reactor, self.host, self.port = reactor, host, port
        self.question, self.retries, self.backoff = question, retries, backoff
        self.attempts = 0
        self.answer = Deferred()

    def ask(self):
        self.attempts += 1
        self.reactor.connectTCP(self.host, self.port, self)
        return self.answer

    def answered(self, line):
        if not self.answer.called:
            self.answer.callback(line)

    def clientConnectionLost(self, connector, reason):
        self.retry(reason)

    clientConnectionFailed = clientConnectionLost

    def retry(self, reason):
        if self.answer.called:
            return
        if self.attempts > self.retries:
            self.answer.errback(reason)
        else:
            delay = self.backoff * 2 ** (self.attempts - 1)
            self.reactor.callLater(delay, self.ask)


class RetryTests(SynchronousTestCase):
    def test_givesUpAfterThreeRetries(self):
        """Every connection is reset: four attempts, then the reset."""
        chaos = MemoryChaos(Factory.forProtocol(Echo), behavior="reset_peer")
        asker = Asker(chaos.reactor, chaos.host, chaos.port, b"hello")
        answer = asker.ask()
        chaos.advance(60)
        self.failureResultOf(answer, ConnectionLost)
        self.assertEqual(asker.attempts, 4)

    def test_answerOnceResetsStop(self):
        """Resets for 2.5 s (two attempts), then the third attempt works."""
        chaos = MemoryChaos(Factory.forProtocol(Echo))
        asker = Asker(chaos.reactor, chaos.host, chaos.port, b"hello")
        with chaos.behavior("reset_peer"):
            answer = asker.ask()
            chaos.advance(2.5)
            self.assertNoResult(answer)
        chaos.advance(60)
        self.assertEqual(self.successResultOf(answer), b"hello")
        self.assertEqual(asker.attempts, 3)
