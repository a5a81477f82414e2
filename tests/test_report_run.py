"""render_run as RunRecorder's on_write: files written atomically, reports/latest, history.jsonl once per run."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

import harness.report
from harness.report import REPORT_FILES, render_run
from harness.report.history import HISTORY, LATEST, history_entry, load_history, record_history, update_latest
from harness.results import RunRecorder, summarize

FIXTURES = Path(__file__).parent.parent / "fixtures" / "results"
P1 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.31.14"
P2 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.34.4"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def leftovers(folder: Path) -> list[str]:
    """Temporary files atomic writes would leave behind (they start with a dot)."""
    return sorted(p.name for p in folder.rglob(".*"))


def test_render_run_writes_every_report_and_links_latest(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261203-164918-abc123"
    run_dir.mkdir()
    written = render_run(run_dir, load("mixed"))
    assert [p.name for p in written] == list(REPORT_FILES)
    assert all((run_dir / name).stat().st_size > 0 for name in REPORT_FILES)
    assert leftovers(tmp_path) == []
    latest = tmp_path / LATEST
    assert latest.is_symlink() and os.readlink(latest) == run_dir.name  # relative: the reports folder can move
    assert (latest / "report.md").read_text().startswith("# Compatibility report — gate FAILED")


def test_history_gets_one_line_per_finished_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261203-164918-abc123"
    run_dir.mkdir()
    results = load("mixed")
    render_run(run_dir, results)
    render_run(run_dir, results)  # the same run again (harness report re-renders it): no second line
    lines = (tmp_path / HISTORY).read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["run"] == "20261203-164918-abc123" and entry["folder"] == str(run_dir)
    assert entry["seed"] == 11 and entry["matrix_sha256"].startswith("3a82b246")
    assert entry["gate"] == {"passed": False, "complete": True, "blocking": 4}
    assert entry["summary"]["FAIL"] == 5 and entry["started"] and entry["ended"]
    assert entry["cells"][f"live_claim[{P1}]"] == "PASS"
    assert entry["cells"][f"claim_while_stream_down[{P2}]"] == "FAIL+S"
    assert entry["cells"][f"listener_gap[{P1}]"] == "FAIL+A"


def test_partial_writes_add_no_history(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261205-020000-cccccc"
    run_dir.mkdir()
    render_run(run_dir, load("partial"))
    assert not (tmp_path / HISTORY).exists()
    assert "**Partial: 4 of 10 cells**" in (run_dir / "report.md").read_text()
    assert os.readlink(tmp_path / LATEST) == run_dir.name  # a running run is the newest one


def test_a_repro_of_chosen_cells_adds_no_history(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261205-030000-dddddd"
    run_dir.mkdir()
    results = load("mixed")
    render_run(run_dir, {**results, "run": {**results["run"], "cells_chosen": True}})
    assert not (tmp_path / HISTORY).exists()  # trends compare whole runs; `harness run --cell` is a repro
    assert os.readlink(tmp_path / LATEST) == run_dir.name


def test_record_history_replaces_a_runs_line_and_keeps_others(tmp_path: Path) -> None:
    a, b = history_entry(load("mixed"), "run-a"), history_entry(load("mixed-next"), "run-b")
    assert record_history(tmp_path, a) and record_history(tmp_path, b)
    assert not record_history(tmp_path, a)  # identical line already there
    changed = copy.deepcopy(a)
    changed["seed"] = 12
    assert record_history(tmp_path, changed)
    with (tmp_path / HISTORY).open("a") as f:
        f.write("{not json\n")  # a torn or foreign line is skipped by readers and kept by writers
    entries, skipped = load_history(tmp_path)
    assert [e["run"] for e in entries] == ["run-a", "run-b"] and skipped == 1  # the torn line: counted, not read
    assert entries[0]["seed"] == 12
    assert record_history(tmp_path, history_entry(load("empty"), "run-c"))
    assert (tmp_path / HISTORY).read_text().count("{not json") == 1
    assert leftovers(tmp_path) == []


def test_latest_only_moves_forward(tmp_path: Path) -> None:
    old, new = tmp_path / "20261201-000000-aaaaaa", tmp_path / "20261202-000000-bbbbbb"
    old.mkdir()
    new.mkdir()
    assert update_latest(tmp_path, new)
    assert not update_latest(tmp_path, old)  # re-rendering an older run leaves latest alone
    assert not update_latest(tmp_path, new)
    assert os.readlink(tmp_path / LATEST) == new.name
    new.rename(tmp_path / "gone")  # the newest run was deleted: an older one may take over
    assert update_latest(tmp_path, old) and os.readlink(tmp_path / LATEST) == old.name
    assert not update_latest(tmp_path, tmp_path / LATEST)  # rendering through the link itself
    assert leftovers(tmp_path) == []


def test_a_broken_renderer_costs_only_its_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "20261203-164918-abc123"
    run_dir.mkdir()
    (run_dir / "report.html").write_text("the previous complete page")

    def broken(results: dict[str, Any], **kwargs: Any) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(harness.report, "render_html", broken)
    written = render_run(run_dir, load("mixed"))
    assert [p.name for p in written] == ["report.md", "junit.xml"]
    assert (run_dir / "report.html").read_text() == "the previous complete page"  # never half written
    assert "could not write" in capsys.readouterr().err
    assert leftovers(tmp_path) == []
    with pytest.raises(RuntimeError, match="renderer bug"):
        render_run(run_dir, load("mixed"), strict=True)


def test_run_recorder_drives_partial_and_final_reports(tmp_path: Path) -> None:
    """The real on_write path: partial results while running, the finished report and history at the end."""
    fixture = load("mixed")
    meta = {k: v for k, v in fixture["run"].items() if k not in ("finished", "ended")}
    run_dir = tmp_path / "20261203-164918-abc123"
    recorder = RunRecorder(run_dir, meta, on_write=render_run)
    try:
        for cell in fixture["cells"][:3]:
            recorder.add(cell)
        recorder.write(finished=False)
        assert "**Partial: 3 of 10 cells**" in (run_dir / "report.md").read_text()
        assert not (tmp_path / HISTORY).exists()
        for cell in fixture["cells"][3:]:
            recorder.add(cell)
        recorder.write(finished=True)
    finally:
        recorder.close()
    md = (run_dir / "report.md").read_text()
    assert "Partial" not in md and "❌ **Gate FAILED** for v2.34.4: 4 blocking cell(s)" in md
    assert [e["run"] for e in load_history(tmp_path)[0]] == [run_dir.name]
    assert leftovers(tmp_path) == []


def test_latest_only_ever_points_at_a_run_folder(tmp_path: Path) -> None:
    """A copy (reports/baseline) or a roll's folder never becomes latest; a link a copy once took is won back."""
    run, copied, roll = (tmp_path / n for n in ("20261201-000000-aaaaaa", "baseline", "20261209-000000-roll-cccccc"))
    for folder in (run, copied, roll):
        folder.mkdir()
    assert not update_latest(tmp_path, copied) and not update_latest(tmp_path, roll)
    assert not (tmp_path / LATEST).exists()
    os.symlink("baseline", tmp_path / LATEST)  # what re-rendering a copy used to leave behind: "baseline" > "2026…"
    assert update_latest(tmp_path, run) and os.readlink(tmp_path / LATEST) == run.name
    assert leftovers(tmp_path) == []


