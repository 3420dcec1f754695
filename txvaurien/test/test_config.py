"""
Tests for L{txvaurien.config}: plain checked values from Python, INI and
JSON, without the command line; the import graph it makes possible; and
plugin discovery happening when options are made, not at import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from txvaurien import config, tap
from txvaurien.config import CORE, Configuration, ConfigurationError, fromValues, resolve
from txvaurien.control import toxiproxy_api
from txvaurien.control.errors import ApiError
from txvaurien.test.controlhelpers import childEnvironment
from txvaurien.test.helpers import testRegistry


def _child(code: str) -> dict[str, Any]:
    """
    Run C{code} in a fresh interpreter; it prints a JSON value as its
    last line, which is returned.
    """
    output = subprocess.run(
        [sys.executable, "-c", code], env=childEnvironment(), check=True,
        capture_output=True, timeout=120).stdout
    value: dict[str, Any] = json.loads(output.splitlines()[-1])
    return value


class ImportGraphTests(TestCase):
    """
    Embedding and the control plane do not import the command line.
    """

    def test_serviceAndControlDoNotImportTap(self) -> None:
        """
        Importing L{txvaurien.service}, L{txvaurien.control} and every
        control module in a fresh interpreter leaves L{txvaurien.tap}
        unimported: the service/tap/control cycle is gone.
        """
        found = _child(
            "import sys, json\n"
            "import txvaurien.service, txvaurien.control, txvaurien.config\n"
            "import txvaurien.control.server, txvaurien.control.manager\n"
            "import txvaurien.control.toxiproxy_api, txvaurien.control.vaurien_api\n"
            "print(json.dumps({'tap': 'txvaurien.tap' in sys.modules}))\n")
        self.assertEqual(found, {"tap": False})

    def test_importingTapDiscoversNothing(self) -> None:
        """
        Importing L{txvaurien.tap} (as twistd does to list its commands)
        does not scan for plugins; making its L{tap.Options} does.
        """
        found = _child(
            "import sys, json\n"
            "import txvaurien.tap, txvaurien.registry as r\n"
            "before = r._default is not None\n"
            "options = txvaurien.tap.Options()\n"
            "print(json.dumps({'before': before, 'after': r._default is not None,\n"
            "    'isOptions': isinstance(options, txvaurien.tap.Options),\n"
            "    'hasPluginFlags': 'behavior-delay-sleep' in options.longOpt\n"
            "        or 'behavior-delay-sleep=' in options.longOpt}))\n")
        self.assertEqual(found, {"before": False, "after": True, "isOptions": True,
                                 "hasPluginFlags": True})


class ConfigurationTests(TestCase):
    """
    L{resolve} and L{fromValues} build a L{Configuration}.
    """

    def setUp(self) -> None:
        self.registry = testRegistry()

    def build(self, **values: Any) -> Configuration:
        return fromValues(values, self.registry, MemoryReactorClock())

    def test_errorIsValueError(self) -> None:
        """
        L{ConfigurationError} is a L{ValueError}, not a L{UsageError}.
        """
        self.assertTrue(issubclass(ConfigurationError, ValueError))
        self.assertFalse(issubclass(ConfigurationError, UsageError))

    def test_fromValues(self) -> None:
        """
        Python values become checked plain values: defaults filled in,
        the scope resolved, the table and handler built.
        """
        built = self.build(backend="127.0.0.1:6379", behavior="20:delay",
                           behavior_options={"delay": {"sleep": 0.5}}, timeout=3)
        self.assertEqual(built["timeout"], 3.0)
        self.assertEqual(built["proxy"], [config.DEFAULT_LISTEN])
        self.assertEqual(built["behavior_scope"], "connection")
        self.assertIsNone(built["backlog"])
        self.assertEqual(built.table.describe(), "20:delay,80:dummy")
        self.assertEqual(built.table.behaviors["delay"].settings["sleep"], 0.5)
        self.assertEqual(built.handler.name, "tcp")
        self.assertEqual(set(built.core), set(CORE))

    def test_badValues(self) -> None:
        """
        Each bad value is a L{ConfigurationError} naming it.
        """
        for values, message in [
            ({"timeout": 0}, "--timeout"),
            ({"backlog": 0}, "--backlog"),
            ({"bakend": "h:2"}, "unknown option 'bakend'"),
            ({"behavior": "101:dummy"}, "101"),
            ({"behavior": "nosuch"}, "unknown behavior 'nosuch'"),
            ({"http_request_timeout": -1}, "--http-request-timeout"),
        ]:
            with self.assertRaises(ConfigurationError) as caught:
                self.build(backend="h:1", **values)
            self.assertIn(message, str(caught.exception), values)

    def test_iniFile(self) -> None:
        """
        An INI file's values are read, and values given directly win.
        """
        path = FilePath(self.mktemp())
        path.setContent(b"[vaurien]\nbackend = h:1\ntimeout = 4\nbacklog = 128\n"
                        b"behavior = 50:delay\n[behavior:delay]\nsleep = 2\n")
        built = resolve({"timeout": "5"}, {}, path.path, self.registry, MemoryReactorClock())
        self.assertEqual((built["timeout"], built["backlog"]), (5.0, 128))
        self.assertEqual(built.table.behaviors["delay"].settings["sleep"], 2.0)
        self.assertEqual(built.path, path.path)

    def test_iniErrorsNameTheFile(self) -> None:
        """
        An unreadable, non-UTF-8 or invalid file is a
        L{ConfigurationError} naming the file.
        """
        binary = FilePath(self.mktemp())
        binary.setContent(b"\xff\xfe\x00garbage")
        unknown = FilePath(self.mktemp())
        unknown.setContent(b"[vaurien]\nnosuch = 1\n")
        for path in ["/nonexistent/x.ini", binary.path, unknown.path]:
            with self.assertRaises(ConfigurationError) as caught:
                resolve({"backend": "h:1"}, {}, path, self.registry, MemoryReactorClock())
            self.assertIn(repr(path), str(caught.exception))

    def test_jsonFile(self) -> None:
        """
        A JSON file is a Toxiproxy proxy list: L{Configuration.proxies}.
        """
        path = FilePath(self.mktemp() + ".json")
        path.setContent(json.dumps([
            {"name": "redis", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:6379"},
        ]).encode("utf-8"))
        built = resolve({}, {}, path.path, self.registry, MemoryReactorClock())
        self.assertEqual([p.name for p in built.proxies], ["redis"])
        self.assertIsNone(built["backend"])

    def test_tapTranslatesToUsageError(self) -> None:
        """
        The command line reports a L{ConfigurationError} as a
        L{UsageError} with the same message.
        """
        options = tap.buildOptions(self.registry)()
        with self.assertRaises(UsageError) as caught:
            options.parseOptions(["--backend", "h:1", "--backlog", "0"])
        self.assertIn("--backlog", str(caught.exception))


class GoTypeTests(TestCase):
    """
    Go's JSON type checks belong to the Toxiproxy API module.
    """

    def test_goTypeInToxiproxyAPI(self) -> None:
        """
        L{toxiproxy_api.goType} reads a field case-insensitively, gives
        L{None} for a missing or null one, and refuses another type with
        Go's message; the manager no longer has Go checks.
        """
        from txvaurien.control import manager

        self.assertEqual(toxiproxy_api.goType({"Listen": "a:1"}, "listen", str, "string"),
                         "a:1")
        self.assertIsNone(toxiproxy_api.goType({"enabled": None}, "enabled", bool, "bool"))
        self.assertIsNone(toxiproxy_api.goType({}, "enabled", bool, "bool"))
        with self.assertRaises(ApiError) as caught:
            toxiproxy_api.goType({"enabled": "yes"}, "enabled", bool, "bool")
        self.assertEqual(
            caught.exception.message,
            "bad request body: json: cannot unmarshal string into Go struct field "
            "Proxy.enabled of type bool")
        self.assertFalse(hasattr(manager, "_field"))
        self.assertFalse(hasattr(manager, "goField"))
