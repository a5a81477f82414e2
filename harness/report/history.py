"""The report folder's memory: ``latest`` (a symlink to the newest run) and ``history.jsonl`` (one line per run).

A run folder's parent is the report folder (``reports/<YYYYmmdd-HHMMSS>-<hex6>/``). Run folder names
sort by start time, so "newest" is the greatest name: ``update_latest`` only ever moves the link
forward (re-rendering an old run leaves it alone) and replaces it atomically (a new link under a
temporary name, then rename over the old one).

``history.jsonl`` gets one line per *finished* run (partial writes never add one) with what trends
need: when, which matrix and seed, the gate, the counts, and a compact ``{cell id: code}`` map where a
code is the verdict plus ``+S`` for a SURPRISE and ``+A`` when the ledger accepted the cell
(``FAIL+A``, ``PASS+S``). ``record_history`` is idempotent per run id: the line for a run already in
the file is replaced, never repeated. The file is rewritten atomically under an exclusive lock on the
report folder, so two runs finishing at once cannot lose each other's line; a reader skips any line it
cannot parse.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.results import atomic_write

HISTORY = "history.jsonl"
LATEST = "latest"


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


def load_history(report_dir: Path) -> list[dict[str, Any]]:
    """Every parsable line of history.jsonl, in file order; [] when there is none."""
    path = report_dir / HISTORY
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "run" in entry:
            out.append(entry)
    return out


def _run_of(line: str) -> Any:
    try:
        entry = json.loads(line)
    except ValueError:
        return None  # a line we cannot read is kept as it is
    return entry.get("run") if isinstance(entry, dict) else None


def record_history(report_dir: Path, entry: dict[str, Any]) -> bool:
    """Add or replace the run's line; False when the identical line was already there."""
    line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str)
    path = report_dir / HISTORY
    with _locked(report_dir):
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
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
        atomic_write(path, "\n".join(out) + "\n")
    return True


def update_latest(report_dir: Path, run_dir: Path) -> bool:
    """Point ``latest`` at run_dir unless it already points at a newer run; True when it moved."""
    link = report_dir / LATEST
    if run_dir.name == LATEST:
        return False  # rendering through the link itself
    if link.is_symlink():
        current = os.readlink(link)
        if current == run_dir.name or (Path(current).name > run_dir.name and (report_dir / current).is_dir()):
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
