"""Reads by offset that keep the GIL (``reads_hold_gil``): what a step made
on an event loop reads from the page cache, where letting the GIL go would
have the loop wait for another thread's switch interval to get it back."""

import asyncio
import os
import sys
import threading

import pytest

from poster import _backend
from poster.encode import MultipartParam, multipart_encode
from poster.errors import ContentSizeError, SourceChangedError

DELIMITER = b"--" + b"0123456789abcdef"
PAGE = 4096
#: Where the compiled backend's reads can keep the GIL.
CAN_HOLD = sys.platform.startswith("linux")


def holds(backend):
    """Whether ``reads_hold_gil(True)`` takes effect with this backend here."""
    return CAN_HOLD and backend is _backend.AVAILABLE.get("cython")


class held_reads:
    """Reads by offset in this thread keep the GIL within (restored after)."""

    def __init__(self, impl, hold=True):
        self.impl, self.hold = impl, hold

    def __enter__(self):
        self.was = self.impl.reads_hold_gil(self.hold)

    def __exit__(self, *exc):
        self.impl.reads_hold_gil(self.was)


def content_of(impl, fd, size, blocksize, head=b"", tail=b"", check_growth=True):
    return impl.FileContent(fd, 0, size, blocksize, DELIMITER, check_growth, "part 'f'", head, tail)


def sparse(path, size):
    """A file of ``size`` zero bytes of which no page was ever read: none is in the page cache."""
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def cached(fd, offset, length):
    from poster._sources import page_cached

    return page_cached(fd, offset, length)


def test_the_setting_is_this_threads_and_says_what_it_was(backend):
    assert backend.reads_hold_gil(True) is False
    assert backend.reads_hold_gil(True) is holds(backend)
    seen = []
    other = threading.Thread(target=lambda: seen.append(backend.reads_hold_gil(False)))
    other.start()
    other.join()
    assert seen == [False]  # another thread's reads are its own
    assert backend.reads_hold_gil(False) is holds(backend)
    assert backend.reads_hold_gil(False) is False


@pytest.mark.parametrize("size", [1, PAGE - 1, PAGE, 3 * PAGE + 5, 300_000])
@pytest.mark.parametrize("in_cache", ["all", "none", "first page"])
@pytest.mark.parametrize("blocksize", [PAGE, 1 << 20])
def test_the_blocks_are_the_same_wherever_the_bytes_are(backend, tmp_path, size, in_cache, blocksize):
    data = bytes(range(256)) * (size // 256 + 1)
    path = tmp_path / "f.bin"
    if in_cache == "all":
        path.write_bytes(data[:size])
        expected = data[:size]
    else:
        sparse(path, size)  # zeros, never read
        expected = bytes(size)
    fd = os.open(path, os.O_RDONLY)
    try:
        if in_cache == "first page":
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read ahead
            os.pread(fd, 1, 0)
        for hold in (False, True):
            with held_reads(backend, hold):
                blocks = list(content_of(backend, fd, size, blocksize, b"HEAD", b"TAIL"))
            assert b"".join(blocks) == b"HEAD" + expected + b"TAIL"
            assert len(blocks) == -(-size // blocksize)
    finally:
        os.close(fd)


def test_a_file_that_grew_or_shrank_is_refused_with_the_gil_held(backend, tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (2 * PAGE + 1))
    with open(path, "rb") as f, held_reads(backend):
        grew = content_of(backend, f.fileno(), 2 * PAGE, PAGE)
        with pytest.raises(ContentSizeError, match="grew"):
            list(grew)
        shrank = content_of(backend, f.fileno(), 3 * PAGE, PAGE)
        with pytest.raises(ContentSizeError, match="shrank"):
            list(shrank)
        exact = content_of(backend, f.fileno(), 2 * PAGE + 1, 10 * PAGE)
        assert b"".join(exact) == b"x" * (2 * PAGE + 1)


def test_growth_past_the_cached_pages_is_found_too(backend, tmp_path, no_wait_known):
    # The content's two pages are in the page cache, the byte after them is
    # not: the read with the GIL held gets the content whole but can't tell
    # whether the file goes on, and asks again with a read that may wait.
    path = sparse(tmp_path / "f.bin", 4 * PAGE)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        os.pread(fd, 2 * PAGE, 0)
        if no_wait_known is not None and no_wait_known.cachestat is not None:
            assert cached(fd, 0, 2 * PAGE) and not cached(fd, 2 * PAGE, 1)
        with held_reads(backend):
            with pytest.raises(ContentSizeError, match="grew"):
                list(content_of(backend, fd, 2 * PAGE, 4 * PAGE))
            assert b"".join(content_of(backend, fd, 4 * PAGE, 8 * PAGE)) == bytes(4 * PAGE)
    finally:
        os.close(fd)


def other_thread_steps(impl, tmp_path, hold):
    """How far a thread running Python got while this one read 64 MiB from
    the page cache in 8 reads, with ``reads_hold_gil(hold)``."""
    path = tmp_path / "big.bin"
    if not path.exists():
        path.write_bytes(os.urandom(1 << 20) * 64)
    counter = [0]
    running = threading.Event()
    stop = False

    def count():
        running.set()
        while not stop:
            counter[0] += 1

    interval = sys.getswitchinterval()
    # Long enough that this thread, once it has the GIL, keeps it through
    # the reads unless a read itself lets it go (and then that the other
    # thread, once it has it, keeps it long enough to count).
    sys.setswitchinterval(0.05)
    counting = threading.Thread(target=count)
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            content = content_of(impl, fd, 64 << 20, 8 << 20)
            counting.start()
            running.wait()
            with held_reads(impl, hold):
                before = counter[0]
                blocks = list(content)
                after = counter[0]
        finally:
            os.close(fd)
    finally:
        stop = True
        counting.join()
        sys.setswitchinterval(interval)
    assert len(blocks) == 8 and sum(map(len, blocks)) == 64 << 20
    return after - before


def test_a_read_from_the_page_cache_keeps_the_gil_when_asked(backend, tmp_path):
    released = other_thread_steps(backend, tmp_path, hold=False)
    held = other_thread_steps(backend, tmp_path, hold=True)
    assert released > 1000  # it ran while the read let the GIL go
    if holds(backend):
        assert held * 20 < released
    else:  # os.preadv lets the GIL go whatever is asked
        assert held > 1000


async def iterate(body):
    return [block async for block in body]


def test_an_async_step_made_on_the_loop_gives_the_setting_back(backend, tmp_path, no_wait_known):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 1024)
    body, _ = multipart_encode([("a", "b"), MultipartParam.from_file("f", str(path))], "0123456789abcdef")
    expected = b"".join(body)
    body.reset()
    assert b"".join(asyncio.run(iterate(body))) == expected
    assert backend.reads_hold_gil(False) is False
    changed, _ = multipart_encode([MultipartParam.from_file("f", str(path))], "0123456789abcdef")
    path.write_bytes(b"other")
    with pytest.raises(SourceChangedError):
        asyncio.run(iterate(changed))
    assert backend.reads_hold_gil(False) is False
