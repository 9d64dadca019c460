"""How ``async for`` makes a body's blocks: a regular file's content in big
blocks, in a worker thread; a body held in memory, or small files the page
cache holds, on the event loop."""

import asyncio
import concurrent.futures
import io
import os
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
    # delimiter go out together: a 1 MiB upload is one step (on the loop
    # when the file is in the page cache, else in a worker thread) and one
    # write, and the same bytes as a sync iteration.
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


# -- a small file in the page cache: read on the loop --------------------------------


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting the steps sent to it."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.steps = 0

    def submit(self, *args, **kwargs):
        self.steps += 1
        return super().submit(*args, **kwargs)


def iterate_counting(body):
    """The blocks of an async iteration of ``body``, and the steps it sent to a thread."""
    executor = CountingExecutor()

    async def main():
        asyncio.get_running_loop().set_default_executor(executor)
        return await blocks_of(body)

    blocks = asyncio.run(main())
    return blocks, executor.steps


def sparse_file(path, size):
    """A file of ``size`` zero bytes never written nor read: no page of it is in the page cache."""
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


@pytest.fixture(autouse=True)
def known_before(no_wait_known):
    """Every test here starts with what the system tells known (conftest's ``no_wait_known``)."""
    return no_wait_known


def system_tells(path):
    """Whether this system tells that a file at ``path`` reads with no wait
    (openat2 and cachestat, a local file system in /proc/self/mountinfo)."""
    from poster._sources import local_device, no_wait_state

    known = no_wait_state()
    return (known is not None and known.open_cached is not None and known.cachestat is not None
            and local_device(os.stat(path).st_dev))


def can_tell(path):
    """Whether a small file at ``path`` is read on the loop here: the
    compiled backend, and :func:`system_tells`."""
    from poster import _backend

    return _backend.current() == "cython" and system_tells(path)


def test_page_cached_tells_what_a_read_would_find_in_memory(tmp_path, no_wait_known):
    from poster._sources import page_cached

    written = tmp_path / "written.bin"
    written.write_bytes(bytes(range(256)) * 1024)
    sparse = sparse_file(tmp_path / "sparse.bin", 256 * 1024)
    with open(written, "rb") as w, open(sparse, "rb") as s:
        assert page_cached(s.fileno(), 0, 0)  # nothing to read
        assert not page_cached(-1, 0, 10) and not page_cached(w.fileno(), -1, 10)
        if no_wait_known is None or no_wait_known.cachestat is None:  # no cachestat(2): nothing known
            assert not page_cached(w.fileno(), 0, 10)
            return
        assert page_cached(w.fileno(), 0, 256 * 1024)  # just written
        assert page_cached(w.fileno(), 4095, 2)  # two pages
        assert not page_cached(s.fileno(), 0, 256 * 1024)  # never read
        os.pread(s.fileno(), 10, 8192)  # its third page only
        assert page_cached(s.fileno(), 8192, 4096) and page_cached(s.fileno(), 8200, 100)
        assert not page_cached(s.fileno(), 4096, 8192)  # the second page is not
        assert not page_cached(s.fileno(), 0, 256 * 1024)
        assert not page_cached(w.fileno(), 1 << 30, 10)  # past its end


def test_local_device_knows_local_file_systems_from_the_others(tmp_path):
    from poster._sources import LOCAL_FILE_SYSTEMS, local_device

    assert not local_device(os.makedev(4095, 1048575))  # no such device
    if not os.path.exists("/proc/self/mountinfo"):
        assert not local_device(os.stat(tmp_path).st_dev)
        return
    assert not local_device(os.stat("/proc/self").st_dev)  # proc: not a store of files
    kinds = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            major, minor = map(int, line.split()[2].split(":"))
            kinds[os.makedev(major, minor)] = line.split(" - ")[1].split()[0]
    dev = os.stat(tmp_path).st_dev
    assert local_device(dev) == (kinds.get(dev) in LOCAL_FILE_SYSTEMS)


