"""The agent simulator against real replicas (and a canned server for malformed streams), over real HTTP."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.agent.agent import SimAgent
from harness.agent.host import AgentHost
from harness.events import EventLog, History, where
from harness.fixtures import payload
from harness.protocol import resolve, waits_after_errors
from harness.server.replica import Replica
from tests.conftest import peer

WAIT = 10


@pytest.fixture(scope="module")
def reps(pg_dsn, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("agent-replicas")
    out = {tag: Replica(tag, resolve(tag), dsn=pg_dsn, admin_token="t", log_dir=log_dir, heartbeat_s=15)
           for tag in ("v2.31.14", "v2.33.9", "v2.34.4", "v2.21.0")}
    with ThreadPoolExecutor(len(out)) as pool:
        list(pool.map(lambda r: r.start(), out.values()))
    yield out
    for r in out.values():
        r.close()


@pytest.fixture()
def history(tmp_path):
    h = History()
    yield h, EventLog(tmp_path / "agents.jsonl", "agents", sink=h.add)


def agent(log, rep, ws, tag, name="a") -> SimAgent:
    return SimAgent(name, url=rep.url, token=ws.agent_token, release=resolve(tag), log=log, workspace=str(ws.id))


def claim_and_complete(rep, ws) -> uuid.UUID:
    owner = uuid.uuid4()
    rep.control.claim(ws.id, owner)
    rep.control.complete(ws.id)
    return owner


def wait_ev(h: History, what: str, **fields):
    return h.wait_for(where(**fields), timeout=WAIT, what=what)


def test_v1_agent_reinits_on_every_event_and_never_stops(reps, history):
    h, log = history
    rep = reps["v2.31.14"]
    ws = rep.control.create_prebuild()
    a = agent(log, rep, ws, "v2.31.14").start()
    try:
        _subscribed(rep, ws)
        claim_and_complete(rep, ws)
        wait_ev(h, "reinit 1", ev="agent.reinit", generation=1)
        for n in (2, 3):
            _subscribed(rep, ws, count=n)
            rep.control.publish_raw(ws.id, b"prebuild_claimed")
            wait_ev(h, f"reinit {n}", ev="agent.reinit", generation=n)
        assert a.state.polling and not h.select(where(ev="agent.stopped"))
        reinits = h.select(where(ev="agent.reinit"))
        assert [e["decoded_ws"] for e in reinits] == [str(ws.id)] * 3  # V1 server → V1 agent: the real id
    finally:
        a.stop()


def _subscribed(rep: Replica, ws, count: int = 1) -> None:
    """Wait until the replica has subscribed ``count`` streams for the workspace."""
    h = History()
    h.follow(rep.events_path)
    h.wait_until(lambda evs: len([e for e in evs if e["ev"] == "reinit.subscribed" and e["ws"] == str(ws.id)])
                 >= count, timeout=WAIT, what=f"{count} subscriptions for {ws.id}")


def test_v2_agent_stops_on_409_after_one_request(reps, history):
    h, log = history
    rep = reps["v2.33.9"]
    ws = rep.control.create_regular()
    a = agent(log, rep, ws, "v2.33.9").start()
    stopped = wait_ev(h, "polling to stop", ev="agent.stopped")
    a.join()
    assert stopped["why"] == "409" and "not a prebuilt workspace" in stopped["detail"]
    assert a.state.requests == 1 and not a.state.polling and not a.running


def test_v2_agent_skips_the_duplicate_owner_and_stops(reps, history):
    h, log = history
    rep = reps["v2.33.9"]
    ws = rep.control.create_prebuild()
    a = agent(log, rep, ws, "v2.33.9").start()
    _subscribed(rep, ws)
    owner = claim_and_complete(rep, ws)
    stopped = wait_ev(h, "polling to stop", ev="agent.stopped")
    assert stopped["why"] == "duplicate"
    assert [e["owner"] for e in h.select(where(ev="agent.reinit"))] == [str(owner)]
    assert h.select(where(ev="agent.duplicate"))[0]["owner"] == str(owner)
    assert a.state.requests == 2 and a.state.last_owner == owner


def test_zero_owner_events_are_never_duplicates_and_reset_last_owner(reps, history):
    h, log = history
    rep = reps["v2.33.9"]
    ws = rep.control.create_prebuild()  # stays unclaimed: every connection is a plain pubsub wait
    owner = uuid.uuid4()
    a = agent(log, rep, ws, "v2.33.9").start()
    try:
        for n, name in enumerate(["v2_json", "raw_reason", "v2_json", "raw_reason", "raw_reason"], start=1):
            _subscribed(rep, ws, count=n)
            rep.control.publish_raw(ws.id, payload(name, ws.id, owner))
            wait_ev(h, f"reinit {n}", ev="agent.reinit", generation=n)
        owners = [e["owner"] for e in h.select(where(ev="agent.reinit"))]
        zero = str(uuid.UUID(int=0))
        assert owners == [str(owner), zero, str(owner), zero, zero]
        assert a.state.polling and a.state.last_owner == uuid.UUID(int=0)
    finally:
        a.stop()


def test_restart_loses_last_owner_and_reinits_again(reps, history):
    h, log = history
    rep = reps["v2.33.9"]
    ws = rep.control.create_prebuild()
    a = agent(log, rep, ws, "v2.33.9").start()
    _subscribed(rep, ws)
    claim_and_complete(rep, ws)
    wait_ev(h, "first stop", ev="agent.stopped")
    a.restart()
    h.wait_until(lambda evs: len([e for e in evs if e["ev"] == "agent.stopped"]) == 2, timeout=WAIT,
                 what="the restarted agent to stop")
    assert [e["life"] for e in h.select(where(ev="agent.reinit"))] == [1, 2]  # the spurious one is life 2's
    assert a.state.generation == 2


def test_retry_waits_follow_the_schedule(reps, history):
    h, log = history
    rep = reps["v2.21.0"]  # V0: /reinit is a 404, retried forever
    ws = rep.control.create_prebuild()
    a = agent(log, rep, ws, "v2.31.14").start()
    try:
        h.wait_until(lambda evs: len([e for e in evs if e["ev"] == "agent.request"]) >= 6, timeout=WAIT,
                     what="six requests")
    finally:
        a.stop()
    starts = [e["m"] for e in h.select(where(ev="agent.request"))][:6]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for measured, expected in zip(gaps, waits_after_errors(5), strict=True):
        assert expected * 0.9 <= measured <= expected + 0.25, (gaps, expected)
    assert all(e["status"] == 404 for e in h.select(where(ev="agent.status")))


def test_malformed_streams_go_through_retry(tmp_path, history):
    h, log = history
    canned = [
        {"chunks": ["event: ping\n\n", "event: foo\ndata: x\n\n"], "then": "hold"},
        {"chunks": ["event: error\ndata: boom\n\n"], "then": "hold"},
        {"chunks": ["event: data\nbogus: x\n\n"], "then": "hold"},
        {"chunks": ['event: data\ndata: {"workspace_id":"not-a-uuid"}\n\n'], "then": "hold"},
        {"chunks": ["event: ping\n\n"], "then": "close"},
        {"chunks": [f'event: data\ndata: {{"workspace_id":"{uuid.uuid4()}","reason":"prebuild_claimed"}}\n\n'],
         "then": "hold"},
    ]
    spec = tmp_path / "canned.json"
    spec.write_text(json.dumps(canned))
    server = subprocess.Popen(peer("canned_sse", str(spec)), stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        a = SimAgent("m", url=url, token=str(uuid.uuid4()), release=resolve("v2.34.4"), log=log).start()
        wait_ev(h, "the reinit after five failures", ev="agent.reinit")
        a.stop()
    finally:
        server.terminate()
        server.wait(10)
    errors = [e["error"] for e in h.select(where(ev="agent.error"))]
    assert len(errors) == 5
    assert "unknown event type: 'foo'" in errors[0]
    assert "error event" in errors[1]
    assert "expecting 'data: ' prefix" in errors[2]
    assert "invalid UUID" in errors[3]
    assert "EOF" in errors[4]
    assert [round(e["next_wait_s"], 4) for e in h.select(where(ev="agent.error"))] == [
        round(w, 4) for w in waits_after_errors(5)]


def test_stop_interrupts_a_request_waiting_for_headers(reps, history):
    h, log = history
    rep = reps["v2.31.14"]
    ws = rep.control.create_prebuild()
    a = agent(log, rep, ws, "v2.31.14").start()
    _subscribed(rep, ws)  # the server writes nothing until its first heartbeat, 15 s away
    t0 = time.monotonic()
    a.stop()
    assert time.monotonic() - t0 < 2 and not a.running
    assert h.select(where(ev="agent.exit"))[0]["why"] == "shutdown"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_threads_or_sockets_leak(reps, history):
    h, log = history
    rep = reps["v2.34.4"]
    threads, fds = threading.active_count(), _fds()
    host = AgentHost(log)
    for i in range(20):
        ws = rep.control.create_prebuild()
        host.add(f"leak{i}", url=rep.url, token=ws.agent_token, release=resolve("v2.34.4"), workspace=str(ws.id))
    host.start_all()
    h.wait_until(lambda evs: len([e for e in evs if e["ev"] == "agent.request"]) >= 20, timeout=WAIT,
                 what="20 requests")
    assert threading.active_count() >= threads + 20
    host.stop_all()
    assert threading.active_count() == threads
    assert _fds() <= fds + 1  # the control client's keep-alive connection may stay


def test_harness_agents_process_runs_and_stops_on_sigterm(reps, tmp_path):
    rep = reps["v2.34.4"]
    log = tmp_path / "agents.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "agents", "--url", rep.url, "--count", "5",
                             "--admin-token", "t", "--version-tag", "v2.34.4", "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    h = History()
    h.follow(log)
    h.wait_until(lambda evs: len([e for e in evs if e["ev"] == "agent.request"]) >= 5, timeout=30, what="5 agents")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "created 5 prebuilds" in out
    assert len(h.select(where(ev="agent.exit"))) == 5


def test_harness_agents_status_line_says_why_agents_are_retrying(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("tok1\ntok2\n")
    r = subprocess.run([sys.executable, "-m", "harness", "agents", "--url", f"http://127.0.0.1:{port}", "--tokens",
                        str(tokens), "--version-tag", "v2.34.4", "--duration", "1.5", "--time-scale", "0.1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    last = r.stdout.splitlines()[-1]
    assert "agents 2, polling 2, reinits 0" in last and "(e.g. request failed: connection refused)" in last
    assert int(last.split("failed attempts ")[1].split()[0]) >= 4  # retried on the scaled 1 s floor, not given up
    assert len(r.stdout.splitlines()) == 1  # one status line per 5 s, and one at the end
