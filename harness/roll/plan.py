"""Rolling-upgrade plans: a seed and a few options in, a numbered list of plain-data steps out.

Pure; no I/O. Like CockroachDB's mixedversion planner: ``generate(config)`` only plans, a runner
executes; the same config always gives the same plan, and a saved plan replays exactly.

A plan upgrades N replicas from A to B one at a time, in a seeded order (and optionally rolls them
back). Between upgrades it runs workload bursts — every prebuild's agent gets exactly one claim over
the whole roll — and perturbations, each an object with a name, a probability, a compatibility check
and a generator: drain first, crash instead of a graceful stop, cut streams, cut claims in flight,
restart agents, kill a replica's pubsub listener with claims published in the gap. Each step has a
seed of its own derived from the plan's.

Every step leaves the fleet settled before the next one starts, and claims never race a restart, so
a claim's outcome depends only on the plan, not on timing: that is what makes a roll reproducible.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, get_origin, get_type_hints

from harness.protocol import Release, resolve

SCHEMA = 1
# the limits (inclusive) the command line and a replayed plan share: the fleet runs on this one machine
REPLICAS = (1, 16)  # each replica is a server process
AGENTS = (1, 5000)  # each agent is a thread and a connection in this process
SEEDS = (0, 2**63 - 1)  # the seeds matrix.yaml takes
STEP_SEEDS = (0, 2**64 - 1)  # a step's seed is 8 bytes of a hash (``_step_seed``)


class PlanError(ValueError):
    """A plan that is not one this harness could run: where (config, agents[i], step n) and what."""


def rollable(tag: str) -> Release:
    """A release a roll can run on a replica or an agent; ValueError if unknown or without a reinit protocol."""
    release = resolve(tag)  # CatalogueError, a ValueError, for a tag the catalogue cannot place
    if not release.variant.has_route or release.variant.agent is None:
        raise ValueError(f"{tag} is {release.variant.name}: it has no reinit protocol to roll")
    return release


def _within(name: str, value: int, limits: tuple[int, int]) -> None:
    if not limits[0] <= value <= limits[1]:
        raise ValueError(f"{name} must be {limits[0]}..{limits[1]}")


@dataclass(frozen=True)
class RollConfig:
    from_tag: str
    to_tag: str
    replicas: int = 3
    agents: int = 200
    seed: int = 1
    new_agents: float = 0.5  # share of agents running the new release
    regular: float = 0.1  # share of agents in regular (never prebuilt) workspaces
    rollback: bool = False
    max_steps: int = 40
    bursts_per_upgrade: int = 1

    def __post_init__(self) -> None:
        _within("replicas", self.replicas, REPLICAS)
        _within("agents", self.agents, AGENTS)
        _within("seed", self.seed, SEEDS)
        if not (0 <= self.new_agents <= 1 and 0 <= self.regular < 1):
            raise ValueError("new_agents must be in 0..1 and regular in 0..1 (exclusive)")
        # every upgrade is a step, and the claims need one burst at least: 2 × replicas + 2 fits a rollback too
        if self.max_steps < 2 * self.replicas + 2:
            raise ValueError(f"max_steps must be at least {2 * self.replicas + 2} for {self.replicas} replicas")
        _within("bursts_per_upgrade", self.bursts_per_upgrade, (0, self.max_steps))
        if self.from_tag == self.to_tag:
            raise ValueError(f"from and to are the same release ({self.from_tag})")
        rollable(self.from_tag)
        rollable(self.to_tag)


@dataclass(frozen=True)
class AgentSpec:
    id: str
    tag: str
    kind: str  # one of AGENT_KINDS
    home: int  # the replica its connections go to while that replica takes new ones


@dataclass(frozen=True)
class Claim:
    agent: str
    claim_on: int  # replica whose control API claims (any replica: the database is shared)
    complete_on: int  # replica that completes the build, and so publishes in its own format
    cut_in_flight: bool = False  # the proxy cuts this agent's stream as the claim's data frame arrives


@dataclass(frozen=True)
class Step:
    kind: str  # one of STEP_ARGS
    args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def text(self) -> str:
        a = self.args
        if self.kind == "upgrade":
            how = "SIGKILL" if a["crash"] else "graceful stop"
            return f"restart replica r{a['replica']} as {a['tag']} ({how})"
        if self.kind == "drain":
            return f"drain replica r{a['replica']}: new connections of its agents go to r{a['fallback']}"
        if self.kind == "undrain":
            return f"undrain replica r{a['replica']}: its agents' new connections come back"
        if self.kind == "burst":
            cuts = sum(1 for c in a["claims"] if c["cut_in_flight"])
            return f"claim {len(a['claims'])} prebuilds" + (f" ({cuts} cut in flight)" if cuts else "")
        if self.kind == "cut":
            return f"cut the streams of {len(a['agents'])} agents"
        if self.kind == "restart_agents":
            return f"restart {len(a['agents'])} agent processes"
        if self.kind == "listener_gap":
            return (f"kill replica r{a['replica']}'s pubsub listener and claim {len(a['claims'])} prebuilds "
                    "before it reconnects")
        return self.kind

    def claims(self) -> list[Claim]:
        return [Claim(**c) for c in self.args.get("claims", [])]


@dataclass(frozen=True)
class RollPlan:
    config: RollConfig
    agents: list[AgentSpec]
    steps: list[Step]

    def header(self) -> list[str]:
        c = self.config
        kinds = {a.kind for a in self.agents}
        mix = {t: sum(1 for a in self.agents if a.tag == t) for t in (c.from_tag, c.to_tag)}
        return [f"roll plan — seed {c.seed}: {c.replicas} replicas {c.from_tag} → {c.to_tag}"
                f"{f' → {c.from_tag} (rollback)' if c.rollback else ''}",
                f"  {len(self.agents)} agents ({', '.join(f'{n} of {t}' for t, n in mix.items())}); "
                f"{sum(1 for a in self.agents if a.kind == 'regular')} in regular workspaces"
                if "regular" in kinds else f"  {len(self.agents)} agents",
                f"  {len(self.steps)} steps (max {c.max_steps}), {sum(len(s.claims()) for s in self.steps)} claims"]

    def lines(self) -> list[str]:
        return [f"{i:>3}. {s.text()}" for i, s in enumerate(self.steps, 1)]

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, "config": asdict(self.config), "agents": [asdict(a) for a in self.agents],
                           "steps": [asdict(s) for s in self.steps]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> RollPlan:
        """A saved plan, checked for everything the runner and the model rely on; PlanError otherwise."""
        try:
            data = json.loads(text)
        except ValueError as e:
            raise PlanError(f"not valid JSON ({e})") from None
        return parse(data)

    def without(self, *, steps: frozenset[int] = frozenset(), agents: frozenset[str] = frozenset()) -> RollPlan:
        """A smaller plan for shrinking: some steps dropped, some agents (and their claims) gone."""
        kept_steps = []
        for i, s in enumerate(self.steps):
            if i in steps:
                continue
            args = dict(s.args)
            if "claims" in args:
                args["claims"] = [c for c in args["claims"] if c["agent"] not in agents]
                if not args["claims"] and s.kind == "burst":
                    continue
            if "agents" in args:
                args["agents"] = [a for a in args["agents"] if a not in agents]
                if not args["agents"]:
                    continue
            kept_steps.append(Step(s.kind, args, s.seed))
        return RollPlan(self.config, [a for a in self.agents if a.id not in agents], kept_steps)


# -- checking a saved plan ------------------------------------------------------------------------------
AGENT_KINDS = ("prebuild", "regular")
STEP_ARGS: dict[str, dict[str, type]] = {  # each step kind's arguments, as ``generate`` writes them
    "upgrade": {"replica": int, "tag": str, "crash": bool},
    "drain": {"replica": int, "fallback": int},
    "undrain": {"replica": int},
    "burst": {"claims": list},
    "cut": {"agents": list},
    "restart_agents": {"agents": list},
    "listener_gap": {"replica": int, "claims": list},
}
_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list",
               dict: "an object"}


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):  # JSON's true is not 1, and 1 is not true
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


def _object(value: Any, where: str, expected: dict[str, type]) -> dict[str, Any]:
    """A JSON object with exactly these keys, each of its type; PlanError naming ``where`` otherwise."""
    if not isinstance(value, dict):
        raise PlanError(f"{where}: expected an object, got {_show(value)}")
    for key in expected:
        if key not in value:
            raise PlanError(f"{where}: {key} is missing")
    for key, v in value.items():
        if key not in expected:
            raise PlanError(f"{where}: unknown key {key!r} (expected {', '.join(expected)})")
        if not _is(v, expected[key]):
            raise PlanError(f"{where}: {key} must be {_TYPE_NAMES[expected[key]]}, got {_show(v)}")
    return value


@functools.cache
def _field_types(cls: type) -> dict[str, type]:
    hints = get_type_hints(cls)
    return {f.name: get_origin(hints[f.name]) or hints[f.name] for f in fields(cls)}


def _record(value: Any, cls: type, where: str) -> dict[str, Any]:
    """``_object`` with a dataclass's fields and types."""
    return _object(value, where, _field_types(cls))


