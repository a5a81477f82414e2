"""harness doctor: what this machine gives the harness — Python, PostgreSQL, Docker, Chromium."""

from __future__ import annotations

import argparse
import platform
import shutil
import sys

from harness import __version__
from harness.errors import UsageError
from harness.pg.locate import DSN_ENV, locate, pgserver_bindir, redact


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pg-dsn", help=f"use this PostgreSQL instead of starting one (also ${DSN_ENV})")


def _postgres(dsn: str | None) -> list[tuple[str, str]]:
    try:
        source = locate(dsn)
    except UsageError as e:
        return [("PostgreSQL", f"✗ {e}")]
    if source.kind == "dsn":
        import psycopg

        try:
            with psycopg.connect(source.dsn or "", connect_timeout=3) as conn:
                version = conn.execute("show server_version").fetchone()[0]  # type: ignore[index]
            return [("PostgreSQL", f"✓ {source.describe()}"), ("  version", version)]
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            return [("PostgreSQL", f"✗ {redact(source.dsn or '')} does not answer: {first}")]
    try:
        version = source.version()
    except OSError as e:
        return [("PostgreSQL", f"✗ {source.describe()}: {e}")]
    fallback = pgserver_bindir()
    return [("PostgreSQL", f"✓ {source.describe()} (started per run in a private temp dir)"), ("  version", version),
            ("  fallback", f"pgserver wheel at {fallback}" if fallback else "no pgserver wheel installed")]


def _docker() -> str:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return f"✓ engine reachable (server {client.version().get('Version', '?')}) — for the docker target"
    except Exception as e:
        text = str(e)
        reason = ("no Docker socket" if "FileNotFoundError" in text or "No such file" in text else
                  "permission denied on the Docker socket" if "ermission" in text else
                  text.splitlines()[0][:120] if text else type(e).__name__)
        return f"– no engine reachable ({reason}); the embedded target does not need one"


def run(args: argparse.Namespace) -> int:
    rows = [("harness", __version__), ("Python", f"{platform.python_version()} ({sys.executable})"),
            *_postgres(args.pg_dsn), ("Docker", _docker()),
            ("Chromium", f"✓ {shutil.which('chromium')}" if shutil.which("chromium")
             else "– not found (only the HTML report's browser test needs it)")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
