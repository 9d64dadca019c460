"""Hostile use of digests, tell() and reset() around a body's making and
its async iteration: each test once showed a bug."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import time

import pytest

from poster.encode import MultipartParam, multipart_encode
from poster.errors import BodyConsumedError

DATA = bytes(range(256)) * 256  # 64 KiB


def paced_body():
    """A body of 4 KiB and a bit that waits about 100 ms before each 1 KiB
    block but its first (the header) and second (10 ms)."""
    return multipart_encode(
        [MultipartParam("f", fileobj=io.BytesIO(DATA[:4096]), filename="f.bin")],
        boundary="B", blocksize=1024, rate=10 * 1024,
    )[0]


def test_tell_does_not_count_a_paced_block_still_waiting_for_its_time():
    """tell() counts what async iteration handed out: a block made but held
    back by rate= (the step cancelled by a timeout while it waits) is not
    out yet.  It was counted before the wait."""

    async def main():
        body = paced_body()
        blocks = body.__aiter__()
        handed_out = len(await blocks.__anext__())
        seen = []
        for _ in range(5):
            try:
                handed_out += len(await asyncio.wait_for(blocks.__anext__(), 0.001))
            except asyncio.TimeoutError:
                seen.append((body.tell(), handed_out))
        return seen

    seen = asyncio.run(main())
    assert seen  # the timeouts came while a block waited
    assert all(told == out for told, out in seen), seen


def test_a_reset_while_a_paced_block_waits_stops_the_iteration():
    """A reset while async iteration waits to hand out a paced block: that
    block belongs to the walk the reset ended, so the step raises
    BodyConsumedError, as every other step after a reset does.  It was
    handed out, and tell() then counted nothing for it."""

    async def main():
        body = paced_body()
        blocks = body.__aiter__()
        first = len(await blocks.__anext__())
        step = asyncio.ensure_future(blocks.__anext__())
        await asyncio.sleep(0.002)  # the next block waits for its time
        assert body.tell() == first
        body.reset()
        with pytest.raises(BodyConsumedError):
            await step
        assert body.tell() == 0
        # The body sends again from the start, whole.
        assert b"".join([block async for block in body]) == b"".join(paced_body())

    asyncio.run(main())


def test_a_reset_from_another_thread_while_a_paced_block_waits_stops_the_loop():
    """The same in a for loop: a reset (another thread) while the loop
    sleeps for rate= before a block stops the loop; the block of the walk
    the reset ended is not yielded, nor counted in tell() after the reset."""
    body = paced_body()
    blocks = iter(body)
    next(blocks)
    timer = threading.Timer(0.003, body.reset)
    timer.start()
    try:
        with pytest.raises(BodyConsumedError):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                next(blocks)
    finally:
        timer.join()
    assert body.tell() == 0


def test_a_digest_set_after_the_body_was_made_is_computed_after_a_reset():
    body, _ = multipart_encode([MultipartParam("a", b"alpha")], "B")
    body.digest = "sha256"
    body.reset()
    b"".join(body)
    assert body.digests == [("a", hashlib.sha256(b"alpha").hexdigest())]
