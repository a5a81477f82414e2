"""A second OS process for pubsub tests: publish N messages, or listen for N and print them as JSON lines."""

import asyncio
import json
import sys
import time

from harness.pg.pubsub import PubSub


async def main(mode: str, dsn: str, channel: str, count: int) -> None:
    ps = await PubSub(dsn, log_notifies=False).start()
    try:
        if mode == "publish":
            for i in range(count):
                await ps.publish(channel, json.dumps({"i": i, "sent": time.monotonic()}).encode())
            return
        got: list[bytes] = []
        done = asyncio.Event()

        async def on(payload: bytes) -> None:
            got.append(payload)
            print(json.dumps({"payload": payload.decode(), "recv": time.monotonic()}), flush=True)
            if len(got) >= count:
                done.set()

        await ps.subscribe(channel, on)
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await ps.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
