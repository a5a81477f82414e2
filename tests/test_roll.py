"""Rolling upgrades: deterministic bounded plans, exact replay, shrinking, and a small real roll."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.fixtures import payload
from harness.protocol import resolve
from harness.protocol.rollmodel import RollModel, Routing
from harness.roll.plan import AGENTS, REPLICAS, STEP_ARGS, PlanError, RollConfig, RollPlan, generate, parse
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
    md = (run_dir / "report.md").read_text()
    by_versions = md[md.index("## By versions"):md.index("## Plan")]
    assert [line.split("|")[1].strip() for line in by_versions.splitlines()[6:] if line.startswith("|")] == \
        [row["versions"] for row in result["judgement"]["table"]]  # every version tuple, as report.html has
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


# -- plans within bounds for every accepted configuration, and checked plans -----------------------------
@pytest.mark.parametrize("replicas", range(REPLICAS[0], REPLICAS[1] + 1))
def test_every_accepted_configuration_gives_a_plan_within_its_bounds(replicas):
    for agents, seed, rollback in [(AGENTS[0], 0, False), (20, 1, True), (200, 7, False), (200, 8, True),
                                   (AGENTS[1], 3, True)]:
        for max_steps in (2 * replicas + 2, 40, 200):
            if max_steps < 2 * replicas + 2:
                continue
            config = RollConfig("v2.31.14", "v2.34.4", replicas=replicas, agents=agents, seed=seed,
                                rollback=rollback, max_steps=max_steps)
            plan = generate(config)
            assert 1 <= len(plan.steps) <= max_steps, config
            upgrades = [s.args["replica"] for s in plan.steps if s.kind == "upgrade"]
            assert sorted(upgrades) == sorted(list(range(replicas)) * (2 if rollback else 1)), config
            claimed = [c.agent for s in plan.steps for c in s.claims()]
            assert sorted(claimed) == sorted(a.id for a in plan.agents if a.kind == "prebuild"), config
            assert RollPlan.from_json(plan.to_json()) == plan, config  # and it passes the plan check


def test_generated_and_shrunk_plans_pass_the_plan_check():
    for seed in range(40):
        config = RollConfig("v2.31.14" if seed % 3 else "V2", "v2.34.4", replicas=1 + seed % 5, agents=1 + seed * 7,
                            seed=seed, rollback=seed % 2 == 0, new_agents=(seed % 4) / 3, regular=(seed % 5) / 6)
        plan = generate(config)
        assert parse(json.loads(plan.to_json())) == plan
        ids = sorted(a.id for a in plan.agents)
        for smaller in (plan.without(agents=frozenset(ids[1:])), plan.without(steps=frozenset(range(1, 99)))):
            assert RollPlan.from_json(smaller.to_json()) == smaller


def test_shrinking_keeps_a_step():
    plan = generate(CONFIG)
    smallest, _ = shrink(plan, lambda candidate: True, budget=500)
    assert len(smallest.steps) == 1 and RollPlan.from_json(smallest.to_json()) == smallest


def _mutated(change) -> tuple[str, dict[str, int]]:  # type: ignore[no-untyped-def]
    """A generated plan's JSON changed in place (or this text instead); each step kind's first step number."""
    data = json.loads(generate(RollConfig("v2.31.14", "v2.34.4", replicas=2, agents=20, seed=0)).to_json())
    first: dict[str, int] = {}
    for i, s in enumerate(data["steps"], 1):
        first.setdefault(s["kind"], i)
    assert set(first) == set(STEP_ARGS)  # this plan has a step of every kind to spoil
    if isinstance(change, str):
        return change, first
    change(data, {k: data["steps"][i - 1] for k, i in first.items()})
    return json.dumps(data), first


def _regular(d: dict) -> str:
    return next(a["id"] for a in d["agents"] if a["kind"] == "regular")


BAD_PLANS = {  # name: (change(data, first step of each kind) or JSON text, message: {kind} is its step number)
    "not JSON": ("{", "not valid JSON"),
    "top level is a list": ("[]", "not a roll plan (expected an object, got [])"),
    "top level is null": ("null", "not a roll plan (expected an object, got null)"),
    "schema true": (lambda d, s: d.update(schema=True), "not a roll plan (schema true, expected 1)"),
    "schema 2": (lambda d, s: d.update(schema=2), "not a roll plan (schema 2, expected 1)"),
    "no steps key": (lambda d, s: d.pop("steps"), "plan: steps is missing"),
    "config: unknown key": (lambda d, s: d["config"].update(colour=1), "config: unknown key 'colour'"),
    "config: replicas 17": (lambda d, s: d["config"].update(replicas=17), "config: replicas must be 1..16"),
    "config: replicas '2'": (lambda d, s: d["config"].update(replicas="2"), "config: replicas must be a whole number"),
    "config: seed -1": (lambda d, s: d["config"].update(seed=-1), "config: seed must be 0..9223372036854775807"),
    "config: rollback 1": (lambda d, s: d["config"].update(rollback=1), "config: rollback must be true or false"),
    "config: same release": (lambda d, s: d["config"].update(to_tag="v2.31.14"),
                             "config: from and to are the same release (v2.31.14)"),
    "config: from V0": (lambda d, s: d["config"].update(from_tag="v2.0.0"),
                        "config: v2.0.0 is V0: it has no reinit protocol to roll"),
    "config: unknown to": (lambda d, s: d["config"].update(to_tag="v9.9.9"),
                           "config: v9.9.9 is not a release the catalogue knows"),
    "agents []": (lambda d, s: d.update(agents=[]), "agents: 0 agents, expected 1..20 (config.agents)"),
    "4000 agents for 20": (lambda d, s: d.update(agents=[{**a, "id": f"x{i}"} for i in range(4000)
                                                         for a in d["agents"][:1]]),
                           "agents: 4000 agents, expected 1..20 (config.agents)"),
    "agent home 7": (lambda d, s: d["agents"][3].update(home=7), 'agents[3] ("g3"): home 7 is not one of r0..r1'),
    "agent home -1": (lambda d, s: d["agents"][3].update(home=-1), 'agents[3] ("g3"): home -1 is not one of r0..r1'),
    "agent kind weird": (lambda d, s: d["agents"][2].update(kind="weird"), "kind 'weird' is not one of prebuild"),
    "agent tag V0": (lambda d, s: d["agents"][2].update(tag="v2.0.0"), "v2.0.0 is V0: it has no reinit protocol"),
    "agent id twice": (lambda d, s: d["agents"][2].update(id="g1"), 'agents[2] ("g1"): the id is given twice'),
    "steps []": (lambda d, s: d.update(steps=[]), "steps: 0 steps, expected 1..40 (config.max_steps)"),
    "more steps than max_steps": (lambda d, s: d["config"].update(max_steps=6), "expected 1..6 (config.max_steps)"),
    "step kind bogus": (lambda d, s: s["upgrade"].update(kind="bogus"),
                        "step {upgrade}: kind 'bogus' is not one of upgrade, drain"),
    "step seed -1": (lambda d, s: s["upgrade"].update(seed=-1), "step {upgrade} (upgrade): seed must be 0.."),
    "upgrade args {}": (lambda d, s: s["upgrade"].update(args={}),
                        "step {upgrade} (upgrade): args: replica is missing"),
    "upgrade extra arg": (lambda d, s: s["upgrade"]["args"].update(why="x"),
                          "step {upgrade} (upgrade): args: unknown key 'why'"),
    "upgrade crash 'yes'": (lambda d, s: s["upgrade"]["args"].update(crash="yes"),
                            'step {upgrade} (upgrade): args: crash must be true or false, got "yes"'),
    "upgrade replica 5": (lambda d, s: s["upgrade"]["args"].update(replica=5),
                          "step {upgrade} (upgrade): replica 5 is not one of r0..r1"),
    "upgrade replica -1": (lambda d, s: s["upgrade"]["args"].update(replica=-1),
                           "step {upgrade} (upgrade): replica -1 is not one of r0..r1"),
    "upgrade to v9.9.9": (lambda d, s: s["upgrade"]["args"].update(tag="v9.9.9"),
                          "step {upgrade} (upgrade): v9.9.9 is not a release the catalogue knows"),
    "upgrade to V0": (lambda d, s: s["upgrade"]["args"].update(tag="v2.0.0"),
                      "step {upgrade} (upgrade): v2.0.0 is V0: it has no reinit protocol to roll"),
    "drain to itself": (lambda d, s: s["drain"]["args"].update(fallback=s["drain"]["args"]["replica"]),
                        "step {drain} (drain): r1 cannot be its own fallback"),
    "drain fallback 2": (lambda d, s: s["drain"]["args"].update(fallback=2),
                         "step {drain} (drain): fallback 2 is not one of r0..r1"),
    "undrain replica 9": (lambda d, s: s["undrain"]["args"].update(replica=9),
                          "step {undrain} (undrain): replica 9 is not one of r0..r1"),
    "listener gap on r2": (lambda d, s: s["listener_gap"]["args"].update(replica=2),
                           "step {listener_gap} (listener_gap): replica 2 is not one of r0..r1"),
    "burst without claims": (lambda d, s: s["burst"]["args"].update(claims=[]), "step {burst} (burst): no claims"),
    "claim: extra key": (lambda d, s: s["burst"]["args"]["claims"][0].update(extra=1),
                         "step {burst} (burst): claim 1: unknown key 'extra'"),
    "claim: no agent": (lambda d, s: s["burst"]["args"]["claims"][0].update(agent="g999"),
                        'step {burst} (burst): claim 1: agent "g999" is not one of the plan\'s prebuild agents'),
    "claim: a regular agent": (lambda d, s: s["burst"]["args"]["claims"][0].update(agent=_regular(d)),
                               "is not one of the plan's prebuild agents"),
    "claim: claim_on -1": (lambda d, s: s["burst"]["args"]["claims"][0].update(claim_on=-1),
                           "step {burst} (burst): claim 1: claim_on -1 is not one of r0..r1"),
    "claim: complete_on 99": (lambda d, s: s["burst"]["args"]["claims"][1].update(complete_on=99),
                              "step {burst} (burst): claim 2: complete_on 99 is not one of r0..r1"),
    "an agent claimed twice": (lambda d, s: s["burst"]["args"]["claims"].append(s["burst"]["args"]["claims"][0]),
                               "is claimed a second time"),
    "restart an unknown agent": (lambda d, s: s["restart_agents"]["args"].update(agents=["g999"]),
                                 "step {restart_agents} (restart_agents): agent \"g999\" is not one of the plan's "
                                 "agents"),
    "cut nobody": (lambda d, s: s["cut"]["args"].update(agents=[]), "step {cut} (cut): no agents"),
    "cut an agent twice": (lambda d, s: s["cut"]["args"].update(agents=["g1", "g1"]), "an agent is listed twice"),
    "cut agent 5 (a number)": (lambda d, s: s["cut"]["args"].update(agents=[5]), 'agent 5 is not one of'),
}


@pytest.mark.parametrize("name", BAD_PLANS)
def test_a_bad_plan_is_named_precisely(name):
    change, message = BAD_PLANS[name]
    text, first = _mutated(change)
    with pytest.raises(PlanError) as e:
        RollPlan.from_json(text)
    assert message.format(**first) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_replayed_plan_is_one_line_and_exit_2_before_anything_starts(tmp_path, dry_run):
    text, first = _mutated(lambda d, s: s["upgrade"]["args"].update(replica=5))
    path = tmp_path / "plan.json"
    path.write_text(text)
    r = _roll(tmp_path / "reports", "--replay-plan", str(path), *(["--dry-run"] if dry_run else []))
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr == (f"harness roll: error: {path}: step {first['upgrade']} (upgrade): "
                        "replica 5 is not one of r0..r1\n")
    assert not (tmp_path / "reports").exists()  # no run folder: nothing started


@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "-5"], "seed must be 0..9223372036854775807"),
    (["--to", "v2.31.14"], "from and to are the same release (v2.31.14)"),
    (["--to", "v2.0.0"], "v2.0.0 is V0: it has no reinit protocol to roll"),
    (["--replicas", "17"], "replicas must be 1..16"),
    (["--max-steps", "33", "--replicas", "16"], "max_steps must be at least 34 for 16 replicas"),
])
def test_more_bad_roll_flags_are_one_line_and_exit_2(tmp_path, args, message):
    r = _roll(tmp_path, "--from", "v2.31.14", "--to", "v2.34.4", *args, "--dry-run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_sixteen_replicas_plan_within_the_default_bounds(tmp_path):
    r = _roll(tmp_path, "--from", "v2.31.14", "--to", "v2.34.4", "--replicas", "16", "--rollback", "--dry-run")
    assert r.returncode == 0 and "steps (max 40)" in r.stdout, r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["soak", "--agents", "100000"], "agents must be 1..5000"),
    (["soak", "--runs", "0"], "--runs must be at least 1"),
    (["agents", "--agents", "1", "--tag", "v2.0.0"], "--tag v2.0.0 is V0: its agent has no reinit loop"),
    (["matrix", "--scenario", "nope"], "--scenario 'nope': unknown"),
])
def test_bad_bench_input_is_one_line_and_exit_2(args, message):
    r = subprocess.run([sys.executable, "-m", "harness", "bench", *args], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_an_empty_report_dir_or_a_dead_database_stops_a_roll_before_its_folder(tmp_path):
    args = ["--from", "v2.31.14", "--to", "v2.34.4", "--replicas", "2", "--agents", "5"]
    r = subprocess.run([sys.executable, "-m", "harness", "roll", *args, "--report-dir", ""], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "--report-dir '': give a folder" in r.stderr, r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it
    r = _roll(tmp_path, *args, "--pg-dsn", f"postgresql://x@127.0.0.1:{port}/x")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []
