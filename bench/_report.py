"""
The report of C{bench.py}: the table of workloads by target, the table of
the request/response groups, and the targets of the issues, each with the
value measured and PASS or MISS.

Ratios are taken against haproxy (C{mode tcp}), measured in the same run.
"""

from __future__ import annotations

import os
from typing import Any

GiB = 1024 ** 3
MiB = 1024 ** 2
BASE = "haproxy"

# key, label, unit, higher is better, format
ROWS = [
    ("halfClose", "half-close carried", "", None, None),
    ("downloadMBps", "download", "MB/s", True, "{:.0f}"),
    ("uploadMBps", "upload (half-close)", "MB/s", True, "{:.0f}"),
    ("uploadLengthMBps", "upload (length-prefixed)", "MB/s", True, "{:.0f}"),
    ("downloadCPU", "proxy CPU per GiB down", "s", False, "{:.2f}"),
    ("uploadLengthCPU", "proxy CPU per GiB up", "s", False, "{:.2f}"),
    ("rttP50", "echo RTT p50", "us", False, "{:.1f}"),
    ("rttP99", "echo RTT p99", "us", False, "{:.1f}"),
    ("addedP50", "added RTT p50", "us", False, "{:.1f}"),
    ("addedP99", "added RTT p99", "us", False, "{:.1f}"),
    ("connRate", "connections/s, 1 client", "/s", True, "{:.0f}"),
    ("connRateParallel", "connections/s, {parallel} clients", "/s", True, "{:.0f}"),
    ("rssPerConnKiB", "RSS per idle conn ({idle})", "KiB", False, "{:.2f}"),
    ("slowClientGrowthMiB", "RSS growth, slow client", "MiB", False, "{:.2f}"),
    ("slowBackendGrowthMiB", "RSS growth, slow backend", "MiB", False, "{:.2f}"),
    ("slowBackendQueuedMiB", "queued in kernel+proxy, slow backend", "MiB", False, "{:.1f}"),
]


def _cell(res: dict[str, Any], key: str, fmt: str | None) -> str:
    if key not in res:
        return "-"
    value = res[key]
    if fmt is None:
        return "yes" if value else "no"
    text = fmt.format(value)
    if key == "uploadMBps" and not res.get("halfClose", True):
        text += "*"
    return text


def grid(rows: list[list[str]]) -> list[str]:
    """
    Lay out C{rows} (the first is the header) as aligned text.
    """
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(widths[j]) for j, c in enumerate(row) if j]
        lines.append(" | ".join(cells))
        if i == 0:
            lines.append("-+-".join("-" * wd for wd in widths))
    return lines


def size(n: int) -> str:
    return "{:g} GiB".format(n / GiB) if n >= GiB else "{:g} MiB".format(n / MiB)


def table(opts: Any, names: list[str], results: dict[str, dict[str, Any]],
          loadStart: str) -> str:
    """
    The workloads by target, with each txvaurien target's ratio to
    haproxy's.
    """
    ratios = [n for n in names if n.startswith("txvaurien") or n not in (
        "direct", BASE, "socat", "portforward")] if BASE in names else []
    rows = [["workload"] + names + ["{}/{}".format(n, BASE) for n in ratios]]
    for key, label, unit, _better, fmt in ROWS:
        label = label.format(parallel=opts.parallel, idle=opts.idle)
        if unit:
            label += " [{}]".format(unit)
        row = [label] + [_cell(results[n], key, fmt) for n in names]
        if all(c == "-" for c in row[1:]):
            continue
        base = results.get(BASE, {}).get(key)
        for n in ratios:
            value = results[n].get(key)
            if fmt is None or value is None or base is None or base <= 0 or value < 0:
                # A ratio of differences that may be negative means nothing.
                row.append("-")
            else:
                row.append("{:.2f}x".format(value / base))
        rows.append(row)
    notes = []
    if any(not results[n].get("halfClose", True) for n in names):
        notes.append("* this target does not carry half-close: its upload is the "
                     "length-prefixed variant (no shutdown(SHUT_WR)).")
    notes.append("Load average (1/5/15 min) at the start: {}; at the end: {}; {} CPUs.".format(
        loadStart, " ".join("{:.2f}".format(x) for x in os.getloadavg()), os.cpu_count()))
    notes.append("Ratios are target/{} (higher is better for MB/s and connections/s, "
                 "lower for the rest).  Medians of {} interleaved rounds; {} per "
                 "transfer.  socat forks per connection: no memory rows.".format(
                     BASE, opts.rounds, size(opts.bytes)))
    return "\n".join(grid(rows) + [""] + notes)


def framedTable(framed: dict[str, Any]) -> str:
    """
    The request/response groups: requests/s, ratios and CPU per request.
    """
    rows = [["group / target", "test", "requests/s", "vs tcp", "CPU us/req"]]
    errors = []
    for group, result in framed.items():
        if "error" in result:
            errors.append("  {}: {}".format(group, result["error"]))
            continue
        tcp = result.get("tcp", {}).get("rates", {})
        for name, res in result.items():
            for test, rate in res["rates"].items():
                ratio = "{:.2f}x".format(rate / tcp[test]) if tcp.get(test) else "-"
                rows.append(["{} / {}".format(group, name), test, "{:.0f}".format(rate),
                             ratio, "{:.1f}".format(res["cpuMicroseconds"])])
    if len(rows) == 1:
        return "\n".join(["Request/response groups failed:"] + errors)
    lines = grid(rows)
    lines.append("CPU us/req: the target's process (the backend's for direct), per "
                 "request; redis: GET and SET together.")
    if errors:
        lines += ["Groups that failed:"] + errors
    return "\n".join(lines)


