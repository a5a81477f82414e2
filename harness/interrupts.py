"""Ctrl-C and SIGTERM: the first one stops the work; later ones only say that cleanup is under way.

The first signal raises KeyboardInterrupt, as Python's default does, and every command cleans up from
there. A second one that raised too would land inside that cleanup — while the partial report is
written, a replica is stopped or xdist tears its workers down — and leave the run recorded as finished,
or not at all. Cleanup is bounded (a few seconds per process; the watchdog removes whatever a SIGKILL
leaves behind), so later signals wait for it.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def _handle(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if len(_received) == 1:
        raise KeyboardInterrupt(f"signal {signum}")
    if len(_received) == 2 and not os.environ.get("PYTEST_XDIST_WORKER"):  # said once, by the controller;
        # os.write, as a print here could re-enter a print in progress
        os.write(2, b"harness: still cleaning up after the interrupt (SIGKILL stops at once; "
                    b"the watchdog then removes PostgreSQL and the replicas)\n")


def install() -> None:
    """Route SIGINT and SIGTERM through the handler above (main thread only; elsewhere a no-op)."""
    try:
        for s in SIGNALS:
            signal.signal(s, _handle)
    except ValueError:  # not the main thread: signals are not ours to handle here
        pass


def received() -> bool:
    """Whether this process was told to stop: a run that was, is partial whatever pytest's exit code says."""
    return bool(_received)
