"""What a report shows, as plain data: every renderer (Markdown, HTML, JUnit, trend) reads it from here.

Pure; no I/O. Nothing here judges a cell again: a cell's *kind* is read straight off the fields the
oracle and the ledger already wrote (``verdict``, ``surprise``, ``accepted``; ``gate.blocking``):

- ``SURPRISE`` — ``surprise`` and not ``accepted`` (the live run differs from the model's prediction);
- ``ACCEPTED`` — ``accepted`` (a FAIL or SURPRISE covered by a live ledger entry);
- otherwise the verdict itself: ``PASS``, ``DEGRADED``, ``FAIL``, ``ERROR``, ``UNKNOWN``;
- ``NOT_RUN`` — a cell the plan has (``run.cell_order``) and results.json does not, yet.

The grid is pairings × scenarios. Rows come in plan order (the order of ``run.cell_order``, then any
cell not in it), columns in the order ``run.scenarios`` lists them; a pairing that does not run some
scenario leaves that slot empty. Findings are the cells worth a paragraph (everything but a plain
PASS), grouped when several pairings fail one scenario the same way, in a fixed order of sections:
surprises first (those blocking the gate before the others), then the rest of the gate's blockers,
failures outside the gate, ledger-accepted ones, and DEGRADED last.

Also here, for every renderer: ``run_state`` (a partial run's state in words: a report cannot tell a
run still going from one killed without a word), ``ledger_entries`` (the entries with true counts for an
expired one) and ``results_problem`` (the one shape check a re-render and ``--diff`` share).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.matrix import LedgerEntry
from harness.protocol import VARIANTS, AuthStyle, Release
from harness.report.words import problems
from harness.results import SCHEMA_VERSION

ROLES = ("publisher", "stream", "reconnect", "agent")

# kind → (Markdown symbol, plain glyph for HTML/terminals, label). The HTML uses glyphs every system font
# has (emoji fonts are often missing on CI machines and headless browsers); colour carries the rest.
KINDS: dict[str, tuple[str, str, str]] = {
    "SURPRISE": ("⚠️", "⚠", "SURPRISE: the live result differs from the model's prediction"),
    "PASS": ("✅", "✓", "PASS"),
    "DEGRADED": ("🟡", "◐", "DEGRADED (cosmetic: zero ids decoded)"),
    "FAIL": ("❌", "✗", "FAIL"),
    "ACCEPTED": ("☑️", "☑", "FAIL or SURPRISE accepted by a live ledger entry"),
    "ERROR": ("💥", "✸", "ERROR: the cell could not run"),
    "UNKNOWN": ("❔", "?", "UNKNOWN: a checker crashed"),
    "NOT_RUN": ("·", "·", "not run (yet)"),
}
VERDICT_SYMBOL = {k: v[0] for k, v in KINDS.items()}

SECTIONS: dict[str, tuple[str, str]] = {  # findings section → (the kind whose symbol it wears, title)
    "surprise": ("SURPRISE", "SURPRISE — the live run differs from the model"),
    "blocking": ("FAIL", "Blocking the gate"),
    "failing": ("FAIL", "Failing outside the gate"),
    "accepted": ("ACCEPTED", "Accepted by the ledger"),
    "degraded": ("DEGRADED", "DEGRADED"),
}

_CELL_ID = re.compile(r"^(?P<scenario>[^\[\]]+)\[(?P<pairing>.+)\]$")
_PAIRING = re.compile(r"^(?P<publisher>[^>,]+)>(?P<stream>[^>,]+)>(?P<reconnect>[^>,]+),agent=(?P<agent>.+)$")


def kind(cell: dict[str, Any]) -> str:
    """The cell's display kind (see the module docstring)."""
    if cell.get("accepted"):
        return "ACCEPTED"
    if cell.get("surprise"):
        return "SURPRISE"
    return str(cell.get("verdict", "UNKNOWN"))


def symbol(cell: dict[str, Any] | None) -> str:
    """The Markdown grid symbol: the kind's, with ⚠️ in front of the live verdict's for a surprise."""
    if cell is None:
        return KINDS["NOT_RUN"][0]
    k = kind(cell)
    if k == "SURPRISE":
        return KINDS["SURPRISE"][0] + KINDS.get(cell["verdict"], KINDS["UNKNOWN"])[0]
    if k == "ACCEPTED" and cell.get("surprise"):
        return KINDS["SURPRISE"][0] + KINDS["ACCEPTED"][0]
    return KINDS.get(k, KINDS["UNKNOWN"])[0]


