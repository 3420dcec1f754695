"""
docs/tls.rst and the TLS behaviors' examples: the reference tables are
the declarations', every command line shown is accepted, and the
examples of routing by the HTTP Host run as shown.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.web import server

from txvaurien import tap
from txvaurien.registry import Registry
from txvaurien.test.servers import freePort, listenBackend, requireBinary
from txvaurien.test.tlshelpers import Named, TestCertificates, curl
from txvaurien.tls.client import BACKEND_OPTIONS
from txvaurien.tls.reference import keywordTable
from txvaurien.tls.server import SERVER_OPTIONS

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "tls.rst")


def _commands(text: str) -> list[list[str]]:
    """
    The C{twistd -n vaurien} command lines of a text, as argument lists.
    """
    found = []
    for match in re.finditer(r"twistd -n vaurien (?:\\\n|[^\n])*", text):
        found.append(shlex.split(match.group(0).replace("\\\n", " ")))
    return found


def _section(text: str, title: str) -> str:
    """
    The body of the section of C{text} titled C{title}, up to the next
    title.
    """
    start = text.index(title + "\n" + "-" * len(title))
    end = re.search(r"\n[^\n]+\n-{3,}\n", text[start + 2 * len(title) + 2:])
    return text[start:start + 2 * len(title) + 2 + end.start()] if end else text[start:]


def _sessions(text: str) -> list[tuple[list[str], str]]:
    """
    The C{$ curl ...} lines of a text, as argument lists, each with the
    output shown under it.
    """
    found = []
    for match in re.finditer(r"^ +\$ (curl .*)\n((?: +[^$ \n].*\n)*)", text, re.M):
        found.append((shlex.split(match.group(1)),
                      "\n".join(line.strip() for line in match.group(2).splitlines())))
    return found


class TLSDocsTests(TestCase):
    """
    The TLS page and examples.
    """

    timeout = 60

    def setUp(self) -> None:
        certs = TestCertificates(self)
        # The files the examples name, in a directory of their own.
        self.directory = os.path.join(certs.directory, "examples")
        os.mkdir(self.directory)
        for source, name in ((certs.keyFile, "key.pem"), (certs.certFile, "cert.pem"),
                             (certs.caFile, "ca.pem"), (certs.caKeyFile, "ca.key"),
                             (certs.clientCAFile, "clients.pem")):
            shutil.copy(source, os.path.join(self.directory, name))
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        with open(DOC, encoding="utf-8") as f:
            self.text = f.read()

    def test_referenceTablesAreTheDeclarations(self) -> None:
        """
        The keyword tables of docs/tls.rst are those made from
        C{SERVER_OPTIONS} and C{BACKEND_OPTIONS} (regenerate them with
        L{keywordTable} when a declaration changes).
        """
        self.assertIn(keywordTable(SERVER_OPTIONS), self.text)
        self.assertIn(keywordTable(BACKEND_OPTIONS), self.text)

    def test_pageCommandsParse(self) -> None:
        """
        Every C{twistd -n vaurien} command of docs/tls.rst is accepted by
        C{twistd vaurien}'s options (files checked, CA directory made).
        """
        commands = _commands(self.text)
        self.assertGreaterEqual(len(commands), 6)
        for argv in commands:
            options = tap.Options()
            options.parseOptions(argv[3:])
        self.assertTrue(os.path.exists(os.path.join("vaurien-ca", "ca.pem")))

    def test_behaviorExamplesParse(self) -> None:
        """
        The example of each C{tls_*} behavior's docstring is accepted and
        selects that behavior.
        """
        registry = Registry.discover(thirdParty=False)
        names = [b.name for b in registry.behaviors if b.name.startswith("tls_")]
        self.assertEqual(sorted(names), ["tls_alert", "tls_certificate", "tls_delay",
                                         "tls_old_version"])
        for name in names:
            doc = type(registry.behaviors.get(name)).__doc__ or ""
            example = doc.split("Example::", 1)[1].strip().split("\n\n", 1)[0]
            (argv,) = _commands(example)
            options = tap.Options()
            options.parseOptions(argv[3:])
            self.assertIn(name, options["behavior"])

    @defer.inlineCallbacks
    def test_hostRoutingExamplesRun(self) -> Generator[Any, Any, None]:
        """
        Each command of "Routing by the HTTP Host" runs (its ports made
        free ones, C{8080} and C{8081} real backends answering C{I am api}
        and C{I am www}), and each curl shown under it prints what is
        shown.
        """
        from twisted.internet import reactor

        requireBinary("curl", "curl")
        section = _section(self.text, "Routing by the HTTP Host")
        ports = {
            "8080": str(listenBackend(self, server.Site(Named("api")))),
            "8081": str(listenBackend(self, server.Site(Named("www")))),
            "8000": str(freePort()),
            "8443": str(freePort()),
        }

        def local(words: list[str]) -> list[str]:
            for port, used in ports.items():
                words = [word.replace(port, used) for word in words]
            return words

        blocks = section.split("twistd -n vaurien ")[1:]
        self.assertEqual(len(blocks), 2)
        shown = 0
        for block in blocks:
            [argv] = _commands("twistd -n vaurien " + block)
            options = tap.Options()
            options.parseOptions(local(argv[3:]))
            service = tap.makeService(options, reactor)
            service.startService()
            self.addCleanup(service.stopService)
            for words, expected in _sessions(block):
                out, err, code = yield curl(*local(words[1:]))
                self.assertEqual((code, out.decode().strip()), (0, expected), err)
                shown += 1
        self.assertEqual(shown, 5)
