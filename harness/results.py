"""A run's results: cells as they finish (cells.jsonl), results.json written atomically, the gate.

``cells.jsonl`` gets one line per finished cell, appended and flushed, so a run killed at any moment
leaves every finished cell on disk; ``results.json`` is rewritten atomically (temp file, fsync,
rename) every so often and at the end, so it is never half written. ``harness report RUN`` rebuilds
everything from cells.jsonl when results.json is older, missing or does not parse (``read_run``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
VERDICTS = ("PASS", "DEGRADED", "FAIL", "UNKNOWN", "ERROR")
BLOCKING = ("FAIL", "ERROR", "UNKNOWN")


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write the whole file (text as UTF-8, bytes as they are) or nothing: a reader never sees it half written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summarize(meta: dict[str, Any], cells: list[dict[str, Any]], *, finished: bool) -> dict[str, Any]:
    """results.json's content: run metadata, counts, ledger status, the gate and the cells."""
    counts = Counter(c["verdict"] for c in cells)
    summary = {"cells": len(cells), "planned": meta.get("cells_planned", len(cells)),
               **{v: counts.get(v, 0) for v in VERDICTS},
               "surprises": sum(1 for c in cells if c["surprise"]),
               "accepted": sum(1 for c in cells if c["accepted"])}
    ledger = []
    # a line whose cells all passed is stale only if the run covered the matrix: a subset may miss its failures
    whole = summary["planned"] >= meta.get("matrix_cells", summary["planned"])
    for entry in meta.get("ledger", []):
        matched = [c for c in cells if c.get("ledger") and c["ledger"]["line"] == entry["line"]]
        accepted = [c for c in matched if c["accepted"]]
        status = ("expired" if not entry["live"] else "not exercised" if not matched else "in use" if accepted
                  else "stale" if whole else "unused in this run")
        ledger.append({**entry, "status": status, "cells_matched": len(matched), "cells_accepted": len(accepted)})
    blocking = sorted(c["id"] for c in cells if c["candidate_involved"] and not c["accepted"] and
                      (c["verdict"] in BLOCKING or c["surprise"]))
    complete = finished and len(cells) >= summary["planned"]
    gate = {"candidate": meta.get("candidate"), "passed": complete and not blocking, "complete": complete,
            "blocking": blocking}
    return {"schema": SCHEMA_VERSION, "run": {**meta, "finished": finished}, "summary": summary, "gate": gate,
            "ledger": ledger, "cells": cells}


