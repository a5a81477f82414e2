"""Identifiers every Coder release shares (PROTOCOL.md §1 constants). Pure; no I/O."""

from __future__ import annotations

import uuid

ZERO = uuid.UUID(int=0)
#: Owner of every unclaimed prebuild: a workspace "is a prebuild" iff it is owned by this user.
PREBUILDS_SYSTEM_USER = uuid.UUID("c42fdf75-3097-471c-8c33-fb52454d81c0")
#: The only reason any release sends; no agent ever inspects it.
REASON_PREBUILD_CLAIMED = "prebuild_claimed"
CHANNEL_PREFIX = "prebuild_claimed_"
REINIT_PATH = "/api/v2/workspaceagents/me/reinit"
#: Agent-token header (agents from v2.31.1 send it) and cookie (agents up to v2.31.0); servers accept both.
TOKEN_HEADER = "Coder-Session-Token"
TOKEN_COOKIE = "coder_session_token"
#: Coder's SSE heartbeat interval, seconds.
HEARTBEAT_S = 15.0


def channel(workspace_id: uuid.UUID) -> str:
    """The pubsub channel of a workspace: lower-case hyphenated UUID, 53 bytes."""
    return f"{CHANNEL_PREFIX}{workspace_id}"


def workspace_of(channel_name: str) -> uuid.UUID:
    """The workspace a channel belongs to (the listener takes it from the channel it subscribed to)."""
    if not channel_name.startswith(CHANNEL_PREFIX):
        raise ValueError(f"not a prebuild claim channel: {channel_name!r}")
    return uuid.UUID(channel_name[len(CHANNEL_PREFIX):])
