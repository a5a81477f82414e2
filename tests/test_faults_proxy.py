"""The fault proxy over real sockets, in front of real SSE upstream processes (tests/peers/sse_upstream.py).

Every assertion is made from the client's side of a raw socket (or ``requests``), with a strict chunked
decoder written here, independent of the proxy's own parser. Waits are on proxy events or on bytes
arriving, always bounded; the only fixed waits check that something does *not* happen.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from harness import procs
from harness.errors import UsageError
from harness.events import EventLog, History, where
from harness.faults.proxy import FaultProxy
from harness.faults.spec import Fault, Trigger
from harness.protocol.sse import SSEEvent, StrictReader
from tests.conftest import peer

REINIT = "/api/v2/workspaceagents/me/reinit"
WAIT_S = 5.0  # bound for anything that should happen within milliseconds
QUIET_S = 0.25  # how long "nothing arrives" is watched: many ping intervals (20 ms), well below test budgets


def read_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no line from {proc.args} within {timeout}s"
    return proc.stdout.readline()


class Upstream:
    """One tests/peers/sse_upstream.py process."""

    def __init__(self, name: str, ping_ms: int = 20) -> None:
        self.name, self.ping_ms = name, ping_ms
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def launch(self) -> Upstream:
        self.proc = procs.spawn(peer("sse_upstream", self.name, str(self.ping_ms)), stdout=subprocess.PIPE, text=True)
        return self

    def ready(self) -> Upstream:
        assert self.proc is not None
        line = read_line(self.proc)
        assert line, f"sse_upstream {self.name} exited: {self.proc.wait()}"
        self.port = json.loads(line)["port"]
        return self

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def emit(self, agent: str, **params: object) -> int:
        r = requests.post(f"http://127.0.0.1:{self.port}/emit", params={"agent": agent, **params}, timeout=WAIT_S)
        r.raise_for_status()
        assert r.json()["streams"] > 0, f"agent {agent} has no stream on upstream {self.name}"
        return r.json()["streams"]

    def stop(self) -> None:
        procs.stop(self.proc, grace_s=2)


def decode(raw: bytes) -> tuple[int, list[bytes], bytes]:
    """Status, the chunks of a chunked body, and the bytes after the last whole chunk — strictly."""
    head, sep, rest = bytes(raw).partition(b"\r\n\r\n")
    if not sep:
        return 0, [], bytes(raw)
    assert b"transfer-encoding: chunked" in head.lower(), head
    chunks = []
    while True:
        line, crlf, after = rest.partition(b"\r\n")
        if not crlf:
            break
        size = int(line, 16)  # anything but a hex size line is broken framing
        if size == 0 or len(after) < size + 2:
            break
        assert after[size:size + 2] == b"\r\n", "chunk data not followed by CRLF"
        chunks.append(after[:size])
        rest = after[size + 2:]
    return int(head.split(b" ")[1]), chunks, rest


def sse_events(chunks: list[bytes]) -> list[SSEEvent]:
    reader = StrictReader()
    reader.feed(b"".join(chunks))
    return reader.events()


def kinds(raw: bytes) -> list[str]:
    return [e.type for e in sse_events(decode(raw)[1])]


class Client:
    """A raw-socket HTTP client that records every byte it gets."""

    def __init__(self, port: int, agent: str | None = None, path: str | None = REINIT, **query: object) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.raw = bytearray()
        self.eof = False
        if path is not None:
            self.send(path, agent, **query)

    def send(self, path: str, agent: str | None = None, **query: object) -> None:
        qs = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        token = f"Coder-Session-Token: {agent}\r\n" if agent else ""
        self.sock.sendall(f"GET {path}{qs} HTTP/1.1\r\nHost: coder\r\n{token}\r\n".encode())

    def _recv(self, deadline: float) -> bytes:
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        self.raw += data
        self.eof = not data
        return data

    def read_until(self, done: Callable[[bytes], bool], timeout: float = WAIT_S, what: str = "bytes") -> bytes:
        deadline = time.monotonic() + timeout
        while not done(bytes(self.raw)):
            if self.eof:
                raise AssertionError(f"EOF while waiting for {what}; got {bytes(self.raw)[-300:]!r}")
            try:
                self._recv(deadline)
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {what}; got {bytes(self.raw)[-300:]!r}") from None
        return bytes(self.raw)

    def events(self, n: int, kind: str | None = None, timeout: float = WAIT_S) -> list[str]:
        self.read_until(lambda raw: len([k for k in kinds(raw) if kind in (None, k)]) >= n, timeout,
                        f"{n} {kind or 'SSE'} events")
        return kinds(bytes(self.raw))

    def read_to_eof(self, timeout: float = WAIT_S) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._recv(deadline)
            except TimeoutError:
                raise AssertionError(f"no EOF within {timeout}s; got {bytes(self.raw)[-300:]!r}") from None
        return bytes(self.raw)

    def quiet_for(self, seconds: float) -> bool:
        """True if neither a byte nor EOF arrives for ``seconds``."""
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return not readable

    def close(self) -> None:
        self.sock.close()


def agent() -> str:
    return f"ag-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, Upstream]]:
    started = {name: Upstream(name).launch() for name in ("a", "b")}
    try:
        yield {name: u.ready() for name, u in started.items()}
    finally:
        for u in started.values():
            u.stop()


@pytest.fixture
def hist() -> History:
    return History()


@pytest.fixture
def proxy(ups: dict[str, Upstream], hist: History) -> Iterator[FaultProxy]:
    with FaultProxy({n: u.addr for n, u in ups.items()}, log=EventLog(None, "proxy", sink=hist.add)) as p:
        yield p


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(*args: object, **kwargs: object) -> Client:
        made.append(Client(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for c in made:
        c.close()


def fault_event(hist: History, **fields: object) -> dict:
    return hist.wait_for(where(ev="proxy.fault", **fields), timeout=WAIT_S, what=f"proxy.fault {fields}")


# -- relaying ------------------------------------------------------------------------------------------
def test_relays_coderd_style_sse_unchanged_and_logs_it(proxy, ups, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(2, "ping")
    ups["a"].emit(ag, shape="pd")
    c.events(1, "data")
    status, chunks, rest = decode(c.raw)
    assert status == 200 and rest == b""
    assert any(ch.startswith(b"event: ping\n\nevent: data\n") for ch in chunks)  # "ping + data" kept one chunk
    assert all(ch == b"event: ping\n\n" or ch.startswith((b"event: data\n", b"event: ping\n\nevent: data\n"))
               for ch in chunks)
    frame = hist.wait_for(where(ev="proxy.frame", agent=ag), timeout=WAIT_S, what="proxy.frame")
    assert frame["upstream"] == "a" and json.loads(frame["data"])["agent"] == ag
    assert hist.select(where(ev="proxy.route"))[0] == {**hist.select(where(ev="proxy.route"))[0], "conn": "c1",
                                                       "agent": ag, "upstream": "a", "policy": "round_robin"}
    assert [e["path"] for e in hist.select(where(ev="proxy.request", agent=ag))] == [REINIT]
    assert [e["status"] for e in hist.select(where(ev="proxy.response", agent=ag))] == [200]
    assert hist.select(where(ev="proxy.accept"))[0]["client"].startswith("127.0.0.1:")


def test_keep_alive_requests_share_one_route_and_identity_comes_from_the_first(proxy, hist):
    ag = agent()
    with requests.Session() as s:
        s.headers["Coder-Session-Token"] = ag
        assert s.get(proxy.url + "/conflict", timeout=WAIT_S).status_code == 409
        assert s.get(proxy.url + "/conflict", timeout=WAIT_S).json()["upstream"] == "a"
        with s.get(proxy.url + REINIT, stream=True, timeout=WAIT_S) as r:
            assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
            assert r.raw.read(len(b"event: ping\n\n")) == b"event: ping\n\n"
    assert len(hist.select(where(ev="proxy.accept"))) == 1
    assert len(hist.select(where(ev="proxy.route", agent=ag))) == 1
    assert [e["path"] for e in hist.select(where(ev="proxy.request", agent=ag))] == ["/conflict", "/conflict", REINIT]
    assert [e["status"] for e in hist.select(where(ev="proxy.response", agent=ag))] == [409, 409, 200]


# -- faults on live connections ------------------------------------------------------------------------
def test_close_now_is_a_clean_eof_at_a_chunk_boundary(proxy, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(1)
    proxy.arm("close", agent=ag)
    raw = c.read_to_eof()
    assert decode(raw)[2] == b"" and set(kinds(raw)) == {"ping"}
    ev = fault_event(hist, agent=ag, fault="close", trigger="now")
    assert ev["bytes_down"] == len(raw)
    assert hist.select(where(ev="proxy.close", agent=ag))[0]["reason"] == "fault:close"


def test_reset_now_is_a_connection_reset(proxy, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(1)
    proxy.arm("reset", agent=ag)
    with pytest.raises(ConnectionResetError):
        c.read_to_eof()
    assert hist.select(where(ev="proxy.close", agent=ag))[0]["reason"] == "fault:reset"


def test_blackhole_stops_bytes_without_eof(proxy, ups, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(1)
    proxy.arm("blackhole", agent=ag)
    sent = fault_event(hist, agent=ag, fault="blackhole")["bytes_down"]
    c.read_until(lambda raw: len(raw) >= sent, what="the bytes sent before the blackhole")
    ups["a"].emit(ag)
    assert c.quiet_for(QUIET_S), "bytes or EOF arrived through a blackhole"
    assert len(c.raw) == sent
    assert proxy.connections(ag)[0]["open"] is True
    c.sock.sendall(b"GET /whoami HTTP/1.1\r\n\r\n")  # the client's socket is still writable
    assert c.quiet_for(0.05)


def test_delay_holds_every_chunk_for_the_delay_in_order(proxy, ups, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag, ping_ms=0)
    ups["a"].emit(ag)
    c.events(1, "data")
    proxy.arm("delay(150)", agent=ag)
    t0 = time.monotonic()
    ups["a"].emit(ag, n=3)
    before = len(c.raw)
    c.read_until(lambda raw: len(raw) > before, what="the first delayed byte")
    first = time.monotonic() - t0
    c.events(4, "data")
    assert first >= 0.15, f"delayed bytes arrived after {first * 1000:.0f} ms"
    seqs = [json.loads(e.data)["seq"] for e in sse_events(decode(c.raw)[1]) if e.type == "data"]
    assert seqs == sorted(seqs) and len(seqs) == 4


def test_disarm_lifts_a_delay(proxy, ups, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag, ping_ms=0)
    ups["a"].emit(ag)
    c.events(1, "data")
    handle = proxy.arm("delay(3000)", agent=ag)
    assert proxy.disarm(handle) is True and proxy.disarm(handle) is False
    t0 = time.monotonic()
    ups["a"].emit(ag)
    c.events(2, "data")
    assert time.monotonic() - t0 < 1.0
    assert hist.select(where(ev="proxy.disarm", handle=handle))


def test_buffer_holds_bytes_until_n_then_flushes_at_once(proxy, ups, hist, clients):
    ag = agent()
    proxy.arm("buffer(3000)", agent=ag, trigger="on_connect")
    c = clients(proxy.port, ag, ping_ms=0)
    ups["a"].emit(ag)
    hist.wait_for(where(ev="proxy.frame", agent=ag), timeout=WAIT_S, what="the first frame to reach the proxy")
    assert c.quiet_for(QUIET_S), "bytes arrived before the buffer filled"
    ups["a"].emit(ag, pad=3000)
    c.read_until(lambda raw: len(raw) > 0, what="the flushed buffer")
    assert len(c.raw) >= 3000  # head, first frame and second frame came together
    assert c.events(2, "data") == ["data", "data"]


def test_idle_cut_closes_an_idle_connection_but_not_a_busy_one(proxy, hist, clients):
    quiet, busy = agent(), agent()
    for ag in (quiet, busy):
        proxy.arm("idle_cut(0.3)", agent=ag, trigger="on_connect")
    t0 = time.monotonic()
    q = clients(proxy.port, quiet, ping_ms=0)
    b = clients(proxy.port, busy, ping_ms=50)
    q.read_to_eof()
    elapsed = time.monotonic() - t0
    assert 0.28 <= elapsed < 1.5, f"idle connection cut after {elapsed:.2f}s"
    assert hist.select(where(ev="proxy.close", agent=quiet))[0]["reason"] == "idle_cut"
    b.events(12, "ping")  # 600 ms of pings: twice the idle timeout, still open
    assert proxy.connections(busy)[0]["open"] is True


@pytest.mark.parametrize("shape", [{"shape": "d"}, {"shape": "pd"}, {"split": 7}],
                         ids=["own-chunk", "after-a-ping-in-the-same-chunk", "first-line-split"])
def test_next_data_frame_cuts_before_any_byte_of_it(proxy, ups, hist, clients, shape):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(2, "ping")
    proxy.arm("close", agent=ag, trigger="next_data_frame")
    ups["a"].emit(ag, **shape)
    raw = c.read_to_eof()
    status, chunks, rest = decode(raw)
    assert status == 200 and rest == b"", "the cut left a partial chunk"
    assert b"event: d" not in raw and b"seq" not in raw
    events = sse_events(chunks)
    assert len(events) >= 2 and {e.type for e in events} == {"ping"}
    if shape == {"shape": "pd"}:
        assert chunks[-1] == b"event: ping\n\n"  # the ping that shared the data frame's chunk got through
    ev = fault_event(hist, agent=ag, trigger="next_data_frame")
    assert ev["bytes_down"] == len(raw) and ev["upstream"] == "a"
    assert not hist.select(where(ev="proxy.frame", agent=ag))
    assert proxy.armed() == []  # one-shot


def test_after_data_frame_delivers_the_frame_then_cuts(proxy, ups, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(1, "ping")
    proxy.arm("close", agent=ag, trigger="after_data_frame")
    ups["a"].emit(ag, shape="dp")  # the data frame and a ping in one chunk: the ping is lost
    raw = c.read_to_eof()
    _, chunks, rest = decode(raw)
    assert rest == b"" and kinds(raw)[-1] == "data"
    assert json.loads(sse_events(chunks)[-1].data)["agent"] == ag
    fault_event(hist, agent=ag, trigger="after_data_frame")


def test_nth_event_cuts_before_the_nth_frame(proxy, hist, clients):
    ag = agent()
    proxy.arm("close", agent=ag, trigger="nth_event(3)")
    c = clients(proxy.port, ag)
    raw = c.read_to_eof()
    assert kinds(raw) == ["ping", "ping"] and decode(raw)[2] == b""
    fault_event(hist, agent=ag, trigger="nth_event(3)")


def test_idle_trigger_fires_right_after_a_ping(proxy, hist, clients):
    ag = agent()
    proxy.arm("reset", agent=ag, trigger="idle")
    c = clients(proxy.port, ag)
    with pytest.raises(ConnectionResetError):
        c.read_to_eof()
    ev = fault_event(hist, agent=ag, trigger="idle")
    assert ev["bytes_down"] > len(b"d\r\nevent: ping\n\n\r\n")


def test_faults_for_one_agent_leave_the_others_alone(proxy, ups, hist, clients):
    x, y = agent(), agent()
    proxy.route_pin("a")
    cx, cy = clients(proxy.port, x), clients(proxy.port, y)
    cx.events(1)
    cy.events(1)
    proxy.arm("close", agent=x)
    cx.read_to_eof()
    ups["a"].emit(y)
    assert "data" in cy.events(1, "data")
    assert [c["open"] for c in proxy.connections(y)] == [True]
    assert not hist.select(where(ev="proxy.fault", agent=y))


def test_switching_between_raw_and_rechunked_relaying_keeps_the_framing(proxy, ups, hist, clients):
    ag = agent()
    c = clients(proxy.port, ag)
    c.events(1)
    for i in range(6):  # a frame-level trigger that never fires makes the relay re-chunk; disarming ends that
        handle = proxy.arm("close", agent=ag, trigger="nth_event(100000)")
        ups["a"].emit(ag, **({"split": 7} if i % 2 else {"shape": "pd"}))
        c.events(2 * i + 1, "data")
        proxy.disarm(handle)
        ups["a"].emit(ag, shape="dp")
        c.events(2 * i + 2, "data")
    status, chunks, _ = decode(c.raw)
    events = sse_events(chunks)
    assert status == 200 and all(e.type in ("ping", "data") for e in events)
    seqs = [json.loads(e.data)["seq"] for e in events if e.type == "data"]
    assert len(seqs) == 12 and seqs == sorted(seqs)


def test_repeat_applies_to_every_new_connection(proxy, hist, clients):
    ag = agent()
    proxy.arm("close", agent=ag, trigger="nth_event(1)", repeat=True)
    for _ in range(2):
        assert clients(proxy.port, ag).read_to_eof().startswith(b"HTTP/1.1 200")
    assert len(hist.select(where(ev="proxy.fault", agent=ag))) == 2
    assert len(proxy.armed()) == 1


# -- routing -------------------------------------------------------------------------------------------
def whoami(proxy: FaultProxy, ag: str | None = None) -> str:
    headers = {"X-Harness-Agent": ag} if ag else {}
    return requests.get(proxy.url + "/whoami", headers=headers, timeout=WAIT_S).json()["upstream"]


def test_round_robin_alternates(proxy, hist):
    assert [whoami(proxy) for _ in range(4)] == ["a", "b", "a", "b"]
    assert [e["upstream"] for e in hist.select(where(ev="proxy.route"))] == ["a", "b", "a", "b"]


def test_pin_only_and_drain_route_new_connections_only(proxy, ups, hist, clients):
    proxy.route_pin("b")
    assert [whoami(proxy), whoami(proxy)] == ["b", "b"]
    proxy.route_only(["a"])
    assert [whoami(proxy), whoami(proxy)] == ["a", "a"]
    ag = agent()
    streaming = clients(proxy.port, ag)
    streaming.events(1)
    proxy.drain("a")
    proxy.route_round_robin()
    assert [whoami(proxy), whoami(proxy)] == ["b", "b"]
    ups["a"].emit(ag)  # the drained upstream's existing stream keeps flowing
    streaming.events(1, "data")
    proxy.undrain("a")
    assert sorted([whoami(proxy), whoami(proxy)]) == ["a", "b"]
    changes = [e["change"] for e in hist.select(where(ev="proxy.route_change"))]
    assert changes == ["pin", "only", "drain", "round_robin", "undrain"]


def test_pinning_to_a_drained_upstream_leaves_nowhere_to_go(proxy, hist, clients):
    proxy.route_pin("a")
    proxy.drain("a")
    c = clients(proxy.port, agent())
    assert c.read_to_eof() == b""
    assert hist.select(where(ev="proxy.close"))[0]["reason"] == "no_upstream"


def test_agent_pin_wins_over_the_policy(proxy):
    x = agent()
    proxy.route_pin("a")
    proxy.pin_agent(x, "b")
    assert [whoami(proxy, x), whoami(proxy), whoami(proxy, x)] == ["b", "a", "b"]
    proxy.pin_agent(x, None)
    assert whoami(proxy, x) == "a"


def test_refused_upstream_closes_the_client_and_round_robin_tries_the_next(ups, hist, clients):
    dead = free_port()
    log = EventLog(None, "proxy", sink=hist.add)
    with FaultProxy({"dead": ("127.0.0.1", dead), "a": ups["a"].addr}, log=log) as p:
        assert whoami(p) == "a"  # round robin: "dead" refused, then "a" once
        routes = hist.select(where(ev="proxy.route"))
        assert [(r["upstream"], r.get("retry")) for r in routes] == [("dead", None), ("a", True)]
        p.route_pin("dead")
        c = clients(p.port, agent())
        with contextlib.suppress(ConnectionResetError):  # also "connection closed" to a client
            assert c.read_to_eof() == b""
        hist.wait_for(where(ev="proxy.close", reason="upstream_refused"), timeout=WAIT_S, what="the close")
        assert len(hist.select(where(ev="proxy.upstream_refused", upstream="dead"))) == 2


def test_set_upstream_after_a_replica_restarts_on_a_new_port(hist, clients):
    first = Upstream("c").launch().ready()
    second = None
    try:
        with FaultProxy({"c": first.addr}, log=EventLog(None, "proxy", sink=hist.add)) as p:
            ag = agent()
            c = clients(p.port, ag)
            c.events(1)
            first.stop()
            with contextlib.suppress(ConnectionResetError):  # a killed replica may leave unread bytes: RST
                c.read_to_eof()
            hist.wait_for(where(ev="proxy.close", agent=ag), timeout=WAIT_S, what="the stream to end")
            assert clients(p.port, ag).read_to_eof() == b""  # nobody listens on the old port
            hist.wait_for(where(ev="proxy.upstream_refused", agent=ag), timeout=WAIT_S, what="the refusal")
            second = Upstream("c").launch().ready()
            p.set_upstream("c", *second.addr)
            clients(p.port, ag).events(1)
            assert p.upstreams == {"c": second.addr}
    finally:
        first.stop()
        if second is not None:
            second.stop()


# -- lifecycle and input ---------------------------------------------------------------------------------
def test_stop_closes_connections_and_is_idempotent(ups, hist, clients):
    p = FaultProxy({"a": ups["a"].addr}, log=EventLog(None, "proxy", sink=hist.add)).start()
    c = clients(p.port, agent())
    c.events(1)
    p.stop()
    c.read_to_eof()
    p.stop()
    assert hist.select(where(ev="proxy.close"))[0]["reason"] == "proxy_stopped"
    with pytest.raises(RuntimeError):
        p.arm("close")


def test_bad_faults_triggers_and_upstreams_are_usage_errors(proxy):
    assert str(Fault.of("delay(200)")) == "delay(200)" and Fault.of("buffer(10)").arg == 10
    assert Trigger.of("nth_event(3)") == Trigger("nth_event", 3)
    for bad in ("explode", "delay", "close(1)", "buffer(0)", "delay(-1)", "idle_cut(0)"):
        with pytest.raises(UsageError):
            Fault.of(bad)
    for bad in ("later", "nth_event", "nth_event(1.5)"):
        with pytest.raises(UsageError):
            Trigger.of(bad)
    with pytest.raises(UsageError, match="unknown upstream 'nope'"):
        proxy.route_pin("nope")
    with pytest.raises(UsageError):
        proxy.arm("close", trigger="sometime")


def test_standalone_process_prints_its_url_and_stops_on_sigterm(ups):
    argv = [sys.executable, "-m", "harness.faults.proxy", "--upstream", f"a=127.0.0.1:{ups['a'].port}"]
    proc = procs.spawn(argv, stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(read_line(proc))["url"]
        assert requests.get(url + "/whoami", timeout=WAIT_S).json() == {"upstream": "a"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0
    finally:
        procs.stop(proc)
    bad = subprocess.run([sys.executable, "-m", "harness.faults.proxy", "--upstream", "nonsense"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
