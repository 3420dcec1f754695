"""
docs/tls.rst and the TLS behaviors' examples: the reference tables are
the declarations', and every command line shown is accepted.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil

from twisted.trial.unittest import TestCase

from txvaurien import tap
from txvaurien.registry import Registry
from txvaurien.test.tlshelpers import TestCertificates
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


class TLSDocsTests(TestCase):
    """
    The TLS page and examples.
    """

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
