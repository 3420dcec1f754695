"""
Tests that README.md's commands work as written: the run command's
C{twistd} line can run twice in one directory (as the run command and the
test suite do), and the commands CI reads sit on one line after their
markers.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Generator

from twisted.internet import defer, reactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien.test.controlhelpers import PROXY_LISTENING, TWISTD, ChildOutput, childEnvironment

README = FilePath(__file__).parent().parent().parent().child("README.md")


def markedCommand(marker: str) -> str:
    """
    The command on the line after the fence that follows C{marker}, as
    C{.ci/run} reads it.
    """
    lines = README.getContent().decode("utf-8").splitlines()
    index = lines.index("<!-- {} -->".format(marker))
    assert lines[index + 1].startswith("```"), lines[index + 1]
    return lines[index + 2]


class ReadmeTests(TestCase):
    """
    The README's commands.
    """

    timeout = 60

    def test_markedCommandsAreOneLine(self) -> None:
        """
        The run and test commands follow their markers, each whole on one
        line, and the test venv is ignored by git.
        """
        run = markedCommand("ci:run")
        test = markedCommand("ci:test")
        self.assertIn("twistd -n --pidfile= vaurien --backend demo", run)
        self.assertFalse(run.endswith("\\") or test.endswith("\\"))
        self.assertIn("tox", test)
        ignored = README.sibling(".gitignore").getContent().decode("utf-8").splitlines()
        self.assertIn(".venv-test/", ignored)

    def spawn(self, directory: str, args: list[str]) -> ChildOutput:
        output = ChildOutput(PROXY_LISTENING)
        process = reactor.spawnProcess(
            output, sys.executable, [sys.executable, "-c", TWISTD, *args],
            env=childEnvironment(), path=directory)

        def stop() -> Any:
            if output.ended.called:
                return None
            process.signalProcess("TERM")
            return output.ended

        self.addCleanup(stop)
        return output

    @defer.inlineCallbacks
    def test_runCommandTwiceInOneDirectory(self) -> Generator[Any, Any, None]:
        """
        The run command's twistd line, started twice in the same directory
        (on ephemeral ports), starts both times and leaves no twistd.pid.
        """
        run = markedCommand("ci:run").split("&&")[-1]
        words = shlex.split(run)
        self.assertTrue(words[0].endswith("twistd"), run)
        args = words[1:] + ["--proxy", "tcp:0:interface=127.0.0.1", "--shutdown-grace", "0"]
        directory = self.mktemp()
        os.makedirs(directory)
        first = self.spawn(directory, args)
        yield first.ready
        second = self.spawn(directory, args)
        yield second.ready
        self.assertFalse(FilePath(directory).child("twistd.pid").exists())
        self.assertNotIn(b"Another twistd server is running", first.output + second.output)
