"""
Packaging for txvaurien.

The flat layout ships two top-level things: the C{txvaurien} package and the
module C{twisted/plugins/txvaurien_plugin.py}, which is what makes
C{twistd vaurien} and C{twist vaurien} exist.  C{twisted} and
C{twisted/plugins} have no C{__init__.py} on purpose: they are namespace
directories merged into Twisted's own, so C{twisted.plugins} is listed
explicitly.
"""

import re

from setuptools import find_packages, setup


def _version() -> str:
    """
    The version declared in C{txvaurien/_version.py}, read as text so that
    building does not import the package (or Twisted).
    """
    with open("txvaurien/_version.py", encoding="utf-8") as f:
        match = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if match is None:
        raise RuntimeError("no __version__ in txvaurien/_version.py")
    return match.group(1)


setup(
    name="txvaurien",
    version=_version(),
    description="A chaos TCP proxy built on Twisted",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["txvaurien", "txvaurien.*"])
    + ["twisted.plugins"],
    package_data={"twisted.plugins": ["txvaurien_plugin.py", "txvaurien_tls.py"]},
    install_requires=[
        "twisted[tls]>=26.4",
        "pyOpenSSL>=24.3",
        "cryptography>=42",
        "service-identity>=21.1",
        "zope.interface>=5",
        "prometheus-client>=0.17",
        "httptools>=0.6",
        "h11>=0.14",
    ],
    extras_require={
        "test": [
            "hypothesis",
            "redis",
            "pymemcache",
            "PyMySQL",
            "PyNaCl",
            "mysql-connector-python",
            "psycopg[binary]",
            "aiosmtpd",
            "toxiproxy-python",
            "treq",
        ],
        "docs": ["sphinx"],
    },
    entry_points={
        "console_scripts": ["vaurienctl = txvaurien.ctl:main"],
        "pytest11": ["txvaurien = txvaurien.testing.pytest_plugin"],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Software Development :: Testing",
        "Topic :: System :: Networking",
    ],
)
