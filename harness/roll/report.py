"""A roll's results for people and CI: roll.json, report.md and report.html (counts against the model, the
anomaly table by versions, the plan, a step timeline), junit.xml.

Pure renderers over the roll's result dict; ``write`` puts them in the run folder atomically. The HTML is
static (no script, no network) and shares the matrix report's stylesheet.
"""

from __future__ import annotations

import html as htmlesc
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from tabulate import tabulate

from harness.report.html_page import CSS
from harness.results import atomic_write

KINDS = ("lost", "duplicated", "spurious", "polls forever")


BY_VERSIONS = ["versions", "agents", "claims", *KINDS, "surprises"]
VERSIONS_NOTE = ("Versions: the publisher > the replica holding the stream at publish time > the replica the agent "
                 "reconnected to next · the agent. Agents: all of them; claims: those in claimed prebuilds (the "
                 "others are in regular workspaces).")


def by_versions(table: list[dict[str, Any]]) -> list[list[Any]]:
    """The anomaly table's rows, the same in report.md and report.html."""
    return [[r["versions"], r.get("agents", 0), r.get("claims", 0),
             *[f"{r.get(f'{k} (live)', 0)} ({r.get(f'{k} (predicted)', 0)})" for k in KINDS], r.get("surprises", 0)]
            for r in table]


