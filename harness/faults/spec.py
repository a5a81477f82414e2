"""Faults and triggers as values: what the proxy can do to a connection, and when.

``Fault.of("delay(200)")`` and ``Trigger.of("nth_event(3)")`` parse the spellings users and scenarios
write; ``FaultBook`` holds what is armed, per agent or for all, and hands out what a moment triggers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError

# name → (argument kind, meaning of the argument), for Fault and Trigger
FAULTS: dict[str, type | None] = {"close": None, "reset": None, "blackhole": None,
                                  "delay": float, "buffer": int, "idle_cut": float}
TRIGGERS: dict[str, type | None] = {"now": None, "on_connect": None, "next_data_frame": None,
                                    "after_data_frame": None, "nth_event": int, "idle": None}
FRAME_TRIGGERS = frozenset({"next_data_frame", "after_data_frame", "nth_event", "idle"})
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")


def _parse_spec(spec: str, table: dict[str, type | None], what: str) -> tuple[str, float | None]:
    m = _SPEC.match(spec)
    if not m or m.group(1) not in table:
        raise UsageError(f"unknown {what} {spec!r} (one of: {', '.join(table)})")
    return m.group(1), (float(m.group(2)) if m.group(2) else None)


def _check_arg(name: str, arg: float | None, kind: type | None, what: str) -> float | None:
    if kind is None:
        if arg is not None:
            raise UsageError(f"{what} {name!r} takes no argument")
        return None
    if arg is None or arg < 0 or (kind is int and (arg != int(arg) or arg < 1)):
        raise UsageError(f"{what} {name!r} needs a {'positive whole' if kind is int else 'non-negative'} "
                         f"argument, e.g. {name}(5)")
    return int(arg) if kind is int else float(arg)


@dataclass(frozen=True)
class Fault:
    """What to do to a connection: ``close``, ``reset``, ``blackhole``, ``delay(ms)``, ``buffer(n_bytes)``,
    ``idle_cut(seconds)``."""
    kind: str
    arg: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise UsageError(f"unknown fault {self.kind!r} (one of: {', '.join(FAULTS)})")
        object.__setattr__(self, "arg", _check_arg(self.kind, self.arg, FAULTS[self.kind], "fault"))
        if self.kind == "idle_cut" and not self.arg:
            raise UsageError("fault 'idle_cut' needs a positive number of seconds, e.g. idle_cut(30)")

    @classmethod
    def of(cls, spec: Fault | str) -> Fault:
        return spec if isinstance(spec, Fault) else cls(*_parse_spec(spec, FAULTS, "fault"))

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}({self.arg:g})"


@dataclass(frozen=True)
class Trigger:
    """When: ``now``, ``on_connect``, ``next_data_frame``, ``after_data_frame``, ``nth_event(n)``, ``idle``."""
    kind: str
    n: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRIGGERS:
            raise UsageError(f"unknown trigger {self.kind!r} (one of: {', '.join(TRIGGERS)})")
        object.__setattr__(self, "n", _check_arg(self.kind, self.n, TRIGGERS[self.kind], "trigger"))

    @classmethod
    def of(cls, spec: Trigger | str) -> Trigger:
        if isinstance(spec, Trigger):
            return spec
        kind, arg = _parse_spec(spec, TRIGGERS, "trigger")
        return cls(kind, arg)  # type: ignore[arg-type]  # __post_init__ makes it an int

    def __str__(self) -> str:
        return self.kind if self.n is None else f"{self.kind}({self.n})"


@dataclass(frozen=True)
class Armed:
    handle: int
    fault: Fault
    trigger: Trigger
    agent: str | None
    repeat: bool

    def matches(self, agent: str | None) -> bool:
        return self.agent is None or self.agent == agent

    def fields(self) -> dict[str, Any]:
        return {"handle": self.handle, "fault": str(self.fault), "trigger": str(self.trigger), "agent": self.agent,
                "repeat": self.repeat}


class FaultBook:
    """Armed faults and the moments they wait for. Loop thread only."""

    def __init__(self) -> None:
        self.armed: dict[int, Armed] = {}  # until disarmed: standing effects are lifted through it
        self.active: list[Armed] = []  # still waiting for their trigger

    def add(self, armed: Armed) -> None:
        self.armed[armed.handle] = armed
        if armed.trigger.kind != "now" or armed.repeat:  # a one-shot "now" is applied at once and done
            self.active.append(armed)

    def remove(self, handle: int) -> Armed | None:
        armed = self.armed.pop(handle, None)
        if armed in self.active:
            self.active.remove(armed)
        return armed

    def wants_frames(self, agent: str | None) -> bool:
        """Whether a frame-level trigger could fire for ``agent``: its bytes must then be relayed re-chunked."""
        return bool(self.active) and any(a.trigger.kind in FRAME_TRIGGERS and a.matches(agent) for a in self.active)

    def wants(self, agent: str | None, trigger: str) -> bool:
        return any(a.trigger.kind == trigger and a.matches(agent) for a in self.active)

    def take(self, agent: str | None, trigger: str, n: int | None = None) -> list[Armed]:
        """Faults that fire for ``agent`` at this moment; one-shot ones are used up."""
        if not self.active:
            return []
        hits = [a for a in self.active if a.trigger.kind == trigger and a.trigger.n == n and a.matches(agent)]
        for a in hits:
            if not a.repeat:
                self.active.remove(a)
        return hits

    def opening(self, agent: str | None) -> list[Armed]:
        """For a new connection: the next ``on_connect`` faults, and every repeating ``now`` fault."""
        return self.take(agent, "on_connect") + [a for a in self.active if a.trigger.kind == "now" and a.matches(agent)]
