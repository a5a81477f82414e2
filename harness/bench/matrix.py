"""harness bench matrix: wall time of a matrix at different worker counts, and the harness's own per-cell cost.

Each worker count is one real ``harness run`` (a subprocess, its own PostgreSQL). A cell's time splits
into the waits the protocol itself imposes — agent back-off sleeps, a pubsub listener's reconnect
back-off, a SIGKILLed replica coming back, and the quiet window the harness
watches a settled cell for — and everything else: the harness's overhead (HTTP control calls,
processes, settle detection). The overhead is what the harness could still win; the waits are not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.bench.stats import percentile


def protocol_wait_s(cell: dict[str, Any], quiet_s: float) -> float:
    """Seconds of a cell spent in waits the protocol (or the quiet window) imposes."""
    tl = cell.get("timeline", [])
    wait = quiet_s
    for i, e in enumerate(tl):
        if e["ev"] == "agent.error" and e.get("next_wait_s") is not None:
            if any(later["ev"] == "agent.request" and later.get("agent") == e.get("agent") for later in tl[i + 1:]):
                wait += float(e["next_wait_s"])
        elif e["ev"] == "pubsub.listener_lost":
            back = next((x for x in tl[i + 1:] if x["ev"] == "pubsub.reconnected"), None)
            wait += ((back["ms"] - e["ms"]) / 1000) if back else 0.0
        elif e["ev"] == "harness.fault" and e.get("fault") == "sigkill":
            back = next((x for x in tl[i + 1:] if x["ev"] == "harness.step" and "is back" in x.get("text", "")), None)
            wait += ((back["ms"] - e["ms"]) / 1000) if back else 0.0
    return wait


def run(matrix: Path, worker_counts: list[str], *, extra: list[str] | None = None,
        progress=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    figures: dict[str, Any] = {"matrix": str(matrix)}
    for n in worker_counts:
        with tempfile.TemporaryDirectory(prefix="harness-bench-matrix-") as tmp:
            progress(f"harness run -n {n} ...")
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", str(matrix), "-n", n,
                                   "--report-dir", tmp, *(extra or [])], capture_output=True, text=True)
            wall = time.monotonic() - t0
            results_path = next(Path(tmp).glob("*/results.json"), None)
            if proc.returncode not in (0, 1) or results_path is None:
                raise RuntimeError(f"harness run -n {n} failed ({proc.returncode}): {proc.stderr[-500:]}")
            results = json.loads(results_path.read_text())
        cells = results["cells"]
        quiet_s = results["run"]["quiet_ms"] / 1000
        durations = [c["duration_s"] for c in cells]
        overhead = [max(0.0, c["duration_s"] - protocol_wait_s(c, quiet_s)) for c in cells]
        figures[f"n={n}"] = {
            "cells": len(cells), "wall_s": round(wall, 1), "cells_per_s": round(len(cells) / wall, 1),
            "workers": results["run"]["workers"], "surprises": results["summary"]["surprises"],
            "cell_p50_s": round(percentile(durations, 50), 3), "cell_p90_s": round(percentile(durations, 90), 3),
            "overhead_p50_ms": round(percentile(overhead, 50) * 1000),
            "overhead_p90_ms": round(percentile(overhead, 90) * 1000),
            "protocol_wait_share": round(1 - sum(overhead) / max(sum(durations), 1e-9), 2),
        }
    return figures
