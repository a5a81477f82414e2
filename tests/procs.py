"""Finding what a test's subprocess left running: every process inherits the environment mark it was given."""

from __future__ import annotations

import time
from pathlib import Path

MARK_ENV = "HARNESS_TEST_MARK"


def marked(mark: str) -> list[str]:
    """Command lines of live processes whose environment carries mark."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"{MARK_ENV}={mark}".encode() in env.read_bytes().split(b"\0"):
                found.append((env.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def left_running(mark: str, within_s: float = 10.0) -> list[str]:
    """What still runs after within_s (the watchdog reaps within a second or two of its parent's exit)."""
    deadline = time.monotonic() + within_s
    while (alive := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive
