"""The harness's control API on each replica, under ``/_harness/v1``, behind a per-fleet admin token.

It does to the shared database what coderd's prebuild and build machinery would: create prebuilds and
regular workspaces, claim, start and complete builds. Completing a CLAIM build successfully publishes
from *this* replica in *this* replica's publisher format, after the completion has committed —
the only moment any release publishes. It can also publish arbitrary bytes on a workspace's channel
(legacy and odd payloads), report the replica's state, and set test hooks.
"""

from __future__ import annotations

import base64
import hmac
import os
import uuid
from typing import Any

from aiohttp import web

from harness.events import EventLog
from harness.pg.pubsub import PayloadTooLarge, PublishError, PubSub
from harness.protocol import Release
from harness.protocol.ids import channel
from harness.server.reinit import Hooks, ReinitHandler
from harness.server.store import Store, StoreError

PREFIX = "/_harness/v1"
ADMIN_HEADER = "X-Harness-Admin"


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{what}: not a UUID: {value!r}") from None


class Control:
    def __init__(self, release: Release, name: str, store: Store, pubsub: PubSub, log: EventLog,
                 reinit: ReinitHandler, hooks: Hooks, admin_token: str) -> None:
        self.release, self.name, self.store, self.pubsub, self.log = release, name, store, pubsub, log
        self.reinit, self.hooks, self.admin_token = reinit, hooks, admin_token

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/workspaces", self.create_workspace),
            web.get(f"{PREFIX}/workspaces/{{ws}}", self.describe),
            web.delete(f"{PREFIX}/workspaces/{{ws}}", self.delete),
            web.post(f"{PREFIX}/workspaces/{{ws}}/claim", self.claim),
            web.post(f"{PREFIX}/workspaces/{{ws}}/builds", self.start_build),
            web.post(f"{PREFIX}/workspaces/{{ws}}/builds/{{n}}/complete", self.complete_build),
            web.post(f"{PREFIX}/workspaces/{{ws}}/publish", self.publish_raw),
            web.get(f"{PREFIX}/state", self.state),
            web.put(f"{PREFIX}/hooks", self.set_hooks),
        ]

    @web.middleware
    async def auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(PREFIX) and not hmac.compare_digest(
                request.headers.get(ADMIN_HEADER, ""), self.admin_token):
            raise web.HTTPUnauthorized(text=f"control API: missing or wrong {ADMIN_HEADER} header")
        try:
            return await handler(request)
        except StoreError as e:
            raise web.HTTPConflict(text=str(e)) from None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def create_workspace(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        kind = body.get("kind", "prebuild")
        if kind not in ("prebuild", "regular"):
            raise web.HTTPBadRequest(text="kind must be 'prebuild' or 'regular'")
        owner = _uuid(body.get("owner_id", uuid.uuid4()), "owner_id")
        ws, token = await self.store.create_workspace(prebuild=kind == "prebuild", owner=owner)
        described = await self.store.describe(ws)
        self.log.emit("control.workspace_created", ws=str(ws), kind=kind, owner=described["owner_id"])  # type: ignore[index]
        return web.json_response({**described, "agent_token": str(token)})  # type: ignore[dict-item]

    async def describe(self, request: web.Request) -> web.Response:
        described = await self.store.describe(_uuid(request.match_info["ws"], "workspace"))
        if described is None:
            raise web.HTTPNotFound(text="no such workspace")
        return web.json_response(described)

    async def delete(self, request: web.Request) -> web.Response:
        ws = _uuid(request.match_info["ws"], "workspace")
        await self.store.delete_workspace(ws)
        self.log.emit("control.workspace_deleted", ws=str(ws))
        return web.json_response({"deleted": str(ws)})

    async def claim(self, request: web.Request) -> web.Response:
        ws = _uuid(request.match_info["ws"], "workspace")
        body = await self._body(request)
        user = _uuid(body.get("owner_id", uuid.uuid4()), "owner_id")
        number = await self.store.claim(ws, user, create_build=body.get("create_build", True))
        self.log.emit("control.claimed", ws=str(ws), owner=str(user), build=number)
        return web.json_response({"workspace_id": str(ws), "owner_id": str(user), "build_number": number})

    async def start_build(self, request: web.Request) -> web.Response:
        ws = _uuid(request.match_info["ws"], "workspace")
        body = await self._body(request)
        stage = body.get("stage", "NONE")
        if stage not in ("NONE", "CLAIM"):
            raise web.HTTPBadRequest(text="stage must be NONE or CLAIM")
        initiator = _uuid(body.get("initiator_id"), "initiator_id")
        number = await self.store.start_build(ws, initiator, stage)
        self.log.emit("control.build_started", ws=str(ws), build=number, stage=stage, initiator=str(initiator))
        return web.json_response({"workspace_id": str(ws), "build_number": number})

    async def complete_build(self, request: web.Request) -> web.Response:
        ws = _uuid(request.match_info["ws"], "workspace")
        n = request.match_info["n"]
        if n != "latest" and not n.isdigit():
            raise web.HTTPBadRequest(text="build number must be a number or 'latest'")
        body = await self._body(request)
        status = body.get("status", "succeeded")
        if status not in ("succeeded", "failed"):
            raise web.HTTPBadRequest(text="status must be 'succeeded' or 'failed'")
        build = await self.store.complete_build(ws, None if n == "latest" else int(n), succeeded=status == "succeeded",
                                                error=body.get("error", ""))
        self.log.emit("build.completed", ws=str(ws), build=build.number, status=build.status, stage=build.stage)
        published = None
        if build.stage == "CLAIM" and build.status == "succeeded" and body.get("publish", True):
            described = await self.store.describe(ws)
            payload = self.release.variant.publisher.payload(ws, uuid.UUID(described["owner_id"]))  # type: ignore[index]
            if payload is not None:
                published = await self._publish(ws, payload, why="claim build succeeded")
        return web.json_response({"workspace_id": str(ws), "build_number": build.number, "status": build.status,
                                  "stage": build.stage, "published": published})

    async def publish_raw(self, request: web.Request) -> web.Response:
        ws = _uuid(request.match_info["ws"], "workspace")
        body = await self._body(request)
        if "payload_b64" in body:
            payload = base64.b64decode(body["payload_b64"])
        elif "payload" in body:
            payload = str(body["payload"]).encode()
        else:
            raise web.HTTPBadRequest(text="give 'payload' (text) or 'payload_b64'")
        return web.json_response({"published": await self._publish(ws, payload, why=body.get("why", "injected"))})

    async def _publish(self, ws: uuid.UUID, payload: bytes, *, why: str) -> str:
        try:
            await self.pubsub.publish(channel(ws), payload)
        except PayloadTooLarge as e:
            raise web.HTTPRequestEntityTooLarge(max_size=7999, actual_size=len(payload), text=str(e)) from None
        except PublishError as e:
            self.log.emit("claim.publish_failed", ws=str(ws), error=str(e))  # coderd only logs it
            raise web.HTTPServiceUnavailable(text=str(e)) from None
        self.log.emit("claim.published", ws=str(ws), channel=channel(ws), why=why, size=len(payload),
                      payload=payload[:300].decode("utf-8", "replace"), publisher=self.release.variant.name)
        return payload.decode("utf-8", "replace")

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "name": self.name, "tag": self.release.tag, "variant": self.release.variant.name, "pid": os.getpid(),
            "listener_pid": self.pubsub.listener_pid, "listener_connected": self.pubsub.connected,
            "pubsub": self.pubsub.stats, "streams": len(self.reinit.streams),
            "hooks": {"durable_check_delay_ms": self.hooks.durable_check_delay_ms}})

    async def set_hooks(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        delay = body.get("durable_check_delay_ms", self.hooks.durable_check_delay_ms)
        if not isinstance(delay, int) or delay < 0:
            raise web.HTTPBadRequest(text="durable_check_delay_ms must be a non-negative integer")
        self.hooks.set_delay(delay)
        self.log.emit("control.hooks", durable_check_delay_ms=delay)
        return web.json_response({"durable_check_delay_ms": delay})
