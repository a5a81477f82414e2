"""The two kinds of failure the harness reports to people.

UsageError is the user's input (a flag, a file, a URL): one line, exit status 2, no traceback.
HarnessError is something that went wrong while running (a process that did not become ready):
it says what, where, and a hint.
"""

from __future__ import annotations

from pathlib import Path


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class HarnessError(Exception):
    """A run-time failure with what happened, where, and a hint for the reader."""

    def __init__(self, what: str, *, where: str = "", hint: str = "", details: str = "") -> None:
        self.what, self.where, self.hint, self.details = what, where, hint, details
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"({self.where})")
        if self.hint:
            parts.append(f"— hint: {self.hint}")
        return " ".join(parts)

    def __str__(self) -> str:
        text = self.one_line()
        return f"{text}\n{self.details}" if self.details else text


def bounded(name: str, value: float, low: float, high: float) -> float:
    """A command-line number that must be finite and within [low, high]; UsageError otherwise."""
    import math

    if not math.isfinite(value) or not low <= value <= high:
        raise UsageError(f"{name} {value:g}: must be between {low:g} and {high:g}")
    return value


def appendable(flag: str, path: Path | None) -> Path | None:
    """A --log FILE checked by opening it for appending, so a bad path is bad input before anything starts."""
    if path is None:
        return None
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: {(e.strerror or str(e)).lower()}") from None
    return path
