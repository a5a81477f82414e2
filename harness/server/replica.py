"""``Replica``: one ``harness serve`` process managed from the harness — start, stop, kill, restart.

``start()`` spawns it (own session, watched by the watchdog) and waits for its one-line JSON ready
message; a restart reuses the port by default, so the load balancer's upstream stays valid. ``kill()``
is a crash (SIGKILL, nothing waits); ``stop()`` is graceful (SIGTERM: streams closed, pubsub closed).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.procs import Readiness, spawn, stop
from harness.protocol import Release
from harness.server.client import ControlClient


class Replica:
    def __init__(self, name: str, release: Release, *, dsn: str, admin_token: str, log_dir: Path,
                 heartbeat_s: float, listener_reconnect_s: float = 1.0) -> None:
        self.name, self.release, self.dsn, self.admin_token = name, release, dsn, admin_token
        self.log_dir, self.heartbeat_s, self.listener_reconnect_s = log_dir, heartbeat_s, listener_reconnect_s
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ready: dict[str, Any] = {}
        self._control: ControlClient | None = None

    @property
    def events_path(self) -> Path:
        return self.log_dir / f"replica-{self.name}.jsonl"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"replica-{self.name}.stderr.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.url, self.admin_token)
        return self._control

    def __enter__(self) -> Replica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, release: Release | None = None) -> Replica:
        """Start (or start again, as ``release`` if given) on the same port as before, if any."""
        if self.alive:
            raise RuntimeError(f"replica {self.name} is already running")
        self.release = release or self.release
        selector = ["--variant", self.release.variant.name] if self.release.tag == self.release.variant.name else [
            "--version-tag", self.release.tag, "--variant", self.release.variant.name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(
            [sys.executable, "-m", "harness", "serve", *selector, "--name", self.name, "--pg-dsn", self.dsn,
             "--port", str(self.port), "--heartbeat", str(self.heartbeat_s), f"--admin-token={self.admin_token}",
             "--listener-reconnect", str(self.listener_reconnect_s), f"--log={self.events_path}"],
            log=self.stderr_path, stdout=subprocess.PIPE, stop_signal=signal.SIGTERM, grace_s=5.0)
        try:
            line = Readiness(f"replica {self.name} ({self.release.tag})", self._ready_line, timeout_s=30,
                             proc=self.proc, log=self.stderr_path,
                             hint=f"its stderr is in {self.stderr_path}").wait()
        except BaseException:
            stop(self.proc)
            raise
        self.ready = json.loads(line)
        self.port = self.ready["port"]
        return self

    def _ready_line(self) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        if select.select([self.proc.stdout], [], [], 0)[0]:
            line = self.proc.stdout.readline().decode()
            self.proc.stdout.close()
            return line if line.strip() else None
        return None

    def responsive(self, timeout_s: float = 3.0) -> bool:
        """Whether the replica answers its control API within ``timeout_s`` (a SIGSTOPped one does not)."""
        try:
            ControlClient(self.url, self.admin_token, timeout_s=timeout_s).state()
        except HarnessError:
            return False
        return True

    def stop(self) -> None:
        """Graceful: SIGTERM, wait; idempotent."""
        stop(self.proc, sig=signal.SIGTERM, grace_s=10.0)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """A crash: the signal, then reap. Streams drop with resets; nothing is cleaned up by the replica."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(30)
        stop(self.proc)

    def restart(self, release: Release | None = None, *, crash: bool = False) -> Replica:
        self.kill() if crash else self.stop()
        return self.start(release)

    def close(self, *, crash: bool = False) -> None:
        self.kill() if crash else self.stop()
        if self._control is not None:
            self._control.close()
