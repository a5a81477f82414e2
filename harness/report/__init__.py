"""Reports rendered from results.json by pure functions; ``render_run`` writes them into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.words import paragraph
from harness.results import atomic_write


def render_run(run_dir: Path, results: dict[str, Any]) -> None:
    """Write report.md next to results.json (atomically)."""
    s, gate = results["summary"], results["gate"]
    lines = [f"# Compatibility report: gate {'PASSED' if gate['passed'] else 'FAILED'}", "",
             f"{s['cells']} cells: " + ", ".join(f"{k} {s[k]}" for k in ("PASS", "DEGRADED", "FAIL", "ERROR")) +
             f", {s['surprises']} surprises, {s['accepted']} accepted by the ledger.", ""]
    for cell in results["cells"]:
        if cell["verdict"] != "PASS" or cell["surprise"]:
            lines += [f"- {paragraph(cell)}"]
    atomic_write(run_dir / "report.md", "\n".join(lines) + "\n")
