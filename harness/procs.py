"""Managed OS processes: spawn tied to the watchdog, wait for readiness, stop idempotently.

Every process the harness starts (postmaster, replica, agent host) goes through ``spawn``: it runs in
its own session (so a terminal's Ctrl-C reaches only the harness, which then stops things in order)
and is registered with the watchdog (so nothing outlives a SIGKILLed harness). ``Readiness`` waits
for one condition with one deadline and notices an early exit; its timeout says what it waited for,
for how long, the process status, the last log lines, and a hint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError
from harness.watchdog import Watchdog


def tail(path: Path | str | None, lines: int = 12) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def spawn(argv: Sequence[str], *, log: Path | None = None, stdout: int | IO[Any] | None = None,
          stop_signal: int = signal.SIGTERM, grace_s: float = 5.0, **kwargs: Any) -> subprocess.Popen:
    """Start a process in its own session, output to ``log``, registered with the watchdog."""
    out: int | IO[Any] = stdout if stdout is not None else subprocess.DEVNULL
    log_file = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out if stdout is not None else log_file,
                                stderr=log_file, start_new_session=True, close_fds=True, **kwargs)
    finally:
        if log is not None:
            log_file.close()  # type: ignore[union-attr]
    Watchdog.get().watch_process(proc.pid, stop_signal, grace_s)
    return proc


def stop(proc: subprocess.Popen | None, *, sig: int = signal.SIGTERM, grace_s: float = 5.0) -> int | None:
    """Stop a spawned process and its group; idempotent. Returns its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
    if proc.poll() is None:
        proc.wait()
    Watchdog.get().forget_process(proc.pid)
    return proc.returncode


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


class Readiness:
    """Wait until ``check()`` returns a truthy value, with one deadline; fail fast if the process died."""

    def __init__(self, what: str, check: Callable[[], Any], *, timeout_s: float = 30.0, interval_s: float = 0.02,
                 proc: subprocess.Popen | None = None, log: Path | None = None, hint: str = "") -> None:
        self.what, self.check, self.timeout_s, self.interval_s = what, check, timeout_s, interval_s
        self.proc, self.log, self.hint = proc, log, hint

    def wait(self) -> Any:
        start = time.monotonic()
        last_error: Exception | None = None
        while True:
            try:
                result = self.check()
                if result:
                    return result
            except Exception as e:
                last_error = e
            if self.proc is not None and self.proc.poll() is not None:
                status = describe_exit(self.proc.returncode)
                raise self._failure(f"{self.what}: the process {status} before it was ready", last_error)
            if time.monotonic() - start > self.timeout_s:
                raise self._failure(f"{self.what}: not ready after {self.timeout_s:.0f}s "
                                    f"(process {describe_exit(self.proc.poll()) if self.proc else 'n/a'})", last_error)
            time.sleep(self.interval_s)

    def _failure(self, what: str, last_error: Exception | None) -> HarnessError:
        details = []
        if last_error is not None:
            details.append(f"last probe error: {last_error}")
        log_tail = tail(self.log)
        if log_tail:
            details.append(f"last log lines ({self.log}):\n{log_tail}")
        return HarnessError(what, hint=self.hint, details="\n".join(details))
