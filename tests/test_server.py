"""Reference replicas over real HTTP, each its own process, all on one PostgreSQL: every rule of PROTOCOL.md §4."""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import psycopg
import pytest
import requests

from harness.events import History, where
from harness.fixtures import load_vectors
from harness.protocol import SSEEvent, StrictReader, resolve
from harness.protocol.crossproduct import OWNER, WS
from harness.protocol.ids import REINIT_PATH
from harness.server.replica import Replica

HEARTBEAT = 0.4
VARIANTS = ["V0", "V1", "V2", "V3", "P1", "P3"]


@pytest.fixture(scope="module")
def replicas(pg_dsn, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("replicas")
    reps = {v: Replica(v, resolve(v), dsn=pg_dsn, admin_token="t", log_dir=log_dir, heartbeat_s=HEARTBEAT)
            for v in VARIANTS}
    with ThreadPoolExecutor(len(reps)) as pool:
        list(pool.map(lambda r: r.start(), reps.values()))
    yield reps
    for r in reps.values():
        r.close()


class Stream:
    """A raw HTTP/1.1 GET on /reinit: header timing, status, and the body fed to Coder's strict reader."""

    def __init__(self, url: str, token: str | None, *, wait: str | None = None, cookie: bool = False,
                 extra: str = "", query: str = "") -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=10)
        query = "&".join(q for q in (f"wait={wait}" if wait is not None else "", query) if q)
        query = f"?{query}" if query else ""
        auth = "" if token is None else (f"Cookie: coder_session_token={token}\r\n" if cookie
                                         else f"Coder-Session-Token: {token}\r\n")
        auth += extra
        self.sent = time.monotonic()
        self.sock.sendall(f"GET {REINIT_PATH}{query} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
        self.buf = b""
        self.head_at: float | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.reader = StrictReader()

    def _recv(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not data:
            raise EOFError
        self.buf += data
        return True

    def head(self, timeout: float = 5) -> int:
        while b"\r\n\r\n" not in self.buf:
            if not self._recv(timeout):
                raise TimeoutError("no response head")
        self.head_at = time.monotonic()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        return self.status

    def _dechunk(self, *, sse: bool = True) -> None:
        while True:
            if b"\r\n" not in self.buf:
                return
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            if sse and size:
                self.reader.feed(rest[:size])
            self.buf = rest[size + 2:]

    def raw_body(self, until: bytes, count: int = 1, timeout: float = 5) -> bytes:
        """The de-chunked body bytes once ``until`` occurs ``count`` times (for non-SSE bodies)."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk(sse=False)
            if self.body.count(until) >= count:
                return self.body
            if time.monotonic() > deadline:
                raise TimeoutError(f"body so far: {self.body[:300]!r}")
            self._recv(0.1)

    def frames(self, count: int, timeout: float = 5) -> list[SSEEvent]:
        if not self.status:
            self.head(timeout)
        out: list[SSEEvent] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            self._dechunk()
            while len(out) < count and isinstance(ev := self.reader.next_event(), SSEEvent):
                out.append(ev)
            if len(out) >= count:
                break
            if not self._recv(max(0.01, deadline - time.monotonic())) and time.monotonic() > deadline:
                raise TimeoutError(f"got {len(out)} of {count} frames")
        return out

    def json_body(self) -> dict:
        length = int(self.headers["content-length"])
        while len(self.buf) < length:
            self._recv(5)
        return json.loads(self.buf[:length])

    def close(self) -> None:
        self.sock.close()


def claimed(rep: Replica, *, complete: bool = True, ok: bool = True, error: str = ""):
    ws = rep.control.create_prebuild()
    owner = uuid.uuid4()
    rep.control.claim(ws.id, owner)
    if complete:
        rep.control.complete(ws.id, ok=ok, error=error, publish=False)
    return ws, owner


# -- auth and routes ------------------------------------------------------------------------------
def test_v0_has_no_route(replicas):
    ws = replicas["V0"].control.create_prebuild()
    s = Stream(replicas["V0"].url, ws.agent_token)
    assert s.head() == 404 and s.json_body() == {"message": "Route not found."}


@pytest.mark.parametrize("token,detail", [(None, 'Cookie "coder_session_token" must be provided.'),
                                          ("not-a-uuid", "Workspace agent token invalid."),
                                          (str(uuid.uuid4()), "Workspace agent not authorized.")])
def test_401s(replicas, token, detail):
    s = Stream(replicas["V2"].url, token)
    assert s.head() == 401 and s.json_body()["message"] == detail


def test_cookie_and_header_auth_both_work(replicas):
    ws = replicas["V2"].control.create_regular()
    for cookie in (False, True):
        s = Stream(replicas["V2"].url, ws.agent_token, wait="true", cookie=cookie)
        assert s.head() == 409


def test_token_precedence_is_cookie_then_query_then_header(replicas):
    """httpmw.APITokenFromRequest: with a good token in one place and a bad one in another, the first wins."""
    url, good, bad = replicas["V2"].url, replicas["V2"].control.create_regular().agent_token, str(uuid.uuid4())
    q = "coder_session_token="
    assert Stream(url, bad, wait="true", query=q + good).head() == 409  # query beats header
    assert Stream(url, good, wait="true", query=q + bad).head() == 401
    assert Stream(url, good, wait="true", cookie=True, query=q + bad).head() == 409  # cookie beats query
    assert Stream(url, bad, wait="true", extra=f"Cookie: coder_session_token={good}\r\n").head() == 409
    assert Stream(url, None, wait="true", query=q + good).head() == 409  # the query parameter alone works


# -- V1 ---------------------------------------------------------------------------------------
def test_v1_ignores_wait_and_never_409s(replicas):
    ws = replicas["V1"].control.create_regular()
    s = Stream(replicas["V1"].url, ws.agent_token, wait="true")
    assert s.head() == 200 and s.headers["content-type"] == "text/event-stream"
    assert s.frames(1) == [SSEEvent("ping")]


def test_v1_writes_500_and_carries_on_into_the_stream(replicas):
    v1 = replicas["V1"]
    ws = v1.control.create_prebuild()
    v1.control.delete(ws.id)
    s = Stream(v1.url, ws.agent_token)
    assert s.head(timeout=5) == 500
    assert s.headers["content-type"].startswith("application/json")
    assert s.head_at - s.sent >= HEARTBEAT * 0.8  # nothing, the 500 included, before the first frame
    body = s.raw_body(b"event: ping\n\n", count=2)  # the JSON error, then heartbeats on the same response
    assert body.startswith(b'{"message":"Internal error fetching workspace.","detail":"workspace ')
    assert body.endswith(b"}\nevent: ping\n\nevent: ping\n\n")


def test_v2_lookup_failure_is_a_plain_500(replicas):
    v2 = replicas["V2"]
    ws = v2.control.create_prebuild()
    v2.control.delete(ws.id)
    s = Stream(v2.url, ws.agent_token, wait="true")
    assert s.head() == 500 and s.json_body()["message"] == "Internal error fetching workspace."


# -- headers and heartbeats ---------------------------------------------------------------------
def test_no_headers_before_the_first_heartbeat_then_pings_on_cadence(replicas):
    ws = replicas["V2"].control.create_prebuild()
    s = Stream(replicas["V2"].url, ws.agent_token, wait="true")
    assert s.head(timeout=5) == 200
    assert HEARTBEAT * 0.8 <= s.head_at - s.sent < HEARTBEAT * 3
    start = time.monotonic()
    assert s.frames(4, timeout=5) == [SSEEvent("ping")] * 4
    assert 3 * HEARTBEAT * 0.8 <= time.monotonic() - start < 3 * HEARTBEAT * 3
    for name in ("content-type", "cache-control", "connection", "x-accel-buffering"):
        assert s.headers[name] == {"content-type": "text/event-stream", "cache-control": "no-cache",
                                   "connection": "keep-alive", "x-accel-buffering": "no"}[name]


# -- the durable branch ---------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["V2", "V3"])
def test_regular_workspace_gets_409_with_wait_and_a_stream_without(replicas, variant):
    rep = replicas[variant]
    ws = rep.control.create_regular()
    s = Stream(rep.url, ws.agent_token, wait="true")
    assert s.head() == 409 and s.json_body() == {
        "message": "Workspace is not a prebuilt workspace waiting to be claimed.",
        "detail": "This endpoint is only for agents running in prebuilt workspaces."}
    s2 = Stream(rep.url, ws.agent_token)
    assert s2.head() == 200


@pytest.mark.parametrize("variant", ["V2", "V3"])
def test_failed_claim_build_409(replicas, variant):
    rep = replicas[variant]
    ws, _ = claimed(rep, ok=False, error="terraform apply failed: quota")
    s = Stream(rep.url, ws.agent_token, wait="1")
    assert s.head() == 409
    assert s.json_body() == {"message": "Claim build failed permanently.", "detail": "terraform apply failed: quota"}


@pytest.mark.parametrize("variant", ["V2", "V3", "P3"])
def test_seeds_exactly_once_per_connection_then_only_pings(replicas, variant):
    rep = replicas[variant]
    ws, owner = claimed(rep)
    s = Stream(rep.url, ws.agent_token, wait="true" if variant != "P3" else None)
    assert s.head(timeout=2) == 200
    assert s.head_at - s.sent < HEARTBEAT  # the seeded event goes out at once
    frames = s.frames(4, timeout=5)
    assert frames[0] == SSEEvent("data", json.dumps(
        {"workspace_id": str(ws.id), "reason": "prebuild_claimed", "owner_id": str(owner)},
        separators=(",", ":")).encode())
    assert frames[1:] == [SSEEvent("ping")] * 3


@pytest.mark.parametrize("wait", ["t", "T", "TRUE", "True", "1"])
def test_wait_parses_like_go(replicas, wait):
    ws, _ = claimed(replicas["V2"])
    s = Stream(replicas["V2"].url, ws.agent_token, wait=wait)
    assert s.frames(1)[0].type == "data"


def test_wait_values_go_rejects_give_a_plain_wait(replicas):
    ws, _ = claimed(replicas["V2"])
    s = Stream(replicas["V2"].url, ws.agent_token, wait="yes")
    assert s.frames(1) == [SSEEvent("ping")]


def test_v2_pending_claim_build_waits_then_streams_the_publish(replicas):
    rep = replicas["V2"]
    ws, owner = claimed(rep, complete=False)
    s = Stream(rep.url, ws.agent_token, wait="true")
    assert s.frames(1) == [SSEEvent("ping")]
    rep.control.complete(ws.id)
    frames = s.frames(1)
    assert json.loads(frames[0].data)["owner_id"] == str(owner)


def test_after_a_later_user_build_v2_seeds_v3_409s(replicas):
    for variant, expect in (("V2", 200), ("V3", 409)):
        rep = replicas[variant]
        ws, owner = claimed(rep)
        rep.control.start_build(ws.id, owner)
        rep.control.complete(ws.id)
        s = Stream(rep.url, ws.agent_token, wait="true")
        assert s.head() == expect, variant
        if expect == 409:
            assert "already been handled by an earlier build" in s.json_body()["detail"]
        else:
            assert s.frames(1)[0].type == "data"


def test_v3_waits_while_owner_changed_but_claim_build_not_created(replicas):
    rep = replicas["V3"]
    ws = rep.control.create_prebuild()
    rep.control.claim(ws.id, uuid.uuid4(), create_build=False)
    s = Stream(rep.url, ws.agent_token, wait="true")
    assert s.frames(1) == [SSEEvent("ping")]


def following(rep) -> tuple[History, int]:
    """The replica's events, and where the ones still to come start."""
    history = History()
    history.follow(rep.events_path)
    return history, len(history)


def test_durable_check_delay_hook_and_subscribe_first(replicas):
    """Held check: the publish is heard by the subscription made *before* the check; released, it seeds once."""
    rep = replicas["V2"]
    ws, owner = claimed(rep, complete=False)
    history, start = following(rep)
    rep.control.set_hooks(durable_check_delay_ms=60_000)  # held until set again
    try:
        s = Stream(rep.url, ws.agent_token, wait="true")
        history.wait_for(where(ev="reinit.check_delayed", ws=str(ws.id)), timeout=5, what="the held check",
                         start=start)
        rep.control.complete(ws.id)  # publishes now, while the check is held
        history.wait_for(where(ev="reinit.heard", ws=str(ws.id)), timeout=5, what="the publish heard", start=start)
    finally:
        rep.control.set_hooks(durable_check_delay_ms=0)  # releases the held check at once
    frames = s.frames(3, timeout=5)
    data = [f for f in frames if f.type == "data"]
    assert len(data) == 1 and json.loads(data[0].data)["owner_id"] == str(owner)
    mine = [e["ev"] for e in history.snapshot(start) if e.get("ws") == str(ws.id) and e["ev"].startswith("reinit.")]
    order = [ev for ev in mine if ev in ("reinit.subscribed", "reinit.check_delayed", "reinit.heard",
                                         "reinit.check_resumed", "reinit.decision")]
    assert order == ["reinit.subscribed", "reinit.check_delayed", "reinit.heard", "reinit.check_resumed",
                     "reinit.decision"]
    resumed = next(e for e in history.snapshot(start) if e["ev"] == "reinit.check_resumed" and e["ws"] == str(ws.id))
    assert resumed["why"] == "released"


def test_a_short_check_delay_runs_out_by_itself(replicas):
    rep = replicas["V3"]
    ws, owner = claimed(rep, complete=True)
    history, start = following(rep)
    rep.control.set_hooks(durable_check_delay_ms=300)
    try:
        t0 = time.monotonic()
        s = Stream(rep.url, ws.agent_token, wait="true")
        frames = s.frames(1, timeout=5)
        took = time.monotonic() - t0
    finally:
        rep.control.set_hooks(durable_check_delay_ms=0)
    assert frames[0].type == "data" and json.loads(frames[0].data)["owner_id"] == str(owner)
    assert took >= 0.3
    resumed = history.wait_for(where(ev="reinit.check_resumed", ws=str(ws.id)), timeout=5, what="resume", start=start)
    assert resumed["why"] == "elapsed"


# -- golden vectors on the wire -------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["V1", "V2", "V3"])
def test_frames_match_the_golden_vectors(replicas, variant):
    rep = replicas[variant]
    ws, owner = claimed(rep, complete=False)
    s = Stream(rep.url, ws.agent_token)
    s.frames(1)
    rep.control.complete(ws.id)
    s.frames(1) if not s.body.endswith(b"}\n\n") else None
    while not s.body.endswith(b"}\n\n"):
        s.frames(1)
    expected = load_vectors()["wire.json"]["variants"][variant]["sse_frame"]
    expected = expected.replace(str(WS), str(ws.id)).replace(str(OWNER), str(owner)).encode()
    assert s.body.endswith(expected)
    assert s.body.replace(expected, b"").replace(b"event: ping\n\n", b"") == b""


# -- across replicas: one pubsub --------------------------------------------------------------------
def test_v1_published_claim_reaches_a_v2_stream_as_the_fallback_event(replicas):
    v1, v2 = replicas["V1"], replicas["V2"]
    ws = v1.control.create_prebuild()
    v1.control.claim(ws.id, uuid.uuid4())
    s = Stream(v2.url, ws.agent_token)  # no wait: V2 streams pubsub events
    s.frames(1)
    assert v1.control.complete(ws.id)["published"] == "prebuild_claimed"
    data = next(f for f in s.frames(2) if f.type == "data")
    assert json.loads(data.data) == {"workspace_id": str(ws.id), "reason": "prebuild_claimed"}  # owner 0: omitted


def test_v2_published_claim_reaches_a_v1_stream_with_the_json_as_reason(replicas):
    v1, v2 = replicas["V1"], replicas["V2"]
    ws = v2.control.create_prebuild()
    owner = uuid.uuid4()
    v2.control.claim(ws.id, owner)
    s = Stream(v1.url, ws.agent_token)
    s.frames(1)
    published = v2.control.complete(ws.id)["published"]
    data = next(f for f in s.frames(2) if f.type == "data")
    assert json.loads(data.data) == {"WorkspaceID": str(ws.id), "reason": published}
    assert json.loads(published)["owner_id"] == str(owner)


def test_p1_listener_drops_a_json_payload(replicas):
    p1, v2 = replicas["P1"], replicas["V2"]
    ws = v2.control.create_prebuild()
    v2.control.claim(ws.id, uuid.uuid4())
    s = Stream(p1.url, ws.agent_token)
    s.frames(1)
    v2.control.complete(ws.id)
    assert s.frames(2) == [SSEEvent("ping")] * 2


def test_payload_limits_through_the_control_api(replicas):
    rep = replicas["V2"]
    ws = rep.control.create_prebuild()
    assert len(rep.control.publish_raw(ws.id, b"x" * 7999)) == 7999
    with pytest.raises(Exception, match="413"):
        rep.control.publish_raw(ws.id, b"x" * 8000)


def test_control_api_needs_the_admin_token(replicas):
    r = requests.post(f"{replicas['V2'].url}/_harness/v1/workspaces", json={}, timeout=5)
    assert r.status_code == 401


def test_many_replicas_start_at_once_on_a_fresh_database(pg_dsn, tmp_path):
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    dsn = pg_dsn.replace("dbname=postgres", f"dbname={name}")
    reps = [Replica(f"r{i}", resolve(v), dsn=dsn, admin_token="t", log_dir=tmp_path, heartbeat_s=15)
            for i, v in enumerate(["V1", "V2", "V3", "V2"])]
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda r: r.start(), reps))
        took = time.monotonic() - started
        ws = reps[0].control.create_prebuild()
        assert all(r.control.describe(ws.id)["is_prebuild"] for r in reps)
    finally:
        for r in reps:
            r.close()
    assert took < 10


def test_a_replica_starts_and_answers_quickly(pg_dsn, tmp_path):
    started = time.monotonic()
    with Replica("quick", resolve("v2.34.4"), dsn=pg_dsn, admin_token="t", log_dir=tmp_path, heartbeat_s=15) as r:
        assert r.control.state()["variant"] == "V3"
        took = time.monotonic() - started
    assert took < 5  # ~0.8 s here; generous for a shared, noisy machine


def test_an_admin_token_that_looks_like_a_flag_still_starts_a_replica(pg_dsn, tmp_path):
    # argparse reads "--admin-token -x" as a missing value; a run once lost whole workers to such tokens
    with Replica("dash", resolve("v2.33.9"), dsn=pg_dsn, admin_token="-starts-with-a-dash", log_dir=tmp_path,
                 heartbeat_s=15) as r:
        assert r.control.state()["variant"] == "V2"