class Checks:
    """
    The targets, each with the value measured and PASS, MISS or n/a.
    """

    def __init__(self) -> None:
        self.found: list[dict[str, Any]] = []

    def add(self, target: str, name: str, ok: bool | None, detail: str) -> None:
        self.found.append({"target": target, "check": name,
                           "result": "n/a" if ok is None else ("PASS" if ok else "MISS"),
                           "detail": detail})

    def ratio(self, target: str, name: str, value: float | None, base: float | None,
              low: float | None = None, high: float | None = None, unit: str = "") -> None:
        """
        Check C{value / base} against C{low} (at least) or C{high} (at
        most).
        """
        if value is None or base is None or base <= 0:
            self.add(target, name, None, "not measured")
            return
        r = value / base
        ok = (low is None or r >= low) and (high is None or r <= high)
        self.add(target, name, ok, "{:.1f} vs {:.1f}{} = {:.2f}x".format(value, base, unit, r))

    def lines(self) -> str:
        if not self.found:
            return ""
        width = max(len(c["check"]) for c in self.found) + 2
        lines = ["Targets (issue 13 for the default configuration, txvaurien; "
                 "--no-splice for information):"]
        current = None
        for c in self.found:
            if c["target"] != current:
                current = c["target"]
                lines.append("  {}:".format(current))
            lines.append("    {:<{w}} {:<4}  {}".format(c["check"], c["result"], c["detail"],
                                                       w=width))
        return "\n".join(lines)


def _rate(framed: dict[str, Any], group: str, target: str, test: str) -> float | None:
    return framed.get(group, {}).get(target, {}).get("rates", {}).get(test)


def checks(results: dict[str, dict[str, Any]], framed: dict[str, Any],
           checked: tuple[str, ...]) -> Checks:
    """
    Issue 13's targets for each txvaurien target in C{checked} and the
    request/response targets, plus the first edition's memory targets.
    """
    c = Checks()
    base = results.get(BASE, {})
    pf = results.get("portforward", {})
    for name in checked:
        if name not in results:
            continue
        res = results[name]
        c.ratio(name, "download >= 2.0x haproxy", res.get("downloadMBps"),
                base.get("downloadMBps"), low=2.0, unit=" MB/s")
        c.ratio(name, "upload (half-close) >= 2.0x haproxy", res.get("uploadHalfCloseMBps"),
                base.get("uploadHalfCloseMBps"), low=2.0, unit=" MB/s")
        c.ratio(name, "added RTT p50 <= 1.5x haproxy", res.get("addedP50"),
                base.get("addedP50"), high=1.5, unit=" us")
        if "addedP99" in res:
            c.add(name, "added RTT p99 <= 1 ms", res["addedP99"] <= 1000,
                  "{:.1f} us".format(res["addedP99"]))
        else:
            c.add(name, "added RTT p99 <= 1 ms", None, "not measured")
        c.ratio(name, "connections/s, 1 client >= 0.9x haproxy", res.get("connRate"),
                base.get("connRate"), low=0.9, unit="/s")
        c.ratio(name, "connections/s, parallel >= 0.9x haproxy", res.get("connRateParallel"),
                base.get("connRateParallel"), low=0.9, unit="/s")
        if "rssPerConnKiB" in res and "rssPerConnKiB" in pf:
            c.add(name, "RSS/conn <= portforward's + 2 KiB",
                  res["rssPerConnKiB"] <= pf["rssPerConnKiB"] + 2,
                  "{:.2f} vs {:.2f} KiB".format(res["rssPerConnKiB"], pf["rssPerConnKiB"]))
        for key, what in (("slowClientGrowthMiB", "slow client"),
                          ("slowBackendGrowthMiB", "slow backend")):
            if key in res:
                c.add(name, "RSS growth, {} <= 16 MiB".format(what), res[key] <= 16,
                      "{:.2f} MiB".format(res[key]))
    if framed:
        t = "txvaurien (request/response)"
        c.ratio(t, "wrk to nginx: tcp >= 0.85x haproxy", _rate(framed, "nginx", "tcp", "wrk"),
                _rate(framed, "nginx", BASE, "wrk"), low=0.85, unit="/s")
        c.ratio(t, "wrk to nginx: http >= 0.8x tcp", _rate(framed, "nginx", "http", "wrk"),
                _rate(framed, "nginx", "tcp", "wrk"), low=0.8, unit="/s")
        for test in ("SET", "GET"):
            c.ratio(t, "redis-benchmark {}: redis >= 0.75x tcp".format(test),
                    _rate(framed, "redis", "redis", test), _rate(framed, "redis", "tcp", test),
                    low=0.75, unit="/s")
        c.ratio(t, "microscope (tiny backend): http / tcp", _rate(framed, "tiny", "http", "wrk"),
                _rate(framed, "tiny", "tcp", "wrk"), unit="/s")
        c.found[-1]["result"] = "info"
    return c
