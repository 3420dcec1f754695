# -*- test-case-name: txvaurien.test.test_tap -*-
"""
Reading C{--config} INI files, with errors a person can act on: the file,
the line or section, and what is wrong, in one line.
"""

from __future__ import annotations

import configparser
from typing import Collection


class INIError(ValueError):
    """
    An INI file cannot be read or parsed.
    """


def readINI(path: str) -> dict[str, dict[str, str]]:
    """
    Read an INI file into section name to raw values.

    @raise INIError: if it cannot be read, is not UTF-8 text, holds
        binary data or cannot be parsed; in one line naming the file (and
        the line, where there is one).
    """
    where = "config file {!r}".format(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise INIError("cannot read {}: {}".format(where, e.strerror))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise INIError(
            "{}: not UTF-8 text (byte 0x{:02x} at offset {}); an INI file with "
            "[vaurien] and [behavior:NAME] sections is expected".format(
                where, data[e.start], e.start))
    if "\x00" in text:
        raise INIError(
            "{}: binary data (a NUL byte at offset {}); an INI file is "
            "expected".format(where, text.index("\x00")))
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.endswith("]"):
            raise INIError(
                "{} line {}: section header {!r} has no closing ']'".format(
                    where, number, stripped))
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as e:
        raise INIError("{}: {}".format(where, " ".join(str(e).split())))
    return {section: dict(parser.items(section)) for section in parser.sections()}


#: Vaurien's C{[vaurien]} settings that are not txvaurien options: the
#: option each one sets, or why it is not needed.
VAURIEN_KEYS: dict[str, tuple[str | None, str]] = {
    "backlog": ("backlog", ""),
    "stay_connected": (None, "not needed: a connection stays open until one side "
                             "closes it (or --idle-timeout)"),
    "bufsize": (None, "not needed: the reactor sizes reads, and writes are never "
                      "split by the proxy"),
    "pool_max_size": (None, "not needed: each client connection gets its own backend "
                            "connection, with no pool to size"),
    "pool_timeout": (None, "not needed: there is no backend connection pool to wait "
                           "for (--timeout bounds the backend connect)"),
    "sync": (None, "not needed: the reactor never blocks, there is no synchronous mode"),
    "async_mode": (None, "not needed: the reactor never blocks, there is no "
                         "synchronous mode"),
    "log_output": (None, "not needed: use twistd's --logfile"),
}

#: Vaurien's C{[statsd]} keys: the txvaurien option each one sets, or
#: why it is not needed.
STATSD_KEYS: dict[str, tuple[str | None, str]] = {
    "enabled": ("statsd", ""),
    "host": ("statsd_host", ""),
    "port": ("statsd_port", ""),
    "prefix": ("statsd_prefix", ""),
    "sample_rate": (None, "not needed: counters are summed and sent every "
                          "--statsd-interval, so no event is sampled out"),
}


def vaurienValues(
    section: str, values: dict[str, str], known: Collection[str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """
    Read the C{[vaurien]} or C{[statsd]} section of a (possibly Vaurien's)
    INI file.

    @param known: the names of the core options.
    @return: C{(values, notes)}: core option name to raw value, and
        C{(key, why)} for each of Vaurien's settings that is accepted but
        not needed.
    @raise INIError: for a key that is neither an option nor one of
        Vaurien's settings, naming the known keys.
    """
    core: dict[str, str] = {}
    notes: list[tuple[str, str]] = []
    table = STATSD_KEYS if section == "statsd" else VAURIEN_KEYS
    for key, value in values.items():
        name = key.replace("-", "_")
        if section == "vaurien" and name.startswith("statsd."):
            # Vaurien's flattened spelling of its [statsd] section.
            more, moreNotes = vaurienValues("statsd", {name[len("statsd."):]: value}, known)
            core.update(more)
            notes.extend(moreNotes)
            continue
        if section == "vaurien" and name in known:
            core[name] = value
            continue
        target, why = table.get(name, (None, ""))
        if target is not None and target in known:
            core[target] = value
        elif why:
            notes.append((key, why))
        elif target is not None:
            notes.append((key, "not supported by this version of txvaurien; ignored"))
        else:
            accepted = sorted(known) if section == "vaurien" else []
            raise INIError("[{}]: unknown key {!r}; known: {}".format(
                section, key, ", ".join(accepted + sorted(table))))
    return core, notes
