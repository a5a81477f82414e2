"""Where a new connection goes: global policy (round robin, pin, only), per-agent pins, drained upstreams.

Drain wins over pins; routing changes take effect for the next connection only.
"""

from __future__ import annotations

from typing import Any

from harness.errors import UsageError


class Router:
    """Where a new connection goes: per-agent pin, else the policy; never a drained upstream. Loop thread only."""

    def __init__(self, upstreams: dict[str, tuple[str, int]]) -> None:
        self.addrs: dict[str, tuple[str, int]] = {}
        for name, (host, port) in upstreams.items():
            self.set(name, host, port)
        self.policy = "round_robin"
        self.chosen: list[str] = []  # the pinned upstream, or the "only" set
        self.drained: set[str] = set()
        self.pins: dict[str, str] = {}
        self._rr = 0

    def known(self, name: str) -> str:
        if name not in self.addrs:
            raise UsageError(f"unknown upstream {name!r} (known: {', '.join(self.addrs) or 'none'})")
        return name

    def set(self, name: str, host: str, port: int) -> None:
        if not name or not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"bad upstream {name!r} = {host}:{port} (want NAME and a port 1-65535)")
        self.addrs[name] = (host, port)

    def choose(self, agent: str | None) -> tuple[str, list[str]]:
        """(policy that decided, upstreams to try in order: a second one only for round robin)."""
        if agent is not None and agent in self.pins:
            name = self.pins[agent]
            return "agent_pin", [name] if name in self.addrs and name not in self.drained else []
        names = self.chosen if self.policy in ("pin", "only") else list(self.addrs)
        live = [n for n in names if n in self.addrs and n not in self.drained]
        if not live:
            return self.policy, []
        i = self._rr % len(live)
        self._rr += 1
        if self.policy == "round_robin" and len(live) > 1:
            return self.policy, [live[i], live[(i + 1) % len(live)]]
        return self.policy, [live[i]]

    def state(self) -> dict[str, Any]:
        return {"policy": self.policy, "upstreams": list(self.chosen) if self.policy != "round_robin" else None,
                "drained": sorted(self.drained)}
