# -*- test-case-name: txvaurien.test.test_tap -*-
"""
Reading C{--config} INI files, with errors a person can act on: the file,
the line or section, and what is wrong, in one line.
"""

from __future__ import annotations

import configparser


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