def split_id(cell_id: str) -> tuple[str, str]:
    """``live_claim[v1>v2>v2,agent=v1]`` → (scenario, pairing); an id of another shape is its own pairing."""
    m = _CELL_ID.match(cell_id)
    return (m["scenario"], m["pairing"]) if m else ("?", cell_id)


def pairing_versions(pairing: str) -> dict[str, str]:
    """``v1>v2>v2,agent=v1`` → {publisher, stream, reconnect, agent}; unknown shapes keep the whole text."""
    m = _PAIRING.match(pairing)
    return {r: m[r] for r in ROLES} if m else {"publisher": pairing, "stream": "", "reconnect": "", "agent": ""}


def pairing_label(pairing: str) -> str:
    """For people: ``v2.31.14 → v2.31.14 → v2.34.4 · agent v2.34.4``."""
    v = pairing_versions(pairing)
    if not v["stream"]:
        return pairing
    return f"{v['publisher']} → {v['stream']} → {v['reconnect']} · agent {v['agent']}"


@dataclass
class Grid:
    """Pairings × scenarios: ``slots[row][col]`` is the cell, None if planned but not run yet, False if not planned."""

    scenarios: list[str]
    rows: list[str]  # pairings
    slots: list[list[dict[str, Any] | bool | None]]


def grid(results: dict[str, Any]) -> Grid:
    """The run's grid: planned cells from ``run.cell_order``, finished ones from ``cells`` (see the module doc)."""
    run, cells = results.get("run", {}), results.get("cells", [])
    planned = [split_id(cid) for cid in run.get("cell_order", [])]
    scenarios = list(run.get("scenarios", {}))
    rows: list[str] = []
    seen_rows: set[str] = set()
    for scenario, pairing in [*planned, *((c["scenario"], c["pairing"]) for c in cells)]:
        if scenario not in scenarios:
            scenarios.append(scenario)
        if pairing not in seen_rows:
            seen_rows.add(pairing)
            rows.append(pairing)
    used = {s for s, _ in planned} | {c["scenario"] for c in cells}
    scenarios = [s for s in scenarios if s in used]  # a scenario with nothing planned is not a column
    col = {s: i for i, s in enumerate(scenarios)}
    row = {p: i for i, p in enumerate(rows)}
    slots: list[list[dict[str, Any] | bool | None]] = [[False] * len(scenarios) for _ in rows]
    for scenario, pairing in planned:
        slots[row[pairing]][col[scenario]] = None
    for c in cells:
        slots[row[c["pairing"]]][col[c["scenario"]]] = c
    return Grid(scenarios, rows, slots)


def kind_counts(results: dict[str, Any]) -> dict[str, int]:
    """How many cells of each display kind (in KINDS order), not-run ones included; zeros left out."""
    counts = dict.fromkeys(KINDS, 0)
    for c in results.get("cells", []):
        counts[kind(c)] = counts.get(kind(c), 0) + 1
    done = {c["id"] for c in results.get("cells", [])}
    counts["NOT_RUN"] = sum(1 for cid in results.get("run", {}).get("cell_order", []) if cid not in done)
    return {k: n for k, n in counts.items() if n}


def section(cell: dict[str, Any], blocking: set[str]) -> str | None:
    """Which findings section a cell's paragraph goes in; None for a plain PASS."""
    if cell.get("surprise") and not cell.get("accepted"):
        return "surprise"
    if cell["id"] in blocking:
        return "blocking"
    if cell["verdict"] in ("FAIL", "ERROR", "UNKNOWN") and not cell.get("accepted"):
        return "failing"
    if cell.get("accepted"):
        return "accepted"
    if cell["verdict"] == "DEGRADED":
        return "degraded"
    return None


@dataclass
class Finding:
    """One paragraph's worth: a cell, or several pairings of one scenario that went wrong the same way."""

    section: str
    cells: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.section == "blocking"


def _group_key(cell: dict[str, Any], sec: str) -> tuple[Any, ...]:
    error = str(cell.get("error") or "").strip().splitlines()[:1]
    ledger = (cell.get("ledger") or {}).get("line") if cell.get("accepted") else None
    return (sec, cell["scenario"], cell["verdict"], bool(cell.get("surprise")), bool(cell.get("accepted")),
            tuple(error), problems(cell), tuple(cell.get("differences") or ()), ledger)


