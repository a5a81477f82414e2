"""Many logical agents in one OS process, each with its own thread and connection.

Stopping interrupts every agent first and joins them after, so a thousand agents stop in about the
time one does.
"""

from __future__ import annotations

import threading
from collections import Counter

from harness.agent.agent import SimAgent
from harness.events import EventLog
from harness.protocol import Release

AGENT_THREAD_STACK = 512 * 1024  # agents are shallow; the 8 MiB default only costs address space


class AgentHost:
    def __init__(self, log: EventLog, *, time_scale: float = 1.0) -> None:
        self.log, self.time_scale = log, time_scale
        self.agents: dict[str, SimAgent] = {}
        threading.stack_size(AGENT_THREAD_STACK)

    def add(self, agent_id: str, *, url: str, token: str, release: Release, workspace: str = "") -> SimAgent:
        if agent_id in self.agents:
            raise ValueError(f"agent {agent_id} exists")
        agent = SimAgent(agent_id, url=url, token=token, release=release, log=self.log,
                         time_scale=self.time_scale, workspace=workspace)
        self.agents[agent_id] = agent
        return agent

    def start_all(self) -> None:
        for agent in self.agents.values():
            if not agent.running:
                agent.start()

    def stop_all(self) -> None:
        for agent in self.agents.values():
            agent.interrupt()
        for agent in self.agents.values():
            agent.join()

    def __enter__(self) -> AgentHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def summary(self) -> dict[str, int]:
        states = Counter("polling" if a.state.polling else (a.state.stopped_because or "stopped")
                         for a in self.agents.values())
        return {"agents": len(self.agents), **states,
                "reinits": sum(a.state.generation for a in self.agents.values()),
                "requests": sum(a.state.requests for a in self.agents.values()),
                "failed attempts": sum(a.state.failures for a in self.agents.values())}

    def last_failure(self) -> str:
        """One agent's latest failed attempt, to show why agents are retrying ("" if none failed)."""
        return next((a.state.last_failure for a in self.agents.values() if a.state.last_failure), "")
