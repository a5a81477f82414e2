"""A cell in plain words: who was involved, what went wrong, whether the model saw it coming, how to repro.

"live_claim — a v2.32.10 agent whose claim was published by v2.31.14, streaming from v2.32.10:
reinitialised 2 times for one claim (ONCE); decoded zero ids (cosmetic): ws/0 (IDENTITY). As
predicted. Repro: harness run ..."
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


def paragraph(cell: dict[str, Any]) -> str:
    """The one paragraph a FAIL, SURPRISE, DEGRADED or ERROR cell gets in reports and test failures."""
    if cell.get("error"):
        first = str(cell["error"]).strip().splitlines()[0]
        return f"{cell['scenario']} — {subject(cell)}: the cell could not run: {first}. Repro: {cell.get('repro', '')}"
    if cell["surprise"]:
        tail = (f" SURPRISE — the model predicted {cell['predicted']['verdict']}: "
                f"{'; '.join(cell['differences'])}.")
    else:
        tail = " As predicted." if cell["verdict"] != "PASS" else ""
    ledger = cell.get("ledger")
    if cell.get("accepted") and ledger:
        tail += f" Accepted by the ledger (line {ledger['line']}, {ledger['ticket']}, until {ledger['expires']}): " \
                f"{ledger['reason']}"
    return f"{cell['scenario']} — {subject(cell)}: {problems(cell)}.{tail} Repro: {cell['repro']}"
