"""
Unit tests of the control plane's parts that need no network: JSON as Go
spells it (L{txvaurien.control.jsonio}), toxics as behaviors
(L{txvaurien.control.toxics}), proxy lists (L{txvaurien.control.config}).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from txvaurien.control import errors
from txvaurien.control.config import loadConfig, parseProxy, parseProxyList
from txvaurien.control.jsonio import (
    BodyError,
    decodeGo,
    decodeStrict,
    float32,
    goField,
    goJSON,
)
from txvaurien.control.toxics import buildToxic, toxicTypes, updateToxic
from txvaurien.test.helpers import testRegistry


class GoJSONTests(TestCase):
    """
    L{goJSON} and friends write and read JSON as Go's C{encoding/json}.
    """

    def test_encoding(self) -> None:
        """
        Compact, in key order, integral floats without a fraction, C{<>&}
        escaped, other characters as UTF-8.
        """
        self.assertEqual(
            goJSON({"b": 1.0, "a": [0.5, 2, True, None], "s": "<a&b> é"}),
            '{"b":1,"a":[0.5,2,true,null],"s":"\\u003ca\\u0026b\\u003e é"}'.encode("utf-8"))
        self.assertEqual(goJSON({"big": 1e21, "small": 1e-7}), b'{"big":1e+21,"small":1e-07}')

    def test_float32(self) -> None:
        """
        A toxicity is printed as Go prints a C{float32}: the shortest
        decimal that reads back as the same C{float32}.
        """
        self.assertEqual(float32(0.1), 0.1)
        self.assertEqual(float32(0.123456789), 0.12345679)
        self.assertEqual(float32(1.0), 1.0)

    def test_decodeGo(self) -> None:
        """
        The first value is read and what follows ignored; an empty body is
        C{EOF}, a cut one C{unexpected EOF}; C{NaN} is not JSON.
        """
        self.assertEqual(decodeGo(b' {"a": 1} trailing'), {"a": 1})
        for body, message in [(b"", "EOF"), (b"  \n", "EOF"), (b'{"a": ', "unexpected EOF"),
                              (b'{"a', "unexpected EOF")]:
            with self.assertRaises(BodyError) as caught:
                decodeGo(body)
            self.assertEqual(str(caught.exception), message)
        with self.assertRaises(BodyError) as caught:
            decodeGo(b'{"a": NaN}')
        self.assertIn("invalid character 'N'", str(caught.exception))

    def test_decodeStrict(self) -> None:
        """
        Vaurien's API reads exactly one value, UTF-8, no C{NaN}.
        """
        self.assertEqual(decodeStrict(b'{"a": [1]}'), {"a": [1]})
        for body in [b"", b'{"a": 1} x', b'{"a": Infinity}', b"\xff"]:
            self.assertRaises(BodyError, decodeStrict, body)

    def test_goField(self) -> None:
        """
        Fields match exactly first, then ignoring case, as Go's decoder
        matches struct fields.
        """
        self.assertEqual(goField({"Name": 1, "name": 2}, "name"), (True, 2))
        self.assertEqual(goField({"NAME": 1}, "name"), (True, 1))
        self.assertEqual(goField({}, "name"), (False, None))


class ToxicTests(TestCase):
    """
    L{buildToxic} and L{updateToxic}.
    """

    def setUp(self) -> None:
        self.registry = testRegistry()

    def test_types(self) -> None:
        """
        Every behavior that can act is a toxic type; C{dummy} is not.
        """
        types = toxicTypes(self.registry)
        self.assertIn("latency", types)
        self.assertIn("slowdown", types)
        self.assertNotIn("dummy", types)

    def test_configuredBehavior(self) -> None:
        """
        A toxic is a configured behavior of its own, whose direction is the
        stream and whose toxicity is the toxic's; attribute names match
        ignoring case and C{null} values are left at their default.
        """
        toxic = buildToxic(self.registry, {
            "type": "latency", "stream": "Upstream", "toxicity": 0.5,
            "attributes": {"LATENCY": 30, "jitter": None}}, set())
        self.assertEqual(toxic.name, "latency_Upstream")
        self.assertEqual(toxic.behavior.settings, {
            "latency": 30.0, "jitter": 0.0, "distribution": "uniform",
            "direction": "upstream", "toxicity": 0.5, "match": None})
        other = buildToxic(self.registry, {"type": "latency"}, set())
        self.assertIsNot(other.behavior, toxic.behavior)
        self.assertEqual(other.behavior.settings["direction"], "downstream")

    def test_updateInPlace(self) -> None:
        """
        An update changes the live settings in place and says whether the
        toxicity changed; a bad one changes nothing.
        """
        toxic = buildToxic(self.registry, {"type": "latency",
                                           "attributes": {"latency": 5}}, set())
        settings = toxic.behavior.settings
        self.assertFalse(updateToxic(toxic, {"attributes": {"jitter": 2}}))
        self.assertIs(toxic.behavior.settings, settings)
        self.assertEqual((settings["latency"], settings["jitter"]), (5.0, 2.0))
        self.assertTrue(updateToxic(toxic, {"toxicity": 0.25}))
        with self.assertRaises(errors.ApiError) as caught:
            updateToxic(toxic, {"attributes": {"jitter": 1, "latency": -1}})
        self.assertEqual(caught.exception.status, 400)
        self.assertEqual((settings["latency"], settings["jitter"]), (5.0, 2.0))


class ProxyListTests(TestCase):
    """
    L{parseProxyList}, L{parseProxy} and L{loadConfig}.
    """

    def setUp(self) -> None:
        self.registry = testRegistry()
        self.reactor = MemoryReactorClock()

    def parse(self, value: Any) -> Any:
        return parseProxyList(self.reactor, self.registry, value)

    def assertRefused(self, value: Any, message: str, status: int = 400) -> None:
        with self.assertRaises(errors.ApiError) as caught:
            self.parse(value)
        self.assertEqual((caught.exception.status, caught.exception.message),
                         (status, message))

    def test_parse(self) -> None:
        """
        Entries become specs with their endpoint strings and toxics;
        C{enabled} defaults to true, C{listen} to 127.0.0.1:0; an entry
        with no C{toxics} key keeps L{None} (existing toxics are kept).
        """
        first, second = self.parse([
            {"name": "a", "upstream": "127.0.0.1:1", "listen": ":7000",
             "toxics": [{"type": "latency"}, {"type": "latency", "stream": "upstream"}]},
            {"name": "b", "upstream": "tcp:host=h:port=2", "enabled": False}])
        self.assertEqual((first.name, first.listen, first.description, first.enabled),
                         ("a", ":7000", "tcp:7000", True))
        self.assertEqual([t.name for t in first.toxics],
                         ["latency_downstream", "latency_upstream"])
        self.assertEqual((second.listen, second.description, second.enabled, second.toxics),
                         ("127.0.0.1:0", "tcp:0:interface=127.0.0.1", False, None))
        self.assertEqual(self.parse(None), [])

    def test_refused(self) -> None:
        """
        The whole list is checked; the first bad entry is named by its
        position, as Toxiproxy names it.
        """
        self.assertRefused({"name": "a"}, (
            "bad request body: json: cannot unmarshal object into Go value of type "
            "[]struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }"))
        self.assertRefused([{"name": "a", "upstream": "h:1"}, {"upstream": "h:1"}],
                           "missing required field: name at proxy 2")
        self.assertRefused([{"name": "a"}], "missing required field: upstream at proxy 1")
        self.assertRefused([{"name": "a", "upstream": "h:1"}, {"name": "a", "upstream": "h:1"}],
                           'bad request body: duplicate proxy name "a"')
        self.assertRefused([{"name": "a", "upstream": "h:1", "toxics": [
            {"type": "latency"}, {"type": "latency"}]}],
            "toxic already exists (toxic 2 at proxy 1)", 409)
        self.assertRefused([{"name": "a", "upstream": "h:1", "toxics": {}}],
                           "bad request body: json: cannot unmarshal object into Go struct "
                           "field Proxy.toxics of type []toxics.ToxicWrapper")
        self.assertRefused([{"name": "a", "upstream": "h:1", "listen": "x:y:z"}],
                           "bad request body: listen: cannot listen on 'x:y:z': Unknown "
                           "endpoint type: 'x'")
        self.assertRefused([7], "bad request body: json: cannot unmarshal value into Go "
                           "value of type toxiproxy.Proxy")

    def test_taken(self) -> None:
        """
        A taken name is refused with C{409} before the addresses are
        checked.
        """
        with self.assertRaises(errors.ApiError) as caught:
            parseProxy(self.reactor, self.registry,
                       {"name": "a", "upstream": "no good"}, taken={"a"})
        self.assertEqual(caught.exception.status, 409)

    def test_loadConfig(self) -> None:
        """
        A file is read strictly; errors name it.
        """
        path = FilePath(self.mktemp())
        path.setContent(json.dumps([{"name": "a", "upstream": "h:1"}]).encode("ascii"))
        [spec] = loadConfig(self.reactor, self.registry, path.path)
        self.assertEqual(spec.name, "a")
        path.setContent(b'[{"name": "a", "upstream": "h:1"}] extra')
        with self.assertRaises(ValueError) as caught:
            loadConfig(self.reactor, self.registry, path.path)
        self.assertIn("config file {!r}: invalid JSON: Extra data".format(path.path),
                      str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            loadConfig(self.reactor, self.registry, "/nonexistent/p.json")
        self.assertEqual(str(caught.exception),
                         "cannot read config file '/nonexistent/p.json': "
                         "No such file or directory")
