"""report.html: one self-contained page (inline CSS and JS, no network at all) to explore a run.

Pure: ``render_html(results)`` returns the text. The page embeds the run once, as JSON in a
``<script type="application/json">`` block (every ``<`` escaped, so no text in it can end the block),
and its script builds everything from that: the header and gate, the grid as a heat map (click a cell,
or open ``report.html#cell=<id>``, for its details: facts against the model's prediction, checks,
differences, ledger entry, repro command with a copy button, the timeline drawn on one time axis with
a lane per source, and the raw events), filters by kind, scenario and text, the findings and the
ledger. A Content-Security-Policy of ``default-src 'none'`` makes "no network" a rule the browser
enforces, not a promise. The script marks ``<html data-ready data-cells=N>`` when it is done and
``data-errors`` on any uncaught error, which the tests read back from headless Chromium.

Size: a timeline is stored as ``{"s": [strings], "e": [[ms, src, ev, {fields}], ...]}`` where source,
event name and the long repeated values (workspace, owner, agent, connection ids) are indexes into the
cell's own string table; that takes a cell from ~9 kB to ~6 kB of JSON, so 1,100 cells with every
timeline make a page of ~6.5 MB. If the data would pass ``DATA_BUDGET`` all the same, timelines of
plain PASS cells are left out first (in plan order, only as many as needed), then DEGRADED ones; the
page says how many (results.json keeps them all). Events are sorted by time for drawing; nothing is
judged again.

Speed: RunRecorder renders a running 1,100-cell run every 15 s. A finished cell never changes, so each
cell's JSON is kept in a small cache keyed by the cell object (and a fingerprint of its verdict
fields, in case a caller edits a dict in place); a partial write then only encodes the cells that
finished since the last one (~0.1 s instead of ~0.6 s from cold). The output does not depend on the
cache.
"""

from __future__ import annotations

import html
import itertools
import json
from collections import OrderedDict
from typing import Any

from harness.report.html_page import PAGE
from harness.report.view import (
    KINDS,
    SECTIONS,
    findings,
    grid,
    kind,
    kind_counts,
    ledger_entries,
    pairing_versions,
    run_state,
    section,
)
from harness.report.words import group_paragraph, paragraph

DATA_BUDGET = 8_000_000  # characters of embedded JSON (~8 MB): with the page around it, under the 10 MB aim
INTERNED = frozenset(("src", "ev", "ws", "owner", "decoded_ws", "upstream", "agent", "conn"))  # long, repeated
DROP_ORDER = ("PASS", "DEGRADED")  # whose timelines go first when the data is over budget
CELL_KEYS = ("id", "scenario", "pairing", "versions", "variants", "facts", "checks", "verdict", "predicted",
             "surprise", "differences", "ledger", "accepted", "candidate_involved", "repro", "error", "started",
             "duration_s", "worker")
CACHE_CELLS = 8192  # cells whose JSON is kept between renders: more than any matrix the harness plans today

_PLAIN = frozenset(("ms", "src", "ev"))  # the event's own columns; every other key is a field
_cache: OrderedDict[int, tuple[dict[str, Any], tuple[Any, ...], str, str]] = OrderedDict()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).replace("<", "\\u003c")


