"""The scenario vocabulary (``World``) and a pure model of it that predicts what a cell will show.

Pure; no I/O; no clocks. A scenario is a story told to a World: create a prebuild, start an agent,
claim, cut the stream at the next data frame, settle. ``harness.scenarios.live`` tells it to real
processes; ``ModelWorld`` tells it to the rules of this package alone — the catalogue's records, the
codecs, ``decide`` and the agent rules — and writes the same events the live components write, so the
same oracle judges both. A live result that differs from the model's is a SURPRISE.

The model is a synchronous machine: every verb runs all its consequences to completion (an agent that
reinitialises reconnects at once; a seeded event arrives at once) before the verb returns. Topology
is the live fleet's: one replica per distinct release in the cell, so roles that share a release
share a replica. Timing does not exist here: back-off is skipped, and an agent whose next attempt
would fail the same way forever (a 404 from V0, a 409 it does not stop on, a dead replica) is parked
until something in the world changes.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.protocol.catalogue import Release
from harness.protocol.codec import ClaimEvent
from harness.protocol.gojson import GoJSONError
from harness.protocol.ids import PREBUILDS_SYSTEM_USER, ZERO
from harness.protocol.rules import AgentAction, Build, DecisionKind, WorkspaceState, decide, durable_branch

Role = Literal["publisher", "stream", "reconnect"]
PayloadSource = Callable[[str, uuid.UUID, uuid.UUID], bytes]


@dataclass
class Ws:
    """A workspace as a story holds it."""

    id: uuid.UUID
    token: str
    owner: uuid.UUID = PREBUILDS_SYSTEM_USER


@dataclass
class AgentRef:
    id: str
    ws: Ws


class World:
    """What a scenario can do. Every method returns once its effect is in place (never after a fixed sleep)."""

    def prebuild(self) -> Ws: ...
    def regular_workspace(self) -> Ws: ...
    def start_agent(self, ws: Ws) -> AgentRef:
        """An agent of the cell's release; first connection to the stream replica, every later one to the
        reconnect replica. Returns when the server has answered that first request."""
    def claim(self, ws: Ws, *, create_build: bool = True) -> None:
        """A fresh user claims the prebuild: owner changes, a pending CLAIM build starts."""
    def complete(self, ws: Ws, *, ok: bool = True, publish: bool = True, error: str = "") -> None:
        """The latest build's job finishes on the publisher replica (which publishes a successful claim)."""
    def user_build(self, ws: Ws) -> None:
        """The owner runs a later build to completion (no claim event: stage NONE)."""
    def inject(self, ws: Ws, payload: str) -> None:
        """Publish a named raw payload (fixtures/payloads.json) on the workspace's channel."""
    def republish(self, ws: Ws) -> None:
        """The publisher replica publishes the same claim again, in its own format."""
    def cut(self, agent: AgentRef, *, at: Literal["now", "next_data"] = "now") -> None:
        """Close the agent's stream now, or when the next data frame starts arriving (lost in flight)."""
    def restart_agent(self, agent: AgentRef) -> None:
        """Reboot the agent: a new logical process, lastOwnerID forgotten."""
    def kill_replica(self, role: Role) -> None:
        """SIGKILL the replica in this role, then start it again; returns when it is back."""
    def kill_listener(self, role: Role) -> None:
        """Terminate the replica's LISTEN backend; returns once the replica has noticed."""
    def listener_back(self, role: Role) -> None:
        """Wait until the replica's pubsub listener has reconnected."""
    def delay_check(self, role: Role, ms: int) -> None:
        """Delay the replica's later durable checks by ``ms``; setting it again (0: clear) releases the
        checks waiting now."""
    def await_decision(self, agent: AgentRef) -> None:
        """Wait until the server has decided on the agent's newest request."""
    def await_checked(self, agent: AgentRef) -> None:
        """Wait until the server has subscribed for the agent's newest request and then either decided or
        begun a delayed durable check."""
    def await_heard(self, agent: AgentRef) -> None:
        """Wait until the subscription of the agent's newest request has heard (or dropped) a publish."""
    def settle(self) -> None:
        """Wait until nothing more will happen without a further step."""
    def mark(self, label: str) -> None:
        """Put a label on the timeline (``consumed`` starts the QUIET window)."""


