"""report.md: GitHub-flavoured Markdown small enough for a CI step summary or a PR comment.

Pure: ``render_markdown(results)`` returns the text. Layout, top to bottom: the gate line (PASSED,
FAILED or INCOMPLETE for the candidate) with a "partial: N of M cells" banner while a run has not
finished (going, or stopped without a word) or was cut short; the counts, SURPRISE first; the run's
settings; the grid (pairings × scenarios, one symbol per cell, tabulate's "github" format); a legend;
the ledger (``view.ledger_entries``) with stale and expired entries called out; then the findings
(``view.findings``): one paragraph per cell or per group of pairings that failed one scenario in the
same words, surprises and blockers first.

Size: a GitHub comment holds 65,536 characters, so the whole file aims at ``MAX_CHARS``. The grid is
always written in full (64 pairings × 18 scenarios is ~15 kB with numbered columns); findings fill
what is left, at most ``MAX_FINDINGS``, and the rest is counted with a pointer to report.html.
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from harness.report.view import (
    KINDS,
    ROLES,
    SECTIONS,
    Grid,
    findings,
    grid,
    kind_counts,
    ledger_entries,
    pairing_versions,
    run_state,
    symbol,
)
from harness.report.words import group_paragraph

MAX_CHARS = 60_000  # GitHub's comment limit is 65,536; leave room for whatever CI wraps around it
MAX_FINDINGS = 40  # paragraphs past this are noise in a PR comment; report.html has them all
NAMED_COLUMNS_UP_TO = 8  # more scenarios than this: numbered columns and a key, or rows get too wide


def _md(text: str) -> str:
    """Prose safe in Markdown: no raw HTML, no table-breaking pipes, one line."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace("|", "\\|")


def _with_code_repro(paragraph: str) -> str:
    head, sep, cmd = paragraph.rpartition(" Repro")
    if not sep or ": " not in cmd:
        return _md(paragraph)
    label, _, command = cmd.partition(": ")
    if not command.startswith("harness "):
        return _md(paragraph)
    return f"{_md(head)} Repro{label}: `{command.strip()}`"


def gate_word(results: dict[str, Any]) -> str:
    gate = results["gate"]
    return "PASSED" if gate.get("passed") else "INCOMPLETE" if not gate.get("complete") else "FAILED"


def gate_line(results: dict[str, Any]) -> str:
    gate, s = results["gate"], results["summary"]
    who = f" for {gate['candidate']}" if gate.get("candidate") else " (no candidate: every cell counts)"
    blocking = len(gate.get("blocking", []))
    if gate.get("passed"):
        return f"✅ **Gate PASSED**{who}"
    if not gate.get("complete"):
        so_far = f"; {blocking} blocking cell(s) so far" if blocking else ""
        return f"⏳ **Gate INCOMPLETE**{who}: {s['cells']} of {s['planned']} cells{so_far}"
    return f"❌ **Gate FAILED**{who}: {blocking} blocking cell(s)"


def counts_line(results: dict[str, Any]) -> str:
    s = results["summary"]
    parts = [f"⚠️ **{s['surprises']} SURPRISE**" if s["surprises"] else "⚠️ 0 SURPRISE"]
    parts += [f"{KINDS[v][0]} {s[v]} {v}" for v in ("PASS", "DEGRADED", "FAIL") if v in s]
    if s.get("accepted"):
        parts[-1] += f" ({KINDS['ACCEPTED'][0]} {s['accepted']} accepted by the ledger)"
    parts += [f"{KINDS[v][0]} {s[v]} {v}" for v in ("ERROR", "UNKNOWN") if s.get(v)]
    return " · ".join(parts) + f" — {s['cells']} of {s['planned']} cells"


def settings_line(results: dict[str, Any], run_name: str | None) -> str:
    run = results["run"]
    scale = run.get("time_scale", 1)
    timing = "Coder's real timings" if scale == 1 else f"×{scale:g} of Coder's timings"
    ended = run.get("ended") or ("interrupted" if run.get("interrupted") else "not finished")
    when = f"{run.get('started', '?')} → {ended}"
    sha = str(run.get("matrix_sha256", ""))[:12]
    name = f"Run `{run_name}` · " if run_name else ""
    return (f"{name}matrix `{run.get('matrix', '?')}` (sha256 {sha}) · seed {run.get('seed', '?')} · time scale "
            f"{scale:g} ({timing}) · quiet window {run.get('quiet_ms', '?')} ms · {when} · "
            f"harness {run.get('harness_version', '?')}")


