"""The fault proxy: a TCP load balancer between agents and replicas that can cut an SSE stream at a named moment.

How it works. ``FaultProxy`` listens on 127.0.0.1 (an OS-chosen port) and runs its own asyncio loop
(uvloop where installed) in a daemon thread; its public methods are synchronous and thread-safe:
each runs on that loop and returns its result. For every client connection it reads the first
request head *before* choosing an upstream (an L4 balancer with an L7 peek): the agent is
``X-Harness-Agent``, else ``Coder-Session-Token``, else the ``coder_session_token`` cookie. It then
routes the connection once — per-agent pin, else the global policy (round robin, pin, only), never
to a drained upstream — connects, forwards the buffered bytes and relays both directions.

Client → upstream bytes are forwarded raw; request heads are parsed only to log them and to frame
the responses. Upstream → client bytes are parsed by ``httpstream.ResponseParser`` in one of two modes:

- raw (the common case: no frame-level trigger could fire on the connection): each read is written
  to the client as it came, *then* parsed, for the log — the proxy adds one write's latency;
- re-chunked (a frame-level trigger is armed for the connection): heads, last chunks and trailers
  are forwarded raw, chunked bodies are decoded and re-chunked — each upstream chunk goes out as the
  same chunk, except where a read boundary or a cut splits it. That is what lets a fault fire
  *between* two SSE frames even when they share a chunk: the bytes before the cut go out as a
  complete chunk of their own, so the client never sees a broken framing. Bytes are held back only
  while a ``next_data_frame`` trigger waits to see a frame's first line.

The mode changes only where the parser is ``aligned`` (no chunk open), where both views of the
stream agree; with coderd's one-frame-per-write that is at every read. (A trigger armed while a read
ended inside a chunk therefore starts watching at the next chunk boundary.)

Faults (``Fault``) fire on a trigger (``Trigger``) for one agent or all. ``now`` applies to the
matching open connections at once (with ``repeat``, also to every later one); ``on_connect`` to the
next new connection once it reached its upstream, before its request is forwarded; the frame-level
triggers (``next_data_frame``: before the first byte of the next data frame; ``after_data_frame``:
right after one went out; ``nth_event(n)``: before the n-th SSE frame of a connection; ``idle``:
right after a ping went out) fire at the next such moment on any matching connection. Each fires
once, unless armed with ``repeat``. Cuts (close, reset, blackhole) end the relaying at once; a
blackholed connection drops bytes both ways but still notices its client leaving. delay, buffer and
idle_cut are standing effects on the connection until ``disarm``. Bytes the proxy still held
(delayed or buffered) are lost on a cut, as they would be in a real middlebox.

Events (every one carries ``conn``, ``agent`` and ``upstream`` once known): ``proxy.accept`` {client},
``proxy.route`` {policy, retry?}, ``proxy.upstream_refused`` {error}, ``proxy.request`` {method,
path}, ``proxy.response`` {status}, ``proxy.frame`` {type: "data", data} (pings are not logged: too
chatty), ``proxy.fault`` {fault, trigger, handle, bytes_up, bytes_down} — written right after the
fault took effect, so scenarios wait on it rather than sleep — ``proxy.close`` {bytes_up,
bytes_down, reason}, ``proxy.parse_error`` {error}; and, without a connection,
``proxy.route_change`` {change, policy, upstreams, drained, ...}, ``proxy.arm`` / ``proxy.disarm``
{handle, fault, trigger, agent, repeat}. Response and frame events are written after the bytes
went out, so logging adds no latency.

Run standalone (for benchmarks): ``python -m harness.faults.proxy --upstream NAME=HOST:PORT ...``
prints ``{"url": ..., "port": ...}`` as one JSON line and relays until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import re
import signal
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.events import EventLog
from harness.faults import httpstream as hs

CONNECT_TIMEOUT_S = 5.0  # a refused port on 127.0.0.1 fails at once; this bounds a wedged listener
CALL_TIMEOUT_S = 10.0  # a control call waits this long for the proxy's loop; it answers in microseconds
STOP_GRACE_S = 1.0  # on stop, sockets get this long to finish closing before the loop is torn down
TIMER_SLACK_S = 0.001  # loop timers have 1 ms resolution: a delay may end this much early rather than spin
CLOSED_KEPT = 1000  # closed connections remembered for connections(): enough to debug, bounded for soaks
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN

# name → (argument kind, meaning of the argument), for Fault and Trigger
FAULTS: dict[str, type | None] = {"close": None, "reset": None, "blackhole": None,
                                  "delay": float, "buffer": int, "idle_cut": float}
TRIGGERS: dict[str, type | None] = {"now": None, "on_connect": None, "next_data_frame": None,
                                    "after_data_frame": None, "nth_event": int, "idle": None}
FRAME_TRIGGERS = frozenset({"next_data_frame", "after_data_frame", "nth_event", "idle"})
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")


def _parse_spec(spec: str, table: dict[str, type | None], what: str) -> tuple[str, float | None]:
    m = _SPEC.match(spec)
    if not m or m.group(1) not in table:
        raise UsageError(f"unknown {what} {spec!r} (one of: {', '.join(table)})")
    return m.group(1), (float(m.group(2)) if m.group(2) else None)


def _check_arg(name: str, arg: float | None, kind: type | None, what: str) -> float | None:
    if kind is None:
        if arg is not None:
            raise UsageError(f"{what} {name!r} takes no argument")
        return None
    if arg is None or arg < 0 or (kind is int and (arg != int(arg) or arg < 1)):
        raise UsageError(f"{what} {name!r} needs a {'positive whole' if kind is int else 'non-negative'} "
                         f"argument, e.g. {name}(5)")
    return int(arg) if kind is int else float(arg)


@dataclass(frozen=True)
class Fault:
    """What to do to a connection: ``close``, ``reset``, ``blackhole``, ``delay(ms)``, ``buffer(n_bytes)``,
    ``idle_cut(seconds)``."""
    kind: str
    arg: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise UsageError(f"unknown fault {self.kind!r} (one of: {', '.join(FAULTS)})")
        object.__setattr__(self, "arg", _check_arg(self.kind, self.arg, FAULTS[self.kind], "fault"))
        if self.kind == "idle_cut" and not self.arg:
            raise UsageError("fault 'idle_cut' needs a positive number of seconds, e.g. idle_cut(30)")

    @classmethod
    def of(cls, spec: Fault | str) -> Fault:
        return spec if isinstance(spec, Fault) else cls(*_parse_spec(spec, FAULTS, "fault"))

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}({self.arg:g})"


@dataclass(frozen=True)
class Trigger:
    """When: ``now``, ``on_connect``, ``next_data_frame``, ``after_data_frame``, ``nth_event(n)``, ``idle``."""
    kind: str
    n: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRIGGERS:
            raise UsageError(f"unknown trigger {self.kind!r} (one of: {', '.join(TRIGGERS)})")
        object.__setattr__(self, "n", _check_arg(self.kind, self.n, TRIGGERS[self.kind], "trigger"))

    @classmethod
    def of(cls, spec: Trigger | str) -> Trigger:
        if isinstance(spec, Trigger):
            return spec
        kind, arg = _parse_spec(spec, TRIGGERS, "trigger")
        return cls(kind, arg)  # type: ignore[arg-type]  # __post_init__ makes it an int

    def __str__(self) -> str:
        return self.kind if self.n is None else f"{self.kind}({self.n})"


@dataclass(frozen=True)
class Armed:
    handle: int
    fault: Fault
    trigger: Trigger
    agent: str | None
    repeat: bool

    def matches(self, agent: str | None) -> bool:
        return self.agent is None or self.agent == agent

    def fields(self) -> dict[str, Any]:
        return {"handle": self.handle, "fault": str(self.fault), "trigger": str(self.trigger), "agent": self.agent,
                "repeat": self.repeat}


class FaultBook:
    """Armed faults and the moments they wait for. Loop thread only."""

    def __init__(self) -> None:
        self.armed: dict[int, Armed] = {}  # until disarmed: standing effects are lifted through it
        self.active: list[Armed] = []  # still waiting for their trigger

    def add(self, armed: Armed) -> None:
        self.armed[armed.handle] = armed
        if armed.trigger.kind != "now" or armed.repeat:  # a one-shot "now" is applied at once and done
            self.active.append(armed)

    def remove(self, handle: int) -> Armed | None:
        armed = self.armed.pop(handle, None)
        if armed in self.active:
            self.active.remove(armed)
        return armed

    def wants_frames(self, agent: str | None) -> bool:
        """Whether a frame-level trigger could fire for ``agent``: its bytes must then be relayed re-chunked."""
        return bool(self.active) and any(a.trigger.kind in FRAME_TRIGGERS and a.matches(agent) for a in self.active)

    def wants(self, agent: str | None, trigger: str) -> bool:
        return any(a.trigger.kind == trigger and a.matches(agent) for a in self.active)

    def take(self, agent: str | None, trigger: str, n: int | None = None) -> list[Armed]:
        """Faults that fire for ``agent`` at this moment; one-shot ones are used up."""
        if not self.active:
            return []
        hits = [a for a in self.active if a.trigger.kind == trigger and a.trigger.n == n and a.matches(agent)]
        for a in hits:
            if not a.repeat:
                self.active.remove(a)
        return hits

    def opening(self, agent: str | None) -> list[Armed]:
        """For a new connection: the next ``on_connect`` faults, and every repeating ``now`` fault."""
        return self.take(agent, "on_connect") + [a for a in self.active if a.trigger.kind == "now" and a.matches(agent)]


class Router:
    """Where a new connection goes: per-agent pin, else the policy; never a drained upstream. Loop thread only."""

    def __init__(self, upstreams: dict[str, tuple[str, int]]) -> None:
        self.addrs: dict[str, tuple[str, int]] = {}
        for name, (host, port) in upstreams.items():
            self.set(name, host, port)
        self.policy = "round_robin"
        self.chosen: list[str] = []  # the pinned upstream, or the "only" set
        self.drained: set[str] = set()
        self.pins: dict[str, str] = {}
        self._rr = 0

    def known(self, name: str) -> str:
        if name not in self.addrs:
            raise UsageError(f"unknown upstream {name!r} (known: {', '.join(self.addrs) or 'none'})")
        return name

    def set(self, name: str, host: str, port: int) -> None:
        if not name or not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"bad upstream {name!r} = {host}:{port} (want NAME and a port 1-65535)")
        self.addrs[name] = (host, port)

    def choose(self, agent: str | None) -> tuple[str, list[str]]:
        """(policy that decided, upstreams to try in order: a second one only for round robin)."""
        if agent is not None and agent in self.pins:
            name = self.pins[agent]
            return "agent_pin", [name] if name in self.addrs and name not in self.drained else []
        names = self.chosen if self.policy in ("pin", "only") else list(self.addrs)
        live = [n for n in names if n in self.addrs and n not in self.drained]
        if not live:
            return self.policy, []
        i = self._rr % len(live)
        self._rr += 1
        if self.policy == "round_robin" and len(live) > 1:
            return self.policy, [live[i], live[(i + 1) % len(live)]]
        return self.policy, [live[i]]

    def state(self) -> dict[str, Any]:
        return {"policy": self.policy, "upstreams": list(self.chosen) if self.policy != "round_robin" else None,
                "drained": sorted(self.drained)}


class _Downstream:
    """Upstream → client bytes of one connection: re-chunked, then through buffer and delay, to the socket."""

    def __init__(self, conn: _Conn) -> None:
        self._conn, self._loop = conn, conn.loop
        self.chunked = False
        self._out, self._chunk = bytearray(), bytearray()
        self.buffer_n = 0
        self._buffered = bytearray()
        self.delay_s = 0.0
        self._queue: deque[tuple[float, bytes]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._then: Callable[[], None] | None = None

    def raw(self, data: bytes) -> None:
        self._seal()
        self._out += data

    def body(self, data: bytes) -> None:
        if self.chunked:
            self._chunk += data
        else:
            self._out += data

    def end_chunk(self) -> None:
        """The upstream's chunk ended: so does ours (same bytes out as in, unless a read or a cut split it)."""
        self._seal()

    def _seal(self) -> None:
        if self._chunk:
            self._out += hs.encode_chunk(bytes(self._chunk))
            self._chunk.clear()

    def passthrough(self, data: bytes) -> None:
        """Bytes that need no framing: straight on, through buffer and delay."""
        if self._out or self._chunk:
            self.raw(data)
            self.flush()
        else:
            self._stage(data)

    def flush(self) -> None:
        """Everything parsed so far goes on: framed, through buffer and delay."""
        self._seal()
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        self._stage(data)

    def _stage(self, data: bytes) -> None:
        if self.buffer_n:
            self._buffered += data
            if len(self._buffered) < self.buffer_n:
                return
            data = bytes(self._buffered)
            self._buffered.clear()
        self._send(data)

    def release(self) -> None:
        """Let go of buffered bytes (the buffer fault was lifted, or the upstream finished)."""
        if self._buffered:
            data = bytes(self._buffered)
            self._buffered.clear()
            self._send(data)

    def _send(self, data: bytes) -> None:
        if not self.delay_s and not self._queue:
            self._conn.write_client(data)
            return
        due = self._loop.time() + self.delay_s
        if self._queue:
            due = max(due, self._queue[-1][0])  # order is kept even when the delay shrinks
        self._queue.append((due, data))
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._due)

    def _due(self) -> None:
        self._timer = None
        now = self._loop.time() + TIMER_SLACK_S
        while self._queue and self._queue[0][0] <= now:
            self._conn.write_client(self._queue.popleft()[1])
        if self._queue:
            self._timer = self._loop.call_at(self._queue[0][0], self._due)
        elif self._then is not None:
            then, self._then = self._then, None
            then()

    def finish(self, then: Callable[[], None]) -> None:
        """The upstream is done: send what is held (delayed bytes keep their delay), then ``then()``."""
        self.flush()
        self.release()
        if self._queue:
            self._then = then
        else:
            then()

    def discard(self) -> None:
        self._out.clear()
        self._chunk.clear()
        self._buffered.clear()
        self._queue.clear()
        self._then = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Side(asyncio.Protocol):
    """One socket of a relayed connection; everything goes to its ``_Conn``."""

    def __init__(self, conn: _Conn, upstream: bool) -> None:
        self.conn, self.upstream = conn, upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.made(self.upstream, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self.upstream:
            self.conn.from_server(data)
        else:
            self.conn.from_client(data)

    def eof_received(self) -> bool:
        return self.conn.eof(self.upstream)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self.upstream, exc)

    def pause_writing(self) -> None:
        self.conn.flow(self.upstream, paused=True)

    def resume_writing(self) -> None:
        self.conn.flow(self.upstream, paused=False)


