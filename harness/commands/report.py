"""harness report: re-render a run's report, diff two runs, or show verdict trends.

- ``harness report [RUN]`` re-renders report.md, report.html and junit.xml from the run's results
  (rebuilt from cells.jsonl, and results.json rewritten, when results.json is missing or behind it,
  e.g. after a run was killed). RUN is a run folder, its results.json, or a run folder's name under
  the report dir; by default ``<report dir>/latest``.
- ``harness report --diff OLD NEW`` prints the cells that got worse, got better or changed facts
  (see harness.report.diff); exit status 0, or 1 with ``--fail-on-worse`` when anything got worse.
- ``harness report --trend [--last N]`` prints each pairing's and scenario's verdicts over the last
  N finished runs from ``<report dir>/history.jsonl``.

The report dir is ``--report-dir``, else $HARNESS_REPORT_DIR, else ./reports. A path that is not a
run, or a file that is not a results.json this harness wrote, is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.settings import DEFAULT_REPORT_DIR, ENV

DEFAULT_LAST = 10  # runs in a trend: two working weeks of nightlies fit a terminal line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", metavar="RUN",
                   help="run folder, its results.json, or a run name under the report dir (default: latest)")
    p.add_argument("--diff", nargs=2, metavar=("OLD", "NEW"), help="compare two runs cell by cell")
    p.add_argument("--fail-on-worse", action="store_true", help="with --diff: exit 1 when any cell got worse")
    p.add_argument("--trend", action="store_true", help="verdict history per pairing from history.jsonl")
    p.add_argument("--last", type=int, metavar="N",
                   help=f"with --trend: how many finished runs (default {DEFAULT_LAST})")
    p.add_argument("--report-dir", help="the reports folder (default: $HARNESS_REPORT_DIR or ./reports)")


def report_dir(args: argparse.Namespace) -> Path:
    return Path(args.report_dir or os.environ.get(ENV["report_dir"]) or DEFAULT_REPORT_DIR)


def locate(arg: str | None, reports: Path) -> tuple[Path, Path | None]:
    """(run folder, the results file named on the command line or None for the folder's own)."""
    if arg is None:
        latest = reports / "latest"
        if not latest.is_dir():
            raise UsageError(f"no runs in {reports} yet (no {latest}): run 'harness run' first, or name a run folder")
        return latest, None
    p = Path(arg)
    if p.is_file():
        return p.parent, p
    if p.is_dir():
        return p, None
    if not p.is_absolute() and (reports / arg).is_dir():
        return reports / arg, None
    also = "" if p.is_absolute() else f" (nor {reports / arg})"
    raise UsageError(f"{arg}: no such run folder or results.json{also}")


def _check(results: Any, where: Path) -> dict[str, Any]:
    if not isinstance(results, dict) or "cells" not in results or "run" not in results:
        raise UsageError(f"{where}: not a results.json of this harness (no 'run' and 'cells')")
    if results.get("schema") != 1:
        raise UsageError(f"{where}: results schema {results.get('schema')!r}; this harness reads schema 1")
    for key in ("summary", "gate", "ledger"):
        if key not in results:
            raise UsageError(f"{where}: results.json has no {key!r}")
    return results


def load(arg: str | None, reports: Path) -> tuple[Path, dict[str, Any], bool]:
    """(run folder, results, rebuilt): rebuilt when the results came from cells.jsonl rather than results.json."""
    from harness.results import load_run

    folder, file = locate(arg, reports)
    try:
        if file is not None and file.name != "results.json":
            return folder, _check(json.loads(file.read_text(encoding="utf-8")), file), False
        before = folder / "results.json"
        stored = before.exists()
        results = load_run(folder)
        rebuilt = not stored or len(results["cells"]) != len(json.loads(before.read_text())["cells"])
        return folder, _check(results, file or folder), rebuilt
    except FileNotFoundError:
        raise UsageError(f"{file or folder}: no results.json or cells.jsonl in this folder — is it a run folder?") \
            from None
    except (ValueError, KeyError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise UsageError(f"{file or folder}: cannot read the results: {type(e).__name__}: {e}") from None


def rerender(args: argparse.Namespace) -> int:
    from harness.report import REPORT_FILES, render_run
    from harness.results import atomic_write

    folder, results, rebuilt = load(args.run, report_dir(args))
    if rebuilt:
        atomic_write(folder / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    try:
        render_run(folder.resolve() if folder.is_symlink() else folder, results, strict=True)  # latest → its run
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{folder}: cannot render these results: {type(e).__name__}: {e} "
                         "(written by another harness version?)") from None
    s, gate = results["summary"], results["gate"]
    state = "finished" if results["run"].get("finished") else "not finished"
    print(f"re-rendered {folder} ({s['cells']} of {s['planned']} cells, {state}"
          f"{'; results.json rebuilt from cells.jsonl' if rebuilt else ''}): {', '.join(REPORT_FILES)}")
    verdict = "PASSED" if gate["passed"] else "INCOMPLETE" if not gate["complete"] else "FAILED"
    print(f"gate {verdict}" + (f" for {gate['candidate']}" if gate.get("candidate") else "") +
          (f": {len(gate['blocking'])} blocking cell(s)" if gate["blocking"] else ""))
    return 0


def diff(args: argparse.Namespace) -> int:
    from harness.report import diff_runs, render_diff

    reports = report_dir(args)
    _, old, _ = load(args.diff[0], reports)
    _, new, _ = load(args.diff[1], reports)
    d = diff_runs(old, new, old_name=args.diff[0], new_name=args.diff[1])
    print(render_diff(d), end="")
    return 1 if args.fail_on_worse and d.worse else 0


def trend(args: argparse.Namespace) -> int:
    from harness.report import load_history, render_trend

    reports = report_dir(args)
    path = reports / "history.jsonl"
    if not path.exists():
        raise UsageError(f"{path}: no history yet (every finished run adds a line)")
    print(render_trend(load_history(reports), last=args.last or DEFAULT_LAST, source=str(path)), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.diff and (args.trend or args.run):
        raise UsageError("--diff OLD NEW takes no RUN and no --trend")
    if args.fail_on_worse and not args.diff:
        raise UsageError("--fail-on-worse goes with --diff OLD NEW")
    if args.last is not None and not args.trend:
        raise UsageError("--last goes with --trend")
    if args.last is not None and args.last < 1:
        raise UsageError(f"--last {args.last}: must be 1 or more")
    if args.trend and args.run:
        raise UsageError("--trend reads history.jsonl of the report dir; it takes no RUN")
    if args.diff:
        return diff(args)
    if args.trend:
        return trend(args)
    return rerender(args)
