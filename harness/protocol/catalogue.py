"""The catalogue: Coder release tags → protocol variants, each variant a record of behaviours.

Pure; no I/O. PROTOCOL.md §1 as data. A tag resolves by the release ranges below; a pre-release
(``-rc.N``) sorts just before its release, so it takes the variant of the previous patch
(vX.Y.(Z-1)), or for a minor release's first pre-releases (vX.Y.0-rc.N) the variant of the previous
minor release vX.(Y-1).0 — what the main branch shipped before the release branch was cut. That
places v2.32.0-rc.0 at V1, as history has it. A tag beyond what the catalogue knows is an error
unless matrix.yaml pins its variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from harness.protocol.codec import EventCodec, ListenerRule, PublisherFormat
from harness.protocol.rules import AgentRule, HandlerKind, HandlerRule, WaitGate


class CatalogueError(ValueError):
    """A tag or variant name the catalogue cannot place (the caller's input)."""


class UnknownRelease(CatalogueError):
    """A well-formed tag outside the releases the catalogue knows; each caller says how to give its variant."""

    def __init__(self, tag: str, newest: str) -> None:
        super().__init__(f"{tag} is not a release the catalogue knows (it knows releases up to {newest})")
        self.tag = tag


class AuthStyle(Enum):
    COOKIE = "cookie"  # agents up to v2.31.0 send coder_session_token as a cookie
    HEADER = "header"  # agents from v2.31.1 send the Coder-Session-Token header


@dataclass(frozen=True)
class Variant:
    """One protocol behaviour set; every component reads its rule from here."""

    name: str
    title: str
    origin: str
    hypothetical: bool
    publisher: PublisherFormat
    listener: ListenerRule
    #: Go channel capacity between the claim listener and the handler: 0 = unbuffered hand-off.
    listener_buffer: int
    #: P1 drops an event when its one-slot buffer is full; released listeners block instead.
    listener_drops_when_full: bool
    handler: HandlerRule
    sse_codec: EventCodec
    #: None: this release's agent has no reinit loop at all.
    agent: AgentRule | None

    @property
    def has_route(self) -> bool:
        return self.handler.kind is not HandlerKind.NO_ROUTE


_V1_AGENT = AgentRule(sends_wait=False, stops_on_conflict=False, dedupes_by_owner=False, codec=EventCodec.V1_KEYS)
_V2_AGENT = AgentRule(sends_wait=True, stops_on_conflict=True, dedupes_by_owner=True, codec=EventCodec.V2_KEYS)

V0 = Variant("V0", "no reinit", "before PR #17475", False, PublisherFormat.NONE, ListenerRule.NONE, 0, False,
             HandlerRule(HandlerKind.NO_ROUTE), EventCodec.V1_KEYS, None)
V1 = Variant("V1", "raw reason", "PR #17475", False, PublisherFormat.RAW_REASON, ListenerRule.RAW_REASON, 0,
             False, HandlerRule(HandlerKind.PLAIN, carry_on_after_lookup_failure=True), EventCodec.V1_KEYS,
             _V1_AGENT)
V2 = Variant("V2", "durable JSON", "PR #23108", False, PublisherFormat.JSON, ListenerRule.JSON_WITH_FALLBACK, 1,
             False, HandlerRule(HandlerKind.DURABLE), EventCodec.V2_KEYS, _V2_AGENT)
V3 = Variant("V3", "claim-build scoped", "PR #26548", False, PublisherFormat.JSON,
             ListenerRule.JSON_WITH_FALLBACK, 1, False, HandlerRule(HandlerKind.DURABLE_CLAIM_BUILD),
             EventCodec.V2_KEYS, _V2_AGENT)
# Hypothetical: P1's handler and agent are not specified beyond the listener; we give them V2's.
P1 = Variant("P1", "UUID payload, drop the rest", "hypothetical", True, PublisherFormat.UUID_TEXT,
             ListenerRule.UUID_OR_DROP, 1, True, HandlerRule(HandlerKind.DURABLE), EventCodec.V2_KEYS, _V2_AGENT)
P3 = Variant("P3", "durable without the wait gate", "hypothetical", True, PublisherFormat.JSON,
             ListenerRule.JSON_WITH_FALLBACK, 1, False, HandlerRule(HandlerKind.DURABLE, gate=WaitGate.ALWAYS),
             EventCodec.V2_KEYS, _V2_AGENT)

VARIANTS: dict[str, Variant] = {v.name: v for v in (V0, V1, V2, V3, P1, P3)}

Version = tuple[int, int, int]


def _tag(v: Version) -> str:
    return f"v{v[0]}.{v[1]}.{v[2]}"


@dataclass(frozen=True)
class ReleaseRange:
    """Releases ``first``..``last`` inclusive; ``last=None``: every later patch of ``first``'s minor line."""

    variant: str
    first: Version
    last: Version | None

    def covers(self, v: Version) -> bool:
        if self.last is None:
            return v[:2] == self.first[:2] and v >= self.first
        return self.first <= v <= self.last

    def __str__(self) -> str:
        first = _tag(self.first)
        return f"{first}+" if self.last is None else f"{first} … {_tag(self.last)}"


FIRST_REINIT_RELEASE: Version = (2, 22, 0)  # everything before is V0
RANGES: tuple[ReleaseRange, ...] = (
    ReleaseRange("V1", (2, 22, 0), (2, 31, 14)),
    ReleaseRange("V2", (2, 32, 0), (2, 32, 10)),
    ReleaseRange("V2", (2, 33, 0), (2, 33, 9)),
    ReleaseRange("V3", (2, 33, 10), None),
    ReleaseRange("V2", (2, 34, 0), (2, 34, 3)),
    ReleaseRange("V3", (2, 34, 4), None),
    ReleaseRange("V3", (2, 35, 0), (2, 35, 1)),
)
#: The first release whose agent sends the token as a header (older ones use the cookie).
FIRST_HEADER_AUTH: Version = (2, 31, 1)

_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


@dataclass(frozen=True)
class Release:
    """A version as the harness runs it: its tag (or a variant name), its variant, how its agent authenticates."""

    tag: str
    variant: Variant
    auth: AuthStyle
    pinned: bool = False

    @property
    def agent_decodes_owner(self) -> bool:
        """Whether this release's agent reads an owner id at all (V1's event has none)."""
        return self.variant.agent is not None and self.variant.agent.codec is EventCodec.V2_KEYS


def parse_tag(tag: str) -> tuple[Version, str | None]:
    m = _TAG.match(tag)
    if not m:
        raise CatalogueError(f"{tag!r} is not a Coder release tag "
                             "(expected vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-rc.N)")
    return (int(m[1]), int(m[2]), int(m[3])), m[4]


def _release_variant(v: Version) -> str | None:
    if v < FIRST_REINIT_RELEASE:
        return "V0"
    return next((r.variant for r in RANGES if r.covers(v)), None)


def _newest_known() -> str:
    return _tag(max((r.last or r.first) for r in RANGES))


def variant_of_tag(tag: str) -> Variant:
    """The variant a real release tag ships; CatalogueError when the catalogue cannot place it."""
    version, pre = parse_tag(tag)
    found = _release_variant(version)
    if found is not None and pre is not None:
        major, minor, patch = version
        before = (major, minor, patch - 1) if patch > 0 else (major, minor - 1, 0) if minor > 0 else None
        found = _release_variant(before) if before is not None else "V0"
    if found is None:
        raise UnknownRelease(tag, _newest_known())
    return VARIANTS[found]


def auth_of_tag(tag: str) -> AuthStyle:
    version, _ = parse_tag(tag)
    return AuthStyle.HEADER if version >= FIRST_HEADER_AUTH else AuthStyle.COOKIE


def resolve(name: str, pins: dict[str, str] | None = None) -> Release:
    """A tag (``v2.33.9``), or a variant name (``V2``, ``P1``) to run that behaviour directly."""
    pins = pins or {}
    if name in VARIANTS:
        return Release(name, VARIANTS[name], AuthStyle.HEADER)
    if name in pins:
        pinned = pins[name]
        if pinned not in VARIANTS:
            raise CatalogueError(f"pin {name}: {pinned!r} is not a variant (one of {', '.join(VARIANTS)})")
        parse_tag(name)
        return Release(name, VARIANTS[pinned], auth_of_tag(name), pinned=True)
    return Release(name, variant_of_tag(name), auth_of_tag(name))


def ranges_of(variant: str) -> str:
    """The releases a variant covers, for people."""
    if variant == "V0":
        return "≤ v2.21.x"
    if VARIANTS[variant].hypothetical:
        return "never released (hypothetical)"
    return ", ".join(str(r) for r in RANGES if r.variant == variant)
