"""Shared fixtures: one real PostgreSQL for the whole test session (or HARNESS_PG_DSN if set)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.pg.embedded import EmbeddedPostgres
from harness.pg.locate import DSN_ENV

PEERS = Path(__file__).parent / "peers"


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    if os.environ.get(DSN_ENV):
        yield os.environ[DSN_ENV]
        return
    with EmbeddedPostgres() as pg:
        yield pg.dsn


def peer(name: str, *args: str) -> list[str]:
    """argv for a helper process in tests/peers/."""
    return [sys.executable, str(PEERS / f"{name}.py"), *args]
