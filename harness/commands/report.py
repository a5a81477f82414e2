"""harness report: re-render a run's report, diff two runs, or show verdict trends.

- ``harness report [RUN]`` re-renders report.md, report.html and junit.xml from the run's results
  (rebuilt from cells.jsonl, and results.json rewritten, when results.json is missing, behind it or
  does not parse, e.g. after a run was killed; lines of cells.jsonl that are not a cell are skipped and
  counted). RUN is a run folder, its results.json, or a run folder's name under the report dir; by
  default ``<report dir>/latest``. Only the run's report files change: ``latest`` and history.jsonl
  are the runs' own business (see harness.report.render_run).
- ``harness report --diff OLD NEW`` prints the cells that got worse, got better or changed facts
  (see harness.report.diff); exit status 0, or 1 with ``--fail-on-worse`` when anything got worse.
- ``harness report --trend [--last N]`` prints each pairing's and scenario's verdicts over the last
  N finished runs from ``<report dir>/history.jsonl`` (lines that are not a run's entry are skipped
  and counted).

The report dir is ``--report-dir``, else $HARNESS_REPORT_DIR, else ./reports. A path that is not a
run, or a file that is not a results.json this harness wrote (``harness.report.view.results_problem``,
the same check for a re-render and both sides of a diff), is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from harness.errors import UsageError
from harness.settings import DEFAULT_REPORT_DIR, ENV

if TYPE_CHECKING:
    from harness.results import LoadedRun

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
            _no_latest(latest)
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


def _no_latest(latest: Path) -> NoReturn:
    """UsageError: why there is no latest run to re-render, naming the newest run folder when there is one."""
    from harness.report.history import newest_run

    newest = newest_run(latest.parent)
    if latest.is_symlink():
        gone = "is missing" if not latest.exists() else "is not a run folder"
        why = f"{latest} points to {os.readlink(latest)}, which {gone}"
    else:
        why = f"{latest} is not a link to a run folder" if latest.exists() else f"no {latest}"
    if newest is None:
        raise UsageError(f"no runs in {latest.parent} yet ({why}): run 'harness run' first, or name a run folder")
    raise UsageError(f"{why}; the newest run folder there is {newest.name}: 'harness report {newest}' re-renders it")


def load(arg: str | None, reports: Path) -> tuple[Path, LoadedRun]:
    """(run folder, its results as read): results of the shape every report and the diff read, else UsageError."""
    from harness.report.view import results_problem
    from harness.results import LoadedRun, read_run

    folder, file = locate(arg, reports)
    where = file or folder
    try:
        if file is not None and file.name != "results.json":
            loaded = LoadedRun(json.loads(file.read_text(encoding="utf-8")), rebuilt=False)
        else:
            loaded = read_run(folder)
    except FileNotFoundError:
        if (folder / "plan.json").exists():
            raise UsageError(f"{folder}: a roll's folder; its report.md and report.html are final when the roll "
                             "ends (harness report reads the matrix's runs)") from None
        raise UsageError(f"{where}: no results.json or cells.jsonl in this folder — is it a run folder?") from None
    except OSError as e:
        raise UsageError(f"{e.filename or where}: cannot read it: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        what = str(e) if type(e) is ValueError else f"{type(e).__name__}: {e}"  # read_run's own say it in words
        raise UsageError(f"{where}: cannot read the results: {what}") from None
    if problem := results_problem(loaded.results):
        raise UsageError(f"{where}: {problem}")
    return folder, loaded


def rerender(args: argparse.Namespace) -> int:
    from harness.report import REPORT_FILES, render_run
    from harness.results import atomic_write

    folder, loaded = load(args.run, report_dir(args))
    results = loaded.results
    run_dir = folder.resolve() if folder.is_symlink() else folder  # latest → its run
    try:
        if loaded.rebuilt:
            atomic_write(run_dir / "results.json", json.dumps(results, indent=1, default=str) + "\n")
        render_run(run_dir, results, strict=True, record=False)  # the report files only: see render_run
    except OSError as e:
        raise UsageError(f"{e.filename or run_dir}: cannot write it: {e.strerror}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{folder}: cannot render these results: {type(e).__name__}: {e} "
                         "(written by another harness version?)") from None
    s, gate = results["summary"], results["gate"]
    state = "finished" if results["run"].get("finished") else "not finished"
    print(f"re-rendered {folder} ({s['cells']} of {s['planned']} cells, {state}"
          f"{''.join(f'; {note}' for note in loaded.notes)}): {', '.join(REPORT_FILES)}")
    verdict = "PASSED" if gate["passed"] else "INCOMPLETE" if not gate["complete"] else "FAILED"
    print(f"gate {verdict}" + (f" for {gate['candidate']}" if gate.get("candidate") else "") +
          (f": {len(gate['blocking'])} blocking cell(s)" if gate["blocking"] else ""))
    return 0


def diff(args: argparse.Namespace) -> int:
    from harness.report import diff_runs, render_diff

    reports = report_dir(args)
    _, old = load(args.diff[0], reports)
    _, new = load(args.diff[1], reports)
    d = diff_runs(old.results, new.results, old_name=args.diff[0], new_name=args.diff[1])
    print(render_diff(d), end="")
    if args.fail_on_worse and d.only_old:  # a run that silently covers fewer cells is not a pass
        print(f"--fail-on-worse: {len(d.only_old)} cell(s) of {args.diff[0]} are missing from {args.diff[1]}; "
              "counted as worse")
    return 1 if args.fail_on_worse and (d.worse or d.only_old) else 0


def trend(args: argparse.Namespace) -> int:
    from harness.report import load_history, render_trend

    reports = report_dir(args)
    path = reports / "history.jsonl"
    if not path.exists():
        raise UsageError(f"{path}: no history yet (every finished run adds a line)")
    try:
        entries, skipped = load_history(reports)
    except OSError as e:  # a folder called history.jsonl, no permission
        raise UsageError(f"{path}: cannot read it: {e.strerror}") from None
    print(render_trend(entries, last=args.last or DEFAULT_LAST, source=str(path), skipped=skipped), end="")
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
