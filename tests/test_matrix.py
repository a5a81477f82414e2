"""matrix.yaml validation: every mistake is one line naming the file, the line and the key; the plan."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.matrix import load
from harness.plan import cells
from harness.scenarios import catalogue

SCENARIOS = list(catalogue())
GOOD = """\
seed: 3
candidate: v2.34.4
upgrades:
  - {from: v2.33.9, to: v2.34.4}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "matrix.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BROKEN = [
    ("seed: 1\nupgrades: : x\n", ":2: not valid YAML"),
    ("", "the file is empty"),
    ("- a\n- b\n", ":1: : expected a mapping"),
    (GOOD + "sede: 1\n", ":5: sede: unknown key"),
    ("seed: 1\n", ": upgrades: missing"),
    ("upgrades:\n  - {from: v2.33.9}\n", ":2: upgrades[0].to: missing"),
    ("upgrades:\n  - {from: v2.33.9, to: v2.99.0}\n",
     ":2: upgrades[0].to: v2.99.0 is not a release the catalogue knows (it knows releases up to v2.35.1); "
     "pin its variant under 'versions:', e.g. 'v2.99.0: V3'"),
    ("upgrades:\n  - {from: 2.33.9, to: v2.34.4}\n", "upgrades[0].from: '2.33.9' is not a Coder release tag"),
    ("upgrades:\n  - {from: v2.34.4, to: v2.34.4}\n", "upgrades[0]: from and to are the same release"),
    (GOOD + "time_scale: 0\n", ":5: time_scale: 0 is out of range"),
    (GOOD.replace("seed: 3", "seed: abc"), ":1: seed: expected a whole number, got 'abc'"),
    (GOOD + "topologies: [old/new]\n", ":5: topologies[0]: expected publisher/stream/reconnect"),
    (GOOD + "scenarios: [live_claim, nope]\n", ":5: scenarios[1]: unknown scenario 'nope'"),
    (GOOD + "agents: [both]\n", ":5: agents: 'both': expected from/old or to/new"),
    (GOOD + "versions: {v2.36.0: V9}\n", ":5: versions.v2.36.0: 'V9' is not a variant"),
    (GOOD + "ledger:\n  - match: {scenario: live_claim}\n    reason: r\n    ticket: t\n",
     ":6: ledger[0].expires: missing"),
    (GOOD + "ledger:\n  - {match: {scenario: live_claim}, reason: r, ticket: t, expires: tomorrow}\n",
     ":6: ledger[0].expires: expected a date like 2027-06-30"),
    (GOOD + "ledger:\n  - {match: {scenario: live_claim}, reason: r, ticket: t, expires: 2027-02-30}\n",
     ":6: ledger[0].expires: '2027-02-30' is not a valid value: day is out of range for month"),
    (GOOD.replace("seed: 3", "seed: 2027-13-01"), ":1: seed: '2027-13-01' is not a valid value"),
    (GOOD + "ledger:\n  - {match: {}, reason: r, ticket: t, expires: 2027-01-01}\n", ":6: ledger[0].match: empty"),
    (GOOD + "ledger:\n  - {match: {scenario: zzz*}, reason: r, ticket: t, expires: 2027-01-01}\n",
     "ledger[0].match.scenario: 'zzz*' matches no scenario"),
    (GOOD + "ledger:\n  - {match: {colour: red}, reason: r, ticket: t, expires: 2027-01-01}\n",
     "ledger[0].match.colour: unknown key"),
    (GOOD + "ledger:\n  - {match: {agent: V9}, reason: r, ticket: t, expires: 2027-01-01}\n",
     ":6: ledger[0].match.agent: 'V9' is no variant (V0, V1, V2, V3, P1, P3) and matches no release of the upgrades "
     "(v2.33.9, v2.34.4)"),
    (GOOD + "ledger:\n  - {match: {involves: v2.31.*}, reason: r, ticket: t, expires: 2027-01-01}\n",
     "ledger[0].match.involves: 'v2.31.*' is no variant"),
    (GOOD + "ledger:\n  - {match: {agent: V1}, reason: r, ticket: t, expires: 2027-06-30 12:00:00}\n",
     ":6: ledger[0].expires: expected a date like 2027-06-30"),
    (GOOD + "seed: 4\n", ":5: seed: given twice"),
    (GOOD + "candidate: latest\n", "candidate"),
    (GOOD.replace("candidate: v2.34.4", "candidate: v2.34.44"),
     ":2: candidate: v2.34.44 is in none of the upgrades (they name v2.33.9, v2.34.4)"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_broken_files_name_file_line_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load(path, known_scenarios=SCENARIOS)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load(tmp_path / "nope.yaml", known_scenarios=SCENARIOS)


def test_a_good_file_and_its_defaults(tmp_path):
    m = load(write(tmp_path, GOOD), known_scenarios=SCENARIOS)
    assert (m.seed, m.time_scale, m.quiet_ms, m.candidate) == (3, None, None, "v2.34.4")  # defaults: settings
    assert m.agents == ("old", "new") and len(m.topologies) == 8 and m.scenarios is None
    plan = cells(m, SCENARIOS)
    assert len(plan) == 8 * 2 * len(SCENARIOS)
    assert plan[0].id == "live_claim[v2.33.9>v2.33.9>v2.33.9,agent=v2.33.9]"


def test_pins_let_unknown_releases_in(tmp_path):
    m = load(write(tmp_path, "versions: {v2.36.0: V3}\nupgrades:\n  - {from: v2.34.4, to: v2.36.0}\n"),
             known_scenarios=SCENARIOS)
    assert m.release("v2.36.0").variant.name == "V3" and m.release("v2.36.0").pinned


def test_shared_cells_of_two_upgrades_run_once(tmp_path):
    m = load(write(tmp_path, "upgrades:\n  - {from: v2.31.14, to: v2.32.10}\n  - {from: v2.31.14, to: v2.34.4}\n"
                              "scenarios: [live_claim]\n"), known_scenarios=SCENARIOS)
    assert len(cells(m, SCENARIOS)) == 16 + 16 - 1  # the all-v2.31.14 cell is shared


def test_the_shipped_matrix_covers_the_issue_pairs_and_every_scenario():
    m = load(Path(__file__).parent.parent / "matrix.yaml", known_scenarios=SCENARIOS)
    assert [(u.old, u.new) for u in m.upgrades] == [("v2.31.14", "v2.32.10"), ("v2.32.10", "v2.33.9"),
                                                    ("v2.33.9", "v2.34.4"), ("v2.31.14", "v2.34.4")]
    plan = cells(m, SCENARIOS)
    assert {c.scenario for c in plan} == set(SCENARIOS)
    assert len({c.pairing for c in plan}) == 60  # 4 × 16 pairings, less the 4 shared all-old/all-new ones


def test_filters_and_their_errors(tmp_path):
    m = load(write(tmp_path, GOOD), known_scenarios=SCENARIOS)
    only = cells(m, SCENARIOS, only_scenarios=["regular_workspace"])
    assert {c.scenario for c in only} == {"regular_workspace"} and len(only) == 16
    one = cells(m, SCENARIOS, only_cells=[only[3].id])
    assert one == [only[3]]
    with pytest.raises(UsageError, match="--scenario 'nope'"):
        cells(m, SCENARIOS, only_scenarios=["nope"])
    with pytest.raises(UsageError, match="--cell 'x'"):
        cells(m, SCENARIOS, only_cells=["x"])


@pytest.mark.parametrize(("args", "message"), [
    (["--matrix", "{bad}"], ":2: upgrades[0].to: v2.99.0"),
    (["--matrix", "{good}", "--cell", "nope"], "--cell 'nope': no such cell"),
    (["--matrix", "{good}", "-n", "lots"], "-n 'lots'"),
    (["--matrix", "{good}", "--time-scale", "0"], "--time-scale 0.0: must be between"),
    (["--matrix", "{missing}"], "no such file"),
    (["--matrix", "{good}", "-n", "100000"], "-n 100000: must be between 0 and 64"),
    (["--matrix", "{good}", "--seed", str(2**64)], f"--seed {2**64}: must be between 0 and 2^63-1"),
])
def test_harness_run_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    good = write(tmp_path, GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text("upgrades:\n  - {from: v2.33.9, to: v2.99.0}\n")
    argv = [a.format(good=good, bad=bad, missing=tmp_path / "missing.yaml") for a in args]
    r = subprocess.run([sys.executable, "-m", "harness", "run", *argv, "--dry-run", "--report-dir",
                        str(tmp_path / "reports")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "reports").exists()


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", str(write(tmp_path, GOOD)), "--dry-run",
                        "--report-dir", str(tmp_path / "reports")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "seed 3 (from matrix.yaml)" in r.stdout and "time scale 1: Coder's real timings (from default)" in r.stdout
    assert f"{16 * len(SCENARIOS)} cells ({len(SCENARIOS)} scenarios × 16 pairings)" in r.stdout
    assert "1. live_claim[v2.33.9>v2.33.9>v2.33.9,agent=v2.33.9]" in r.stdout
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("where", ["a-file", "a-file/reports"])
def test_a_report_dir_that_cannot_be_a_folder_is_bad_input_before_anything_starts(tmp_path, where):
    (tmp_path / "a-file").write_text("not a folder\n")
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", str(write(tmp_path, GOOD)),
                        "--report-dir", str(tmp_path / where)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"report dir {tmp_path / where}: " in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "starting PostgreSQL" not in r.stdout + r.stderr


def test_a_database_that_does_not_answer_is_bad_input_before_anything_starts(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--matrix", str(write(tmp_path, GOOD)),
                        "--pg-dsn", "host=127.0.0.1 port=1 user=x dbname=y", "--report-dir", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "does not answer" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
