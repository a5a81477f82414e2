"""The pure model: what it predicts for cells whose outcome PROTOCOL.md fixes, and its determinism."""

from __future__ import annotations

import pytest

from harness.fixtures import payload
from harness.oracle import facts
from harness.plan import Cell
from harness.protocol import resolve
from harness.protocol.model import ModelWorld
from harness.runner import predict
from harness.scenarios import catalogue

SCENARIOS = catalogue()


def cell(scenario: str, pub: str, stream: str, reconnect: str, agent: str):
    c = Cell(scenario, pub, stream, reconnect, agent)
    return predict(c, SCENARIOS[scenario], {r: resolve(t) for r, t in c.tags.items()}, seed=1)


V1, V2, V3 = "v2.31.14", "v2.33.9", "v2.34.4"


@pytest.mark.parametrize(("scenario", "tags", "verdict", "reinits", "identity"), [
    ("live_claim", (V2, V2, V2, V2), "PASS", 1, ["ws/O"]),
    ("live_claim", (V1, V2, V2, V2), "FAIL", 2, ["ws/0", "ws/O"]),  # fallback owner 0, then the seed
    ("live_claim", (V2, V1, V2, V2), "FAIL", 2, ["0/0", "ws/O"]),  # V1 SSE keys: zero ids, then the seed
    ("live_claim", (V2, V2, V2, V1), "DEGRADED", 1, ["0/n/a"]),  # a V1 agent cannot read workspace_id
    ("claim_while_stream_down", (V2, V2, V2, V2), "PASS", 1, ["ws/O"]),
    ("claim_while_stream_down", (V2, V2, V1, V2), "FAIL", 0, []),  # reconnecting to V1: nothing durable
    ("claim_while_stream_down", (V2, V2, V2, V1), "FAIL", 0, []),  # a V1 agent never asks with wait
    ("subscribe_check_race", (V1, V1, V2, V2), "PASS", 1, ["ws/O"]),  # the delayed check seeds; fallback dropped
    ("user_build_then_agent_restart", (V3, V3, V3, V3), "PASS", 1, ["ws/O"]),  # V3: 409 after a later build
    ("user_build_then_agent_restart", (V2, V2, V2, V2), "FAIL", 2, ["ws/O"]),  # V2: seeds it again
    ("agent_restart_after_claim", (V3, V3, V3, V3), "FAIL", 2, ["ws/O"]),  # #26548 does not cover this
    ("payload_v1_keys", (V3, V3, V3, V3), "FAIL", 2, ["0/0", "ws/O"]),
    ("payload_max_7999", (V3, V1, V1, V1), "PASS", 1, ["ws/n/a"]),
    ("listener_gap", (V3, V3, V3, V3), "FAIL", 0, []),
])
def test_predictions(scenario, tags, verdict, reinits, identity):
    f, v, _ = cell(scenario, *tags)
    assert (v, f.reinits, f.identity) == (verdict, reinits, identity)


def test_stop_rules():
    f, v, _ = cell("regular_workspace", V3, V3, V3, V3)
    assert (v, f.polling_stopped, f.stop_reason, f.statuses, f.reinit_requests) == ("PASS", True, "409", [409], 1)
    f, v, _ = cell("regular_workspace", V3, V1, V3, V3)
    assert (v, f.polling_stopped) == ("FAIL", False)


def test_v0_404_loop_is_parked_not_spun():
    roles = {"publisher": resolve("v2.21.0"), "stream": resolve("v2.21.0"), "reconnect": resolve("v2.21.0")}
    w = ModelWorld(roles, resolve(V1), seed=1, payloads=payload)
    ws = w.prebuild()
    w.start_agent(ws)
    w.settle()
    f = facts(w.events, agents=set(w.agents), workspaces={str(ws.id)}, agent_has_owner=False)
    assert f.statuses == [404] and not f.polling_stopped and f.reinit_requests == 1


def test_the_same_seed_gives_the_same_events():
    def run():
        roles = {r: resolve(V2) for r in ("publisher", "stream", "reconnect")}
        w = ModelWorld(roles, resolve(V2), seed=42, payloads=payload)
        SCENARIOS["duplicate_publish"].story(w)
        return w.events

    assert run() == run()
