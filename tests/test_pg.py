"""Embedded PostgreSQL and the pubsub with Coder's semantics, on a real server and real OS processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from harness.events import EventLog, History, where
from harness.pg.locate import locate
from harness.pg.pubsub import PayloadTooLarge, PubSub
from harness.watchdog import alive
from tests.conftest import peer


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def channel() -> str:
    return f"prebuild_claimed_{uuid.uuid4()}"


async def until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def test_locate_prefers_an_explicit_dsn():
    assert locate("host=db").kind == "dsn"
    assert locate().kind in ("dsn", "path", "system", "pgserver")


def test_round_trip_between_two_processes(pg_dsn):
    ch = channel()
    listener = subprocess.Popen(peer("pubsub_peer", "listen", pg_dsn, ch, "5"), stdout=subprocess.PIPE, text=True)
    assert json.loads(listener.stdout.readline()) == {"ready": True}
    subprocess.run(peer("pubsub_peer", "publish", pg_dsn, ch, "5"), check=True, timeout=30)
    lines = [json.loads(listener.stdout.readline()) for _ in range(5)]
    assert listener.wait(30) == 0
    assert [json.loads(line["payload"])["i"] for line in lines] == [0, 1, 2, 3, 4]  # in order


def test_fan_out_to_two_processes_and_two_local_subscribers(pg_dsn):
    ch = channel()
    procs = [subprocess.Popen(peer("pubsub_peer", "listen", pg_dsn, ch, "3"), stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert json.loads(p.stdout.readline()) == {"ready": True}

    async def body():
        ps = await PubSub(pg_dsn).start()
        got_a, got_b = [], []

        async def a(m):
            got_a.append(m)

        async def b(m):
            got_b.append(m)

        await ps.subscribe(ch, a)
        await ps.subscribe(ch, b)
        for i in range(3):
            await ps.publish(ch, f"m{i}".encode())
        await until(lambda: len(got_a) == 3 and len(got_b) == 3)
        await ps.close()
        return got_a, got_b

    got_a, got_b = run(body())
    assert got_a == got_b == [b"m0", b"m1", b"m2"]
    for p in procs:
        payloads = [json.loads(p.stdout.readline())["payload"] for _ in range(3)]
        assert payloads == ["m0", "m1", "m2"]
        assert p.wait(30) == 0


def test_overflow_drops_new_messages_silently_and_counts(pg_dsn):
    ch = channel()

    async def body():
        ps = await PubSub(pg_dsn, log_notifies=False).start()
        release = asyncio.Event()
        got = []

        async def slow(m):
            await release.wait()
            got.append(m)

        sub = await ps.subscribe(ch, slow)
        for i in range(2100):
            await ps.publish(ch, str(i).encode())
        await until(lambda: ps.stats["notifications"] == 2100)
        dropped = sub.dropped
        release.set()
        await until(lambda: len(got) == 2049)
        await asyncio.sleep(0.05)
        await ps.close()
        return dropped, got

    dropped, got = run(body())
    # message 0 is in the subscriber's hands, 1..2048 fill the FIFO, 2049..2099 are dropped
    assert dropped == 51
    assert got == [str(i).encode() for i in range(2049)]


def test_listener_killed_loses_the_gap_then_delivers(pg_dsn, tmp_path):
    ch = channel()
    history = History()
    log = EventLog(tmp_path / "pubsub.jsonl", "replica:test", sink=history.add)

    async def body():
        ps = await PubSub(pg_dsn, log=log).start()
        got = []

        async def on(m):
            got.append(m)

        sub = await ps.subscribe(ch, on)
        await ps.publish(ch, b"before")
        await until(lambda: got == [b"before"])
        old_pid = ps.listener_pid
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            assert admin.execute("select pg_terminate_backend(%s)", (old_pid,)).fetchone()[0]
        await until(lambda: not ps.connected)
        lost_at = time.monotonic()
        for m in (b"gap-1", b"gap-2", b"gap-3"):
            await ps.publish(ch, m)
        await until(lambda: ps.connected)
        reconnected_after = time.monotonic() - lost_at
        await ps.publish(ch, b"after")
        await until(lambda: b"after" in got)
        await ps.close()
        return got, sub.gaps, old_pid, reconnected_after, ps.stats

    got, gaps, old_pid, waited, stats = run(body())
    assert got == [b"before", b"after"]
    assert gaps == 1 and stats["disconnects"] == 1 and stats["reconnects"] == 1
    assert 0.9 <= waited < 3.0  # first reconnect attempt after 1 s
    evs = [e["ev"] for e in history.select(lambda e: e["ev"].startswith("pubsub.listener") or
                                           e["ev"] == "pubsub.reconnected")]
    assert evs == ["pubsub.listener_lost", "pubsub.reconnected"]
    assert history.select(where(ev="pubsub.reconnected"))[0]["backend_pid"] != old_pid


def test_subscribe_while_disconnected_waits_for_the_reconnect(pg_dsn):
    async def body():
        ps = await PubSub(pg_dsn, reconnect_min_s=0.5).start()
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (ps.listener_pid,))
        await until(lambda: not ps.connected)
        t0 = time.monotonic()
        ch = channel()
        got = []

        async def on(m):
            got.append(m)

        await ps.subscribe(ch, on)
        waited = time.monotonic() - t0
        await ps.publish(ch, b"x")
        await until(lambda: got == [b"x"])
        await ps.close()
        return waited

    assert run(body()) >= 0.3


def test_payload_limit_is_8000_bytes(pg_dsn):
    ch = channel()

    async def body():
        ps = await PubSub(pg_dsn).start()
        got = []

        async def on(m):
            got.append(m)

        await ps.subscribe(ch, on)
        await ps.publish(ch, b"a" * 7999)
        with pytest.raises(PayloadTooLarge, match="8000 bytes"):
            await ps.publish(ch, b"a" * 8000)
        with pytest.raises(PayloadTooLarge):
            await ps.publish(ch, "é".encode() * 4000)  # the limit is in bytes, not characters
        await until(lambda: len(got) == 1)
        await ps.close()
        return got

    assert run(body()) == [b"a" * 7999]


def test_channel_names_are_case_sensitive(pg_dsn):
    async def body():
        ps = await PubSub(pg_dsn).start()
        got: dict[str, list[bytes]] = {"Claims": [], "claims": []}
        for name in got:
            async def on(m, name=name):
                got[name].append(m)
            await ps.subscribe(name, on)
        await ps.publish("Claims", b"upper")
        await ps.publish("claims", b"lower")
        await ps.publish("CLAIMS", b"nobody")
        await until(lambda: got["Claims"] and got["claims"])
        await asyncio.sleep(0.1)
        await ps.close()
        return got

    assert run(body()) == {"Claims": [b"upper"], "claims": [b"lower"]}


def test_listen_is_reference_counted_and_unlistened_at_the_last_unsubscribe(pg_dsn, tmp_path):
    ch = channel()
    history = History()
    log = EventLog(tmp_path / "ps.jsonl", "t", sink=history.add)

    async def body():
        ps = await PubSub(pg_dsn, log=log).start()
        got = []

        async def on(m):
            got.append(m)

        a = await ps.subscribe(ch, on)
        b = await ps.subscribe(ch, on)
        await a.cancel()
        await a.cancel()  # idempotent
        await ps.publish(ch, b"still")
        await until(lambda: got == [b"still"])
        await b.cancel()
        await ps.publish(ch, b"nobody")
        seen = ps.stats["notifications"]
        await asyncio.sleep(0.2)
        await ps.close()
        return seen, ps.stats["notifications"]

    seen, after = run(body())
    assert [e["ev"] for e in history.select(where(channel=ch)) if e["ev"] in ("pubsub.listen", "pubsub.unlisten")] \
        == ["pubsub.listen", "pubsub.unlisten"]
    assert seen == after == 1  # after UNLISTEN the server sends us nothing


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_postgres_is_gone_after_the_parent_dies(how):
    holder = subprocess.Popen(peer("pg_holder"), stdout=subprocess.PIPE, text=True)
    pid_text, root = holder.stdout.readline().split()
    postmaster = int(pid_text)
    assert alive(postmaster) and Path(root).is_dir()
    os.kill(holder.pid, getattr(signal, how))
    holder.wait(30)
    deadline = time.monotonic() + 20
    while (alive(postmaster) or Path(root).exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(postmaster), "postmaster outlived its parent"
    assert not Path(root).exists(), "temp dir left behind"


def test_the_pgserver_wheel_is_a_working_fallback():
    from harness.pg.embedded import EmbeddedPostgres
    from harness.pg.locate import PostgresSource, pgserver_bindir

    bindir = pgserver_bindir()
    if bindir is None:
        pytest.skip("pgserver wheel not installed on this platform")
    with EmbeddedPostgres(PostgresSource("pgserver", bindir=bindir)) as pg, psycopg.connect(pg.dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
