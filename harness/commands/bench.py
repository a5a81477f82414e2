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
    ag = sub.add_parser("agents", help="N agents holding streams on 3 replicas, then a claim for each")
    ag.add_argument("--agents", type=int, default=1000, help="how many agents (1000)")
    ag.add_argument("--tag", default="v2.34.4", help="release of the replicas and agents (v2.34.4)")
    for s in (ps, ag):
        s.add_argument("--pg-dsn", help=f"use this PostgreSQL instead of starting one (also ${DSN_ENV})")
        s.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    px = sub.add_parser("proxy", help="latency the fault proxy adds to an SSE event, and events/s through it")
    px.add_argument("--events", type=int, default=2000, help="paced events per path, direct and via proxy (2000)")
    px.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    sk = sub.add_parser("soak", help="a full rolling upgrade with 1,000 agents, cuts and kills, run twice")
    sk.add_argument("--agents", type=int, default=1000, help="agents (1000)")
    sk.add_argument("--seed", type=int, default=7, help="plan seed (7)")
    sk.add_argument("--runs", type=int, default=2, help="how many times to run the same plan (2)")
    sk.add_argument("--pg-dsn", help=f"use this PostgreSQL instead of starting one (also ${DSN_ENV})")
    sk.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    mx = sub.add_parser("matrix", help="wall time of a matrix with -n 1 and -n auto, and per-cell overhead")
    mx.add_argument("--matrix", default="matrix.yaml", help="the matrix to time (matrix.yaml)")
    mx.add_argument("--workers", default="1,auto", help="comma-separated -n values to compare (1,auto)")
    mx.add_argument("--scenario", action="append", metavar="S", help="time only this scenario (repeatable)")
    mx.add_argument("--json", action="store_true", help="print the figures as one JSON object")


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
    if args.what == "agents":
        if args.agents < 1:
            raise UsageError("--agents must be at least 1")
        from harness.bench import agents
        from harness.pg.session import postgres
        from harness.protocol import CatalogueError, resolve

        try:
            release = resolve(args.tag)
        except CatalogueError as e:
            raise UsageError(str(e)) from None
        if release.variant.agent is None:
            raise UsageError(f"--tag {args.tag} is {release.variant.name}: its agent has no reinit loop to simulate")
        with postgres(args.pg_dsn) as dsn:
            figures = agents.run(dsn, agents=args.agents, tag=args.tag,
                                 progress=lambda m: print(m, flush=True) if not args.json else None)
        _print(figures, args.json, f"agents: {args.agents} agents on 3 replicas, a claim each (target: p99 < 1 s)")
        return 0
    if args.what == "proxy":
        if args.events < 1:
            raise UsageError("--events must be at least 1")
        from harness.bench import proxy

        figures = proxy.run(events=args.events)
        _print(figures, args.json, "proxy: SSE source → fault proxy → reader, three OS processes, no fault armed "
                                   "(target: added p99 ≤ 1 ms)")
        return 0
    if args.what == "soak":
        if args.runs < 1:
            raise UsageError("--runs must be at least 1")
        from harness.bench import soak
        from harness.pg.session import postgres

        try:
            plan = soak.plan(agents=args.agents, seed=args.seed)
        except ValueError as e:  # the roll's own limits, e.g. agents must be 1..5000
            raise UsageError(str(e)) from None
        with postgres(args.pg_dsn) as dsn:
            figures = soak.run(dsn, plan, runs=args.runs,
                               progress=lambda m: print(m, flush=True) if not args.json else None)
        _print(figures, args.json, "soak: a full roll with cuts and kills (target: < 5 min, 0 surprises, same counts)")
        return 0
    if args.what == "matrix":
        from pathlib import Path

        from harness.bench import matrix as bench_matrix
        from harness.commands.run import workers
        from harness.matrix import load
        from harness.plan import cells
        from harness.scenarios import catalogue

        scenarios = list(catalogue())
        # bad input fails here, in one line, as the run itself would check it
        cells(load(Path(args.matrix), known_scenarios=scenarios), scenarios, only_scenarios=args.scenario)
        counts = [w.strip() for w in args.workers.split(",") if w.strip()]
        for w in counts:
            workers(w, 1)
        extra = [a for s in args.scenario or [] for a in ("--scenario", s)]
        figures = bench_matrix.run(Path(args.matrix), counts, extra=extra,
                                   progress=lambda m: print(m, flush=True) if not args.json else None)
        if args.json:
            print(json.dumps(figures))
        else:
            print(f"matrix: {figures.pop('matrix')} "
                  "(overhead = cell time beyond back-off, listener, delay, restart and "
                  "quiet-window waits)")
            for n, f in figures.items():
                _print(f, False, f"  {n}")
        return 0
    raise UsageError(f"unknown benchmark {args.what!r}")
