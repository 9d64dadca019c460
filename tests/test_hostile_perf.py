"""Hostile use of the fast paths (small file parts sent whole in their block,
async blocks of 512 KiB, bodies in memory made on the event loop): each
test once showed a hole.
"""

import asyncio
import time

import pytest

from poster.encode import MultipartParam, multipart_encode

BOUNDARY = "0123456789abcdef"


async def _max_loop_gap(work):
    """Run ``work()`` (a coroutine function) next to a 1 ms ticker; the
    longest the ticker waited between two ticks, in seconds."""
    gaps = [0.0]
    stop = False

    async def ticker():
        last = time.monotonic()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps[0] = max(gaps[0], now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(work(), 60)
    finally:
        stop = True
        await task
    return gaps[0]


def test_async_for_over_a_big_body_in_memory_lets_the_loop_run():
    # 300 000 small fields (about 60 MB): a form dump, a batch of records.
    # Before ebe780b each block was made in a worker thread, so the loop ran
    # between blocks (largest gap of a 1 ms ticker: 3-10 ms).  Now a body
    # held in memory is made on the loop and __anext__ never suspends: the
    # whole body is made in one go with the loop frozen (0.4-0.8 s here; the
    # same through aiohttp's session.post(data=body): 0.3-0.5 s), and every
    # other connection of the process stalls for it.
    params = [MultipartParam("f%d" % i, "x" * 100) for i in range(300_000)]
    body, _ = multipart_encode(params, BOUNDARY)
    count = [0]

    async def consume():
        async for block in body:
            count[0] += len(block)

    gap = asyncio.run(_max_loop_gap(consume))
    assert count[0] == len(body)
    assert gap < 0.2, f"the event loop was blocked for {gap:.3f} s by one async for"


def test_a_callback_that_hands_progress_to_the_loop_works_for_a_body_in_memory(tmp_path):
    # A progress callback that passes each count to a coroutine on the loop
    # and waits for it (run_coroutine_threadsafe(...).result()) worked with
    # async for: the callback ran in a worker thread.  It still does for a
    # body with a file, but a body held in memory now calls it on the loop
    # thread itself, so it waits for the loop it blocks: a deadlock, here
    # cut short by the 1 s timeout (TimeoutError out of async for).
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 1000)

    async def upload(params):
        loop = asyncio.get_running_loop()
        seen = []

        async def record(current):
            seen.append(current)

        def cb(param, current, total):
            asyncio.run_coroutine_threadsafe(record(current), loop).result(timeout=1)

        body, _ = multipart_encode(params, BOUNDARY, cb=cb)
        out = b""
        async for block in body:
            out += block
        return out, seen, len(body)

    # With a file: it worked before too.
    out, seen, total = asyncio.run(upload([("a", "1"), MultipartParam.from_file("f", str(path))]))
    assert len(out) == total and seen[-1] == total
    # All in memory: the same callback.
    out, seen, total = asyncio.run(upload([("a", "1"), ("b", "2")]))
    assert len(out) == total and seen[-1] == total


def test_a_reset_from_a_callback_stops_the_walk_of_a_small_file_part(tmp_path):
    # A callback may reset the body it is called from (the body's lock is
    # reentrant for it).  Before 4ee264f the walk stopped at once: the step
    # raised BodyConsumedError and nothing more was called; the file object
    # stayed where reset() put it (the start of the content).  A small file
    # part now goes out whole in the block under way, so the dead walk goes
    # on after the reset: it reads the rest of the part, calls the callback
    # for the parts after it and, last, with (None, total, total) as if the
    # body had gone out, and puts the file object past the content.  A new
    # param made from that object then sends nothing of it.
    path = tmp_path / "a.bin"
    path.write_bytes(b"q" * 3000)
    fileobj = open(path, "rb")
    calls = []
    holder = {}

    def cb(param, current, total):
        calls.append((param.name if param is not None else None, current, total))
        if param is not None and param.name == "file" and current > 500 and "reset" not in holder:
            holder["reset"] = len(calls)
            holder["body"].reset()

    params = [("t", "x"), MultipartParam("file", fileobj=fileobj, filename="a.bin"), ("u", "y"), ("v", "z")]
    body, _ = multipart_encode(params, BOUNDARY, cb=cb)
    holder["body"] = body
    from poster.errors import BodyConsumedError

    with pytest.raises(BodyConsumedError):
        for _ in body:
            pass
    try:
        assert calls[holder["reset"]:] == [], "the callback was called by a walk that was reset"
        assert fileobj.tell() == 0, "reset() put the file object back, then the dead walk moved it"
    finally:
        fileobj.close()
