"""
The examples of C{docs/embedding.rst} run as written (with port 0 in place
of 6380), and print what their comments say.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from txvaurien import logs

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "embedding.rst")


def pythonBlocks(path: str) -> list[str]:
    """
    The C{.. code-block:: python} blocks of a reStructuredText file,
    dedented.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = []
    for match in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text):
        lines = [line[4:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines).strip() + "\n")
    return blocks


class EmbeddingDocTests(TestCase):
    """
    Each example of the embedding page.
    """

    def setUp(self) -> None:
        if not os.path.exists(DOC):
            raise AssertionError("docs/embedding.rst not found at " + DOC)
        self.blocks = pythonBlocks(DOC)
        self.addCleanup(logs.setLevel, "info")

    def run_(self, index: int) -> tuple[dict[str, Any], str]:
        namespace: dict[str, Any] = {}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(self.blocks[index].replace("6380", "0"), DOC, "exec"), namespace)
        return namespace, out.getvalue()

    def test_fourExamples(self) -> None:
        """
        The page has the four examples these tests run.
        """
        self.assertEqual(len(self.blocks), 4)

    def test_makeProxyService(self) -> None:
        """
        The first example adds to the application a service whose child
        C{proxy} is the proxy, with the redis protocol and the delay behavior.
        """
        namespace, _ = self.run_(0)
        [service] = list(namespace["application"])
        proxy = service.getServiceNamed("proxy")
        self.assertEqual(proxy.factory.handler.name, "redis")
        self.assertEqual(proxy.factory.table.behaviors["delay"].settings["sleep"], 0.5)

    def test_configurationError(self) -> None:
        """
        The second example prints the error its comment shows.
        """
        _, printed = self.run_(1)
        self.assertEqual(printed.strip(), "weight 120 in '120:delay' is not between 0 and 100")

    def test_configurationAlone(self) -> None:
        """
        The third example's assertions hold and it prints the table its
        comment shows.
        """
        namespace, printed = self.run_(2)
        self.assertEqual(printed.strip(), "50:delay,50:dummy")
        self.assertEqual(namespace["service"].getServiceNamed("proxy").factory.connectTimeout,
                         3.0)

    @defer.inlineCallbacks
    def test_factoryAlone(self) -> Generator[Any, Any, None]:
        """
        The fourth example listens (on port 0 here) with its backlog and
        changes the table.
        """
        namespace, _ = self.run_(3)
        port = yield namespace["listening"]
        self.addCleanup(port.stopListening)
        self.assertEqual(namespace["factory"].table.describe(), "100:delay")
