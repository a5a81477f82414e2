"""A fake /reinit server answering each request with the next canned response from a JSON file.

argv: FILE. Each entry: {"status": 200, "chunks": ["event: ping\\n\\n", ...], "then": "hold"|"close"}.
After the list is used up, requests hang (no headers), like a quiet real server. Prints its URL.
"""

import asyncio
import json
import sys

from aiohttp import web


async def main(path: str) -> None:
    with open(path) as f:
        responses = json.load(f)
    served = 0

    async def reinit(request: web.Request) -> web.StreamResponse:
        nonlocal served
        if served >= len(responses):
            await asyncio.sleep(3600)
        spec = responses[served]
        served += 1
        resp = web.StreamResponse(status=spec.get("status", 200), headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in spec["chunks"]:
            await resp.write(chunk.encode())
        if spec.get("then", "hold") == "hold":
            await asyncio.sleep(3600)
        return resp

    app = web.Application()
    app.router.add_get("/api/v2/workspaceagents/me/reinit", reinit)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