def parse(data: Any) -> RollPlan:
    """A plan from its JSON data, or PlanError naming the first problem: every field the runner and the
    model rely on is checked — types, the config's limits, releases that can roll, agents, and each
    step's replicas and agents (a prebuild's claim at most once over the plan, as ``generate`` plans it).
    """
    if not isinstance(data, dict):
        raise PlanError(f"not a roll plan (expected an object, got {_show(data)})")
    if not (_is(data.get("schema"), int) and data["schema"] == SCHEMA):
        raise PlanError(f"not a roll plan (schema {_show(data.get('schema'))}, expected {SCHEMA})")
    top = _object(data, "plan", {"schema": int, "config": dict, "agents": list, "steps": list})
    try:
        config = RollConfig(**_record(top["config"], RollConfig, "config"))
    except ValueError as e:
        raise PlanError(f"config: {e}") from None
    n = config.replicas

    def replica(value: int, where: str, what: str = "replica") -> None:
        if not 0 <= value < n:
            raise PlanError(f"{where}: {what} {value} is not one of r0..r{n - 1}")

    def release(tag: str, where: str) -> None:
        try:
            rollable(tag)
        except ValueError as e:
            raise PlanError(f"{where}: {e}") from None

    agents = [AgentSpec(**_record(a, AgentSpec, f"agents[{i}]")) for i, a in enumerate(top["agents"])]
    if not 1 <= len(agents) <= config.agents:  # fewer than config.agents: a shrunk plan
        raise PlanError(f"agents: {len(agents)} agents, expected 1..{config.agents} (config.agents)")
    kinds: dict[str, str] = {}
    for i, a in enumerate(agents):
        where = f"agents[{i}] ({_show(a.id)})"
        if a.id in kinds:
            raise PlanError(f"{where}: the id is given twice")
        if a.kind not in AGENT_KINDS:
            raise PlanError(f"{where}: kind {a.kind!r} is not one of {', '.join(AGENT_KINDS)}")
        replica(a.home, where, "home")
        release(a.tag, where)
        kinds[a.id] = a.kind

    steps = [Step(**_record(s, Step, f"step {i}")) for i, s in enumerate(top["steps"], 1)]
    if not 1 <= len(steps) <= config.max_steps:
        raise PlanError(f"steps: {len(steps)} steps, expected 1..{config.max_steps} (config.max_steps)")
    claimed: set[str] = set()
    for i, step in enumerate(steps, 1):
        where = f"step {i} ({step.kind})"
        if step.kind not in STEP_ARGS:
            raise PlanError(f"step {i}: kind {step.kind!r} is not one of {', '.join(STEP_ARGS)}")
        if not STEP_SEEDS[0] <= step.seed <= STEP_SEEDS[1]:
            raise PlanError(f"{where}: seed must be {STEP_SEEDS[0]}..{STEP_SEEDS[1]}")
        a = _object(step.args, f"{where}: args", STEP_ARGS[step.kind])
        if "replica" in a:
            replica(a["replica"], where)
        if step.kind == "drain":
            replica(a["fallback"], where, "fallback")
            if a["fallback"] == a["replica"]:
                raise PlanError(f"{where}: r{a['replica']} cannot be its own fallback")
        if step.kind == "upgrade":
            release(a["tag"], where)
        if "agents" in a:
            ids = a["agents"]
            if not ids:
                raise PlanError(f"{where}: no agents")
            for agent in ids:
                if not isinstance(agent, str) or agent not in kinds:
                    raise PlanError(f"{where}: agent {_show(agent)} is not one of the plan's agents")
            if len(set(ids)) != len(ids):
                raise PlanError(f"{where}: an agent is listed twice")
        if "claims" in a:
            if step.kind == "burst" and not a["claims"]:
                raise PlanError(f"{where}: no claims")
            for j, c in enumerate(a["claims"], 1):
                claim = Claim(**_record(c, Claim, f"{where}: claim {j}"))
                if kinds.get(claim.agent) != "prebuild":
                    raise PlanError(f"{where}: claim {j}: agent {_show(claim.agent)} is not one of the plan's "
                                    "prebuild agents")
                if claim.agent in claimed:
                    raise PlanError(f"{where}: claim {j}: agent {_show(claim.agent)} is claimed a second time")
                claimed.add(claim.agent)
                replica(claim.claim_on, f"{where}: claim {j}", "claim_on")
                replica(claim.complete_on, f"{where}: claim {j}", "complete_on")
    return RollPlan(config, agents, steps)


