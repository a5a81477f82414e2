"""A synchronous client for a replica's control API (used by the fleet, scenarios and benchmarks)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from harness.errors import HarnessError
from harness.server.control import ADMIN_HEADER, PREFIX


@dataclass(frozen=True)
class Workspace:
    id: uuid.UUID
    owner_id: uuid.UUID
    agent_token: str
    is_prebuild: bool


class ControlClient:
    def __init__(self, url: str, admin_token: str, *, timeout_s: float = 30.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self._session = requests.Session()
        self._session.headers[ADMIN_HEADER] = admin_token

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            r = self._session.request(method, f"{self.url}{PREFIX}{path}", json=body, timeout=self.timeout_s)
        except requests.RequestException as e:
            raise HarnessError(f"control API {method} {path} failed: {e}", where=self.url) from None
        if r.status_code >= 400:
            raise HarnessError(f"control API {method} {path}: HTTP {r.status_code}: {r.text.strip()[:300]}",
                               where=self.url)
        return r.json()

    def _workspace(self, data: dict[str, Any]) -> Workspace:
        return Workspace(uuid.UUID(data["id"]), uuid.UUID(data["owner_id"]), data["agent_token"], data["is_prebuild"])

    def create_prebuild(self) -> Workspace:
        return self._workspace(self._call("POST", "/workspaces", {"kind": "prebuild"}))

    def create_regular(self, owner: uuid.UUID | None = None) -> Workspace:
        body = {"kind": "regular", "owner_id": str(owner or uuid.uuid4())}
        return self._workspace(self._call("POST", "/workspaces", body))

    def claim(self, ws: uuid.UUID, owner: uuid.UUID, *, create_build: bool = True) -> int | None:
        return self._call("POST", f"/workspaces/{ws}/claim", {"owner_id": str(owner), "create_build": create_build})[
            "build_number"]

    def start_build(self, ws: uuid.UUID, initiator: uuid.UUID, *, stage: str = "NONE") -> int:
        return self._call("POST", f"/workspaces/{ws}/builds", {"initiator_id": str(initiator), "stage": stage})[
            "build_number"]

    def complete(self, ws: uuid.UUID, *, build: int | str = "latest", ok: bool = True, error: str = "",
                 publish: bool = True) -> dict[str, Any]:
        return self._call("POST", f"/workspaces/{ws}/builds/{build}/complete",
                          {"status": "succeeded" if ok else "failed", "error": error, "publish": publish})

    def publish_raw(self, ws: uuid.UUID, payload: bytes, *, why: str = "injected") -> str:
        return self._call("POST", f"/workspaces/{ws}/publish",
                          {"payload_b64": base64.b64encode(payload).decode(), "why": why})["published"]

    def describe(self, ws: uuid.UUID) -> dict[str, Any]:
        return self._call("GET", f"/workspaces/{ws}")

    def delete(self, ws: uuid.UUID) -> None:
        self._call("DELETE", f"/workspaces/{ws}")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def set_hooks(self, *, durable_check_delay_ms: int) -> None:
        self._call("PUT", "/hooks", {"durable_check_delay_ms": durable_check_delay_ms})
