"""harness report: re-render, --diff, --trend, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.report import render_run

FIXTURES = Path(__file__).parent.parent / "fixtures" / "results"
P1 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.31.14"
P2 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.34.4"
P3 = "v2.31.14>v2.34.4>v2.34.4,agent=v2.31.14"
OLD_RUN, NEW_RUN = "20261203-164918-aaaaaa", "20261204-020000-bbbbbb"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A reports folder holding two finished runs of the same matrix (so: latest, history.jsonl)."""
    folder = tmp_path / "reports"
    for name, fixture in ((OLD_RUN, "mixed"), (NEW_RUN, "mixed-next")):
        run_dir = folder / name
        run_dir.mkdir(parents=True)
        shutil.copy(FIXTURES / f"{fixture}.json", run_dir / "results.json")
        render_run(run_dir, load(fixture), strict=True)
    return folder


def harness(*argv: str) -> int:
    return main(["report", *argv])


def test_rerender_latest_by_default(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (reports / NEW_RUN / "report.md").unlink()
    assert harness("--report-dir", str(reports)) == 0
    out = capsys.readouterr().out
    assert f"re-rendered {reports / 'latest'} (9 of 9 cells, finished)" in out
    assert (reports / NEW_RUN / "report.md").exists()
    assert os.readlink(reports / "latest") == NEW_RUN
    assert len((reports / "history.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("how", ["folder", "results.json", "name"])
def test_rerender_a_named_run(reports: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    arg = {"folder": str(reports / OLD_RUN), "results.json": str(reports / OLD_RUN / "results.json"),
           "name": OLD_RUN}[how]
    assert harness(arg, "--report-dir", str(reports)) == 0
    out = capsys.readouterr().out
    assert "(10 of 10 cells, finished)" in out and "gate FAILED for v2.34.4: 4 blocking cell(s)" in out
    assert os.readlink(reports / "latest") == NEW_RUN  # an older run does not become the latest


def test_rerender_rebuilds_a_killed_run_from_cells_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture = load("mixed")
    run_dir = tmp_path / "reports" / "20261206-000000-dddddd"
    run_dir.mkdir(parents=True)
    meta = {k: v for k, v in fixture["run"].items() if k not in ("finished", "ended")}
    (run_dir / "run.json").write_text(json.dumps(meta))
    lines = [json.dumps(c) for c in fixture["cells"][:6]]
    (run_dir / "cells.jsonl").write_text("\n".join(lines) + "\n" + lines[6 if len(lines) > 6 else 0][:40])  # torn
    assert harness(str(run_dir)) == 0
    assert "results.json rebuilt from cells.jsonl" in capsys.readouterr().out
    assert len(json.loads((run_dir / "results.json").read_text())["cells"]) == 6
    assert "**Partial: 6 of 10 cells**" in (run_dir / "report.md").read_text()


def test_diff_lists_worse_better_and_changed(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness("--diff", OLD_RUN, NEW_RUN, "--report-dir", str(reports)) == 0
    out = capsys.readouterr().out
    assert "1 worse · 1 better · 1 changed · 6 unchanged · 1 only in old · 0 only in new" in out
    worse = out[out.index("WORSE (1)"):out.index("BETTER (1)")]
    better = out[out.index("BETTER (1)"):out.index("CHANGED (1)")]
    changed = out[out.index("CHANGED (1)"):out.index("ONLY IN OLD (1)")]
    assert f"live_claim[{P1}]" in worse and "verdict PASS → FAIL; now a SURPRISE" in worse
    assert f"live_claim[{P2}]" in better and "verdict FAIL → PASS" in better
    assert f"live_claim[{P3}]" in changed and "identity ['0/n/a'] → ['0/0']" in changed
    assert f"payload_v1_keys[{P2}]" in out[out.index("ONLY IN OLD"):]


def test_diff_fail_on_worse(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = str(reports / OLD_RUN / "results.json"), str(reports / NEW_RUN)
    assert harness("--diff", old, new, "--fail-on-worse") == 1
    assert harness("--diff", new, new, "--fail-on-worse") == 0
    assert "0 worse · 0 better · 0 changed · 9 unchanged" in capsys.readouterr().out
    assert harness("--diff", new, old, "--fail-on-worse") == 1  # going back: the fixed cell breaks again


def test_trend_shows_each_pairing_per_run(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness("--trend", "--report-dir", str(reports)) == 0
    out = capsys.readouterr().out
    assert "over the last 2 finished run(s)" in out
    runs = out[out.index("#  "):out.index("By pairing")]
    assert runs.index(OLD_RUN) < runs.index(NEW_RUN)  # oldest first
    pairing_rows = {line[:46].strip(): line[46:].split() for line in out.splitlines()
                    if line.startswith("v2.31.14 → ")}
    assert pairing_rows["v2.31.14 → v2.31.14 → v2.34.4 · agent v2.34.4"][0] == "!!"  # a SURPRISE in both runs
    assert pairing_rows["v2.31.14 → v2.31.14 → v2.34.4 · agent v2.31.14"][0] == "??"  # the UNKNOWN outranks FAIL
    assert pairing_rows["v2.31.14 → v2.34.4 → v2.34.4 · agent v2.31.14"][0] == "dd"
    changed = out[out.index("Cells whose verdict changed"):]
    assert f"live_claim[{P1}]  .a" in changed  # PASS, then a FAIL the ledger accepts
    assert f"live_claim[{P2}]   F." in changed
    assert "payload_v1_keys" not in changed  # gone from the newer run: not a change of verdict
    assert harness("--trend", "--last", "1", "--report-dir", str(reports)) == 0
    assert "over the last 1 finished run(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["/no/such/run"], "/no/such/run: no such run folder or results.json"),
    (["--report-dir", "/no/such/reports"], "no runs in /no/such/reports yet"),
    (["--diff", "/no/old", "/no/new"], "/no/old: no such run folder"),
    (["--trend", "--report-dir", "/no/such/reports"], "no history yet"),
    (["--trend", "--last", "0"], "--last 0: must be 1 or more"),
    (["--last", "3"], "--last goes with --trend"),
    (["--fail-on-worse"], "--fail-on-worse goes with --diff"),
    (["x", "--diff", "a", "b"], "--diff OLD NEW takes no RUN"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness report: error: ") and message in err and err.count("\n") == 1


def test_not_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text("{\"schema\": 1, ")
    assert harness(str(tmp_path / "results.json")) == 2
    assert "cannot read the results: results.json does not parse (JSONDecodeError" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"schema": 2, "run": {}, "cells": []}))
    assert harness("--diff", str(tmp_path / "other.json"), str(FIXTURES / "mixed.json")) == 2
    assert "results schema 2; this harness reads schema 1" in capsys.readouterr().err
    (tmp_path / "odd").mkdir()
    odd = {"schema": 1, "run": {}, "summary": {}, "gate": {}, "ledger": [], "cells": [{"id": "x"}]}
    (tmp_path / "odd" / "results.json").write_text(json.dumps(odd))
    assert harness(str(tmp_path / "odd")) == 2
    assert "odd: summary has no 'cells'" in capsys.readouterr().err
    (tmp_path / "empty-folder").mkdir()
    assert harness(str(tmp_path / "empty-folder")) == 2
    assert "no results.json or cells.jsonl in this folder" in capsys.readouterr().err


def test_entry_point_never_prints_a_traceback(tmp_path: Path) -> None:
    """The installed command, as a user runs it: a bad path is one line on stderr and exit status 2."""
    script = Path(sys.executable).parent / "harness"  # the console script pip installed next to this Python
    argv = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from harness.cli import main; "
                                                  "sys.exit(main())"]
    proc = subprocess.run([*argv, "report", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "no such run folder or results.json" in proc.stderr


def test_rerender_never_moves_latest_nor_adds_history(reports: Path, tmp_path: Path) -> None:
    """Only the run's report files change: a copy, a folder elsewhere or a finished run leave latest and history."""
    history = (reports / "history.jsonl").read_bytes()
    shutil.copytree(reports / NEW_RUN, reports / "baseline")
    elsewhere = tmp_path / "some" / "dir" / "wt"
    shutil.copytree(reports / OLD_RUN, elsewhere)
    for arg, folder in ((str(reports / "baseline"), reports / "baseline"), (str(elsewhere), elsewhere),
                        (NEW_RUN, reports / NEW_RUN), (OLD_RUN, reports / OLD_RUN)):
        (folder / "report.md").unlink()
        assert harness(arg, "--report-dir", str(reports)) == 0
        assert (folder / "report.md").exists()
    assert os.readlink(reports / "latest") == NEW_RUN
    assert (reports / "history.jsonl").read_bytes() == history
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == ["wt"]  # no latest, no history.jsonl beside it


def test_dangling_latest_names_the_newest_run(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (reports / NEW_RUN).rename(reports / "gone")
    (reports / "20261209-000000-roll-cccccc").mkdir()  # a roll's folder is not a run harness report reads
    assert harness("--report-dir", str(reports)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"latest points to {NEW_RUN}, which is missing" in err
    assert f"the newest run folder there is {OLD_RUN}" in err and "no runs" not in err


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["cells"][0].update(verdict=5), "cells[0].verdict is 5, expected a string"),
    (lambda r: r["cells"].__setitem__(1, "hello"), 'cells[1] is "hello", expected an object'),
    (lambda r: r.update(summary=[]), "summary is [], expected an object"),
    (lambda r: r.update(run=None), "run is null, expected an object"),
    (lambda r: r["cells"][2].pop("versions"), "cells[2] has no 'versions'"),
    (lambda r: r["cells"][3]["facts"].update(statuses=["200"]), 'cells[3].facts.statuses[0] is "200", expected a'),
])
def test_wrong_shapes_are_one_line_and_exit_2_for_diff_and_rerender(
        tmp_path: Path, mutate: Any, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1 from --diff --fail-on-worse means "worse": bad input must never look like that."""
    results = load("mixed")
    mutate(results)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text(json.dumps(results))
    for argv in (["--diff", str(FIXTURES / "mixed.json"), str(tmp_path / "bad"), "--fail-on-worse"],
                 ["--diff", str(tmp_path / "bad" / "results.json"), str(FIXTURES / "mixed.json")],
                 [str(tmp_path / "bad")]):
        assert harness(*argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("harness report: error: ") and err.count("\n") == 1 and message in err


def test_trend_skips_history_lines_this_harness_did_not_write(reports: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with (reports / "history.jsonl").open("ab") as f:
        f.write(b'{"run":"x","cells":"nope"}\n{"run":"z","summary":"x","gate":3}\n{"run":5}\n'
                b'{"run":"w","started":null,"summary":{},"gate":{},"cells":{"a[b]":7}}\n\xff\xfegarbage\n')
    assert harness("--trend", "--report-dir", str(reports)) == 0
    out = capsys.readouterr().out
    assert "over the last 2 finished run(s)" in out and out.count("(5 unreadable line(s) of ") == 1
    (reports / "history.jsonl").unlink()
    (reports / "history.jsonl").mkdir()
    assert harness("--trend", "--report-dir", str(reports)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "history.jsonl: cannot read it: Is a directory" in err


def test_rerender_skips_unreadable_cells_lines_and_rebuilds_a_broken_results_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture = load("mixed")
    run_dir = tmp_path / "20261206-000000-dddddd"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({k: v for k, v in fixture["run"].items()
                                                  if k not in ("finished", "ended")}))
    lines = [json.dumps(c).encode() for c in fixture["cells"]]
    lines[3:3] = [b"{garbage", b"\xff\xfe"]
    (run_dir / "cells.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (run_dir / "results.json").write_text(json.dumps(fixture))
    assert harness(str(run_dir)) == 0  # results.json intact: the garbage lines cost nothing
    out = capsys.readouterr().out
    assert "(10 of 10 cells, finished; 2 unreadable line(s) of cells.jsonl skipped)" in out
    (run_dir / "results.json").write_text(json.dumps(fixture)[:5000])  # truncated
    assert harness(str(run_dir)) == 0
    out = capsys.readouterr().out
    assert "results.json rebuilt from cells.jsonl (it did not parse); 2 unreadable line(s) of cells.jsonl" in out
    assert len(json.loads((run_dir / "results.json").read_text())["cells"]) == 10
    (run_dir / "results.json").write_text(json.dumps(fixture)[:5000])
    (run_dir / "cells.jsonl").write_bytes(b"{garbage\n")
    assert harness(str(run_dir)) == 2  # neither gives anything: one line, and the files stay as they were
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.json does not parse (JSONDecodeError" in err
    assert "cells.jsonl has no cell to rebuild it from" in err
    assert (run_dir / "results.json").read_text() == json.dumps(fixture)[:5000]


def test_diff_fail_on_worse_counts_cells_missing_from_the_new_run(reports: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    full = json.loads((reports / NEW_RUN / "results.json").read_text())
    fewer = tmp_path / "results.json"
    fewer.write_text(json.dumps({**full, "cells": full["cells"][:1]}))
    assert harness("--diff", str(reports / NEW_RUN), str(fewer)) == 0  # without the flag: a report, not a gate
    assert harness("--diff", str(reports / NEW_RUN), str(fewer), "--fail-on-worse") == 1
    out = capsys.readouterr().out
    assert "0 worse" in out and f"--fail-on-worse: {len(full['cells']) - 1} cell(s) of" in out


def test_a_roll_folder_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roll = tmp_path / "20261203-192402-roll-cdfa11"
    roll.mkdir()
    (roll / "plan.json").write_text("{}")
    assert harness(str(roll)) == 2
    assert "a roll's folder; its report.md and report.html are final" in capsys.readouterr().err
