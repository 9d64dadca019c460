"""The body: a snapshot of parts, walked in order as it is iterated or sent.

:func:`walk` is the one loop over a body's parts.  Iteration, async iteration
and :meth:`MultipartBody.write_to` all run it; they differ only in what they
do with a file part's content (pass the blocks on, or put them on a socket).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import io
import itertools
import threading
import math
import reprlib
import time
import weakref
from typing import Any, AsyncIterator, Callable, Generator, Iterable, Iterator, List, Optional, Tuple, Union

from poster import _backend
from poster._parts import Boundary, Callback, MultipartParam, Part, TextRun, body_size, check_blocksize, quote_boundary
from poster._digests import DigestSource, Digests, Hashers, check_algorithm, check_order, hashed
from poster._send import SEND_WINDOW, is_plain_socket, sendfile_all
from poster._sources import AsyncSource, DescriptorSource, PathSource, Reading, running_loop
from poster._subtypes import FORM_DATA, check_names, check_subtype, content_type
from poster.errors import BodyConsumedError, BodyFrozenError, BoundaryCollisionError, ContentSizeError

__all__ = ["DEFAULT_BLOCKSIZE", "MultipartStream", "MultipartBody", "part_blocks", "walk"]

#: Block size of :func:`poster.encode.multipart_encode` bodies, in bytes.
DEFAULT_BLOCKSIZE = 64 * 1024

#: Unless a block size is given, iteration (``for``, ``next``) reads a
#: regular file of at most this many bytes into one block, with what goes
#: around it: a 256 KiB upload is one send of the client, not four (each a
#: system call, and on loopback TCP two segments).  With a block size given
#: by the caller (even 64 KiB), or a ``rate``, file content comes in blocks
#: of ``blocksize`` (the first and last of a part may also carry its header,
#: its CRLF and the close delimiter, as they always did).
SYNC_WHOLE_FILE = 256 * 1024

#: What a walk does with a file part's content: given the param, its
#: reading and the hashers to feed (or None), an iterator of what to yield
#: (``bytes`` blocks, or the counts of bytes it put on a socket itself).
#: With ``walk(content_around=True)`` it may also be given ``head`` and
#: ``tail``, bytes to put before and after the content, in its blocks; it
#: then returns the ``FileContent`` itself (the walk holds its last block
#: back with ``until_last()``).
Content = Callable[..., Iterator[Any]]


def file_content(
    param: MultipartParam, reading: Reading, delimiter: bytes, blocksize: int,
    hashers: Optional[Hashers] = None, head: bytes = b"", tail: bytes = b"",
) -> Iterator[bytes]:
    """A file part's content in checked blocks (the hot path's ``FileContent``),
    each fed to ``hashers`` as it comes; the first starts with ``head``, the
    last ends with ``tail``."""
    content: Iterator[bytes] = _backend.impl.FileContent(
        reading.source, reading.start, param.content_size(), blocksize, delimiter,
        param._check_growth, param.label(), head, tail,
    )
    return content if hashers is None else hashed(content, hashers)


def walk(
    parts: List[Any],
    delimiter: bytes,
    blocksize: int,
    content: Content,
    cb: Optional[Callback] = None,
    total: Optional[int] = 0,
    part_callbacks: bool = True,
    close: bool = True,
    digests: Optional[Digests] = None,
    inline: bool = True,
    content_around: bool = False,
) -> Generator[Any, None, None]:
    """The parts in order, calling the callbacks as it goes.

    Yields ``bytes`` to put out: runs of in-memory parts (rendered and
    scanned for the boundary by the hot path in one call, up to about
    ``blocksize``), each file part's header, and (with ``close``) the close
    delimiter.  A file part is opened (its reading) before its header is
    yielded, and its content comes from ``content``, passed on as it comes.
    With ``inline``, a file part of known size that fits whole in the block
    under way (the total stays within ``blocksize``) is read as ``bytes``
    into that block instead, ``content`` unused: a small body is one block.
    With ``content_around``, a file part with nothing to count or hash is
    given what its block holds before the content (``head``, when that is
    at most half a block or the part ends a body that is one block) and
    the CRLF after it (``tail``, with the close delimiter for the last
    part): its blocks carry them, and the part adds no block of its own.

    ``cb(param, current, total)`` counts the whole walk (its params must then
    be :class:`MultipartParam`, not text runs); with ``part_callbacks`` each
    param's own ``cb`` counts its part.  A total not known (None: a part of
    unknown length) is passed as None, until the last call, which passes the
    count at the end.  ``digests`` (then params only, too) hashes the
    parts' content and fills the ``digest_of`` parts.
    """
    delimiter_line = delimiter + b"\r\n"
    close_line = delimiter + b"--\r\n"
    closed = False  # the close delimiter went out with the last part's content
    write_text_pairs = _backend.impl.write_text_pairs

    def notify(param: MultipartParam, part_count: int, part_size: Optional[int], body_count: int) -> None:
        """The callbacks: ``param``'s part at ``part_count`` of ``part_size``, the body at ``body_count``."""
        if part_callbacks and param.cb:
            param.cb(param, part_count, part_size)
        if cb:
            cb(param, body_count, total)

    current = 0
    pending: List[bytes] = []
    pending_size = 0
    index = 0
    while index < len(parts):
        param = parts[index]
        if isinstance(param, TextRun):  # measured and scanned already
            if pending and pending_size + param.length > blocksize:
                yield b"".join(pending)
                pending.clear()
                pending_size = 0
            pending.append(write_text_pairs(param.pairs, delimiter, param.html5, param.length))
            pending_size += param.length
            current += param.length
            index += 1
        elif param._value is not None:
            rendered, stop, collision = _backend.impl.render_value_parts(
                parts, index, delimiter, blocksize - pending_size
            )
            pending.append(rendered)
            pending_size += len(rendered)
            for param in itertools.islice(parts, index, stop):
                size = param.size(len(delimiter))
                current += size
                if digests is not None:
                    digests.finish_value(param, param._value)
                notify(param, size, size, current)
            if collision:
                raise BoundaryCollisionError(
                    f"boundary found in the value of {parts[stop].label()}; use another boundary"
                )
            index = stop
        elif isinstance(param._source, DigestSource):
            # The digest of a part sent before it, known now: a value part.
            if digests is None:
                raise ValueError(
                    f"{param.label()} is the digest of another part: it can only be sent "
                    "in a body that holds that part before it"
                )
            value = digests.value_of(param._source, param.label())
            digests.finish_value(param, value)
            pending += (delimiter_line, param._headers, value, b"\r\n")
            size = param.size(len(delimiter))
            pending_size += size
            current += size
            notify(param, size, size, current)
            index += 1
        else:
            index += 1
            param.check_sendable()
            part_total = param.size(len(delimiter))
            counting = cb or (part_callbacks and param.cb) or part_total is None
            reading = param._source.open(param.label())  # before its header leaves
            hashers = digests.hashers_for(param) if digests is not None else None
            # A part that fits in the block under way goes out in it whole:
            # a small body is one block (one send), not header, content and
            # close delimiter apart.  Its content is read as bytes then.
            # Not with callbacks: one may reset the body, which must stop the
            # walk at the next block, as it does for a part sent apart.
            whole = (
                inline and not counting and part_total is not None
                and pending_size + part_total <= blocksize
            )
            # With ``around``, what comes before the content in its block
            # (up to half a block) and the CRLF after it (with the close
            # delimiter, for the last part) go into the content's own first
            # and last blocks: a file part is no more blocks than its
            # content.  Not for a small part that other parts follow in its
            # block: they all go out in one.
            last = close and index == len(parts)
            before = pending_size + len(delimiter_line) + len(param._headers)
            around = content_around and not counting and hashers is None and (
                (last and whole) or (not whole and before <= blocksize // 2)
            )
            end = None
            last_block: Optional[bytes] = None
            try:
                pending += (delimiter_line, param._headers)
                part_current = len(delimiter_line) + len(param._headers)
                current += part_current
                if counting:
                    notify(param, part_current, part_total, current)
                items: Iterator[Any]
                if around:
                    closed = last
                    before_content = b"".join(pending)
                    after_content = b"\r\n" + close_line if last else b"\r\n"
                    items = content(param, reading, None, before_content, after_content)
                    pending.clear()
                    pending_size = 0
                elif whole:
                    items = file_content(param, reading, delimiter, blocksize, hashers)
                    pending_size += part_total
                else:
                    yield b"".join(pending)
                    pending.clear()
                    items = content(param, reading, hashers)
                    pending_size = 0
                head = part_current
                if not counting:  # size known, nothing to count: pass the content on as it comes
                    if around:
                        # The block that ends the part leaves once its reading is
                        # closed: a client that stops at the body's last byte
                        # leaves no file open (nor a file object where it was).
                        blocks: Any = items  # the FileContent itself: nothing hashes it
                        yield from blocks.until_last()
                        last_block = blocks.last
                    elif whole:
                        pending += items
                    else:
                        yield from items
                    part_current += param._filesize
                    current += param._filesize
                else:
                    for item in items:  # never a part sent whole: see above
                        count = item if type(item) is int else len(item)
                        part_current += count
                        current += count
                        notify(param, part_current, part_total, current)
                        yield item
                        del item  # not held while the next is read
                end = reading.start + part_current - head
            finally:
                reading.close(end)
            if last_block is not None:
                yield last_block
                last_block = None
            if digests is not None:
                digests.finish(param, hashers)
            if not around:
                pending.append(b"\r\n")
                if not whole:
                    pending_size = 2
            current += 2
            if part_callbacks and param.cb:
                param.cb(param, part_current + 2, part_current + 2)
            if around or not whole:
                continue
        if pending_size >= blocksize:
            yield b"".join(pending)
            pending.clear()
            pending_size = 0
    if close:
        if not closed:
            pending.append(close_line)
        current += len(close_line)
        if cb:
            cb(None, current, current if total is None else total)
    if pending:
        yield b"".join(pending)


def part_blocks(param: MultipartParam, delimiter: bytes, blocksize: int, callbacks: bool) -> Iterator[bytes]:
    """One param as ``bytes`` blocks: header, content, CRLF (``MultipartParam.iter_encode``).

    With ``callbacks``, the param's own ``cb`` counts the part.
    """
    def content(param: MultipartParam, reading: Reading, hashers: Optional[Hashers]) -> Iterator[bytes]:
        return file_content(param, reading, delimiter, blocksize, hashers)

    return walk([param], delimiter, blocksize, content, part_callbacks=callbacks, close=False, inline=False)


def check_rate(rate: Any) -> Optional[float]:
    """``rate`` as a float of at least 1 byte a second (None: no limit)."""
    if rate is None:
        return None
    try:
        ok = not isinstance(rate, bool) and isinstance(rate, (int, float)) and 1 <= float(rate) < math.inf
    except OverflowError:
        ok = False
    if not ok:
        raise ValueError(
            f"rate must be a number of bytes per second, at least 1 and finite, not {rate!r}"
        )
    return float(rate)


class Pacer:
    """Keeps bytes handed out within ``rate`` a second from its start, never
    more than ``allowance`` bytes ahead."""

    def __init__(self, rate: float, allowance: int) -> None:
        self.rate = rate
        self.allowance = allowance
        self.start = time.monotonic()
        self.count = 0

    def take(self, count: int) -> float:
        """Count ``count`` more bytes; the seconds to wait before they go."""
        self.count += count
        due = self.start + (self.count - self.allowance) / self.rate
        return max(0.0, due - time.monotonic())


class _Params(list):  # type: ignore[type-arg]
    """A body's params: a list that refuses changes (the body is a snapshot)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise BodyFrozenError(
            "a body is a snapshot of its params, measured when it was encoded; "
            "changing body.params cannot change what it sends: encode the new "
            "list with multipart_encode()"
        )

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


class MultipartStream:
    """A multipart body, streamed: what :func:`multipart_encode` returns.

    A body whose length is known is a :class:`MultipartBody`, which adds
    ``len(body)``, the ``Content-Length``.  A body holding a part of unknown
    length (a pipe, a generator) is a plain :class:`MultipartStream`: it has
    no ``len()``, ``total`` is None, and clients send it with
    ``Transfer-Encoding: chunked``.

    Iterate it for ``bytes`` blocks (``b"".join(body)`` is the whole body),
    and ``async for`` reads files in a worker thread (and async sources on
    the event loop; a body holding one can only be sent with ``async for``),
    a regular file in blocks of at least 512 KiB (one block for a file of
    at most 1 MiB) unless ``rate`` paces it;
    a body held in memory and without callbacks is made on the event loop,
    a block at a time, and files are read one block ahead of the client.
    ``reset()`` (or ``seek(0)``) rewinds every part so
    the body can be sent again; ``tell()`` counts the bytes out so far,
    which is how urllib3's and requests' retries and redirects rewind it.  Iterated
    again after it ended, without a reset, it raises
    :class:`~poster.errors.BodyConsumedError`.

    A body is a snapshot of its parts taken when it is made: params cannot
    change, and ``body.params`` cannot be changed.  ``boundary`` is checked
    and quoted as :func:`multipart_encode` does it (``body.boundary`` is its
    spelling on the wire).

    ``cb(param, current, total)`` is called as blocks are produced, with the
    body's bytes so far and its total (None while it is not known); last with
    ``(None, total, total)``.

    ``subtype`` (``"form-data"``, ``"related"``, ``"mixed"``, any RFC 7230
    token; lowercased) and, for ``related`` only, ``type`` and ``start``
    (RFC 2387) make ``body.content_type``, the ``Content-Type`` header to
    send it with; ``body.subtype`` is the subtype.  A form-data body refuses
    parts without a name.

    ``digest`` (a ``hashlib`` algorithm name) hashes every part's content as
    it is produced or sent: once the body is through, :attr:`digests` lists
    ``(name, hexdigest)`` in part order.  ``rate`` (bytes per second) paces
    iteration, async iteration and :meth:`write_to`: they never run ahead of
    it by more than one block, and wait by sleeping.
    """

    def __init__(
        self,
        params: Iterable[Part],
        boundary: Boundary,
        cb: Optional[Callback] = None,
        blocksize: Optional[int] = None,
        *,
        subtype: str = FORM_DATA,
        type: Optional[str] = None,
        start: Optional[str] = None,
        digest: Optional[str] = None,
        rate: Optional[float] = None,
    ) -> None:
        # No block size given: DEFAULT_BLOCKSIZE, and small files whole.
        self._whole_file = SYNC_WHOLE_FILE if blocksize is None else 0
        if blocksize is None:
            blocksize = DEFAULT_BLOCKSIZE
        check_blocksize(blocksize)
        if digest is not None:
            check_algorithm(digest)
        self.rate = check_rate(rate)
        self.digest = digest
        boundary = quote_boundary(boundary)
        self.subtype = check_subtype(subtype)
        self.content_type = content_type(boundary, self.subtype, type, start)
        # What is encoded: params, and (from multipart_encode) runs of text
        # fields, which become params only when ``params`` is read.
        self._parts: List[Any] = list(params)
        check_names(self._parts, self.subtype)
        self._params: Optional[_Params] = None
        self.boundary = boundary
        self.cb = cb
        self.blocksize = blocksize
        self._delimiter = b"--" + boundary.encode("ascii")
        try:
            self.total = body_size(self._parts, self._delimiter)
            # The classes of the parts' sources (NoneType for a value or a
            # text run); AsyncSource and DigestSource are final.
            kinds = {part._source.__class__ for part in self._parts}
        except (AttributeError, TypeError):
            _check_parts(self._parts)  # a TypeError that says what is wrong, if that is it
            raise
        self._needs_async = AsyncSource in kinds
        # Parts that digest_of parts hash, whatever ``digest`` says.
        self._digest_of = DigestSource in kinds
        if self._digest_of:
            check_order(self._parts)
        self._digests = self._new_digests()
        self._pacer: Optional[Pacer] = None
        if self.total is None and self.__class__ is MultipartBody:
            # No length to tell: it must not look like a body of some length.
            self.__class__ = MultipartStream  # type: ignore[assignment]
        self._blocks: Optional[Generator[Any, None, None]] = None
        # The walk of a write_to() under way (never handed to an iteration).
        self._writing: Optional[Generator[Any, None, None]] = None
        self._sent = 0
        self._ended = False
        # Set by a reset that stopped an iteration under way.
        self._interrupted = False
        # The walk of which an async iteration holds a block it made but has
        # not handed out (read ahead, or kept from a cancelled step): going
        # on with that walk in another iteration would skip the block.
        self._held: Optional[Generator[Any, None, None]] = None
        # Held while a block is made (in a worker thread for async
        # iteration), so that a reset waits for it.
        # (Reentrant: a callback may reset the body it is called from.)
        self._lock = threading.RLock()

    @property
    def params(self) -> List[MultipartParam]:
        """The parts, as :class:`MultipartParam` objects (a list that cannot be changed).

        Text fields that :func:`multipart_encode` got as pairs are made into
        params on first access; they give the same bytes.
        """
        if self._params is None:
            if any(isinstance(part, TextRun) for part in self._parts):
                self._parts = [
                    param
                    for part in self._parts
                    for param in (part.to_params() if isinstance(part, TextRun) else (part,))
                ]
            self._params = _Params(self._parts)
        return self._params

    @params.setter
    def params(self, params: Any) -> None:
        _Params._refuse(_Params())

    # -- position ----------------------------------------------------------------

    def tell(self) -> int:
        """How many bytes of the body have been handed out since the last reset."""
        return self._sent

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """``seek(0)`` rewinds the body, as :meth:`reset`; any other target is
        ``io.UnsupportedOperation``."""
        if offset != 0 or whence != io.SEEK_SET:
            raise io.UnsupportedOperation(
                f"a poster body can only seek to 0 (a rewind), not to {offset} from {whence}"
            )
        self.reset()
        return 0

    def reset(self) -> None:
        """Rewind every part; the next iteration yields the whole body again.

        An iteration under way when the body is reset stops: its next step
        raises :class:`~poster.errors.BodyConsumedError` instead of mixing
        two walks.  A block still being read in a worker thread (an async
        step that was cancelled) is waited for first, but for one waiting
        on an async source's read: that step stops when the read is done.  ``ValueError``
        (:class:`~poster.errors.NotReplayableError`) when a part's file
        cannot seek back and was read.
        """
        with self._lock:
            walks = (self._blocks, self._writing)
            self._blocks = self._writing = None
            for blocks in walks:
                if blocks is not None:
                    self._interrupted = True
                    try:
                        blocks.close()
                    except ValueError:
                        pass  # reset by a callback of this very walk: its step stops it
            for part in self._parts:
                if isinstance(part, MultipartParam) and part._source is not None:
                    part.reset()
            self._sent = 0
            self._ended = False
            self._held = None
            self._digests = self._new_digests()
            self._pacer = None

    @property
    def digests(self) -> List[Tuple[Optional[str], str]]:
        """``(name, hexdigest)`` of each part's content sent so far, in part
        order (with ``digest=``; empty otherwise); a reset clears it."""
        return list(self._digests.results) if self._digests is not None else []

    def _new_digests(self) -> Optional[Digests]:
        """The digests of a new walk; None when there is nothing to hash."""
        if self.digest is None and not self._digest_of:
            return None
        return Digests(self.digest, self._parts)

    def _walk_parts(self) -> List[Any]:
        """What a walk goes over: params when a callback or a digest needs them."""
        return self.params if self.cb or self._digests is not None else self._parts

    def _pace(self, count: int) -> float:
        """Seconds to wait before handing out ``count`` more bytes (``rate``)."""
        if self.rate is None:
            return 0.0
        if self._pacer is None:
            self._pacer = Pacer(self.rate, self.blocksize)
        return self._pacer.take(count)

    # -- iteration ---------------------------------------------------------------

    def _consumed_error(self) -> BodyConsumedError:
        if self._interrupted:
            return BodyConsumedError(
                "this body was reset while it was being iterated; start a new "
                "iteration (for ..., iter(), async for) to send it from the start"
            )
        return BodyConsumedError(
            "this body was iterated or sent already (to its end, or until an "
            "error); call reset() (or seek(0)) to send it again"
        )

    def _check_sync(self) -> None:
        if self._needs_async:
            raise TypeError(
                "this body holds a part read from an async source; send it with "
                "`async for` (an async client such as httpx.AsyncClient or aiohttp)"
            )

    def _running(self, file_blocksize: int = 0, whole_file: Optional[int] = None) -> Generator[Any, None, None]:
        """The walk under way, or a new one for a body that is fresh (see
        :meth:`_generate`: ``file_blocksize`` defaults to ``blocksize``, and
        ``whole_file`` to what iteration takes, :meth:`_sync_whole_file`)."""
        if self._blocks is None:
            if self._ended or self._sent or self._interrupted:
                raise self._consumed_error()
            if whole_file is None:
                whole_file = self._sync_whole_file()
            self._blocks = self._generate(file_blocksize or self.blocksize, whole_file)
        elif self._held is self._blocks:
            raise BodyConsumedError(
                "an async iteration of this body holds a block it made ahead, not "
                "handed out yet; go on with that iteration, or call reset() (or "
                "seek(0)) to send the body from the start"
            )
        return self._blocks

    def _sync_whole_file(self) -> int:
        """The largest regular file that iteration reads into one block:
        :data:`SYNC_WHOLE_FILE` when no block size was given and nothing
        paces the body, else 0 (every file in blocks of ``blocksize``)."""
        return self._whole_file if self.rate is None else 0

    def __iter__(self) -> Iterator[bytes]:
        self._check_sync()
        if self._blocks is None and (self._ended or self._sent):
            raise self._consumed_error()
        self._interrupted = False  # a new loop: a reset before it is its start
        return self._iterate()

    def _iterate(self) -> Iterator[bytes]:
        """A loop over the body (what ``for`` gets): the walk's blocks, counted.

        A generator of its own rather than ``__next__`` calls: a big file is
        thousands of blocks, and every Python call a block costs is time the
        GIL is held (two threads uploading at once feel it most).
        """
        with self._lock:
            blocks = self._running()
        try:
            for block in blocks:
                if self._blocks is not blocks:  # reset since this loop began
                    raise self._consumed_error()
                if self.rate is not None:
                    self._count_when_due(blocks, block)
                else:
                    self._sent += len(block)
                yield block
                # Not held while the next block is made: a consumer that let
                # go of this one leaves one block alive, not two (and the
                # compiled backend can fill this very one again).
                del block
        except GeneratorExit:
            raise  # a loop left early: the walk stays where it is, for the next
        except BaseException:
            if self._blocks is blocks:
                self._blocks = None
                self._ended = True
            raise
        if self._blocks is blocks:
            self._blocks = None
            self._ended = True
        elif self._interrupted:
            raise self._consumed_error()

    def __next__(self) -> bytes:
        self._check_sync()
        with self._lock:
            blocks = self._running()
            block = self._step(blocks, count=self.rate is None)
        if self.rate is not None:
            self._count_when_due(blocks, block)
        return block

    next = __next__  # poster 0.8.1's spelling

    def _count_when_due(self, blocks: Generator[Any, None, None], block: bytes) -> None:
        """Wait until ``block`` is due (``rate``), then count it in :meth:`tell`;
        a reset while it waited ended the walk ``blocks``, and this iteration."""
        time.sleep(self._pace(len(block)))
        with self._lock:
            if self._blocks is not blocks:
                raise self._consumed_error()
            self._sent += len(block)

    def _step(self, blocks: Generator[Any, None, None], count: bool = True) -> bytes:
        """The next block of the walk ``blocks`` (the lock held), counted in
        :meth:`tell` unless ``count`` is false (async iteration counts a
        block when it hands it out); the walk is over, whatever stopped it,
        when it raises."""
        if self._blocks is not blocks:  # reset since this iteration began
            raise self._consumed_error()
        try:
            block: bytes = next(blocks)
        except BaseException:
            if self._blocks is blocks:
                self._blocks = None
                self._ended = True
            blocks.close()
            raise
        if self._blocks is not blocks:  # a callback reset the body meanwhile
            blocks.close()
            raise self._consumed_error()
        if count:
            self._sent += len(block)
        return block

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._blocks is not None or self._ended or self._sent:
            raise self._consumed_error()
        self._interrupted = False
        return _AsyncBlocks(self)

    def _generate(self, file_blocksize: int, whole_file: int = 0) -> Generator[Any, None, None]:
        """The body's blocks, for iteration; a regular file's content (read
        by offset) in blocks of ``file_blocksize``, or in one block when it
        is at most ``whole_file`` bytes."""
        delimiter, blocksize = self._delimiter, self.blocksize

        def content(
            param: MultipartParam, reading: Reading, hashers: Optional[Hashers],
            head: bytes = b"", tail: bytes = b"",
        ) -> Iterator[bytes]:
            if reading.read is not None:
                size = blocksize
            elif param._filesize is not None and param._filesize <= whole_file:
                size = max(file_blocksize, param._filesize)
            else:
                size = file_blocksize
            return file_content(param, reading, delimiter, size, hashers, head, tail)

        return walk(self._walk_parts(), delimiter, blocksize, content, self.cb, self.total,
                    digests=self._digests, content_around=True)

    # -- sending on a socket -------------------------------------------------------

    def write_to(self, sock: Any, *, sendfile: bool = False, chunked: bool = False) -> int:
        """Send the whole body on ``sock``, a connected socket; return its length.

        The bytes sent are exactly ``b"".join(body)``, and the same checks
        apply: every part is scanned for the boundary before the block that
        holds a collision leaves, a file that shrank or grew raises
        :class:`~poster.errors.ContentSizeError` before the body is complete,
        and the callbacks are called as the bytes go out.  File content moves
        in blocks of 256 KiB, each read once:

        * by default, each block goes out through ``sock.sendall`` once it
          was scanned: the bytes sent are the very bytes scanned, whatever
          happens to the file meanwhile;
        * with ``sendfile`` true, over a plain TCP socket and from a regular
          file, each block is read to scan it and then sent with
          ``os.sendfile`` (zero-copy, straight from the page cache: one copy
          fewer, at the price of a second read of the page cache, which on
          loopback TCP made it the slower of the two).  A file that shrinks
          meanwhile is caught; one overwritten in place between the scan of
          a block and its send sends the new bytes, which were not scanned.

        With ``chunked`` the body goes out in HTTP/1.1 chunked transfer
        coding, chunks of up to ``blocksize`` bytes (small pieces are put
        together, a file range is one chunk, sent with ``os.sendfile`` with
        ``sendfile`` true), then the last chunk; this is how a body of
        unknown length (``total`` None) is sent.

        ``sock`` may be anything with ``sendall``; ``os.sendfile`` is used only
        for a ``socket.socket`` that is not an ``ssl.SSLSocket``.  Errors of
        the socket (reset, timeout) propagate; the body is then partly sent.

        The body must be fresh: once iterated or sent, call :meth:`reset`
        before sending it again (:class:`~poster.errors.BodyConsumedError`
        otherwise).  After the call it counts as ended, as after iterating it.
        """
        self._check_sync()
        with self._lock:  # two sends of one body at once: one of them is refused
            if self._blocks is not None or self._writing is not None or self._ended or self._sent:
                raise self._consumed_error()
            self._interrupted = False
            self._ended = True  # whatever happens, a second send needs a reset
        use_sendfile = sendfile and is_plain_socket(sock)
        delimiter = self._delimiter
        # Paced or chunked, a body goes out in blocks of its own size.
        window = self.blocksize if chunked or self.rate is not None else SEND_WINDOW
        out = _Chunks(sock, self.blocksize) if chunked else None
        send = sock.sendall if out is None else out.write

        def content(param: MultipartParam, reading: Reading, hashers: Optional[Hashers]) -> Iterator[int]:
            fd = reading.fd if use_sendfile else -1
            offset = reading.start
            for block in file_content(param, reading, delimiter, window, hashers):
                count = len(block)
                if self.rate is not None:
                    time.sleep(self._pace(count))
                    self._check_writing(walker)  # reset while it waited: not sent
                if fd < 0:
                    send(block)
                else:
                    if out is not None:
                        out.start_range(count)
                    if not sendfile_all(sock, fd, offset, count):
                        raise ContentSizeError(
                            f"{param.label()}: the file was cut short while it was sent; "
                            f"fewer than the {param.content_size()} bytes announced are left"
                        )
                del block  # sent: not held while the next is read
                offset += count
                yield count

        # A reset (from a callback, or another thread) ends the walk under
        # way, as it ends an iteration's: nothing more goes out, and the
        # send stops with BodyConsumedError rather than going on with a
        # body that starts again from nothing.  (Once every byte went out,
        # a reset only leaves the body fresh.)
        walker = walk(self._walk_parts(), delimiter, window, content, self.cb, self.total,
                      digests=self._digests)
        self._writing = walker
        sent = 0  # the bytes this call put on the socket
        try:
            for item in walker:
                self._check_writing(walker)  # reset by a callback: not sent
                if type(item) is int:  # file content, sent already
                    count = item
                else:
                    count = len(item)
                    if self.rate is not None:
                        time.sleep(self._pace(count))
                        self._check_writing(walker)
                    send(item)
                sent += count
                with self._lock:  # a reset meanwhile zeroed the count: it stays so
                    if self._writing is walker:
                        self._sent += count
            if self._writing is not walker and (self.total is None or sent != self.total):
                raise self._reset_while_sent()  # the walk was closed before its end
            if out is not None:
                out.close()
        except BaseException:
            # Its readings end now, not once the caller lets go of the error
            # (a retry would find a stream still held by this send).
            try:
                walker.close()
            except Exception:
                pass  # the error that stopped the send is the one to report
            raise
        finally:
            with self._lock:
                if self._writing is walker:
                    self._writing = None
        return sent

    def _check_writing(self, walker: Generator[Any, None, None]) -> None:
        """BodyConsumedError when a reset ended the write_to() walk ``walker``."""
        if self._writing is not walker:
            raise self._reset_while_sent()

    def _reset_while_sent(self) -> BodyConsumedError:
        return BodyConsumedError(
            "this body was reset while write_to() was sending it: the request is "
            "incomplete; send it again from the start on a new connection"
        )


class _Chunks:
    """Writes what it is given to ``sock`` as HTTP/1.1 chunks of up to ``size`` bytes.

    Small pieces wait to be sent together; a piece of ``size`` bytes or more
    is a chunk of its own; :meth:`start_range` begins a chunk whose data the
    caller puts on the socket itself (``os.sendfile``).  Each chunk's closing
    CRLF goes out with the next chunk's size line.
    """

    def __init__(self, sock: Any, size: int) -> None:
        self._sock = sock
        self._size = size
        self._pieces: List[bytes] = []
        self._count = 0
        self._after = b""  # the CRLF that ends the chunk sent last
        # A chunk's size line and its data leave in one sendmsg() where the
        # socket has it: no copy, and no segment of its own for the line
        # (http.client and urllib3 set TCP_NODELAY, so a line sent alone goes
        # out alone, and wakes the receiver for a few bytes).
        self._sendmsg = getattr(sock, "sendmsg", None) if is_plain_socket(sock) else None

    def write(self, data: bytes) -> None:
        if self._count + len(data) > self._size:
            self._flush()
        if len(data) >= self._size:
            self._send(data)
        elif data:
            self._pieces.append(data)
            self._count += len(data)

    def start_range(self, count: int) -> None:
        self._flush()
        self._sock.sendall(b"%s%X\r\n" % (self._after, count))
        self._after = b"\r\n"

    def close(self) -> None:
        """Send what waits, and the last chunk (no trailers)."""
        self._flush()
        self._sock.sendall(self._after + b"0\r\n\r\n")
        self._after = b""

    def _flush(self) -> None:
        if self._count:
            data = b"".join(self._pieces)
            self._pieces.clear()
            self._count = 0
            self._send(data)

    def _send(self, data: bytes) -> None:
        line = b"%s%X\r\n" % (self._after, len(data))
        if len(data) <= 16384:  # one send; a copy costs less than a call
            self._sock.sendall(line + data)
        elif self._sendmsg is not None:
            sent = self._sendmsg((line, data))
            if sent < len(line):  # a short send: the rest as sendall() does it
                self._sock.sendall(line[sent:])
                self._sock.sendall(data)
            elif sent < len(line) + len(data):
                self._sock.sendall(memoryview(data)[sent - len(line):])
        else:
            self._sock.sendall(line)
            self._sock.sendall(data)
        self._after = b"\r\n"


class MultipartBody(MultipartStream):
    """A :class:`MultipartStream` whose length is known: ``len(body)`` is its
    ``Content-Length``.

    Made from params of which one has content of unknown length, a
    ``MultipartBody(...)`` is a plain :class:`MultipartStream` instead (so
    that no client takes it for a body of some length); a subclass keeps
    its class, and its ``len()`` is then a ``TypeError``.
    """

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(
                "this body holds a part of unknown length, so it has no len(); "
                "send it chunked (or give the part's filesize=)"
            )
        return self.total


_steps_lock = threading.Lock()
_steps: Optional[concurrent.futures.ThreadPoolExecutor] = None


def _async_source_steps() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that make the blocks of bodies read from async sources."""
    global _steps
    with _steps_lock:
        if _steps is None:
            _steps = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="poster-async-source")
        return _steps


