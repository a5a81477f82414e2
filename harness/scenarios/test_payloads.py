"""Legacy and odd raw payloads on the claim channel (fixtures/payloads.json), in place of the publisher's own.

The claim build completes without publishing; the publisher replica then publishes the named bytes on
``prebuild_claimed_<ws>``. What reaches the agent is the stream replica's listener rule applied to
them, then the agent's decoding; a reconnect may then be seeded by a durable reconnect replica.
"""

from harness.protocol.model import World
from harness.scenarios import contract


def _inject(world: World, payload: str) -> None:
    ws = world.prebuild()
    world.start_agent(ws)
    world.claim(ws)
    world.complete(ws, publish=False)
    world.inject(ws, payload)
    world.settle()


@contract("ONCE", "IDENTITY")
def test_payload_raw_reason(world: World) -> None:
    """The bytes ``prebuild_claimed``, as a V1 replica publishes: V2+ listeners fall back, owner 0."""
    _inject(world, "raw_reason")


@contract("ONCE", "IDENTITY")
def test_payload_v2_json(world: World) -> None:
    """V2 JSON with the owner, as V2+ replicas publish: a V1 listener makes the whole JSON the reason."""
    _inject(world, "v2_json")


@contract("ONCE", "IDENTITY")
def test_payload_v1_keys(world: World) -> None:
    """JSON with V1's key names: a V2+ listener decodes it without error into a zero workspace and owner."""
    _inject(world, "v1_keys")


@contract("ONCE", "IDENTITY")
def test_payload_uuid_text(world: World) -> None:
    """The owner's UUID as text (hypothetical P1 publisher): not JSON, so V2+ listeners fall back."""
    _inject(world, "uuid_text")


@contract("ONCE", "IDENTITY")
def test_payload_empty(world: World) -> None:
    """An empty payload: V1 passes an empty reason; V2+ listeners fall back with an empty reason."""
    _inject(world, "empty")


@contract("ONCE", "IDENTITY")
def test_payload_unknown_keys(world: World) -> None:
    """V2 JSON plus keys no release knows: ignored by Go's decoder, so V2+ reads it as usual."""
    _inject(world, "unknown_keys")


@contract("ONCE", "IDENTITY")
def test_payload_max_7999(world: World) -> None:
    """V2 JSON padded to 7999 bytes, the largest NOTIFY PostgreSQL takes: it must pass every hop."""
    _inject(world, "max_7999")
