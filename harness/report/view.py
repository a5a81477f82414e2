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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.report.words import problems

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
