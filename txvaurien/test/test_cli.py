"""
Tests of what a person meets first: C{twistd vaurien} run as a child
process, its usage errors, C{--help}, C{--help-behavior(s)},
C{--help-protocol(s)} and C{--version}.
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import Any, Generator

from twisted.internet import defer, reactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien import __version__, clihelp, scopes, tap
from txvaurien.test.controlhelpers import (
    PROXY_LISTENING,
    ChildOutput,
    _spawn,
    assertTwistdFails,
    childEnvironment,
    spawnTwistd,
    twistdArguments,
)
from txvaurien.test.helpers import testRegistry


#: A pattern no output matches.
NEVER = re.compile(rb"(?!)")


@defer.inlineCallbacks
def runTwistd(args: list[str]) -> Generator[Any, Any, tuple[int, str]]:
    """
    Run C{twistd -n vaurien ARGS} to its end.

    @return: a L{Deferred} firing with its exit code and its output.
    """
    output, _ = _spawn(twistdArguments(args), NEVER)
    output.ready.addErrback(lambda _: None)
    code, _ = yield output.ended
    return code, output.output.decode("utf-8")


class UsageErrorTests(TestCase):
    """
    A usage error prints its reason, a suggestion and where to get help,
    in a few lines.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_mistypedFlagSuggestsTheClosestOne(self) -> Generator[Any, Any, None]:
        """
        C{--backed demo} exits with 1 and at most 5 lines naming the
        unknown option, suggesting C{--backend} and pointing to C{--help}.
        """
        out = yield assertTwistdFails(
            self, ["--backed", "demo"],
            b"option --backed not recognized (did you mean --backend?)",
            b"twistd vaurien --help")
        lines = out.decode("utf-8").strip().splitlines()
        self.assertLessEqual(len(lines), 5, out)
        self.assertNotIn("--behavior-delay-sleep", out.decode("utf-8"))

    @defer.inlineCallbacks
    def test_invalidValueIsShort(self) -> Generator[Any, Any, None]:
        """
        An invalid value is reported with its reason in at most 5 lines,
        without the option list.
        """
        out = yield assertTwistdFails(
            self, ["--backend", "demo", "--timeout", "soon"],
            b"timeout: expected number > 0, got 'soon'")
        self.assertLessEqual(len(out.strip().splitlines()), 5, out)

    def test_farFetchedFlagGetsNoSuggestion(self) -> None:
        """
        An unknown option far from every known one is reported without a
        suggestion; one close to a generated plugin option gets it.
        """
        known = clihelp.longOptions(tap.buildOptions(testRegistry())())
        self.assertEqual(clihelp.explain("option --zzzzzz not recognized", known),
                         "option --zzzzzz not recognized")
        self.assertEqual(
            clihelp.explain("option --behavior-dealy-sleep not recognized", known),
            "option --behavior-dealy-sleep not recognized "
            "(did you mean --behavior-delay-sleep?)")
        self.assertEqual(clihelp.explain("option --seed requires argument", known),
                         "option --seed requires argument")


    @defer.inlineCallbacks
    def test_binaryConfigFile(self) -> Generator[Any, Any, None]:
        """
        A binary C{--config} file stops twistd with a one-line reason
        naming the file, and no traceback.
        """
        path = FilePath(self.mktemp())
        path.setContent(b"\xff\xfe\x00garbage")
        out = yield assertTwistdFails(
            self, ["--config", path.path],
            "config file {!r}: not UTF-8 text".format(path.path).encode("utf-8"))
        self.assertLessEqual(len(out.strip().splitlines()), 5, out)