def test_open_cached_opens_only_what_it_finds_with_no_wait(tmp_path, no_wait_known):
    from poster._sources import open_cached

    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    (tmp_path / "link").symlink_to(path)
    fd = open_cached(str(path))
    if no_wait_known is None or no_wait_known.open_cached is None:  # no openat2(2) here
        assert fd == -1
        return
    try:
        assert fd >= 0 and os.read(fd, 10) == b"data"
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)
    assert open_cached(str(tmp_path / "link")) == -1  # through a symlink: not taken
    assert open_cached(str(tmp_path / "missing")) == -1
    assert open_cached(str(tmp_path / "a\0b")) == -1


def test_a_small_file_in_the_page_cache_is_read_on_the_loop(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: one block
    body, headers = multipart_encode([("a", "b"), MultipartParam.from_file("f", str(path))], BOUNDARY)
    expected = b"".join(body)
    body.reset()
    blocks, steps = iterate_counting(body)
    assert b"".join(blocks) == expected and len(blocks) == 1
    assert len(expected) == int(headers["Content-Length"]) == body.tell()
    given = tmp_path / "given.txt"
    given.write_bytes(b"some text\n" * 100)
    with open(given, "rb") as f:
        f.seek(10)
        body, _ = multipart_encode([MultipartParam("g", fileobj=f)], BOUNDARY)
        expected = b"".join(body)
        body.reset()
        blocks, given_steps = iterate_counting(body)
        assert b"".join(blocks) == expected
        assert f.tell() == 1000  # left past its content, as a thread would leave it
    # Where the system can't tell, the file is read in a thread.
    assert (steps, given_steps) == ((0, 0) if can_tell(path) else (1, 1))


def test_a_file_not_in_the_page_cache_is_read_in_a_thread(tmp_path):
    sparse = sparse_file(tmp_path / "sparse.bin", 64 * 1024)
    body, _ = multipart_encode([("a", "b"), MultipartParam.from_file("g", sparse)], BOUNDARY)
    blocks, steps = iterate_counting(body)
    assert steps >= 1
    body.reset()
    assert b"".join(blocks) == b"".join(body)
    assert bytes(64 * 1024) in b"".join(blocks)


def test_a_big_file_two_files_a_symlink_or_a_big_blocksize_keep_the_thread(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"b" * (ASYNC_WHOLE_FILE + 1))
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 5000)
    (tmp_path / "link").symlink_to(small)
    bodies = [
        multipart_encode([MultipartParam.from_file("f", str(big))], BOUNDARY)[0],
        multipart_encode([MultipartParam.from_file(f"f{i}", str(small)) for i in range(2)], BOUNDARY)[0],
        multipart_encode([MultipartParam.from_file("f", str(tmp_path / "link"))], BOUNDARY)[0],
        multipart_encode([MultipartParam.from_file("f", str(small))], BOUNDARY, blocksize=ASYNC_WHOLE_FILE + 1)[0],
    ]
    for body in bodies:
        blocks, steps = iterate_counting(body)
        assert steps >= 1
        body.reset()
        assert b"".join(blocks) == b"".join(body)


def test_callbacks_pacing_and_digests_keep_the_thread(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(b"s" * 5000)
    seen = []
    for options in ({"cb": lambda param, current, total: seen.append(current)}, {"rate": 1e12},
                    {"digest": "sha256"}):
        body, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY, **options)
        blocks, steps = iterate_counting(body)
        assert steps >= 1, options
        body.reset()
        assert b"".join(blocks) == b"".join(body)
    assert seen


def text_then_file(tmp_path, size=300_000):
    """A body of a 100 KB text field (blocks of its own) and a small file."""
    path = tmp_path / "f.bin"
    path.write_bytes(bytes([65]) * size)
    body, _ = multipart_encode([("t", "x" * 100_000), MultipartParam.from_file("f", str(path))], BOUNDARY)
    return body, str(path)


