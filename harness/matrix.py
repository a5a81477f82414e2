"""matrix.yaml: what ``harness run`` checks, read strictly.

Every mistake is one line naming the file, the line, the key and what was expected — the validator
walks PyYAML's node tree (which keeps line numbers) rather than the plain data. See README "The
matrix" for the format; ``Matrix`` is what the rest of the harness gets.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UsageError
from harness.protocol import VARIANTS, CatalogueError, Release, UnknownRelease, resolve

ROLES = ("publisher", "stream", "reconnect", "agent")
TOP_KEYS = {"seed", "time_scale", "quiet_ms", "candidate", "versions", "upgrades", "agents", "topologies",
            "scenarios", "ledger"}


@dataclass(frozen=True)
class LedgerEntry:
    """An accepted incompatibility: which cells, why, the ticket, and until when it is accepted."""

    match: dict[str, tuple[str, ...]]
    reason: str
    ticket: str
    expires: dt.date
    line: int

    def matches(self, cell_roles: dict[str, Release], scenario: str) -> bool:
        for key, patterns in self.match.items():
            if key == "scenario":
                if not any(fnmatch.fnmatchcase(scenario, p) for p in patterns):
                    return False
                continue
            roles = ROLES if key == "involves" else (key,)
            if not any(_role_matches(cell_roles[r], p) for r in roles for p in patterns):
                return False
        return True

    def live(self, today: dt.date) -> bool:
        return today <= self.expires

    def describe(self) -> str:
        return ", ".join(f"{k}={'|'.join(v)}" for k, v in self.match.items())


def _role_matches(release: Release, pattern: str) -> bool:
    if pattern in VARIANTS:
        return release.variant.name == pattern
    return fnmatch.fnmatchcase(release.tag, pattern)


@dataclass(frozen=True)
class Upgrade:
    old: str
    new: str


@dataclass
class Matrix:
    path: Path
    sha256: str
    seed: int | None
    time_scale: float | None
    quiet_ms: int | None
    candidate: str | None
    pins: dict[str, str]
    upgrades: list[Upgrade]
    agents: tuple[str, ...]  # "old" and/or "new"
    topologies: list[tuple[str, str, str]]  # (publisher, stream, reconnect), each "old" or "new"
    scenarios: list[str] | None  # None: all
    ledger: list[LedgerEntry] = field(default_factory=list)

    def release(self, tag: str) -> Release:
        return resolve(tag, self.pins)


ALL_TOPOLOGIES = [(p, s, r) for p in ("old", "new") for s in ("old", "new") for r in ("old", "new")]


class _Checker:
    """Walks yaml nodes and raises UsageError naming file:line and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, where: str, what: str) -> UsageError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return UsageError(f"{self.path}{line}: {where}: {what}")

    def mapping(self, node: yaml.Node, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "expected a mapping (key: value lines)")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, where, "keys must be plain names")
            if k.value in out:
                raise self.fail(k, f"{where}.{k.value}" if where else k.value, "given twice")
            out[k.value] = (k, v)
        return out

    def sequence(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, "expected a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, where, "expected a single value")
        try:
            return yaml.safe_load(yaml.serialize(node))
        except ValueError as e:  # YAML reads 2026-02-30 as a date, and there is no such day
            raise self.fail(node, where, f"{node.value!r} is not a valid value: {e}") from None

    def string(self, node: yaml.Node, where: str) -> str:
        value = self.scalar(node, where)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, where, f"expected text, got {value!r}")
        return value.strip()

    def number(self, node: yaml.Node, where: str, kind: type, low: float, high: float) -> Any:
        value = self.scalar(node, where)
        wrong_kind = kind is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
            raise self.fail(node, where, f"expected {'a whole number' if kind is int else 'a number'}, got {value!r}")
        if not low <= value <= high:
            raise self.fail(node, where, f"{value} is out of range ({low}..{high})")
        return value

    def tag(self, node: yaml.Node, where: str, pins: dict[str, str]) -> str:
        value = self.string(node, where)
        try:
            resolve(value, pins)
        except UnknownRelease as e:
            raise self.fail(node, where, f"{e}; pin its variant under 'versions:', e.g. '{e.tag}: V3'") from None
        except CatalogueError as e:
            raise self.fail(node, where, str(e)) from None
        return value


