"""A run's results: cells as they finish (cells.jsonl), results.json written atomically, the gate.

``cells.jsonl`` gets one line per finished cell, appended and flushed, so a run killed at any moment
leaves every finished cell on disk; ``results.json`` is rewritten atomically (temp file, fsync,
rename) every so often and at the end, so it is never half written. ``harness report RUN`` rebuilds
everything from cells.jsonl when results.json is older or missing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
VERDICTS = ("PASS", "DEGRADED", "FAIL", "UNKNOWN", "ERROR")
BLOCKING = ("FAIL", "ERROR", "UNKNOWN")


def atomic_write(path: Path, text: str) -> None:
    """Write the whole file or nothing: a reader never sees it half written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
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
    for entry in meta.get("ledger", []):
        matched = [c for c in cells if c.get("ledger") and c["ledger"]["line"] == entry["line"]]
        accepted = [c for c in matched if c["accepted"]]
        status = ("expired" if not entry["live"] else "not exercised" if not matched else
                  "stale" if not accepted else "in use")
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


def load_run(run_dir: Path) -> dict[str, Any]:
    """A run's results, rebuilt from cells.jsonl when results.json is missing or behind it."""
    results_path, jsonl = run_dir / "results.json", run_dir / "cells.jsonl"
    results = json.loads(results_path.read_text()) if results_path.exists() else None
    if jsonl.exists():
        cells = [json.loads(line) for line in jsonl.read_text().split("\n")[:-1] if line.strip()]  # whole lines
        if results is None or len(cells) > len(results["cells"]):
            meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
            results = summarize(meta, cells, finished=bool(results and results["run"].get("finished")))
    if results is None:
        raise FileNotFoundError(f"{run_dir} has no results.json or cells.jsonl")
    return results