def test_the_loop_runs_between_blocks_made_on_it(tmp_path):
    body, path = text_then_file(tmp_path)
    ticks = []

    async def main():
        stop = False
        executor = CountingExecutor()
        asyncio.get_running_loop().set_default_executor(executor)

        async def ticker():
            while not stop:
                ticks.append(len(ticks))
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        seen = []
        async for block in body:
            seen.append(len(ticks))
        stop = True
        await task
        return seen, executor.steps

    seen, steps = asyncio.run(main())
    assert len(seen) >= 2
    assert all(later > earlier for earlier, later in zip(seen, seen[1:]))  # the ticker ran between blocks
    assert steps == 0 if can_tell(path) else steps >= 1


def test_a_file_changed_at_its_path_is_refused_on_the_loop_too(tmp_path):
    from poster.errors import SourceChangedError

    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    body, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY)
    path.write_bytes(b"b" * 2000)  # cached, small, but not the file measured
    with pytest.raises(SourceChangedError, match="changed from 1000 to 2000"):
        iterate_counting(body)
    gone, _ = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY)
    path.unlink()
    with pytest.raises(SourceChangedError, match="cannot be opened"):
        iterate_counting(gone)


def test_a_pass_of_the_loop_reads_for_a_millisecond_or_so(tmp_path):
    # 64 uploads of 1 MiB starting at once (a read of one takes 50 us at the
    # least): the first steps are made on the loop while they are expected
    # to fit in a millisecond of its pass, the others in threads.
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 4096)
    bodies = [multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY)[0] for _ in range(64)]
    executor = CountingExecutor()

    async def main():
        asyncio.get_running_loop().set_default_executor(executor)
        return await asyncio.gather(*(blocks_of(body) for body in bodies))

    everything = asyncio.run(main())
    assert all(blocks == everything[0] for blocks in everything)
    assert len(everything[0]) == 1 and len(everything[0][0]) == len(bodies[0])
    if can_tell(path):
        assert 0 < executor.steps < 64
    else:
        assert executor.steps == 64


def test_two_iterations_taken_at_once_do_not_share_the_walk(tmp_path):
    # aiter() twice before either starts (two requests made with one body):
    # the first to start sends the whole body, the other is refused; they
    # used to share the walk, each sending part of it with no error.
    from poster.errors import BodyConsumedError

    with_file, _ = text_then_file(tmp_path)
    in_memory, _ = multipart_encode([("t", "x" * 100_000), ("u", "y" * 100_000)], BOUNDARY)
    for body in (with_file, in_memory):
        expected = b"".join(body)
        body.reset()

        async def upload(iterator):
            try:
                return b"".join([block async for block in iterator])
            except BodyConsumedError:
                return None

        async def main():
            return await asyncio.gather(upload(aiter(body)), upload(aiter(body)))

        results = asyncio.run(main())
        assert sorted(results, key=lambda r: r is None) == [expected, None]
        assert body.tell() == len(expected)


class GatedExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, whose steps wait while ``gate`` is clear."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.gate = threading.Event()
        self.gate.set()

    def submit(self, fn, /, *args, **kwargs):
        def gated():
            self.gate.wait(10)
            return fn(*args, **kwargs)

        return super().submit(gated)


