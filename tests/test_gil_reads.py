"""Reads by offset that keep the GIL (``reads_hold_gil``): what a step made
on an event loop reads from the page cache, where letting the GIL go would
have the loop wait for another thread's switch interval to get it back."""

import asyncio
import os
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from poster import _backend
from poster.encode import MultipartParam, multipart_encode
from poster.errors import ContentSizeError, SourceChangedError

DELIMITER = b"--" + b"0123456789abcdef"
PAGE = 4096
#: Where the compiled backend's reads can keep the GIL (Linux, with RWF_NOWAIT).
CAN_HOLD = sys.platform.startswith("linux") and hasattr(os, "RWF_NOWAIT")


def holds(backend):
    """Whether ``reads_hold_gil(True)`` takes effect with this backend here."""
    return CAN_HOLD and backend is _backend.AVAILABLE.get("cython")


def takes_nowait(fd):
    """Whether the file system of ``fd`` reads with RWF_NOWAIT (tmpfs does
    not).  A miss starts the kernel's read ahead: ask before dropping pages."""
    if not hasattr(os, "RWF_NOWAIT"):
        return False
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return True


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


def evicted(path, data, known):
    """A file of ``data`` of which the page cache holds nothing (written,
    synced, then dropped), as the system tells when it can (``known``)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        droppable = takes_nowait(f.fileno())  # not tmpfs, whose cache is its store
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        if data and can_tell(known) and droppable:
            assert not cached(f.fileno(), 0, 1)
    return str(path)


def can_tell(known):
    return known is not None and known.cachestat is not None


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
def test_the_blocks_are_the_same_wherever_the_bytes_are(
    backend, tmp_path, no_wait_known, size, in_cache, blocksize
):
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    fd = -1
    try:
        for hold in (False, True):
            if in_cache == "all":
                path.write_bytes(data)
            else:
                evicted(path, data, no_wait_known)
            fd = os.open(path, os.O_RDONLY)
            if in_cache == "first page":
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read ahead
                os.pread(fd, 1, 0)
                if size > PAGE and can_tell(no_wait_known) and takes_nowait(fd):
                    assert cached(fd, 0, PAGE) and not cached(fd, PAGE, 1)
            with held_reads(backend, hold):
                blocks = list(content_of(backend, fd, size, blocksize, b"HEAD", b"TAIL"))
            os.close(fd)
            fd = -1
            assert b"".join(blocks) == b"HEAD" + data + b"TAIL"
            assert len(blocks) == -(-size // blocksize)
    finally:
        if fd >= 0:
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
    # not: the read with the GIL held gets the content whole, stops there,
    # and the file's size tells that it goes on.
    data = os.urandom(4 * PAGE)
    path = evicted(tmp_path / "f.bin", data, no_wait_known)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        os.pread(fd, 2 * PAGE, 0)
        if can_tell(no_wait_known) and takes_nowait(fd):
            assert cached(fd, 0, 2 * PAGE) and not cached(fd, 2 * PAGE, 1)
        with held_reads(backend):
            with pytest.raises(ContentSizeError, match="grew"):
                list(content_of(backend, fd, 2 * PAGE, 4 * PAGE))
            assert b"".join(content_of(backend, fd, 4 * PAGE, 8 * PAGE)) == data
    finally:
        os.close(fd)


def other_thread_steps(impl, path, hold):
    """How far a thread running Python got while this one read the 64 MiB
    file at ``path`` from the page cache in 8 reads, with ``reads_hold_gil(hold)``."""
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(1 << 20) * 64)
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
                # Each block let go as soon as it came (in C: no Python runs
                # between the reads), so the reader reads the next into the
                # same memory, already faulted in: a read into fresh pages
                # may come back short, and read the rest letting the GIL go.
                sizes = list(map(len, content))
                after = counter[0]
        finally:
            os.close(fd)
    finally:
        stop = True
        counting.join()
        sys.setswitchinterval(interval)
    assert sizes == [8 << 20] * 8
    return after - before


def check_gil_kept(impl, path):
    """The reads of :func:`other_thread_steps` keep the GIL when asked to,
    where they can (:func:`holds_for`), and let it go when not.  Best of
    three tries each way: a read may come back short (a page the kernel
    holds back at that moment) and read the rest letting the GIL go, as it
    should; and the other thread, woken when the GIL is let go, may not
    be scheduled before it is taken back on a loaded machine."""
    released = max(other_thread_steps(impl, path, hold=False) for _ in range(3))
    assert released > 1000  # it ran while the reads let the GIL go
    if holds_for(impl, path):
        held = min(other_thread_steps(impl, path, hold=True) for _ in range(3))
        assert held * 20 < released


def holds_for(impl, path):
    """Whether reads of the file at ``path`` keep the GIL when asked, here
    (not with the twin, whose os.preadv always lets it go, nor on tmpfs)."""
    with open(path, "rb") as f:
        return holds(impl) and takes_nowait(f.fileno())


def test_a_read_from_the_page_cache_keeps_the_gil_when_asked(backend, tmp_path):
    check_gil_kept(backend, tmp_path / "big.bin")


def test_a_file_system_without_rwf_nowait_is_read_as_usual_and_no_other_file_is(backend, tmp_path):
    # tmpfs answers RWF_NOWAIT with EOPNOTSUPP: its file is read the usual
    # way, the GIL let go, and that changes nothing for the files read next.
    shm = tmp_path / "big.bin"
    if os.path.isdir("/dev/shm"):
        shm = Path(tempfile.mkdtemp(dir="/dev/shm")) / "big.bin"
    try:
        other_thread_steps(backend, shm, hold=True)  # read asked to keep the GIL, there
        check_gil_kept(backend, shm)
    finally:
        if shm.exists():
            os.unlink(shm)
        if str(shm.parent).startswith("/dev/shm/"):
            os.rmdir(shm.parent)
    after = tmp_path / "after.bin"
    check_gil_kept(backend, after)


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