def encode_timeline(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A cell's timeline as {"s": strings, "e": [[ms, src, ev, {fields}]]}, sorted by time (ties keep log order)."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def intern(value: Any) -> int:
        s = value if type(value) is str else str(value)
        i = index.get(s)
        if i is None:
            i = index[s] = len(strings)
            strings.append(s)
        return i

    ms = [e.get("ms") or 0.0 for e in events]
    in_order = all(a <= b for a, b in itertools.pairwise(ms))
    out = []
    for i in range(len(events)) if in_order else sorted(range(len(events)), key=ms.__getitem__):
        e = events[i]
        item: list[Any] = [ms[i], intern(e.get("src") or "?"), intern(e.get("ev") or "?")]
        fields = {k: (intern(v) if k in INTERNED else v) for k, v in e.items() if k not in _PLAIN}
        if fields:
            item.append(fields)
        out.append(item)
    return {"s": strings, "e": out}


def _fingerprint(c: dict[str, Any], blocking: bool) -> tuple[Any, ...]:
    return (c.get("id"), c.get("verdict"), c.get("surprise"), c.get("accepted"), c.get("duration_s"), blocking,
            len(c.get("timeline") or ()), len(c.get("checks") or ()), len(c.get("differences") or ()), c.get("error"))


def cell_json(c: dict[str, Any], blocking: bool) -> tuple[str, str]:
    """The cell's page entry as JSON: (with its timeline, without it)."""
    fp = _fingerprint(c, blocking)
    hit = _cache.get(id(c))
    if hit is not None and hit[0] is c and hit[1] == fp:
        _cache.move_to_end(id(c))
        return hit[2], hit[3]
    d = {k: c.get(k) for k in CELL_KEYS}
    d["kind"] = kind(c)
    d["blocking"] = blocking
    d["paragraph"] = paragraph(c) if section(c, {c["id"]} if blocking else set()) else None
    bare = _dumps(d)[:-1]
    full = bare + ',"tl":' + _dumps(encode_timeline(c.get("timeline") or [])) + "}"
    bare += ',"tl":null}'
    _cache[id(c)] = (c, fp, full, bare)  # holding c keeps id(c) from being reused while the entry lives
    _cache.move_to_end(id(c))
    while len(_cache) > CACHE_CELLS:
        _cache.popitem(last=False)
    return full, bare


def page_data(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows except the cells (see ``render_html``), as one JSON-able dict."""
    g = grid(results)
    index = {c["id"]: i for i, c in enumerate(results["cells"])}
    run = {k: v for k, v in results["run"].items() if k not in ("cell_order", "ledger")}
    slots = [[(index[s["id"]] if isinstance(s, dict) else (-1 if s is None else None)) for s in row]
             for row in g.slots]
    return {
        "run": run, "state": run_state(results["run"]), "summary": results["summary"], "gate": results["gate"],
        "ledger": ledger_entries(results),
        "kinds": {k: {"glyph": v[1], "label": v[2]} for k, v in KINDS.items()},
        "counts": kind_counts(results),
        "sections": {k: {"kind": v[0], "title": v[1]} for k, v in SECTIONS.items()},
        "interned": sorted(INTERNED),
        "grid": {"scenarios": g.scenarios, "rows": [{"pairing": p, "versions": pairing_versions(p)} for p in g.rows],
                 "slots": slots},
        "findings": [{"section": f.section, "paragraph": group_paragraph(f.cells),
                      "cells": [index[c["id"]] for c in f.cells]} for f in findings(results)],
    }


def cells_json(results: dict[str, Any], budget: int, used: int) -> tuple[str, dict[str, int]]:
    """The cells as a JSON array, timelines left out (plain PASS first, then DEGRADED) while over the budget."""
    blocking = set(results.get("gate", {}).get("blocking", []))
    cells = results["cells"]
    parts = [cell_json(c, c["id"] in blocking) for c in cells]
    chosen = [full for full, _ in parts]
    over = used + sum(len(p) + 1 for p in chosen) + 64 - budget  # 64: the "dropped" note and the brackets
    dropped: dict[str, int] = {}
    for drop in DROP_ORDER:
        for i, c in enumerate(cells):
            if over <= 0:
                break
            if kind(c) == drop and not c.get("surprise") and c.get("timeline"):
                over -= len(chosen[i]) - len(parts[i][1])
                chosen[i] = parts[i][1]
                dropped[drop] = dropped.get(drop, 0) + 1
    return "[" + ",".join(chosen) + "]", dropped


def _title(results: dict[str, Any]) -> str:
    gate, s = results["gate"], results["summary"]
    verdict = "PASSED" if gate.get("passed") else "INCOMPLETE" if not gate.get("complete") else "FAILED"
    who = f" for {gate['candidate']}" if gate.get("candidate") else ""
    partial = f" (partial: {s['cells']} of {s['planned']} cells)" if s["cells"] < s["planned"] else ""
    return f"Compatibility report — gate {verdict}{who}{partial}"


def render_html(results: dict[str, Any], *, run_name: str | None = None, budget: int = DATA_BUDGET) -> str:
    """report.html for a run (finished or partial); deterministic for the same results."""
    data = page_data(results)
    data["name"] = run_name
    rest = _dumps(data)
    cells, dropped = cells_json(results, budget, len(rest))
    blob = rest[:-1] + ',"dropped":' + _dumps(dropped) + ',"cells":' + cells + "}"
    head, tail = PAGE.split("__DATA__")
    return head.replace("__TITLE__", html.escape(_title(results))) + blob + tail
