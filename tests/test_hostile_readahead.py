"""Hostile use of async iteration's read-ahead (eb58f2c): once a block is
handed out, the next is read in a worker thread.  Each test once showed a
hole.
"""

import asyncio
import os
import threading
import time

import pytest

from poster._body import ASYNC_FILE_BLOCKSIZE
from poster.encode import MultipartParam, multipart_encode
from poster.errors import NotReplayableError

BOUNDARY = "0123456789abcdef"


def test_a_pipe_read_ahead_does_not_freeze_the_loop_after_the_client_stops():
    # A part read from a pipe (a subprocess's stdout, a socket's makefile):
    # its producer has written 20 000 bytes and keeps the pipe open.  The
    # client sends a block or two, then stops (the server answered early).
    # With read-ahead a worker thread was left blocked in the pipe's read,
    # holding the body's lock: reset() (what a retry does first; here it
    # refuses, the pipe cannot rewind) froze the event loop until the
    # producer wrote again, and asyncio.run() could not return either
    # (3 s here; forever for a producer that waits for the answer).
    r, w = os.pipe()
    producer_done = threading.Event()

    def producer():
        os.write(w, b"a" * 20000)
        producer_done.wait(3)
        os.close(w)

    thread = threading.Thread(target=producer)
    thread.start()
    source = os.fdopen(r, "rb")
    try:
        body, _ = multipart_encode([MultipartParam("f", filename="x", fileobj=source)], BOUNDARY,
                                   blocksize=8192)

        async def main():
            async for block in body:
                if b"aaaa" in block:
                    await asyncio.sleep(0.1)  # the client sends it, then gives up
                    break
            started = time.monotonic()
            with pytest.raises(NotReplayableError):
                body.reset()
            return time.monotonic() - started

        started = time.monotonic()
        frozen = asyncio.run(main())
        ran = time.monotonic() - started
    finally:
        producer_done.set()
        thread.join()
        source.close()
    assert frozen < 0.5, f"reset() froze the event loop for {frozen:.2f} s"
    assert ran < 1.5, f"asyncio.run() took {ran:.2f} s to return"


def test_digests_list_only_parts_whose_last_block_was_handed_out(tmp_path):
    # body.digests lists "each part's content sent so far".  With
    # read-ahead, once the last block of a file was handed out (and while
    # the client still sends it: it may fail, the server may answer early)
    # the worker had gone on already and finished the part's digest: the
    # part was listed as sent.  aiohttp and httpx against a server that
    # reads 4 KiB and resets then always showed both parts.
    path = tmp_path / "one-block.bin"
    path.write_bytes(b"a" * ASYNC_FILE_BLOCKSIZE)
    body, _ = multipart_encode([("note", "hi"), MultipartParam.from_file("f", str(path))], BOUNDARY,
                               digest="sha256")

    async def main():
        seen = []
        async for block in body:
            await asyncio.sleep(0.05)  # the client sends the block
            seen.append(len(body.digests))
        return seen

    # The header block, the file's one block, the close delimiter.
    assert asyncio.run(main()) == [1, 1, 2]


@pytest.mark.parametrize("go_on", ["for", "next"])
def test_a_loop_after_an_async_loop_left_early_skips_no_block(tmp_path, go_on):
    # A loop left early goes on where it stopped, for the next loop: an
    # async for left early, then a plain for (or next()), went on from the
    # walk, which the read-ahead had taken one block further.  The block
    # read ahead was never sent: 512 KiB of the file were missing from the
    # body, with no error, and tell() said the whole body was out.
    from poster.errors import BodyConsumedError

    path = tmp_path / "big.bin"
    path.write_bytes(b"".join(bytes([i]) * ASYNC_FILE_BLOCKSIZE for i in (1, 2, 3)))  # blocks differ
    body, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY)
    expected = b"".join(body)
    body.reset()

    async def first_blocks():
        got = []
        async for block in body:
            got.append(block)
            if len(got) == 2:
                await asyncio.sleep(0.1)  # a block is read ahead meanwhile
                break
        return got

    got = asyncio.run(first_blocks())
    try:
        rest = list(body) if go_on == "for" else [next(body)]
    except BodyConsumedError:
        pass  # refused: it cannot go on without the block read ahead
    else:
        assert expected.startswith(b"".join(got + rest))
    body.reset()
    assert b"".join(body) == expected


def test_tell_counts_only_what_async_iteration_handed_out(tmp_path):
    # tell() is documented as "how many bytes of the body have been handed
    # out since the last reset"; during async iteration it counts the block
    # read ahead as well (a progress bar is 512 KiB ahead of the client).
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(3 * ASYNC_FILE_BLOCKSIZE))
    body, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY)

    async def main():
        seen = []
        handed = 0
        async for block in body:
            handed += len(block)
            await asyncio.sleep(0.05)
            seen.append((handed, body.tell()))
        return seen

    seen = asyncio.run(main())
    assert all(handed == told for handed, told in seen), seen
