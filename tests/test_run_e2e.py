"""`harness run` end to end on a small matrix: real PostgreSQL, replicas, proxy, agents; facts PROTOCOL.md implies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests.procs import MARK_ENV, left_running

ZERO = str(uuid.UUID(int=0))
MATRIX = """\
seed: 5
candidate: v2.33.9
upgrades:
  - {from: v2.31.14, to: v2.33.9}
topologies: [old/new/new, new/new/new]
scenarios: [live_claim, claim_while_stream_down, regular_workspace, failed_claim_build, agent_restart_after_claim,
            payload_v1_keys]
ledger:
  - match: {scenario: [regular_workspace, failed_claim_build, claim_while_stream_down], agent: V1}
    reason: V1 agents never stop polling and have no durable check.
    ticket: T-1
    expires: 2099-01-01
"""


def _running(pattern: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if pattern in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    matrix = tmp / "matrix.yaml"
    matrix.write_text(textwrap.dedent(MATRIX))
    before = set(_running("harness serve"))
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", str(matrix), "-n", "2",
                        "--report-dir", str(tmp / "reports")], capture_output=True, text=True, timeout=600)
    run_dir = next((tmp / "reports").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    return r, results, {c["id"]: c for c in results["cells"]}, run_dir, before


def cell(cells, scenario, pairing):
    return cells[f"{scenario}[{pairing}]"]


V2 = "v2.33.9>v2.33.9>v2.33.9,agent=v2.33.9"
V2_AGENT_V1 = "v2.33.9>v2.33.9>v2.33.9,agent=v2.31.14"
MIXED = "v2.31.14>v2.33.9>v2.33.9,agent=v2.33.9"  # a V1 replica publishes, V2 streams and reconnects


def test_the_run_completes_with_every_cell_as_predicted(run):
    r, results, cells, _, _ = run
    assert results["summary"]["cells"] == results["summary"]["planned"] == 24, r.stdout[-2000:]
    assert results["summary"]["surprises"] == 0 and results["summary"]["ERROR"] == 0
    assert all(c["verdict"] == c["predicted"]["verdict"] for c in cells.values())
    assert "24 of 24 cells" in r.stdout and "0 SURPRISE" in r.stdout


def test_the_gate_fails_on_the_candidate_and_exit_status_says_so(run):
    r, results, _, _, _ = run
    assert r.returncode == 1
    assert not results["gate"]["passed"] and results["gate"]["complete"]
    assert f"agent_restart_after_claim[{V2}]" in results["gate"]["blocking"]
    assert "gate FAILED for v2.33.9" in r.stdout
    first = next(c for c in results["cells"] if c["id"] == results["gate"]["blocking"][0])
    assert f"  {first['repro']}\n" in r.stdout  # the summary says how to run a blocking cell again


def test_live_claim_all_v2_reinits_once_then_dedupes(run):
    f = cell(run[2], "live_claim", V2)["facts"]
    assert (f["reinits"], f["identity"], f["polling_stopped"], f["stop_reason"]) == (1, ["ws/O"], True, "duplicate")
    assert f["reinit_requests"] == 2 and f["latency_ms"] is not None and f["latency_ms"] < 5000


def test_v1_publisher_costs_a_v2_agent_two_reinits(run):
    c = cell(run[2], "live_claim", MIXED)
    assert c["verdict"] == "FAIL" and c["facts"]["reinits_in_claim_window"] == 2
    assert c["facts"]["identity"] == ["ws/0", "ws/O"]  # fallback owner 0, then the seeded real owner
    assert c["facts"]["decoded_owner_ids"][0] == ZERO


def test_v1_agent_on_v2_servers_decodes_a_zero_workspace(run):
    c = cell(run[2], "live_claim", V2_AGENT_V1)
    assert c["verdict"] == "DEGRADED" and c["facts"]["decoded_workspace_ids"] == [ZERO]
    assert not c["facts"]["polling_stopped"]


def test_claim_lost_in_flight_is_recovered_only_by_the_durable_pair(run):
    cells = run[2]
    durable = cell(cells, "claim_while_stream_down", V2)
    assert durable["facts"]["claim_lost"] is False and durable["facts"]["reinits"] == 1
    assert any(e["ev"] == "proxy.fault" and e.get("trigger") == "next_data_frame" for e in durable["timeline"])
    lost = cell(cells, "claim_while_stream_down", V2_AGENT_V1)
    assert lost["facts"]["claim_lost"] is True and lost["verdict"] == "FAIL"
    assert lost["accepted"] and lost["ledger"]["ticket"] == "T-1"


def test_regular_workspace_v2_agent_stops_on_409_v1_polls_on(run):
    cells = run[2]
    stops = cell(cells, "regular_workspace", V2)["facts"]
    assert (stops["polling_stopped"], stops["stop_reason"], stops["reinit_requests"], stops["statuses"]) == (
        True, "409", 1, [409])
    assert cell(cells, "regular_workspace", V2_AGENT_V1)["facts"]["polling_stopped"] is False


def test_failed_claim_build_409_stops_a_v2_agent_without_reinit(run):
    f = cell(run[2], "failed_claim_build", V2)["facts"]
    assert f["reinits"] == 0 and f["stop_reason"] == "409" and f["claim_completed"] is False


def test_restarted_v2_agent_reinits_spuriously(run):
    f = cell(run[2], "agent_restart_after_claim", V2)["facts"]
    assert f["reinits_after_quiet"] == 1 and f["reinits"] == 2


def test_v1_keys_payload_decodes_to_zero_ids_in_a_v2_listener(run):
    f = cell(run[2], "payload_v1_keys", V2)["facts"]
    assert f["identity"] == ["0/0", "ws/O"]


def test_the_run_folder_holds_results_report_and_logs_and_nothing_is_left_running(run):
    _, results, _, run_dir, before = run
    assert results["schema"] == 1 and results["run"]["seed"] == 5 and results["run"]["finished"]
    assert (run_dir / "report.md").exists() and (run_dir / "cells.jsonl").exists()
    assert sum(1 for _ in run_dir.glob("logs/*/replica-*.jsonl")) >= 2
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no half-written temp files
    assert set(_running("harness serve")) <= before  # every replica the run started is gone


def test_one_cell_repro_command_runs_just_that_cell(run, tmp_path):
    c = cell(run[2], "live_claim", V2)
    argv = c["repro"].split(" ", 2)
    assert argv[:2] == ["harness", "run"]
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", c["repro"].split("--matrix ")[1].split()[0],
                        "--cell", c["id"], "-n", "0", "--report-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    results = json.loads(next(tmp_path.iterdir()).joinpath("results.json").read_text())
    assert [x["id"] for x in results["cells"]] == [c["id"]]
    assert results["cells"][0]["verdict"] == "PASS" and r.returncode == 0, r.stdout[-1500:]
    assert not (tmp_path / "history.jsonl").exists()  # a repro is not a run of the matrix


def test_a_scenario_subset_is_a_run_that_history_keeps(run, tmp_path):
    matrix = run[1]["run"]["matrix"]
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", matrix, "--scenario", "payload_v1_keys",
                        "-n", "0", "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "gate FAILED for v2.33.9" in r.stdout, r.stdout[-1500:] + r.stderr[-1500:]
    assert "warning" not in r.stdout.lower() and "bringing up nodes" not in r.stdout
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(lines) == 1
    assert sorted(json.loads(lines[0])["cells"]) == sorted(c for c in run[2] if c.startswith("payload_v1_keys["))



@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=["ctrl-c", "sigterm", "ctrl-c-twice"])
def test_an_interrupted_run_leaves_a_partial_report_and_nothing_running(tmp_path, signals):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(textwrap.dedent(MATRIX))
    mark = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--matrix", str(matrix), "-n", "2",
                             "--report-dir", str(tmp_path / "reports")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, MARK_ENV: mark})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # interrupt once a cell is recorded, with most of the plan to go
            done = list((tmp_path / "reports").glob("*/cells.jsonl"))
            if done and done[0].read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        for sig in signals:  # as a terminal's Ctrl-C does: to the whole foreground group
            os.killpg(proc.pid, sig)
            time.sleep(0.3)  # the second one lands in the cleanup
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    run_dir = next(p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.is_symlink())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"]["interrupted"] and not results["run"]["finished"]
    assert not (tmp_path / "reports" / "history.jsonl").exists()  # trends count finished runs only
    assert 1 <= results["summary"]["cells"] < results["summary"]["planned"] == 24
    assert not results["gate"]["passed"] and not results["gate"]["complete"]
    assert "the run was interrupted" in (run_dir / "report.md").read_text()
    assert "partial report of" in err and "interrupted; cleaned up" in err and "Traceback" not in err
    assert ("still cleaning up after the interrupt" in err) == (len(signals) > 1)
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]
    assert left_running(mark) == []
