"""The stage cells run on: one replica per release tag, the fault proxy in front, one History over all.

A pytest worker (or a ``harness roll``) owns one Stage; cells take turns on it, each on workspaces and
agents of its own, so cells share replicas without sharing state. Replicas start on first use and
become proxy upstreams named by their tag. Timings are Coder's times ``time_scale``: heartbeat
15 s, agent back-off 100 ms → 10 s, pubsub listener back-off 1 s → 1 min.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.faults.proxy import FaultProxy
from harness.fleet import Fleet
from harness.pg.pubsub import RECONNECT_MIN_S
from harness.protocol import Release
from harness.protocol.ids import HEARTBEAT_S
from harness.server.replica import Replica


class Stage:
    def __init__(self, dsn: str, log_dir: Path, *, time_scale: float = 1.0) -> None:
        self.dsn, self.time_scale = dsn, time_scale
        self.fleet = Fleet(dsn, log_dir, heartbeat_s=HEARTBEAT_S * time_scale,
                           listener_reconnect_s=RECONNECT_MIN_S * time_scale)
        self.history = self.fleet.history
        self.proxy = FaultProxy({}, log=self.fleet.log("proxy"))
        self.agents_log = self.fleet.log("agents")
        self.harness_log = self.fleet.log("harness")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self) -> Stage:
        self.proxy.start()
        return self

    def close(self) -> None:
        self.proxy.stop()
        self.fleet.stop()

    def __enter__(self) -> Stage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heal(self) -> list[str]:
        """After a cell failed: restart any replica that is dead or does not answer (stopped, wedged), so one
        broken replica costs one cell, not every cell after it. The names of the replicas restarted."""
        restarted = []
        for rep in list(self.fleet.replicas.values()):
            if rep.alive and rep.responsive():
                continue
            self.harness_log.emit("harness.fault", fault="replica_unresponsive", replica=rep.name,
                                  text=f"replica {rep.name} did not answer: restart it")
            rep.kill()
            rep.start()
            self.proxy.set_upstream(rep.name, "127.0.0.1", rep.port)
            restarted.append(rep.name)
        return restarted

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def replica(self, release: Release) -> Replica:
        """The running replica of this release (started, and put behind the proxy, on first use)."""
        return self.replicas([release])[release.tag]

    def replicas(self, releases: list[Release]) -> dict[str, Replica]:
        with self._lock:
            wanted = list(dict.fromkeys(releases))
            for release in wanted:
                if release.tag not in self.fleet.replicas:
                    self.fleet.add(release.tag, release)
            down = [self.fleet.replicas[r.tag] for r in wanted if not self.fleet.replicas[r.tag].alive]
            if down:  # new, or left dead by a cell that failed mid-fault
                with ThreadPoolExecutor(len(down)) as pool:
                    list(pool.map(lambda rep: rep.start(), down))
                for rep in down:
                    self.proxy.set_upstream(rep.name, "127.0.0.1", rep.port)
            return {r.tag: self.fleet.replicas[r.tag] for r in releases}
