"""Codecs with Go encoding/json semantics, and every cell of PROTOCOL.md §6 as an explicit assertion."""

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.protocol import VARIANTS, ClaimEvent, EventCodec, GoJSONError, parse_uuid
from harness.protocol.gojson import fold, marshal_string
from harness.protocol.ids import PREBUILDS_SYSTEM_USER, ZERO, channel, workspace_of

WS = uuid.UUID("11111111-2222-4333-8444-555555555555")
OWNER = uuid.UUID("99999999-8888-4777-8666-555555555555")
V2_JSON = f'{{"workspace_id":"{WS}","reason":"prebuild_claimed","owner_id":"{OWNER}"}}'.encode()


def heard(publisher: str, listener: str) -> ClaimEvent | None:
    payload = VARIANTS[publisher].publisher.payload(WS, OWNER)
    return VARIANTS[listener].listener.hear(WS, payload).event


# -- §2: the event's bytes ---------------------------------------------------------------------
def test_v1_event_bytes():
    assert EventCodec.V1_KEYS.encode(ClaimEvent(WS, "prebuild_claimed", OWNER)) == (
        f'{{"WorkspaceID":"{WS}","reason":"prebuild_claimed"}}'.encode())


def test_v2_event_bytes_key_order_and_compact():
    assert EventCodec.V2_KEYS.encode(ClaimEvent(WS, "prebuild_claimed", OWNER)) == V2_JSON


def test_v2_owner_omitted_when_zero():
    assert EventCodec.V2_KEYS.encode(ClaimEvent(WS, "prebuild_claimed")) == (
        f'{{"workspace_id":"{WS}","reason":"prebuild_claimed"}}'.encode())


def test_go_html_safe_and_control_escapes():
    assert marshal_string("<a&b>") == '"\\u003ca\\u0026b\\u003e"'
    assert marshal_string("\u2028\u2029") == '"\\u2028\\u2029"'
    assert marshal_string("\b\f\n\r\t\x01\x7f") == '"\\b\\f\\n\\r\\t\\u0001\x7f"'
    assert marshal_string('"\\') == '"\\"\\\\"'
    assert marshal_string("é✓") == '"é✓"'


def test_cross_version_decodes_yield_zero_workspace_silently():
    v1_bytes = EventCodec.V1_KEYS.encode(ClaimEvent(WS, "prebuild_claimed"))
    assert EventCodec.V2_KEYS.decode(v1_bytes) == ClaimEvent(ZERO, "prebuild_claimed", ZERO)
    assert EventCodec.V1_KEYS.decode(V2_JSON) == ClaimEvent(ZERO, "prebuild_claimed", ZERO)


def test_case_insensitive_but_underscores_matter():
    assert EventCodec.V2_KEYS.decode(f'{{"WORKSPACE_ID":"{WS}","Owner_Id":"{OWNER}"}}'.encode()).owner_id == OWNER
    assert EventCodec.V2_KEYS.decode(f'{{"workspaceid":"{WS}"}}'.encode()).workspace_id == ZERO
    assert EventCodec.V1_KEYS.decode(f'{{"workspaceid":"{WS}"}}'.encode()).workspace_id == WS
    assert EventCodec.V1_KEYS.decode(f'{{"workspace_id":"{WS}"}}'.encode()).workspace_id == ZERO
    # Go folds the Kelvin sign to K and the long s to S.
    assert fold("\u212a") == "K" and fold("reaſon") == "REASON"
    assert EventCodec.V2_KEYS.decode('{"reaſon":"x"}'.encode()).reason == "x"


def test_exact_match_preferred_and_last_key_wins():
    data = f'{{"workspace_id":"{ZERO}","WORKSPACE_ID":"{WS}"}}'.encode()
    assert EventCodec.V2_KEYS.decode(data).workspace_id == WS


def test_unknown_keys_ignored_and_null_is_a_no_op():
    extra = V2_JSON[:-1] + b',"extra":{"a":[1,2]}}'
    assert EventCodec.V2_KEYS.decode(extra) == ClaimEvent(WS, "prebuild_claimed", OWNER)
    assert EventCodec.V2_KEYS.decode(b"null") == ClaimEvent(ZERO, "", ZERO)
    assert EventCodec.V2_KEYS.decode(b'{"workspace_id":null}') == ClaimEvent(ZERO, "", ZERO)