def load(path: Path | str, *, known_scenarios: list[str]) -> Matrix:
    """Read and validate a matrix file; UsageError (file:line: key: what) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (give --matrix FILE)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read it: {e}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    c = _Checker(path)
    if root is None:
        raise UsageError(f"{path}: the file is empty")
    top = c.mapping(root, "")
    for key, (knode, _) in top.items():
        if key not in TOP_KEYS:
            raise c.fail(knode, key, f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")
    for required in ("upgrades",):
        if required not in top:
            raise c.fail(root, required, "missing (list the old → new upgrades to check)")

    pins: dict[str, str] = {}
    if "versions" in top:
        for tag, (knode, vnode) in c.mapping(top["versions"][1], "versions").items():
            variant = c.string(vnode, f"versions.{tag}")
            if variant not in VARIANTS:
                raise c.fail(vnode, f"versions.{tag}", f"{variant!r} is not a variant (one of {', '.join(VARIANTS)})")
            try:
                resolve(tag, {tag: variant})
            except CatalogueError as e:
                raise c.fail(knode, f"versions.{tag}", str(e)) from None
            pins[tag] = variant

    upgrades = []
    for i, node in enumerate(c.sequence(top["upgrades"][1], "upgrades")):
        where = f"upgrades[{i}]"
        m = c.mapping(node, where)
        for key, (knode, _) in m.items():
            if key not in ("from", "to"):
                raise c.fail(knode, f"{where}.{key}", "unknown key (expected from, to)")
        for key in ("from", "to"):
            if key not in m:
                raise c.fail(node, f"{where}.{key}", "missing")
        old, new = c.tag(m["from"][1], f"{where}.from", pins), c.tag(m["to"][1], f"{where}.to", pins)
        if old == new:
            raise c.fail(node, where, f"from and to are the same release ({old})")
        upgrades.append(Upgrade(old, new))
    if not upgrades:
        raise c.fail(top["upgrades"][1], "upgrades", "list at least one upgrade")

    def opt(key: str, default: Any, read: Any) -> Any:
        return read(top[key][1], key) if key in top else default

    # absent settings stay None: the settings resolver applies defaults and says where each value came from
    seed = opt("seed", None, lambda n, w: c.number(n, w, int, 0, 2**63 - 1))
    time_scale = opt("time_scale", None, lambda n, w: float(c.number(n, w, float, 0.01, 100)))
    quiet_ms = opt("quiet_ms", None, lambda n, w: c.number(n, w, int, 0, 60_000))
    candidate = opt("candidate", None, lambda n, w: c.tag(n, w, pins))
    in_upgrades = list(dict.fromkeys(v for u in upgrades for v in (u.old, u.new)))
    if candidate is not None and candidate not in in_upgrades:
        # a gate for a release no cell runs would pass without checking anything (a typo, say)
        raise c.fail(top["candidate"][1], "candidate", f"{candidate} is in none of the upgrades "
                     f"(they name {', '.join(in_upgrades)})")

    agents: tuple[str, ...] = ("old", "new")
    if "agents" in top:
        nodes = c.sequence(top["agents"][1], "agents")
        values = [c.string(n, f"agents[{i}]") for i, n in enumerate(nodes)]
        aliases = {"from": "old", "to": "new", "old": "old", "new": "new"}
        for n, v in zip(nodes, values, strict=True):
            if v not in aliases:
                raise c.fail(n, "agents", f"{v!r}: expected from/old or to/new")
        agents = tuple(dict.fromkeys(aliases[v] for v in values))
        if not agents:
            raise c.fail(top["agents"][1], "agents", "list at least one of from, to")

    topologies = ALL_TOPOLOGIES
    if "topologies" in top:
        node = top["topologies"][1]
        if not (isinstance(node, yaml.ScalarNode) and node.value == "all"):
            topologies = []
            for i, t in enumerate(c.sequence(node, "topologies")):
                parts = c.string(t, f"topologies[{i}]").split("/")
                if len(parts) != 3 or any(p not in ("old", "new") for p in parts):
                    raise c.fail(t, f"topologies[{i}]", "expected publisher/stream/reconnect, each old or new "
                                 "(e.g. old/new/new)")
                topologies.append(tuple(parts))  # type: ignore[arg-type]

    scenarios = None
    if "scenarios" in top:
        node = top["scenarios"][1]
        if not (isinstance(node, yaml.ScalarNode) and node.value == "all"):
            scenarios = []
            for i, s in enumerate(c.sequence(node, "scenarios")):
                name = c.string(s, f"scenarios[{i}]")
                if name not in known_scenarios:
                    raise c.fail(s, f"scenarios[{i}]", f"unknown scenario {name!r} (known: "
                                 f"{', '.join(known_scenarios)})")
                scenarios.append(name)

    ledger = []
    if "ledger" in top:
        releases = [resolve(v, pins) for v in in_upgrades]
        for i, node in enumerate(c.sequence(top["ledger"][1], "ledger")):
            ledger.append(_ledger_entry(c, node, f"ledger[{i}]", known_scenarios, releases))

    return Matrix(path=path, sha256=hashlib.sha256(text.encode()).hexdigest(), seed=seed, time_scale=time_scale,
                  quiet_ms=quiet_ms, candidate=candidate, pins=pins, upgrades=upgrades, agents=agents,
                  topologies=topologies, scenarios=scenarios, ledger=ledger)


def _ledger_entry(c: _Checker, node: yaml.Node, where: str, known_scenarios: list[str],
                  releases: list[Release]) -> LedgerEntry:
    m = c.mapping(node, where)
    for key, (knode, _) in m.items():
        if key not in ("match", "reason", "ticket", "expires"):
            raise c.fail(knode, f"{where}.{key}", "unknown key (expected match, reason, ticket, expires)")
    for key in ("match", "reason", "ticket", "expires"):
        if key not in m:
            raise c.fail(node, f"{where}.{key}", "missing: every accepted incompatibility needs a match, a reason, "
                         "a ticket and an expiry date")
    match: dict[str, tuple[str, ...]] = {}
    for key, (knode, vnode) in c.mapping(m["match"][1], f"{where}.match").items():
        if key not in ("scenario", "involves", *ROLES):
            raise c.fail(knode, f"{where}.match.{key}", "unknown key (expected scenario, involves, publisher, "
                         "stream, reconnect, agent)")
        values = ([c.string(n, f"{where}.match.{key}") for n in c.sequence(vnode, f"{where}.match.{key}")]
                  if isinstance(vnode, yaml.SequenceNode) else [c.string(vnode, f"{where}.match.{key}")])
        if key == "scenario":
            for v in values:
                if not fnmatch.filter(known_scenarios, v):
                    raise c.fail(vnode, f"{where}.match.scenario", f"{v!r} matches no scenario")
        else:  # a typo here would quietly disable the entry
            for v in values:
                if v not in VARIANTS and not any(fnmatch.fnmatchcase(r.tag, v) for r in releases):
                    raise c.fail(vnode, f"{where}.match.{key}", f"{v!r} is no variant ({', '.join(VARIANTS)}) and "
                                 f"matches no release of the upgrades ({', '.join(r.tag for r in releases)})")
        match[key] = tuple(values)
    if not match:
        raise c.fail(m["match"][1], f"{where}.match", "empty: it would accept every cell")
    expires_node = m["expires"][1]
    expires = c.scalar(expires_node, f"{where}.expires")
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            expires = None
    if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):  # a time of day is no expiry date
        raise c.fail(expires_node, f"{where}.expires", "expected a date like 2027-06-30")
    return LedgerEntry(match=match, reason=c.string(m["reason"][1], f"{where}.reason"),
                       ticket=c.string(m["ticket"][1], f"{where}.ticket"), expires=expires,
                       line=node.start_mark.line + 1)
