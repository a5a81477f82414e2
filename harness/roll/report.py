"""A roll's results for people and CI: roll.json, report.md (plan, anomaly table by versions, timeline), junit.xml.

Pure renderers over the roll's result dict; ``write`` puts them in the run folder atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from tabulate import tabulate

from harness.results import atomic_write

KINDS = ("lost", "duplicated", "spurious", "polls forever")


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
    body = []
    for r in j["table"]:
        cells = [f"{r.get(f'{k} (live)', 0)} ({r.get(f'{k} (predicted)', 0)})"
                 if r.get(f"{k} (live)") or r.get(f"{k} (predicted)") else "" for k in KINDS]
        if any(cells) or r.get("surprises"):
            body.append([r["versions"], r.get("claims", 0) or r.get("agents", 0), *cells, r.get("surprises") or ""])
    if body:
        out += ["## Anomalies by versions: live (predicted)", "",
                "Versions are the publisher > the replica holding the stream at publish time > the replica the agent "
                "reconnected to next · the agent.", "",
                tabulate(body, headers=["versions", "claims", *KINDS, "surprises"], tablefmt="github"), ""]
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


def write(run_dir: Path, result: dict[str, Any]) -> None:
    atomic_write(run_dir / "roll.json", json.dumps(result, indent=1, default=str) + "\n")
    atomic_write(run_dir / "report.md", markdown(result))
    atomic_write(run_dir / "junit.xml", junit(result))
