"""Drive a roll plan through a world (live fleet or model), judge every claim, compare, and shrink.

One driver runs the same plan on both worlds through the same verbs. Judging is the cell oracle's,
per workspace: each claim's facts (reinits in its claim window, after its quiet mark, lost, polling
stopped) give its anomalies — lost, duplicated, spurious, or (regular workspaces) polling forever —
and each anomaly is attributed to the releases involved: the replica that published, the one holding
the agent's stream when it did, the one the agent reconnected to next, and the agent's own.
Predicted anomalies (the model's) are kept apart from SURPRISEs (live ≠ model).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from harness.errors import HarnessError
from harness.events import Event
from harness.oracle import facts
from harness.protocol import Release
from harness.roll.plan import AgentSpec, RollPlan, Step


class RollWorld(Protocol):
    def setup(self, agents: Iterable[tuple[str, str, str, int]]) -> None: ...
    def claims(self, claims: Iterable[Any], *, listener_down: int | None = None) -> None: ...
    def mark_quiet(self, agent_ids: Iterable[str]) -> None: ...
    def cut_agents(self, agent_ids: Iterable[str]) -> None: ...
    def restart_agents(self, agent_ids: Iterable[str]) -> None: ...
    def drain(self, replica: int, fallback: int) -> None: ...
    def undrain(self, replica: int) -> None: ...
    def upgrade(self, replica: int, tag: str, *, crash: bool) -> None: ...
    def mark(self, label: str, **fields: Any) -> None: ...


class RollStepError(HarnessError):
    pass


def drive(plan: RollPlan, world: RollWorld, *, progress: Callable[[str], None] = lambda _: None,
          replay: str = "", versions: Callable[[], str] = lambda: "") -> None:
    """Run every step; a failure names the step, the seed, the replicas' versions and how to replay."""
    world.setup([(a.id, a.tag, a.kind, a.home) for a in plan.agents])
    for i, step in enumerate(plan.steps, 1):
        progress(f"step {i:>3}/{len(plan.steps)}: {step.text()}")
        world.mark("step", n=i, text=step.text())
        try:
            apply(world, step)
        except HarnessError as e:
            raise RollStepError(f"while running step {i}: {step.text()}",
                                where=f"seed {plan.config.seed}; replicas {versions()}",
                                hint=f"replay with: {replay}" if replay else "", details=str(e)) from None


def apply(world: RollWorld, step: Step) -> None:
    a = step.args
    if step.kind in ("burst", "listener_gap"):
        claims = step.claims()
        world.claims(claims, listener_down=a["replica"] if step.kind == "listener_gap" else None)
        world.mark_quiet([c.agent for c in claims])
    elif step.kind == "cut":
        world.cut_agents(a["agents"])
    elif step.kind == "restart_agents":
        world.restart_agents(a["agents"])
    elif step.kind == "drain":
        world.drain(a["replica"], a["fallback"])
    elif step.kind == "undrain":
        world.undrain(a["replica"])
    elif step.kind == "upgrade":
        world.upgrade(a["replica"], a["tag"], crash=a["crash"])
    else:
        raise ValueError(f"unknown step kind {step.kind!r}")


# -- judging --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    agent: str
    kind: str
    agent_tag: str
    publisher: str = "-"
    stream: str = "-"
    reconnect: str = "-"
    reinits: int = 0
    in_window: int = 0
    after_quiet: int = 0
    lost: bool = False
    polling_stopped: bool = False
    latency_ms: float | None = None

    @property
    def anomalies(self) -> list[str]:
        if self.kind == "regular":
            return [] if self.polling_stopped else ["polls forever"]
        out = []
        if self.lost:
            out.append("lost")
        if self.in_window > 1:
            out.append("duplicated")
        if self.after_quiet:
            out.append("spurious")
        return out

    @property
    def versions(self) -> str:
        if self.kind == "regular":
            return f"regular workspace · agent {self.agent_tag}"
        return f"{self.publisher} > {self.stream} > {self.reconnect} · agent {self.agent_tag}"

    def key(self) -> tuple:
        """The timing-free outcome live and model are compared on."""
        return (self.lost, self.in_window, self.after_quiet, self.polling_stopped)


class _Tags:
    """Which release each replica ran when (from replica.ready events)."""

    def __init__(self, events: list[Event]) -> None:
        self.at: dict[str, tuple[list[float], list[str]]] = defaultdict(lambda: ([], []))
        for e in events:
            if e.get("ev") == "replica.ready":
                times, tags = self.at[e.get("name") or str(e.get("src", "")).removeprefix("replica:")]
                times.append(e["m"])
                tags.append(e["tag"])

    def of(self, name: str | None, m: float) -> str:
        if not name or name not in self.at:
            return "-"
        times, tags = self.at[name]
        i = bisect.bisect_right(times, m) - 1
        return tags[max(i, 0)]


