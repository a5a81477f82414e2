"""The scenarios: pytest tests telling stories to a World, one test per scenario, parametrised by cells.

``catalogue()`` lists them without running pytest (names, first docstring lines, contracts), so the
matrix can be validated and planned before anything starts. Run them with ``harness run`` or
``pytest --pyargs harness.scenarios --matrix FILE``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from harness.protocol.model import World

MODULES = ("harness.scenarios.test_claims", "harness.scenarios.test_disturbances", "harness.scenarios.test_payloads")
CHECKS = ("ONCE", "DURABLE", "QUIET", "STOP", "IDENTITY")

Story = Callable[[World], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    story: Story
    contract: tuple[str, ...]

    @property
    def title(self) -> str:
        return (self.story.__doc__ or self.name).strip().splitlines()[0]

    @property
    def doc(self) -> str:
        return " ".join((self.story.__doc__ or "").split())


def contract(*checks: str) -> Callable[[Story], Story]:
    """Declare which checks judge a scenario (DESIGN.md: ONCE, DURABLE, QUIET, STOP, IDENTITY)."""
    for c in checks:
        if c not in CHECKS:
            raise ValueError(f"unknown check {c!r}")

    def mark(fn: Story) -> Story:
        fn.harness_contract = checks  # type: ignore[attr-defined]
        return fn

    return mark


def catalogue() -> dict[str, Scenario]:
    """Every scenario, in the order the modules define them."""
    out: dict[str, Scenario] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, fn in vars(module).items():
            if attr.startswith("test_") and hasattr(fn, "harness_contract"):
                out[attr.removeprefix("test_")] = Scenario(attr.removeprefix("test_"), fn, fn.harness_contract)
    return out
