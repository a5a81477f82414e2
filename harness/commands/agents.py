"""harness agents: many simulated agents in one process, with a status line every few seconds."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.commands.agent import add_release_arguments, check_token, check_url, release_from
from harness.errors import UsageError, appendable, bounded

STATUS_EVERY_S = 5.0
MAX_COUNT = 5000  # prebuilds created one by one through the control API before any agent starts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the server (a replica, or a load balancer in front of several)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", type=Path, help="a file with one agent token per line")
    src.add_argument("--count", type=int,
                     help="create this many prebuilds through the control API (reference replicas)")
    p.add_argument("--admin-token", help="the control API token, with --count")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--log", type=Path, help="JSONL events of every agent")
    add_release_arguments(p)


def run(args: argparse.Namespace) -> int:
    from harness.agent.host import AgentHost
    from harness.events import EventLog
    from harness.server.client import ControlClient

    release = release_from(args)
    check_url(args.url)
    appendable("--log", args.log)
    if args.duration is not None:
        bounded("--duration", args.duration, 0.1, 7 * 24 * 3600)
    if args.tokens:
        try:
            tokens = [t.strip() for t in args.tokens.read_text(encoding="utf-8").splitlines() if t.strip()]
        except OSError as e:
            raise UsageError(f"--tokens {args.tokens}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--tokens {args.tokens}: not a text file of tokens (not UTF-8)") from None
        if not tokens:
            raise UsageError(f"--tokens {args.tokens}: no tokens in the file")
        for n, token in enumerate(tokens, 1):
            check_token(f"--tokens {args.tokens}, token {n}", token)
        workspaces = [""] * len(tokens)
    else:
        if not 1 <= args.count <= MAX_COUNT:
            raise UsageError(f"--count {args.count}: must be between 1 and {MAX_COUNT}")
        if not args.admin_token:
            raise UsageError("--count needs --admin-token (the replicas' control API token)")
        control = ControlClient(args.url, args.admin_token)
        created = [control.create_prebuild() for _ in range(args.count)]
        tokens, workspaces = [w.agent_token for w in created], [str(w.id) for w in created]
        print(f"created {len(created)} prebuilds", flush=True)
    log = EventLog(args.log, "agents")
    started = time.monotonic()
    with AgentHost(log, time_scale=args.time_scale) as host:
        for i, (token, ws) in enumerate(zip(tokens, workspaces, strict=True)):
            host.add(f"a{i}", url=args.url, token=token, release=release, workspace=ws)
        host.start_all()
        while args.duration is None or time.monotonic() - started < args.duration:
            elapsed = time.monotonic() - started
            until_end = float("inf") if args.duration is None else args.duration - elapsed
            time.sleep(max(0.0, min(STATUS_EVERY_S - elapsed % STATUS_EVERY_S, until_end)))
            summary, why = host.summary(), host.last_failure()
            print(f"{time.monotonic() - started:6.1f}s  " + ", ".join(f"{k} {v}" for k, v in summary.items())
                  + (f" (e.g. {why})" if why else ""), flush=True)
    log.close()
    return 0
