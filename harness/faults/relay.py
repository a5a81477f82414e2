"""One proxied connection: both sockets, the HTTP/SSE parse of what flows, and the faults applied to it.

Client → upstream bytes go out raw; upstream → client bytes are forwarded as read, or — while a
frame-level trigger is armed — decoded and re-chunked so a cut between two frames leaves the client a
correctly framed stream.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.faults import httpstream as hs
from harness.faults.spec import Armed, Fault, Trigger

if TYPE_CHECKING:
    from harness.faults.proxy import FaultProxy

CONNECT_TIMEOUT_S = 5.0  # a refused port on 127.0.0.1 fails at once; this bounds a wedged listener
TIMER_SLACK_S = 0.001  # loop timers have 1 ms resolution: a delay may end this much early rather than spin
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


class Downstream:
    """Upstream → client bytes of one connection: re-chunked, then through buffer and delay, to the socket."""

    def __init__(self, conn: Connection) -> None:
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


class Side(asyncio.Protocol):
    """One socket of a relayed connection; everything goes to its ``Connection``."""

    def __init__(self, conn: Connection, upstream: bool) -> None:
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


class Relay:
    """Upstream → client for one connection: parse, forward raw or re-chunked, fire frame-level triggers."""

    def __init__(self, conn: Connection) -> None:
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


class Connection:
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
        self.down = Downstream(self)
        self.relay = Relay(self)
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
                await asyncio.wait_for(self.loop.create_connection(lambda: Side(self, True), host, port),
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
