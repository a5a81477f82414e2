"""When has a group of agents settled? Judged from events, incrementally, so a thousand agents cost little.

An agent is quiet when nothing more will happen to it without another step:

- its loop has ended (polling stopped), or
- its newest request was answered with a plain pubsub wait and no data frame was written on it since, or
- it has failed the same way three times in a row since the last step (a retry loop only a further step
  can change: a 404 from V0, a 409 it does not stop on).

The tracker reads each event once, keeps per-agent state, and remembers when the last event that is
not a heartbeat happened; ``settled`` also asks that much quiet time to have passed, to catch a NOTIFY
still on its way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.events import Event, History

SAME_ERRORS = 3  # identical failures in a row that make a retry loop "steady"


@dataclass
class _AgentState:
    conn: str = ""
    decision: str | None = None
    data_after: bool = False
    errored: bool = False
    errors: list[str] = field(default_factory=list)  # kinds, since the last step
    last: list[str] = field(default_factory=list)  # the last few events, for a timeout message


class Quiescence:
    def __init__(self, history: History, start: int, *, belongs: Callable[[Event], bool],
                 running: Callable[[str], bool]) -> None:
        self.history, self.cursor = history, start
        self.belongs, self.running = belongs, running
        self.agents: dict[str, _AgentState] = {}
        self.last_activity = time.monotonic()

    def watch(self, agent_id: str) -> None:
        self.agents.setdefault(agent_id, _AgentState())

    def step(self) -> None:
        """A new step starts: retry loops must show themselves steady again."""
        self.update()
        for state in self.agents.values():
            state.errors.clear()

    def update(self) -> None:
        new = self.history.snapshot(self.cursor)
        self.cursor += len(new)
        for e in new:
            if not self.belongs(e):
                continue
            ev = e.get("ev", "")
            if not (ev == "sse.frame" and e.get("type") == "ping"):
                self.last_activity = max(self.last_activity, e.get("m", 0.0))
            agent = e.get("agent") or str(e.get("conn", "")).split("#", 1)[0]
            state = self.agents.get(agent)
            if state is None:
                continue
            state.last = [*state.last[-3:], f"{ev} {e.get('error') or e.get('status') or e.get('decision') or ''}"]
            if ev == "agent.request":
                state.conn, state.decision, state.data_after, state.errored = e["conn"], None, False, False
            elif ev == "agent.error":
                state.errored = True
                state.errors.append(str(e.get("error", "")).split(":", 1)[0])
            elif ev == "reinit.decision" and e.get("conn") == state.conn:
                state.decision = e.get("decision")
            elif ev == "sse.frame" and e.get("type") == "data" and e.get("conn") == state.conn:
                state.data_after = True

    def quiet(self, agent_id: str) -> bool:
        state = self.agents[agent_id]
        if not self.running(agent_id):
            return True
        if state.errored:
            tail = state.errors[-SAME_ERRORS:]
            return len(tail) == SAME_ERRORS and len(set(tail)) == 1
        return state.decision == "wait" and not state.data_after

    def busy(self) -> list[str]:
        self.update()
        return [a for a in self.agents if not self.quiet(a)]

    def settle(self, *, quiet_s: float, timeout_s: float, what: str) -> None:
        """Return once every watched agent is quiet and nothing happened for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            busy = self.busy()
            if not busy and time.monotonic() - self.last_activity >= quiet_s:
                return
            if time.monotonic() > deadline:
                shown = "\n".join(f"agent {a}: {'; '.join(self.agents[a].last)}" for a in busy[:10])
                more = f"\n… and {len(busy) - 10} more" if len(busy) > 10 else ""
                raise HarnessError(f"{what} did not settle within {timeout_s:.0f}s ({len(busy)} agents still busy)",
                                   hint="a replica or agent may be wedged; see the run's JSONL logs",
                                   details=shown + more)
            time.sleep(0.005)  # poll interval: the loop watches events, it does not wait for a guess
