"""The model of a rolling upgrade: N named replicas changing release, many agents, routed by a table.

Pure; no I/O. ``Routing`` is the load balancer's policy as data — each agent's new connections go to
its home replica unless that one is drained, then to the drain's fallback — and the live roll uses the
same table to pin agents in the fault proxy, so live and model route alike. ``RollModel`` runs a roll
plan's steps on the model (``harness.roll.runner`` drives it and the live fleet through the same verbs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from harness.protocol.catalogue import Release
from harness.protocol.model import AgentRef, Model, PayloadSource, Ws, _Agent


class Routing:
    def __init__(self, homes: dict[str, int]) -> None:
        self.homes = homes
        self.fallback: dict[int, int] = {}  # drained replica → where its agents' new connections go

    def target(self, agent_id: str) -> int:
        r, seen = self.homes[agent_id], set()
        while r in self.fallback and r not in seen:
            seen.add(r)
            r = self.fallback[r]
        return r

    def drain(self, replica: int, fallback: int) -> list[str]:
        """Drain a replica; the agents whose target changed."""
        before = {a: self.target(a) for a in self.homes}
        self.fallback[replica] = fallback
        return [a for a in self.homes if self.target(a) != before[a]]

    def undrain(self, replica: int) -> list[str]:
        before = {a: self.target(a) for a in self.homes}
        self.fallback.pop(replica, None)
        return [a for a in self.homes if self.target(a) != before[a]]


def replica_name(index: int) -> str:
    return f"r{index}"


class RollModel(Model):
    """The roll's verbs on the model; every verb runs to quiescence before it returns."""

    def __init__(self, replicas: int, release: Release, *, seed: int, payloads: PayloadSource,
                 resolve: Callable[[str], Release]) -> None:
        super().__init__({replica_name(i): release for i in range(replicas)}, seed=seed, payloads=payloads)
        self.resolve = resolve
        self.routing = Routing({})
        self.ws_of: dict[str, Ws] = {}
        self.refs: dict[str, AgentRef] = {}
        for name, replica in self.replicas.items():
            self._emit("replica.ready", name=name, tag=replica.release.tag)

    def route(self, agent: _Agent) -> str:
        return replica_name(self.routing.target(agent.ref.id))

    def setup(self, agents: Iterable[tuple[str, str, str, int]]) -> None:
        """(agent id, release tag, "prebuild"|"regular", home replica) for every agent."""
        for agent_id, tag, kind, home in agents:
            self.routing.homes[agent_id] = home
            ws = self.create(kind == "prebuild")
            self.ws_of[agent_id] = ws
            self.refs[agent_id] = self.add_agent(agent_id, ws, self.resolve(tag))
        self.settle()

    def claims(self, claims: Iterable[Any], *, listener_down: int | None = None) -> None:
        if listener_down is not None:
            self.set_listener(replica_name(listener_down), up=False)
        for c in claims:
            ws = self.ws_of[c.agent]
            if c.cut_in_flight:
                self.cut(self.refs[c.agent], at="next_data")
            self.claim_ws(ws)
            self.finish(ws, on=replica_name(c.complete_on))
        if listener_down is not None:
            self.set_listener(replica_name(listener_down), up=True)
        self.settle()

    def mark_quiet(self, agent_ids: Iterable[str]) -> None:
        for a in agent_ids:
            self.mark("quiet", ws=str(self.ws_of[a].id), agent=a)

    def cut_agents(self, agent_ids: Iterable[str]) -> None:
        for a in agent_ids:
            self.cut(self.refs[a])
        self.settle()

    def restart_agents(self, agent_ids: Iterable[str]) -> None:
        for a in agent_ids:
            self.restart_agent(self.refs[a])
        self.settle()

    def drain(self, replica: int, fallback: int) -> None:
        self.routing.drain(replica, fallback)

    def undrain(self, replica: int) -> None:
        self.routing.undrain(replica)

    def upgrade(self, replica: int, tag: str, *, crash: bool) -> None:
        name = replica_name(replica)
        self.stop_replica(name)
        self.start_replica(name, self.resolve(tag))
        self._emit("replica.ready", name=name, tag=tag)
        self.settle()
