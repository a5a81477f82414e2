"""Run settings, resolved in one place: command line, then environment, then matrix.yaml, then default.

A bad value is one UsageError line naming where it came from (``--time-scale 0``, ``$HARNESS_SEED``).
The effective seed and time scale are printed in the plan header and recorded in results.json.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.matrix import Matrix

ENV = {"matrix": "HARNESS_MATRIX", "seed": "HARNESS_SEED", "time_scale": "HARNESS_TIME_SCALE",
       "quiet_ms": "HARNESS_QUIET_MS", "report_dir": "HARNESS_REPORT_DIR"}
DEFAULT_MATRIX = Path("matrix.yaml")
DEFAULT_REPORT_DIR = Path("reports")


@dataclass(frozen=True)
class Settings:
    seed: int
    time_scale: float
    quiet_ms: int
    report_dir: Path
    sources: dict[str, str]  # setting → where its value came from, for the plan header

    @property
    def quiet_s(self) -> float:
        return self.quiet_ms / 1000


def matrix_path(cli: str | None, env: Mapping[str, str] = os.environ) -> Path:
    return Path(cli or env.get(ENV["matrix"]) or DEFAULT_MATRIX)


def _pick(name: str, cli: Any, env: Mapping[str, str], matrix_value: Any, default: Any,
          parse: type, check: Any, flag: str, matrix_name: str = "matrix.yaml") -> tuple[Any, str]:
    if cli is not None:
        value, source = cli, flag
    elif env.get(ENV[name]) not in (None, ""):
        raw = env[ENV[name]]
        try:
            value = parse(raw)
        except ValueError:
            kind = "a whole number" if parse is int else "a number"
            raise UsageError(f"${ENV[name]}={raw!r}: expected {kind}") from None
        source = f"${ENV[name]}"
    elif matrix_value is not None:
        value, source = matrix_value, matrix_name
    else:
        value, source = default, "default"
    problem = check(value)
    if problem:
        raise UsageError(f"{source if source != 'default' else name} {value!r}: {problem}")
    return value, source


def resolve(matrix: Matrix, *, seed: int | None = None, time_scale: float | None = None,
            quiet_ms: int | None = None, report_dir: str | None = None,
            env: Mapping[str, str] = os.environ) -> Settings:
    seed_v, seed_src = _pick("seed", seed, env, matrix.seed, 1, int,
                             lambda v: None if 0 <= v < 2**63 else "must be between 0 and 2^63-1", "--seed",
                             matrix.path.name)
    scale_v, scale_src = _pick("time_scale", time_scale, env, matrix.time_scale, 1.0, float,
                               lambda v: "must be between 0.01 and 100" if not 0.01 <= v <= 100 else None,
                               "--time-scale", matrix.path.name)
    quiet_v, quiet_src = _pick("quiet_ms", quiet_ms, env, matrix.quiet_ms, 300, int,
                               lambda v: "must be between 0 and 60000" if not 0 <= v <= 60000 else None, "--quiet-ms",
                               matrix.path.name)
    report = report_dir_of(report_dir, env)
    return Settings(seed=int(seed_v), time_scale=float(scale_v), quiet_ms=int(quiet_v), report_dir=report,
                    sources={"seed": seed_src, "time_scale": scale_src, "quiet_ms": quiet_src})


def report_dir_of(given: str | None, env: Mapping[str, str]) -> Path:
    """--report-dir, else $HARNESS_REPORT_DIR, else ./reports; an empty --report-dir is a mistake, not a default."""
    if given is not None and not given.strip():
        raise UsageError("--report-dir '': give a folder (default: ./reports)")
    return Path(given or env.get(ENV["report_dir"]) or DEFAULT_REPORT_DIR)


def ready_report_dir(path: Path) -> Path:
    """Create the reports folder now, so that an unusable one is bad input before anything starts."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"report dir {path}: not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"report dir {path}: cannot create it: {(e.strerror or str(e)).lower()}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"report dir {path}: not writable")
    return path
