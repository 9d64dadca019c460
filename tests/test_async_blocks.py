"""How ``async for`` makes a body's blocks: a regular file's content in big
blocks, in a worker thread; a body held in memory on the event loop."""

import asyncio
import io
import threading

import pytest

from poster._body import ASYNC_FILE_BLOCKSIZE, ASYNC_WHOLE_FILE
from poster.encode import MultipartParam, multipart_encode
from poster.errors import BoundaryCollisionError

BOUNDARY = "0123456789abcdef"
MiB = 1 << 20


async def blocks_of(body):
    return [block async for block in body]


def head_size(param):
    """The delimiter line and header of ``param``: what its first block starts with."""
    return len(b"--" + BOUNDARY.encode() + b"\r\n") + len(param._headers)


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


def test_a_file_of_at_most_a_mebibyte_is_one_block(tmp_path):
    # Fields, the part's header, the content, its CRLF and the close
    # delimiter go out together: a 1 MiB upload is one step in the worker
    # thread and one write, and the same bytes as a sync iteration.
    path = tmp_path / "one.bin"
    path.write_bytes(bytes(range(256)) * (ASYNC_WHOLE_FILE // 256))
    param = MultipartParam.from_file("f", str(path))
    body, headers = multipart_encode([("a", "b"), param], BOUNDARY)
    blocks = asyncio.run(blocks_of(body))
    close = b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
    assert len(blocks) == 1
    assert blocks[0].endswith(param._headers + path.read_bytes() + close)
    body.reset()
    assert b"".join(body) == blocks[0]
    assert len(blocks[0]) == int(headers["Content-Length"]) == body.tell()


def test_a_file_part_adds_no_block_of_its_own(tmp_path):
    # A byte more than ASYNC_WHOLE_FILE: blocks of ASYNC_FILE_BLOCKSIZE,
    # the header in the first, the CRLF and close delimiter in the last.
    path = tmp_path / "one.bin"
    path.write_bytes(bytes(range(256)) * (ASYNC_WHOLE_FILE // 256) + b"!")
    content = path.read_bytes()
    param = MultipartParam.from_file("f", str(path))
    body, headers = multipart_encode([("a", "b"), param], BOUNDARY)
    blocks = asyncio.run(blocks_of(body))
    close = b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
    assert len(blocks) == 3
    assert blocks[0].endswith(param._headers + content[:ASYNC_FILE_BLOCKSIZE])
    assert blocks[1] == content[ASYNC_FILE_BLOCKSIZE:2 * ASYNC_FILE_BLOCKSIZE]
    assert blocks[2] == b"!" + close
    body.reset()
    assert b"".join(body) == b"".join(blocks)
    assert len(b"".join(blocks)) == int(headers["Content-Length"]) == body.tell()


def test_a_big_head_goes_apart(tmp_path):
    # Text before the file that fills more than half a block is its own
    # block: no block is much more than the blocksize.
    # (A file bigger than SYNC_WHOLE_FILE, which iteration reads whole.)
    path = tmp_path / "one.bin"
    path.write_bytes(bytes(300_000))
    body, _ = multipart_encode([("a", "x" * 40_000), MultipartParam.from_file("f", str(path))], BOUNDARY)
    sizes = [len(block) for block in body]
    assert 40_000 < sizes[0] < 41_000 and sizes[1:5] == [64 * 1024] * 4


def test_a_bigger_blocksize_is_kept(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(5 * MiB))
    param = MultipartParam.from_file("f", str(path))
    body, _ = multipart_encode([param], BOUNDARY, blocksize=4 * MiB)
    sizes = [len(block) for block in asyncio.run(blocks_of(body))]
    assert sizes[0] == head_size(param) + 4 * MiB  # the part's header goes with its first block


def test_a_paced_body_and_a_stream_keep_the_blocksize(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(300_000))
    paced, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY, rate=1e12)
    assert [len(block) for block in asyncio.run(blocks_of(paced))][1:4] == [64 * 1024] * 3
    stream = MultipartParam("f", fileobj=io.BytesIO(bytes(300_000)), filename="f.bin")
    body, _ = multipart_encode([stream], BOUNDARY)
    assert [len(block) for block in asyncio.run(blocks_of(body))][1:4] == [64 * 1024] * 3


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


# -- reading one block ahead ------------------------------------------------------


async def wait_for(condition, seconds=5.0):
    """Poll ``condition`` until it holds or ``seconds`` pass; whether it held."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def three_blocks_file(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (3 * ASYNC_FILE_BLOCKSIZE // 256))
    return str(path)


def test_the_next_block_is_read_while_the_client_sends_this_one(tmp_path):
    body, _ = multipart_encode([MultipartParam.from_file("f", three_blocks_file(tmp_path))], BOUNDARY)

    async def main():
        # The step of the next block is under way, or done, before it is
        # asked for.
        blocks = body.__aiter__()
        handed = 0
        ahead = []
        async for block in blocks:
            handed += len(block)
            if handed < len(body):
                ahead.append(await wait_for(lambda: blocks._pending is not None and blocks._pending.done()))
                assert body.tell() == handed  # what is handed out, not what is read
        return handed, ahead

    handed, ahead = asyncio.run(main())
    assert handed == len(body) and ahead and all(ahead)


def test_no_block_is_read_ahead_for_callbacks_or_pacing(tmp_path):
    path = three_blocks_file(tmp_path)
    seen = []
    with_cb, _ = multipart_encode([MultipartParam.from_file("f", path)], BOUNDARY,
                                  cb=lambda param, current, total: seen.append(current))
    paced, _ = multipart_encode([MultipartParam.from_file("f", path)], BOUNDARY, rate=1e12)

    async def main(body):
        blocks = body.__aiter__()
        handed = 0
        async for block in blocks:
            handed += len(block)
            await asyncio.sleep(0.05)
            assert blocks._pending is None  # nothing made before it is asked for
            assert body.tell() == handed
        return handed

    assert asyncio.run(main(with_cb)) == len(with_cb) == seen[-1]
    assert asyncio.run(main(paced)) == len(paced)


def test_a_block_read_ahead_before_a_reset_is_never_handed_out(tmp_path):
    from poster.errors import BodyConsumedError

    body, _ = multipart_encode([MultipartParam.from_file("f", three_blocks_file(tmp_path))], BOUNDARY)
    expected = b"".join(body)
    body.reset()

    async def main():
        blocks = body.__aiter__()
        [await blocks.__anext__(), await blocks.__anext__()]
        assert await wait_for(lambda: blocks._pending is not None and blocks._pending.done())
        body.reset()
        with pytest.raises(BodyConsumedError):
            await blocks.__anext__()
        return await blocks_of(body)

    assert b"".join(asyncio.run(main())) == expected


def test_a_client_that_stops_early_then_resets_gets_the_whole_body(tmp_path):
    import os

    body, _ = multipart_encode([MultipartParam.from_file("f", three_blocks_file(tmp_path))], BOUNDARY)
    expected = b"".join(body)
    body.reset()
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None

    async def main():
        async for block in body:
            if len(block) == ASYNC_FILE_BLOCKSIZE:
                break  # a block is being read ahead now
        body.reset()  # waits for it
        return await blocks_of(body)

    assert b"".join(asyncio.run(main())) == expected
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) == descriptors


def test_a_collision_read_ahead_is_raised_in_its_turn(tmp_path):
    content = bytearray(bytes(range(1, 256)) * (3 * ASYNC_FILE_BLOCKSIZE // 255))
    at = 2 * ASYNC_FILE_BLOCKSIZE + 10
    content[at:at + 19] = b"\r\n--" + BOUNDARY.encode() + b"\r"
    path = tmp_path / "collides.bin"
    path.write_bytes(bytes(content))
    param = MultipartParam.from_file("f", str(path))
    body, _ = multipart_encode([param], BOUNDARY)

    async def main():
        got = []
        with pytest.raises(BoundaryCollisionError):
            async for block in body:
                got.append(block)
        return got

    got = asyncio.run(main())
    # The header with the first content block; the second holds the start
    # of the delimiter line and is held back with the third.
    assert [len(block) for block in got] == [head_size(param) + ASYNC_FILE_BLOCKSIZE]
    assert b"--" + BOUNDARY.encode() + b"\r" not in b"".join(got)[200:]
