"""
Tests for L{txvaurien.registry}: finding behaviors and protocol handlers.
"""

from __future__ import annotations

import sys
import types

from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txvaurien.behaviors.dummy import Dummy
from txvaurien.interfaces import IBehavior, IProtocolHandler, IProtocolSession
from txvaurien.protocols.tcp import TCP
from txvaurien.registry import Registry, UnknownPlugin
from txvaurien.test import plugins
from txvaurien.test.helpers import Harness

PLUGIN_MODULE = """
from txvaurien.behaviors.base import Behavior

class Sabotage(Behavior):
    '''A third-party behavior.'''
    name = "sabotage"
    options = {"level": ("How bad", int, 3)}

sabotage = Sabotage()
"""


class BuiltinTests(TestCase):
    """
    Built-in plugins are found by scanning their packages.
    """

    def test_builtinsFound(self) -> None:
        """
        C{dummy} and C{tcp} are found by name, and provide their
        interfaces.
        """
        registry = Registry.discover(thirdParty=False)
        dummy = registry.behaviors.get("dummy")
        tcp = registry.protocols.get("tcp")
        self.assertIsInstance(dummy, Dummy)
        self.assertIsInstance(tcp, TCP)
        verifyObject(IBehavior, dummy)
        verifyObject(IProtocolHandler, tcp)

    def test_everyBuiltinProvidesItsInterface(self) -> None:
        """
        Every built-in behavior and protocol handler, whoever wrote it,
        provides its interface, and so does a configured copy.
        """
        registry = Registry.discover(thirdParty=False)
        for behavior in registry.behaviors:
            verifyObject(IBehavior, behavior)
            verifyObject(IBehavior, behavior.configure({}))
        for handler in registry.protocols:
            verifyObject(IProtocolHandler, handler)
            verifyObject(IProtocolHandler, handler.configure({}))

    def test_tcpSessionProvidesIProtocolSession(self) -> None:
        """
        The C{tcp} session provides L{IProtocolSession}, is passthrough,
        and answers errors with random bytes of the configured size.
        """
        harness = Harness()
        client = harness.accept()
        session = client.protocol.connection.session
        verifyObject(IProtocolSession, session)
        self.assertTrue(session.passthrough)
        self.assertEqual(len(session.errorReply(None, "x")), 64)
        self.assertEqual(session.connectFailed("refused"), b"")

    def test_configureMakesIndependentCopies(self) -> None:
        """
        C{configure} gives a new instance with its own settings; the
        template keeps its defaults.
        """
        template = plugins.SlowDown()
        copy = template.configure({"seconds": 3.0})
        self.assertIsNot(copy, template)
        self.assertEqual(copy.settings["seconds"], 3.0)
        self.assertEqual(template.settings["seconds"], 1.0)
        copy.settings["seconds"] = 4.0
        self.assertEqual(template.settings["seconds"], 1.0)

    def test_dashesNameUnderscoredPlugins(self) -> None:
        """
        A name with dashes finds the plugin whose name has underscores in
        their place (C{limit-data} is C{limit_data}), and the names listed
        keep their registered spelling.
        """
        registry = Registry.discover(thirdParty=False)
        self.assertIs(registry.behaviors.get("limit-data"),
                      registry.behaviors.get("limit_data"))
        self.assertIs(registry.behaviors.get(" slow-open "),
                      registry.behaviors.get("slow_open"))
        self.assertIn("limit_data", registry.behaviors.names())
        self.assertNotIn("limit-data", registry.behaviors.names())

    def test_unknownName(self) -> None:
        """
        An unknown name is refused with the list of known names.
        """
        registry = Registry.discover(thirdParty=False)
        with self.assertRaises(UnknownPlugin) as caught:
            registry.protocols.get("gopher")
        self.assertIn("unknown protocol 'gopher'", str(caught.exception))
        self.assertIn("tcp", str(caught.exception))


class DottedPathTests(TestCase):
    """
    A dotted path names a plugin that is not registered.
    """

    def test_classByPath(self) -> None:
        """
        A class at a dotted path is instantiated with its defaults.
        """
        registry = Registry.discover(thirdParty=False)
        behavior = registry.behaviors.get("txvaurien.test.plugins.SlowDown")
        self.assertIsInstance(behavior, plugins.SlowDown)

    def test_instanceByPath(self) -> None:
        """
        An instance at a dotted path is used as it is.
        """
        module = types.ModuleType("txvaurien_test_instance")
        module.thing = plugins.Swallow()
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        registry = Registry.discover(thirdParty=False)
        self.assertIs(registry.behaviors.get("txvaurien_test_instance.thing"), module.thing)

    def test_wrongInterfaceRefused(self) -> None:
        """
        An object that does not provide the interface is refused, naming
        the path and the interface.
        """
        registry = Registry.discover(thirdParty=False)
        with self.assertRaises(UnknownPlugin) as caught:
            registry.behaviors.get("txvaurien.protocols.tcp.TCP")
        self.assertIn("does not provide IBehavior", str(caught.exception))

    def test_importErrorRefused(self) -> None:
        """
        A path that does not import is refused with the reason.
        """
        registry = Registry.discover(thirdParty=False)
        with self.assertRaises(UnknownPlugin) as caught:
            registry.behaviors.get("no.such.module.Thing")
        self.assertIn("cannot import behavior 'no.such.module.Thing'", str(caught.exception))


class TwistedPluginTests(TestCase):
    """
    Third-party plugins are found through L{twisted.plugin.getPlugins}.
    """

    def test_pluginPackageSearched(self) -> None:
        """
        A behavior exposed in a plugin package is found by its name, with
        its options.
        """
        root = FilePath(self.mktemp())
        package = root.child("txvaurien_fake_plugins")
        package.makedirs()
        package.child("__init__.py").setContent(b"")
        package.child("sabotage_plugin.py").setContent(PLUGIN_MODULE.encode("utf-8"))
        sys.path.insert(0, root.path)
        self.addCleanup(sys.path.remove, root.path)
        import txvaurien_fake_plugins

        self.addCleanup(sys.modules.pop, "txvaurien_fake_plugins")
        registry = Registry.discover(pluginPackage=txvaurien_fake_plugins)
        sabotage = registry.behaviors.get("sabotage")
        verifyObject(IBehavior, sabotage)
        self.assertEqual(sabotage.settings["level"], 3)
        self.assertIn("sabotage", registry.behaviors.names())
