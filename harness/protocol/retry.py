"""The agent's reconnect schedule: github.com/coder/retry as Coder's reinit loop uses it.

Pure; no I/O. ``for r := retry.New(100ms, 10s); r.Wait(ctx); { ... }`` — the wait runs *before*
every attempt, the first one included:

    delay = min(delay × φ, 10 s); sleep(delay); delay = max(delay, 100 ms)

Starting from 0 the first attempt is immediate and the waits after consecutive errors are
161.8 ms, 261.8, 423.6, 685.4 ms, 1.109 s, 1.794, 2.903, 4.698, 7.601, then 10 s forever
(φ = math.Phi exactly: 100 ms × φ⁹ is 7.601 s, where 1.618 would give 7.600).
After an event the loop calls Reset (delay = 0), so the agent reconnects immediately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GROWTH = (1 + math.sqrt(5)) / 2  # Rate: math.Phi in coder/retry
FLOOR_S = 0.100  # retry.New(100*time.Millisecond, ...) in the reinit loop
CEIL_S = 10.0  # retry.New(..., 10*time.Second)


@dataclass
class Backoff:
    """One agent's retrier. ``before_attempt()`` is the sleep before the next request, in seconds."""

    floor: float = FLOOR_S
    ceil: float = CEIL_S
    delay: float = 0.0

    def before_attempt(self) -> float:
        sleep = min(self.delay * GROWTH, self.ceil)
        self.delay = max(sleep, self.floor)
        return sleep

    def peek(self) -> float:
        """The sleep the next ``before_attempt()`` will return, without taking it."""
        return min(self.delay * GROWTH, self.ceil)

    def reset(self) -> None:
        self.delay = 0.0


def waits_after_errors(n: int) -> list[float]:
    """The sleeps before attempts 2..n+1 when every attempt fails (seconds)."""
    b = Backoff()
    b.before_attempt()  # the first attempt: immediate
    return [b.before_attempt() for _ in range(n)]
