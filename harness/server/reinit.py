"""``GET /api/v2/workspaceagents/me/reinit`` as each release serves it (PROTOCOL.md §4).

The order of work is the release's, step for step:

1. agent-token auth (cookie ``coder_session_token``, else that query parameter, else the header
   ``Coder-Session-Token``, in Coder's order): 401 otherwise;
2. look up the agent's workspace — a failure is a 500; V1 writes it *and carries on* into the stream,
   subscribed to the zero workspace's channel (a real bug in every V1 release);
3. subscribe to ``prebuild_claimed_<ws>`` first, then (durable variants) decide from the database:
   stream pubsub events, seed exactly one event, or answer 409 (``protocol.rules.decide``);
4. stream: nothing at all — headers included — is written before the first event or heartbeat
   (``event: ping`` every heartbeat interval); every write is flushed; the stream never ends from
   this side after an event. The client hangs up.

What the listener makes of each payload comes from the variant's ListenerRule; how it reaches the
handler from its GoChannel (V1 unbuffered, V2/V3 one slot, P1 dropping when full).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from harness.events import EventLog
from harness.pg.pubsub import PubSub, Subscription
from harness.protocol import (
    PING_FRAME,
    ClaimEvent,
    Decision,
    DecisionKind,
    Variant,
    coder_response,
    data_frame,
    decide,
)
from harness.protocol.ids import TOKEN_COOKIE, TOKEN_HEADER, ZERO, channel
from harness.protocol.rules import BAD_TOKEN, LOOKUP_FAILED, NO_TOKEN, ROUTE_NOT_FOUND, durable_branch
from harness.server.gochan import GoChannel
from harness.server.store import AgentWorkspace, Store

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive",
               "X-Accel-Buffering": "no"}
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Hooks:
    """Test hooks a fault can set through the control API.

    ``durable_check_delay_ms``: a durable check, once subscribed, waits this long before it reads the
    database — or until the hook is set again, which releases every check waiting on it at once. So a
    scenario can hold a check with a long delay, publish, see the subscription hear it, and release the
    check, instead of hoping a fixed delay is long enough on a loaded machine.
    """

    durable_check_delay_ms: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def set_delay(self, ms: int) -> None:
        self.durable_check_delay_ms = ms
        self._changed.set()  # wake the checks waiting on the old setting
        self._changed = asyncio.Event()

    async def wait(self) -> str:
        """Wait out the delay; why it ended: "elapsed" or "released"."""
        try:
            await asyncio.wait_for(self._changed.wait(), self.durable_check_delay_ms / 1000)
        except TimeoutError:
            return "elapsed"
        return "released"


@dataclass
class Stream:
    """One open /reinit request, for logging and the replica's state endpoint."""

    conn: str
    agent: str
    workspace: uuid.UUID = ZERO
    frames: int = 0
    response: web.StreamResponse | None = None
    pending_body: bytes = b""  # V1's 500 body, written with the first frame
    status: int = 200
    opened: float = field(default_factory=time.monotonic)


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": JSON_TYPE})


