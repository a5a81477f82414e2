"""Verdict history over the last N finished runs, from history.jsonl, readable in a terminal.

Pure: ``render_trend(entries, last=N)`` returns the text. Runs are ordered by start time (oldest
first) and numbered; every history row is a strip of one character per run:

    .  PASS       d  DEGRADED    F  FAIL       a  FAIL/SURPRISE accepted by the ledger
    !  SURPRISE   E  ERROR       ?  UNKNOWN    -  not in that run

Three views: per pairing (the worst character of that pairing's scenarios in each run, order
``! E ? F a d .``, with the latest run's counts beside it), per scenario (worst over its pairings),
and the cells whose code changed within the window (the flaky or newly broken ones), capped at
``MAX_CHANGED`` rows.
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from harness.report.history import parse_code
from harness.report.view import pairing_label, split_id

WORST_FIRST = "!E?Fad.-"
MAX_CHANGED = 40  # more than this many moving cells is a different problem than flakiness; the diff lists all
KEY = (". PASS · d DEGRADED · F FAIL · a accepted by the ledger · ! SURPRISE · E ERROR · ? UNKNOWN · "
       "- not in that run")


def char(code: str | None) -> str:
    if code is None:
        return "-"
    verdict, surprise, accepted = parse_code(code)
    if accepted:
        return "a"
    if surprise:
        return "!"
    return {"PASS": ".", "DEGRADED": "d", "FAIL": "F", "ERROR": "E"}.get(verdict, "?")


def worst(chars: list[str]) -> str:
    return min(chars, key=WORST_FIRST.index) if chars else "-"


def _strip(entries: list[dict[str, Any]], ids: list[str]) -> str:
    return "".join(worst([char(e["cells"].get(cid)) for cid in ids if cid in e["cells"]]) for e in entries)


def _latest_counts(entry: dict[str, Any], ids: list[str]) -> str:
    chars = [char(entry["cells"][cid]) for cid in ids if cid in entry["cells"]]
    names = {"!": "SURPRISE", "E": "ERROR", "?": "UNKNOWN", "F": "FAIL", "a": "accepted", "d": "DEGRADED",
             ".": "PASS"}
    return ", ".join(f"{chars.count(c)} {names[c]}" for c in WORST_FIRST[:-1] if chars.count(c)) or "-"


def render_trend(entries: list[dict[str, Any]], *, last: int = 10, source: str = "history.jsonl",
                 skipped: int = 0) -> str:
    """The trend of entries (``history.load_history``'s); skipped: lines of source that were not entries."""
    ordered = sorted(entries, key=lambda e: (str(e.get("started") or ""), e["run"]))[-last:]
    note = [f"({skipped} unreadable line(s) of {source} skipped)"] if skipped else []
    if not ordered:
        return "\n".join([f"no finished runs in {source}", *note]) + "\n"
    runs = [{**e, "cells": e.get("cells") or {}} for e in ordered]  # a copy: the caller's entries stay as they are
    lines = [f"Verdict trend over the last {len(runs)} finished run(s) of {source}, oldest first", *note, "", KEY,
             ""]
    rows = []
    for i, e in enumerate(runs, 1):
        s, g = e.get("summary", {}), e.get("gate", {})
        gate = "PASSED" if g.get("passed") else "INCOMPLETE" if not g.get("complete") else "FAILED"
        rows.append((i, e["run"], e.get("started") or "", e.get("seed"), e.get("candidate") or "-", gate,
                     f"{s.get('cells', len(e['cells']))}/{s.get('planned', '?')}", s.get("surprises", 0),
                     s.get("FAIL", 0), s.get("ERROR", 0), s.get("accepted", 0)))
    lines.append(tabulate(rows, headers=["#", "run", "started", "seed", "candidate", "gate", "cells", "SURPRISE",
                                         "FAIL", "ERROR", "accepted"], disable_numparse=True))
    ruler = "".join(str(i % 10) for i in range(1, len(runs) + 1))
    ids: dict[str, None] = {}
    for e in runs:  # every cell any run had, newest run's order last so the current plan reads naturally
        ids.update(dict.fromkeys(e["cells"]))
    by_pairing: dict[str, list[str]] = {}
    by_scenario: dict[str, list[str]] = {}
    for cid in ids:
        scenario, pairing = split_id(cid)
        by_pairing.setdefault(pairing, []).append(cid)
        by_scenario.setdefault(scenario, []).append(cid)
    rows = [(pairing_label(p), _strip(runs, cids), _latest_counts(runs[-1], cids)) for p, cids in by_pairing.items()]
    lines += ["", "By pairing (publisher → stream → reconnect · agent), worst of its scenarios:",
              tabulate(rows, headers=["pairing", ruler, "latest run"], disable_numparse=True)]
    rows = [(s, _strip(runs, cids), _latest_counts(runs[-1], cids)) for s, cids in by_scenario.items()]
    lines += ["", "By scenario, worst of its pairings:",
              tabulate(rows, headers=["scenario", ruler, "latest run"], disable_numparse=True)]
    moving = [(cid, strip) for cid in ids if len(set((strip := "".join(char(e["cells"].get(cid)) for e in runs))
                                                     .replace("-", ""))) > 1]
    lines += ["", f"Cells whose verdict changed in these runs ({len(moving)}):"]
    if moving:
        lines.append(tabulate(moving[:MAX_CHANGED], headers=["cell", ruler], disable_numparse=True))
        if len(moving) > MAX_CHANGED:
            lines.append(f"… and {len(moving) - MAX_CHANGED} more (harness report --diff OLD NEW lists them all)")
    else:
        lines.append("  none: every cell kept its verdict")
    return "\n".join(lines) + "\n"
