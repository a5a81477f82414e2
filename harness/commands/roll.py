"""harness roll: a seeded rolling upgrade with claims all along, judged claim by claim against the model.

Exit status: 0 when every claim went as the model predicted (predicted anomalies are reported, not
failed), 1 when there were SURPRISEs, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import UsageError, bounded
from harness.pg.locate import DSN_ENV
from harness.results import atomic_write


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_tag", help="release the fleet starts on, e.g. v2.31.14")
    p.add_argument("--to", dest="to_tag", help="release it is upgraded to, e.g. v2.34.4")
    p.add_argument("--replicas", type=int, default=3, help="replicas in the fleet (3)")
    p.add_argument("--agents", type=int, default=200, help="agents, one workspace each (200)")
    p.add_argument("--seed", type=int, default=1, help="plan seed (1)")
    p.add_argument("--new-agents", type=float, default=0.5, help="share of agents on the new release (0.5)")
    p.add_argument("--regular", type=float, default=0.1, help="share of agents in regular workspaces (0.1)")
    p.add_argument("--rollback", action="store_true", help="after the upgrade, roll every replica back")
    p.add_argument("--max-steps", type=int, default=40, help="bound on the plan's length (40)")
    p.add_argument("--time-scale", type=float, default=1.0, help="scale Coder's timings (1 = real)")
    p.add_argument("--replay-plan", type=Path, help="run this saved plan.json exactly instead of generating one")
    p.add_argument("--shrink", action="store_true", help="on an anomaly, find the smallest plan that still shows it")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--report-dir", help="where run folders go (default: $HARNESS_REPORT_DIR, else ./reports)")
    p.add_argument("--pg-dsn", help=f"use this PostgreSQL instead of starting one (also ${DSN_ENV})")


def load_plan(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The plan to run: the saved one (checked), or one generated from the flags; UsageError otherwise."""
    from harness.roll.plan import PlanError, RollConfig, RollPlan, generate

    if args.replay_plan:
        try:
            text = args.replay_plan.read_text()
        except OSError as e:
            raise UsageError(f"--replay-plan {args.replay_plan}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--replay-plan {args.replay_plan}: not a text file") from None
        try:
            return RollPlan.from_json(text)
        except PlanError as e:
            raise UsageError(f"{args.replay_plan}: {e}") from None
    if not args.from_tag or not args.to_tag:
        raise UsageError("give --from and --to (or --replay-plan FILE)")
    try:
        return generate(RollConfig(args.from_tag, args.to_tag, replicas=args.replicas, agents=args.agents,
                                   seed=args.seed, new_agents=args.new_agents, regular=args.regular,
                                   rollback=args.rollback, max_steps=args.max_steps))
    except ValueError as e:
        raise UsageError(str(e)) from None


def replay_command(plan_path: Path, args: argparse.Namespace) -> str:
    return (f"harness roll --replay-plan {shlex.quote(str(plan_path))}"
            + (f" --time-scale {args.time_scale:g}" if args.time_scale != 1 else ""))


