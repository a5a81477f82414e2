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
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from harness.errors import UsageError
from harness.events import EventLog
from harness.faults.relay import Connection, Side
from harness.faults.routing import Router
from harness.faults.spec import Armed, Fault, FaultBook, Trigger

CALL_TIMEOUT_S = 10.0  # a control call waits this long for the proxy's loop; it answers in microseconds
STOP_GRACE_S = 1.0  # on stop, sockets get this long to finish closing before the loop is torn down
CLOSED_KEPT = 1000  # closed connections remembered for connections(): enough to debug, bounded for soaks


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
        self._conns: dict[str, Connection] = {}
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
        return Side(self._register(Connection(self, f"c{next(self._conn_ids)}")), False)

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
    def _register(self, conn: Connection) -> Connection:
        self._conns[conn.id] = conn
        return conn

    def forget(self, conn: Connection) -> None:
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
