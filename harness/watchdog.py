"""No orphans, even when the harness is SIGKILLed: a tiny process that outlives its parent just long enough.

How it works: the first time a harness process starts something that must not outlive it (a
postmaster, a replica, a temp dir), it spawns ``python -m harness.watchdog`` in its own session with
a pipe on its stdin, and writes one line per registration:

    +proc PID SIGNAL GRACE_S     stop this process group: SIGNAL to PID, then SIGKILL to its group
    -proc PID                    forget it (the owner stopped it itself)
    +dir PATH / -dir PATH        remove this directory afterwards / forget it

When the pipe reaches EOF — the parent exited, however it exited — the watchdog stops every process
still registered, removes every directory, and exits. A parent that cleaned up after itself leaves
it nothing to do. PDEATHSIG was not enough: it fires when the *thread* that forked the child ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class Watchdog:
    """The parent's side: lazily started, one per process, thread-safe."""

    _instance: Watchdog | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "harness.watchdog"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        self._write_lock = threading.Lock()
        self._pid = os.getpid()

    @classmethod
    def get(cls) -> Watchdog:
        with cls._lock:
            if cls._instance is None or cls._instance._pid != os.getpid():  # a fork needs its own
                cls._instance = Watchdog()
            return cls._instance

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        with self._write_lock:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()

    def watch_process(self, pid: int, sig: int = signal.SIGTERM, grace_s: float = 5.0) -> None:
        self._send(f"+proc {pid} {int(sig)} {grace_s}")

    def forget_process(self, pid: int) -> None:
        self._send(f"-proc {pid}")

    def watch_dir(self, path: Path | str) -> None:
        self._send(f"+dir {os.fspath(path)}")

    def forget_dir(self, path: Path | str) -> None:
        self._send(f"-dir {os.fspath(path)}")

    @property
    def pid(self) -> int:
        return self._proc.pid


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that may never reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _stop_group(pid: int, sig: int, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; we act on its exit
    procs: dict[int, tuple[int, float]] = {}
    dirs: list[str] = []
    for raw in sys.stdin.buffer:
        parts = raw.decode().rstrip("\n").split(" ", 1)
        if len(parts) != 2:
            continue
        op, arg = parts
        if op == "+proc":
            pid, sig, grace = arg.split()
            procs[int(pid)] = (int(sig), float(grace))
        elif op == "-proc":
            procs.pop(int(arg), None)
        elif op == "+dir":
            dirs.append(arg)
        elif op == "-dir" and arg in dirs:
            dirs.remove(arg)
    # The parent is gone. Stop everything still registered, newest first, in parallel.
    threads = [threading.Thread(target=_stop_group, args=(pid, sig, grace)) for pid, (sig, grace) in procs.items()]
    for t in reversed(threads):
        t.start()
    for t in threads:
        t.join()
    for d in reversed(dirs):
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
