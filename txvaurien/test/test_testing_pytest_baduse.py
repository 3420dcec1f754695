"""
Bad use of the pytest plugin fails the test with a message that says what
is wrong: scenario tests that fail on purpose run in a real pytest session
in a child process, and their failure messages are read back.
"""

from __future__ import annotations

import functools
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from txvaurien.test.test_testing_pytest import CONFTEST, runPytest

#: Scenarios that fail on purpose: each failure message must say what was
#: wrong.
BAD_USE = '''
from conftest import PORTS


def test_upstreamNotHostPort(chaos_proxy):
    chaos_proxy("localhost")


def test_upstreamPortOutOfRange(chaos_proxy):
    chaos_proxy("127.0.0.1:70000")


def test_unknownBehaviorAtCreation(proxy_of):
    proxy_of(behavior="50:delya")


def test_unknownBehavior(proxy_of):
    proxy = proxy_of()
    with proxy.behavior("hnag"):
        pass


def test_unknownOption(proxy_of):
    proxy = proxy_of()
    with proxy.behavior("delay", slep=0.5):
        pass


def test_unknownToxicAttribute(proxy_of):
    proxy = proxy_of()
    with proxy.toxic("latency", latnecy=100):
        pass


KEPT = []


def test_keepHandle(proxy_of):
    KEPT.append(proxy_of())


def test_handleAfterTeardown(proxy_of):
    with KEPT[0].behavior("delay"):
        pass
'''



@functools.lru_cache(maxsize=None)
def badUseRun() -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]]]:
    result, found, _ = runPytest(
        {"conftest.py": CONFTEST, "test_bad.py": BAD_USE}, "-p", "no:randomly")
    return result, found


class BadUseTests(SynchronousTestCase):
    """
    Bad use of the fixture fails the test with a message that says what
    is wrong, and no traceback from inside txvaurien.
    """

    def assertFailsWith(self, name: str, *messages: str) -> None:
        result, found = badUseRun()
        self.assertIn(name, found, result.stdout)
        outcome, text = found[name]
        self.assertEqual(outcome, "failure", text)
        for message in messages:
            self.assertIn(message, text)
        block = result.stdout.split("_ {} _".format(name), 1)[1].split("\n_", 1)[0]
        self.assertNotIn("txvaurien/testing/", block)

    def test_upstreamNotHostPort(self) -> None:
        """
        An upstream without a port is refused, the message saying what is
        expected.
        """
        self.assertFailsWith(
            "test_upstreamNotHostPort",
            "ChaosUsageError: upstream 'localhost' is not host:port")

    def test_upstreamPortOutOfRange(self) -> None:
        """
        A port over 65535 is refused.
        """
        self.assertFailsWith(
            "test_upstreamPortOutOfRange", "upstream '127.0.0.1:70000' is not host:port")

    def test_unknownBehaviorAtCreation(self) -> None:
        """
        An unknown behavior in the table given at creation names it and
        lists the known ones.
        """
        self.assertFailsWith(
            "test_unknownBehaviorAtCreation", "unknown behavior 'delya'", "known: abort")

    def test_unknownBehavior(self) -> None:
        """
        C{proxy.behavior} with an unknown name names it.
        """
        self.assertFailsWith("test_unknownBehavior", "unknown behavior 'hnag'")

    def test_unknownOption(self) -> None:
        """
        An unknown option names it and lists the behavior's options.
        """
        self.assertFailsWith(
            "test_unknownOption", "slep: unknown option", "known: before")

    def test_unknownToxicAttribute(self) -> None:
        """
        An unknown toxic attribute names it.
        """
        self.assertFailsWith("test_unknownToxicAttribute", "latnecy")

    def test_handleAfterTeardown(self) -> None:
        """
        Using a proxy kept from a test that ended says that it was removed
        when its test ended.
        """
        self.assertFailsWith(
            "test_handleAfterTeardown", "was removed when its test ended")
