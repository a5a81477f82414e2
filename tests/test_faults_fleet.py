"""Replica and pubsub faults through the fleet: real replicas, the real proxy, real agents."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from harness.agent.host import AgentHost
from harness.events import where
from harness.faults.proxy import FaultProxy
from harness.fleet import Fleet
from harness.protocol import resolve

WAIT = 20


@pytest.fixture()
def fleet(pg_dsn, tmp_path):
    with Fleet(pg_dsn, tmp_path, heartbeat_s=15) as f:
        f.add("a", resolve("v2.31.14"))
        f.add("b", resolve("v2.31.14"))
        f.start()
        with FaultProxy({n: ("127.0.0.1", r.port) for n, r in f.replicas.items()}, log=f.log("proxy")) as proxy:
            yield f, proxy


def test_a_sigkilled_replicas_agents_reconnect_elsewhere(fleet):
    f, proxy = fleet
    a = f.replicas["a"]
    proxy.route_pin("a")
    host = AgentHost(f.log("agents"))
    for i in range(5):
        ws = a.control.create_prebuild()
        host.add(f"k{i}", url=proxy.url, token=ws.agent_token, release=resolve("v2.31.14"), workspace=str(ws.id))
    with host:
        host.start_all()
        f.history.wait_until(lambda evs: len([e for e in evs if e["ev"] == "reinit.subscribed"
                                              and e["src"] == "replica:a"]) >= 5, timeout=WAIT, what="5 streams on a")
        proxy.route_round_robin()  # new connections may go anywhere that answers
        mark = len(f.history)
        a.kill()
        f.history.wait_until(lambda evs: len({e["agent"] for e in evs if e["ev"] == "reinit.subscribed"
                                              and e["src"] == "replica:b"}) >= 5, timeout=WAIT,
                             what="all 5 agents subscribed on b", start=mark)
    routes = [e for e in f.history.select(where(ev="proxy.route"), mark) if e.get("upstream") == "b"]
    assert {e["agent"] for e in routes} == {f"k{i}" for i in range(5)}
    assert not a.alive


def test_listener_termination_loses_the_gap_then_delivers(fleet):
    f, proxy = fleet
    a, b = f.replicas["a"], f.replicas["b"]
    proxy.route_pin("a")
    ws = a.control.create_prebuild()
    host = AgentHost(f.log("agents"))
    host.add("g", url=proxy.url, token=ws.agent_token, release=resolve("v2.31.14"), workspace=str(ws.id))
    with host:
        host.start_all()
        f.history.wait_for(where(ev="reinit.subscribed", src="replica:a"), timeout=WAIT, what="the stream on a")
        mark = len(f.history)
        with psycopg.connect(f.dsn, autocommit=True) as conn:
            conn.execute("select pg_terminate_backend(%s)", (a.control.state()["listener_pid"],))
        f.history.wait_for(where(ev="pubsub.listener_lost", src="replica:a"), timeout=WAIT, what="the loss",
                           start=mark)
        b.control.publish_raw(ws.id, b"in the gap")  # from the other replica: its own listener is fine
        f.history.wait_for(where(ev="pubsub.reconnected", src="replica:a"), timeout=WAIT, what="the reconnect",
                           start=mark)
        b.control.publish_raw(ws.id, b"after the gap")
        got = f.history.wait_for(where(ev="agent.reinit", agent="g"), timeout=WAIT, what="a reinit", start=mark)
    heard = [e for e in f.history.select(where(ev="reinit.heard"), mark) if e["ws"] == str(ws.id)]
    assert [e["event"]["reason"] for e in heard] == ["after the gap"]  # the gap's notification is gone
    assert got["generation"] == 1
    assert uuid.UUID(got["decoded_ws"]) == ws.id


def test_the_stage_restarts_a_replica_that_stopped_answering(pg_dsn, tmp_path):
    import os
    import signal

    from harness.stage import Stage

    with Stage(pg_dsn, tmp_path) as stage:
        rep = stage.replica(resolve("v2.33.9"))
        assert stage.heal() == []  # healthy: nothing to do
        os.kill(rep.proc.pid, signal.SIGSTOP)  # wedged: alive, but answers nothing
        assert rep.alive and not rep.responsive(timeout_s=0.5)
        assert stage.heal() == ["v2.33.9"]
        assert rep.responsive() and rep.control.state()["variant"] == "V2"


def test_a_replica_that_dies_during_a_cell_makes_it_error_and_is_restarted(pg_dsn, tmp_path):
    """An unplanned crash must not pass for the protocol's behaviour (a dead replica sends nothing: QUIET holds)."""
    import os
    import signal

    from harness.matrix import load
    from harness.plan import Cell
    from harness.runner import run_cell
    from harness.scenarios import Scenario, catalogue
    from harness.scenarios.live import LiveWorld
    from harness.settings import resolve as resolve_settings
    from harness.stage import Stage

    matrix = load("matrix.yaml", known_scenarios=list(catalogue()))
    settings = resolve_settings(matrix, env={})
    live_claim = catalogue()["live_claim"]

    def crash_midway(world):
        ws = world.prebuild()
        world.start_agent(ws)
        if isinstance(world, LiveWorld):  # the story also runs on the model, for the prediction
            proc = world.reps["v2.33.9"].proc
            os.kill(proc.pid, signal.SIGKILL)  # nobody planned this
            proc.wait(10)

    cell = Cell("live_claim", "v2.33.9", "v2.33.9", "v2.33.9", "v2.33.9")
    with Stage(pg_dsn, tmp_path) as stage:
        result = run_cell(stage, cell, Scenario("live_claim", crash_midway, live_claim.contract), matrix, settings)
        assert result["verdict"] == "ERROR" and not result["surprise"]
        assert result["error"].startswith("replica v2.33.9 died during the cell, not by a fault the scenario planned")
        assert "(replicas restarted after this cell: v2.33.9)" in result["error"]
        assert stage.fleet.replicas["v2.33.9"].responsive()
        fine = run_cell(stage, cell, live_claim, matrix, settings)  # the next cell runs on the restarted replica
        assert fine["verdict"] == "PASS" and fine["error"] is None
