"""harness bench pubsub: publish → receive latency and sustained throughput between two OS processes.

This process publishes; a second process (``python -m harness.bench.pubsub listen ...``) subscribes
and reports what it received. CLOCK_MONOTONIC is system-wide, so latency = receive − send across the
two processes. Phase 1 paces messages (one per millisecond) to see latency without queueing; phase 2
publishes as fast as 8 concurrent publishers can, and throughput is messages / (last receive − first
send).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from typing import Any

from harness import aio
from harness.bench.stats import percentile
from harness.pg.pubsub import PubSub

PUBLISHERS = 8


async def _listen(dsn: str, channel: str, count: int) -> dict[str, Any]:
    ps = await PubSub(dsn, log_notifies=False).start()
    latencies: list[float] = []
    first_sent = last_recv = 0.0
    done = asyncio.Event()

    async def on(payload: bytes) -> None:
        nonlocal first_sent, last_recv
        now = time.monotonic()
        sent = float(payload.split(b" ", 1)[0])
        latencies.append(now - sent)
        first_sent = sent if not first_sent else min(first_sent, sent)
        last_recv = now
        if len(latencies) >= count:
            done.set()

    await ps.subscribe(channel, on)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        await ps.close()
    return {"received": len(latencies), "latencies": latencies, "first_sent": first_sent, "last_recv": last_recv}


async def _publish(dsn: str, channel: str, count: int, *, pace_s: float, publishers: int) -> None:
    ps = await PubSub(dsn, log_notifies=False).start()
    try:
        async def one(worker: int) -> None:
            for i in range(worker, count, publishers):
                await ps.publish(channel, f"{time.monotonic():.9f} {i}".encode())
                if pace_s:
                    await asyncio.sleep(pace_s)

        await asyncio.gather(*(one(w) for w in range(publishers)))
    finally:
        await ps.close()


def _phase(dsn: str, count: int, *, pace_s: float, publishers: int) -> dict[str, Any]:
    channel = f"bench_{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-m", "harness.bench.pubsub", "listen", dsn, channel, str(count)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmark listener did not start")
        aio.run(_publish(dsn, channel, count, pace_s=pace_s, publishers=publishers))
        out, _ = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
    return json.loads(out)


def run(dsn: str, *, messages: int = 20000, paced: int = 2000) -> dict[str, Any]:
    lat = _phase(dsn, paced, pace_s=0.001, publishers=1)
    thr = _phase(dsn, messages, pace_s=0.0, publishers=PUBLISHERS)
    ms = [x * 1000 for x in lat["latencies"]]
    return {
        "latency_p50_ms": round(percentile(ms, 50), 3), "latency_p99_ms": round(percentile(ms, 99), 3),
        "paced_messages": lat["received"],
        "throughput_per_s": round(thr["received"] / (thr["last_recv"] - thr["first_sent"])),
        "burst_messages": thr["received"],
        "burst_p99_ms": round(percentile([x * 1000 for x in thr["latencies"]], 99), 1),
    }


if __name__ == "__main__":
    if sys.argv[1] == "listen":
        print(json.dumps(aio.run(_listen(sys.argv[2], sys.argv[3], int(sys.argv[4])))))
