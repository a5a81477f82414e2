"""Reports rendered from results.json by pure functions; ``render_run`` writes them into a run folder.

Renderers (each takes the results dict, returns text, never judges a cell again; see ``view`` for
what they all show and in which order):

- ``render_markdown`` → report.md (CI step summary, PR comment),
- ``render_html`` → report.html (one self-contained page: heat map, details, timelines),
- ``render_junit`` → junit.xml (one testcase per cell),
- ``render_diff`` / ``diff_runs`` and ``render_trend`` for ``harness report --diff`` / ``--trend``.

``render_run(run_dir, results)`` is RunRecorder's ``on_write``: it runs after every write of
results.json, partial ones included (every 15 s of a run and at the end), so it must be fast (~0.3 s
for 1,100 cells) and each file is written atomically (``results.atomic_write``): a reader sees the
previous complete report or the new one, never half of one. Then, for the run itself (``record``, the
default), it points ``<report dir>/latest`` at the run (when it is the newest run folder) and, once the
run is finished, records it in ``<report dir>/history.jsonl`` (idempotent per run). The report dir is
the run folder's parent. A re-render (``harness report RUN``, ``record=False``) rewrites the run's
report files only: the run recorded its own history line when it finished (a run killed before that
has none), and a re-rendered folder may be a copy or lie anywhere, so it must not move ``latest``.

During a run a reporting bug must not cost the run (results.json is already safe on disk), so by
default a renderer that raises is reported on stderr and the other files are still written;
``strict=True`` (``harness report``) raises instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.report.diff import diff_runs, render_diff
from harness.report.history import history_entry, load_history, record_history, update_latest
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.trend import render_trend
from harness.report.words import paragraph
from harness.results import atomic_write

__all__ = ["REPORT_FILES", "diff_runs", "load_history", "paragraph", "render_diff", "render_html", "render_junit",
           "render_markdown", "render_run", "render_trend"]

REPORT_FILES = ("report.md", "report.html", "junit.xml")


def render_run(run_dir: Path, results: dict[str, Any], *, strict: bool = False, record: bool = True) -> list[Path]:
    """Write report.md, report.html and junit.xml into run_dir (and, with record, latest and history); return them."""
    name = run_dir.name
    renderers: dict[str, Callable[[], str]] = {
        "report.md": lambda: render_markdown(results, run_name=name),
        "report.html": lambda: render_html(results, run_name=name),
        "junit.xml": lambda: render_junit(results),
    }
    written = []
    for filename, render in renderers.items():
        try:
            atomic_write(run_dir / filename, render())
            written.append(run_dir / filename)
        except Exception as e:
            if strict:
                raise
            sys.stderr.write(f"harness report: could not write {run_dir / filename}: {type(e).__name__}: {e}\n")
    if not record:
        return written
    report_dir = run_dir.parent
    try:
        update_latest(report_dir, run_dir)
        if results["run"].get("finished") and not results["run"].get("cells_chosen"):  # a repro is not a run
            record_history(report_dir, history_entry(results, name, str(run_dir)))
    except Exception as e:
        if strict:
            raise
        sys.stderr.write(f"harness report: could not update {report_dir}/latest or history.jsonl: {e}\n")
    return written