# -- generation ----------------------------------------------------------------------------------------
@dataclass
class PlanState:
    config: RollConfig
    agents: list[AgentSpec]
    unclaimed: list[str]
    upgraded: list[int] = field(default_factory=list)

    def prebuild_agents(self) -> list[str]:
        return [a.id for a in self.agents if a.kind == "prebuild"]


@dataclass(frozen=True)
class Perturbation:
    """An optional step: how likely, when it makes sense, and what it generates."""

    name: str
    probability: float
    compatible: Callable[[PlanState], bool]
    generate: Callable[[random.Random, PlanState], Step]


def _some(rng: random.Random, items: list[str], share: float, at_least: int = 1) -> list[str]:
    k = min(len(items), max(at_least, round(len(items) * share)))
    return sorted(rng.sample(items, k)) if k else []


def _claims(rng: random.Random, state: PlanState, count: int, *, cut_share: float = 0.0,
            only: list[str] | None = None) -> list[dict[str, Any]]:
    pool = [a for a in state.unclaimed if only is None or a in only]
    chosen = pool[:count]
    for a in chosen:
        state.unclaimed.remove(a)
    n = state.config.replicas
    return [asdict(Claim(a, rng.randrange(n), rng.randrange(n), rng.random() < cut_share)) for a in chosen]


