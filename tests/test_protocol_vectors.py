"""The committed golden vectors are what the protocol package produces, byte for byte."""

import json
import subprocess
import sys
import time

from harness.fixtures import build_vectors, load_vectors, payload, payload_names
from harness.protocol.crossproduct import OWNER, WS

PROTOCOL_6 = {  # PROTOCOL.md §6, publisher → listener, as it is written there
    ("V1", "V1"): "{ws, prebuild_claimed}", ("V1", "V2"): "fallback {ws, prebuild_claimed, 0}",
    ("V1", "V3"): "fallback {ws, prebuild_claimed, 0}", ("V1", "P1"): "dropped",
    ("V2", "V1"): "{ws, the JSON text}", ("V2", "V2"): "{ws, prebuild_claimed, O}",
    ("V3", "V3"): "{ws, prebuild_claimed, O}", ("V2", "P1"): "dropped", ("V3", "P1"): "dropped",
    ("P1", "V1"): "{ws, UUID text}", ("P1", "V2"): "fallback {ws, UUID text, 0}",
    ("P1", "V3"): "fallback {ws, UUID text, 0}", ("P1", "P1"): "{ws, prebuild_claimed, O}",
}
SSE_6 = {("V1", "V2"): "{0, prebuild_claimed, 0}", ("V2", "V1"): "{0, prebuild_claimed}",
         ("V3", "V1"): "{0, prebuild_claimed}", ("V2", "V2"): "{ws, prebuild_claimed, O}",
         ("V1", "V1"): "{ws, prebuild_claimed}"}


def test_committed_vectors_match_the_package():
    assert load_vectors() == json.loads(json.dumps(build_vectors()))


def test_wire_bytes_in_vectors():
    wire = load_vectors()["wire.json"]["variants"]
    assert wire["V1"]["sse_frame"] == f'event: data\ndata: {{"WorkspaceID":"{WS}","reason":"prebuild_claimed"}}\n\n'
    assert wire["V2"]["publisher_payload"] == (
        f'{{"workspace_id":"{WS}","reason":"prebuild_claimed","owner_id":"{OWNER}"}}')
    assert wire["V0"] == {"has_route": False, "publisher_payload": None}


Z = "00000000-0000-0000-0000-000000000000"
JSON_TEXT = f'{{"workspace_id":"{WS}","reason":"prebuild_claimed","owner_id":"{OWNER}"}}'
# (payload, listener) → (how, workspace, reason, owner) written out by hand from PROTOCOL.md §3 and §6,
# so the committed files are held to the spec and not only to the code that wrote them.
LISTENER_BY_HAND = {
    ("published_by_V1", "V1"): ("raw", WS, "prebuild_claimed", Z),
    ("published_by_V1", "V2"): ("fallback", WS, "prebuild_claimed", Z),
    ("published_by_V1", "P1"): ("dropped", None, None, None),
    ("published_by_V2", "V1"): ("raw", WS, JSON_TEXT, Z),
    ("published_by_V2", "V3"): ("json", WS, "prebuild_claimed", OWNER),
    ("published_by_P1", "V2"): ("fallback", WS, str(OWNER), Z),
    ("published_by_P1", "P1"): ("uuid", WS, "prebuild_claimed", OWNER),
    ("odd_v1_keys", "V2"): ("json", Z, "prebuild_claimed", Z),  # WorkspaceID never fills workspace_id
    ("odd_empty", "V3"): ("fallback", WS, "", Z),
    ("odd_empty", "P1"): ("dropped", None, None, None),
}
# (SSE data, agent codec) → (workspace, owner): §2 and §6, server × agent.
AGENT_BY_HAND = {
    ("written_by_V1", "WorkspaceID"): (WS, Z), ("written_by_V1", "workspace_id"): (Z, Z),
    ("written_by_V2", "WorkspaceID"): (Z, Z), ("written_by_V2", "workspace_id"): (WS, OWNER),
    ("odd_upper_case_keys", "workspace_id"): (WS, OWNER),  # case-insensitive, underscores kept
    ("odd_camel_case_v2", "workspace_id"): (Z, Z),  # underscores matter
}


def test_listener_vectors_say_what_the_spec_says():
    rows = {(r["payload"], r["listener"]): r for r in load_vectors()["listener.json"]["results"]}
    for key, (how, ws, reason, owner) in LISTENER_BY_HAND.items():
        row = rows[key]
        assert row["how"] == how, key
        event = row.get("event")
        got = None if event is None else (event["workspace_id"], event["reason"], event["owner_id"])
        assert got == (None if ws is None else (str(ws), reason, str(owner))), key


def test_agent_vectors_say_what_the_spec_says():
    rows = {(r["data"], r["agent_codec"]): r for r in load_vectors()["agent.json"]["results"]}
    for key, (ws, owner) in AGENT_BY_HAND.items():
        event = rows[key]["event"]
        assert (event["workspace_id"], event["owner_id"]) == (str(ws), str(owner)), key
    assert rows[("odd_malformed_uuid", "workspace_id")] == {  # a bad UUID fails the whole decode
        "data": "odd_malformed_uuid", "agent_codec": "workspace_id", "error": "invalid UUID length: 10"}


def test_payload_fixtures():
    assert set(payload_names()) == {"raw_reason", "v2_json", "v1_keys", "uuid_text", "empty", "unknown_keys",
                                    "max_7999"}
    assert len(payload("max_7999", WS, OWNER)) == 7999
    assert payload("empty", WS, OWNER) == b""
    assert payload("uuid_text", WS, OWNER) == str(OWNER).encode()


def test_harness_codec_json_reproduces_protocol_section_6():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness", "codec", "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    took = time.perf_counter() - t0
    data = json.loads(out)
    from harness.protocol.crossproduct import summary
    pubsub = {(r["publisher"], r["listener"]): summary(r) for r in data["pubsub"]}
    for cell, expected in PROTOCOL_6.items():
        assert pubsub[cell] == expected, cell
    sse = {(r["server"], r["agent"]): r for r in data["sse"]}
    for cell, expected in SSE_6.items():
        assert summary(sse[cell]) == expected, cell
    assert not sse[("V2", "V1")]["sends_wait"] and not sse[("V2", "V1")]["can_seed"]
    assert sse[("V2", "V2")]["can_seed"] and sse[("P3", "V1")]["can_409"]
    assert took < 5  # whole interpreter start included; the command's own work is ~10 ms
