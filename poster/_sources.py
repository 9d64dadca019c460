"""Where a file part's content comes from, and how each body reads it.

A param describes its source once, when it is made; every body that reaches
the part opens a reading of its own (:meth:`open`), reads it, and closes it.
So one param can be in any number of bodies, in any number of threads:

* :class:`PathSource` (``MultipartParam.from_file``): each reading opens the
  path, checks it is still the regular file that was measured (device,
  inode, size), reads it by offset and closes it.
* :class:`DescriptorSource` (a regular file given as a built-in binary file
  object): the param keeps a duplicate of its descriptor; every reading
  reads it by offset (``pread``), which moves no shared position.
* :class:`StreamSource` (any other object with ``read``): it has one
  position, so one reading at a time may hold it; it seeks back to where the
  content starts when it can, and is refused a second time when it cannot.
* :class:`IterableSource` (an iterable of bytes-like chunks): each reading
  iterates it anew; a one-shot iterator (a generator) can be read once.
* :class:`AsyncSource` (an object with ``async def read(n)``, or an async
  iterable of chunks): read on the event loop of the body's ``async for``,
  from the worker thread that makes the body's blocks.

A reading (:class:`Reading`) is what the hot path's ``FileContent`` takes: a
descriptor and an offset, or a ``read(n)`` callable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import errno
import functools
import io
import os
import select
import stat
import threading
import time
import weakref
from typing import Any, Awaitable, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple, Union, final

from poster import _backend
from poster.errors import NotReplayableError, SourceChangedError, SourceInUseError

__all__ = [
    "Reading",
    "PathSource",
    "DescriptorSource",
    "StreamSource",
    "IterableSource",
    "AsyncSource",
    "ChunkReader",
    "source_for",
    "running_loop",
    "readable_regular_descriptor",
    "page_cached",
    "local_device",
    "open_cached",
    "no_wait_state",
    "refresh_no_wait",
    "offered_to_step",
]

Path = Union[str, bytes]


class Reading:
    """One body's reading of a file part: ``fd`` and ``start`` (read by
    offset), or ``read`` (a callable ``read(n)``); :meth:`close` ends it."""

    __slots__ = ("fd", "start", "read", "_close")

    def __init__(
        self,
        fd: int = -1,
        start: int = 0,
        read: Optional[Callable[[int], Any]] = None,
        close: Optional[Callable[[Optional[int]], None]] = None,
    ) -> None:
        self.fd = fd
        self.start = start
        self.read = read
        self._close = close

    @property
    def source(self) -> Any:
        """What ``FileContent`` reads: the descriptor, or the callable."""
        return self.read if self.read is not None else self.fd

    def close(self, end: Optional[int]) -> None:
        """End the reading: ``end`` is the offset past the content once it was
        read whole, None when the reading stopped short."""
        close, self._close = self._close, None
        if close is not None:
            close(end)


def readable_regular_descriptor(fileobj: Any) -> Optional[int]:
    """The descriptor of ``fileobj`` when its bytes can be read from it by offset.

    That is when ``fileobj`` is a readable regular file and an ``io.FileIO``
    or an ``io.BufferedReader`` over one, exactly: a subclass or another raw
    stream may read something other than what its descriptor holds (a tar
    member, a decrypting reader), and an ``io.BufferedRandom`` may hold
    writes that are not in the file yet.
    """
    kind = type(fileobj)
    if kind is not io.FileIO and not (kind is io.BufferedReader and type(fileobj.raw) is io.FileIO):
        return None
    try:
        if not fileobj.readable():
            return None
        fd: int = fileobj.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    return fd


# -- reads that would not wait ------------------------------------------------------
#
# An async iteration reads a small file on its event loop when it reads with
# no wait: on a local file system, its path found by a lookup that needs no
# I/O, and wholly in the page cache.  What the system tells of it (two
# system calls reached through ctypes, and the mount table) is made in a
# thread of its own, never on a loop; the mount table is read again when
# the kernel says it changed (a poll of /proc/self/mountinfo), and nothing
# is known to read with no wait until it is.

#: File systems whose reads of cached pages wait for nothing: no server to
#: ask (NFS, SMB, FUSE and the like revalidate a file, or its pages, with a
#: round trip), nor a daemon.  (Not overlay: cachestat(2) sees no page of
#: its files cached, so a container's own files keep the worker thread.)
LOCAL_FILE_SYSTEMS = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "bcachefs", "jfs", "reiserfs", "nilfs2",
    "tmpfs", "ramfs", "squashfs", "erofs", "iso9660", "udf",
    "vfat", "msdos", "exfat", "ntfs3", "hfsplus",
})
#: After a failed attempt to learn the above, how long until the next (seconds).
NO_WAIT_RETRY = 1.0
#: The system calls' numbers (openat2, cachestat), the same on these machines.
_OPENAT2, _CACHESTAT = 437, 451
_SYSCALL_MACHINES = {"x86_64", "amd64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x"}
#: openat2's resolve flags: fail rather than wait for a lookup's I/O
#: (RESOLVE_CACHED), and follow no symlink (RESOLVE_NO_SYMLINKS: a path
#: put over with a link to another file system is not taken to be local).
_RESOLVE_NO_SYMLINKS, _RESOLVE_CACHED = 0x04, 0x20
_MOUNTINFO = "/proc/self/mountinfo"

Calls = Tuple[Callable[[bytes], int], Callable[[int, int, int], bool]]


class _NoWait:
    """What this system tells of reads that would not wait:
    ``open_cached(path) -> fd or -1`` and ``cachestat(fd, offset, length)
    -> bool`` (None where the system has them not), and the types of the
    file systems mounted, by device number."""

    __slots__ = ("open_cached", "cachestat", "mounts", "namespace")

    def __init__(self, calls: Optional[Calls], mounts: Dict[int, str], namespace: int) -> None:
        self.open_cached: Optional[Callable[[bytes], int]] = None
        self.cachestat: Optional[Callable[[int, int, int], bool]] = None
        if calls is not None:
            self.open_cached, self.cachestat = calls
        self.mounts = mounts
        self.namespace = namespace

    def local(self, dev: int) -> bool:
        """Whether the device ``dev`` holds a file system of :data:`LOCAL_FILE_SYSTEMS`."""
        return self.mounts.get(dev) in LOCAL_FILE_SYSTEMS

    def cached(self, fd: int, offset: int, length: int) -> bool:
        """Whether the page cache holds the ``length`` bytes of ``fd`` from ``offset``."""
        return length <= 0 or (self.cachestat is not None and self.cachestat(fd, offset, length))

    def open(self, path: Path) -> int:
        """``path`` opened with no lookup I/O and through no symlink, or -1."""
        return -1 if self.open_cached is None else self.open_cached(os.fsencode(path))


class _NoWaitState:
    """The :class:`_NoWait` in force (None: nothing known), and how it is
    kept true: a descriptor of the mount table that the kernel marks when
    the table changes, and a generation that each change found moves on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.known: Optional[_NoWait] = None
        self.generation = 0
        self.refreshing = False
        self.failed_at = float("-inf")
        self.watch = -1  # /proc/self/mountinfo, opened before the table is read
        self.namespace = -1  # the mount namespace that ``watch`` and ``known`` are of

    def forget(self) -> None:
        """In a child after fork(): the parent's descriptor is shared (a
        poll in one would hide a change from the other), the parent's
        thread is not there.  Start again."""
        self.lock = threading.Lock()
        if self.watch >= 0:
            try:
                os.close(self.watch)
            except OSError:
                pass
        self.watch = -1
        self.known, self.refreshing, self.generation = None, False, self.generation + 1