class _Relay:
    """Upstream → client for one connection: parse, forward raw or re-chunked, fire frame-level triggers."""

    def __init__(self, conn: _Conn) -> None:
        self.conn, self.proxy, self.down = conn, conn.proxy, conn.down
        self.parser = hs.ResponseParser()
        self.held: list[bytes] | None = None  # a frame's first bytes, while it is unknown whether it is data
        self.exact = False  # relaying re-chunked (a frame-level trigger may fire) rather than raw
        self.done = False  # the upstream finished

    def _cut(self) -> bool:
        return self.conn.state != "open" or self.conn.blackholed

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.done = not data
        if self.parser.aligned:  # raw and re-chunked bytes agree here, so the mode may change
            self.exact = self.held is not None or self.proxy.faults.wants_frames(self.conn.agent)
        self.parser.bodies = self.exact
        if self.exact:
            if not self._relay_exact(data):
                return  # a fault cut the stream in this read
        else:
            self._relay_raw(data)
        if not data:
            self.down.finish(lambda: self.conn.close("upstream_closed"))

    def _relay_raw(self, data: bytes) -> None:
        """No frame trigger can fire here: the bytes go out as they came, then are parsed for the log."""
        if data:
            self.down.passthrough(data)
        for ev in self.parser.feed(data):
            kind = type(ev)
            if kind is hs.FrameEnd:
                if ev.type == "data":  # type: ignore[union-attr]
                    self._log_frame(ev)  # type: ignore[arg-type]
            elif kind is hs.ResponseHead or kind is hs.End or kind is hs.Broken:
                self._observe(ev)
        self.conn.emit_later()

    def _relay_exact(self, data: bytes) -> bool:
        """Forward the parsed stream re-chunked, so a fault can fire between any two frames; False if one cut it."""
        for ev in self.parser.feed(data):
            kind = type(ev)
            if kind is hs.Data:
                if self.held is not None:
                    self.held.append(ev.data)  # type: ignore[union-attr]
                else:
                    self.down.body(ev.data)  # type: ignore[union-attr]
            elif kind is hs.FrameStart:
                self.conn.fire_all("nth_event", ev.index)  # type: ignore[union-attr]
                if not self._cut() and self.proxy.faults.wants(self.conn.agent, "next_data_frame"):
                    self.held = []
            elif kind is hs.FrameType:
                self._frame_type(ev.type)  # type: ignore[union-attr]
            elif kind is hs.FrameEnd:
                self._frame_end(ev)  # type: ignore[arg-type]
            elif kind is hs.ChunkEnd:
                if self.held is None:
                    self.down.end_chunk()
            else:
                self._release_held()
                raw = ev.data if kind is hs.Tunnel else getattr(ev, "raw", b"")  # type: ignore[union-attr]
                if raw:
                    self.down.raw(raw)
                self._observe(ev)
            if self._cut():
                return False  # the rest is lost in flight
        self.down.flush()
        self.conn.emit_later()
        return True

    def _observe(self, ev: hs.Event) -> None:
        """What a message boundary changes, whichever way the bytes went out."""
        if type(ev) is hs.ResponseHead:
            self.down.chunked = ev.body == "chunked"
            self.conn.later("proxy.response", status=ev.status)
            if ev.body == "tunnel":
                self.conn.requests.tunnel()
        elif type(ev) is hs.End:
            self.down.chunked = False
        elif type(ev) is hs.Broken:
            self.conn.later("proxy.parse_error", error=ev.reason)

    def _frame_type(self, frame_type: str) -> None:
        if self.held is None:
            return
        if frame_type == "data":
            self.conn.fire_all("next_data_frame")
            if self._cut():
                return
        self._release_held()

    def _release_held(self) -> None:
        held, self.held = self.held, None
        for piece in held or ():
            self.down.body(piece)

    def _frame_end(self, ev: hs.FrameEnd) -> None:
        if ev.type == "data":
            self._log_frame(ev)
            self.conn.fire_all("after_data_frame")
        elif ev.type == "ping":
            self.conn.fire_all("idle")

    def _log_frame(self, ev: hs.FrameEnd) -> None:
        self.conn.later("proxy.frame", type="data", data=ev.data.decode("utf-8", "replace"))


