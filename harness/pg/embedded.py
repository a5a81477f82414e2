"""A private PostgreSQL for one run: temp dir, free 127.0.0.1 port, stopped and removed afterwards.

``EmbeddedPostgres(source).start()`` runs initdb into a fresh temp dir and starts ``postgres``
directly (not through pg_ctl, which would detach it), in its own session and registered with the
watchdog: Ctrl-C, SIGTERM, an exception or a SIGKILL of the harness all end with no postmaster left
and the dir gone. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user if
there is one, else ``nobody``. Durability is off (fsync, synchronous_commit): the data lives for one
run. ``max_connections`` is raised because every replica holds a listener plus a small pool.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from harness.errors import HarnessError
from harness.pg.locate import PostgresSource, locate
from harness.procs import Readiness, spawn, stop, tail
from harness.watchdog import Watchdog

SUPERUSER = "harness"
MAX_CONNECTIONS = 1000  # up to ~100 replicas × (listener + pool) in one run, with room to spare


def free_port() -> int:
    """A port the OS considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise HarnessError("running as root and no unprivileged user to run PostgreSQL as",
                       hint="create a 'postgres' user, run the harness as a normal user, or pass --pg-dsn")


class EmbeddedPostgres:
    """One private postmaster. ``start()`` returns self; ``stop()`` is idempotent; a context manager."""

    def __init__(self, source: PostgresSource | None = None, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.source = source or locate(allow_env=False)
        if self.source.bindir is None:
            raise ValueError("EmbeddedPostgres needs binaries, not a DSN")
        self.bindir = self.source.bindir
        self.max_connections = max_connections
        self.root: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        if self.port is None:
            raise RuntimeError("PostgreSQL is not started")
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> EmbeddedPostgres:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        Watchdog.get().watch_dir(self.root)
        data = self.root / "data"
        ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        initdb = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, env=env, cwd=self.root, **ids)
        if initdb.returncode != 0:
            raise HarnessError("initdb failed", where=str(data), hint="check the PostgreSQL installation "
                               "('harness doctor')", details=(initdb.stderr or initdb.stdout)[-2000:])
        for attempt in range(3):  # the port is free when chosen; another process may take it first
            self.port = free_port()
            self.proc = spawn(
                [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", f"max_connections={self.max_connections}", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=64MB"],
                log=self.log_path, stop_signal=signal.SIGQUIT, grace_s=5.0, env=env, cwd=self.root, **ids)
            try:
                Readiness(f"PostgreSQL on 127.0.0.1:{self.port}", self._answers, timeout_s=30, proc=self.proc,
                          log=self.log_path, hint="see the log lines above; 'harness doctor' shows which "
                          "PostgreSQL is used").wait()
                return
            except HarnessError:
                if attempt < 2 and "could not bind" in tail(self.log_path, 40):
                    stop(self.proc)
                    continue
                raise

    def _answers(self) -> bool:
        with psycopg.connect(self.dsn, connect_timeout=2) as conn:
            conn.execute("select 1")
        return True

    def stop(self) -> None:
        """Fast shutdown, then immediate, then SIGKILL; remove the temp dir. Safe to call twice."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                self.proc.send_signal(signal.SIGINT)  # fast shutdown: backends terminated, shm cleaned up
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(10)
            stop(self.proc, sig=signal.SIGQUIT, grace_s=5.0)
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            Watchdog.get().forget_dir(self.root)
            self.root = None
