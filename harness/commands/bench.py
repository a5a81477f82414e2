"""harness bench {pubsub,agents,proxy,matrix,soak}: the figures the README quotes, measured here."""

from __future__ import annotations

import argparse
import json

from harness.errors import UsageError
from harness.pg.locate import DSN_ENV


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    ps = sub.add_parser("pubsub", help="publish → receive latency and notifications/s between two processes")
    ps.add_argument("--messages", type=int, default=20000, help="burst size for the throughput phase (20000)")
    ps.add_argument("--paced", type=int, default=2000, help="messages in the paced latency phase (2000)")
    for s in (ps,):
        s.add_argument("--pg-dsn", help=f"use this PostgreSQL instead of starting one (also ${DSN_ENV})")
        s.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def _print(figures: dict, as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    print(title)
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"  {k:<{width}}  {v}")


def run(args: argparse.Namespace) -> int:
    if args.what == "pubsub":
        if args.messages < 1 or args.paced < 1:
            raise UsageError("--messages and --paced must be at least 1")
        from harness.bench import pubsub
        from harness.pg.session import postgres

        with postgres(args.pg_dsn) as dsn:
            figures = pubsub.run(dsn, messages=args.messages, paced=args.paced)
        _print(figures, args.json, "pubsub: two OS processes on one PostgreSQL (target: p50 < 2 ms, ≥ 5,000/s)")
        return 0
    raise UsageError(f"unknown benchmark {args.what!r}")
