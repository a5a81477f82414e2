"""``with postgres(dsn) as dsn:`` — the one way every command gets its database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from harness.pg.embedded import EmbeddedPostgres
from harness.pg.locate import check_dsn, locate


@contextmanager
def postgres(dsn: str | None = None, *, quiet: bool = False) -> Iterator[str]:
    """An explicit DSN (or $HARNESS_PG_DSN) as is; otherwise a private embedded server for the block."""
    source = locate(dsn)
    if source.kind == "dsn":
        check_dsn(source.dsn or "")
        yield source.dsn or ""
        return
    if not quiet:
        print(f"starting PostgreSQL ({source.describe()}) ...", file=sys.stderr, flush=True)
    with EmbeddedPostgres(source) as pg:
        yield pg.dsn
