"""harness bench soak: a full rolling upgrade with 1,000 agents, cuts and kills, a claim for every prebuild.

Runs the same seeded plan ``runs`` times (default 2) to show it gives the same anomaly counts each
time, and reports claims, lost, duplicated, spurious (each against the model's prediction),
completion → reinit latency, peak memory and wall time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from harness.bench.stats import peak_rss_mb, percentile
from harness.roll.plan import RollConfig, RollPlan, generate

KINDS = ("lost", "duplicated", "spurious", "polls forever")


def plan(*, agents: int = 1000, replicas: int = 3, from_tag: str = "v2.31.14", to_tag: str = "v2.34.4",
         seed: int = 7) -> RollPlan:
    """The soak's roll; ValueError on a configuration a roll does not accept."""
    return generate(RollConfig(from_tag, to_tag, replicas=replicas, agents=agents, seed=seed))


def run(dsn: str, plan: RollPlan, *, runs: int = 2, progress=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from harness.commands.roll import execute

    progress("\n".join(plan.header()))
    rounds = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="harness-soak-") as tmp:
            progress(f"run {i + 1} of {runs} ...")
            result = execute(plan, dsn, Path(tmp), time_scale=1.0, progress=lambda m: None)
        j, lat = result["judgement"], result["latencies_ms"]
        rounds.append({
            "claims": j["live"].get("claims", 0),
            **{k: f"{j['live'].get(k, 0)} (predicted {j['predicted'].get(k, 0)})" for k in KINDS},
            "surprises": len(j["surprises"]),
            "latency_p50_ms": round(percentile(lat, 50), 1), "latency_p99_ms": round(percentile(lat, 99), 1),
            "wall_s": result["wall_s"], "events": result["events"],
        })
        progress(f"  {rounds[-1]}")
    same = all({k: r[k] for k in KINDS} == {k: rounds[0][k] for k in KINDS} for r in rounds)
    c = plan.config
    return {"plan": f"{c.replicas} replicas {c.from_tag} → {c.to_tag}, {c.agents} agents, seed {c.seed}, "
                    f"{len(plan.steps)} steps",
            **rounds[-1], "same_counts_every_run": same if runs > 1 else None, "runs": runs,
            "peak_memory_mib": round(peak_rss_mb())}