@pytest.mark.parametrize("data", [
    b'{"workspace_id":"not-a-uuid","reason":"prebuild_claimed"}',
    f'{{"workspace_id":"{WS}","owner_id":"{str(OWNER)[:-1]}"}}'.encode(),
    b'{"workspace_id":42}', b'{"reason":7}', b'{"reason":["a"]}', b'{"owner_id":true}',
    b"[]", b'"prebuild_claimed"', b"42", b"", b"{", b'{"reason":NaN}', b'{"a":1} x', b"prebuild_claimed",
])
def test_whole_decode_fails(data):
    with pytest.raises(GoJSONError):
        EventCodec.V2_KEYS.decode(data)


def test_malformed_uuid_fails_even_when_other_fields_are_fine():
    with pytest.raises(GoJSONError, match="invalid UUID"):
        EventCodec.V2_KEYS.decode(f'{{"workspace_id":"{WS}","reason":"x","owner_id":"zz"}}'.encode())


def test_google_uuid_forms():
    assert parse_uuid(str(WS)) == WS
    assert parse_uuid(str(WS).upper()) == WS
    assert parse_uuid(WS.hex) == WS
    assert parse_uuid(f"urn:uuid:{WS}") == WS and parse_uuid(f"URN:UUID:{WS}") == WS
    assert parse_uuid(f"{{{WS}}}") == WS
    assert parse_uuid(f"x{WS}y") == WS  # google/uuid never checks the braces
    for bad in ("", "x", str(WS)[:-1], str(WS).replace("-", "+"), "g" * 32, f"urn:uuix:{WS}"):
        with pytest.raises(GoJSONError):
            parse_uuid(bad)


@pytest.mark.parametrize(("text", "why"), [(f"é{WS}}}", "length: 39"), (f"\ufffd{WS}x", "length: 40"),
                                           (f"{WS}é", "format")])
def test_uuid_length_counts_bytes_like_go(text, why):
    # 38 and 37 characters, but 39, 40 and 38 bytes: google/uuid rejects each, so the whole decode fails
    with pytest.raises(GoJSONError, match=f"invalid UUID {why}"):
        parse_uuid(text)
    with pytest.raises(GoJSONError, match="invalid UUID"):
        EventCodec.V2_KEYS.decode(f'{{"workspace_id":"{text}"}}'.encode())
    assert VARIANTS["P1"].listener.hear(WS, text.encode()).how == "dropped"


def test_invalid_utf8_becomes_one_replacement_per_byte():
    assert EventCodec.V2_KEYS.decode(b'{"reason":"a\xe2\x82b"}').reason == "a\ufffd\ufffdb"
    assert EventCodec.V2_KEYS.decode(b'{"reason":"\\ud800"}').reason == "\ufffd"


def test_channel_names():
    assert channel(WS) == f"prebuild_claimed_{WS}" and len(channel(WS)) == 53
    assert workspace_of(channel(WS)) == WS


def test_events_validate_themselves():
    with pytest.raises(TypeError):
        ClaimEvent(str(WS), "prebuild_claimed")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ClaimEvent(WS, None)  # type: ignore[arg-type]


# -- §3 publishers ---------------------------------------------------------------------------
def test_publisher_payloads():
    assert VARIANTS["V1"].publisher.payload(WS, OWNER) == b"prebuild_claimed"
    assert VARIANTS["V2"].publisher.payload(WS, OWNER) == V2_JSON
    assert VARIANTS["V3"].publisher.payload(WS, OWNER) == V2_JSON
    assert VARIANTS["P1"].publisher.payload(WS, OWNER) == str(OWNER).encode()
    assert VARIANTS["V0"].publisher.payload(WS, OWNER) is None


# -- §6 pubsub table, every cell -------------------------------------------------------------
@pytest.mark.parametrize("listener", ["V2", "V3"])
def test_v1_publisher_to_v2_listener_falls_back_with_zero_owner(listener):
    assert heard("V1", listener) == ClaimEvent(WS, "prebuild_claimed", ZERO)
    assert VARIANTS[listener].listener.hear(WS, b"prebuild_claimed").how == "fallback"


