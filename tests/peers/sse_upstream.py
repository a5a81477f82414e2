"""A tiny coderd stand-in behind the fault proxy in tests: SSE written the way coderd writes it, frames on demand.

    python tests/peers/sse_upstream.py NAME [PING_MS]   → prints {"name": NAME, "port": PORT} once listening

GET  /api/v2/workspaceagents/me/reinit[?ping_ms=N]
     The agent is the Coder-Session-Token header (else X-Harness-Agent). Like coderd: nothing, headers
     included, until the first frame; chunked; one frame per write; ``event: ping`` every N ms (0: none).
POST /emit?agent=A[&n=1][&shape=d][&split=K][&pad=P]
     Send n data frames to every open stream of agent A (every stream if no agent), waiting up to 5 s for
     one to exist. shape: the chunks of one emit — "d" the data frame alone, "pd" a ping and the data frame
     in one chunk, "dp" the data frame and a ping in one chunk. split=K: the data frame as two chunks, the
     first K bytes, 30 ms later the rest. pad=P: P more bytes of JSON. Answers {"streams": k}.
GET  /conflict → 409 JSON naming this upstream (a small response on a keep-alive connection)
GET  /whoami   → 200 JSON naming this upstream
"""

import asyncio
import json
import sys

from aiohttp import web

from harness.protocol.sse import PING_FRAME, data_frame

NAME = sys.argv[1]
DEFAULT_PING_MS = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0
SPLIT_PAUSE_S = 0.03  # long enough that the two halves reach the proxy in separate reads
streams: dict[str, set[asyncio.Queue]] = {}
seq = 0


async def reinit(request: web.Request) -> web.StreamResponse:
    agent = request.headers.get("Coder-Session-Token") or request.headers.get("X-Harness-Agent") or ""
    ping_s = float(request.query.get("ping_ms", DEFAULT_PING_MS)) / 1000
    queue: asyncio.Queue = asyncio.Queue()
    streams.setdefault(agent, set()).add(queue)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    resp.enable_chunked_encoding()
    loop = asyncio.get_running_loop()
    next_ping = loop.time() + ping_s
    try:
        while True:
            try:
                pieces = await asyncio.wait_for(queue.get(), next_ping - loop.time() if ping_s else None)
            except TimeoutError:
                pieces, next_ping = [PING_FRAME], next_ping + ping_s
            if not resp.prepared:
                await resp.prepare(request)
            for piece in pieces:
                if isinstance(piece, float):
                    await asyncio.sleep(piece)
                else:
                    await resp.write(piece)  # one chunk per write, like coderd's flush per frame
    finally:
        streams[agent].discard(queue)


async def emit(request: web.Request) -> web.Response:
    global seq
    agent = request.query.get("agent")
    n, split, pad = (int(request.query.get(k, d)) for k, d in (("n", 1), ("split", 0), ("pad", 0)))
    shape = request.query.get("shape", "d")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not (targets := [q for a, qs in streams.items() if agent in (None, a) for q in qs]):
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.005)
    for _ in range(n):
        seq += 1
        frame = data_frame(json.dumps({"seq": seq, "agent": agent, "upstream": NAME, "pad": "x" * pad},
                                      separators=(",", ":")).encode())
        if split:
            pieces: list = [frame[:split], SPLIT_PAUSE_S, frame[split:]]
        else:
            pieces = [{"d": frame, "pd": PING_FRAME + frame, "dp": frame + PING_FRAME}[shape]]
        for q in targets:
            q.put_nowait(pieces)
    return web.json_response({"streams": len(targets)})


async def conflict(request: web.Request) -> web.Response:
    return web.json_response({"message": "Workspace is not a prebuilt workspace waiting to be claimed.",
                              "upstream": NAME}, status=409)


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"upstream": NAME})


async def main() -> None:
    app = web.Application()
    app.add_routes([web.get("/api/v2/workspaceagents/me/reinit", reinit), web.post("/emit", emit),
                    web.get("/conflict", conflict), web.get("/whoami", whoami)])
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"name": NAME, "port": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
