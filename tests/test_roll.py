"""Rolling upgrades: deterministic bounded plans, exact replay, shrinking, and a small real roll."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.fixtures import payload
from harness.protocol import resolve
from harness.protocol.rollmodel import RollModel, Routing
from harness.roll.plan import RollConfig, RollPlan, generate
from harness.roll.runner import drive, outcomes, shrink
from tests.procs import MARK_ENV, left_running

CONFIG = RollConfig("v2.31.14", "v2.34.4", replicas=3, agents=60, seed=7)


def model_outcomes(plan: RollPlan):
    model = RollModel(plan.config.replicas, resolve(plan.config.from_tag), seed=plan.config.seed, payloads=payload,
                      resolve=resolve)
    drive(plan, model)
    return outcomes(model.events, plan.agents, {a: str(w.id) for a, w in model.ws_of.items()}, resolve)


@pytest.mark.parametrize("seed", range(12))
def test_plans_are_deterministic_bounded_and_claim_every_prebuild_once(seed):
    config = RollConfig("v2.31.14", "v2.34.4", replicas=3, agents=50, seed=seed, rollback=seed % 2 == 1, max_steps=30)
    plan = generate(config)
    assert generate(config) == plan
    assert len(plan.steps) <= 30
    claimed = [c.agent for s in plan.steps for c in s.claims()]
    prebuilds = sorted(a.id for a in plan.agents if a.kind == "prebuild")
    assert sorted(claimed) == prebuilds  # every prebuild exactly once
    upgrades = [s for s in plan.steps if s.kind == "upgrade"]
    assert len(upgrades) == (6 if config.rollback else 3)
    assert sorted(s.args["replica"] for s in upgrades[:3]) == [0, 1, 2]
    assert len({s.seed for s in plan.steps}) == len(plan.steps)  # a derived seed each


def test_different_seeds_give_different_plans():
    assert generate(CONFIG).steps != generate(RollConfig("v2.31.14", "v2.34.4", agents=60, seed=8)).steps


def test_plan_json_round_trip_is_exact():
    plan = generate(CONFIG)
    assert RollPlan.from_json(plan.to_json()) == plan
    with pytest.raises(ValueError, match="not a roll plan"):
        RollPlan.from_json('{"schema": 99}')


def test_routing_follows_drains():
    r = Routing({"a": 0, "b": 1})
    assert r.drain(0, 1) == ["a"] and r.target("a") == 1
    assert r.drain(1, 2) == ["a", "b"] and r.target("a") == 2
    assert r.undrain(0) == ["a"] and r.target("a") == 0  # home again, though b's replica is still drained
    assert r.undrain(1) == ["b"] and r.target("b") == 1


def test_the_model_predicts_anomalies_for_a_v1_to_v3_roll():
    got = model_outcomes(generate(CONFIG))
    kinds = {k for o in got.values() for k in o.anomalies}
    assert "polls forever" in kinds  # V1 agents in regular workspaces
    assert "lost" in kinds  # the listener gap, and cuts in flight toward V1


def test_shrinking_reaches_a_small_plan_that_still_shows_the_anomaly():
    plan = generate(CONFIG)
    first = next(o for o in model_outcomes(plan).values() if "lost" in o.anomalies)

    def shows(candidate: RollPlan) -> bool:
        return any("lost" in o.anomalies and o.agent_tag == first.agent_tag
                   for o in model_outcomes(candidate).values())

    smallest, runs = shrink(plan, shows, budget=200)
    assert shows(smallest)
    assert len(smallest.agents) < len(plan.agents) and len(smallest.steps) < len(plan.steps)
    assert len(smallest.agents) <= 2 and runs <= 200


def _roll(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "roll", *args, "--report-dir", str(tmp)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "v2.31.14", "--to", "v2.99.0"], "v2.99.0 is not a release the catalogue knows"),
    (["--from", "v2.21.0", "--to", "v2.34.4"], "it has no reinit protocol to roll"),
    (["--from", "v2.31.14", "--to", "v2.34.4", "--agents", "0"], "agents must be 1..5000"),
    (["--to", "v2.34.4"], "give --from and --to"),
    (["--replay-plan", "/nonexistent/plan.json"], "--replay-plan /nonexistent/plan.json"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = _roll(tmp_path, *args, "--dry-run")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_small_real_roll_matches_the_model_and_replays_exactly(tmp_path):
    r = _roll(tmp_path, "--from", "v2.31.14", "--to", "v2.34.4", "--replicas", "3", "--agents", "20", "--seed", "3")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    run_dir = next(tmp_path.iterdir())
    result = json.loads((run_dir / "roll.json").read_text())
    j = result["judgement"]
    assert j["surprises"] == [] and j["live"] == j["predicted"]
    assert j["live"]["claims"] == sum(1 for a in result["plan"]["agents"] if a["kind"] == "prebuild")
    assert (run_dir / "report.md").read_text().startswith("# Rolling upgrade v2.31.14 → v2.34.4: no surprises")
    assert "no surprises: every claim went as predicted" in r.stdout
    page = (run_dir / "report.html").read_text()
    assert "Rolling upgrade v2.31.14 → v2.34.4: no surprises" in page and "<script" not in page
    assert page.count("<tr>") >= len(result["judgement"]["table"]) + 4  # the counts, then one row per version tuple
    assert ET.parse(run_dir / "junit.xml").getroot().get("failures") == "0"
    replay = _roll(tmp_path / "replay", "--replay-plan", str(run_dir / "plan.json"), "--dry-run")
    assert replay.returncode == 0
    printed = [line for line in r.stdout.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert [line for line in replay.stdout.splitlines() if line[:4].strip().rstrip(".").isdigit()] == printed


def test_an_interrupted_roll_says_how_far_it_got_and_leaves_nothing_running(tmp_path):
    mark = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "harness", "roll", "--from", "v2.31.14", "--to", "v2.34.4",
                             "--replicas", "2", "--agents", "20", "--seed", "3", "--report-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, MARK_ENV: mark})
    try:
        for line in proc.stdout:  # interrupt while the third step runs
            if line.startswith("step   3/"):
                break
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    run_dir = next(tmp_path.iterdir())
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# Rolling upgrade stopped: interrupted") and "stopped after 3 of " in md
    assert "--replay-plan" in md and (run_dir / "plan.json").exists() and not (run_dir / "roll.json").exists()
    assert ET.parse(run_dir / "junit.xml").getroot().get("errors") == "1"
    assert "partial report" in err and "interrupted; cleaned up" in err
    assert left_running(mark) == []
