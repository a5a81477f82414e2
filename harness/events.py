"""Structured JSONL events: every component writes them; scenarios wait on them; the oracle reads them.

One event is one line: ``{"t": wall, "m": monotonic, "src": source, "ev": name, ...fields}``.
``m`` is CLOCK_MONOTONIC, which Linux keeps system-wide, so it orders events written by different
processes on one machine; ``t`` is for people. Writers append whole lines and flush each one, so a
reader tailing the file never sees half an event (a partial last line is left for the next read).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

Event = dict[str, Any]
Predicate = Callable[[Event], bool]


def now() -> tuple[float, float]:
    """Wall and monotonic time, read together."""
    return time.time(), time.monotonic()


class EventLog:
    """Appends events of one source to a JSONL file and, optionally, hands them to an in-process sink."""

    def __init__(self, path: Path | str | None, src: str, *, sink: Callable[[Event], None] | None = None):
        self.src = src
        self.path = Path(path) if path else None
        self._sink = sink
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8", buffering=1) if self.path else None  # noqa: SIM115

    def emit(self, ev: str, **fields: Any) -> Event:
        wall, mono = now()
        event: Event = {"t": round(wall, 6), "m": round(mono, 6), "src": self.src, "ev": ev, **fields}
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.write(line)
        if self._sink is not None:
            self._sink(event)
        return event

    def child(self, src: str) -> EventLog:
        """Another source writing to the same file and sink (e.g. one agent of many)."""
        log = EventLog.__new__(EventLog)
        log.src, log.path, log._sink, log._lock, log._file = src, self.path, self._sink, self._lock, self._file
        return log

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()


def read_events(path: Path | str) -> list[Event]:
    """Every complete event in a JSONL file (a torn last line is ignored)."""
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                events.append(json.loads(line))
    return events


def where(**expected: Any) -> Predicate:
    """A predicate matching events whose fields equal the given values (``ev="agent.reinit", agent="a1"``)."""
    items = list(expected.items())
    return lambda e: all(e.get(k) == v for k, v in items)


class WaitTimeout(HarnessError):
    """A wait on events ran out of time."""


class History:
    """All events of a fleet, in arrival order: in-process ones pushed, other processes' files tailed.

    Scenarios wait on it (``wait_for``) instead of sleeping; the oracle reads slices of it.
    """

    POLL_S = 0.002  # files are tailed at this interval while someone waits: ~2 ms added latency

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._files: dict[Path, tuple[int, bytes]] = {}

    # -- input -------------------------------------------------------------------------------
    def add(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def follow(self, path: Path | str) -> None:
        """Tail a JSONL file written by another process (from its current start)."""
        with self._cond:
            self._files.setdefault(Path(path), (0, b""))

    def poll(self) -> None:
        """Read whatever the followed files gained since the last poll."""
        with self._cond:
            for path, (offset, partial) in list(self._files.items()):
                try:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                except FileNotFoundError:
                    continue
                if not chunk:
                    continue
                data = partial + chunk
                *lines, rest = data.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._events.append(json.loads(line))
                self._files[path] = (offset + len(chunk), rest)
                self._cond.notify_all()

    # -- output ------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._cond:
            return len(self._events)

    def snapshot(self, start: int = 0) -> list[Event]:
        self.poll()
        with self._cond:
            return list(self._events[start:])

    def select(self, pred: Predicate, start: int = 0) -> list[Event]:
        return [e for e in self.snapshot(start) if pred(e)]

    def wait_for(self, pred: Predicate, *, timeout: float, what: str, start: int = 0, hint: str = "") -> Event:
        """The first event from ``start`` on matching ``pred``; WaitTimeout naming ``what`` otherwise."""
        found = self.wait_until(lambda evs: next((e for e in evs if pred(e)), None), timeout=timeout,
                                what=what, start=start, hint=hint)
        return found

    def wait_until(self, check: Callable[[list[Event]], Any], *, timeout: float, what: str,
                   start: int = 0, hint: str = "") -> Any:
        """Re-evaluate ``check`` over the events from ``start`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            result = check(self.snapshot(start))
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = "\n".join(json.dumps(e, default=str)[:300] for e in self.snapshot(start)[-8:])
                raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}",
                                  hint=hint or "see the JSONL logs of the run for what happened instead",
                                  details=f"last events:\n{tail}" if tail else "no events at all")
            with self._cond:
                self._cond.wait(min(self.POLL_S, remaining))

    def __iter__(self) -> Iterator[Event]:
        return iter(self.snapshot())


def merge_sorted(*streams: Iterable[Event]) -> list[Event]:
    """Events from several logs in monotonic-time order."""
    merged = [e for s in streams for e in s]
    merged.sort(key=lambda e: e.get("m", 0.0))
    return merged


def ensure_dir(path: Path | str) -> Path:
    p = Path(path)
    os.makedirs(p, exist_ok=True)
    return p