def outcomes(events: list[Event], agents: list[AgentSpec], ws_of: dict[str, str],
             resolve: Callable[[str], Release]) -> dict[str, Outcome]:
    """Each agent's claim (or regular workspace), judged and attributed."""
    events = sorted(events, key=lambda e: e.get("m", 0.0))
    tags = _Tags(events)
    by_ws: dict[str, list[Event]] = defaultdict(list)
    routes: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.get("ws") is not None:
            by_ws[e["ws"]].append(e)
        if e.get("ev") == "proxy.route" and e.get("agent"):
            routes[e["agent"]].append(e)
    out = {}
    for spec in agents:
        ws = ws_of[spec.id]
        evs = by_ws.get(ws, [])
        f = facts(evs, agents={spec.id}, workspaces={ws}, agent_has_owner=resolve(spec.tag).agent_decodes_owner)
        o = Outcome(spec.id, spec.kind, spec.tag, reinits=f.reinits, in_window=f.reinits_in_claim_window,
                    after_quiet=f.reinits_after_quiet or 0, lost=bool(f.claim_lost), polling_stopped=f.polling_stopped,
                    latency_ms=f.latency_ms)
        published = next((e for e in evs if e["ev"] == "claim.published"), None)
        completed = next((e for e in evs if e["ev"] == "build.completed" and e.get("stage") == "CLAIM"), None)
        if completed is not None:
            on = completed.get("on") or str(completed.get("src", "")).removeprefix("replica:")
            o.publisher = tags.of(on, completed["m"])
        if published is not None:
            before = [r for r in routes[spec.id] if r["m"] <= published["m"]]
            if before:
                o.stream = tags.of(before[-1].get("upstream"), published["m"])
            after = [r for r in routes[spec.id] if r["m"] > published["m"]]
            if after:
                o.reconnect = tags.of(after[0].get("upstream"), after[0]["m"])
        out[spec.id] = o
    return out


@dataclass
class Judgement:
    live: dict[str, Outcome]
    predicted: dict[str, Outcome]

    @property
    def surprises(self) -> list[str]:
        return sorted(a for a in self.live if self.live[a].key() != self.predicted[a].key())

    def counts(self, which: dict[str, Outcome]) -> Counter:
        c: Counter = Counter()
        for o in which.values():
            c["claims" if o.kind == "prebuild" else "regular"] += 1
            for a in o.anomalies:
                c[a] += 1
        return c

    def table(self) -> list[dict[str, Any]]:
        """Anomalies by version tuple: live and predicted counts, surprises."""
        rows: dict[str, Counter] = defaultdict(Counter)
        for agent, live in self.live.items():
            predicted = self.predicted[agent]
            row = rows[live.versions]
            row["claims"] += live.kind == "prebuild"
            row["agents"] += 1
            for a in live.anomalies:
                row[f"{a} (live)"] += 1
            for a in predicted.anomalies:
                row[f"{a} (predicted)"] += 1
            row["surprises"] += live.key() != predicted.key()
        return [{"versions": v, **dict(c)} for v, c in sorted(rows.items())]

    def as_dict(self) -> dict[str, Any]:
        return {"live": self.counts(self.live), "predicted": self.counts(self.predicted),
                "surprises": self.surprises, "table": self.table(),
                "outcomes": {a: {**asdict(o), "anomalies": o.anomalies} for a, o in self.live.items()},
                "predicted_outcomes": {a: {**asdict(o), "anomalies": o.anomalies} for a, o in self.predicted.items()}}


# -- shrinking -----------------------------------------------------------------------------------------
def shrink(plan: RollPlan, shows: Callable[[RollPlan], bool], *, budget: int = 60,
           progress: Callable[[str], None] = lambda _: None) -> tuple[RollPlan, int]:
    """The smallest plan (agents, then steps) on which ``shows`` still holds; (plan, runs used)."""
    runs = 0

    def attempt(candidate: RollPlan) -> bool:
        nonlocal runs
        runs += 1
        return shows(candidate)

    current = plan
    involved = {a.id for a in plan.agents}
    # agents first: halve the set until it no longer shows, then one at a time
    chunk = max(1, len(involved) // 2)
    while chunk >= 1 and runs < budget:
        changed = False
        ids = sorted(a.id for a in current.agents)
        for i in range(0, len(ids), chunk):
            drop = frozenset(ids[i:i + chunk])
            if len(drop) == len(ids) or runs >= budget:
                continue
            candidate = current.without(agents=drop)
            if attempt(candidate):
                current, changed = candidate, True
                progress(f"shrink: {len(current.agents)} agents, {len(current.steps)} steps")
                break
        if not changed:
            chunk //= 2
    # then steps, latest first, until no single removal keeps it (a plan keeps one step at least)
    changed = True
    while changed and runs < budget:
        changed = False
        for i in reversed(range(len(current.steps))):
            if runs >= budget:
                break
            candidate = current.without(steps=frozenset({i}))
            if candidate.steps and candidate.steps != current.steps and attempt(candidate):
                current, changed = candidate, True
                progress(f"shrink: {len(current.agents)} agents, {len(current.steps)} steps")
    return current, runs