def findings(results: dict[str, Any]) -> list[Finding]:
    """Every non-PASS cell in a finding, grouped and ordered (see the module docstring)."""
    blocking = set(results.get("gate", {}).get("blocking", []))
    groups: dict[tuple[Any, ...], Finding] = {}
    for c in results.get("cells", []):
        sec = section(c, blocking)
        if sec is None:
            continue
        # a surprise that blocks the gate must not share a paragraph with one that does not
        key = (*_group_key(c, sec), c["id"] in blocking)
        groups.setdefault(key, Finding(sec)).cells.append(c)
    order = {s: i for i, s in enumerate(SECTIONS)}
    found = list(groups.values())  # insertion order is plan order of each group's first cell
    return sorted(found, key=lambda f: (order[f.section], f.cells[0]["id"] not in blocking))


UNFINISHED = "has not finished (still going, or stopped without a chance to say so)"


def run_state(run: dict[str, Any]) -> str:
    """Why a run is partial, to follow "the run ": a report cannot tell a running run from a killed one."""
    if run.get("interrupted"):
        return "was interrupted"
    return UNFINISHED if not run.get("finished") else "ended early"


_MATCH_KEY = re.compile(r"(?:^|, )(scenario|involves|publisher|stream|reconnect|agent)=")


def _ledger_match(text: str) -> dict[str, tuple[str, ...]] | None:
    """``scenario=a|b, agent=V1`` (``LedgerEntry.describe``) back to {key: patterns}; None for another shape."""
    parts = _MATCH_KEY.split(text)
    if len(parts) < 3 or parts[0]:
        return None
    return {key: tuple(value.split("|")) for key, value in zip(parts[1::2], parts[2::2], strict=True)}


def _matches(match: dict[str, tuple[str, ...]], cell: dict[str, Any]) -> bool | None:
    """Whether a ledger match selects the cell, as the run decides it (``LedgerEntry.matches``); None: cannot say."""
    try:
        releases = {r: Release(cell["versions"][r], VARIANTS[cell["variants"][r]], AuthStyle.HEADER) for r in ROLES}
    except (KeyError, TypeError):
        return None
    return LedgerEntry(match=match, reason="", ticket="", expires=dt.date.min, line=0).matches(releases,
                                                                                               cell["scenario"])


