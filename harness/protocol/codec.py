"""The claim event and its encodings: JSON per release, pubsub payloads, listener decoding.

Pure; no I/O; Go encoding/json semantics (see gojson.py). PROTOCOL.md §2 and §3:

- V1's event has ``WorkspaceID`` (no JSON tag) and ``reason``; no owner.
- V2/V3's has ``workspace_id``, ``reason``, ``owner_id`` (omitted when zero), in that order.
- Publishers: V1 sends the reason bytes, V2/V3 the V2 JSON, P1 the owner's UUID as text.
- Listeners: V1 takes the payload as the reason; V2/V3 try JSON and fall back to
  {channel's workspace, raw payload as reason, owner 0}; P1 needs a UUID and drops anything else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from harness.protocol.gojson import Field, GoJSONError, go_string, marshal, parse_uuid, unmarshal
from harness.protocol.ids import REASON_PREBUILD_CLAIMED, ZERO


@dataclass(frozen=True)
class ClaimEvent:
    """What a handler sends and an agent decodes: workspace, reason, claiming owner (zero if unknown)."""

    workspace_id: uuid.UUID
    reason: str
    owner_id: uuid.UUID = ZERO

    def __post_init__(self) -> None:
        if not isinstance(self.workspace_id, uuid.UUID) or not isinstance(self.owner_id, uuid.UUID):
            raise TypeError("ClaimEvent ids must be uuid.UUID values")
        if not isinstance(self.reason, str):
            raise TypeError("ClaimEvent.reason must be a str")

    def as_dict(self) -> dict[str, str]:
        return {"workspace_id": str(self.workspace_id), "reason": self.reason, "owner_id": str(self.owner_id)}


class EventCodec(Enum):
    """The two JSON shapes of the event, named by their workspace key."""

    V1_KEYS = "WorkspaceID"
    V2_KEYS = "workspace_id"

    @property
    def fields(self) -> tuple[Field, ...]:
        return _FIELDS[self]

    @property
    def go_type(self) -> str:
        return "agentsdk.ReinitializationEvent"

    def encode(self, event: ClaimEvent) -> bytes:
        """The exact JSON bytes coderd writes for this event."""
        return marshal({"workspace_id": event.workspace_id, "reason": event.reason,
                        "owner_id": event.owner_id}, self.fields)

    def decode(self, data: bytes) -> ClaimEvent:
        """Decode as Go would into this shape; fields the shape lacks (or the data misses) stay zero."""
        got = unmarshal(data, self.fields, self.go_type)
        return ClaimEvent(workspace_id=got.get("workspace_id", ZERO), reason=got.get("reason", ""),
                          owner_id=got.get("owner_id", ZERO))


_FIELDS = {
    EventCodec.V1_KEYS: (Field("WorkspaceID", "workspace_id", "uuid"), Field("reason", "reason", "string")),
    EventCodec.V2_KEYS: (Field("workspace_id", "workspace_id", "uuid"), Field("reason", "reason", "string"),
                         Field("owner_id", "owner_id", "uuid", omit_zero=True)),
}


class PublisherFormat(Enum):
    """What a replica NOTIFYs when a claim build completes successfully."""

    NONE = "none"              # V0: no claim event at all
    RAW_REASON = "raw-reason"  # V1: the bytes "prebuild_claimed"
    JSON = "json"              # V2/V3: V2 JSON with the claiming owner
    UUID_TEXT = "uuid-text"    # P1: the owner's UUID as text

    def payload(self, workspace_id: uuid.UUID, owner_id: uuid.UUID) -> bytes | None:
        if self is PublisherFormat.NONE:
            return None
        if self is PublisherFormat.RAW_REASON:
            return REASON_PREBUILD_CLAIMED.encode()
        if self is PublisherFormat.JSON:
            return EventCodec.V2_KEYS.encode(ClaimEvent(workspace_id, REASON_PREBUILD_CLAIMED, owner_id))
        return str(owner_id).encode()


@dataclass(frozen=True)
class Heard:
    """What a listener made of one payload: the event handed to the handler, or None when dropped."""

    event: ClaimEvent | None
    how: str  # "raw" | "json" | "fallback" | "uuid" | "dropped"
    error: str = ""


class ListenerRule(Enum):
    """How a replica's claim listener turns a payload on ``prebuild_claimed_<ws>`` into an event."""

    NONE = "none"
    RAW_REASON = "raw-reason"            # V1
    JSON_WITH_FALLBACK = "json-fallback"  # V2/V3
    UUID_OR_DROP = "uuid-or-drop"        # P1

    def hear(self, channel_workspace: uuid.UUID, payload: bytes) -> Heard:
        if self is ListenerRule.RAW_REASON:
            return Heard(ClaimEvent(channel_workspace, go_string(payload)), "raw")
        if self is ListenerRule.JSON_WITH_FALLBACK:
            try:
                return Heard(EventCodec.V2_KEYS.decode(payload), "json")
            except GoJSONError as e:
                return Heard(ClaimEvent(channel_workspace, go_string(payload)), "fallback", str(e))
        if self is ListenerRule.UUID_OR_DROP:
            try:
                owner = parse_uuid(go_string(payload))
            except GoJSONError as e:
                return Heard(None, "dropped", f"invalid prebuild claimed channel payload: {e}")
            return Heard(ClaimEvent(channel_workspace, REASON_PREBUILD_CLAIMED, owner), "uuid")
        return Heard(None, "dropped", "this release has no claim listener")