# -- the model -------------------------------------------------------------------------------------
@dataclass
class _Replica:
    name: str
    release: Release
    alive: bool = True
    listener_up: bool = True
    check_delayed: bool = False
    subs: dict[uuid.UUID, list[_Conn]] = field(default_factory=dict)


@dataclass
class _Conn:
    id: str
    agent: _Agent
    replica: _Replica
    undecided: bool = False  # subscribed, durable check delayed: events wait in the hand-off channel
    held: list[ClaimEvent] = field(default_factory=list)


@dataclass
class _Agent:
    ref: AgentRef
    release: Release
    life: int = 1
    seq: int = 0
    last_owner: uuid.UUID = ZERO
    generation: int = 0
    polling: bool = True
    connections: int = 0
    conn: _Conn | None = None
    cut_next_data: bool = False
    parked: bool = False  # the next attempt would fail like the last: wait for the world to change


@dataclass
class _Workspace:
    ws: Ws
    builds: list[Build]


class Model:
    """The machine itself, replicas by name. Subclasses decide where an agent's next connection goes."""

    def __init__(self, replicas: dict[str, Release], *, seed: int, payloads: PayloadSource) -> None:
        self.payloads = payloads
        self.rng = random.Random(seed)
        self.events: list[dict[str, Any]] = []
        self.replicas = {name: _Replica(name, release) for name, release in replicas.items()}
        self.workspaces: dict[uuid.UUID, _Workspace] = {}
        self.agents: dict[str, _Agent] = {}
        self._queue: deque[Callable[[], None]] = deque()

    def route(self, agent: _Agent) -> str:
        """The replica the agent's next connection reaches."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------------
    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _emit(self, ev: str, **fields: Any) -> None:
        self.events.append({"m": float(len(self.events)), "src": "model", "ev": ev, **fields})

    def _run(self) -> None:
        while self._queue:
            self._queue.popleft()()

    def world_changed(self) -> None:
        """Something changed: parked agents try again."""
        for agent in self.agents.values():
            if agent.parked and agent.polling:
                agent.parked = False
                self._queue.append(lambda a=agent: self._connect(a))
        self._run()

    def _state(self, ws_id: uuid.UUID) -> WorkspaceState:
        w = self.workspaces[ws_id]
        return WorkspaceState(ws_id, w.ws.owner, w.builds[0], w.builds[-1])

    # -- workspaces and builds ------------------------------------------------------------------------
    def create(self, prebuild: bool) -> Ws:
        ws = Ws(self._uuid(), str(self._uuid()), PREBUILDS_SYSTEM_USER if prebuild else self._uuid())
        self.workspaces[ws.id] = _Workspace(ws, [Build(1, ws.owner, "succeeded", "CREATE")])
        self._emit("control.workspace_created", ws=str(ws.id), kind="prebuild" if prebuild else "regular")
        return ws

    def claim_ws(self, ws: Ws, *, create_build: bool = True) -> None:
        w = self.workspaces[ws.id]
        ws.owner = self._uuid()
        number = None
        if create_build:
            number = len(w.builds) + 1
            w.builds.append(Build(number, ws.owner, "pending", "CLAIM"))
        self._emit("control.claimed", ws=str(ws.id), owner=str(ws.owner), build=number)
        self.world_changed()

    def finish(self, ws: Ws, *, on: str, ok: bool = True, error: str = "", publish: bool = True) -> None:
        """The latest build's job completes on replica ``on``, which publishes a successful claim build."""
        w = self.workspaces[ws.id]
        latest = w.builds[-1]
        done = Build(latest.number, latest.initiator, "succeeded" if ok else "failed", latest.stage, error)
        w.builds[-1] = done
        self._emit("build.completed", ws=str(ws.id), build=done.number, status=done.status, stage=done.stage, on=on)
        if done.stage == "CLAIM" and ok and publish:
            payload = self.replicas[on].release.variant.publisher.payload(ws.id, ws.owner)
            if payload is not None:
                self.publish(ws, payload, why="claim build succeeded")
        self.world_changed()

    def start_build(self, ws: Ws) -> None:
        w = self.workspaces[ws.id]
        w.builds.append(Build(len(w.builds) + 1, ws.owner, "pending", "NONE"))

    def publish(self, ws: Ws, payload: bytes, *, why: str) -> None:
        self._emit("claim.published", ws=str(ws.id), why=why, size=len(payload))
        for replica in self.replicas.values():
            if not (replica.alive and replica.listener_up):
                continue
            variant = replica.release.variant
            for conn in list(replica.subs.get(ws.id, ())):
                heard = variant.listener.hear(ws.id, payload)
                if heard.event is None:
                    self._emit("reinit.dropped", ws=str(ws.id), conn=conn.id, why=heard.error)
                elif conn.undecided:  # the handler is still in its delayed check
                    if variant.listener_drops_when_full and len(conn.held) >= variant.listener_buffer:
                        self._emit("reinit.dropped", ws=str(ws.id), conn=conn.id, why="one-slot buffer full")
                    else:
                        conn.held.append(heard.event)
                else:
                    self._queue.append(lambda c=conn, e=heard.event: self._deliver(c, e))
        self._run()

    # -- agents ------------------------------------------------------------------------------------------
    def add_agent(self, agent_id: str, ws: Ws, release: Release) -> AgentRef:
        ref = AgentRef(agent_id, ws)
        agent = _Agent(ref, release)
        self.agents[agent_id] = agent
        self._emit("agent.start", agent=agent_id, ws=str(ws.id), life=1)
        self._queue.append(lambda: self._connect(agent))
        self._run()
        return ref
    def _rule(self, agent: _Agent):  # type: ignore[no-untyped-def]
        rule = agent.release.variant.agent
        assert rule is not None
        return rule

    def _connect(self, agent: _Agent) -> None:
        if not agent.polling or agent.conn is not None:
            return
        rule = self._rule(agent)
        replica = self.replicas[self.route(agent)]
        agent.connections += 1
        agent.seq += 1
        conn_id = f"{agent.ref.id}#{agent.life}.{agent.seq}"
        ws = agent.ref.ws
        self._emit("agent.request", agent=agent.ref.id, ws=str(ws.id), conn=conn_id, wait=rule.sends_wait)
        self._emit("proxy.route", agent=agent.ref.id, conn=conn_id, upstream=replica.name)
        if not replica.alive:
            self._error(agent, conn_id, "connection refused", park=True)
            return
        variant = replica.release.variant
        if not variant.has_route:
            self._status(agent, conn_id, 404)
            return
        conn = _Conn(conn_id, agent, replica)
        agent.conn = conn
        replica.subs.setdefault(ws.id, []).append(conn)
        self._emit("reinit.subscribed", agent=agent.ref.id, ws=str(ws.id), conn=conn_id)
        wait = "true" if rule.sends_wait else None
        if replica.check_delayed and durable_branch(variant.handler, wait, ws.owner) is None:
            conn.undecided = True  # decided at the next settle: whatever is published meanwhile is held
            return
        self._decide(conn)

    def _decide(self, conn: _Conn) -> None:
        agent, replica, ws = conn.agent, conn.replica, conn.agent.ref.ws
        conn.undecided, held, conn.held = False, conn.held, []
        variant = replica.release.variant
        if not variant.handler.durable:
            self._emit("reinit.decision", agent=agent.ref.id, ws=str(ws.id), conn=conn.id, decision="wait")
            self._emit("agent.status", agent=agent.ref.id, ws=str(ws.id), conn=conn.id, status=200)
            return
        wait = "true" if self._rule(agent).sends_wait else None
        decision = decide(variant.handler, wait, self._state(ws.id))
        self._emit("reinit.decision", agent=agent.ref.id, ws=str(ws.id), conn=conn.id, decision=decision.kind.value)
        if decision.kind is DecisionKind.CONFLICT:
            self._close(conn)
            self._status(agent, conn.id, 409)
            return
        self._emit("agent.status", agent=agent.ref.id, ws=str(ws.id), conn=conn.id, status=200)
        if decision.kind is DecisionKind.SEED:
            replica.subs[ws.id].remove(conn)  # the subscription, and anything it held, is dropped
            assert decision.event is not None
            self._queue.append(lambda: self._deliver(conn, decision.event))  # type: ignore[arg-type]
            return
        for event in held:
            self._queue.append(lambda e=event: self._deliver(conn, e))

    def _status(self, agent: _Agent, conn_id: str, status: int) -> None:
        ws = str(agent.ref.ws.id)
        self._emit("agent.status", agent=agent.ref.id, ws=ws, conn=conn_id, status=status)
        if self._rule(agent).stops_on(status):
            self._stop(agent, conn_id, str(status))
        else:
            self._error(agent, conn_id, f"HTTP {status}", park=True)

    def _error(self, agent: _Agent, conn_id: str, error: str, *, park: bool = False) -> None:
        self._emit("agent.error", agent=agent.ref.id, ws=str(agent.ref.ws.id), conn=conn_id, error=error)
        if park:
            agent.parked = True  # the same attempt would fail the same way until the world changes
        else:
            self._queue.append(lambda: self._connect(agent))

    def _stop(self, agent: _Agent, conn_id: str, why: str) -> None:
        agent.polling = False
        self._emit("agent.stopped", agent=agent.ref.id, ws=str(agent.ref.ws.id), conn=conn_id, why=why)

    def _close(self, conn: _Conn) -> None:
        subs = conn.replica.subs.get(conn.agent.ref.ws.id, [])
        if conn in subs:
            subs.remove(conn)
        if conn.agent.conn is conn:
            conn.agent.conn = None

    def _deliver(self, conn: _Conn, event: ClaimEvent) -> None:
        agent = conn.agent
        if agent.conn is not conn:
            return  # the connection went away before the frame
        data = conn.replica.release.variant.sse_codec.encode(event)
        self._emit("sse.frame", agent=agent.ref.id, ws=str(agent.ref.ws.id), conn=conn.id, type="data")
        self._close(conn)
        if agent.cut_next_data:
            agent.cut_next_data = False
            self._emit("proxy.fault", agent=agent.ref.id, conn=conn.id, fault="close", trigger="next_data_frame")
            self._error(agent, conn.id, "stream ended (EOF)")
            return
        rule = self._rule(agent)
        try:
            got = rule.codec.decode(data)
        except GoJSONError as e:
            self._error(agent, conn.id, f"decode data event: {e}")
            return
        ws = str(agent.ref.ws.id)
        self._emit("agent.event", agent=agent.ref.id, ws=ws, conn=conn.id, decoded_ws=str(got.workspace_id),
                   owner=str(got.owner_id), reason=got.reason)
        action, agent.last_owner = rule.on_event(agent.last_owner, got)
        if action is AgentAction.DUPLICATE:
            self._emit("agent.duplicate", agent=agent.ref.id, ws=ws, conn=conn.id, owner=str(got.owner_id))
            self._stop(agent, conn.id, "duplicate")
            return
        agent.generation += 1
        self._emit("agent.reinit", agent=agent.ref.id, ws=ws, conn=conn.id, generation=agent.generation,
                   owner=str(got.owner_id), decoded_ws=str(got.workspace_id), life=agent.life)
        self._queue.append(lambda: self._connect(agent))

    def cut(self, agent: AgentRef, *, at: Literal["now", "next_data"] = "now") -> None:
        a = self.agents[agent.id]
        if at == "next_data":
            a.cut_next_data = True
            return
        if a.conn is not None:
            conn = a.conn
            self._close(conn)
            self._emit("proxy.fault", agent=agent.id, conn=conn.id, fault="close", trigger="now")
            self._error(a, conn.id, "stream ended (EOF)")
            self._run()

    def restart_agent(self, agent: AgentRef) -> None:
        a = self.agents[agent.id]
        if a.conn is not None:
            self._close(a.conn)
        a.life += 1
        a.seq = 0
        a.last_owner, a.polling, a.parked, a.cut_next_data = ZERO, True, False, False
        self._emit("agent.restart", agent=agent.id, ws=str(agent.ws.id), life=a.life)
        self._queue.append(lambda: self._connect(a))
        self._run()

    # -- replicas ------------------------------------------------------------------------------------------
    def stop_replica(self, name: str) -> None:
        """The replica goes away (crash or graceful stop): its streams end, their agents reconnect elsewhere."""
        replica = self.replicas[name]
        replica.alive = False
        self._emit("harness.fault", fault="replica_down", replica=name)
        dropped = [c for conns in replica.subs.values() for c in conns]
        for agent in self.agents.values():
            if agent.conn is not None and agent.conn.replica is replica and agent.conn not in dropped:
                dropped.append(agent.conn)  # a seeded stream: no subscription left, still open
        replica.subs.clear()
        for conn in dropped:
            self._close(conn)
            self._error(conn.agent, conn.id, "stream broke: connection reset")
        self._run()

    def start_replica(self, name: str, release: Release | None = None) -> None:
        replica = self.replicas[name]
        replica.release = release or replica.release
        replica.alive, replica.listener_up, replica.check_delayed = True, True, False
        self.world_changed()

    def set_listener(self, name: str, *, up: bool) -> None:
        self.replicas[name].listener_up = up

    def set_check_delay(self, name: str, *, delayed: bool) -> None:
        """Later durable checks on the replica wait: what is published meanwhile is held, and the check sees
        the state as it is when it is released — by clearing the delay, an awaited decision, or a settle
        (the live delay runs out or is cleared)."""
        self.replicas[name].check_delayed = delayed
        if not delayed:
            self.decide_held(only=name)

    def decide_held(self, only: str | None = None) -> None:
        for replica in self.replicas.values():
            if only is not None and replica.name != only:
                continue
            for conns in list(replica.subs.values()):
                for conn in list(conns):
                    if conn.undecided:
                        self._decide(conn)
        self._run()

    def settle(self) -> None:
        self.decide_held()

    def mark(self, label: str, **fields: Any) -> None:
        self._emit("harness.mark", label=label, **fields)