def ledger_entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ledger entries as recorded, with true counts for an expired one.

    The run applies live entries only, so a cell never names an expired entry and results.json counts
    it 0/0; here its ``cells_matched`` is the cells its match selects (re-matched from the recorded
    description, as the run would have) and ``cells_accepted`` 0, since an expired entry accepts nothing.
    When the description or a cell cannot be matched, the entry stays as recorded.
    """
    out = []
    for e in results.get("ledger", []):
        match = _ledger_match(e["match"]) if e.get("status") == "expired" else None
        hits = [_matches(match, c) for c in results.get("cells", [])] if match else None
        out.append(e if hits is None or None in hits else {**e, "cells_matched": hits.count(True), "cells_accepted": 0})
    return out


_JSON_TYPES: dict[type, str] = {dict: "an object", list: "a list", str: "a string", bool: "true or false",
                                int: "a number", float: "a number", type(None): "null"}
_NUMBER = (int, float)
_NULL = (type(None),)
# The shape every report and the diff read (see results_problem): field → the JSON types it may have.
_PARTS = {"run": (dict,), "summary": (dict,), "gate": (dict,), "ledger": (list,), "cells": (list,)}
_RUN = {"time_scale": _NUMBER, "cell_order": (list,), "scenarios": (dict, list), "machine": (dict,)}  # optional
_SUMMARY = {"cells": (int,), "planned": (int,), "surprises": (int,)}
_COUNTS = {k: (int,) for k in ("PASS", "DEGRADED", "FAIL", "UNKNOWN", "ERROR", "accepted")}  # optional
_GATE = {"blocking": (list,), "candidate": (str, *_NULL)}
_LEDGER = {"line": (int,), "status": (str,), "match": (str,), "ticket": (str,), "expires": (str,), "reason": (str,),
           "cells_matched": (int,), "cells_accepted": (int,)}
_CELL = {"id": (str,), "scenario": (str,), "pairing": (str,), "verdict": (str,), "versions": (dict,)}
_CELL_OPTIONAL = {"surprise": (bool, *_NULL), "accepted": (bool, *_NULL), "checks": (list,),
                  "differences": (list, *_NULL), "predicted": (dict, *_NULL), "ledger": (dict, *_NULL),
                  "facts": (dict, *_NULL), "duration_s": (*_NUMBER, *_NULL), "timeline": (list, *_NULL)}
_CHECK = {"name": (str,), "verdict": (str,), "message": (str,)}
_CELL_LEDGER = {"line": (int,), "ticket": (str,), "expires": (str,), "reason": (str,)}


def _wrong(where: str, value: Any, types: tuple[type, ...]) -> str | None:
    """'where is <value>, expected <types>' unless value has one of the types exactly (true is no number)."""
    if type(value) in types:
        return None
    text = json.dumps(value, default=str)
    shown = text if len(text) <= 40 else _JSON_TYPES.get(type(value), type(value).__name__)
    return f"{where} is {shown}, expected {' or '.join(dict.fromkeys(_JSON_TYPES[t] for t in types))}"


def _fields(where: str, obj: dict[str, Any], fields: dict[str, tuple[type, ...]], *,
            required: bool = True) -> str | None:
    """The first of fields that obj lacks (when required) or has of another type, in words."""
    for key, types in fields.items():
        if key not in obj:
            if required:
                return f"{where} has no {key!r}"
        elif problem := _wrong(f"{where}.{key}", obj[key], types):
            return problem
    return None


def _each(where: str, values: list[Any], check: Callable[[str, Any], str | None]) -> str | None:
    """The first problem check finds in values[i], named ``where[i]``."""
    return next((p for i, v in enumerate(values) if (p := check(f"{where}[{i}]", v))), None)


def _of(types: tuple[type, ...], fields: dict[str, tuple[type, ...]] | None = None) -> Callable[[str, Any], str | None]:
    """A check for list items: of one of the types and, for objects, with the fields."""
    return lambda where, v: _wrong(where, v, types) or (_fields(where, v, fields) if fields else None)


def _cell_problem(where: str, c: Any) -> str | None:
    problem = (_wrong(where, c, (dict,)) or _fields(where, c, _CELL)
               or _fields(where, c, _CELL_OPTIONAL, required=False)
               or _fields(f"{where}.versions", c["versions"], dict.fromkeys(ROLES, (str,)))
               or _each(f"{where}.checks", c.get("checks", []), _of((dict,), _CHECK))
               or _each(f"{where}.differences", c.get("differences") or [], _of((str,)))
               or _each(f"{where}.timeline", c.get("timeline") or [],
                        lambda w, e: _wrong(w, e, (dict,)) or _wrong(f"{w}.ms", e.get("ms"), (*_NUMBER, *_NULL))))
    if problem:
        return problem
    statuses = (c.get("facts") or {}).get("statuses")
    problem = (_wrong(f"{where}.facts.statuses", statuses, (list, *_NULL))
               or _each(f"{where}.facts.statuses", statuses or [], _of((int,))))
    if not problem and c.get("surprise"):  # junit and the findings name the prediction
        problem = _fields(f"{where}.predicted", c.get("predicted") or {}, {"verdict": (str,)})
    if not problem and c.get("accepted") and c.get("ledger"):  # the paragraph names the ledger entry
        problem = _fields(f"{where}.ledger", c["ledger"], _CELL_LEDGER)
    return problem


def results_problem(results: Any) -> str | None:
    """What keeps results from being a results.json the reports and the diff can read, in words; None: nothing.

    The one check ``harness report`` RUN and ``--diff`` share: the parts, the summary's counts, the gate,
    the ledger's entries and each cell's fields, of the JSON types the renderers and the diff read.
    """
    if not isinstance(results, dict) or "cells" not in results or "run" not in results:
        return "not a results.json of this harness (no 'run' and 'cells')"
    if results.get("schema") != SCHEMA_VERSION:
        return f"results schema {results.get('schema')!r}; this harness reads schema {SCHEMA_VERSION}"
    for key in ("summary", "gate", "ledger"):
        if key not in results:
            return f"results.json has no {key!r}"
    run, summary, gate = results["run"], results["summary"], results["gate"]
    return (next((p for key, types in _PARTS.items() if (p := _wrong(key, results[key], types))), None)
            or _fields("run", run, _RUN, required=False)
            or _each("run.cell_order", run.get("cell_order", []), _of((str,)))
            or _fields("summary", summary, _SUMMARY) or _fields("summary", summary, _COUNTS, required=False)
            or _fields("gate", gate, _GATE) or _each("gate.blocking", gate["blocking"], _of((str,)))
            or _each("ledger", results["ledger"], _of((dict,), _LEDGER))
            or _each("cells", results["cells"], _cell_problem))