class RunRecorder:
    """Records finished cells into a run folder and keeps results.json current."""

    FLUSH_EVERY_S = 15.0  # results.json is rewritten at most this often while running

    def __init__(self, run_dir: Path, meta: dict[str, Any],
                 on_write: Callable[[Path, dict[str, Any]], None] | None = None) -> None:
        self.run_dir, self.meta, self.on_write = run_dir, meta, on_write
        run_dir.mkdir(parents=True, exist_ok=True)
        self.cells: list[dict[str, Any]] = []
        self._jsonl = open(run_dir / "cells.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._last_flush = time.monotonic()
        (run_dir / "run.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")

    def add(self, cell: dict[str, Any]) -> None:
        self.cells.append(cell)
        self._jsonl.write(json.dumps(cell, separators=(",", ":"), default=str) + "\n")
        self._jsonl.flush()
        if time.monotonic() - self._last_flush > self.FLUSH_EVERY_S:
            self.write(finished=False)

    def write(self, *, finished: bool) -> dict[str, Any]:
        self._last_flush = time.monotonic()
        if finished:
            self.meta["ended"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        order = {cid: i for i, cid in enumerate(self.meta.get("cell_order", []))}
        cells = sorted(self.cells, key=lambda c: order.get(c["id"], len(order)))
        results = summarize(self.meta, cells, finished=finished)
        atomic_write(self.run_dir / "results.json", json.dumps(results, indent=1, default=str) + "\n")
        if self.on_write is not None:  # the reports, partial ones included, follow results.json
            self.on_write(self.run_dir, results)
        return results

    def close(self) -> None:
        self._jsonl.close()


@dataclass
class LoadedRun:
    """A run's results as ``read_run`` found them, and what it had to do to get them."""

    results: dict[str, Any]
    rebuilt: bool  # from cells.jsonl, not results.json as stored: results.json should be rewritten
    notes: list[str] = field(default_factory=list)  # for people: lines skipped, results.json rebuilt and why


def _is_cell(cell: Any) -> bool:
    """Whether a cells.jsonl line holds what ``summarize`` reads of a cell."""
    return (isinstance(cell, dict) and isinstance(cell.get("id"), str) and isinstance(cell.get("verdict"), str)
            and all(k in cell for k in ("surprise", "accepted", "candidate_involved"))
            and isinstance(cell.get("ledger"), dict | None))


def _read_cells(jsonl: Path) -> tuple[list[dict[str, Any]], int]:
    """(the cells of cells.jsonl, how many whole lines were not a cell); a torn last line is not counted."""
    cells, skipped = [], 0
    for line in jsonl.read_bytes().split(b"\n")[:-1]:  # whole lines only: a killed run may leave half of one
        if not line.strip():
            continue
        try:
            cell = json.loads(line.decode("utf-8"))
        except ValueError:  # not UTF-8, or not JSON
            cell = None
        if _is_cell(cell):
            cells.append(cell)
        else:
            skipped += 1
    return cells, skipped


def _read_meta(path: Path) -> dict[str, Any]:
    """run.json (what the run planned), {} when there is none; ValueError when it is not a JSON object."""
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"run.json does not parse ({type(e).__name__}: {e}), so the results cannot be rebuilt") \
            from None
    if not isinstance(meta, dict):
        raise ValueError("run.json is not a JSON object, so the results cannot be rebuilt")
    return meta


def read_run(run_dir: Path) -> LoadedRun:
    """A run's results, rebuilt from cells.jsonl when results.json is missing, does not parse, or is behind it.

    Lines of cells.jsonl that are not a cell are skipped and counted. FileNotFoundError when the folder has
    neither file; ValueError when results.json does not parse and cells.jsonl has no cell to rebuild it from.
    """
    results_path, jsonl = run_dir / "results.json", run_dir / "cells.jsonl"
    results, broken = None, None
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text(encoding="utf-8"))
        except ValueError as e:  # truncated, or not UTF-8
            broken = f"{type(e).__name__}: {e}"
    if not jsonl.exists():
        if broken:
            raise ValueError(f"results.json does not parse ({broken}) and there is no cells.jsonl to rebuild it from")
        if results is None:
            raise FileNotFoundError(f"{run_dir} has no results.json or cells.jsonl")
        return LoadedRun(results, rebuilt=False)
    cells, skipped = _read_cells(jsonl)
    notes = [f"{skipped} unreadable line(s) of cells.jsonl skipped"] if skipped else []
    if broken and not cells:
        raise ValueError(f"results.json does not parse ({broken}) and cells.jsonl has no cell to rebuild it from"
                         + (f" ({skipped} unreadable line(s))" if skipped else ""))
    stored = results.get("cells") if isinstance(results, dict) else None
    if results is not None and (not isinstance(stored, list) or len(cells) <= len(stored)):
        return LoadedRun(results, rebuilt=False, notes=notes)  # one of another shape is the caller's to judge
    meta = _read_meta(run_dir / "run.json")
    run = results.get("run") if isinstance(results, dict) else None
    finished = isinstance(run, dict) and bool(run.get("finished"))
    why = "it did not parse" if broken else "there was none" if results is None else "it was behind"
    return LoadedRun(summarize(meta, cells, finished=finished), rebuilt=True,
                     notes=[f"results.json rebuilt from cells.jsonl ({why})", *notes])


def load_run(run_dir: Path) -> dict[str, Any]:
    """A run's results (see ``read_run``)."""
    return read_run(run_dir).results