def markdown(result: dict[str, Any]) -> str:
    j, plan = result["judgement"], result["plan"]
    live, predicted = j["live"], j["predicted"]
    surprises = j["surprises"]
    head = (f"# Rolling upgrade {plan['config']['from_tag']} → {plan['config']['to_tag']}: "
            f"{'no surprises' if not surprises else f'{len(surprises)} SURPRISE(S)'}")
    out = [head, "", f"Seed {plan['config']['seed']} · {plan['config']['replicas']} replicas · "
           f"{len(plan['agents'])} agents · {live.get('claims', 0)} claims · wall time {result['wall_s']} s · "
           f"replay: `{result['replay']}`", ""]
    rows = [[k, live.get(k, 0), predicted.get(k, 0)] for k in KINDS]
    out += ["## Anomalies (live vs predicted by the model)", "",
            tabulate(rows, headers=["anomaly", "live", "predicted"], tablefmt="github"), ""]
    out += ["## By versions: live (predicted)", "", VERSIONS_NOTE, "",
            tabulate(by_versions(j["table"]), headers=BY_VERSIONS, tablefmt="github"), ""]
    if surprises:
        out += ["## Surprises", ""]
        for agent in surprises[:50]:
            o, p = j["outcomes"][agent], j["predicted_outcomes"][agent]
            versions = f"{o['publisher']} > {o['stream']} > {o['reconnect']} · agent {o['agent_tag']}"
            out.append(f"- agent {agent} ({versions}): live "
                       f"{o['anomalies'] or 'no anomaly'} (reinits in window {o['in_window']}, after quiet "
                       f"{o['after_quiet']}), predicted {p['anomalies'] or 'no anomaly'}")
    out += ["", "## Plan", "", *[f"    {line}" for line in result["plan_lines"]], "", "## Timeline", ""]
    out += [f"- {t['s']:8.2f} s  step {t['n']}: {t['text']}" for t in result["timeline"]]
    if result.get("shrunk"):
        s = result["shrunk"]
        out += ["", "## Shrunk", "", f"The anomaly `{s['target']}` still shows with {s['agents']} agent(s) and "
                f"{s['steps']} step(s) (after {s['runs']} runs): replay with `{s['replay']}`", "",
                *[f"    {line}" for line in s["lines"]]]
    return "\n".join(out) + "\n"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{htmlesc.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{htmlesc.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html(result: dict[str, Any]) -> str:
    j, plan = result["judgement"], result["plan"]
    c = plan["config"]
    surprises = j["surprises"]
    title = f"Rolling upgrade {c['from_tag']} → {c['to_tag']}"
    verdict = "no surprises" if not surprises else f"{len(surprises)} SURPRISE(S)"
    counts = _table(["anomaly", "live", "predicted"],
                    [[k, j["live"].get(k, 0), j["predicted"].get(k, 0)] for k in KINDS])
    versions = _table(BY_VERSIONS, by_versions(j["table"]))
    odd = _table(["agent", "versions", "live", "predicted"], [
        [a, f"{j['outcomes'][a]['publisher']} > {j['outcomes'][a]['stream']} > {j['outcomes'][a]['reconnect']} · "
            f"agent {j['outcomes'][a]['agent_tag']}", ", ".join(j["outcomes"][a]["anomalies"]) or "none",
         ", ".join(j["predicted_outcomes"][a]["anomalies"]) or "none"] for a in surprises[:200]]) if surprises else ""
    end = max([t["s"] for t in result["timeline"]] + [1.0])
    bars = "".join(
        f'<div style="display:flex;gap:8px;align-items:center"><span style="width:56px;text-align:right">'
        f'{t["s"]:.1f} s</span><span style="display:inline-block;height:8px;width:{max(2, 400 * t["s"] / end):.0f}px;'
        f'background:var(--blue)"></span><span>step {t["n"]}: {htmlesc.escape(t["text"])}</span></div>'
        for t in result["timeline"])
    shrunk = ""
    if result.get("shrunk"):
        s = result["shrunk"]
        shrunk = (f"<h2>Shrunk</h2><p>{htmlesc.escape(s['target'])} still shows with {s['agents']} agent(s) and "
                  f"{s['steps']} step(s): <code>{htmlesc.escape(s['replay'])}</code></p>"
                  f"<pre>{htmlesc.escape(chr(10).join(s['lines']))}</pre>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
            f"content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>{htmlesc.escape(title)}</title>"
            f"<style>{CSS}table{{border-collapse:collapse;margin:8px 0 16px}}td,th{{border:1px solid var(--line);"
            f"padding:3px 8px;text-align:left}}main{{display:block;padding:16px 20px;max-width:1400px}}"
            "</style></head><body>"
            f"<header><h1>{htmlesc.escape(title)}: {verdict}</h1><div>seed {c['seed']} · {c['replicas']} replicas · "
            f"{len(plan['agents'])} agents · {j['live'].get('claims', 0)} claims · wall time {result['wall_s']} s · "
            f"replay: <code>{htmlesc.escape(result['replay'])}</code></div></header><main>"
            f"<h2>Anomalies: live vs predicted by the model</h2>{counts}"
            f"<h2>By versions: live (predicted)</h2><p>{htmlesc.escape(VERSIONS_NOTE)}</p>{versions}"
            + (f"<h2>Surprises</h2>{odd}" if surprises else "")
            + f"<h2>Timeline</h2>{bars}<h2>Plan</h2><pre>{htmlesc.escape(chr(10).join(result['plan_lines']))}</pre>"
            f"{shrunk}</main></body></html>\n")


def junit(result: dict[str, Any]) -> str:
    j = result["judgement"]
    suite = ET.Element("testsuite", name="roll", tests=str(len(j["table"])),
                       failures=str(sum(1 for r in j["table"] if r.get("surprises"))))
    for row in j["table"]:
        case = ET.SubElement(suite, "testcase", classname="roll", name=row["versions"])
        if row.get("surprises"):
            ET.SubElement(case, "failure", message=f"{row['surprises']} claim(s) differ from the model's prediction")
        anomalies = {k: v for k, v in row.items() if k.endswith("(live)")}
        if anomalies:
            ET.SubElement(case, "system-out").text = json.dumps(anomalies)
    return ET.tostring(suite, encoding="unicode") + "\n"


def stopped_markdown(plan_lines: list[str], reached: list[str], why: str, replay: str) -> str:
    """A roll that did not reach its end: what ran, why it stopped, how to replay; no claim is judged."""
    out = [f"# Rolling upgrade stopped: {why.splitlines()[0]}", "",
           f"The roll stopped after {len(reached)} of {len(plan_lines)} steps had started. No claim is judged: "
           "live outcomes are compared with the model only once the whole plan has run "
           "(claims still in flight would read as lost).", "", f"Replay: `{replay}`", ""]
    if "\n" in why:
        out += ["## Details", "", *[f"    {line}" for line in why.splitlines()[1:]], ""]
    out += ["## Steps that started", "", *[f"- {line}" for line in reached], "",
            "## Plan", "", *[f"    {line}" for line in plan_lines]]
    return "\n".join(out) + "\n"


def write_stopped(run_dir: Path, plan_lines: list[str], reached: list[str], why: str, replay: str) -> None:
    """report.md and junit.xml (one errored case, so CI never reads a stopped roll as passed)."""
    atomic_write(run_dir / "report.md", stopped_markdown(plan_lines, reached, why, replay))
    suite = ET.Element("testsuite", name="roll", tests="1", errors="1")
    case = ET.SubElement(suite, "testcase", classname="roll", name="roll")
    ET.SubElement(case, "error", message=f"the roll stopped: {why.splitlines()[0]}").text = "\n".join(reached)
    atomic_write(run_dir / "junit.xml", ET.tostring(suite, encoding="unicode") + "\n")


def write(run_dir: Path, result: dict[str, Any]) -> None:
    atomic_write(run_dir / "roll.json", json.dumps(result, indent=1, default=str) + "\n")
    atomic_write(run_dir / "report.md", markdown(result))
    atomic_write(run_dir / "report.html", html(result))
    atomic_write(run_dir / "junit.xml", junit(result))
