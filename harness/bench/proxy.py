"""harness bench proxy: the latency the fault proxy adds to one SSE event, and events/s through it.

Three OS processes, so no GIL is shared: an SSE source (``python -m harness.bench.proxy source``)
that writes like coderd (nothing, headers included, until the first frame; chunked; one frame per
write) and stamps each data frame with CLOCK_MONOTONIC; the proxy (``python -m harness.faults.proxy``,
logging its events to a file as it does in a run, no fault armed); and this process, which reads
and stamps arrivals. CLOCK_MONOTONIC is system-wide, so one-way latency = arrival − stamp.

Paced phase: one event per millisecond, read in alternating blocks directly from the source and
through the proxy, so that drift on a shared machine hits both paths alike; the first events of
each connection warm it up and are not counted. Added latency is the via-proxy percentile minus the
direct one. (Reading both paths at once, one event fanned out to two connections, was tried: the
doubled work in source and reader on two cores inflated the direct baseline fivefold.) Burst phase:
ten times as many events as fast as the source writes them, each path alone; throughput = events /
(last arrival − first stamp), and the proxy's CPU time per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from harness import aio, procs
from harness.bench.stats import percentile
from harness.protocol.sse import data_frame

PACE_S = 0.001  # one event per millisecond: far below what either path can carry, so no queueing
BLOCKS = 8  # alternating direct/proxy blocks: fine enough that drift on a noisy host hits both paths
WARMUP = 5  # events not counted at the start of each connection (connect, first head, cold caches)
BURST_FACTOR = 10  # burst events per paced event: long enough to measure a rate, not just a blip
READ_TIMEOUT_S = 60.0
_FRAME = re.compile(rb'data: \{"i":(\d+),"m":([0-9.]+)\}\n')
_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
         b"Connection: keep-alive\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n")


# -- the source process ----------------------------------------------------------------------------------
class _Source(asyncio.Protocol):
    """One connection: read the request head, join its group, and once the group is complete stream ``n``
    frames to all its members, paced by ``pace_us`` (0: a burst)."""

    groups: ClassVar[dict[str, list[asyncio.Transport]]] = {}  # connections waiting for the rest of their group

    def __init__(self) -> None:
        self._buf = b""
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is not None or b"\r\n\r\n" not in self._buf:
            return
        q = {k: v[0] for k, v in parse_qs(urlsplit(self._buf.split(b" ", 2)[1].decode()).query).items()}
        group = q.get("group", str(id(self)))
        members = self.groups.setdefault(group, [])
        members.append(self._transport)
        if len(members) == int(q.get("members", "1")):
            del self.groups[group]
            self._task = asyncio.get_running_loop().create_task(
                _stream(members, int(q.get("n", "1")), int(q.get("pace_us", "0")) / 1e6))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()


async def _stream(members: list[asyncio.Transport], n: int, pace_s: float) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    for i in range(n):
        if pace_s:
            due += pace_s
            await asyncio.sleep(max(0.0, due - loop.time()))
        elif i % 64 == 0:
            await asyncio.sleep(0)  # a burst still lets the loop breathe
        frame = data_frame(b'{"i":%d,"m":%.9f}' % (i, time.monotonic()))
        chunk = (_HEAD if i == 0 else b"") + b"%x\r\n%b\r\n" % (len(frame), frame)
        for t in members[::-1] if i % 2 else members:  # alternate who is written first, if several
            t.write(chunk)
    for t in members:
        t.write(b"0\r\n\r\n")


async def _serve_source() -> None:
    server = await asyncio.get_running_loop().create_server(_Source, "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


# -- the reading side ------------------------------------------------------------------------------------
class _Reader:
    """One streaming connection: the chunked body decoded incrementally (a proxy may split a chunk where a
    read ended), and (stamp, arrival) per event index."""

    def __init__(self, port: int, query: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S)
        self.sock.sendall(f"GET /stream?{query} HTTP/1.1\r\nHost: bench\r\nX-Harness-Agent: bench\r\n\r\n".encode())
        self.got: dict[int, tuple[float, float]] = {}
        self._raw, self._body = b"", b""
        self._head = True
        self._left = 0  # body bytes left in the current chunk
        self._crlf = False  # the CRLF after a chunk's data is still to skip

    def read(self) -> None:
        data = self.sock.recv(1 << 18)
        now = time.monotonic()
        if not data:
            raise RuntimeError(f"stream ended after {len(self.got)} events")
        self._body += self._dechunk(data)
        last = 0
        for m in _FRAME.finditer(self._body):
            self.got[int(m.group(1))] = (float(m.group(2)), now)
            last = m.end()
        self._body = self._body[last:]

    def _dechunk(self, data: bytes) -> bytes:
        buf, out = self._raw + data, []
        if self._head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._raw = buf
                return b""
            buf, self._head = buf[end + 4:], False
        while buf:
            if self._left:
                out.append(buf[:self._left])
                self._left -= len(out[-1])
                buf = buf[len(out[-1]):]
                self._crlf = not self._left
                continue
            if self._crlf:
                if len(buf) < 2:
                    break
                buf, self._crlf = buf[2:], False
            nl = buf.find(b"\r\n")
            if nl < 0:
                break
            self._left, buf = int(buf[:nl], 16), buf[nl + 2:]
            if not self._left:
                break
        self._raw = buf
        return b"".join(out)


def _read_all(ports: dict[str, int], n: int, pace_us: int) -> dict[str, dict[int, tuple[float, float]]]:
    """Events ``0..n-1`` of one source group read over one connection per path, all in this thread."""
    group = f"g{time.monotonic_ns()}"
    readers = {path: _Reader(port, f"n={n}&pace_us={pace_us}&group={group}&members={len(ports)}")
               for path, port in ports.items()}
    deadline = time.monotonic() + READ_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        for path, r in readers.items():
            sel.register(r.sock, selectors.EVENT_READ, path)
        try:
            while any(len(r.got) < n for r in readers.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"read {[len(r.got) for r in readers.values()]} of {n} events in time")
                for key, _ in sel.select(1.0):
                    readers[key.data].read()
        finally:
            for r in readers.values():
                r.sock.close()
    return {path: r.got for path, r in readers.items()}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(argv: list[str]) -> tuple[subprocess.Popen, int]:
    """A helper process and the port it printed once listening."""
    proc = procs.spawn(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        procs.stop(proc)
        raise RuntimeError(f"{' '.join(argv[1:3])} exited before it was ready ({proc.returncode})")
    return proc, json.loads(line)["port"]


def run(*, events: int = 2000) -> dict[str, Any]:
    source = proxy = None
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        try:
            source, source_port = _start([sys.executable, "-m", "harness.bench.proxy", "source"])
            proxy, proxy_port = _start([sys.executable, "-m", "harness.faults.proxy", "--upstream",
                                        f"source=127.0.0.1:{source_port}", "--log", str(Path(tmp) / "proxy.jsonl")])
            ports = {"direct": source_port, "proxy": proxy_port}
            lat: dict[str, list[float]] = {"direct": [], "proxy": []}
            per_block = -(-events // BLOCKS)
            for block in range(BLOCKS):
                n = min(per_block, events - block * per_block)
                for path in ("direct", "proxy") if n > 0 else ():
                    got = _read_all({path: ports[path]}, n + WARMUP, int(PACE_S * 1e6))[path]
                    lat[path] += [(got[i][1] - got[i][0]) * 1000 for i in range(WARMUP, n + WARMUP)]
            burst = events * BURST_FACTOR
            rate: dict[str, float] = {}
            cpu_us = 0.0
            for path in ("proxy", "direct"):
                cpu_before = _cpu_s(proxy.pid)
                one = _read_all({path: ports[path]}, burst, 0)[path]
                rate[path] = burst / (max(a for _, a in one.values()) - min(s for s, _ in one.values()))
                if path == "proxy":
                    cpu_us = (_cpu_s(proxy.pid) - cpu_before) / burst * 1e6
        finally:
            procs.stop(proxy)
            procs.stop(source)

    def p(path: str, q: float) -> float:
        return percentile(lat[path], q)

    return {
        "events_per_path": len(lat["proxy"]),
        "direct_p50_ms": round(p("direct", 50), 3), "direct_p99_ms": round(p("direct", 99), 3),
        "proxy_p50_ms": round(p("proxy", 50), 3), "proxy_p99_ms": round(p("proxy", 99), 3),
        "added_p50_ms": round(p("proxy", 50) - p("direct", 50), 3),
        "added_p99_ms": round(p("proxy", 99) - p("direct", 99), 3),
        "burst_events": burst,
        "direct_throughput_per_s": round(rate["direct"]),
        "proxy_throughput_per_s": round(rate["proxy"]),
        "proxy_cpu_us_per_event": round(cpu_us, 1),
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["source"]:
        with contextlib.suppress(KeyboardInterrupt):
            aio.run(_serve_source())
