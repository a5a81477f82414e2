"""The handler's durable decision (§4), the agent's dedupe and stop rules (§5), and the retry schedule."""

import uuid

import pytest

from harness.protocol import (
    VARIANTS,
    AgentAction,
    Backoff,
    Build,
    ClaimEvent,
    DecisionKind,
    WorkspaceState,
    decide,
    parse_go_bool,
    waits_after_errors,
)
from harness.protocol.ids import PREBUILDS_SYSTEM_USER as SYS
from harness.protocol.ids import ZERO
from harness.protocol.rules import coder_response

WS = uuid.uuid4()
OWNER = uuid.uuid4()
CREATE = Build(1, SYS, "succeeded", "CREATE")


def state(owner=OWNER, latest=None, first=CREATE) -> WorkspaceState:
    return WorkspaceState(WS, owner, first, latest or first)


def claim(status="succeeded", error="") -> Build:
    return Build(2, OWNER, status, "CLAIM", error)


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(value):
    assert parse_go_bool(value)


@pytest.mark.parametrize("value", [None, "", "0", "false", "yes", "on", "tRuE", " true", "2"])
def test_parse_bool_false(value):
    assert not parse_go_bool(value)


def test_v1_never_checks():
    assert decide(VARIANTS["V1"].handler, "true", state(latest=claim())).kind is DecisionKind.WAIT


@pytest.mark.parametrize("v", ["V2", "V3"])
def test_durable_branch_needs_wait_true(v):
    assert decide(VARIANTS[v].handler, None, state(latest=claim())).kind is DecisionKind.WAIT
    assert decide(VARIANTS[v].handler, "false", state(latest=claim())).kind is DecisionKind.WAIT


def test_p3_has_no_gate():
    d = decide(VARIANTS["P3"].handler, None, state(latest=claim()))
    assert d.kind is DecisionKind.SEED and d.event == ClaimEvent(WS, "prebuild_claimed", OWNER)


@pytest.mark.parametrize("v", ["V2", "V3"])
def test_unclaimed_prebuild_waits(v):
    assert decide(VARIANTS[v].handler, "true", state(owner=SYS)).kind is DecisionKind.WAIT


@pytest.mark.parametrize("v", ["V2", "V3"])
def test_regular_workspace_409(v):
    d = decide(VARIANTS[v].handler, "true", state(first=Build(1, OWNER, "succeeded", "NONE")))
    assert d.kind is DecisionKind.CONFLICT and d.status == 409
    assert d.body == (b'{"message":"Workspace is not a prebuilt workspace waiting to be claimed.",'
                      b'"detail":"This endpoint is only for agents running in prebuilt workspaces."}\n')


@pytest.mark.parametrize("v", ["V2", "V3"])
def test_claim_build_outcomes(v):
    rule = VARIANTS[v].handler
    seeded = decide(rule, "true", state(latest=claim()))
    assert seeded.kind is DecisionKind.SEED and seeded.event.owner_id == OWNER
    failed = decide(rule, "true", state(latest=claim("failed", "terraform apply: boom")))
    assert failed.kind is DecisionKind.CONFLICT
    assert failed.body == b'{"message":"Claim build failed permanently.","detail":"terraform apply: boom"}\n'
    for status in ("pending", "running"):
        assert decide(rule, "1", state(latest=claim(status))).kind is DecisionKind.WAIT


def test_v2_seeds_after_a_later_user_build_v3_answers_409():
    later = Build(3, OWNER, "succeeded", "NONE")
    assert decide(VARIANTS["V2"].handler, "true", state(latest=later)).kind is DecisionKind.SEED
    d = decide(VARIANTS["V3"].handler, "true", state(latest=later))
    assert d.kind is DecisionKind.CONFLICT
    assert b"already been handled by an earlier build" in d.body


def test_v3_waits_while_owner_changed_but_claim_build_not_created():
    assert decide(VARIANTS["V3"].handler, "true", state(latest=CREATE)).kind is DecisionKind.WAIT


def test_coder_response_omits_empty_detail():
    assert coder_response("Route not found.") == b'{"message":"Route not found."}\n'


# -- agent rules ----------------------------------------------------------------------------------
def test_v1_agent_reinits_on_everything():
    rule = VARIANTS["V1"].agent
    assert rule.on_event(ZERO, ClaimEvent(WS, "x", OWNER)) == (AgentAction.REINIT, ZERO)
    assert not rule.stops_on(409) and not rule.sends_wait


def test_v2_agent_dedupes_non_zero_owner():
    rule = VARIANTS["V2"].agent
    action, last = rule.on_event(ZERO, ClaimEvent(WS, "prebuild_claimed", OWNER))
    assert (action, last) == (AgentAction.REINIT, OWNER)
    assert rule.on_event(last, ClaimEvent(WS, "prebuild_claimed", OWNER))[0] is AgentAction.DUPLICATE


def test_v2_agent_zero_owner_is_never_a_duplicate_and_resets():
    rule = VARIANTS["V2"].agent
    assert rule.on_event(OWNER, ClaimEvent(ZERO, "prebuild_claimed", ZERO)) == (AgentAction.REINIT, ZERO)
    assert rule.on_event(ZERO, ClaimEvent(ZERO, "prebuild_claimed", ZERO)) == (AgentAction.REINIT, ZERO)


def test_v2_agent_stops_on_409_only():
    rule = VARIANTS["V2"].agent
    assert rule.stops_on(409)
    assert not any(rule.stops_on(s) for s in (401, 404, 500, 502))


# -- retry schedule ---------------------------------------------------------------------------------
def test_documented_waits():
    expected_ms = [161.8, 261.8, 423.6, 685.4, 1109.0, 1794.4, 2903.4, 4697.9, 7601.3, 10000, 10000]
    assert [round(w * 1000, 1) for w in waits_after_errors(11)] == expected_ms


def test_first_attempt_immediate_and_reset_reconnects_immediately():
    b = Backoff()
    assert b.before_attempt() == 0
    assert round(b.before_attempt(), 4) == 0.1618
    assert round(b.before_attempt(), 4) == 0.2618
    b.reset()
    assert b.before_attempt() == 0
    assert round(b.before_attempt(), 4) == 0.1618
