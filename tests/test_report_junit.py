"""junit.xml read back with ElementTree: counts, one testcase per cell, the right element per kind."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.report import render_junit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "results"
P1 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.31.14"
P2 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.34.4"
P3 = "v2.31.14>v2.34.4>v2.34.4,agent=v2.31.14"


def parse(name: str) -> ET.Element:
    results: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return ET.fromstring(render_junit(results).encode("utf-8"))


def case(root: ET.Element, pairing: str, scenario: str) -> ET.Element:
    found = [tc for tc in root.iter("testcase") if tc.get("classname") == pairing and tc.get("name") == scenario]
    assert len(found) == 1, (pairing, scenario)
    return found[0]


def counts(el: ET.Element) -> tuple[int, int, int, int]:
    return tuple(int(el.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped"))  # type: ignore[return-value]


def test_counts_match_the_cells() -> None:
    root = parse("mixed")
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    # 10 cells: FAIL ×2 and the SURPRISE fail; ERROR and UNKNOWN are errors; 2 accepted are skipped
    assert counts(root) == counts(suite) == (10, 3, 2, 2)
    cases = list(root.iter("testcase"))
    assert len(cases) == 10
    assert sum(1 for c in cases if c.find("failure") is not None) == 3
    assert sum(1 for c in cases if c.find("error") is not None) == 2
    assert sum(1 for c in cases if c.find("skipped") is not None) == 2
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["seed"] == "11" and props["candidate"] == "v2.34.4" and props["gate"] == "failed"


def test_each_kind_maps_to_its_element() -> None:
    root = parse("mixed")
    fail = case(root, P2, "live_claim").find("failure")
    assert fail is not None and fail.get("type") == "FAIL"
    assert fail.get("message", "").startswith("FAIL: reinitialised 2 times for one claim (ONCE)")
    assert fail.text and fail.text.endswith(f"--cell 'live_claim[{P2}]' --seed 11")  # the paragraph, repro last

    surprise = case(root, P2, "claim_while_stream_down").find("failure")
    assert surprise is not None and surprise.get("type") == "SURPRISE"
    assert surprise.get("message", "").startswith("SURPRISE (predicted PASS): the claim was lost")

    error = case(root, P2, "regular_workspace").find("error")
    assert error is not None and error.get("type") == "ERROR"
    assert error.get("message") == ("ERROR: replica v2.34.4 did not become ready within 10 s "
                                    "(GET /healthz: connection refused)")
    assert error.text and "last log lines:" in error.text and "\x1b" not in error.text and "\x07" not in error.text

    unknown = case(root, P1, "regular_workspace").find("error")
    assert unknown is not None and unknown.get("type") == "UNKNOWN" and "checker crashed" in unknown.get("message", "")

    skipped = case(root, P1, "listener_gap").find("skipped")
    assert skipped is not None
    assert skipped.get("message", "").startswith("accepted: ledger line 9 (reinit-compat-1): PostgreSQL drops NOTIFYs")

    degraded = case(root, P3, "live_claim")
    assert degraded.find("failure") is None and degraded.find("error") is None
    out = degraded.find("system-out")
    assert out is not None and out.text and "decoded zero ids (cosmetic)" in out.text

    passed = case(root, P1, "live_claim")
    assert list(passed) == [] and float(passed.get("time", "0")) > 0


def test_partial_run_counts_cells_not_run_as_skipped() -> None:
    root = parse("partial")
    assert counts(root) == (10, 1, 0, 7)  # 4 run (1 FAIL, 1 accepted) + 6 not run
    not_run = case(root, P2, "claim_while_stream_down").find("skipped")
    assert not_run is not None
    assert not_run.get("message") == ("not run: the run has not finished (still going, or stopped without a chance to "
                                      "say so); partial: 4 of 10 cells")


def test_empty_run() -> None:
    root = parse("empty")
    assert counts(root) == (0, 0, 0, 0)
    assert list(root.iter("testcase")) == []