def test_render_run_without_record_leaves_latest_and_history_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261203-164918-abc123"
    run_dir.mkdir()
    written = render_run(run_dir, load("mixed"), record=False)
    assert [p.name for p in written] == list(REPORT_FILES)
    assert not (tmp_path / LATEST).exists() and not (tmp_path / HISTORY).exists()


def _update_latest_in_turn(root: str, name: str, barrier: Barrier, trials: int) -> None:
    """One of two runs finishing at once, in each of trials report folders under root."""
    for i in range(trials):
        barrier.wait()
        update_latest(Path(root) / str(i), Path(root) / str(i) / name)


def test_two_runs_finishing_at_once_leave_latest_on_the_newest(tmp_path: Path) -> None:
    trials, old, new = 150, "20261203-100000-aaaaaa", "20261203-100000-bbbbbb"
    for i in range(trials):
        for name in (old, new):
            (tmp_path / str(i) / name).mkdir(parents=True)
    ctx = multiprocessing.get_context()
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_update_latest_in_turn, args=(str(tmp_path), name, barrier, trials))
             for name in (new, old)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert [i for i in range(trials) if os.readlink(tmp_path / str(i) / LATEST) != new] == []
    assert leftovers(tmp_path) == []


def test_history_lines_of_another_shape_are_skipped_and_kept(tmp_path: Path) -> None:
    """Valid JSON of the wrong shape and bytes that are not UTF-8 spoil only their own line; recording goes on."""
    foreign = [b'{"run":"x","cells":"nope"}', b'{"run":"z","summary":"x","gate":3}', b'{"run":5}',
               b'{"run":"w","started":null,"summary":{},"gate":{},"cells":{"a[b]":7}}', b"[1,2]", b"\xff\xfegarbage"]
    (tmp_path / HISTORY).write_bytes(b"\n".join(foreign) + b"\n")
    assert load_history(tmp_path) == ([], len(foreign))
    assert record_history(tmp_path, history_entry(load("mixed"), "run-a"))
    assert record_history(tmp_path, history_entry(load("mixed-next"), "run-b"))
    entries, skipped = load_history(tmp_path)
    assert [e["run"] for e in entries] == ["run-a", "run-b"] and skipped == len(foreign)
    assert (tmp_path / HISTORY).read_bytes().startswith(b"\n".join(foreign) + b"\n")  # byte for byte
    assert leftovers(tmp_path) == []


def _ledger_status(planned: int, matrix_cells: int, verdict: str) -> str:
    entry = {"line": 7, "match": "agent=V1", "reason": "r", "ticket": "t", "expires": "2099-01-01", "live": True}
    cell = {"id": "c", "verdict": verdict, "surprise": False, "accepted": verdict == "FAIL",
            "candidate_involved": True, "ledger": {"line": 7}}
    meta = {"ledger": [entry], "cells_planned": planned, "matrix_cells": matrix_cells}
    return summarize(meta, [cell], finished=True)["ledger"][0]["status"]


def test_a_ledger_line_is_stale_only_when_the_whole_matrix_ran() -> None:
    """A --scenario or --cell subset may not include the cells the line exists for."""
    assert _ledger_status(1, 1, "PASS") == "stale"
    assert _ledger_status(1, 60, "PASS") == "unused in this run"
    assert _ledger_status(1, 60, "FAIL") == "in use"
    assert _ledger_status(1, 1, "FAIL") == "in use"
