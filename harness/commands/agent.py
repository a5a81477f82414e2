"""harness agent: attach one simulated agent to any server that speaks the protocol; print what it sees.

Works against the reference replicas or a real Coder deployment (give a prebuilt workspace's agent
token). Runs until polling stops or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from harness.errors import UsageError, appendable, bounded
from harness.protocol import CatalogueError, Release, UnknownRelease, resolve


def add_release_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", help="agent rules to use: V1, V2, V3 (default: the --version-tag's)")
    p.add_argument("--version-tag", help="the Coder release the agent stands for, e.g. v2.31.14")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply the retry back-off by this (default 1: Coder's real timings)")


def named_release(version_tag: str | None, variant: str | None) -> Release:
    """The release --version-tag and/or --variant name (a variant with a tag pins it); UsageError otherwise."""
    if not variant and not version_tag:
        raise UsageError("give --variant or --version-tag")
    try:
        return resolve(version_tag or variant or "", {version_tag: variant} if version_tag and variant else None)
    except UnknownRelease as e:
        raise UsageError(f"{e}; give its variant too, e.g. --version-tag {e.tag} --variant V3") from None
    except CatalogueError as e:
        raise UsageError(str(e)) from None


def release_from(args: argparse.Namespace) -> Release:
    release = named_release(args.version_tag, args.variant)
    bounded("--time-scale", args.time_scale, 0.01, 100)
    if release.variant.agent is None:
        raise UsageError(f"{release.tag} is {release.variant.name}: its agent has no reinit loop to simulate")
    return release


def check_url(url: str) -> str:
    try:
        u = urlparse(url)
        ok = u.scheme in ("http", "https") and bool(u.hostname) and (u.port is None or u.port > 0)
    except ValueError:  # an unclosed [IPv6 bracket, a port past 65535
        ok = False
    if not ok:
        raise UsageError(f"--url {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]")
    return url


def check_token(where: str, token: str) -> str:
    """A token goes into a header or a cookie: visible ASCII only, or the agent would retry a request it cannot send."""
    if not token or not all("!" <= ch <= "~" for ch in token):
        raise UsageError(f"{where}: {token!r} is not a token (visible ASCII, no spaces)")
    return token


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:3000 or https://coder.example.com")
    p.add_argument("--token", required=True, help="the workspace agent's token")
    p.add_argument("--log", type=Path, help="also write the JSONL events here")
    add_release_arguments(p)


def run(args: argparse.Namespace) -> int:
    from harness.agent.agent import SimAgent
    from harness.agent.narrate import line
    from harness.events import EventLog

    release = release_from(args)
    check_url(args.url)
    check_token("--token", args.token)
    appendable("--log", args.log)
    done = threading.Event()

    def show(event: dict) -> None:
        text = line(event)
        if text:
            stamp = time.strftime("%H:%M:%S", time.localtime(event["t"])) + f".{int(event['t'] % 1 * 1000):03d}"
            print(f"{stamp}  {text}", flush=True)
        if event["ev"] in ("agent.stopped",):
            done.set()

    log = EventLog(args.log, "agent", sink=show)
    agent = SimAgent("agent", url=args.url, token=args.token, release=release, log=log, time_scale=args.time_scale)
    agent.start()
    try:
        while not done.wait(0.2):
            pass
    finally:
        agent.stop()
        log.close()
    print(f"polling stopped after {agent.state.requests} request(s) and {agent.state.generation} reinit(s)",
          file=sys.stderr)
    return 0
