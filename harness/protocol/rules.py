"""What a replica's /reinit handler decides and what an agent does with what it gets (PROTOCOL.md §4, §5).

Pure; no I/O. Each release's behaviour is a record (HandlerRule, AgentRule); the functions here read
the records, so no caller ever asks which version it is talking to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from harness.protocol.codec import ClaimEvent, EventCodec
from harness.protocol.gojson import Field, marshal
from harness.protocol.ids import PREBUILDS_SYSTEM_USER, REASON_PREBUILD_CLAIMED, ZERO

JobStatus = Literal["pending", "running", "succeeded", "failed"]
Stage = Literal["NONE", "CREATE", "CLAIM"]

_RESPONSE_FIELDS = (Field("message", "message", "string"), Field("detail", "detail", "string", omit_zero=True))


def coder_response(message: str, detail: str = "") -> bytes:
    """A codersdk.Response body exactly as httpapi.Write sends it (json.Encoder adds the newline)."""
    return marshal({"message": message, "detail": detail}, _RESPONSE_FIELDS) + b"\n"


# Bodies every release uses, byte for byte.
NOT_PREBUILT = ("Workspace is not a prebuilt workspace waiting to be claimed.",
                "This endpoint is only for agents running in prebuilt workspaces.")
CLAIM_FAILED_MESSAGE = "Claim build failed permanently."
# V3 only documents the detail of this 409; it reuses the not-prebuilt message (our assumption).
ALREADY_HANDLED = (NOT_PREBUILT[0],
                   "The prebuild claim for this workspace has already been handled by an earlier build.")
NO_TOKEN = ('Cookie "coder_session_token" must be provided.', "")
BAD_TOKEN = ("Workspace agent not authorized.",
             "The agent cannot authenticate until the workspace provision job has been completed. "
             "If the job is no longer running, this agent is invalid.")
ROUTE_NOT_FOUND = ("Route not found.", "")
LOOKUP_FAILED = "Internal error fetching workspace."


def parse_go_bool(value: str | None) -> bool:
    """strconv.ParseBool as the handler uses it: true for 1 t T TRUE true True; anything else is false."""
    return value in ("1", "t", "T", "TRUE", "true", "True")


class HandlerKind(Enum):
    NO_ROUTE = "no-route"  # V0: 404
    PLAIN = "plain"  # V1: subscribe and stream, nothing durable
    DURABLE = "durable"  # V2: seed or 409 from the latest build's job
    DURABLE_CLAIM_BUILD = "durable-claim-build"  # V3: like V2 only while the latest build is the claim build


class WaitGate(Enum):
    WAIT_PARAM = "wait-param"  # durable branch only when ?wait= parses true (V2, V3)
    ALWAYS = "always"  # P3


@dataclass(frozen=True)
class HandlerRule:
    kind: HandlerKind
    gate: WaitGate = WaitGate.WAIT_PARAM
    #: V1 writes the 500 for a failed workspace lookup and carries on into the stream (a real bug).
    carry_on_after_lookup_failure: bool = False

    @property
    def durable(self) -> bool:
        return self.kind in (HandlerKind.DURABLE, HandlerKind.DURABLE_CLAIM_BUILD)


@dataclass(frozen=True)
class Build:
    number: int
    initiator: uuid.UUID
    status: JobStatus
    stage: Stage
    error: str = ""


@dataclass(frozen=True)
class WorkspaceState:
    """What the durable check reads from the database."""

    id: uuid.UUID
    owner: uuid.UUID
    first_build: Build
    latest_build: Build


class DecisionKind(Enum):
    WAIT = "wait"  # stream pubsub events as they come
    SEED = "seed"  # drop the subscription, send exactly this one event
    CONFLICT = "conflict"  # 409 with body


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    why: str
    event: ClaimEvent | None = None
    body: bytes = b""

    @property
    def status(self) -> int:
        return 409 if self.kind is DecisionKind.CONFLICT else 200


def _wait(why: str) -> Decision:
    return Decision(DecisionKind.WAIT, why)


def _conflict(why: str, message: str, detail: str) -> Decision:
    return Decision(DecisionKind.CONFLICT, why, body=coder_response(message, detail))


def durable_branch(rule: HandlerRule, wait_query: str | None, owner: uuid.UUID) -> str | None:
    """None when the handler runs its durable check; otherwise why it just waits on pubsub."""
    if not rule.durable:
        return "no durable check in this release"
    if rule.gate is WaitGate.WAIT_PARAM and not parse_go_bool(wait_query):
        return "request without wait=true: plain pubsub wait"
    if owner == PREBUILDS_SYSTEM_USER:
        return "unclaimed prebuild: waiting for the claim"
    return None


def decide(rule: HandlerRule, wait_query: str | None, ws: WorkspaceState) -> Decision:
    """The handler's choice after it has subscribed (subscribe-first is the caller's job)."""
    plain = durable_branch(rule, wait_query, ws.owner)
    if plain is not None:
        return _wait(plain)
    if ws.first_build.initiator != PREBUILDS_SYSTEM_USER:
        return _conflict("workspace was never a prebuild", *NOT_PREBUILT)
    latest = ws.latest_build
    if rule.kind is HandlerKind.DURABLE_CLAIM_BUILD and latest.stage != "CLAIM":
        if latest.initiator == PREBUILDS_SYSTEM_USER:
            return _wait("owner changed, claim build not created yet")
        return _conflict("a later build than the claim build exists", *ALREADY_HANDLED)
    if latest.status == "succeeded":
        return Decision(DecisionKind.SEED, f"latest build #{latest.number} succeeded: seed the claim",
                        event=ClaimEvent(ws.id, REASON_PREBUILD_CLAIMED, ws.owner))
    if latest.status == "failed":
        return _conflict(f"latest build #{latest.number} failed", CLAIM_FAILED_MESSAGE, latest.error)
    return _wait(f"latest build #{latest.number} is {latest.status}: waiting on pubsub")


class AgentAction(Enum):
    REINIT = "reinit"  # close the running agent and start a new one
    DUPLICATE = "duplicate"  # same non-zero owner as last time: stop polling, keep the running agent


@dataclass(frozen=True)
class AgentRule:
    sends_wait: bool
    stops_on_conflict: bool
    dedupes_by_owner: bool
    codec: EventCodec

    def on_event(self, last_owner: uuid.UUID, event: ClaimEvent) -> tuple[AgentAction, uuid.UUID]:
        """The action for a decoded event and the new ``lastOwnerID``."""
        if not self.dedupes_by_owner:
            return AgentAction.REINIT, last_owner
        if event.owner_id != ZERO and event.owner_id == last_owner:
            return AgentAction.DUPLICATE, last_owner
        return AgentAction.REINIT, event.owner_id

    def stops_on(self, status: int) -> bool:
        """Whether a non-200 status ends polling for good (otherwise it is retried)."""
        return status == 409 and self.stops_on_conflict