def _retrieve(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()


#: The least block size of a regular file's content in an async iteration
#: (unless paced), in bytes: each block costs a thread hop and a write of the
#: client, far more than reading its bytes.
ASYNC_FILE_BLOCKSIZE = 512 * 1024

#: A regular file of at most this many bytes goes in one block of an async
#: iteration (unless paced): one hop and one write for the whole file.  A
#: bigger one goes in blocks of ASYNC_FILE_BLOCKSIZE, which keeps a large
#: upload's memory flat (two blocks, with the one read ahead).
ASYNC_WHOLE_FILE = 1024 * 1024

#: Steps of async iterations made on the event loop (see _AsyncBlocks) take
#: up to this long (seconds) of each pass of the loop, all bodies together:
#: a step is made on the loop when it is expected to fit in what is left,
#: else in a worker thread.
ASYNC_LOOP_READS = 0.001


class _AsyncBlocks:
    """The async iteration of a body: each block is made in a worker thread.

    The content of a regular file (read by offset) comes in blocks of
    :data:`ASYNC_FILE_BLOCKSIZE` bytes or the body's ``blocksize``, whichever
    is more, and in one block when it is at most :data:`ASYNC_WHOLE_FILE`
    bytes (in blocks of the body's own size when it is paced by ``rate``);
    everything else in blocks of ``blocksize``.  A body that reads no source
    (its parts are all in memory) and has no callbacks is made on the event
    loop, with no thread at all, yielding to the loop before each block.

    A body read in a thread without callbacks, pacing or ``digest=``, whose
    sources are all regular files read by offset (no stream, pipe, iterable
    or async source), reads one block ahead: once a block is handed out, the
    next is read while the client sends this one (a client that waits for
    each write to drain, as httpx does, would otherwise leave the file and
    the socket idle in turn).

    Such a body with one file part, of at most :data:`ASYNC_WHOLE_FILE`
    bytes, with the compiled backend, makes a step on the loop when the
    file reads with no wait
    (``no_wait()`` of its source, asked again
    just before each step: on a local file system, its path found with no
    I/O and through no symlink, still the file measured, and wholly in the
    page cache; the step reads the descriptor that check opened, keeping the
    GIL: ``reads_hold_gil``).  The read is
    then a copy from memory (a few hundred microseconds for a mebibyte),
    where a thread hop in the middle of a request cost the client more than
    the read (the worker and the loop take the GIL from each other).  Such
    steps take :data:`ASYNC_LOOP_READS` of each pass of the loop, all bodies
    together: a step not expected to fit in what is left goes to a worker
    thread, so 64 uploads starting at once do not hold the loop for 64
    reads.  A page evicted in the microseconds between the check and the
    step is read from the disk on the loop.

    The step in flight is shielded: when the awaiting task is cancelled (a
    timeout), the block it was reading is kept and handed out by the next
    ``__anext__``, so nothing is lost; a ``reset()`` meanwhile waits for it.
    """

    def __init__(self, body: MultipartStream) -> None:
        self._body = body
        self._blocks: Optional[Generator[Any, None, None]] = None
        self._pending: Optional["asyncio.Future[Optional[bytes]]"] = None
        self._paced: Optional[Tuple[bytes, float]] = None  # a block waiting for its time
        self._done = False
        # A body that reads no source and calls no callback (which may block,
        # or wait on this very loop) is made on the loop, between yields to it.
        callbacks = bool(body.cb) or any(isinstance(part, MultipartParam) and part.cb for part in body._parts)
        self._in_thread = callbacks or any(_reads_source(part) for part in body._parts)
        # Reading ahead would call callbacks (and pace) a block early, and
        # an async source's reads wait on the loop: those go step by step.
        # So do streams, pipes and iterables: a read ahead of them may block
        # until their producer writes again, holding the body's lock (a
        # reset, on the loop, would wait for it) after the client stopped.
        # With digest=, body.digests lists the parts sent so far: a part's
        # digest is finished when the walk goes past it, which a read-ahead
        # would do while the client still sends the part's last block.
        self._read_ahead = (
            self._in_thread and not callbacks and body.rate is None and not body._needs_async
            and body.digest is None
            and all(_read_by_offset(part) for part in body._parts if _reads_source(part))
        )
        # Such a body with one small file part may have its steps made on
        # the loop (see above); then it reads nothing ahead.  Not with the
        # pure-Python twin: its scan makes a 1 MiB step take 1.2-4 ms.
        self._no_wait: Optional[Tuple[Union[PathSource, DescriptorSource], int]] = None  # (source, size)
        if self._read_ahead and body.blocksize <= ASYNC_WHOLE_FILE and _backend.current() == "cython":
            files = [part for part in body._parts if _reads_source(part)]
            size = files[0].content_size() if len(files) == 1 else None
            source = files[0]._source if files else None
            if size is not None and size <= ASYNC_WHOLE_FILE and isinstance(source, (PathSource, DescriptorSource)):
                self._no_wait, self._read_ahead = (source, size), False

    def __aiter__(self) -> "_AsyncBlocks":
        if self._done:
            # Iterated again once it ended (a client following a redirect):
            # an error, not an empty body.  A loop left early goes on.
            raise self._body._consumed_error()
        return self

    async def __anext__(self) -> bytes:
        """The next block; with ``rate``, once it is due.  A cancel while it
        waits keeps the block for the next call."""
        if self._paced is None:
            block = await self._next()
            if self._body.rate is None:
                return self._hand_out(block)
            self._paced = (block, time.monotonic() + self._body._pace(len(block)))
        block, due = self._paced
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._paced = None
        return self._hand_out(block)

    async def _next(self) -> bytes:
        """The next block of the walk, made but not handed out (not counted)."""
        if self._done:
            raise StopAsyncIteration
        body = self._body
        if self._blocks is None:
            if body.rate is not None:  # paced: blocks of its own size
                file_blocksize, whole_file = body.blocksize, 0
            else:
                file_blocksize = max(body.blocksize, ASYNC_FILE_BLOCKSIZE)
                whole_file = ASYNC_WHOLE_FILE
            with body._lock:
                if body._blocks is not None:
                    # Another iteration of this body (an aiter() taken
                    # beside this one) started the walk: one walk, one
                    # iteration, or each would send part of the body.
                    self._done = True
                    raise BodyConsumedError(
                        "another iteration of this body is under way; send a body once at "
                        "a time, or make one body for each request"
                    )
                self._blocks = body._running(file_blocksize, whole_file)
        if self._no_wait is not None and self._pending is None:
            await asyncio.sleep(0)  # let the loop run between blocks
            made, block = self._step_on_loop(*self._no_wait)
            if not made:
                block = await self._step_in_thread()
        elif self._in_thread:  # (and a step kept from a cancelled call)
            block = await self._step_in_thread()
        else:
            await asyncio.sleep(0)  # let the loop run between blocks
            try:
                block = self._next_block(None)
            except BaseException:
                self._done = True
                raise
        if block is None:
            self._done = True
            raise StopAsyncIteration
        if body._blocks is not self._blocks:
            # Made (read ahead, or kept from a cancelled step) before a
            # reset: it belongs to a walk that is over.
            self._done = True
            raise body._consumed_error()
        return block

    def _step_on_loop(self, source: Union[PathSource, DescriptorSource], size: int) -> Tuple[bool, Optional[bytes]]:
        """``(True, the next block or None)`` made here on the loop, when the
        ``size`` bytes of ``source`` read with no wait and the step is
        expected to fit in this pass of the loop; else ``(False, None)``, for
        a worker thread to make it.  The check and the step run in one go:
        no other task runs between them."""
        reads = _loop_reads()
        if not reads.take(self._body.blocksize + size):
            return False, None
        wall, cpu = time.perf_counter(), time.thread_time()
        block: Optional[bytes] = None
        try:
            step = source.no_wait(size)
            if step is None:
                return False, None
            # A path's step takes the descriptor its check opened, and reads
            # the page cache with the GIL held: let go, it would be had back
            # only after another thread's switch interval (5 ms), where one
            # runs Python.
            hold, held = _backend.impl.reads_hold_gil, False
            with step:
                try:
                    held = hold(True)
                    block = self._next_block(None)
                finally:
                    hold(held)
            return True, block
        except BaseException:
            self._done = True
            raise
        finally:
            # The stall is the wall time; what a byte costs is the CPU time
            # (a wait for the GIL, held by other threads, is not the read's).
            reads.spend(time.perf_counter() - wall, time.thread_time() - cpu, len(block or b""))

    def _hand_out(self, block: bytes) -> bytes:
        """Hand ``block`` out now (counted in tell()), unless a reset came
        since it was made (while it waited for its time, with ``rate``)."""
        body = self._body
        with body._lock:
            if body._blocks is not self._blocks:
                self._done = True
                raise body._consumed_error()
            body._sent += len(block)
        if body.total is not None and body._sent >= body.total:
            # Every byte is out: the body has ended now, not when (or if) the
            # client asks once more; aiohttp may not, and a later send would
            # then go on from the end and send nothing.
            self._done = True
            blocks = self._blocks
            with body._lock:
                if body._blocks is blocks:
                    body._blocks = None
                    body._ended = True
            if blocks is not None:
                blocks.close()
        elif self._read_ahead:
            self._start_step()
        return block

    def _start_step(self) -> None:
        """Start making the next block in a worker thread (``_pending``)."""
        loop = asyncio.get_running_loop()
        if self._body._needs_async:
            # Its steps wait on this loop for the source's reads: they run
            # on threads of their own, never starving the loop's default
            # executor, which the sources themselves may need (aiofiles).
            step = loop.run_in_executor(_async_source_steps(), self._next_block, loop)
        else:
            # What asyncio.to_thread does, without a task of its own.
            step = loop.run_in_executor(None, contextvars.copy_context().run, self._next_block, loop)
        # A step whose caller gave up (cancelled, then the body reset, or a
        # block read ahead that nobody asks for) may end in an error nobody
        # awaits: not one to log.
        step.add_done_callback(_retrieve)
        self._pending = step
        self._body._held = self._blocks

    async def _step_in_thread(self) -> Optional[bytes]:
        if self._pending is None:
            self._start_step()
        pending = self._pending
        assert pending is not None
        try:
            block = await asyncio.shield(pending)
        except asyncio.CancelledError:
            if pending.cancelled():
                self._pending = None
            raise
        except BaseException:
            self._done = True
            self._pending = None
            self._release()
            raise
        self._pending = None
        self._release()
        return block

    def _release(self) -> None:
        """The step that ended was this iteration's: its block is handed out
        (or its error raised) here, so the walk may go on in another."""
        if self._body._held is self._blocks:
            self._body._held = None

    def _next_block(self, loop: Optional[asyncio.AbstractEventLoop]) -> Optional[bytes]:
        """The next block, or None at the end (StopIteration cannot cross a
        future); async sources are read on ``loop`` (from a worker thread)."""
        blocks = self._blocks
        assert blocks is not None
        with self._body._lock:
            if loop is not None:
                running_loop(loop, self._body._lock)
            try:
                return self._body._step(blocks, count=False)
            except StopIteration:
                return None
            finally:
                if loop is not None:
                    running_loop(None)


def _check_parts(parts: List[Any]) -> None:
    """Refuse what is not a part (a pair, a str: what ``multipart_encode`` takes)."""
    for index, part in enumerate(parts):
        if not isinstance(part, (MultipartParam, TextRun)):
            raise TypeError(
                f"a body is made of MultipartParam objects, not {type(part).__name__} "
                f"(item {index}: {reprlib.repr(part)}); give (name, value) pairs to "
                "multipart_encode(), or make params of them with MultipartParam.from_params()"
            ) from None


def _read_by_offset(part: MultipartParam) -> bool:
    """Whether a part that reads a source reads a regular file by offset
    (a read that never waits for a producer)."""
    return isinstance(part._source, (PathSource, DescriptorSource))


class _LoopReads:
    """How long the steps made on one event loop took in the pass of it
    under way (``spent``, wall time), and what a byte of a step costs
    (``per_byte``, an average of their CPU time).  A loop runs in one
    thread, and one thread runs one loop at a time: the state lives in the
    thread."""

    __slots__ = ("loop", "spent", "per_byte", "_reset_due")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)  # a loop closed and dropped is not kept
        self.spent = 0.0
        self.per_byte = ASYNC_LOOP_READS / (2 * ASYNC_WHOLE_FILE)  # until a step is timed: 2 GB/s
        self._reset_due = False

    def take(self, size: int) -> bool:
        """Whether a step of up to ``size`` bytes fits in what is left of
        :data:`ASYNC_LOOP_READS` in this pass, at ``per_byte``."""
        if self.spent + size * self.per_byte > ASYNC_LOOP_READS:
            return False
        if not self._reset_due:
            # Runs in the loop's next pass: what this pass spent is then over.
            self._reset_due = True
            asyncio.get_running_loop().call_soon(self._reset)
        return True

    def spend(self, wall: float, cpu: float, size: int) -> None:
        """Count a step that took ``wall`` seconds, ``cpu`` of them its own,
        and made ``size`` bytes (a step of fewer than 64 KiB, whose time is
        mostly what any step costs, does not tell what a byte costs)."""
        self.spent += wall
        if size >= 65536:
            self.per_byte += (cpu / size - self.per_byte) / 4

    def _reset(self) -> None:
        self.spent = 0.0
        self._reset_due = False


_loop_reads_state = threading.local()


def _loop_reads() -> _LoopReads:
    """The :class:`_LoopReads` of the running loop."""
    loop = asyncio.get_running_loop()
    reads: Optional[_LoopReads] = getattr(_loop_reads_state, "reads", None)
    if reads is None or reads.loop() is not loop:
        reads = _loop_reads_state.reads = _LoopReads(loop)
    return reads


def _reads_source(part: Any) -> bool:
    """Whether making ``part`` reads a source (a file, a stream, an iterable)."""
    return isinstance(part, MultipartParam) and part._value is None and not isinstance(part._source, DigestSource)