def test_a_step_cancelled_in_a_thread_is_kept_for_the_next_call(tmp_path):
    # A body read on the loop whose step went to a thread (the pass's time
    # was spent): a cancel while it ran kept the block, and the next call
    # read past it on the loop, losing it with no error.
    import poster._body

    body, path = text_then_file(tmp_path)
    expected = b"".join(body)
    body.reset()

    async def spend_every_pass():
        while True:
            await asyncio.sleep(0)
            poster._body._loop_reads().spend(1.0, 0.0, 0)  # as other uploads would

    async def main():
        gated = GatedExecutor()
        asyncio.get_running_loop().set_default_executor(gated)
        blocks = aiter(body)
        got = [await anext(blocks)]
        spender = asyncio.ensure_future(spend_every_pass())
        await asyncio.sleep(0)
        gated.gate.clear()  # the step's thread waits until the cancel
        step = asyncio.ensure_future(anext(blocks))
        for _ in range(100):  # a few passes of the loop: the step goes to a thread
            await asyncio.sleep(0)
            if blocks._pending is not None:
                break
        assert blocks._pending is not None and not step.done()
        step.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step
        gated.gate.set()
        spender.cancel()
        await asyncio.sleep(0.05)
        got += [block async for block in blocks]
        return got

    got = asyncio.run(main())
    assert b"".join(got) == expected and body.tell() == len(expected)
    assert body._held is None


def test_what_is_known_is_forgotten_in_a_child_and_learnt_again(tmp_path):
    # After fork(), the parent's mount table descriptor is shared (a poll in
    # one would hide a change from the other) and its thread is gone: the
    # child starts again, and learns again.
    from poster import _sources

    if not hasattr(os, "fork") or _sources.refresh_no_wait() is None:
        assert _sources.no_wait_state() is None or not hasattr(os, "fork")
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest here, only a byte to say what held
        ok = _sources._state.known is None and _sources._state.watch == -1
        ok = ok and _sources.refresh_no_wait() is not None and _sources.no_wait_state() is not None
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert _sources.no_wait_state() is not None  # the parent's is its own still


def test_no_thread_to_be_had_leaves_nothing_known_and_no_error(monkeypatch):
    from poster import _sources

    def refuse(self):
        raise RuntimeError("can't start new thread")

    state = _sources._state
    with state.lock:
        state.known, state.failed_at = None, float("-inf")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert _sources.no_wait_state() is None
    assert not state.refreshing  # not stuck: it may try again later
    monkeypatch.undo()
    assert _sources.refresh_no_wait() is not None or _sources._state.calls is None


def test_a_step_reads_the_descriptor_its_check_opened(tmp_path):
    # The path is looked up once, by the check (with no I/O, no symlink):
    # a path put over between the check and the step's open() is not
    # looked up again (it could lead into a file system that hangs).
    from poster._sources import offered_to_step

    path = tmp_path / "f.bin"
    path.write_bytes(b"measured")
    param = MultipartParam.from_file("f", str(path))
    fd = param._source.checked_descriptor(8)
    if not system_tells(path):
        assert fd == -1
        return
    assert fd >= 0
    (tmp_path / "other.bin").write_bytes(b"put over")
    os.replace(tmp_path / "other.bin", path)
    with offered_to_step(param._source, fd):
        reading = param._source.open(param.label())
    try:
        assert reading.fd == fd and os.pread(reading.fd, 100, 0) == b"measured"
    finally:
        reading.close(None)
    # Not taken by the step (a step that opened no file): closed after it.
    fd = os.open(os.devnull, os.O_RDONLY)
    with offered_to_step(param._source, fd):
        pass
    with pytest.raises(OSError):
        os.fstat(fd)
    # With nothing offered, open() looks the path up, and finds it put over.
    from poster.errors import SourceChangedError

    with pytest.raises(SourceChangedError):
        param._source.open(param.label())


def test_a_new_mount_namespace_makes_the_table_unknown(monkeypatch):
    # After unshare(CLONE_NEWNS) the kept descriptor watches the old
    # namespace's table: the table is taken as unknown until read again.
    from poster import _sources

    known = _sources.refresh_no_wait()
    if known is None:
        assert _sources.no_wait_state() is None
        return
    assert _sources.no_wait_state() is known
    monkeypatch.setattr(_sources, "_mount_namespace", lambda: known.namespace + 1)
    assert _sources.no_wait_state() is None
    refreshed = _sources.refresh_no_wait()
    assert refreshed is not None and refreshed.namespace == known.namespace + 1
    assert _sources._state.namespace == known.namespace + 1  # its descriptor opened anew
