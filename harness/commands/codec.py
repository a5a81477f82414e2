"""harness codec: the component cross-product — what each pairing of releases decodes."""

from __future__ import annotations

import argparse
import json

from tabulate import tabulate

from harness.protocol.crossproduct import pubsub_rows, sse_rows, summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "md", "json"), default="table",
                   help="table (default), md (GitHub Markdown) or json")


def _grid(rows: list[dict], row_key: str, col_key: str) -> tuple[list[list[str]], list[str]]:
    cols = list(dict.fromkeys(r[col_key] for r in rows))
    grid: dict[str, dict[str, str]] = {}
    for r in rows:
        grid.setdefault(r[row_key], {})[r[col_key]] = summary(r)
    return [[k, *(grid[k][c] for c in cols)] for k in grid], cols


def run(args: argparse.Namespace) -> int:
    pubsub, sse = pubsub_rows(), sse_rows()
    if args.format == "json":
        print(json.dumps({"pubsub": pubsub, "sse": sse}, indent=2))
        return 0
    fmt = "github" if args.format == "md" else "simple"
    body, cols = _grid(pubsub, "publisher", "listener")
    print("Publisher → listener: what the /reinit handler receives "
          "(ws = the workspace, O = the owner, 0 = zero UUID)\n")
    print(tabulate(body, headers=["publisher \\ listener", *cols], tablefmt=fmt))
    body, cols = _grid(sse, "server", "agent")
    print("\nServer → agent: what the agent decodes from the SSE data\n")
    print(tabulate(body, headers=["server \\ agent", *cols], tablefmt=fmt))
    reach = [[r["server"], r["agent"], "yes" if r["sends_wait"] else "no", "yes" if r["can_seed"] else "no",
              "stops" if r["stops_on_409"] else "retries"] for r in sse]
    print("\nWho can be seeded or told 409 (the durable branch needs wait=true, except on P3)\n")
    print(tabulate(reach, headers=["server", "agent", "sends wait", "can be seeded / 409", "on 409"], tablefmt=fmt))
    return 0
