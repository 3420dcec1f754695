"""
Tests for L{txvaurien.protocols._ownmethods}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txvaurien.protocols import _httpframing, _httpheads, memcache, mysql, postgresql
from txvaurien.protocols._mysqlpg import HOT_METHODS
from txvaurien.protocols._ownmethods import HotMethods, ownMethods


class _Base:
    """
    A base class whose methods the tests copy.
    """

    factor = 2

    def scale(self, value: int, offset: int = 1, *, extra: int = 0) -> int:
        """
        Scale C{value}.
        """
        return value * self.factor + offset + extra

    def kind(self) -> str:
        return "base"

    @property
    def computed(self) -> int:
        return 3


class _Middle(_Base):
    def kind(self) -> str:
        return "middle+" + super().kind()


class OwnMethodsTests(SynchronousTestCase):
    """
    Tests for L{ownMethods}.
    """

    def test_copyIsOwnFunctionAndCode(self) -> None:
        """
        The decorated class gets a function of its own, on a code object of
        its own, while the base keeps the original.
        """
        original = _Base.scale

        @ownMethods("scale")
        class Child(_Base):
            pass

        self.assertIs(_Base.scale, original)
        self.assertIn("scale", vars(Child))
        self.assertIsNot(Child.scale, original)
        self.assertIsNot(Child.scale.__code__, original.__code__)
        self.assertEqual(Child.scale.__code__.co_code, original.__code__.co_code)

    def test_copyKeepsBehaviourAndMetadata(self) -> None:
        """
        The copy takes the same arguments, defaults included, reads the
        instance the same way, and keeps the name, qualified name and
        docstring of the original.
        """

        @ownMethods("scale")
        class Child(_Base):
            factor = 10

        child = Child()
        self.assertEqual(child.scale(3), 31)
        self.assertEqual(child.scale(3, 0, extra=5), 35)
        self.assertEqual(Child.scale.__name__, "scale")
        self.assertEqual(Child.scale.__qualname__, _Base.scale.__qualname__)
        self.assertEqual(Child.scale.__doc__, _Base.scale.__doc__)
        self.assertEqual(Child.scale.__defaults__, (1,))
        self.assertEqual(Child.scale.__kwdefaults__, {"extra": 0})

    def test_copyKeepsClosure(self) -> None:
        """
        A copied method that uses C{super()} (a closure over its class)
        still finds the next method in the order of the class it was
        defined in.
        """

        @ownMethods("kind")
        class Child(_Middle):
            pass

        self.assertIsNot(Child.kind, _Middle.kind)
        self.assertEqual(Child().kind(), "middle+base")

    def test_ownMethodLeftAlone(self) -> None:
        """
        A method the class defines itself is not replaced.
        """

        class Child(_Base):
            def scale(self, value: int, offset: int = 1, *, extra: int = 0) -> int:
                return -1

        mine = vars(Child)["scale"]
        self.assertIs(ownMethods("scale")(Child), Child)
        self.assertIs(vars(Child)["scale"], mine)

    def test_notAFunction(self) -> None:
        """
        A name that is not a plain function of the class or its bases is a
        L{TypeError} naming it.
        """
        for name in ("computed", "factor", "missing"):
            class Child(_Base):
                pass

            error = self.assertRaises(TypeError, ownMethods(name), Child)
            self.assertEqual(str(error), "Child.{} is not a plain function".format(name))


class HotMethodsTests(SynchronousTestCase):
    """
    Tests for L{HotMethods}.
    """

    def test_listsOfEveryBaseAddUp(self) -> None:
        """
        A subclass gets its own copy of what any of its bases lists in
        C{hot}, and of what it lists itself, once it is defined.
        """

        class Root(HotMethods):
            hot = ("scale",)

            def scale(self) -> int:
                return 1

            def kind(self) -> str:
                return "root"

        class Middle(Root):
            hot = ("kind",)

        class Leaf(Middle):
            pass

        self.assertIsNot(Leaf.scale.__code__, Root.scale.__code__)
        self.assertIsNot(Leaf.kind.__code__, Middle.kind.__code__)
        self.assertIsNot(Middle.scale.__code__, Root.scale.__code__)
        self.assertEqual((Leaf().scale(), Leaf().kind()), (1, "root"))

    def test_notAFunction(self) -> None:
        """
        A name listed in C{hot} that is not a plain function is a
        L{TypeError} when the subclass is defined.
        """

        class Root(HotMethods):
            hot = ("missing",)

            def missing(self) -> None:
                pass

        def define() -> None:
            class Child(Root):
                missing = None  # type: ignore[assignment]

            class Grandchild(Child):
                pass

        error = self.assertRaises(TypeError, define)
        self.assertEqual(str(error), "Grandchild.missing is not a plain function")


class FramersOwnMethodsTests(SynchronousTestCase):
    """
    The framers that a connection feeds in turns have their own copies of
    the hot methods they share.
    """

    def assertOwnCopies(self, classes: tuple[type, ...], names: tuple[str, ...]) -> None:
        for name in names:
            functions = [getattr(cls, name) for cls in classes]
            codes = {id(function.__code__) for function in functions}
            self.assertEqual(len(codes), len(classes), "{} shares {}".format(classes, name))

    def test_http(self) -> None:
        """
        The HTTP request and response framers, and the request and
        response heads.
        """
        self.assertOwnCopies(
            (_httpframing.RequestFramer, _httpframing.ResponseFramer),
            ("feed", "_slowHead", "emit", "openMessage"))
        self.assertOwnCopies(
            (_httpheads.RequestHead, _httpheads.Head),
            ("on_url", "on_header", "on_headers_complete"))

    def test_sql(self) -> None:
        """
        The MySQL and PostgreSQL framers.
        """
        self.assertOwnCopies(
            (mysql.MySQLRequestFramer, mysql.MySQLResponseFramer,
             postgresql.FrontendFramer, postgresql.BackendFramer),
            HOT_METHODS)

    def test_memcache(self) -> None:
        """
        The memcache command and response framers.
        """
        self.assertOwnCopies(
            (memcache.CommandFramer, memcache.ResponseFramer),
            ("_end", "_partial", "newMessage"))
