"""The seed system's sends, for im-bench to print beside ours.

redisim 0.0.5 (PyPI) keeps an IM in Redis with Lua scripts: a direct send
is its `send` script, a group send its `gsend` script, which fans the
message out to every member's stream. This drives those scripts from
Python (redis-py's asyncio client: one connection per task) on the
`redis-server` im-bench started, for `--secs` seconds per figure, with 1
and 50 concurrent tasks, and prints one JSON object: messages per second
by shape and task count, e.g. {"dm": {"1": 3000.0, "50": 9000.0}, ...}.

Usage: python redisim_peer.py --url redis://127.0.0.1:PORT --secs 3
"""

import argparse
import asyncio
import json
import time
import uuid

import redis.asyncio as aioredis
import redisim  # noqa: F401  (adds `.im()` to redis-py's clients)
from redisim.im import AsyncIM

GROUP = 100
TASKS = (1, 50)


async def rate(url, tasks, secs, send):
    clients = [aioredis.Redis.from_url(url) for _ in range(tasks)]
    ims = [AsyncIM(c) for c in clients]
    count = 0
    deadline = time.monotonic() + secs

    async def run(i):
        nonlocal count
        while time.monotonic() < deadline:
            await send(ims[i], i)
            count += 1

    await asyncio.gather(*(run(i) for i in range(tasks)))
    for c in clients:
        await c.aclose()
    return count / secs


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--secs", type=float, default=3.0)
    args = p.parse_args()
    run_id = uuid.uuid4().hex[:8]
    group = f"g{run_id}"
    setup = aioredis.Redis.from_url(args.url)
    im = AsyncIM(setup)
    await im.group(group, f"u{run_id}-0", name="bench")
    for m in range(1, GROUP):
        await im.join(f"u{run_id}-{m}", group)
    await setup.aclose()

    async def dm(im, i):
        await im.send(f"u{run_id}-{2 * i}", f"u{run_id}-{2 * i + 1}", text="hello")

    async def gsend(im, i):
        await im.gsend(f"u{run_id}-{i % GROUP}", group, text="hello")

    out = {"dm": {}, "group": {}}
    for tasks in TASKS:
        out["dm"][str(tasks)] = await rate(args.url, tasks, args.secs, dm)
        out["group"][str(tasks)] = await rate(args.url, tasks, args.secs, gsend)
    print(json.dumps(out))


asyncio.run(main())