def execute(plan, dsn: str, log_dir: Path, *, time_scale: float, progress, replay: str = "") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run a plan live and on the model; the judged result (no files written)."""
    from harness.fixtures import payload
    from harness.protocol import resolve
    from harness.protocol.rollmodel import RollModel
    from harness.roll.live import LiveRoll
    from harness.roll.runner import Judgement, drive, outcomes

    t0 = time.monotonic()
    with LiveRoll(dsn, log_dir, replicas=plan.config.replicas, release=resolve(plan.config.from_tag),
                  resolve=resolve, time_scale=time_scale) as live:
        drive(plan, live, progress=progress, replay=replay, versions=live.versions)
        events, ws_of = live.events(), dict(live.ws_of)
    wall = time.monotonic() - t0
    model = RollModel(plan.config.replicas, resolve(plan.config.from_tag), seed=plan.config.seed, payloads=payload,
                      resolve=resolve)
    drive(plan, model)
    judgement = Judgement(outcomes(events, plan.agents, ws_of, resolve),
                          outcomes(model.events, plan.agents, {a: str(w.id) for a, w in model.ws_of.items()}, resolve))
    steps = [e for e in events if e.get("ev") == "harness.mark" and e.get("label") == "step"]
    start = events[0]["m"] if events else 0.0
    latencies = [o.latency_ms for o in judgement.live.values() if o.latency_ms is not None]
    return {"judgement": judgement.as_dict(), "wall_s": round(wall, 1), "events": len(events),
            "timeline": [{"s": round(e["m"] - start, 2), "n": e["n"], "text": e["text"]} for e in steps],
            "latencies_ms": sorted(latencies)}


def run(args: argparse.Namespace) -> int:
    from harness.bench.stats import peak_rss_mb, percentile
    from harness.pg.locate import located_and_checked
    from harness.pg.session import postgres
    from harness.roll import report
    from harness.roll.runner import RollStepError
    from harness.settings import ready_report_dir, report_dir_of

    plan = load_plan(args)
    bounded("--time-scale", args.time_scale, 0.01, 100)
    print("\n".join(plan.header()))
    print("\n".join(plan.lines()), flush=True)
    if args.dry_run:
        return 0
    located_and_checked(args.pg_dsn)  # before the run folder exists: a bad DSN leaves nothing behind
    report_dir = ready_report_dir(report_dir_of(args.report_dir, os.environ))
    run_dir = report_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-roll-{secrets.token_hex(3)}"
    run_dir.mkdir()
    plan_path = run_dir / "plan.json"
    atomic_write(plan_path, plan.to_json())
    replay = replay_command(plan_path, args)
    print(f"run folder: {run_dir}\nreplay: {replay}", flush=True)
    reached: list[str] = []  # the step lines printed so far, for a report if the roll stops early

    def progress(line: str) -> None:
        reached.append(line)
        print(line, flush=True)

    result: dict[str, Any] | None = None
    try:
        with postgres(args.pg_dsn) as dsn:
            try:
                result = execute(plan, dsn, run_dir / "logs", time_scale=args.time_scale, replay=replay,
                                 progress=progress)
            except RollStepError as e:
                report.write_stopped(run_dir, plan.lines(), reached, str(e), replay)
                print(f"harness roll: {e}\nreport: {run_dir / 'report.md'}", flush=True)
                return 1
            result.update(plan=json.loads(plan.to_json()), plan_lines=plan.lines(), replay=replay)
            j = result["judgement"]
            if args.shrink and (j["surprises"] or any(o["anomalies"] for o in j["predicted_outcomes"].values())):
                result["shrunk"] = shrink(plan, result, dsn, run_dir, args)
    except KeyboardInterrupt:
        if result is not None:  # interrupted while shrinking: the roll itself ran to its end and is judged
            report.write(run_dir, result)
        else:
            report.write_stopped(run_dir, plan.lines(), reached, "interrupted", replay)
        sys.stderr.write(f"harness roll: partial report: {run_dir / 'report.md'}\n")
        raise
    report.write(run_dir, result)
    live, predicted, lat = j["live"], j["predicted"], result["latencies_ms"]
    print(f"\n{live.get('claims', 0)} claims: " + ", ".join(
        f"{k} {live.get(k, 0)} (predicted {predicted.get(k, 0)})" for k in report.KINDS))
    timing = (f"completion → reinit p50 {percentile(lat, 50):.0f} ms, p99 {percentile(lat, 99):.0f} ms" if lat
              else "no reinit to time")
    print(f"{timing} · peak memory {peak_rss_mb():.0f} MiB · wall {result['wall_s']} s")
    print(f"{len(j['surprises'])} SURPRISE(S)" if j["surprises"] else "no surprises: every claim went as predicted")
    print(f"report: {run_dir / 'report.md'}")
    return 1 if j["surprises"] else 0


def shrink(plan, result: dict[str, Any], dsn: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Find the smallest plan still showing the first surprise (live runs) or predicted anomaly (model)."""
    from harness.fixtures import payload
    from harness.protocol import resolve
    from harness.protocol.rollmodel import RollModel
    from harness.roll.runner import drive, outcomes
    from harness.roll.runner import shrink as shrink_plan

    j = result["judgement"]
    if j["surprises"]:
        agent = j["surprises"][0]
        versions = j["outcomes"][agent]
        target = f"surprise for {versions['publisher']} > {versions['stream']} > {versions['reconnect']} · " \
                 f"agent {versions['agent_tag']}"

        def shows(candidate) -> bool:  # type: ignore[no-untyped-def]
            r = execute(candidate, dsn, run_dir / "shrink-logs", time_scale=args.time_scale, progress=lambda _: None)
            return any(o["agent_tag"] == versions["agent_tag"] and o["publisher"] == versions["publisher"]
                       for a, o in r["judgement"]["outcomes"].items() if a in r["judgement"]["surprises"])
    else:
        agent, o = next((a, o) for a, o in j["predicted_outcomes"].items() if o["anomalies"])
        kind = o["anomalies"][0]
        target = f"{kind} for {o['publisher']} > {o['stream']} > {o['reconnect']} · agent {o['agent_tag']}"

        def shows(candidate) -> bool:  # type: ignore[no-untyped-def]
            model = RollModel(candidate.config.replicas, resolve(candidate.config.from_tag), seed=candidate.config.seed,
                              payloads=payload, resolve=resolve)
            drive(candidate, model)
            got = outcomes(model.events, candidate.agents, {a: str(w.id) for a, w in model.ws_of.items()}, resolve)
            return any(kind in x.anomalies and x.agent_tag == o["agent_tag"] for x in got.values())

    print(f"shrinking: {target}", flush=True)
    smallest, runs = shrink_plan(plan, shows, progress=lambda m: print(m, flush=True))
    path = run_dir / "shrunk-plan.json"
    atomic_write(path, smallest.to_json())
    replay = replay_command(path, args)
    print(f"shrunk to {len(smallest.agents)} agent(s) and {len(smallest.steps)} step(s) in {runs} tries: {path}\n"
          f"replay: {replay}", flush=True)
    return {"target": target, "agents": len(smallest.agents), "steps": len(smallest.steps), "runs": runs,
            "replay": replay, "lines": smallest.lines()}
