"""Two runs compared cell by cell: what got worse, what got better, what changed its facts.

Pure: ``diff_runs(old, new)`` returns a ``RunDiff`` of plain data, ``render_diff`` the text. Cells
are matched by id. Verdicts are ordered PASS < DEGRADED < FAIL, with ERROR and UNKNOWN ranked with
FAIL (each blocks the gate; a move among the three is a change, not an improvement). A cell got
*worse* when its verdict rose, it became a SURPRISE, or it lost the ledger's acceptance (the gate
counts it again); *better* for the reverse, when nothing got worse at the same time. Otherwise it
*changed* when its verdict, acceptance or key facts differ: the oracle's timing-free facts
(``harness.oracle.COMPARED``) and the non-200 statuses seen; ids, latencies and request counts vary
from run to run by design and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from harness.oracle import COMPARED

ONLY_LISTED = 20  # cells listed by id when only one run has them; the rest are counted
RANK = {"PASS": 0, "DEGRADED": 1, "FAIL": 2, "UNKNOWN": 2, "ERROR": 2}
WHAT_CHARS = 100  # the "what changed" column; longer explanations are cut (both runs' results.json have them)


@dataclass
class Change:
    id: str
    old: str  # "FAIL", "FAIL+S", "FAIL accepted" ...
    new: str
    what: list[str]


@dataclass
class RunDiff:
    old_name: str
    new_name: str
    worse: list[Change] = field(default_factory=list)
    better: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def state(cell: dict[str, Any]) -> str:
    return cell["verdict"] + (" +SURPRISE" if cell.get("surprise") else "") + (" accepted" if cell.get("accepted")
                                                                                else "")


def key_facts(cell: dict[str, Any]) -> dict[str, Any]:
    f = cell.get("facts") or {}
    out = {name: f.get(name) for name in COMPARED}
    out["non-200 statuses"] = sorted(s for s in f.get("statuses") or [] if s != 200)
    return out


def compare(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, list[str]]:
    """("worse" | "better" | "changed" | "same", what changed in words)."""
    what = []
    r_old, r_new = RANK.get(old["verdict"], 2), RANK.get(new["verdict"], 2)
    if old["verdict"] != new["verdict"]:
        what.append(f"verdict {old['verdict']} → {new['verdict']}")
    s_old, s_new = bool(old.get("surprise")), bool(new.get("surprise"))
    if s_old != s_new:
        what.append("now a SURPRISE" if s_new else "no longer a SURPRISE")
    a_old, a_new = bool(old.get("accepted")), bool(new.get("accepted"))
    if a_old != a_new:
        what.append("now accepted by the ledger" if a_new else "no longer accepted by the ledger")
    f_old, f_new = key_facts(old), key_facts(new)
    what += [f"{k} {f_old[k]!r} → {f_new[k]!r}" for k in f_old if f_old[k] != f_new[k]]
    worse = r_new > r_old or (s_new and not s_old) or (a_old and not a_new)
    better = r_new < r_old or (s_old and not s_new) or (a_new and not a_old)
    if worse:
        return "worse", what
    if better:
        return "better", what
    return ("changed" if what else "same"), what


def diff_runs(old: dict[str, Any], new: dict[str, Any], *, old_name: str = "old", new_name: str = "new") -> RunDiff:
    d = RunDiff(old_name, new_name)
    old_cells = {c["id"]: c for c in old["cells"]}
    new_cells = {c["id"]: c for c in new["cells"]}
    for cid, n in new_cells.items():  # new run's order: the reader's current plan
        o = old_cells.get(cid)
        if o is None:
            d.only_new.append(cid)
            continue
        how, what = compare(o, n)
        if how == "same":
            d.unchanged += 1
        else:
            getattr(d, how).append(Change(cid, state(o), state(n), what))
    d.only_old = [cid for cid in old_cells if cid not in new_cells]
    ro, rn = old["run"], new["run"]
    if ro.get("matrix_sha256") != rn.get("matrix_sha256"):
        d.notes.append(f"the matrices differ ({ro.get('matrix')} sha256 {str(ro.get('matrix_sha256'))[:12]} → "
                       f"{rn.get('matrix')} sha256 {str(rn.get('matrix_sha256'))[:12]})")
    if ro.get("seed") != rn.get("seed"):
        d.notes.append(f"the seeds differ ({ro.get('seed')} → {rn.get('seed')})")
    for name, r in ((old_name, old), (new_name, new)):
        if not r["run"].get("finished") or r["summary"]["cells"] < r["summary"]["planned"]:
            d.notes.append(f"{name} is partial: {r['summary']['cells']} of {r['summary']['planned']} cells")
    return d


def _cut(text: str) -> str:
    return text if len(text) <= WHAT_CHARS else text[: WHAT_CHARS - 1] + "…"


def render_diff(d: RunDiff) -> str:
    lines = [f"diff {d.old_name} → {d.new_name}",
             f"{len(d.worse)} worse · {len(d.better)} better · {len(d.changed)} changed · {d.unchanged} unchanged · "
             f"{len(d.only_old)} only in old · {len(d.only_new)} only in new"]
    lines += [f"note: {n}" for n in d.notes]
    for title, changes in (("WORSE", d.worse), ("BETTER", d.better), ("CHANGED", d.changed)):
        if changes:
            rows = [(c.id, c.old, c.new, _cut("; ".join(c.what))) for c in changes]
            lines += ["", f"{title} ({len(changes)})",
                      tabulate(rows, headers=["cell", "old", "new", "what changed"], disable_numparse=True)]
    for title, ids in (("ONLY IN OLD", d.only_old), ("ONLY IN NEW", d.only_new)):
        if ids:  # typically a filtered run against a full one: name a few, count the rest
            lines += ["", f"{title} ({len(ids)})", *(f"  {cid}" for cid in ids[:ONLY_LISTED])]
            if len(ids) > ONLY_LISTED:
                lines.append(f"  … and {len(ids) - ONLY_LISTED} more")
    return "\n".join(lines) + "\n"
