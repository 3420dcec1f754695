"""
The version of txvaurien, kept here and nowhere else.

C{setup.py} reads this file as text (without importing the package), and
L{txvaurien.__version__} re-exports it.
"""

__version__ = "0.1.0"
