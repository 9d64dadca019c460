"""How ``async for`` makes a body's blocks: a regular file's content in big
blocks, in a worker thread; a body held in memory on the event loop."""

import asyncio
import io
import threading

import pytest

from poster._body import ASYNC_FILE_BLOCKSIZE
from poster.encode import MultipartParam, multipart_encode
from poster.errors import BoundaryCollisionError

BOUNDARY = "0123456789abcdef"
MiB = 1 << 20


async def blocks_of(body):
    return [block async for block in body]


def test_a_regular_file_comes_in_big_blocks(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (3 * MiB // 256 + 100))
    body, headers = multipart_encode([("a", "b"), MultipartParam.from_file("f", str(path))], BOUNDARY)
    blocks = asyncio.run(blocks_of(body))
    sizes = [len(block) for block in blocks]
    assert sizes[1:4] == [ASYNC_FILE_BLOCKSIZE] * 3
    assert sum(sizes) == len(body) == int(headers["Content-Length"]) == body.tell()
    body.reset()
    assert b"".join(blocks) == b"".join(body)


def test_a_bigger_blocksize_is_kept(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(5 * MiB))
    body, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY, blocksize=4 * MiB)
    sizes = [len(block) for block in asyncio.run(blocks_of(body))]
    assert sizes[1] == 4 * MiB


def test_a_paced_body_and_a_stream_keep_the_blocksize(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(300_000))
    paced, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY, rate=1e12)
    assert max(len(block) for block in asyncio.run(blocks_of(paced))) == 64 * 1024
    stream = MultipartParam("f", fileobj=io.BytesIO(bytes(300_000)), filename="f.bin")
    body, _ = multipart_encode([stream], BOUNDARY)
    assert max(len(block) for block in asyncio.run(blocks_of(body))) == 64 * 1024


def test_a_body_in_memory_is_made_on_the_loop_and_files_and_callbacks_in_a_thread(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    threads = []

    def cb(param, current, total):
        threads.append(threading.current_thread())

    in_memory, _ = multipart_encode([("a", "b"), ("c", "d")], BOUNDARY)
    assert not aiter(in_memory)._in_thread  # nothing to read, nothing to call: on the loop
    blocks = asyncio.run(blocks_of(in_memory))
    in_memory.reset()
    assert blocks == list(in_memory)
    # A callback may block, or wait on the loop: it is called from a worker thread.
    with_cb, _ = multipart_encode([("a", "b"), ("c", "d")], BOUNDARY, cb=cb)
    asyncio.run(blocks_of(with_cb))
    assert threads and threading.main_thread() not in threads
    threads.clear()
    with_file, _ = multipart_encode([("a", "b"), MultipartParam.from_file("f", str(path))], BOUNDARY, cb=cb)
    asyncio.run(blocks_of(with_file))
    assert threads and threading.main_thread() not in threads


def test_an_error_of_a_body_in_memory_ends_its_async_iteration():
    body, _ = multipart_encode([MultipartParam("a", b"x\r\n--" + BOUNDARY.encode())], BOUNDARY)

    async def twice():
        iterator = aiter(body)
        with pytest.raises(BoundaryCollisionError):
            await anext(iterator)
        with pytest.raises(StopAsyncIteration):
            await anext(iterator)

    asyncio.run(twice())
