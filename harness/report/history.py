"""The report folder's memory: ``latest`` (a symlink to the newest run) and ``history.jsonl`` (one line per run).

A run folder's parent is the report folder (``reports/<YYYYmmdd-HHMMSS>-<hex6>/``). Run folder names
sort by start time, so "newest" is the greatest name. ``latest`` only ever points at a folder named
like that (``RUN_NAME``): not a copy such as ``reports/baseline``, not a roll's folder
(``...-roll-<hex6>``, which has no results.json for ``harness report`` to read). ``update_latest``
only moves the link forward (an older run leaves it alone) and decides and replaces it under the same
lock ``record_history`` takes, so two runs finishing at once cannot leave it on the older one; the
replacement is atomic (a new link under a temporary name, then rename over the old one).

``history.jsonl`` gets one line per *finished* run (partial writes never add one) with what trends
need: when, which matrix and seed, the gate, the counts, and a compact ``{cell id: code}`` map where a
code is the verdict plus ``+S`` for a SURPRISE and ``+A`` when the ledger accepted the cell
(``FAIL+A``, ``PASS+S``). ``record_history`` is idempotent per run id: the line for a run already in
the file is replaced, never repeated. The file is rewritten atomically under an exclusive lock on the
report folder, so two runs finishing at once cannot lose each other's line. The file is read as bytes,
line by line: a line that is not UTF-8 or not JSON spoils only itself; a reader skips (and counts)
every line that is not an entry of the shape ``history_entry`` writes, a writer keeps it byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.results import atomic_write

HISTORY = "history.jsonl"
LATEST = "latest"
RUN_NAME = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # harness.scenarios.plugin.new_run_dir's names


def is_run_name(name: str) -> bool:
    """Whether a folder is named like a run folder the harness made (``20261203-164918-abc123``)."""
    return RUN_NAME.fullmatch(name) is not None


def newest_run(report_dir: Path) -> Path | None:
    """The run folder with the greatest name in report_dir, or None when there is none."""
    try:
        runs = [p for p in report_dir.iterdir() if is_run_name(p.name) and p.is_dir()]
    except OSError:
        return None
    return max(runs, key=lambda p: p.name, default=None)


def cell_code(cell: dict[str, Any]) -> str:
    return str(cell["verdict"]) + ("+S" if cell.get("surprise") else "") + ("+A" if cell.get("accepted") else "")


def parse_code(code: str) -> tuple[str, bool, bool]:
    """``FAIL+S+A`` → (verdict, surprise, accepted)."""
    verdict, *flags = code.split("+")
    return verdict, "S" in flags, "A" in flags


def history_entry(results: dict[str, Any], run_id: str, folder: str | None = None) -> dict[str, Any]:
    run, gate = results["run"], results["gate"]
    return {
        "run": run_id, "folder": folder or run_id, "started": run.get("started"), "ended": run.get("ended"),
        "matrix": run.get("matrix"), "matrix_sha256": run.get("matrix_sha256"), "seed": run.get("seed"),
        "time_scale": run.get("time_scale"), "candidate": gate.get("candidate"),
        "gate": {"passed": gate.get("passed"), "complete": gate.get("complete"),
                 "blocking": len(gate.get("blocking", []))},
        "summary": results["summary"],
        "cells": {c["id"]: cell_code(c) for c in results["cells"]},
    }


def is_entry(entry: Any) -> bool:
    """Whether a parsed line has the shape ``history_entry`` writes (what ``render_trend`` reads)."""
    return (isinstance(entry, dict) and isinstance(entry.get("run"), str)
            and isinstance(entry.get("started"), str | None) and isinstance(entry.get("summary"), dict)
            and isinstance(entry.get("gate"), dict) and isinstance(entry.get("cells"), dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in entry["cells"].items()))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself (no lock file to leave behind); a no-op where flock is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: one writer at a time is then the caller's business
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lines(path: Path) -> list[bytes]:
    """The file's non-blank lines as they are on disk; [] when there is no file."""
    if not path.exists():
        return []
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


def _parse(line: bytes) -> Any:
    """The line's JSON, or None when it is not UTF-8 or not JSON."""
    try:
        return json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and json.JSONDecodeError both are
        return None


def load_history(report_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """(every entry of history.jsonl in file order, how many lines were skipped as not entries); ([], 0) for none."""
    entries = [_parse(line) for line in _lines(report_dir / HISTORY)]
    good = [e for e in entries if is_entry(e)]
    return good, len(entries) - len(good)


def _run_of(line: bytes) -> Any:
    entry = _parse(line)
    return entry.get("run") if isinstance(entry, dict) else None  # a line we cannot read is kept as it is


def record_history(report_dir: Path, entry: dict[str, Any]) -> bool:
    """Add or replace the run's line; False when the identical line was already there."""
    line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    path = report_dir / HISTORY
    with _locked(report_dir):
        lines = _lines(path)
        out, replaced = [], False
        for old in lines:
            if _run_of(old) == entry["run"]:
                if not replaced:  # the run's line goes where it was; any duplicate of it goes away
                    out.append(line)
                    replaced = True
                continue
            out.append(old)
        if not replaced:
            out.append(line)
        if out == lines:
            return False
        atomic_write(path, b"\n".join(out) + b"\n")
    return True


def update_latest(report_dir: Path, run_dir: Path) -> bool:
    """Point ``latest`` at run_dir, a run folder, unless it already points at a newer one; True when it moved."""
    if not is_run_name(run_dir.name):
        return False  # a copy (reports/baseline), a roll, or the link itself: never the latest run
    link = report_dir / LATEST
    with _locked(report_dir):  # the decision and the replacement, one process at a time
        if link.is_symlink():
            current = os.readlink(link)
            if current == run_dir.name or (is_run_name(Path(current).name) and Path(current).name > run_dir.name
                                           and (report_dir / current).is_dir()):
                return False
        elif link.exists():
            return False  # someone made a real file or folder called "latest": leave it alone
        tmp = report_dir / f".{LATEST}.{secrets.token_hex(4)}"
        os.symlink(run_dir.name, tmp)
        try:
            os.replace(tmp, link)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
    return True
