"""harness versions [TAG...]: which protocol variant each Coder release ships."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from harness.errors import UsageError
from harness.protocol import VARIANTS, CatalogueError, ranges_of, resolve


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tags", nargs="*", metavar="TAG", help="release tags such as v2.33.9 (none: list the catalogue)")


def run(args: argparse.Namespace) -> int:
    if not args.tags:
        rows = [(v.name, v.title, v.origin, ranges_of(v.name)) for v in VARIANTS.values()]
        print(tabulate(rows, headers=["variant", "behaviour", "origin", "releases"]))
        return 0
    rows, unknown = [], []
    for tag in args.tags:
        try:
            v = resolve(tag).variant
        except CatalogueError as e:
            unknown.append(str(e))
            continue
        rows.append((tag, v.name, v.title, ranges_of(v.name)))
    if rows:
        print(tabulate(rows, headers=["tag", "variant", "behaviour", "variant covers"]))
    if unknown:  # the known ones are printed; each unknown one is an error line, and the status says so
        raise UsageError("; ".join(unknown))
    return 0
