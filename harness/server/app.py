"""One replica process: the aiohttp app, its pubsub and store, and a clean shutdown on SIGTERM/SIGINT.

When it is listening it prints one JSON line on stdout (url, name, tag, variant, pid, port) and logs
``replica.ready``; the fleet waits for that line. Client hang-ups cancel their handler at once
(``handler_cancellation``), as Go cancels a request's context, so subscriptions never outlive streams.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from harness.events import EventLog
from harness.pg.pubsub import RECONNECT_MIN_S, PubSub
from harness.protocol import Release
from harness.protocol.ids import HEARTBEAT_S, REINIT_PATH
from harness.server.control import Control
from harness.server.reinit import Hooks, ReinitHandler
from harness.server.store import Store


@dataclass(frozen=True)
class ReplicaConfig:
    release: Release
    name: str
    dsn: str
    admin_token: str
    port: int = 0
    heartbeat_s: float = HEARTBEAT_S
    reconnect_min_s: float = RECONNECT_MIN_S
    log_path: Path | None = None


async def serve(cfg: ReplicaConfig) -> None:
    log = EventLog(cfg.log_path, f"replica:{cfg.name}")
    store = await Store(cfg.dsn).open()
    pubsub = await PubSub(cfg.dsn, log=log, reconnect_min_s=cfg.reconnect_min_s).start()
    hooks = Hooks()
    reinit = ReinitHandler(cfg.release.variant, store, pubsub, log, heartbeat_s=cfg.heartbeat_s, hooks=hooks)
    control = Control(cfg.release, cfg.name, store, pubsub, log, reinit, hooks, cfg.admin_token)
    app = web.Application(middlewares=[control.auth])
    app.router.add_get(REINIT_PATH, reinit)
    app.add_routes(control.routes())
    # On SIGTERM open streams are cancelled after 1 s: agents see their stream end, as when coderd stops.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", cfg.port, reuse_address=True)
    try:
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready = {"url": f"http://127.0.0.1:{port}", "name": cfg.name, "tag": cfg.release.tag,
                 "variant": cfg.release.variant.name, "pid": os.getpid(), "port": port,
                 "heartbeat_s": cfg.heartbeat_s}
        log.emit("replica.ready", **ready)
        print(json.dumps(ready), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.emit("replica.stopping", streams=len(reinit.streams))
    finally:
        await runner.cleanup()
        await pubsub.close()
        await store.close()
        log.emit("replica.stopped")
        log.close()
        sys.stdout.flush()
