"""
twistd plugin: C{twistd -n vaurien --backend ...} runs a txvaurien chaos proxy.
"""

from twisted.application.service import ServiceMaker

txvaurien = ServiceMaker(
    "txvaurien",
    "txvaurien.tap",
    "A chaos TCP proxy: delays, errors, hangs, resets and throttling on purpose.",
    "vaurien",
)
