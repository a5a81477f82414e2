"""Which PostgreSQL the harness uses, in order: an explicit DSN, binaries on PATH, Debian's layout, pgserver.

1. ``--pg-dsn`` / ``HARNESS_PG_DSN``: a server someone else runs; the harness starts nothing.
2. ``initdb`` and ``pg_ctl`` on PATH (and ``postgres`` beside them).
3. ``/usr/lib/postgresql/<major>/bin`` — Debian installs the server there, off PATH.
4. The ``pgserver`` wheel, which bundles the binaries (found without importing it).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

DSN_ENV = "HARNESS_PG_DSN"


@dataclass(frozen=True)
class PostgresSource:
    kind: str  # "dsn" | "path" | "system" | "pgserver"
    dsn: str | None = None
    bindir: Path | None = None

    def describe(self) -> str:
        if self.kind == "dsn":
            return f"existing server at {redact(self.dsn or '')} ({'--pg-dsn/' + DSN_ENV})"
        return f"{self.kind}: {self.bindir}"

    def version(self) -> str:
        if self.bindir is None:
            return "reported by the server once connected"
        out = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or out.stderr.strip()


def check_dsn(dsn: str, *, timeout_s: int = 5) -> None:
    """UsageError (one line) unless a server answers at ``dsn`` — before anything is started on it."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s) as conn:
            conn.execute("select 1")
    except psycopg.Error as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UsageError(f"PostgreSQL at {redact(dsn)} (--pg-dsn/{DSN_ENV}) does not answer: {first}") from None


def redact(dsn: str) -> str:
    """A DSN without its password, for printing."""
    import re

    return re.sub(r"(password=)\S+", r"\1***", re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", dsn))


def _complete(bindir: Path) -> bool:
    tools = ("initdb", "pg_ctl", "postgres")
    return all((bindir / t).is_file() and os.access(bindir / t, os.X_OK) for t in tools)


def pgserver_bindir() -> Path | None:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if _complete(bindir) else None


def locate(dsn: str | None = None, *, allow_env: bool = True) -> PostgresSource:
    """The PostgreSQL to use; UsageError when none can be found."""
    dsn = dsn or (os.environ.get(DSN_ENV) if allow_env else None)
    if dsn:
        return PostgresSource("dsn", dsn=dsn)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        bindir = Path(os.path.realpath(initdb)).parent
        if _complete(bindir):
            return PostgresSource("path", bindir=bindir)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name),
                            reverse=True):
        if _complete(Path(candidate)):
            return PostgresSource("system", bindir=Path(candidate))
    bindir = pgserver_bindir()
    if bindir is not None:
        return PostgresSource("pgserver", bindir=bindir)
    raise UsageError("no PostgreSQL found: pass --pg-dsn (or set HARNESS_PG_DSN), put initdb/pg_ctl on PATH, "
                     "or 'pip install pgserver'")


def located_and_checked(dsn: str | None = None) -> PostgresSource:
    """``locate(dsn)``; a DSN that does not answer is bad input now, before anything is made for the run."""
    source = locate(dsn)
    if source.kind == "dsn":
        check_dsn(source.dsn or "")
    return source