class ReinitHandler:
    def __init__(self, variant: Variant, store: Store, pubsub: PubSub, log: EventLog, *, heartbeat_s: float,
                 hooks: Hooks) -> None:
        self.variant, self.store, self.pubsub, self.log = variant, store, pubsub, log
        self.heartbeat_s, self.hooks = heartbeat_s, hooks
        self.streams: dict[str, Stream] = {}
        self._seq = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self._seq += 1
        stream = Stream(conn=request.headers.get("X-Harness-Conn", f"r{self._seq}"),
                        agent=request.headers.get("X-Harness-Agent", ""))
        wait = request.query.get("wait")
        self.log.emit("reinit.request", conn=stream.conn, agent=stream.agent, wait=wait,
                      remote=request.remote)
        if not self.variant.has_route:
            return self._reply(stream, 404, coder_response(*ROUTE_NOT_FOUND))
        # httpmw.APITokenFromRequest: the cookie, then the query parameter of the same name, then the header
        token_text = (request.cookies.get(TOKEN_COOKIE) or request.query.get(TOKEN_COOKIE)
                      or request.headers.get(TOKEN_HEADER))
        if not token_text:
            return self._reply(stream, 401, coder_response(*NO_TOKEN))
        try:
            token = uuid.UUID(token_text)
        except ValueError:
            return self._reply(stream, 401, coder_response(
                "Workspace agent token invalid.", f"An agent token must be a valid UUIDv4. (len {len(token_text)})"))
        workspace_id = await self.store.token_workspace(token)
        if workspace_id is None:
            return self._reply(stream, 401, coder_response(*BAD_TOKEN))
        stream.workspace = workspace_id
        workspace = await self.store.agent_workspace(workspace_id)
        if workspace is None:
            body = coder_response(LOOKUP_FAILED, f"workspace {workspace_id} not found")
            if not self.variant.handler.carry_on_after_lookup_failure:
                return self._reply(stream, 500, body)
            stream.status, stream.pending_body, stream.workspace = 500, body, ZERO
            self.log.emit("reinit.lookup_failed", conn=stream.conn, agent=stream.agent, carry_on=True)

        self.streams[stream.conn] = stream
        events: GoChannel[ClaimEvent] = GoChannel(self.variant.listener_buffer)
        sub = await self._subscribe(stream, events)
        try:
            if workspace is not None and self.variant.handler.durable:
                decision = await self._durable_check(stream, wait, workspace)
                if decision is not None and decision.kind is DecisionKind.CONFLICT:
                    await sub.cancel()
                    return self._reply(stream, 409, decision.body)
                if decision is not None and decision.kind is DecisionKind.SEED:
                    await sub.cancel()  # drop the subscription; exactly one event, then heartbeats only
                    events = GoChannel(1)
                    events.try_put(decision.event)  # type: ignore[arg-type]
            else:
                self.log.emit("reinit.decision", conn=stream.conn, agent=stream.agent, ws=str(stream.workspace),
                              decision="wait", why="no durable check in this release" if workspace else
                              "lookup failed: streaming the zero workspace's channel (V1 bug)")
            await self._transmit(request, stream, events)
            return stream.response or web.Response()
        finally:
            await sub.cancel()
            self.streams.pop(stream.conn, None)
            self.log.emit("reinit.closed", conn=stream.conn, agent=stream.agent, ws=str(stream.workspace),
                          frames=stream.frames)

    def _reply(self, stream: Stream, status: int, body: bytes) -> web.Response:
        self.log.emit("reinit.status", conn=stream.conn, agent=stream.agent, ws=str(stream.workspace),
                      status=status, body=body.decode(errors="replace").strip())
        return _json(status, body)

    async def _subscribe(self, stream: Stream, events: GoChannel[ClaimEvent]) -> Subscription:
        ws = stream.workspace
        rule, drops = self.variant.listener, self.variant.listener_drops_when_full

        async def on_payload(payload: bytes) -> None:
            heard = rule.hear(ws, payload)
            if heard.event is None:
                self.log.emit("reinit.dropped", conn=stream.conn, agent=stream.agent, ws=str(ws), why=heard.error)
                return
            self.log.emit("reinit.heard", conn=stream.conn, agent=stream.agent, ws=str(ws), how=heard.how,
                          event=heard.event.as_dict(), error=heard.error or None)
            if drops:
                if not events.try_put(heard.event):
                    self.log.emit("reinit.dropped", conn=stream.conn, agent=stream.agent, ws=str(ws),
                                  why="one-slot buffer full")
            else:
                await events.put(heard.event)

        sub = await self.pubsub.subscribe(channel(ws), on_payload)
        self.log.emit("reinit.subscribed", conn=stream.conn, agent=stream.agent, ws=str(ws), channel=channel(ws))
        return sub

    async def _durable_check(self, stream: Stream, wait: str | None, workspace: AgentWorkspace) -> Decision | None:
        if self.hooks.durable_check_delay_ms and durable_branch(self.variant.handler, wait, workspace.owner) is None:
            self.log.emit("reinit.check_delayed", conn=stream.conn, agent=stream.agent, ws=str(workspace.id),
                          ms=self.hooks.durable_check_delay_ms)
            why = await self.hooks.wait()
            self.log.emit("reinit.check_resumed", conn=stream.conn, agent=stream.agent, ws=str(workspace.id), why=why)
        state = await self.store.workspace_state(workspace)
        if state is None:
            return None
        decision = decide(self.variant.handler, wait, state)
        self.log.emit("reinit.decision", conn=stream.conn, agent=stream.agent, ws=str(workspace.id),
                      decision=decision.kind.value, why=decision.why,
                      event=decision.event.as_dict() if decision.event else None)
        return decision

    async def _write(self, request: web.Request, stream: Stream, frame: bytes, kind: str) -> None:
        if stream.response is None:  # headers go out with the first frame, never before
            stream.response = web.StreamResponse(status=stream.status, headers=(
                {"Content-Type": JSON_TYPE} if stream.status != 200 else SSE_HEADERS))
            await stream.response.prepare(request)
            self.log.emit("reinit.status", conn=stream.conn, agent=stream.agent, ws=str(stream.workspace),
                          status=stream.status)
            if stream.pending_body:
                await stream.response.write(stream.pending_body)
        await stream.response.write(frame)
        stream.frames += 1
        self.log.emit("sse.frame", conn=stream.conn, agent=stream.agent, ws=str(stream.workspace), type=kind,
                      data=frame[len(b"event: data\ndata: "):-2].decode() if kind == "data" else None)

    async def _transmit(self, request: web.Request, stream: Stream, events: GoChannel[ClaimEvent]) -> None:
        codec = self.variant.sse_codec
        next_ping = time.monotonic() + self.heartbeat_s
        getter: asyncio.Task[ClaimEvent] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter}, timeout=max(0.0, next_ping - time.monotonic()))
                if not done:
                    await self._write(request, stream, PING_FRAME, "ping")
                    next_ping += self.heartbeat_s
                    continue
                event, getter = getter.result(), None
                await self._write(request, stream, data_frame(codec.encode(event)), "data")
        except ConnectionResetError:
            pass  # the client hung up between our writes
        finally:
            if getter is not None:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await getter
