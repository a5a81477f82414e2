"""A cell in plain words: who was involved, what went wrong, whether the model saw it coming, how to repro.

"live_claim — a v2.32.10 agent whose claim was published by v2.31.14, streaming from v2.32.10:
reinitialised 2 times for one claim (ONCE); decoded zero ids (cosmetic): ws/0 (IDENTITY). As
predicted. Repro: harness run ..."

Pure; one paragraph, the repro command always last (reports put it in a code span, pytest prints it
as the failure message). ``group_paragraph`` says the same for several pairings of one scenario that
went wrong in exactly the same words, with the first pairing's repro.
"""

from __future__ import annotations

from typing import Any

SUBJECT = {  # how the agent's situation reads for scenarios that are not about a claim
    "regular_workspace": "a {agent} agent of a regular workspace, streaming from {stream}",
    "failed_claim_build": "a {agent} agent whose claim build failed (published by {publisher}), streaming from "
                          "{stream}{reconnect_part}",
}
DEFAULT_SUBJECT = "a {agent} agent whose claim was published by {publisher}, streaming from {stream}{reconnect_part}"


def subject(cell: dict[str, Any]) -> str:
    v = cell["versions"]
    reconnect_part = f" and reconnecting to {v['reconnect']}" if v["reconnect"] != v["stream"] else ""
    return SUBJECT.get(cell["scenario"], DEFAULT_SUBJECT).format(**v, reconnect_part=reconnect_part)


def problems(cell: dict[str, Any]) -> str:
    found = [f"{c['message']} ({c['name']})" for c in cell.get("checks", []) if c["verdict"] != "PASS"]
    return "; ".join(found) if found else "every check passed"


def _repro(cell: dict[str, Any]) -> str:
    return f" Repro: {cell['repro']}" if cell.get("repro") else " Repro: none recorded (the cell failed in setup)."


def _tail(cell: dict[str, Any]) -> str:
    """After the problems: the prediction (or the SURPRISE) and the ledger entry that accepts the cell."""
    if cell.get("surprise"):
        predicted = (cell.get("predicted") or {}).get("verdict", "?")
        tail = f" SURPRISE — the model predicted {predicted}: {'; '.join(cell.get('differences') or [])}."
    else:
        tail = " As predicted." if cell["verdict"] != "PASS" else ""
    ledger = cell.get("ledger")
    if cell.get("accepted") and ledger:
        tail += (f" Accepted by the ledger (line {ledger['line']}, {ledger['ticket']}, until {ledger['expires']}): "
                 f"{ledger['reason'].rstrip('.')}.")
    return tail


def paragraph(cell: dict[str, Any]) -> str:
    """The one paragraph a FAIL, SURPRISE, DEGRADED or ERROR cell gets in reports and test failures."""
    if cell.get("error"):
        first = str(cell["error"]).strip().splitlines()[0].rstrip(".")
        return f"{cell['scenario']} — {subject(cell)}: the cell could not run: {first}.{_repro(cell)}"
    return f"{cell['scenario']} — {subject(cell)}: {problems(cell)}.{_tail(cell)}{_repro(cell)}"


def short_pairing(cell: dict[str, Any]) -> str:
    v = cell["versions"]
    return f"{v['publisher']}→{v['stream']}→{v['reconnect']} agent {v['agent']}"


def group_paragraph(cells: list[dict[str, Any]]) -> str:
    """One paragraph for pairings of one scenario with identical problems (one cell: ``paragraph``)."""
    if len(cells) == 1:
        return paragraph(cells[0])
    first = cells[0]
    who = f"{len(cells)} pairings (publisher→stream→reconnect): " + "; ".join(short_pairing(c) for c in cells)
    if first.get("error"):
        what = "the cell could not run: " + str(first["error"]).strip().splitlines()[0].rstrip(".") + "."
    else:
        what = f"{problems(first)}.{_tail(first)}"
    repro = _repro(first).replace(" Repro:", " Repro (first pairing):", 1)
    return f"{first['scenario']} — {who}: {what}{repro}"