_state = _NoWaitState()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_state.forget)


def no_wait_state() -> Optional[_NoWait]:
    """The :class:`_NoWait` in force, or None when nothing is known (not
    yet, or the mount table changed since it was read); then one is made
    in a thread.  Never blocks, never raises."""
    state = _state
    known = state.known
    if known is not None and (_mounts_changed(state.watch) or _mount_namespace() != known.namespace):
        with state.lock:
            state.known = None
            state.generation += 1
        known = None
    if known is None:
        _start_refresh(state)
    return known


def _mounts_changed(watch: int) -> bool:
    """Whether the kernel marked the mount table changed since the last ask."""
    try:
        poller = select.poll()
        poller.register(watch, select.POLLPRI | select.POLLERR)
        return any(events & (select.POLLPRI | select.POLLERR) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True


def _start_refresh(state: _NoWaitState) -> None:
    with state.lock:
        if state.refreshing or time.monotonic() - state.failed_at < NO_WAIT_RETRY:
            return
        state.refreshing = True
    try:
        threading.Thread(target=refresh_no_wait, name="poster-no-wait", daemon=True).start()
    except BaseException:  # no thread to be had (memory, interpreter shutdown): nothing known
        with state.lock:
            state.refreshing, state.failed_at = False, time.monotonic()


def refresh_no_wait() -> Optional[_NoWait]:
    """Make the :class:`_NoWait` in force now, in this thread (which it may
    block); None when it can't be made."""
    state = _state
    try:
        while True:
            with state.lock:
                generation = state.generation
            namespace = _mount_namespace()
            with state.lock:  # one descriptor, whoever refreshes
                if state.watch >= 0 and state.namespace != namespace:
                    os.close(state.watch)  # of another namespace (unshare()): its changes are not ours
                    state.watch = -1
                if state.watch < 0:
                    state.watch = os.open(_MOUNTINFO, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    state.namespace = namespace
                watch = state.watch
            _mounts_changed(watch)  # what the table read next holds is not a change
            known = _NoWait(_SYSTEM_CALLS, _read_mounts(), namespace)
            with state.lock:
                if state.generation == generation:  # else it changed while read: again
                    state.known = known
                    return known
    except Exception:
        with state.lock:
            state.failed_at = time.monotonic()
        return None
    finally:
        with state.lock:
            state.refreshing = False


def page_cached(fd: int, offset: int, length: int) -> bool:
    """Whether the page cache holds every page of the ``length`` bytes of
    the file ``fd`` from ``offset``: whether reading them needs no disk.

    Asked of the kernel with ``cachestat(2)`` (Linux 6.5 and later); False
    wherever that can't be told (another system, an older kernel, before
    :func:`no_wait_state` is first made), and for any error.
    """
    known = no_wait_state() if length > 0 else None
    return length <= 0 or (known is not None and known.cached(fd, offset, length))


def local_device(dev: int) -> bool:
    """Whether the device number ``dev`` (a file's ``st_dev``) is that of a
    file system in :data:`LOCAL_FILE_SYSTEMS`, as ``/proc/self/mountinfo``
    tells (read again once it changed); False where that can't be told."""
    known = no_wait_state()
    return known is not None and known.local(dev)


def open_cached(path: Path) -> int:
    """``path`` opened for reading (never waiting, as :class:`PathSource`
    opens it) when its lookup needs no I/O and follows no symlink; -1 when
    it can't be (or can't be told: no ``openat2(2)`` with RESOLVE_CACHED,
    Linux 5.12 and later)."""
    known = no_wait_state()
    return -1 if known is None else known.open(path)


def _mount_namespace() -> int:
    """The mount namespace this process is in (it changes with unshare()), or -1."""
    try:
        return os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return -1


def _read_mounts() -> Dict[int, str]:
    """The type of each file system mounted, by device number."""
    mounts: Dict[int, str] = {}
    with open(_MOUNTINFO, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if " - " in line and len(fields) > 2 and ":" in fields[2]:
                major, _, minor = fields[2].partition(":")
                kind = line.split(" - ", 1)[1].split()[:1]
                if major.isdigit() and minor.isdigit() and kind:
                    mounts[os.makedev(int(major), int(minor))] = kind[0]
    return mounts


def _system_calls() -> Optional[Calls]:
    """``openat2`` and ``cachestat`` as ``(open_cached, cachestat)``; None
    where the system has either not.  Made once, when the module is
    imported: not in a thread, which a fork() could cut short in the middle
    of an import (or of the loader's lock)."""
    import sys

    if not sys.platform.startswith("linux") or os.uname().machine.lower() not in _SYSCALL_MACHINES:
        return None
    try:
        import ctypes

        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (ImportError, OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long

    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class Stat(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in
                    ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]

    class How(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

    at_cwd = -100  # AT_FDCWD
    page = os.sysconf("SC_PAGE_SIZE")

    def call(*args: Any) -> int:
        result: int = syscall(*args)
        return result

    # A kernel without them answers ENOSYS; one with them EBADF (no such
    # descriptor), and openat2 ENOENT for an empty path.
    c_int, c_void_p, c_size_t, c_uint = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint
    span, answer, how = Range(0, 1), Stat(), How(_OPEN_FLAGS, 0, _RESOLVE_CACHED | _RESOLVE_NO_SYMLINKS)
    if call(ctypes.c_long(_CACHESTAT), c_int(-1), c_void_p(ctypes.addressof(span)),
            c_void_p(ctypes.addressof(answer)), c_uint(0)) == 0 or ctypes.get_errno() != errno.EBADF:
        return None
    if call(ctypes.c_long(_OPENAT2), c_int(at_cwd), ctypes.c_char_p(b""), c_void_p(ctypes.addressof(how)),
            c_size_t(ctypes.sizeof(how))) >= 0 or ctypes.get_errno() != errno.ENOENT:
        return None

    def open_cached(path: bytes) -> int:
        how = How(_OPEN_FLAGS, 0, _RESOLVE_CACHED | _RESOLVE_NO_SYMLINKS)
        if b"\0" in path:
            return -1
        return call(ctypes.c_long(_OPENAT2), c_int(at_cwd), ctypes.c_char_p(path),
                    c_void_p(ctypes.addressof(how)), c_size_t(ctypes.sizeof(how)))

    def cachestat(fd: int, offset: int, length: int) -> bool:
        if fd < 0 or offset < 0 or offset + length > 2**63:
            return False
        span, answer = Range(offset, length), Stat()
        if call(ctypes.c_long(_CACHESTAT), c_int(fd), c_void_p(ctypes.addressof(span)),
                c_void_p(ctypes.addressof(answer)), c_uint(0)) != 0:
            return False
        pages = (offset + length - 1) // page - offset // page + 1
        return bool(answer.nr_cache >= pages)

    return open_cached, cachestat


#: A PathSource and a descriptor of its file that checked_descriptor()
#: opened for the step under way in this context; open() takes it (and
#: leaves -1).
_OFFERED: "contextvars.ContextVar[Optional[List[Any]]]" = contextvars.ContextVar("poster_offered", default=None)


@contextlib.contextmanager
def offered_to_step(source: "PathSource", fd: int) -> Iterator[None]:
    """Offer ``fd`` (``source``'s file, checked) to the step made within;
    closed after it unless the step's ``source.open()`` took it."""
    offer: List[Any] = [source, fd]
    token = _OFFERED.set(offer)
    try:
        yield
    finally:
        _OFFERED.reset(token)
        left: int = offer[1]
        if left >= 0:
            os.close(left)


#: How a file given by its path is opened: never waiting (a FIFO put at
#: its path), never passed on to a child process.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

try:
    _SYSTEM_CALLS = _system_calls()
except Exception:  # whatever the system does not have, it is not asked
    _SYSTEM_CALLS = None


class PathSource:
    """A file given by its path: opened by each reading, checked, closed after."""

    __slots__ = ("path", "identity")

    def __init__(self, path: Path, identity: Tuple[int, int, int]) -> None:
        self.path = path
        self.identity = identity  # (st_dev, st_ino, st_size) when measured

    def open(self, label: str) -> Reading:
        offered = _OFFERED.get()
        if offered is not None and offered[0] is self and offered[1] >= 0:
            # Opened and checked for this step (checked_descriptor()): the
            # path is not looked up again.
            taken: int = offered[1]
            offered[1] = -1
            return Reading(fd=taken, start=0, close=lambda end: os.close(taken))
        try:
            fd = os.open(self.path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError) as exc:
            # Gone from its path.  Other errors (no descriptor left, a mode
            # changed) are the system's, and propagate as they are.
            raise SourceChangedError(
                f"{label}: {os.fsdecode(self.path)!r} cannot be opened any more "
                f"({exc.strerror}); make the param again"
            ) from exc
        try:
            if not _backend.impl.is_same_file(fd, self.identity):
                st = os.fstat(fd)  # what it is now, to say what changed
                raise SourceChangedError(
                    f"{label}: {os.fsdecode(self.path)!r} is no longer the file that "
                    f"was measured when the part was made ({_describe(self.identity, st)}); "
                    "make the param again to send it as it is now"
                )
        except BaseException:
            os.close(fd)
            raise
        return Reading(fd=fd, start=0, close=lambda end: os.close(fd))

    def checked_descriptor(self, size: int) -> int:
        """The file opened when its first ``size`` bytes can be read with no
        wait: it was measured on a local file system, its path is found
        with no I/O and through no symlink, it is still the file measured,
        and the page cache holds them (see :func:`no_wait_state`); else -1.
        Offered to a step (:func:`offered_to_step`), :meth:`open` takes it
        rather than looking the path up again."""
        known = no_wait_state()
        if known is None or not known.local(self.identity[0]):
            return -1
        fd = known.open(self.path)
        if fd >= 0 and not (_backend.impl.is_same_file(fd, self.identity) and known.cached(fd, 0, size)):
            os.close(fd)
            fd = -1
        return fd

    def no_wait(self, size: int) -> Optional[ContextManager[None]]:
        """What a step that reads the file's first ``size`` bytes with no
        wait is made within (its checked descriptor offered to it), or None
        when they can't be read so (:meth:`checked_descriptor`)."""
        fd = self.checked_descriptor(size)
        return None if fd < 0 else offered_to_step(self, fd)

    def reset(self) -> None:
        """Nothing to rewind: every reading opens the file anew."""


def _describe(identity: Tuple[int, int, int], st: os.stat_result) -> str:
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file now"
    if (st.st_dev, st.st_ino) != identity[:2]:
        return "another file was put at that path"
    if st.st_size == identity[2]:  # and back again, since it was checked
        return "its size changed while it was opened"
    return f"its size changed from {identity[2]} to {st.st_size} bytes"


class _Descriptor:
    """A descriptor of poster's own, closed when nothing refers to it any more."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


class DescriptorSource:
    """A regular file given as an open built-in file object.

    The param keeps a duplicate of the object's descriptor, taken when the
    param is made: closing the object afterwards, or the kernel giving its
    number to another file, changes nothing here.  Readings read it by
    offset; once one is through, the object's position is set past the
    content, where reading it would have left it.
    """

    __slots__ = ("fileobj", "start", "_descriptor", "_device")

    def __init__(self, fileobj: Any, fd: int, start: int) -> None:
        self.fileobj = fileobj
        self.start = start
        self._descriptor = _Descriptor(os.dup(fd))
        self._device = os.fstat(self._descriptor.fd).st_dev

    def open(self, label: str) -> Reading:
        return Reading(fd=self._descriptor.fd, start=self.start, close=self._leave_after)

    def cached(self, size: int) -> bool:
        """Whether the ``size`` bytes of the content can be read with no wait
        (:meth:`PathSource.cached`)."""
        known = no_wait_state()
        return known is not None and known.local(self._device) and known.cached(self._descriptor.fd, self.start, size)

    def no_wait(self, size: int) -> Optional[ContextManager[None]]:
        """As :meth:`PathSource.no_wait`: there is no path to look up."""
        return contextlib.nullcontext() if self.cached(size) else None

    def _leave_after(self, end: Optional[int]) -> None:
        if end is not None:
            _seek_quietly(self.fileobj, end)

    def reset(self) -> None:
        """Put the object back where the content starts."""
        _seek_quietly(self.fileobj, self.start)


def _seek_quietly(fileobj: Any, position: int) -> None:
    try:
        fileobj.seek(position)
    except (OSError, ValueError, AttributeError):
        pass  # closed meanwhile: it stays so


class StreamSource:
    """Any other binary object with ``read``: read through the object itself.

    It has one position, so one reading at a time holds it
    (:class:`SourceInUseError` for a second).  A reading starts by seeking
    to where the content started (``start``); without ``start`` (the object
    cannot seek) the content can be read once only (:class:`NotReplayableError`).
    """

    __slots__ = ("fileobj", "start", "_lock", "_holder", "_used")

    def __init__(self, fileobj: Any, start: Optional[int]) -> None:
        self.fileobj = fileobj
        # Only an object that can seek back has a start to go back to.
        self.start = start if callable(getattr(fileobj, "seek", None)) else None
        self._lock = threading.Lock()
        self._holder: Optional[Reading] = None
        self._used = False

    def open(self, label: str) -> Reading:
        reading = Reading()
        with self._lock:
            if self._holder is not None:
                raise SourceInUseError(
                    f"{label}: its file object ({type(self.fileobj).__name__}) is being "
                    "read by another body; a file object without a file descriptor "
                    "can feed one body at a time: give each body its own file object, "
                    "or use MultipartParam.from_file"
                )
            if self.start is None and self._used:
                raise NotReplayableError(
                    f"{label}: its file object ({type(self.fileobj).__name__}) was read "
                    "already and cannot seek back; pass a new file object"
                )
            if self.start is None:
                claim(self.fileobj, label, "file object")
            self._holder = reading
            self._used = True
        try:
            if self.start is not None:
                self.fileobj.seek(self.start)
        except BaseException:
            self._release(reading)
            raise
        reading.start = self.start or 0
        reading.read = functools.partial(_backend.impl.BlockReader().read, self.fileobj)
        reading._close = lambda end: self._release(reading)
        return reading

    def _release(self, reading: Reading) -> None:
        with self._lock:
            if self._holder is reading:
                self._holder = None

    def reset(self) -> None:
        """Put the object back where the content starts; a non-seekable one
        that was read cannot be (``ValueError``)."""
        if self.start is not None:
            with self._lock:  # not under a body that is reading it
                if self._holder is None:
                    self.fileobj.seek(self.start)
            return
        if self._used:
            raise NotReplayableError(
                f"cannot reset a part whose file ({type(self.fileobj).__name__}) "
                "cannot seek back"
            )


def _bytes_of(chunk: Any, label: str) -> bytes:
    """A chunk of an iterable source as ``bytes`` (a copy unless it is one)."""
    if type(chunk) is bytes:
        return chunk
    if not isinstance(chunk, str):
        try:
            with memoryview(chunk) as view:
                return view.tobytes()
        except TypeError:
            pass
    raise TypeError(
        f"{label}: its content source gave a {type(chunk).__name__} chunk; chunks must be "
        "bytes-like (bytes, bytearray, memoryview): encode text first"
    )


#: What a source's next chunk is once it has ended (a ``None`` chunk is no end:
#: it is refused as any chunk that is not bytes-like).
END = object()


class _Blocks:
    """Chunks of any sizes, cut into blocks of the sizes asked for.

    :meth:`take` serves a block from what is left of the last chunk, and
    :meth:`add` takes the next chunk in; the readers below loop over them.
    A chunk is kept as a view, so cutting a big one copies each byte once.
    """

    __slots__ = ("label", "_rest", "_pieces", "_got")

    def __init__(self, label: str) -> None:
        self.label = label
        self._rest = memoryview(b"")
        self._pieces: List[Any] = []
        self._got = 0

    def start(self, size: int) -> Optional[bytes]:
        """Begin a block of ``size`` bytes: the whole block when what is left has it."""
        rest = self._rest
        if len(rest) >= size:
            self._rest = rest[size:]
            return bytes(rest[:size])
        self._pieces = [rest] if len(rest) else []
        self._got = len(rest)
        self._rest = memoryview(b"")
        return None

    def add(self, chunk: Any, size: int) -> Optional[bytes]:
        """Add the next chunk (:data:`END`: the source ended); the block once it is whole."""
        if chunk is END:
            return self._finish()
        data = _bytes_of(chunk, self.label)
        need = size - self._got
        if not self._pieces and len(data) == size:
            return data  # the usual case: a chunk of the block size, as it is
        if len(data) >= need:
            view = memoryview(data)
            self._pieces.append(view[:need])
            self._rest = view[need:]
            self._got = size
            return self._finish()
        if data:
            self._pieces.append(data)
            self._got += len(data)
        return None

    def _finish(self) -> bytes:
        pieces, self._pieces, self._got = self._pieces, [], 0
        return b"".join(pieces)


class ChunkReader:
    """``read(n)`` over an iterator of bytes-like chunks: ``n`` bytes, fewer
    only at its end.  ``label`` names the part in errors."""

    __slots__ = ("_chunks", "_blocks")

    def __init__(self, chunks: Iterator[Any], label: str) -> None:
        self._chunks = chunks
        self._blocks = _Blocks(label)

    def read(self, size: int) -> bytes:
        blocks = self._blocks
        block = blocks.start(size)
        while block is None:
            block = blocks.add(next(self._chunks, END), size)
        return block


class _AsyncChunkReader:
    """:class:`ChunkReader` for an async iterator, or an object with
    ``async def read(n)`` (which may give fewer bytes than asked)."""

    __slots__ = ("_next", "_blocks")

    def __init__(self, next_chunk: Callable[[int], Awaitable[Any]], label: str) -> None:
        self._next = next_chunk
        self._blocks = _Blocks(label)

    async def read(self, size: int) -> bytes:
        blocks = self._blocks
        block = blocks.start(size)
        while block is None:
            block = blocks.add(await self._next(size), size)
        return block


#: One-shot objects (generators, pipes) that a source has begun to read: a
#: second param made of the same object must not send it empty.
_claimed: "weakref.WeakSet[Any]" = weakref.WeakSet()
_claimed_lock = threading.Lock()


def claim(obj: Any, label: str, what: str) -> None:
    """Note that ``obj``, readable once, is being read; refuse it if it was already."""
    with _claimed_lock:
        try:
            if obj in _claimed:
                raise NotReplayableError(
                    f"{label}: its {what} was read already, by another part; it can be "
                    "read once only: give each part a new one"
                )
            _claimed.add(obj)
        except TypeError:  # no weak reference to it: nothing to note
            pass


class _OneShot:
    """The bookkeeping of a source that may be read once only."""

    __slots__ = ("_lock", "_used", "replayable")

    def __init__(self, replayable: bool) -> None:
        self._lock = threading.Lock()
        self._used = False
        self.replayable = replayable

    def take(self, label: str, what: str, obj: Any) -> None:
        with self._lock:
            if self._used and not self.replayable:
                raise NotReplayableError(
                    f"{label}: its {what} was read already and cannot be read again; "
                    "a body holding it cannot be sent twice (pass a list, or a "
                    "new iterator for each body)"
                )
            if not self.replayable:
                claim(obj, label, what)
            self._used = True

    def reset(self, what: str) -> None:
        if self._used and not self.replayable:
            raise NotReplayableError(
                f"cannot reset a part whose {what} was read already; it cannot be replayed"
            )


class IterableSource:
    """An iterable of bytes-like chunks (a list, a generator, any iterator).

    Each reading iterates it from the start when it can be iterated again (a
    list, an object whose ``iter()`` is a new iterator); a one-shot iterator
    feeds one reading, and is :class:`NotReplayableError` after that.
    """

    __slots__ = ("iterable", "_once")

    def __init__(self, iterable: Any) -> None:
        self.iterable = iterable
        self._once = _OneShot(iter(iterable) is not iterable)

    @property
    def replayable(self) -> bool:
        return self._once.replayable

    def open(self, label: str) -> Reading:
        self._once.take(label, "iterator", self.iterable)
        return Reading(read=ChunkReader(iter(self.iterable), label).read)

    def reset(self) -> None:
        self._once.reset("iterator")


#: The event loop of the async iteration making a block in this thread.
_async_state = threading.local()


def running_loop(loop: Optional[asyncio.AbstractEventLoop], lock: Any = None) -> None:
    """Say (in a worker thread) which event loop async sources are read on,
    and the body's lock, held by the thread (None, None: done)."""
    _async_state.loop = loop
    _async_state.lock = lock


def _wait_for_loop(coroutine: Any, loop: asyncio.AbstractEventLoop, label: str) -> Any:
    """Run ``coroutine`` on ``loop`` from this worker thread and wait for it.

    The body's lock is let go meanwhile, so that a ``reset()`` called on the
    loop (after a cancelled step) does not wait on a thread that waits on the
    loop; the step then finds the body reset and stops.  A loop closed
    meanwhile ends the wait (``RuntimeError``) instead of leaving the thread
    waiting for ever.
    """
    lock = getattr(_async_state, "lock", None)
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    if lock is not None:
        lock.release()
    try:
        while True:
            try:
                return future.result(timeout=0.25)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():
                    future.cancel()
                    raise RuntimeError(
                        f"{label}: the event loop closed while its async source was being read"
                    ) from None
    finally:
        if lock is not None:
            lock.acquire()


@final  # a body tells it by its exact class (MultipartBody.__init__)
class AsyncSource:
    """An object with ``async def read(n)``, or an async iterable of chunks.

    It is read on the event loop of the body's ``async for`` (the worker
    thread that makes the blocks waits for each read), so a synchronous
    iteration cannot read it (``TypeError``).  An async iterable whose
    ``__aiter__`` gives a new iterator each time can be read again; others
    feed one reading.
    """

    __slots__ = ("obj", "_once")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        replayable = not callable(getattr(obj, "read", None)) and obj.__aiter__() is not obj
        self._once = _OneShot(replayable)

    def open(self, label: str) -> Reading:
        loop: Optional[asyncio.AbstractEventLoop] = getattr(_async_state, "loop", None)
        if loop is None:
            raise TypeError(
                f"{label}: its content is an async source; send the body with "
                "`async for` (an async client), not a synchronous iteration"
            )
        self._once.take(label, "async source", self.obj)
        obj = self.obj
        if callable(getattr(obj, "read", None)):
            async def next_chunk(size: int) -> Any:
                chunk = await obj.read(size)
                if chunk is None:
                    raise TypeError(f"{label}: its async read() returned None; it must return bytes")
                return _bytes_of(chunk, label) or END  # b"": the end
        else:
            iterator = obj.__aiter__()

            async def next_chunk(size: int) -> Any:
                try:
                    return await iterator.__anext__()
                except StopAsyncIteration:
                    return END
        reader = _AsyncChunkReader(next_chunk, label)

        def read(size: int) -> bytes:
            block: bytes = _wait_for_loop(reader.read(size), loop, label)
            return block

        return Reading(read=read)

    def reset(self) -> None:
        self._once.reset("async source")


Source = Union[PathSource, DescriptorSource, StreamSource, IterableSource, AsyncSource]


def source_for(fileobj: Any, start: Optional[int]) -> Source:
    """The source that reads ``fileobj`` from ``start`` (its position when the param was made)."""
    if start is not None and hasattr(os, "pread"):
        fd = readable_regular_descriptor(fileobj)
        if fd is not None:
            try:
                return DescriptorSource(fileobj, fd, start)
            except OSError:  # out of descriptors: read it through the object
                pass
    return StreamSource(fileobj, start)
