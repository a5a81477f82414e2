"""harness serve: one reference coderd replica of a variant, as its own process."""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from pathlib import Path

from harness import aio
from harness.commands.agent import named_release
from harness.errors import UsageError, appendable, bounded
from harness.pg.locate import DSN_ENV
from harness.protocol.ids import HEARTBEAT_S


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", help="V0, V1, V2, V3, P1 or P3 (default: the --version-tag's variant)")
    p.add_argument("--version-tag", help="the Coder release this replica stands for, e.g. v2.32.10")
    p.add_argument("--name", default="replica", help="name in logs and the ready line (default: replica)")
    p.add_argument("--pg-dsn", help=f"shared PostgreSQL (also ${DSN_ENV}); without it the replica starts its own")
    p.add_argument("--port", type=int, default=0, help="127.0.0.1 port (default 0: the OS picks)")
    p.add_argument("--heartbeat", type=float, default=HEARTBEAT_S, help="SSE ping interval, seconds (default 15)")
    p.add_argument("--listener-reconnect", type=float, default=1.0,
                   help="pubsub listener's first reconnect wait, seconds (default 1, doubling to 60)")
    p.add_argument("--admin-token", help="token for the /_harness/v1 control API (default: random, printed)")
    p.add_argument("--log", type=Path, help="JSONL event log file (default: none)")


def run(args: argparse.Namespace) -> int:
    from harness.pg.session import postgres
    from harness.server.app import ReplicaConfig, serve

    release = named_release(args.version_tag, args.variant)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a TCP port")
    if args.port:  # before PostgreSQL starts: a busy port is the caller's to fix, not a traceback
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
            try:
                probe.bind(("127.0.0.1", args.port))
            except OSError as e:
                raise UsageError(f"--port {args.port}: {e.strerror or e}") from None
    bounded("--heartbeat", args.heartbeat, 0.01, 3600)
    bounded("--listener-reconnect", args.listener_reconnect, 0.01, 3600)
    appendable("--log", args.log)
    token = args.admin_token or secrets.token_hex(16)
    with postgres(args.pg_dsn) as dsn:
        if not args.admin_token:  # once the database answers: a bad --pg-dsn stays a one-line error
            print(f"control API admin token: {token}", file=sys.stderr, flush=True)
        aio.run(serve(ReplicaConfig(release=release, name=args.name, dsn=dsn, admin_token=token, port=args.port,
                                    heartbeat_s=args.heartbeat, reconnect_min_s=args.listener_reconnect,
                                    log_path=args.log)))
    return 0
