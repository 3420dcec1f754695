"""
The examples of docs/usage.rst run as tests: its command lines and INI
files parse, its usage error and configuration errors are the ones
txvaurien prints, and its statsd lines have statsd's shape.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Generator

from twisted.internet import defer
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from txvaurien import tap
from txvaurien.test.test_cli import runTwistd

USAGE = FilePath(__file__).parent().parent().parent().child("docs").child("usage.rst")


def literalBlocks() -> list[list[str]]:
    """
    The literal blocks (after C{::}) of docs/usage.rst, dedented.
    """
    lines = USAGE.getContent().decode("utf-8").splitlines()
    blocks: list[list[str]] = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::") and not lines[i].lstrip().startswith(".."):
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            blocks.append(block)
        else:
            i += 1
    return blocks


def parse(args: list[str]) -> Any:
    options = tap.Options()
    options.parseOptions(args)
    return options


class UsageDocTests(TestCase):
    """
    docs/usage.rst's examples.
    """

    timeout = 60

    def test_commandLinesParse(self) -> None:
        """
        Every C{twistd ... vaurien ...} command line of a literal block is
        accepted by the options parser.
        """
        commands = []
        for block in literalBlocks():
            text = "\n".join(block).replace("\\\n", " ")
            for line in text.splitlines():
                if line.startswith("twistd") and " vaurien " in line:
                    commands.append(line)
        self.assertGreaterEqual(len(commands), 1)
        for command in commands:
            words = shlex.split(command)
            args = words[words.index("vaurien") + 1:]
            if "--backed" in args:
                continue
            parse(args)

    def test_iniFilesParse(self) -> None:
        """
        Every INI example (a block starting with C{[vaurien]}) is accepted,
        Vaurien's settings included.
        """
        blocks = [b for b in literalBlocks() if b and b[0] == "[vaurien]"]
        self.assertGreaterEqual(len(blocks), 2)
        for block in blocks:
            path = FilePath(self.mktemp())
            path.setContent("\n".join(block).encode("utf-8") + b"\n")
            parse(["--config", path.path])

    @defer.inlineCallbacks
    def test_usageErrorAsShown(self) -> Generator[Any, Any, None]:
        """
        The usage error shown is what C{twistd -n vaurien --backed demo}
        prints.
        """
        [block] = [b for b in literalBlocks() if b and b[0].startswith("$ twistd")]
        code, out = yield runTwistd(shlex.split(block[0])[4:])
        self.assertEqual(code, 1)
        self.assertEqual(out.rstrip("\n").splitlines(), block[1:])

    def test_configErrorsAsShown(self) -> None:
        """
        The three configuration errors shown are the ones printed for such
        files.
        """
        [block] = [b for b in literalBlocks() if b and b[0].startswith("config file")]
        files = [
            (b"[vaurien]\nbackend = h:1\n[behavior:delay]\nslep = 0.1\n", "vaurien.ini"),
            (b"[vaurien]\nbackend = h:1\n\n\n\n\n\n\n[behavior:delay\nsleep = 1\n", "vaurien.ini"),
            (b"\xff\xfe\x00garbage", "b.ini"),
        ]
        self.assertEqual(len(block), len(files))
        for (content, shown), expected in zip(files, block):
            path = FilePath(self.mktemp())
            path.setContent(content)
            with self.assertRaises(UsageError) as caught:
                parse(["--config", path.path])
            self.assertEqual(str(caught.exception).replace(repr(path.path), repr(shown)),
                             expected)

    def test_statsdLinesShape(self) -> None:
        """
        The statsd lines shown have statsd's C{name:value|type} shape.
        """
        [block] = [b for b in literalBlocks() if b and b[0].startswith("vaurien.vaurien.")]
        for line in block:
            self.assertRegex(line, r"^[\w.]+:\d+\|[cg]$")
            self.assertTrue(re.match(r"^vaurien\.vaurien\.", line))
