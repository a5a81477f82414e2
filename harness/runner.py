"""Run one cell: its story live on the stage, the same story on the model, both judged, compared, recorded.

The result is plain data (one entry of results.json): facts, checks and verdict of the live run,
the prediction, SURPRISE and its differences, the ledger entry that covers it, a one-line repro
command, and a timeline of the cell's events with faults marked.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import time
import traceback
from typing import Any

from harness.errors import HarnessError
from harness.events import Event
from harness.fixtures import payload
from harness.matrix import LedgerEntry, Matrix
from harness.oracle import Facts, differences, facts, judge
from harness.plan import Cell
from harness.protocol import Release
from harness.protocol.model import ModelWorld
from harness.scenarios import Scenario
from harness.scenarios.live import LiveWorld
from harness.settings import Settings
from harness.stage import Stage

TIMELINE_FIELDS = ("agent", "conn", "ws", "status", "decision", "why", "error", "decoded_ws", "owner", "type", "text",
                   "label", "fault", "trigger", "replica", "how", "data", "payload", "reason", "generation", "wait",
                   "detail", "upstream", "build", "stage")
TIMELINE_LIMIT = 200  # events kept per cell: a story has a few dozen; a retry loop is cut here


def predict(cell: Cell, scenario: Scenario, releases: dict[str, Release], seed: int) -> tuple[Facts, str, list]:
    """The model's facts and verdict for the cell (protocol package only, no processes)."""
    model = ModelWorld({r: releases[r] for r in ("publisher", "stream", "reconnect")}, releases["agent"], seed=seed,
                       payloads=payload)
    scenario.story(model)
    f = facts(model.events, agents=set(model.agents), workspaces={str(w) for w in model.workspaces},
              agent_has_owner=releases["agent"].agent_decodes_owner)
    verdict, checks = judge(f, scenario.contract)
    return f, verdict, checks


def timeline(events: list[Event], start_m: float) -> list[dict[str, Any]]:
    """The cell's events for people: relative milliseconds, source, name and the fields that matter."""
    out = []
    for e in events:
        if e.get("ev") == "sse.frame" and e.get("type") == "ping":
            continue
        item: dict[str, Any] = {"ms": round((e["m"] - start_m) * 1000, 1), "src": e.get("src"), "ev": e.get("ev")}
        for k in TIMELINE_FIELDS:
            if e.get(k) not in (None, ""):
                v = e[k]
                item[k] = v[:160] if isinstance(v, str) else v
        out.append(item)
        if len(out) >= TIMELINE_LIMIT:
            out.append({"ms": item["ms"], "src": "harness", "ev": "timeline.truncated"})
            break
    return out


def covering(entries: list[LedgerEntry], cell: Cell, releases: dict[str, Release],
             today: dt.date) -> LedgerEntry | None:
    return next((e for e in entries if e.live(today) and e.matches(releases, cell.scenario)), None)


def repro(cell: Cell, matrix: Matrix, settings: Settings) -> str:
    return (f"harness run --matrix {shlex.quote(str(matrix.path))} --cell {shlex.quote(cell.id)} "
            f"--seed {settings.seed}" + (f" --time-scale {settings.time_scale:g}" if settings.time_scale != 1 else ""))


def run_cell(stage: Stage, cell: Cell, scenario: Scenario, matrix: Matrix, settings: Settings) -> dict[str, Any]:
    releases = cell.releases(matrix)
    seed = cell.seed(settings.seed)
    started, wall = time.monotonic(), time.time()
    error = None
    world: LiveWorld | None = None
    try:
        world = LiveWorld(stage, cell, releases, seed=seed, quiet_s=settings.quiet_s)
        scenario.story(world)
        dead = sorted(rep.name for rep in world.reps.values() if not rep.alive)
        if dead:  # the scenario's own kills restart the replica: this one was not the protocol's doing
            raise HarnessError(f"replica {', '.join(dead)} died during the cell, not by a fault the scenario "
                               "planned", hint="its logs and stderr are in the run's logs folder")
    except HarnessError as e:
        error = str(e)
    except Exception as e:  # a harness bug in one cell must not take the run down; it shows as ERROR
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
    finally:
        if world is not None:
            world.close()
        if error:
            restarted = stage.heal()
            if restarted:
                error += f"\n(replicas restarted after this cell: {', '.join(restarted)})"
    events = world.events() if world is not None else []
    live = facts(events, agents=set(world.agents) if world else set(),
                 workspaces=set(world.workspaces) if world else set(),
                 agent_has_owner=releases["agent"].agent_decodes_owner)
    verdict, checks = judge(live, scenario.contract)
    if error:
        verdict, checks = "ERROR", []  # a cell that could not run has nothing to judge
    predicted, predicted_verdict, predicted_checks = predict(cell, scenario, releases, seed)
    diffs = [] if error else differences(live, predicted)
    if not error and verdict != predicted_verdict:
        diffs.insert(0, f"verdict: live {verdict}, predicted {predicted_verdict}")
    surprise = bool(diffs)
    entry = covering(matrix.ledger, cell, releases, dt.date.today())
    return {
        "id": cell.id, "scenario": cell.scenario, "title": scenario.title, "pairing": cell.pairing,
        "versions": cell.tags, "variants": {role: r.variant.name for role, r in releases.items()},
        "facts": live.as_dict(), "checks": [c.as_dict() for c in checks], "verdict": verdict,
        "predicted": {"verdict": predicted_verdict, "facts": predicted.as_dict(),
                      "checks": [c.as_dict() for c in predicted_checks]},
        "surprise": surprise, "differences": diffs,
        "ledger": None if entry is None else {"line": entry.line, "match": entry.describe(), "reason": entry.reason,
                                              "ticket": entry.ticket, "expires": entry.expires.isoformat()},
        "accepted": entry is not None and (verdict == "FAIL" or surprise),
        "candidate_involved": matrix.candidate is None or cell.involves(matrix.candidate),
        "repro": repro(cell, matrix, settings), "error": error,
        "started": dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds"),
        "duration_s": round(time.monotonic() - started, 3), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "timeline": timeline(events, events[0]["m"] if events else started),
    }
