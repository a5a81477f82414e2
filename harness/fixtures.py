"""The repository's fixtures/: odd payloads for the scenarios and the protocol's golden vectors.

The vectors are built by asking the protocol package and committed after review; tests compare the
package against the committed files, so any change in what goes on the wire shows up as a diff.
Regenerate after an intended change with ``python -m harness.fixtures --write-vectors``.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.protocol import VARIANTS, ClaimEvent, EventCodec, GoJSONError, data_frame
from harness.protocol.crossproduct import OWNER, WS, publishers
from harness.protocol.gojson import go_string
from harness.protocol.ids import REASON_PREBUILD_CLAIMED, ZERO
from harness.protocol.sse import PING_FRAME

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VECTORS = FIXTURES / "vectors"


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"fixture file {path} is missing",
                           hint="run the harness from a checkout of its repository (pip install -e .)") from None


def payload_names() -> list[str]:
    return [k for k in _load(FIXTURES / "payloads.json") if not k.startswith("_")]


def payload(name: str, workspace_id: uuid.UUID, owner_id: uuid.UUID) -> bytes:
    """The bytes of a named odd payload for one workspace and owner."""
    spec = _load(FIXTURES / "payloads.json")[name]
    text = spec["text"].replace("{ws}", str(workspace_id)).replace("{owner}", str(owner_id))
    data = text.encode()
    if "pad_to" in spec:
        filler = spec["pad_to"] - len(data)
        data = data.replace(b'"padding":""', b'"padding":"' + b"x" * filler + b'"')
    return data


# Odd SSE data lines an agent may meet, beyond what the servers write.
ODD_SSE_DATA = {
    "v1_keys_with_owner": b'{"WorkspaceID":"%(ws)s","reason":"prebuild_claimed","owner_id":"%(owner)s"}',
    "upper_case_keys": b'{"WORKSPACE_ID":"%(ws)s","REASON":"prebuild_claimed","OWNER_ID":"%(owner)s"}',
    "camel_case_v2": b'{"workspaceId":"%(ws)s","reason":"prebuild_claimed","ownerId":"%(owner)s"}',
    "duplicate_keys": b'{"workspace_id":"%(zero)s","workspace_id":"%(ws)s","reason":"prebuild_claimed"}',
    "malformed_uuid": b'{"workspace_id":"not-a-uuid","reason":"prebuild_claimed","owner_id":"%(owner)s"}',
    "number_uuid": b'{"workspace_id":42,"reason":"prebuild_claimed"}',
    "null_fields": b'{"workspace_id":null,"reason":null,"owner_id":null}',
    "json_null": b"null",
    "json_array": b"[]",
    "json_string": b'"prebuild_claimed"',
    "hex32_uuid": b'{"workspace_id":"%(hex)s","reason":"prebuild_claimed"}',
    "braced_uuid": b'{"workspace_id":"{%(ws)s}","reason":"prebuild_claimed"}',
    "urn_uuid": b'{"workspace_id":"urn:uuid:%(ws)s","reason":"prebuild_claimed"}',
    "trailing_garbage": b'{"workspace_id":"%(ws)s","reason":"prebuild_claimed"} x',
    "nan": b'{"workspace_id":"%(ws)s","reason":NaN}',
}


def _event_json(e: ClaimEvent | None) -> dict[str, str] | None:
    return None if e is None else e.as_dict()


def build_vectors() -> dict[str, Any]:
    """Every vector file's content, computed from the protocol package."""
    ids = {"ws": str(WS), "owner": str(OWNER), "zero": str(ZERO), "hex": WS.hex}
    event = ClaimEvent(WS, REASON_PREBUILD_CLAIMED, OWNER)
    wire = {}
    for v in VARIANTS.values():
        entry: dict[str, Any] = {"has_route": v.has_route}
        payload_bytes = v.publisher.payload(WS, OWNER)
        entry["publisher_payload"] = None if payload_bytes is None else go_string(payload_bytes)
        if v.has_route:
            data = v.sse_codec.encode(event)
            entry.update(sse_data=data.decode(), sse_frame=data_frame(data).decode(), ping_frame=PING_FRAME.decode())
        wire[v.name] = entry

    payloads = {f"published_by_{v.name}": go_string(v.publisher.payload(WS, OWNER) or b"") for v in publishers()}
    payloads.update({f"odd_{name}": go_string(payload(name, WS, OWNER)) for name in payload_names()})
    listener = []
    for name, text in payloads.items():
        for lis in publishers():
            heard = lis.listener.hear(WS, text.encode())
            listener.append({"payload": name, "listener": lis.name, "how": heard.how,
                             "event": _event_json(heard.event)})

    sse_data = {f"written_by_{v.name}": v.sse_codec.encode(event).decode() for v in VARIANTS.values() if v.has_route}
    sse_data.update({f"odd_{k}": (raw % {k2.encode(): v2.encode() for k2, v2 in ids.items()}).decode()
                     for k, raw in ODD_SSE_DATA.items()})
    agent = []
    for name, text in sse_data.items():
        for codec in EventCodec:
            try:
                got: dict[str, Any] = {"event": codec.decode(text.encode()).as_dict()}
            except GoJSONError as e:
                got = {"error": str(e)}
            agent.append({"data": name, "agent_codec": codec.value, **got})
    meta = {"ws": str(WS), "owner": str(OWNER)}
    return {
        "wire.json": {"ids": meta, "variants": wire},
        "listener.json": {"ids": meta, "payloads": payloads, "results": listener},
        "agent.json": {"ids": meta, "sse_data": sse_data, "results": agent},
    }


def load_vectors() -> dict[str, Any]:
    return {p.name: _load(p) for p in sorted(VECTORS.glob("*.json"))}


def write_vectors() -> None:
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name, content in build_vectors().items():
        (VECTORS / name).write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-vectors"]:
        write_vectors()
        print(f"wrote {', '.join(build_vectors())} to {VECTORS}")
    else:
        sys.exit("usage: python -m harness.fixtures --write-vectors")
