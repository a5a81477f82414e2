"""harness run: validate the matrix, print the plan, run every cell with pytest, write the report, judge the gate.

Exit status: 0 when the gate passes, 1 when it fails (or the run was incomplete), 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.errors import UsageError
from harness.pg.locate import DSN_ENV

AUTO_WORKERS_MAX = 6  # cells mostly wait on the network; past ~3 per core the machine, not the plan, is the limit
REPRO_LINES = 5  # blocking cells whose one-line repro the summary prints
MAX_WORKERS = 64  # each worker holds a fleet: 4 replicas and their PostgreSQL connections


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--matrix", help="matrix file (default: $HARNESS_MATRIX or ./matrix.yaml)")
    p.add_argument("--scenario", action="append", metavar="S", help="only this scenario (repeatable)")
    p.add_argument("--cell", action="append", metavar="ID", help="only this cell, as printed by --dry-run (repeatable)")
    p.add_argument("--seed", type=int, help="run seed (default: $HARNESS_SEED, then the matrix)")
    p.add_argument("--time-scale", type=float, help="scale Coder's timings (default: the matrix's, else 1 = real)")
    p.add_argument("--quiet-ms", type=int, help="how long a settled cell is watched for more (default 300)")
    p.add_argument("-n", dest="workers", default="auto",
                   help="parallel workers: a number, 0 for none, or auto (default: 3 per CPU, at most 6)")
    p.add_argument("--report-dir", help="where run folders go (default: ./reports)")
    p.add_argument("--pg-dsn", help=f"use this PostgreSQL instead of starting one (also ${DSN_ENV})")
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan, run nothing")


def workers(value: str, cells: int) -> int:
    if value == "auto":
        return max(1, min(AUTO_WORKERS_MAX, 3 * (os.cpu_count() or 1), cells // 8 or 1))
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"-n {value!r}: expected a number or auto") from None
    if not 0 <= n <= MAX_WORKERS:
        raise UsageError(f"-n {n}: must be between 0 and {MAX_WORKERS}")
    return min(n, cells)  # a worker without a cell would only start a fleet


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def header(matrix, settings, plan, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    from harness.plan import tags_of

    releases = ", ".join(f"{t} ({matrix.release(t).variant.name})" for t in tags_of(plan))
    scale = "Coder's real timings" if settings.time_scale == 1 else f"×{settings.time_scale:g} of Coder's timings"
    scenarios = len({c.scenario for c in plan})
    return [
        f"harness run — {matrix.path} (sha256 {matrix.sha256[:12]})",
        f"  seed {settings.seed} (from {settings.sources['seed']}) · time scale {settings.time_scale:g}: {scale} "
        f"(from {settings.sources['time_scale']}) · quiet window {settings.quiet_ms} ms",
        f"  candidate {matrix.candidate or '(none: the gate judges every cell)'} · {len(matrix.upgrades)} upgrade(s): "
        + ", ".join(f"{u.old} → {u.new}" for u in matrix.upgrades),
        f"  servers: {releases}",
        f"  {_n(len(plan), 'cell')} ({_n(scenarios, 'scenario')} × {_n(len({c.pairing for c in plan}), 'pairing')}) · "
        f"{n or 1} fleet(s) of {len(tags_of(plan))} replicas behind a fault proxy · workers: {n or 'in-process'}",
        f"  ledger: {len(matrix.ledger)} accepted incompatibilities",
    ]


def run(args: argparse.Namespace) -> int:
    import pytest

    from harness.matrix import load
    from harness.plan import cells
    from harness.scenarios import catalogue
    from harness.scenarios.plugin import VIA_HARNESS_RUN, new_run_dir
    from harness.settings import matrix_path, ready_report_dir, resolve

    scenarios = catalogue()
    matrix = load(matrix_path(args.matrix), known_scenarios=list(scenarios))
    settings = resolve(matrix, seed=args.seed, time_scale=args.time_scale, quiet_ms=args.quiet_ms,
                       report_dir=args.report_dir)
    plan = cells(matrix, list(scenarios), only_scenarios=args.scenario, only_cells=args.cell)
    n = workers(args.workers, len(plan))
    print("\n".join(header(matrix, settings, plan, n)), flush=True)
    if args.dry_run:
        for i, c in enumerate(plan, 1):
            print(f"  {i:>4}. {c.id}")
        return 0
    if args.pg_dsn:
        os.environ[DSN_ENV] = args.pg_dsn
    from harness.pg.locate import located_and_checked

    located_and_checked()  # before the run folder exists: a bad DSN leaves nothing behind
    ready_report_dir(settings.report_dir)
    run_dir = new_run_dir(settings.report_dir)
    # hypothesis's plugin imports hypothesis in every worker's teardown: seconds added to a Ctrl-C
    argv = ["--pyargs", "harness.scenarios", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-qq",
            "-W", "ignore::pytest.PytestAssertRewriteWarning",  # `python -m harness` imports harness first
            "--no-header", "-rN", "--tb=no",
            "-o", "addopts=", "--matrix", str(matrix.path), "--harness-run-dir", str(run_dir),
            "--harness-report-dir", str(settings.report_dir)]
    for flag, given in (("--harness-seed", args.seed), ("--harness-time-scale", args.time_scale),
                        ("--harness-quiet-ms", args.quiet_ms)):
        if given is not None:  # the rest the plugin resolves as above (environment, matrix), sources included
            argv += [flag, str(given)]
    for s in args.scenario or ():  # a subset of the matrix: a run that history and trends keep
        argv += ["--harness-scenario", s]
    for cid in args.cell or ():  # chosen cells: a repro, kept out of history
        argv += ["--harness-cell", cid]
    if n:
        argv += ["-n", str(n), "--dist", "worksteal"]
    print(f"  run folder: {run_dir}", flush=True)
    os.environ[VIA_HARNESS_RUN] = "1"
    try:
        code = pytest.main(argv)
        if code == pytest.ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        salvage(run_dir)
        raise
    if code == pytest.ExitCode.USAGE_ERROR:
        return 2
    results_path = run_dir / "results.json"
    if not results_path.exists():
        sys.stderr.write(f"harness run: no results were written (pytest exit status {int(code)})\n")
        return 1
    results = json.loads(results_path.read_text())
    print_summary(results, run_dir)
    return 0 if results["gate"]["passed"] else 1


def salvage(run_dir: Path) -> None:
    """After an interrupt: the partial report covers every cell cells.jsonl holds and says it was interrupted.

    pytest writes the report when its session ends, but a Ctrl-C can land before that (while workers tear
    their fleets down) or in the middle of it; cells.jsonl is flushed per cell, so nothing is lost.
    """
    from harness.report import render_run
    from harness.results import atomic_write, load_run

    try:
        results = load_run(run_dir)
    except (OSError, ValueError, KeyError):
        return  # nothing ran yet, or nothing readable to salvage
    if results["run"].get("finished"):
        return  # the signal came after the run had recorded itself complete
    results["run"]["interrupted"] = True
    atomic_write(run_dir / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    render_run(run_dir, results)
    sys.stderr.write(f"harness run: partial report of {results['summary']['cells']} of "
                     f"{results['summary']['planned']} cells: {run_dir / 'report.md'}\n")


def summary_lines(results: dict, run_dir: Path) -> list[str]:
    """The end of a run for people: counts, ledger problems, the gate, where the report is."""
    s, gate = results["summary"], results["gate"]
    counts = ", ".join(f"{s[v]} {v}" for v in ("PASS", "DEGRADED", "FAIL", "ERROR") if s[v]) or "nothing ran"
    lines = ["", f"{s['cells']} of {s['planned']} cells: {counts}; {s['surprises']} SURPRISE; "
             f"{s['accepted']} accepted by the ledger"]
    for e in results["ledger"]:
        if e["status"] in ("stale", "expired"):
            lines.append(f"ledger line {e['line']} is {e['status']}: {e['match']} ({e['ticket']})")
    verdict = "PASSED" if gate["passed"] else ("INCOMPLETE" if not gate["complete"] else "FAILED")
    involved = sum(1 for c in results["cells"] if c["candidate_involved"])
    line = f"gate {verdict}" + (f" for {gate['candidate']}" if gate["candidate"] else "")
    if gate["blocking"]:
        line += f": {len(gate['blocking'])} blocking cell(s); to run one again:"
    elif gate["candidate"] and not involved:
        line += " (no cell of this run involves it)"
    lines.append(line)
    repro = {c["id"]: c.get("repro") for c in results["cells"]}
    shown = [cid for cid in gate["blocking"] if repro.get(cid)][:REPRO_LINES]
    lines += [f"  {repro[cid]}" for cid in shown]
    if len(gate["blocking"]) > len(shown):
        lines.append(f"  … and {len(gate['blocking']) - len(shown)} more blocking cell(s) in the report")
    lines.append(f"report: {run_dir / 'report.md'} (and report.html, junit.xml, results.json)")
    return lines


def print_summary(results: dict, run_dir: Path) -> None:
    print("\n".join(summary_lines(results, run_dir)))