def _listener_gap(rng: random.Random, state: PlanState) -> Step:
    replica = rng.randrange(state.config.replicas)
    homed = [a.id for a in state.agents if a.home == replica]
    # few claims: they must all be published inside the listener's ~1 s reconnect back-off
    return Step("listener_gap", {"replica": replica, "claims": _claims(rng, state, 5, only=homed)})


PERTURBATIONS = [
    Perturbation("cut_streams", 0.5, lambda s: bool(s.agents),
                 lambda rng, s: Step("cut", {"agents": _some(rng, [a.id for a in s.agents], 0.05)})),
    Perturbation("restart_agents", 0.4, lambda s: bool(s.agents),
                 lambda rng, s: Step("restart_agents", {"agents": _some(rng, [a.id for a in s.agents], 0.03)})),
    Perturbation("listener_gap", 0.3,
                 lambda s: any(a.kind == "prebuild" and a.id in s.unclaimed for a in s.agents), _listener_gap),
]
DRAIN_FIRST = 0.5  # probability an upgrade drains its replica first
CRASH = 0.3  # probability an upgrade SIGKILLs instead of stopping gracefully
CUT_IN_FLIGHT = 0.05  # share of a burst's claims whose data frame is cut in flight


def _step_seed(seed: int, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{n}".encode()).digest()[:8], "big")


def generate(config: RollConfig) -> RollPlan:
    rng = random.Random(config.seed)
    n = config.replicas
    agents = []
    for i in range(config.agents):
        tag = config.to_tag if rng.random() < config.new_agents else config.from_tag
        kind = "regular" if rng.random() < config.regular else "prebuild"
        agents.append(AgentSpec(f"g{i}", tag, kind, i % n))
    state = PlanState(config, agents, [a.id for a in agents if a.kind == "prebuild"])
    rng.shuffle(state.unclaimed)
    order = list(range(n))
    rng.shuffle(order)
    passes = [(order, config.to_tag)] + ([(list(reversed(order)), config.from_tag)] if config.rollback else [])
    upgrades = sum(len(p[0]) for p in passes)
    slots = upgrades * config.bursts_per_upgrade  # places for a burst, before each upgrade
    # Within max_steps: each upgrade is one step and the last burst one more; what is left pays, in this
    # order, for bursts in the slots (one step each), drains (two: drain, undrain), perturbations (one).
    bursts = min(slots, config.max_steps - upgrades - 1) + 1
    spare = config.max_steps - upgrades - bursts
    drain_budget = min(spare, 2 * upgrades)
    budget = spare - drain_budget  # what perturbations may use
    per_burst = max(1, -(-len(state.unclaimed) // bursts))
    steps: list[Step] = []
    slot = 0

    def burst() -> None:
        if state.unclaimed:
            steps.append(Step("burst", {"claims": _claims(rng, state, per_burst, cut_share=CUT_IN_FLIGHT)}))

    for replicas, tag in passes:
        for r in replicas:
            for _ in range(config.bursts_per_upgrade):
                if (slot + 1) * (bursts - 1) // slots > slot * (bursts - 1) // slots:  # spread evenly
                    burst()
                slot += 1
            for p in PERTURBATIONS:
                if budget > 0 and p.compatible(state) and rng.random() < p.probability:
                    steps.append(p.generate(rng, state))
                    budget -= 1
            drained = rng.random() < DRAIN_FIRST and n > 1 and drain_budget >= 2
            if drained:
                drain_budget -= 2
                steps.append(Step("drain", {"replica": r, "fallback": (r + 1) % n}))
            steps.append(Step("upgrade", {"replica": r, "tag": tag, "crash": rng.random() < CRASH}))
            if drained:
                steps.append(Step("undrain", {"replica": r}))
    while state.unclaimed:
        burst()
    assert len(steps) <= config.max_steps, "the budgets keep the plan within max_steps"
    return RollPlan(config, agents, [Step(s.kind, s.args, _step_seed(config.seed, i)) for i, s in enumerate(steps)])