def test_v1_to_v1():
    assert heard("V1", "V1") == ClaimEvent(WS, "prebuild_claimed")


@pytest.mark.parametrize("publisher", ["V2", "V3"])
def test_v2_publisher_to_v1_listener_makes_the_json_the_reason(publisher):
    assert heard(publisher, "V1") == ClaimEvent(WS, V2_JSON.decode())


@pytest.mark.parametrize("publisher", ["V2", "V3"])
@pytest.mark.parametrize("listener", ["V2", "V3"])
def test_v2_to_v2(publisher, listener):
    assert heard(publisher, listener) == ClaimEvent(WS, "prebuild_claimed", OWNER)


@pytest.mark.parametrize("publisher", ["V1", "V2", "V3"])
def test_p1_listener_drops_everything_but_a_uuid(publisher):
    h = VARIANTS["P1"].listener.hear(WS, VARIANTS[publisher].publisher.payload(WS, OWNER))
    assert h.event is None and h.how == "dropped"
    assert "invalid prebuild claimed channel payload" in h.error


def test_p1_publisher_row():
    assert heard("P1", "V1") == ClaimEvent(WS, str(OWNER))
    assert heard("P1", "V2") == ClaimEvent(WS, str(OWNER), ZERO)
    assert heard("P1", "P1") == ClaimEvent(WS, "prebuild_claimed", OWNER)


def test_v2_listener_uses_decoded_json_as_is_without_back_fill():
    v1_style = f'{{"WorkspaceID":"{WS}","reason":"prebuild_claimed"}}'.encode()
    assert VARIANTS["V2"].listener.hear(WS, v1_style).event == ClaimEvent(ZERO, "prebuild_claimed", ZERO)


# -- §6 SSE table --------------------------------------------------------------------------------
def test_v1_server_to_v2_agent_decodes_zero_workspace_and_owner():
    data = VARIANTS["V1"].sse_codec.encode(ClaimEvent(WS, "prebuild_claimed"))
    assert VARIANTS["V2"].agent.codec.decode(data) == ClaimEvent(ZERO, "prebuild_claimed", ZERO)


@pytest.mark.parametrize("server", ["V2", "V3"])
def test_v2_server_to_v1_agent_decodes_zero_workspace(server):
    data = VARIANTS[server].sse_codec.encode(ClaimEvent(WS, "prebuild_claimed", OWNER))
    assert VARIANTS["V1"].agent.codec.decode(data).workspace_id == ZERO


# -- properties ----------------------------------------------------------------------------------
uuids = st.uuids()
reasons = st.text(max_size=200)


@given(uuids, reasons, uuids)
def test_round_trip_per_codec(ws, reason, owner):
    for codec in EventCodec:
        event = ClaimEvent(ws, reason, owner if codec is EventCodec.V2_KEYS else ZERO)
        clean = ClaimEvent(ws, "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in reason),
                           event.owner_id)
        assert codec.decode(codec.encode(event)) == clean


@given(uuids, reasons, uuids)
def test_encoding_is_valid_json_python_agrees_with(ws, reason, owner):
    data = EventCodec.V2_KEYS.encode(ClaimEvent(ws, reason, owner))
    assert json.loads(data)["workspace_id"] == str(ws)
    assert b"<" not in data and b">" not in data and b"&" not in data


released = ["V1", "V2", "V3"]


@given(uuids, uuids, st.sampled_from(released), st.sampled_from(released), st.sampled_from(released))
def test_no_released_cross_version_decode_raises(ws, owner, publisher, stream, agent):
    payload = VARIANTS[publisher].publisher.payload(ws, owner)
    event = VARIANTS[stream].listener.hear(ws, payload).event
    assert event is not None
    data = VARIANTS[stream].sse_codec.encode(event)
    got = VARIANTS[agent].agent.codec.decode(data)
    assert got.workspace_id in (ws, ZERO)
    assert got.owner_id in (owner, ZERO)


@given(st.binary(max_size=300), uuids)
def test_json_listener_never_raises(payload, ws):
    h = VARIANTS["V2"].listener.hear(ws, payload)
    assert h.event is not None and h.how in ("json", "fallback")


def test_prebuilds_system_user_constant():
    assert str(PREBUILDS_SYSTEM_USER) == "c42fdf75-3097-471c-8c33-fb52454d81c0"
