"""
Sphinx configuration for txvaurien's documentation.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

project = "txvaurien"
author = "the txvaurien developers"
copyright = "2026, the txvaurien developers"
extensions = ["txvaurien_docs"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
