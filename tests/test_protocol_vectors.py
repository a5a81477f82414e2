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
