"""``LiveRoll``: a roll plan's verbs on real processes — N replicas behind the fault proxy, many agents.

Replicas are named r0..rN-1 and change release as the plan says; the proxy pins each agent to the
replica ``Routing`` names (the same table the model routes by). Claims in a burst go out at a steady
rate from a few client threads; a listener gap terminates the replica's LISTEN backend, publishes its
claims while the replica reconnects (after its 1 s back-off) and checks they all landed in the gap.
Every verb ends settled (``harness.quiescence``): claims never race the next step.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from harness.agent.host import AgentHost
from harness.errors import HarnessError
from harness.faults.proxy import FaultProxy
from harness.fleet import Fleet
from harness.pg.pubsub import RECONNECT_MIN_S
from harness.protocol import Release
from harness.protocol.ids import HEARTBEAT_S
from harness.protocol.rollmodel import Routing, replica_name
from harness.quiescence import Quiescence
from harness.server.client import ControlClient

CLIENTS = 8  # control-API client threads for a burst
CLAIM_RATE = 100.0  # claims per second within a burst: steady, not a stampede


class LiveRoll:
    def __init__(self, dsn: str, log_dir: Path, *, replicas: int, release: Release,
                 resolve: Callable[[str], Release], time_scale: float = 1.0, quiet_s: float = 0.5,
                 settle_timeout_s: float = 180.0) -> None:
        self.resolve, self.time_scale = resolve, time_scale
        self.quiet_s, self.settle_timeout_s = quiet_s, settle_timeout_s
        self.fleet = Fleet(dsn, log_dir, heartbeat_s=HEARTBEAT_S * time_scale,
                           listener_reconnect_s=RECONNECT_MIN_S * time_scale)
        self.dsn = dsn
        self.reps = [self.fleet.add(replica_name(i), release) for i in range(replicas)]
        self.history = self.fleet.history
        self.proxy = FaultProxy({}, log=self.fleet.log("proxy"))
        self.host = AgentHost(self.fleet.log("agents"), time_scale=time_scale)
        self.log = self.fleet.log("harness")
        self.routing = Routing({})
        self.ws_of: dict[str, str] = {}
        self._local = threading.local()
        self.tracker = Quiescence(self.history, 0, belongs=lambda e: True,
                                  running=lambda a: self.host.agents[a].running)

    def start(self) -> LiveRoll:
        self.fleet.start()
        self.proxy.start()
        for rep in self.reps:
            self.proxy.set_upstream(rep.name, "127.0.0.1", rep.port)
        return self

    def close(self) -> None:
        self.host.stop_all()
        self.proxy.stop()
        self.fleet.stop()

    def __enter__(self) -> LiveRoll:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def versions(self) -> str:
        return ", ".join(f"{r.name}={r.release.tag}{'' if r.alive else ' (down)'}" for r in self.reps)

    def _control(self, replica: int) -> ControlClient:
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        if replica not in clients:
            clients[replica] = ControlClient(self.reps[replica].url, self.fleet.admin_token)
        return clients[replica]

    def settle(self, what: str) -> None:
        self.tracker.settle(quiet_s=self.quiet_s, timeout_s=self.settle_timeout_s, what=what)

    def mark(self, label: str, **fields: Any) -> None:
        self.log.emit("harness.mark", label=label, **fields)

    # -- the verbs ------------------------------------------------------------------------------------------
    def setup(self, agents: Iterable[tuple[str, str, str, int]]) -> None:
        specs = list(agents)
        with ThreadPoolExecutor(CLIENTS) as pool:
            made = list(pool.map(lambda s: (self._control(s[3]).create_prebuild() if s[2] == "prebuild"
                                            else self._control(s[3]).create_regular()), specs))
        for (agent_id, tag, _, home), ws in zip(specs, made, strict=True):
            self.routing.homes[agent_id] = home
            self.ws_of[agent_id] = str(ws.id)
            self.host.add(agent_id, url=self.proxy.url, token=ws.agent_token, release=self.resolve(tag),
                          workspace=str(ws.id))
            self.proxy.pin_agent(agent_id, replica_name(home))
            self.tracker.watch(agent_id)
        self.host.start_all()
        self.settle(f"starting {len(specs)} agents")

    def claims(self, claims: Iterable[Any], *, listener_down: int | None = None) -> None:
        claims = list(claims)
        handles = [self.proxy.arm("close", agent=c.agent, trigger="next_data_frame") for c in claims if c.cut_in_flight]
        gap_start = None
        if listener_down is not None:
            gap_start = self._kill_listener(self.reps[listener_down])
        started = time.monotonic()

        def one(i_claim: tuple[int, Any]) -> None:
            i, c = i_claim
            delay = started + i / CLAIM_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the burst to a steady rate
            ws = self.ws_of[c.agent]
            self._control(c.claim_on).claim(uuid.UUID(ws), uuid.uuid4())
            self._control(c.complete_on).complete(uuid.UUID(ws))

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(one, enumerate(claims)))
        if listener_down is not None and gap_start is not None:
            self._await_listener(self.reps[listener_down], gap_start, {self.ws_of[c.agent] for c in claims})
        self.settle(f"a burst of {len(claims)} claims")
        for h in handles:
            self.proxy.disarm(h)

    def _kill_listener(self, rep) -> int:  # type: ignore[no-untyped-def]
        mark = len(self.history)
        pid = ControlClient(rep.url, self.fleet.admin_token).state()["listener_pid"]
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("select pg_terminate_backend(%s)", (pid,))
        self.history.wait_for(lambda e: e["ev"] == "pubsub.listener_lost" and e.get("src") == f"replica:{rep.name}",
                              timeout=30, what=f"{rep.name} to notice its listener is gone", start=mark)
        return mark

    def _await_listener(self, rep, mark: int, workspaces: set[str]) -> None:  # type: ignore[no-untyped-def]
        back = self.history.wait_for(
            lambda e: e["ev"] == "pubsub.reconnected" and e.get("src") == f"replica:{rep.name}",
            timeout=120, what=f"{rep.name}'s listener to reconnect", start=mark)
        late = [e for e in self.history.snapshot(mark) if e["ev"] == "claim.published" and e.get("ws") in workspaces
                and e["m"] > back["m"]]
        if late:
            raise HarnessError(f"{len(late)} claim(s) were published after {rep.name}'s listener came back",
                               hint="the machine is too loaded for the listener-gap step; rerun, or lower --agents")

    def mark_quiet(self, agent_ids: Iterable[str]) -> None:
        for a in agent_ids:
            self.mark("quiet", ws=self.ws_of[a], agent=a)

    def cut_agents(self, agent_ids: Iterable[str]) -> None:
        handles = [self.proxy.arm("close", agent=a, trigger="now") for a in agent_ids]
        self.tracker.step()
        self.settle("cutting streams")
        for h in handles:
            self.proxy.disarm(h)

    def restart_agents(self, agent_ids: Iterable[str]) -> None:
        self.tracker.step()
        for a in agent_ids:
            self.host.agents[a].restart()
        self.settle("restarting agents")

    def _repin(self, agents: list[str]) -> None:
        for a in agents:
            self.proxy.pin_agent(a, replica_name(self.routing.target(a)))

    def drain(self, replica: int, fallback: int) -> None:
        self._repin(self.routing.drain(replica, fallback))

    def undrain(self, replica: int) -> None:
        self._repin(self.routing.undrain(replica))

    def upgrade(self, replica: int, tag: str, *, crash: bool) -> None:
        rep = self.reps[replica]
        self.log.emit("harness.fault", fault="sigkill" if crash else "stop", replica=rep.name)
        rep.kill() if crash else rep.stop()
        rep.start(self.resolve(tag))
        self.tracker.step()
        self.settle(f"restarting {rep.name} as {tag}")

    def events(self) -> list[dict[str, Any]]:
        return self.history.snapshot()
