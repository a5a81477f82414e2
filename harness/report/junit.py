"""junit.xml: one testcase per cell for CI (GitHub, GitLab, Jenkins read this shape).

Pure: ``render_junit(results)`` returns the text. ``classname`` is the version pairing
(``publisher>stream>reconnect,agent=X``), ``name`` the scenario, ``time`` the cell's duration. Mapping:

- FAIL, or any SURPRISE → ``<failure type="FAIL"|"SURPRISE">`` with the plain-words paragraph;
- ERROR (the cell could not run) and UNKNOWN (a checker crashed) → ``<error>``;
- accepted by the ledger → ``<skipped message="accepted: ...">`` with the paragraph;
- DEGRADED → a pass with the paragraph in ``<system-out>``; PASS → a bare pass;
- planned but not run (a partial or interrupted run) → ``<skipped message="not run: ...">``, so the
  test count is the plan's and an interrupted run never looks complete.

Text is cleaned of terminal colour codes and of characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from harness.report.view import run_state, split_id
from harness.report.words import paragraph, problems

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MESSAGE_CHARS = 300  # a failure's message attribute is a one-line summary; the paragraph is its text


def clean(text: Any) -> str:
    return _NOT_XML.sub("?", _ANSI.sub("", str(text)))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: clean(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = clean(text)
    return el


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def _testcase(suite: ET.Element, cell: dict[str, Any]) -> str:
    """Add the cell's testcase; return its outcome: pass, failure, error or skipped."""
    case = _sub(suite, "testcase", classname=cell["pairing"], name=cell["scenario"],
                time=f"{float(cell.get('duration_s') or 0):.3f}")
    words = paragraph(cell)
    if cell.get("accepted"):
        ledger = cell.get("ledger") or {}
        why = f"accepted: ledger line {ledger.get('line', '?')} ({ledger.get('ticket', '?')}): {ledger.get('reason')}"
        _sub(case, "skipped", words, message=_one_line(why))
        return "skipped"
    if cell["verdict"] in ("ERROR", "UNKNOWN"):
        detail = f"{words}\n\n{cell['error']}" if cell.get("error") else words
        source = str(cell.get("error") or problems(cell)).strip()
        first = source.splitlines()[0] if source else ""
        _sub(case, "error", detail, message=_one_line(f"{cell['verdict']}: {first}"), type=cell["verdict"])
        return "error"
    if cell["verdict"] == "FAIL" or cell.get("surprise"):
        kind = "SURPRISE" if cell.get("surprise") else "FAIL"
        predicted = f" (predicted {cell['predicted']['verdict']})" if cell.get("surprise") else ""
        _sub(case, "failure", words, message=_one_line(f"{kind}{predicted}: {problems(cell)}"), type=kind)
        return "failure"
    if cell["verdict"] == "DEGRADED":
        _sub(case, "system-out", words)
    return "pass"


def render_junit(results: dict[str, Any]) -> str:
    """junit.xml for a run (finished or partial); deterministic for the same results."""
    run, s = results["run"], results["summary"]
    suite = ET.Element("testsuite", {"name": "harness compatibility"})
    props = ET.SubElement(suite, "properties")
    gate = results["gate"]
    for name, value in (("matrix", run.get("matrix")), ("matrix_sha256", run.get("matrix_sha256")),
                        ("seed", run.get("seed")), ("time_scale", run.get("time_scale")),
                        ("candidate", gate.get("candidate")),
                        ("gate", "passed" if gate.get("passed") else "incomplete" if not gate.get("complete")
                         else "failed"),
                        ("cells", f"{s['cells']} of {s['planned']}"), ("surprises", s.get("surprises"))):
        _sub(props, "property", name=name, value="" if value is None else value)
    outcomes = [_testcase(suite, c) for c in results["cells"]]
    done = {c["id"] for c in results["cells"]}
    not_run = [cid for cid in run.get("cell_order", []) if cid not in done]
    for cid in not_run:
        scenario, pairing = split_id(cid)
        case = _sub(suite, "testcase", classname=pairing, name=scenario, time="0.000")
        _sub(case, "skipped", message=f"not run: the run {run_state(run)}; partial: {s['cells']} of {s['planned']} "
             "cells")
        outcomes.append("skipped")
    totals = {"tests": len(outcomes), "failures": outcomes.count("failure"), "errors": outcomes.count("error"),
              "skipped": outcomes.count("skipped")}
    duration = sum(float(c.get("duration_s") or 0) for c in results["cells"])
    for k, v in {**totals, "time": f"{duration:.3f}"}.items():
        suite.set(k, str(v))
    if run.get("started"):
        suite.set("timestamp", clean(run["started"]))
    if run.get("machine", {}).get("host"):
        suite.set("hostname", clean(run["machine"]["host"]))
    top = ET.Element("testsuites", {"name": "harness", **{k: str(v) for k, v in totals.items()},
                                    "time": f"{duration:.3f}"})
    top.append(suite)
    ET.indent(top, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode") + "\n"