class HelpTests(TestCase):
    """
    C{--help} starts with the essential options and explains the common
    behavior options once.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_helpStartsWithEssentialOptions(self) -> Generator[Any, Any, None]:
        """
        The first options listed are --proxy, --backend, --protocol,
        --behavior, --seed and --http, in that order; direction and toxicity
        are not described once per behavior; the help is far shorter than
        one line per generated option.
        """
        code, out = yield runTwistd(["--help"])
        self.assertEqual(code, 0, out)
        options = re.findall(r"(?m)^  (?:-\w, |    )(--[\w-]+)", out)
        self.assertEqual(options[:6], ["--proxy", "--backend", "--protocol",
                                       "--behavior", "--seed", "--http"])
        self.assertEqual(out.count("Which way the behavior acts"), 0)
        self.assertLess(len(out.splitlines()), 160)
        self.assertIn("--help-behavior NAME", out)
        self.assertNotIn("599s", out)

    @defer.inlineCallbacks
    def test_helpIntoAClosedPipe(self) -> Generator[Any, Any, None]:
        """
        C{--help | true}: when the reader has gone before the help is
        written, twistd exits with 0 quietly, without a traceback.
        """
        command = "{{ {} {}; echo status $? >&2; }} | true".format(
            shlex.quote(sys.executable),
            " ".join(shlex.quote(a) for a in twistdArguments(["--help"])))
        output = ChildOutput(NEVER)
        output.ready.addErrback(lambda _: None)
        reactor.spawnProcess(output, "/bin/sh", ["/bin/sh", "-c", command],
                             env=childEnvironment())
        yield output.ended
        self.assertEqual(output.output.strip(), b"status 0")

    @defer.inlineCallbacks
    def test_helpBehaviorsExplainsCommonOptionsOnce(self) -> Generator[Any, Any, None]:
        """
        C{--help-behaviors} describes direction and toxicity once, then
        each behavior's own options with their units.
        """
        code, out = yield runTwistd(["--help-behaviors"])
        self.assertEqual(code, 0, out)
        self.assertEqual(out.count("Which way the behavior acts"), 1)
        self.assertIn("behavior limit_data:", out)
        self.assertIn("bare number in milliseconds", out)
        self.assertIn("comma-separated list, each integer >= 100 and <= 599]", out)

    @defer.inlineCallbacks
    def test_helpOneBehavior(self) -> Generator[Any, Any, None]:
        """
        C{--help-behavior slow-open} describes that behavior alone, with
        its delay in milliseconds and its direction; an unknown name is a
        usage error listing the known ones.
        """
        code, out = yield runTwistd(["--help-behavior", "slow-open"])
        self.assertEqual(code, 0, out)
        self.assertTrue(out.startswith("behavior slow_open:"), out)
        self.assertIn("--behavior-slow-open-OPTION", out)
        self.assertIn("(default: 1000ms)", out)
        self.assertIn("direction=", out)
        self.assertNotIn("behavior latency", out)
        yield assertTwistdFails(self, ["--help-behavior", "nope"],
                                b"unknown behavior 'nope'; known: abort")

    @defer.inlineCallbacks
    def test_helpOneProtocol(self) -> Generator[Any, Any, None]:
        """
        C{--help-protocol http} lists the http handler's options.
        """
        code, out = yield runTwistd(["--help-protocol", "http"])
        self.assertEqual(code, 0, out)
        self.assertIn("protocol http:", out)
        self.assertIn("parser=", out)

    def test_seedDefaultSaidOnce(self) -> None:
        """
        C{--seed}, which has no default value, says what happens without
        it once, not followed by C{(default: none)}.
        """
        options = tap.buildOptions(testRegistry())()
        out = clihelp.fullUsage(options, tap.CORE, {"proxy": "p", "backend": "b"}, 200)
        [seed] = [line for line in out.splitlines() if "--seed=" in line]
        self.assertEqual(seed.count("default"), 1, seed)


class VersionTests(TestCase):
    """
    C{twistd vaurien --version} names txvaurien and its version.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_version(self) -> Generator[Any, Any, None]:
        """
        It prints C{txvaurien VERSION} and exits with 0.
        """
        code, out = yield runTwistd(["--version"])
        self.assertEqual(code, 0, out)
        self.assertTrue(out.startswith("txvaurien {} (Twisted ".format(__version__)), out)

    def test_versionInOnePlace(self) -> None:
        """
        The package's version is the one C{_version.py} declares, which is
        what C{setup.py} reads.
        """
        from txvaurien import _version

        self.assertEqual(__version__, _version.__version__)
        with open(_version.__file__.replace(".pyc", ".py"), encoding="utf-8") as f:
            self.assertIn('__version__ = "{}"'.format(__version__), f.read())


class ScopeWarningTests(TestCase):
    """
    A behavior that cannot act under the chosen scope is warned about at
    start.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_slowOpenUnderRequestScopeWarns(self) -> Generator[Any, Any, None]:
        """
        C{--backend demo --behavior 50:slow-open} (HTTP, request scope)
        logs a warning naming slow_open and the way out; C{slow_open} under
        connection scope and C{delay} under request scope do not.
        """
        _, output = yield spawnTwistd(self, [
            "--backend", "demo", "--behavior", "50:slow-open,10:delay",
            "--proxy", "tcp:0:interface=127.0.0.1", "--shutdown-grace", "0"], PROXY_LISTENING)
        text = output.output.decode("utf-8")
        [line] = [line for line in text.splitlines() if "#warn]" in line]
        self.assertIn("behavior slow_open acts only under connection scope; under request "
                      "scope (protocol http) it does nothing: add --behavior-scope "
                      "connection", line)
        options = tap.buildOptions(testRegistry())()
        options.parseOptions(["--backend", "h:1", "--behavior", "slow_open+slow_close"])
        self.assertEqual(scopes.idle(options.table), [])
        options = tap.buildOptions(testRegistry())()
        options.parseOptions(["--backend", "h:1", "--protocol", "lines",
                              "--behavior", "slow_open+slow_close+delay"])
        self.assertEqual(scopes.idle(options.table), ["slow_close", "slow_open"])

    def test_everyBuiltinDeclaresItsScopes(self) -> None:
        """
        Every built-in behavior declares a non-empty subset of the scopes;
        only slow_open and slow_close are limited to connection scope.
        """
        from txvaurien.registry import Registry

        limited = []
        for behavior in Registry.discover(thirdParty=False).behaviors:
            self.assertTrue(behavior.scopes, behavior.name)
            self.assertTrue(set(behavior.scopes) <= set(scopes.ALL), behavior.name)
            if tuple(behavior.scopes) != scopes.ALL:
                limited.append(behavior.name)
        self.assertEqual(limited, ["slow_close", "slow_open"])
