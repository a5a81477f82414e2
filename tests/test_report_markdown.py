"""report.md from the fixture runs: the gate line, the grid's symbols, the findings and their order, the size cap."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness.report import render_markdown
from harness.report.markdown import MAX_CHARS
from harness.report.view import findings, grid, kind

FIXTURES = Path(__file__).parent.parent / "fixtures" / "results"
P1 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.31.14"
P2 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.34.4"
P3 = "v2.31.14>v2.34.4>v2.34.4,agent=v2.31.14"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def grid_rows(md: str) -> dict[tuple[str, ...], dict[str, str]]:
    """The Markdown grid as {(publisher, stream, reconnect, agent): {scenario: symbol}}."""
    lines = md[md.index("## Matrix"):md.index("## Ledger")].splitlines()
    table = [[x.strip() for x in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    header, body = table[0], table[2:]
    return {tuple(row[:4]): dict(zip(header[4:], row[4:], strict=True)) for row in body}


def test_grid_shows_each_kind_in_its_row_and_column() -> None:
    rows = grid_rows(render_markdown(load("mixed")))
    p1, p2, p3 = (tuple(p.replace(",agent=", ">").split(">")) for p in (P1, P2, P3))
    assert list(rows) == [p1, p2, p3]  # plan order
    assert rows[p1] == {"live_claim": "✅", "claim_while_stream_down": "☑️", "regular_workspace": "❔",
                        "agent_restart_after_claim": "✅", "listener_gap": "☑️", "payload_v1_keys": ""}
    assert rows[p2]["live_claim"] == "❌"
    assert rows[p2]["claim_while_stream_down"] == "⚠️❌"  # SURPRISE whose live verdict is FAIL
    assert rows[p2]["regular_workspace"] == "💥"
    assert rows[p2]["agent_restart_after_claim"] == ""  # not planned for this pairing
    assert rows[p3]["live_claim"] == "🟡"


def test_summary_puts_the_gate_and_surprises_first() -> None:
    md = render_markdown(load("mixed"), run_name="20261203-164918-abc123")
    assert md.startswith("# Compatibility report — gate FAILED for v2.34.4\n")
    assert "❌ **Gate FAILED** for v2.34.4: 4 blocking cell(s)" in md
    counts = next(line for line in md.splitlines() if "SURPRISE**" in line)
    assert counts.startswith("⚠️ **1 SURPRISE** · ✅ 2 PASS · 🟡 1 DEGRADED · ❌ 5 FAIL (☑️ 2 accepted by the ledger)")
    assert "💥 1 ERROR" in counts and "❔ 1 UNKNOWN" in counts and counts.endswith("10 of 10 cells")
    assert "Run `20261203-164918-abc123`" in md and "seed 11" in md and "Coder's real timings" in md
    assert "Partial" not in md


def test_paragraphs_for_problem_cells_only_surprises_first() -> None:
    md = render_markdown(load("mixed"))
    findings_md = md[md.index("## Findings"):]
    assert "## Findings (8 cells)" in findings_md
    headings = ("### ⚠️ SURPRISE", "### ❌ Blocking the gate", "### ❌ Failing outside the gate",
                "### ☑️ Accepted by the ledger", "### 🟡 DEGRADED")
    order = [findings_md.index(h) for h in headings]
    assert order == sorted(order)
    surprise = findings_md[order[0]:order[1]]
    assert f"--cell 'claim_while_stream_down[{P2}]'" in surprise
    assert "SURPRISE — the model predicted PASS: verdict: live FAIL, predicted PASS" in surprise
    blocking = findings_md[order[1]:order[2]]
    for cid in (f"live_claim[{P2}]", f"regular_workspace[{P1}]", f"regular_workspace[{P2}]"):
        assert f"--cell '{cid}'" in blocking
    assert "the cell could not run: replica v2.34.4 did not become ready" in blocking
    assert "\x1b" not in md
    assert f"--cell 'payload_v1_keys[{P2}]'" in findings_md[order[2]:order[3]]
    assert "Accepted by the ledger (line 9, reinit-compat-1, until 2027-06-30)" in findings_md[order[3]:order[4]]
    for passing in (f"live_claim[{P1}]", f"agent_restart_after_claim[{P1}]"):  # PASS cells get no paragraph
        assert passing not in md
    assert "Repro: `harness run --matrix fixtures/sample-matrix.yaml --cell 'live_claim[" in md  # copy-paste ready


def test_ledger_calls_out_stale_and_expired_entries() -> None:
    md = render_markdown(load("mixed"))
    ledger = md[md.index("## Ledger"):md.index("## Findings")]
    assert "| 30     | stale" in ledger
    assert "⚠️ **Stale:** line 30 (reinit-compat-5)" in ledger
    assert "⚠️ **Expired:** line 21 (reinit-compat-8) expired on 2025-01-01" in ledger
    assert "regular_workspace\\|claim_while_stream_down" in ledger  # a pipe in a match does not break the table


def test_expired_ledger_entry_counts_the_cells_it_matches() -> None:
    """The run applies live entries only, so results.json counts an expired one 0/0; the report re-matches it."""
    results = load("mixed")
    expired = next(e for e in results["ledger"] if e["status"] == "expired")
    expired["match"] = "scenario=live_claim|regular_workspace, agent=V1"  # 3 cells with a V1 (v2.31.14) agent
    assert (expired["cells_accepted"], expired["cells_matched"]) == (0, 0)
    md = render_markdown(results)
    ledger = md[md.index("## Ledger"):md.index("## Findings")]
    row = next(line for line in ledger.splitlines() if line.startswith(f"| {expired['line']} "))
    assert "| 0/3 " in row
    assert f"line {expired['line']} ({expired['ticket']}) expired on {expired['expires']}: the 3 cell(s)" in ledger
    assert "| 1/2 " in next(line for line in ledger.splitlines() if line.startswith("| 13 "))  # live: as recorded


def test_partial_run_says_so_and_marks_cells_not_run() -> None:
    md = render_markdown(load("partial"))
    assert "⏳ **Gate INCOMPLETE** for v2.34.4: 4 of 10 cells; 1 blocking cell(s) so far" in md
    assert ("> ⏳ **Partial: 4 of 10 cells** — the run has not finished (still going, or stopped without a chance "
            "to say so)") in md
    assert "still going;" not in md and "→ not finished ·" in md  # a report cannot tell a going run from a killed one
    rows = grid_rows(md)
    p1 = tuple(P1.replace(",agent=", ">").split(">"))
    p2 = tuple(P2.replace(",agent=", ">").split(">"))
    assert rows[p1]["live_claim"] == "✅" and rows[p1]["regular_workspace"] == "·"
    assert rows[p2]["claim_while_stream_down"] == "·" and rows[p2]["agent_restart_after_claim"] == ""
    assert "· not run (yet)" in md


def test_empty_run() -> None:
    md = render_markdown(load("empty"))
    assert "This run has no cells" in md and "No cells." in md
    assert "Nothing to report" in md


def _failing_variants(n: int, *, same_words: bool) -> dict[str, Any]:
    """The mixed run plus n FAIL cells of one scenario on made-up pairings (identical problems or all different)."""
    results = load("mixed")
    base = next(c for c in results["cells"] if c["id"] == f"live_claim[{P2}]")
    for i in range(n):
        c = copy.deepcopy(base)
        pairing = f"v9.{i}.0>v9.{i}.0>v2.34.4,agent=v2.34.4"
        c.update(id=f"live_claim[{pairing}]", pairing=pairing,
                 versions={"publisher": f"v9.{i}.0", "stream": f"v9.{i}.0", "reconnect": "v2.34.4", "agent": "v2.34.4"})
        if not same_words:
            c["checks"] = [{**c["checks"][0], "message": f"reinitialised {i + 3} times for one claim " + "x" * 400}]
        results["cells"].append(c)
        results["gate"]["blocking"].append(c["id"])
    return results


def test_identical_failures_share_one_paragraph() -> None:
    md = render_markdown(_failing_variants(5, same_words=True))
    assert "live_claim — 6 pairings (publisher→stream→reconnect): v2.31.14→v2.31.14→v2.34.4 agent v2.34.4; " \
           "v9.0.0→v9.0.0→v2.34.4 agent v2.34.4;" in md
    assert "Repro (first pairing): `harness run" in md


def test_many_findings_are_capped_with_a_pointer_to_the_html() -> None:
    md = render_markdown(_failing_variants(200, same_words=False))
    assert len(md) <= MAX_CHARS
    assert "more finding(s)" in md and "in report.html." in md
    assert md.count("\n- ") < 60  # paragraphs cut, while the grid keeps every row
    assert len(grid_rows(md)) == 3 + 200


def test_rendering_is_deterministic_and_pure() -> None:
    results = load("mixed")
    before = copy.deepcopy(results)
    assert render_markdown(results) == render_markdown(copy.deepcopy(results))
    assert results == before


@pytest.mark.parametrize("name", ["mixed", "mixed-next", "partial", "empty"])
def test_view_never_rejudges(name: str) -> None:
    """Kinds come straight from the recorded fields; every non-PASS cell lands in exactly one finding."""
    results = load(name)
    g = grid(results)
    assert sum(1 for row in g.slots for s in row if isinstance(s, dict)) == len(results["cells"])
    found = [c["id"] for f in findings(results) for c in f.cells]
    assert len(found) == len(set(found))
    assert set(found) == {c["id"] for c in results["cells"] if kind(c) != "PASS" or c["surprise"]}
