"""The main job's plan: matrix → cells (scenario × publisher × stream × reconnect × agent), printed before it runs.

For every upgrade old → new, every assignment of old/new to the three server roles (the matrix's
``topologies``) and every agent build (``agents``), one cell per scenario. Cells that two upgrades
share (v2.31.14 everywhere, say) run once. The order is deterministic; the seed only feeds the ids
the stories invent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from harness.errors import UsageError
from harness.matrix import Matrix
from harness.protocol import Release


@dataclass(frozen=True)
class Cell:
    scenario: str
    publisher: str
    stream: str
    reconnect: str
    agent: str

    @property
    def pairing(self) -> str:
        """The grid row: the servers in role order, then the agent."""
        return f"{self.publisher}>{self.stream}>{self.reconnect},agent={self.agent}"

    @property
    def id(self) -> str:
        return f"{self.scenario}[{self.pairing}]"

    @property
    def tags(self) -> dict[str, str]:
        return {"publisher": self.publisher, "stream": self.stream, "reconnect": self.reconnect, "agent": self.agent}

    def releases(self, matrix: Matrix) -> dict[str, Release]:
        return {role: matrix.release(tag) for role, tag in self.tags.items()}

    def involves(self, tag: str) -> bool:
        return tag in self.tags.values()

    def seed(self, run_seed: int) -> int:
        """A seed of its own, derived from the run's and the cell's id (stable across runs and workers)."""
        return int.from_bytes(hashlib.sha256(f"{run_seed}:{self.id}".encode()).digest()[:8], "big")


def cells(matrix: Matrix, scenarios: list[str], *, only_scenarios: list[str] | None = None,
          only_cells: list[str] | None = None) -> list[Cell]:
    """Every cell of the matrix, filtered; UsageError for a filter that matches nothing."""
    names = [s for s in scenarios if matrix.scenarios is None or s in matrix.scenarios]
    if only_scenarios:
        unknown = [s for s in only_scenarios if s not in scenarios]
        if unknown:
            raise UsageError(f"--scenario {unknown[0]!r}: unknown (known: {', '.join(scenarios)})")
        names = [s for s in names if s in only_scenarios]
    seen: dict[str, Cell] = {}
    for up in matrix.upgrades:
        side = {"old": up.old, "new": up.new}
        for topology in matrix.topologies:
            for agent in matrix.agents:
                for scenario in names:
                    cell = Cell(scenario, side[topology[0]], side[topology[1]], side[topology[2]], side[agent])
                    seen.setdefault(cell.id, cell)
    out = list(seen.values())
    if only_cells:
        wanted = set(only_cells)
        out = [c for c in out if c.id in wanted]
        missing = wanted - {c.id for c in out}
        if missing:
            raise UsageError(f"--cell {sorted(missing)[0]!r}: no such cell in this matrix "
                             "(see 'harness run --dry-run')")
    if not out:
        raise UsageError("the plan has no cells (check the matrix's scenarios and the filters)")
    return out


def tags_of(plan: list[Cell]) -> list[str]:
    """The distinct server releases the plan needs a replica of (one replica each per fleet)."""
    return list(dict.fromkeys(t for c in plan for t in (c.publisher, c.stream, c.reconnect)))
