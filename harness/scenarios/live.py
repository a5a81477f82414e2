"""``LiveWorld``: the scenario vocabulary on real processes — replicas, the fault proxy, simulated agents.

Every verb acts, then waits on events for its effect (never a fixed sleep): an agent's first request
answered, the proxy's ``proxy.fault``, a replica's ``pubsub.listener_lost``. ``settle()`` waits until
every agent of the cell is quiet and nothing happened for the quiet window (``harness.quiescence``).
A cell that does not settle within its timeout fails with the agents' last events, not a hang.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from typing import Literal

import psycopg

from harness.agent.agent import SimAgent
from harness.errors import HarnessError
from harness.events import Event
from harness.fixtures import payload
from harness.plan import Cell
from harness.protocol import Release
from harness.protocol.model import AgentRef, Role, World, Ws
from harness.quiescence import Quiescence
from harness.server.replica import Replica
from harness.stage import Stage

WAIT_S = 30.0  # for a single effect (a request answered, a fault applied): generous on a loaded machine


class LiveWorld(World):
    def __init__(self, stage: Stage, cell: Cell, releases: dict[str, Release], *, seed: int, quiet_s: float,
                 settle_timeout_s: float = 60.0) -> None:
        self.stage, self.cell, self.history = stage, cell, stage.history
        self.roles = {role: releases[role] for role in ("publisher", "stream", "reconnect")}
        self.agent_release = releases["agent"]
        self.quiet_s, self.settle_timeout_s = quiet_s, settle_timeout_s
        self.reps = stage.replicas(list(self.roles.values()))
        self.rng = random.Random(seed)
        self.start_index = len(self.history)
        self.start_m = time.monotonic()  # other processes' events may arrive after ones of this cell
        self.tracker = Quiescence(self.history, self.start_index, belongs=lambda e: self.mine(e) and
                                  e["m"] >= self.start_m, running=lambda a: self.agents[a].running)
        self.agents: dict[str, SimAgent] = {}
        self.workspaces: dict[str, Ws] = {}
        self._armed: list[int] = []
        self._hooked: set[str] = set()
        self._disturbed: dict[str, int] = {}
        self._listener_lost: dict[str, int] = {}
        self._published_at = self.start_index  # where the newest completion's publish may be heard from

    # -- bookkeeping -------------------------------------------------------------------------------------
    def _rep(self, role: Role) -> Replica:
        return self.reps[self.roles[role].tag]

    def _step(self, text: str, **fields: object) -> int:
        mark = len(self.history)
        self.tracker.step()
        self.stage.harness_log.emit("harness.step", cell=self.cell.id, text=text, **fields)
        return mark

    def _wait(self, pred, what: str, *, start: int, timeout: float = WAIT_S) -> Event:  # type: ignore[no-untyped-def]
        return self.history.wait_for(pred, timeout=timeout, what=what, start=start,
                                     hint=f"cell {self.cell.id}; the run's JSONL logs show what happened instead")

    def mine(self, e: Event) -> bool:
        """Whether an event belongs to this cell's story."""
        if e.get("agent") in self.agents or e.get("ws") in self.workspaces or e.get("cell") == self.cell.id:
            return True
        if str(e.get("conn", "")).split("#", 1)[0] in self.agents:
            return True
        src = str(e.get("src", ""))
        return src.removeprefix("replica:") in self.reps and str(e.get("ev", "")).startswith(
            ("pubsub.listener", "pubsub.reconnected", "replica."))

    def events(self) -> list[Event]:
        """This cell's events in time order (from every process)."""
        evs = [e for e in self.history.snapshot(self.start_index) if self.mine(e) and e["m"] >= self.start_m]
        return sorted(evs, key=lambda e: e["m"])

    # -- workspaces and builds ---------------------------------------------------------------------------
    def _workspace(self, prebuild: bool) -> Ws:
        control = self._rep("stream").control
        w = control.create_prebuild() if prebuild else control.create_regular()
        ws = Ws(w.id, w.agent_token, w.owner_id)
        self.workspaces[str(w.id)] = ws
        self._step(f"create a {'prebuild' if prebuild else 'regular workspace'}", ws=str(w.id))
        return ws

    def prebuild(self) -> Ws:
        return self._workspace(True)

    def regular_workspace(self) -> Ws:
        return self._workspace(False)

    def claim(self, ws: Ws, *, create_build: bool = True) -> None:
        owner = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        self._step(f"claim the prebuild for owner {owner}", ws=str(ws.id))
        self._rep("publisher").control.claim(ws.id, owner, create_build=create_build)
        ws.owner = owner

    def complete(self, ws: Ws, *, ok: bool = True, publish: bool = True, error: str = "") -> None:
        rep = self._rep("publisher")
        self._published_at = self._step(f"complete the latest build on {rep.name} as "
                                        f"{'succeeded' if ok else 'failed'}{'' if publish else ' without publishing'}",
                                        ws=str(ws.id))
        rep.control.complete(ws.id, ok=ok, error=error, publish=publish)

    def user_build(self, ws: Ws) -> None:
        rep = self._rep("publisher")
        self._step(f"run a later build by the owner on {rep.name}", ws=str(ws.id))
        number = rep.control.start_build(ws.id, ws.owner, stage="NONE")
        rep.control.complete(ws.id, build=number)

    def inject(self, ws: Ws, name: str) -> None:
        rep = self._rep("publisher")
        self._step(f"publish the {name} payload on {rep.name}", ws=str(ws.id))
        rep.control.publish_raw(ws.id, payload(name, ws.id, ws.owner), why=f"injected {name}")

    def republish(self, ws: Ws) -> None:
        rep = self._rep("publisher")
        data = rep.release.variant.publisher.payload(ws.id, ws.owner)
        self._step(f"publish the claim again on {rep.name}", ws=str(ws.id))
        if data is not None:
            rep.control.publish_raw(ws.id, data, why="published again")

    # -- agents ------------------------------------------------------------------------------------------
    def start_agent(self, ws: Ws) -> AgentRef:
        agent_id = self.stage.next_id("a")
        stream, reconnect = self._rep("stream"), self._rep("reconnect")
        sim = SimAgent(agent_id, url=self.stage.proxy.url, token=ws.token, release=self.agent_release,
                       log=self.stage.agents_log, time_scale=self.stage.time_scale, workspace=str(ws.id))
        self.agents[agent_id] = sim
        self.tracker.watch(agent_id)
        self.stage.proxy.pin_agent(agent_id, stream.name)
        mark = self._step(f"start agent {agent_id} ({self.agent_release.tag}) on {stream.name}; later connections "
                          f"go to {reconnect.name}", agent=agent_id, ws=str(ws.id))
        self._disturbed[agent_id] = mark
        sim.start()
        self._wait(lambda e: e["ev"] == "proxy.route" and e.get("agent") == agent_id,
                   f"agent {agent_id}'s first connection to be routed", start=mark)
        self.stage.proxy.pin_agent(agent_id, reconnect.name)
        ref = AgentRef(agent_id, ws)
        self.await_decision(ref)
        return ref

    def _await_server(self, agent: AgentRef, events: tuple[str, ...], what: str) -> None:
        since, sim = self._disturbed[agent.id], self.agents[agent.id]

        def answered(evs: list[Event]) -> bool:
            if not sim.running:
                return True
            reqs = [e for e in evs if e["ev"] == "agent.request" and e.get("agent") == agent.id]
            if not reqs:
                return False
            conn = reqs[-1]["conn"]
            return any(e.get("conn") == conn and (e["ev"] in events or e["ev"] == "reinit.status" or
                                                  e["ev"] in ("agent.error", "agent.stopped")) for e in evs)

        self.history.wait_until(answered, timeout=WAIT_S, what=f"agent {agent.id}'s newest request to be {what}",
                                start=since)

    def await_decision(self, agent: AgentRef) -> None:
        self._await_server(agent, ("reinit.decision",), "decided")

    def await_checked(self, agent: AgentRef) -> None:
        self._await_server(agent, ("reinit.check_delayed", "reinit.decision"), "decided or its check delayed")

    def await_heard(self, agent: AgentRef) -> None:
        since, sim = self._published_at, self.agents[agent.id]

        def heard(evs: list[Event]) -> bool:
            if not sim.running or any(e["ev"] in ("reinit.heard", "reinit.dropped") and e.get("agent") == agent.id
                                      for e in evs):
                return True
            reqs = [e for e in self.history.snapshot(self._disturbed[agent.id])
                    if e["ev"] == "agent.request" and e.get("agent") == agent.id]
            conn = reqs[-1]["conn"] if reqs else None  # no subscription to hear it: the newest request failed
            return conn is not None and any(e.get("conn") == conn and e["ev"] in ("agent.error", "agent.stopped")
                                            for e in evs)

        self.history.wait_until(heard, timeout=WAIT_S, start=since,
                                what=f"a subscription of agent {agent.id}'s to hear the publish",
                                hint=f"cell {self.cell.id}; the run's JSONL logs show what happened instead")

    def cut(self, agent: AgentRef, *, at: Literal["now", "next_data"] = "now") -> None:
        proxy = self.stage.proxy
        if at == "next_data":
            self._step(f"arm: cut agent {agent.id}'s stream when its next data frame arrives", agent=agent.id)
            self._armed.append(proxy.arm("close", agent=agent.id, trigger="next_data_frame"))
            return
        mark = self._step(f"cut agent {agent.id}'s stream now", agent=agent.id)
        self._disturbed[agent.id] = mark
        if not any(c["open"] for c in proxy.connections(agent.id)):
            return  # no stream to cut (the agent stopped polling)
        handle = proxy.arm("close", agent=agent.id, trigger="now")
        self._armed.append(handle)
        self._wait(lambda e: e["ev"] == "proxy.fault" and e.get("agent") == agent.id,
                   f"the proxy to cut agent {agent.id}", start=mark)

    def restart_agent(self, agent: AgentRef) -> None:
        mark = self._step(f"restart agent {agent.id}'s process (lastOwnerID is lost)", agent=agent.id)
        self._disturbed[agent.id] = mark
        self.agents[agent.id].restart()

    # -- replicas -----------------------------------------------------------------------------------------
    def kill_replica(self, role: Role) -> None:
        rep = self._rep(role)
        self._step(f"SIGKILL replica {rep.name} ({role})", replica=rep.name)
        self.stage.harness_log.emit("harness.fault", cell=self.cell.id, fault="sigkill", replica=rep.name)
        rep.kill()
        rep.start()
        mark = self._step(f"replica {rep.name} is back on port {rep.port}", replica=rep.name)
        for agent_id in self.agents:
            self._disturbed[agent_id] = mark

    def kill_listener(self, role: Role) -> None:
        rep = self._rep(role)
        pid = rep.control.state()["listener_pid"]
        mark = self._step(f"terminate {rep.name}'s pubsub listener backend (pid {pid})", replica=rep.name)
        with psycopg.connect(self.stage.dsn, autocommit=True) as conn:
            conn.execute("select pg_terminate_backend(%s)", (pid,))
        self._wait(lambda e: e["ev"] == "pubsub.listener_lost" and e.get("src") == f"replica:{rep.name}",
                   f"{rep.name} to notice its listener is gone", start=mark)
        self._listener_lost[rep.name] = mark

    def listener_back(self, role: Role) -> None:
        rep = self._rep(role)
        self._wait(lambda e: e["ev"] == "pubsub.reconnected" and e.get("src") == f"replica:{rep.name}",
                   f"{rep.name}'s listener to reconnect", start=self._listener_lost.get(rep.name, self.start_index))
        self._step(f"{rep.name}'s pubsub listener is back", replica=rep.name)

    def delay_check(self, role: Role, ms: int) -> None:
        rep = self._rep(role)
        self._step(f"delay {rep.name}'s durable check by {ms} ms" if ms else f"stop delaying {rep.name}'s check",
                   replica=rep.name)
        rep.control.set_hooks(durable_check_delay_ms=ms)
        (self._hooked.add if ms else self._hooked.discard)(rep.name)

    def mark(self, label: str) -> None:
        self.stage.harness_log.emit("harness.mark", cell=self.cell.id, label=label)

    def settle(self) -> None:
        self.tracker.settle(quiet_s=self.quiet_s, timeout_s=self.settle_timeout_s, what=f"cell {self.cell.id}")

    def close(self) -> None:
        """Stop this cell's agents, disarm its faults, clear its hooks: the stage is clean for the next cell."""
        for sim in self.agents.values():
            sim.interrupt("cell finished")
        for sim in self.agents.values():
            sim.join()
        for handle in self._armed:
            self.stage.proxy.disarm(handle)
        for name in self._hooked:
            # a replica that is gone or wedged gets restarted by Stage.heal(), its hooks cleared
            with contextlib.suppress(HarnessError):
                self.reps[name].control.set_hooks(durable_check_delay_ms=0)
        for agent_id in self.agents:
            self.stage.proxy.pin_agent(agent_id, None)
