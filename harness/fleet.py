"""A fleet: replicas of some releases on one PostgreSQL, their logs in one folder, one History over all.

Replica processes write their own JSONL files; in-process components (agents, the proxy, the
harness's own steps) write theirs through ``fleet.log(src)``, which also feeds the History at once.
Scenarios wait on ``fleet.history``; the oracle reads it.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import interrupts
from harness.events import EventLog, History
from harness.protocol import Release
from harness.protocol.ids import HEARTBEAT_S
from harness.server.replica import Replica


class Fleet:
    def __init__(self, dsn: str, log_dir: Path, *, heartbeat_s: float = HEARTBEAT_S,
                 listener_reconnect_s: float = 1.0) -> None:
        self.dsn, self.log_dir = dsn, log_dir
        self.heartbeat_s, self.listener_reconnect_s = heartbeat_s, listener_reconnect_s
        self.admin_token = secrets.token_hex(16)  # hex: never starts with '-', which argv would misread
        self.replicas: dict[str, Replica] = {}
        self.history = History()
        self._logs: dict[str, EventLog] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, release: Release) -> Replica:
        if name in self.replicas:
            raise ValueError(f"replica {name} exists")
        replica = Replica(name, release, dsn=self.dsn, admin_token=self.admin_token, log_dir=self.log_dir,
                          heartbeat_s=self.heartbeat_s, listener_reconnect_s=self.listener_reconnect_s)
        self.replicas[name] = replica
        self.history.follow(replica.events_path)
        return replica

    def log(self, src: str) -> EventLog:
        """An event log for an in-process source; one file per source, all into the History."""
        if src not in self._logs:
            self._logs[src] = EventLog(self.log_dir / f"{src}.jsonl", src, sink=self.history.add)
        return self._logs[src]

    def start(self) -> Fleet:
        """Start every replica not running, in parallel (each takes ~0.8 s, mostly imports)."""
        pending = [r for r in self.replicas.values() if not r.alive]
        try:
            with ThreadPoolExecutor(max(1, min(8, len(pending)))) as pool:
                list(pool.map(lambda r: r.start(), pending))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every replica: gracefully, or at once after Ctrl-C (the run is over; a graceful stop buys nothing)."""
        crash = interrupts.received()
        with ThreadPoolExecutor(max(1, min(8, len(self.replicas)))) as pool:
            list(pool.map(lambda r: r.close(crash=crash), self.replicas.values()))
        for log in self._logs.values():
            log.close()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
