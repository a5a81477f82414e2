"""Coder's PostgreSQL pubsub (coderd/database/pubsub) on psycopg 3 and asyncio. PROTOCOL.md §3.

- Publish is ``select pg_notify(<channel literal>, $1)`` in autocommit, on one of a few dedicated
  connections (psycopg_pool's checkout costs more than the statement: 2,400/s against 5,000/s here).
  PostgreSQL rejects payloads of 8000 bytes or more; that surfaces as PayloadTooLarge.
- One listener connection per PubSub. ``LISTEN "<channel>"`` (quoted, so case-sensitive) runs once per
  channel name, reference-counted; ``UNLISTEN`` when the last subscriber of a channel leaves.
- Each subscription has its own FIFO of 2048 messages drained in order by its own task. When the FIFO
  is full a new message is dropped silently: only the ``dropped`` counter knows.
- When the listener connection is lost, it reconnects after 1 s, doubling up to 1 min, and
  re-LISTENs every channel. Whatever was NOTIFYed meanwhile is lost silently; each live subscription
  counts the gap. Subscribing while disconnected waits for the reconnect, as lib/pq's Listen does.
  (lib/pq itself retries at once when the dropped connection had lived over 1 s; the spec's fixed
  1 s first wait is what we run, and it is what makes a publish "in the gap" reproducible.)

The listener connection is owned by one task, so LISTEN commands and notification reads never race:
psycopg's ``notifies()`` would hold the connection lock and starve LISTEN.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import ConnStatus

from harness.events import EventLog

QUEUE_SIZE = 2048  # coderd/database/pubsub BufferSize
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0
NOTIFY_LIMIT = 8000  # bytes; PostgreSQL's NOTIFY payload must be shorter
PUBLISH_CONNECTIONS = 4  # enough to keep two cores busy; more only adds backends

Callback = Callable[[bytes], Awaitable[None]]


class PublishError(Exception):
    """A publish PostgreSQL did not accept."""


class PayloadTooLarge(PublishError):
    pass


class Subscription:
    """One subscriber's FIFO and the task that hands its messages over, in order."""

    def __init__(self, pubsub: PubSub, channel: str, callback: Callback, size: int) -> None:
        self.channel, self._pubsub, self._callback, self._size = channel, pubsub, callback, size
        self._queue: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0  # overflow, silent
        self.gaps = 0  # listener reconnects while subscribed: anything in between was lost
        self.delivered = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sub:{channel}")

    def _enqueue(self, payload: bytes) -> None:
        if len(self._queue) >= self._size:
            self.dropped += 1
            self._pubsub._dropped(self)
            return
        self._queue.append(payload)
        self._ready.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            payload = self._queue.popleft()
            try:
                await self._callback(payload)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._pubsub._log("pubsub.callback_error", channel=self.channel, error=repr(e))
            self.delivered += 1

    async def cancel(self) -> None:
        """Unsubscribe; idempotent."""
        await self._pubsub._unsubscribe(self)

    async def _stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class PubSub:
    """``start()`` it inside a running event loop; ``close()`` it when done."""

    def __init__(self, dsn: str, *, log: EventLog | None = None, queue_size: int = QUEUE_SIZE,
                 reconnect_min_s: float = RECONNECT_MIN_S, reconnect_max_s: float = RECONNECT_MAX_S,
                 log_notifies: bool = True, publish_connections: int = PUBLISH_CONNECTIONS) -> None:
        self.dsn = dsn
        self._publishers: asyncio.Queue[psycopg.AsyncCursor | None] = asyncio.Queue()
        self._notify_sql: dict[str, bytes] = {}
        self._publish_connections = publish_connections
        self._logger, self._log_notifies = log, log_notifies
        self.queue_size, self.reconnect_min_s, self.reconnect_max_s = queue_size, reconnect_min_s, reconnect_max_s
        self._conn: psycopg.AsyncConnection | None = None
        self._subs: dict[str, list[Subscription]] = {}
        self._commands: deque[tuple[str, str]] = deque()
        self._listened: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = {"published": 0, "notifications": 0, "dropped": 0, "disconnects": 0, "reconnects": 0}

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> PubSub:
        for _ in range(self._publish_connections):
            self._publishers.put_nowait(None)  # connected on first use
        self._conn = await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._listen_loop(), name="pubsub-listener")
        return self

    async def close(self) -> None:
        self._closing = True
        for subs in list(self._subs.values()):
            for sub in subs:
                await sub._stop()
        self._subs.clear()
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        while not self._publishers.empty():
            cur = self._publishers.get_nowait()
            if cur is not None:
                await cur.connection.close()

    @property
    def listener_pid(self) -> int | None:
        """The listener's backend pid (what a fault terminates), None while disconnected."""
        return self._conn.info.backend_pid if self._conn is not None else None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    # -- publish ------------------------------------------------------------------------------------
    async def publish(self, channel: str, payload: bytes) -> None:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise PublishError(f"publish on {channel}: payload is not UTF-8 text") from None
        cur = await self._publishers.get()
        try:
            if cur is None or cur.connection.closed:
                cur = (await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)).cursor()
            query = self._notify_sql.get(channel)
            if query is None:  # composing the statement costs more than running it: keep it per channel
                if len(self._notify_sql) > 10_000:
                    self._notify_sql.clear()
                query = self._notify_sql[channel] = sql.SQL("select pg_notify({}, %s)").format(
                    sql.Literal(channel)).as_bytes(cur.connection)
            await cur.execute(query, (text,), prepare=True)
        except psycopg.errors.InvalidParameterValue as e:
            if len(payload) >= NOTIFY_LIMIT:
                raise PayloadTooLarge(f"payload of {len(payload)} bytes on {channel}: PostgreSQL accepts NOTIFY "
                                      f"payloads under {NOTIFY_LIMIT} bytes") from None
            raise PublishError(f"publish on {channel}: {e}") from None
        except psycopg.OperationalError as e:
            cur = None  # reconnect on next use
            raise PublishError(f"publish on {channel}: {str(e).strip()[:200]}") from None
        finally:
            self._publishers.put_nowait(cur)
        self.stats["published"] += 1

    # -- subscribe ----------------------------------------------------------------------------------
    async def subscribe(self, channel: str, callback: Callback) -> Subscription:
        """Subscribe; returns once the channel is LISTENed (after the reconnect, if disconnected)."""
        sub = Subscription(self, channel, callback, self.queue_size)
        subs = self._subs.setdefault(channel, [])
        subs.append(sub)
        if len(subs) == 1:
            self._listened[channel] = asyncio.get_running_loop().create_future()
            self._command("LISTEN", channel)
            self._log("pubsub.listen", channel=channel)
        waiter = self._listened.get(channel)
        if waiter is not None and not waiter.done():
            await asyncio.shield(waiter)
        return sub

    async def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.channel)
        if not subs or sub not in subs:
            return
        subs.remove(sub)
        await sub._stop()
        if not subs:
            del self._subs[sub.channel]
            self._listened.pop(sub.channel, None)
            self._command("UNLISTEN", sub.channel)
            self._log("pubsub.unlisten", channel=sub.channel)

    def subscribers(self, channel: str) -> int:
        return len(self._subs.get(channel, ()))

    # -- the listener task --------------------------------------------------------------------------------
    def _command(self, verb: str, channel: str) -> None:
        self._commands.append((verb, channel))
        self._wake.set()

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        conn.add_notify_handler(lambda n: self._dispatch(n.channel, n.payload.encode("utf-8")))
        return conn

    def _dispatch(self, channel: str, payload: bytes) -> None:
        self.stats["notifications"] += 1
        if self._log_notifies:
            self._log("pubsub.notify", channel=channel, payload=payload[:200].decode("utf-8", "replace"),
                      size=len(payload), subscribers=self.subscribers(channel))
        for sub in list(self._subs.get(channel, ())):
            sub._enqueue(payload)

    def _dropped(self, sub: Subscription) -> None:
        self.stats["dropped"] += 1
        if sub.dropped == 1 or sub.dropped % 100 == 0:
            self._log("pubsub.dropped", channel=sub.channel, dropped=sub.dropped, queue=self.queue_size)

    async def _listen_loop(self) -> None:
        loop = asyncio.get_running_loop()
        reading: int | None = None  # the fd our reader callback is registered on, kept while idle
        while not self._closing:
            conn = self._conn
            if conn is None:
                await self._reconnect()
                continue
            self._wake.clear()
            if not self._commands:
                if reading is None:
                    reading = conn.pgconn.socket
                    loop.add_reader(reading, self._wake.set)
                await self._wake.wait()
            try:
                conn.pgconn.consume_input()
                while (n := conn.pgconn.notifies()) is not None:
                    self._dispatch(n.relname.decode("utf-8"), n.extra)
                if conn.pgconn.status != ConnStatus.OK:
                    raise psycopg.OperationalError("listener connection closed")
                if self._commands:
                    if reading is not None:  # psycopg waits on the fd itself while executing
                        loop.remove_reader(reading)
                        reading = None
                    await self._run_commands(conn)
            except psycopg.Error as e:
                if reading is not None:
                    loop.remove_reader(reading)
                    reading = None
                await self._lose(conn, e)
        if reading is not None:
            loop.remove_reader(reading)

    async def _run_commands(self, conn: psycopg.AsyncConnection) -> None:
        while self._commands:
            verb, channel = self._commands[0]
            await conn.execute(sql.SQL(verb + " {}").format(sql.Identifier(channel)))
            self._commands.popleft()
            waiter = self._listened.get(channel)
            if verb == "LISTEN" and waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _lose(self, conn: psycopg.AsyncConnection, error: Exception) -> None:
        self._conn = None
        self.stats["disconnects"] += 1
        for subs in self._subs.values():
            for sub in subs:
                sub.gaps += 1
        self._log("pubsub.listener_lost", error=str(error).strip()[:200], channels=len(self._subs))
        with contextlib.suppress(psycopg.Error):
            await conn.close()

    async def _reconnect(self) -> None:
        delay = self.reconnect_min_s
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                conn = await self._connect()
                for channel in self._subs:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            except psycopg.Error as e:
                self._log("pubsub.reconnect_failed", error=str(e).strip()[:200], next_wait_s=min(delay * 2,
                                                                                            self.reconnect_max_s))
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self._commands.clear()  # the state to restore is _subs itself
            self._conn = conn
            self.stats["reconnects"] += 1
            for waiter in self._listened.values():
                if not waiter.done():
                    waiter.set_result(None)
            self._log("pubsub.reconnected", backend_pid=conn.info.backend_pid, channels=len(self._subs))
            return

    def _log(self, ev: str, **fields: Any) -> None:
        if self._logger is not None:
            self._logger.emit(ev, **fields)