class _Conn:
    """One client connection and its upstream: peek, route, connect, relay, parse, fire faults."""

    def __init__(self, proxy: FaultProxy, cid: str) -> None:
        self.proxy, self.id, self.loop = proxy, cid, proxy.loop
        self.agent: str | None = None
        self.upstream: str | None = None
        self.client: asyncio.Transport | None = None
        self.server: asyncio.Transport | None = None
        self.state = "peek"  # peek → connecting → open → closed
        self.bytes_up = self.bytes_down = 0
        self.reason = ""
        self.requests = hs.RequestParser()
        self.requests.bodies = False  # request bytes are forwarded raw: only heads matter
        self.down = _Downstream(self)
        self.relay = _Relay(self)
        self.blackholed = False
        self.applied: set[int] = set()  # handles of faults already applied here (each applies once per connection)
        self.effects: dict[int, Fault] = {}  # standing effects (delay, buffer, idle_cut) by handle
        self._early = bytearray()  # client bytes read before the upstream answered
        self._heads: list[hs.RequestHead] = []  # request heads read during the peek, logged once routed
        self._later: list[tuple[str, dict[str, Any]]] = []  # events written after the bytes went out
        self._idle_s = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._client_eof = False  # the client half-closed before the upstream answered
        self.last_io = self.loop.time()

    def tags(self) -> dict[str, Any]:
        return {"conn": self.id, "agent": self.agent, "upstream": self.upstream}

    def summary(self) -> dict[str, Any]:
        return {**self.tags(), "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "open": self.state != "closed", "reason": self.reason or None}

    # -- sockets -----------------------------------------------------------------------------
    def made(self, upstream: bool, transport: asyncio.Transport) -> None:
        self.proxy.sockets += 1
        if upstream:
            self.server = transport
            if self.state == "closed":  # the client left while we were connecting
                transport.close()
            return
        self.client = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.proxy.log.emit("proxy.accept", conn=self.id, client=f"{peer[0]}:{peer[1]}")

    def from_client(self, data: bytes) -> None:
        self.last_io = self.loop.time()
        if self.state == "open":
            if self.blackholed:
                return
            assert self.server is not None
            self.server.write(data)
            self.bytes_up += len(data)
            self._requests(data)
        elif self.state in ("peek", "connecting"):
            self._early += data
            heads = self._requests(data)
            if self.state == "peek" and (heads or self.requests.error):
                if heads:
                    self.agent = hs.agent_of(heads[0])
                self.state = "connecting"
                assert self.client is not None
                self.client.pause_reading()
                self.proxy.track(self.loop.create_task(self._connect()))

    def _requests(self, data: bytes) -> list[hs.RequestHead]:
        heads = [ev for ev in self.requests.feed(data) if type(ev) is hs.RequestHead]
        for head in heads:
            self.relay.parser.expect(head.method)
            if self.state == "open":
                self.proxy.log.emit("proxy.request", **self.tags(), method=head.method, path=head.target)
            else:
                self._heads.append(head)
        return heads

    async def _connect(self) -> None:
        policy, names = self.proxy.router.choose(self.agent)
        if not names:
            self.proxy.log.emit("proxy.route", **self.tags(), policy=policy)
            self.close("no_upstream")
            return
        for i, name in enumerate(names):
            self.upstream = name
            self.proxy.log.emit("proxy.route", **self.tags(), policy=policy, **({"retry": True} if i else {}))
            host, port = self.proxy.router.addrs.get(name, ("127.0.0.1", 0))
            try:
                await asyncio.wait_for(self.loop.create_connection(lambda: _Side(self, True), host, port),
                                       CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError) as e:
                self.proxy.log.emit("proxy.upstream_refused", **self.tags(), error=str(e) or type(e).__name__)
                continue
            if self.state == "closed":
                return
            self._opened()
            return
        self.close("upstream_refused")

    def _opened(self) -> None:
        assert self.client is not None and self.server is not None
        self.state = "open"
        for armed in self.proxy.faults.opening(self.agent):
            if self.state == "open" and armed.handle not in self.applied:
                self.apply(armed, str(armed.trigger))
        if self.state != "open":
            return
        if not self.blackholed:
            self.server.write(bytes(self._early))
            self.bytes_up += len(self._early)
        self._early.clear()
        for head in self._heads:
            self.proxy.log.emit("proxy.request", **self.tags(), method=head.method, path=head.target)
        self._heads.clear()
        if self._client_eof and not self.blackholed and self.server.can_write_eof():
            self.server.write_eof()
        self.client.resume_reading()

    def write_client(self, data: bytes) -> None:
        if self.state == "open" and self.client is not None:
            self.client.write(data)
            self.bytes_down += len(data)

    def eof(self, upstream: bool) -> bool:
        if self.state == "closed":
            return False
        if not upstream:
            if self.state == "open" and not self.blackholed and self.server is not None:
                if self.server.can_write_eof():
                    self.server.write_eof()  # a half-close: the upstream may still answer
                return True
            if self.state == "connecting":
                self._client_eof = True
                return True
            self.close("client_closed" if self.state == "open" else "no_request")
            return False
        if not self.blackholed:  # a blackholed client never hears that the upstream went away
            self.from_server(b"")
        return False

    def lost(self, upstream: bool, exc: Exception | None) -> None:
        self.proxy.sockets -= 1
        if self.state == "closed":
            return
        if not upstream:
            self.close("client_error" if exc else "client_closed")
        elif not self.blackholed:
            self.from_server(b"")

    def flow(self, upstream: bool, *, paused: bool) -> None:
        """Backpressure: a socket that cannot take more stops reading on the other one."""
        other = self.client if upstream else self.server
        if other is None or self.state != "open":
            return
        if paused:
            other.pause_reading()
        elif not other.is_closing():
            other.resume_reading()

    # -- upstream → client -------------------------------------------------------------------
    def from_server(self, data: bytes) -> None:
        self.last_io = self.loop.time()
        if self.state == "open" and not self.blackholed:
            self.relay.feed(data)

    def later(self, name: str, **fields: Any) -> None:
        """An event to write once the bytes being relayed went out (logging stays off the latency path)."""
        self._later.append((name, {**self.tags(), **fields}))

    def emit_later(self) -> None:
        later, self._later = self._later, []
        for name, fields in later:
            self.proxy.log.emit(name, **fields)

    # -- faults --------------------------------------------------------------------------------
    def fire_all(self, trigger: str, n: int | None = None) -> None:
        for armed in self.proxy.faults.take(self.agent, trigger, n):
            self.apply(armed, str(Trigger(trigger, n)))
            if self.state != "open" or self.blackholed:
                return

    def apply(self, armed: Armed, trigger: str) -> None:
        """Make the fault take effect here, now; then log it."""
        self.applied.add(armed.handle)
        self.down.flush()  # what came before the cut goes out, correctly framed
        self.emit_later()
        fault = armed.fault
        event = {**self.tags(), "fault": str(fault), "trigger": trigger, "handle": armed.handle}
        if fault.kind in ("close", "reset"):
            self.close(f"fault:{fault.kind}", reset=fault.kind == "reset", fault_event=event)
            return
        if fault.kind == "blackhole":
            self.blackholed = True
            self.relay.held = None
            self.down.discard()
        else:
            self.effects[armed.handle] = fault
            self._effects_changed()
        self.proxy.log.emit("proxy.fault", **event, bytes_up=self.bytes_up, bytes_down=self.bytes_down)

    def lift(self, handle: int) -> None:
        if self.effects.pop(handle, None) is not None and self.state == "open":
            self._effects_changed()

    def _effects_changed(self) -> None:
        def strongest(kind: str) -> float:
            return max((f.arg or 0.0 for f in self.effects.values() if f.kind == kind), default=0.0)
        self.down.delay_s = strongest("delay") / 1000
        self.down.buffer_n = int(strongest("buffer"))
        if not self.down.buffer_n:
            self.down.release()
        idle_s = min((f.arg or 0.0 for f in self.effects.values() if f.kind == "idle_cut"), default=0.0)
        if idle_s != self._idle_s:
            self._idle_s = idle_s
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            if idle_s:
                self._idle_timer = self.loop.call_at(self.last_io + idle_s, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self.state != "open" or not self._idle_s:
            return
        due = self.last_io + self._idle_s
        if self.loop.time() + TIMER_SLACK_S >= due:
            self.close("idle_cut")
        else:
            self._idle_timer = self.loop.call_at(due, self._idle_check)

    def close(self, reason: str, *, reset: bool = False, fault_event: dict[str, Any] | None = None) -> None:
        """Close both sides (idempotent); ``reset`` sends the client an RST instead of a FIN."""
        if self.state == "closed":
            return
        self.state, self.reason = "closed", reason
        self.down.discard()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self.client is not None:
            if reset:
                sock = self.client.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                self.client.abort()
            else:
                self.client.close()
        if self.server is not None:
            self.server.close()
        self.emit_later()
        if fault_event is not None:
            self.proxy.log.emit("proxy.fault", **fault_event, bytes_up=self.bytes_up, bytes_down=self.bytes_down)
        self.proxy.log.emit("proxy.close", **self.tags(), bytes_up=self.bytes_up, bytes_down=self.bytes_down,
                            reason=reason)
        self.proxy.forget(self)


class FaultProxy:
    """A load balancer with fault triggers, on its own loop thread; every public method is thread-safe."""

    def __init__(self, upstreams: dict[str, tuple[str, int]], *, log: EventLog | None = None) -> None:
        self.log = log if log is not None else EventLog(None, "proxy")
        self.router = Router(upstreams)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.port = 0
        self.sockets = 0  # open sockets, client and upstream sides
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[str, _Conn] = {}
        self._closed: deque[dict[str, Any]] = deque(maxlen=CLOSED_KEPT)
        self.faults = FaultBook()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        with self._lock:
            if self._thread is not None:
                return self
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(target=self._main, args=(ready,), name="fault-proxy", daemon=True)
            self._thread.start()
        try:
            ready.result(CALL_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:  # Windows or a minimal install: the standard loop, only slower
            loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            self._server = loop.run_until_complete(loop.create_server(self._accept, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as e:
            loop.close()
            ready.set_exception(e)
            return
        ready.set_result(None)
        try:
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            loop.close()

    def _accept(self) -> asyncio.Protocol:
        return _Side(self._register(_Conn(self, f"c{next(self._conn_ids)}")), False)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.close("proxy_stopped")
        for task in self._tasks:
            task.cancel()
        deadline = self.loop.time() + STOP_GRACE_S
        while (self.sockets > 0 or self._tasks) and self.loop.time() < deadline:
            await asyncio.sleep(0.005)  # sockets report connection_lost on the next loop iterations

    def stop(self) -> None:
        """Close every connection, stop the loop, join the thread; idempotent."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("FaultProxy.stop() from the proxy's own loop would wait for itself")
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        if thread.is_alive() and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        thread.join(CALL_TIMEOUT_S)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the proxy's loop and return its result (or raise its exception) here."""
        if self._thread is None:
            raise RuntimeError("the fault proxy is not running (call start() first)")
        if threading.current_thread() is self._thread:
            return fn(*args)
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(fn(*args))
            except BaseException as e:
                result.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return result.result(CALL_TIMEOUT_S)

    # -- routing (new connections only) --------------------------------------------------------
    def _route_change(self, change: str, **fields: Any) -> None:
        self.log.emit("proxy.route_change", change=change, **self.router.state(), **fields)

    def route_round_robin(self) -> None:
        def do() -> None:
            self.router.policy, self.router.chosen = "round_robin", []
            self._route_change("round_robin")
        self._call(do)

    def route_pin(self, name: str) -> None:
        def do() -> None:
            self.router.policy, self.router.chosen = "pin", [self.router.known(name)]
            self._route_change("pin")
        self._call(do)

    def route_only(self, names: Iterable[str]) -> None:
        wanted = list(names)

        def do() -> None:
            self.router.policy, self.router.chosen = "only", [self.router.known(n) for n in wanted]
            self._route_change("only")
        self._call(do)

    def drain(self, name: str) -> None:
        self._call(lambda: (self.router.drained.add(self.router.known(name)), self._route_change("drain", name=name)))

    def undrain(self, name: str) -> None:
        self._call(lambda: (self.router.drained.discard(self.router.known(name)),
                            self._route_change("undrain", name=name)))

    def pin_agent(self, agent_id: str, name: str | None) -> None:
        def do() -> None:
            if name is None:
                self.router.pins.pop(agent_id, None)
            else:
                self.router.pins[agent_id] = self.router.known(name)
            self._route_change("pin_agent", agent=agent_id, name=name)
        self._call(do)

    def set_upstream(self, name: str, host: str, port: int) -> None:
        self._call(lambda: (self.router.set(name, host, port),
                            self._route_change("set_upstream", name=name, host=host, port=port)))

    def remove_upstream(self, name: str) -> None:
        self._call(lambda: (self.router.addrs.pop(self.router.known(name)),
                            self._route_change("remove_upstream", name=name)))

    @property
    def upstreams(self) -> dict[str, tuple[str, int]]:
        return self._call(lambda: dict(self.router.addrs))

    # -- faults --------------------------------------------------------------------------------
    def arm(self, fault: Fault | str, *, agent: str | None = None, trigger: Trigger | str = "now",
            repeat: bool = False) -> int:
        """Arm a fault; returns its handle. ``repeat``: fire at every matching moment, not just the next one."""
        armed = Armed(next(self._ids), Fault.of(fault), Trigger.of(trigger), agent, repeat)
        return self._call(self._arm, armed)

    def _arm(self, armed: Armed) -> int:
        self.faults.add(armed)
        self.log.emit("proxy.arm", **armed.fields())
        if armed.trigger.kind == "now":
            for conn in list(self._conns.values()):
                if conn.state == "open" and armed.matches(conn.agent) and armed.handle not in conn.applied:
                    conn.apply(armed, "now")
        return armed.handle

    def disarm(self, handle: int) -> bool:
        """Stop a fault from firing and lift its standing effect (delay, buffer, idle_cut); False if unknown."""
        def do() -> bool:
            armed = self.faults.remove(handle)
            if armed is None:
                return False
            for conn in self._conns.values():
                conn.lift(handle)
            self.log.emit("proxy.disarm", **armed.fields())
            return True
        return self._call(do)

    def armed(self) -> list[dict[str, Any]]:
        """Faults still waiting for their trigger."""
        return self._call(lambda: [a.fields() for a in self.faults.active])

    # -- connections ---------------------------------------------------------------------------
    def _register(self, conn: _Conn) -> _Conn:
        self._conns[conn.id] = conn
        return conn

    def forget(self, conn: _Conn) -> None:
        if self._conns.pop(conn.id, None) is not None:
            self._closed.append(conn.summary())

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connections(self, agent: str | None = None) -> list[dict[str, Any]]:
        """Open and recently closed connections (of one agent, or all), oldest first."""
        def do() -> list[dict[str, Any]]:
            every = list(self._closed) + [c.summary() for c in self._conns.values()]
            every.sort(key=lambda s: int(s["conn"][1:]))
            return [s for s in every if agent is None or s["agent"] == agent]
        return self._call(do)


def _upstream_flag(value: str) -> tuple[str, tuple[str, int]]:
    name, sep, addr = value.partition("=")
    host, colon, port = addr.rpartition(":")
    if not sep or not name or not colon or not port.isdigit():
        raise argparse.ArgumentTypeError(f"want NAME=HOST:PORT, got {value!r}")
    return name, (host or "127.0.0.1", int(port))


def main(argv: list[str] | None = None) -> int:
    from harness.cli import OneLineParser

    p = OneLineParser(prog="python -m harness.faults.proxy", description="Run a fault proxy until SIGTERM.")
    p.add_argument("--upstream", action="append", type=_upstream_flag, required=True, metavar="NAME=HOST:PORT")
    p.add_argument("--log", help="append proxy events to this JSONL file")
    p.add_argument("--src", default="proxy", help="event source name (proxy)")
    args = p.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log = EventLog(args.log, args.src)
    try:
        with FaultProxy(dict(args.upstream), log=log) as proxy:
            print(json.dumps({"url": proxy.url, "port": proxy.port}), flush=True)
            while not stop.wait(1.0):  # timed: a signal is noticed within a second whatever the platform
                pass
    except UsageError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
