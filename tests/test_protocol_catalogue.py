"""The release catalogue: tags → variants exactly as PROTOCOL.md §1 says."""

import pytest

from harness.protocol import VARIANTS, AuthStyle, CatalogueError, UnknownRelease, resolve, variant_of_tag
from harness.protocol.catalogue import ranges_of

ISSUE_EXAMPLES = [
    ("v2.21.3", "V0"), ("v2.22.0", "V1"), ("v2.31.14", "V1"), ("v2.32.0", "V2"), ("v2.32.10", "V2"),
    ("v2.33.9", "V2"), ("v2.33.10", "V3"), ("v2.34.3", "V2"), ("v2.34.4", "V3"), ("v2.35.1", "V3"),
    ("v2.32.0-rc.0", "V1"),
]


@pytest.mark.parametrize(("tag", "variant"), ISSUE_EXAMPLES)
def test_issue_examples(tag, variant):
    assert variant_of_tag(tag).name == variant


@pytest.mark.parametrize(("tag", "variant"), [
    ("v0.27.0", "V0"), ("v2.0.0", "V0"), ("v2.21.99", "V0"), ("v2.22.0-rc.1", "V0"),
    ("v2.25.3", "V1"), ("v2.30.9", "V1"), ("v2.31.0", "V1"),
    ("v2.33.0", "V2"), ("v2.33.0-rc.2", "V2"), ("v2.33.10-rc.0", "V2"), ("v2.33.11", "V3"), ("v2.33.40", "V3"),
    ("v2.34.0", "V2"), ("v2.34.7", "V3"), ("v2.35.0", "V3"),
])
def test_range_edges(tag, variant):
    assert variant_of_tag(tag).name == variant


@pytest.mark.parametrize("tag", ["v2.36.0", "v2.31.15", "v2.32.11", "v2.35.2", "v3.0.0", "v2.35.2-rc.0"])
def test_unknown_releases_are_errors_that_say_how_to_pin(tag):
    with pytest.raises(UnknownRelease, match=r"it knows releases up to v2\.35\.1"):
        variant_of_tag(tag)


@pytest.mark.parametrize("tag", ["2.33.9", "v2.33", "v2.33.9.1", "latest", "", "V2.33.9", "v2.33.9-"])
def test_malformed_tags(tag):
    with pytest.raises(CatalogueError, match="not a Coder release tag"):
        variant_of_tag(tag)


def test_pins_place_unknown_tags_and_override_known_ones():
    assert resolve("v2.36.0", {"v2.36.0": "V3"}).variant.name == "V3"
    assert resolve("v2.36.0", {"v2.36.0": "V3"}).pinned
    assert resolve("v2.33.9", {"v2.33.9": "P3"}).variant.name == "P3"
    with pytest.raises(CatalogueError, match="not a variant"):
        resolve("v2.36.0", {"v2.36.0": "V9"})


def test_hypothetical_variants_are_selectable_by_name():
    assert resolve("P1").variant.hypothetical and resolve("P3").variant.hypothetical
    assert not resolve("V2").variant.hypothetical


def test_agent_auth_moves_from_cookie_to_header_at_v2_31_1():
    assert resolve("v2.31.0").auth is AuthStyle.COOKIE
    assert resolve("v2.31.1").auth is AuthStyle.HEADER
    assert resolve("v2.22.0").auth is AuthStyle.COOKIE


def test_variant_records_carry_the_behaviours():
    v1, v2, v3, p3 = (VARIANTS[n] for n in ("V1", "V2", "V3", "P3"))
    assert not VARIANTS["V0"].has_route and VARIANTS["V0"].agent is None
    assert v1.handler.carry_on_after_lookup_failure and not v1.handler.durable
    assert v1.listener_buffer == 0 and v2.listener_buffer == 1
    assert not v1.agent.sends_wait and v2.agent.sends_wait and v2.agent.dedupes_by_owner
    assert v2.handler.durable and v3.handler.durable and p3.handler.durable
    assert VARIANTS["P1"].listener_drops_when_full and not v2.listener_drops_when_full


def test_ranges_for_people():
    assert ranges_of("V1") == "v2.22.0 … v2.31.14"
    assert ranges_of("V2") == "v2.32.0 … v2.32.10, v2.33.0 … v2.33.9, v2.34.0 … v2.34.3"
    assert ranges_of("V3") == "v2.33.10+, v2.34.4+, v2.35.0 … v2.35.1"
    assert ranges_of("V0") == "≤ v2.21.x"
