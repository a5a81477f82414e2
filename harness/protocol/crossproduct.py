"""Every component pairing, worked out from the variant records (PROTOCOL.md §6, computed not copied).

Pure; no I/O. Example ids stand for roles: ``ws`` (the workspace), ``O`` (the claiming owner), ``0``
(the zero UUID). Publisher × listener says what the handler receives; server × agent says what the
agent decodes, whether it sends ``wait`` and whether the server could ever seed it or answer 409.
"""

from __future__ import annotations

import uuid
from typing import Any

from harness.protocol.catalogue import VARIANTS, Variant
from harness.protocol.codec import ClaimEvent, EventCodec, PublisherFormat
from harness.protocol.gojson import GoJSONError, go_string
from harness.protocol.ids import REASON_PREBUILD_CLAIMED, ZERO
from harness.protocol.rules import WaitGate

WS = uuid.UUID("3f0c2a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c")
OWNER = uuid.UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
ROLES = {WS: "ws", OWNER: "O", ZERO: "0"}


def role(u: uuid.UUID) -> str:
    return ROLES.get(u, str(u))


def describe_reason(reason: str) -> str:
    """A reason as a person reads it in the tables."""
    if reason == REASON_PREBUILD_CLAIMED:
        return REASON_PREBUILD_CLAIMED
    if reason == go_string(PublisherFormat.JSON.payload(WS, OWNER) or b""):
        return "the JSON text"
    if reason == str(OWNER):
        return "UUID text"
    return repr(reason)


def publishers() -> list[Variant]:
    return [v for v in VARIANTS.values() if v.publisher is not PublisherFormat.NONE]


def pubsub_rows() -> list[dict[str, Any]]:
    """What each listener hands its handler for each publisher's payload."""
    rows = []
    for pub in publishers():
        payload = pub.publisher.payload(WS, OWNER)
        assert payload is not None
        for lis in publishers():
            heard = lis.listener.hear(WS, payload)
            row: dict[str, Any] = {"publisher": pub.name, "listener": lis.name, "payload": go_string(payload),
                                   "result": heard.how}
            if heard.event is not None:
                row.update(workspace_id=role(heard.event.workspace_id),
                           reason=describe_reason(heard.event.reason),
                           owner_id=role(heard.event.owner_id) if lis.sse_codec is EventCodec.V2_KEYS else None)
            rows.append(row)
    return rows


def sse_rows() -> list[dict[str, Any]]:
    """What each agent decodes from each server's SSE data, and what the server can do to it."""
    rows = []
    event = ClaimEvent(WS, REASON_PREBUILD_CLAIMED, OWNER)
    for server in VARIANTS.values():
        if not server.has_route:
            continue
        data = server.sse_codec.encode(event)
        for agent_variant in VARIANTS.values():
            agent = agent_variant.agent
            if agent is None:
                continue
            row: dict[str, Any] = {"server": server.name, "agent": agent_variant.name, "data": data.decode()}
            try:
                got = agent.codec.decode(data)
                row.update(decoded=True, workspace_id=role(got.workspace_id),
                           owner_id=role(got.owner_id) if agent.codec is EventCodec.V2_KEYS else None,
                           reason=describe_reason(got.reason))
            except GoJSONError as e:
                row.update(decoded=False, error=str(e))
            durable_reach = server.handler.durable and (agent.sends_wait or server.handler.gate is WaitGate.ALWAYS)
            row.update(sends_wait=agent.sends_wait, can_seed=durable_reach, can_409=durable_reach,
                       stops_on_409=agent.stops_on_conflict)
            rows.append(row)
    return rows


def summary(row: dict[str, Any]) -> str:
    """One cell of the §6-style table: ``{ws, prebuild_claimed, O}``, ``fallback {...}``, ``dropped``."""
    if row.get("result") == "dropped":
        return "dropped"
    if row.get("decoded") is False:
        return f"error: {row['error']}"
    fields = [row["workspace_id"], row["reason"]]
    if row.get("owner_id") is not None:
        fields.append(row["owner_id"])
    text = "{" + ", ".join(fields) + "}"
    return f"fallback {text}" if row.get("result") == "fallback" else text