class ModelWorld(Model, World):
    """The cell's World on the model: roles map to one replica per distinct release."""

    def __init__(self, roles: dict[str, Release], agent: Release, *, seed: int, payloads: PayloadSource) -> None:
        replicas: dict[str, Release] = {}
        for release in roles.values():
            replicas.setdefault(release.tag, release)
        super().__init__(replicas, seed=seed, payloads=payloads)
        self.roles, self.agent_release = roles, agent

    def _name(self, role: str) -> str:
        return self.roles[role].tag

    def route(self, agent: _Agent) -> str:
        return self._name("stream" if agent.connections == 0 else "reconnect")

    def prebuild(self) -> Ws:
        return self.create(True)

    def regular_workspace(self) -> Ws:
        return self.create(False)

    def start_agent(self, ws: Ws) -> AgentRef:
        return self.add_agent(f"m{len(self.agents) + 1}", ws, self.agent_release)

    def claim(self, ws: Ws, *, create_build: bool = True) -> None:
        self.claim_ws(ws, create_build=create_build)

    def complete(self, ws: Ws, *, ok: bool = True, publish: bool = True, error: str = "") -> None:
        self.finish(ws, on=self._name("publisher"), ok=ok, error=error, publish=publish)

    def user_build(self, ws: Ws) -> None:
        self.start_build(ws)
        self.finish(ws, on=self._name("publisher"))

    def inject(self, ws: Ws, payload: str) -> None:
        self.publish(ws, self.payloads(payload, ws.id, ws.owner), why=f"injected {payload}")
        self.world_changed()

    def republish(self, ws: Ws) -> None:
        payload = self.roles["publisher"].variant.publisher.payload(ws.id, ws.owner)
        if payload is not None:
            self.publish(ws, payload, why="published again")
        self.world_changed()

    def kill_replica(self, role: Role) -> None:
        self.stop_replica(self._name(role))
        self.start_replica(self._name(role))

    def kill_listener(self, role: Role) -> None:
        self.set_listener(self._name(role), up=False)

    def listener_back(self, role: Role) -> None:
        self.set_listener(self._name(role), up=True)

    def delay_check(self, role: Role, ms: int) -> None:
        self.set_check_delay(self._name(role), delayed=ms > 0)

    def await_decision(self, agent: AgentRef) -> None:
        self.decide_held()

    def await_checked(self, agent: AgentRef) -> None:
        self._run()

    def await_heard(self, agent: AgentRef) -> None:
        self._run()