def grid_table(g: Grid) -> tuple[str, str]:
    """The grid as a github table, and the scenario key line when columns are numbered (else '')."""
    numbered = len(g.scenarios) > NAMED_COLUMNS_UP_TO
    headers = [*ROLES, *((str(i) for i in range(1, len(g.scenarios) + 1)) if numbered else g.scenarios)]
    rows = []
    for pairing, slots in zip(g.rows, g.slots, strict=True):
        v = pairing_versions(pairing)
        rows.append([v[r] for r in ROLES] + ["" if s is False else symbol(s if isinstance(s, dict) else None)
                                            for s in slots])
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    key = ""
    if numbered:
        key = "Scenarios: " + " · ".join(f"**{i}** `{s}`" for i, s in enumerate(g.scenarios, 1))
    return table, key


def legend(results: dict[str, Any]) -> str:
    shown = set(kind_counts(results)) | {"PASS", "DEGRADED", "FAIL"}
    items = [f"{KINDS[k][0]} {KINDS[k][2]}" for k in KINDS if k in shown]
    return ("Legend: " + " · ".join(items) + ". ⚠️ before another symbol: a SURPRISE whose live verdict is that "
            "symbol. Rows: the replica that publishes the claim → the one holding the agent's stream → the one "
            "it reconnects to, and the agent's release.")


def ledger_section(results: dict[str, Any]) -> list[str]:
    entries = ledger_entries(results)
    if not entries:
        return ["No ledger entries: every FAIL and SURPRISE counts."]
    rows = [[e["line"], e["status"], _md(e["match"]), e["ticket"], e["expires"],
             f"{e['cells_accepted']}/{e['cells_matched']}", _md(e["reason"])] for e in entries]
    out = [tabulate(rows, headers=["line", "status", "match", "ticket", "expires", "accepted/matched", "reason"],
                    tablefmt="github", disable_numparse=True), "",
           "*matched*: the cells of this run that the line's match selects; *accepted*: those of them that FAILed "
           "(or were a SURPRISE) and so do not count against the gate. An expired line accepts none.", ""]
    for e in entries:
        if e["status"] == "stale":
            out.append(f"- ⚠️ **Stale:** line {e['line']} ({e['ticket']}) matched {e['cells_matched']} cell(s) and "
                       "none of them failed: the incompatibility it accepts no longer shows. Remove the entry.")
        elif e["status"] == "expired":
            out.append(f"- ⚠️ **Expired:** line {e['line']} ({e['ticket']}) expired on {e['expires']}: the "
                       f"{e['cells_matched']} cell(s) it matches count against the gate again. Fix them or renew the "
                       "entry with a reason.")
    return out


def render_markdown(results: dict[str, Any], *, run_name: str | None = None) -> str:
    """report.md for a run (finished or partial); deterministic for the same results."""
    s = results["summary"]
    partial = not results["run"].get("finished") or s["cells"] < s["planned"]
    candidate = results["gate"].get("candidate")
    lines = [f"# Compatibility report — gate {gate_word(results)}" + (f" for {candidate}" if candidate else ""), "",
             gate_line(results), ""]
    if partial:
        lines += [f"> ⏳ **Partial: {s['cells']} of {s['planned']} cells** — the run {run_state(results['run'])}; "
                  f"cells not run yet show {KINDS['NOT_RUN'][0]} and the gate is not decided.", ""]
    if not s["planned"] and not s["cells"]:
        lines += ["> ⚠️ **This run has no cells**: the matrix and filters selected nothing, so nothing was tested.", ""]
    lines += [counts_line(results), "", settings_line(results, run_name), ""]
    g = grid(results)
    table, key = grid_table(g)
    lines += ["## Matrix", "", table if g.rows else "No cells.", ""]
    if key:
        lines += [key, ""]
    lines += [legend(results), "", "## Ledger", "", *ledger_section(results), ""]
    found = findings(results)
    body = "\n".join(lines)
    lines = [f"## Findings ({sum(len(f.cells) for f in found)} cells)", ""]
    if not found:
        lines += ["Nothing to report: every cell run so far passed as predicted."]
    budget = MAX_CHARS - len(body) - 400  # the closing lines
    written, current = 0, None
    for f in found:
        item = f"- {_with_code_repro(group_paragraph(f.cells))}"
        sym, title = SECTIONS[f.section]
        heading = [f"### {KINDS[sym][0]} {title}", ""] if f.section != current else []
        size = sum(len(x) + 1 for x in heading) + len(item) + 1
        if written >= MAX_FINDINGS or size > budget:
            break
        if heading and current is not None:
            lines.append("")
        lines += [*heading, item]
        current, written, budget = f.section, written + 1, budget - size
    if written < len(found):
        rest = found[written:]
        lines += ["", f"… and {len(rest)} more finding(s) ({sum(len(f.cells) for f in rest)} cells) in report.html."]
    lines += ["", "Files: report.html (grid, details, timelines) · junit.xml · results.json", ""]
    return body + "\n" + "\n".join(lines)
