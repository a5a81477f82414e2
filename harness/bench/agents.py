"""harness bench agents: N agents holding streams on 3 replicas, then a claim for each.

The agents live in this process (one thread and one connection each); the replicas are their own
processes. Memory per agent is this process's RSS growth from before the agents started to when every
stream is held, divided by N. Latency is build completion (the replica's ``build.completed`` event)
to the agent's ``agent.reinit``, both on CLOCK_MONOTONIC. Claims go out as fast as 8 client threads
can send them, so p99 includes the burst's queueing.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.agent.host import AgentHost
from harness.bench.stats import percentile
from harness.fleet import Fleet
from harness.protocol import Release, resolve

CLIENT_THREADS = 8


def _rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _cpu_s(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(dsn: str, *, agents: int = 1000, tag: str = "v2.34.4", replicas: int = 3, seed: int = 1,
        log_dir: Path | None = None, progress=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    release = resolve(tag)
    rng = random.Random(seed)
    keep_logs = log_dir is not None
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="harness-bench-agents-"))
    try:
        return _run(dsn, log_dir, release, agents, replicas, rng, progress) | (
            {"log_dir": str(log_dir)} if keep_logs else {})
    finally:
        if not keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)


def _run(dsn: str, log_dir: Path, release: Release, agents: int, replicas: int, rng: random.Random,
         progress) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    tag = release.tag
    with Fleet(dsn, log_dir) as fleet:
        reps = [fleet.add(f"r{i}", release) for i in range(replicas)]
        fleet.start()
        progress(f"{replicas} replicas of {tag} up; creating {agents} prebuilds")
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            workspaces = list(pool.map(lambda i: reps[i % replicas].control.create_prebuild(), range(agents)))
        rss_before, cpu_before = _rss_kib(), _cpu_s()
        t0 = time.monotonic()
        with AgentHost(fleet.log("agents")) as host:
            for i, ws in enumerate(workspaces):
                host.add(f"a{i}", url=reps[i % replicas].url, token=ws.agent_token, release=release,
                         workspace=str(ws.id))
            host.start_all()
            fleet.history.wait_until(
                lambda evs: sum(1 for e in evs if e["ev"] == "reinit.subscribed") >= agents, timeout=300,
                what=f"{agents} streams held")
            connect_s = time.monotonic() - t0
            rss_held, cpu_held = _rss_kib(), _cpu_s()
            replica_cpu0 = sum(_cpu_s(r.proc.pid) for r in reps if r.proc)
            progress(f"{agents} streams held after {connect_s:.1f}s; claiming every workspace")
            t1 = time.monotonic()

            def claim(ws) -> None:  # type: ignore[no-untyped-def]
                rng_local = random.Random(ws.id.int)
                reps[rng_local.randrange(replicas)].control.claim(ws.id, uuid.uuid4())
                reps[rng_local.randrange(replicas)].control.complete(ws.id)

            order = list(workspaces)
            rng.shuffle(order)
            with ThreadPoolExecutor(CLIENT_THREADS) as pool:
                list(pool.map(claim, order))
            claims_s = time.monotonic() - t1
            fleet.history.wait_until(lambda evs: sum(1 for e in evs if e["ev"] == "agent.reinit") >= agents,
                                     timeout=120, what=f"{agents} reinits")
            settle_s = time.monotonic() - t1
            if release.variant.agent is not None and release.variant.agent.dedupes_by_owner:
                fleet.history.wait_until(lambda evs: sum(1 for e in evs if e["ev"] == "agent.stopped") >= agents,
                                         timeout=60, what=f"{agents} agents to stop on the duplicate")
            cpu_claims = _cpu_s() - cpu_held
            replica_cpu = sum(_cpu_s(r.proc.pid) for r in reps if r.proc) - replica_cpu0
            summary = host.summary()
        events = fleet.history.snapshot()
    completed = {e["ws"]: e["m"] for e in events if e["ev"] == "build.completed"}
    first_reinit: dict[str, float] = {}
    for e in events:
        if e["ev"] == "agent.reinit":
            first_reinit.setdefault(e["ws"], e["m"])
    latencies = [(first_reinit[ws] - m) * 1000 for ws, m in completed.items() if ws in first_reinit]
    return {
        "agents": agents, "replicas": replicas, "release": tag,
        "streams_held_after_s": round(connect_s, 2),
        "memory_per_agent_kib": round((rss_held - rss_before) / agents, 1),
        "agents_process_rss_mib": round(rss_held / 1024, 1),
        "agents_cpu_s_connect": round(cpu_held - cpu_before, 2),
        "agents_cpu_s_claims": round(cpu_claims, 2), "replicas_cpu_s_claims": round(replica_cpu, 2),
        "claims_sent_in_s": round(claims_s, 2), "all_reinitialised_in_s": round(settle_s, 2),
        "reinits": summary["reinits"], "lost": agents - len(latencies),
        "latency_p50_ms": round(percentile(latencies, 50), 1), "latency_p99_ms": round(percentile(latencies, 99), 1),
        "latency_max_ms": round(max(latencies), 1) if latencies else None,
        "stopped_duplicate": summary.get("duplicate", 0),
    }
