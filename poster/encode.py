"""multipart/form-data encoding, streamed.

The names and meaning are those of poster 0.8.1, with bytes on the wire::

    >>> from poster.encode import multipart_encode, MultipartParam
    >>> datagen, headers = multipart_encode(
    ...     [("comment", "hello"), MultipartParam("raw", b"\\x00\\x01")],
    ...     boundary="xyz")
    >>> headers["Content-Type"]
    'multipart/form-data; boundary=xyz'
    >>> body = b"".join(datagen)
    >>> len(body) == int(headers["Content-Length"]) == len(datagen)
    True

``datagen`` yields ``bytes`` and can be handed as it is to ``urllib.request``,
``http.client``, ``requests``, ``urllib3``, ``httpx`` and ``aiohttp``.  File
content is read block by block when the body is iterated, never all at once.

Two header styles exist.  ``style="poster"`` (the default) gives the bytes
poster 0.8.1 gave: non-ASCII names as RFC 2047 encoded words, non-ASCII
filenames as ``&#NNNN;`` references, ``"`` in a filename as ``\\"``.
``style="html5"`` gives what browsers send: UTF-8 as is, with ``"``, CR and LF
in names and filenames written ``%22``, ``%0D`` and ``%0A``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import itertools
import mimetypes
import mmap
import os
import secrets
import select
import socket
import stat
import sys
import urllib.parse
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from poster import _backend

__all__ = [
    "gen_boundary",
    "encode_and_quote",
    "MultipartParam",
    "MultipartBody",
    "multipart_yielder",
    "encode_string",
    "encode_file_header",
    "get_body_size",
    "get_headers",
    "multipart_encode",
    "BoundaryCollisionError",
    "ContentSizeError",
    "DEFAULT_BLOCKSIZE",
]

# The hot path: the compiled module or its pure-Python twin.
_impl = _backend.impl

#: Block size of :func:`multipart_encode` bodies, in bytes.
DEFAULT_BLOCKSIZE = 64 * 1024

STYLES = ("poster", "html5")

Boundary = Union[str, bytes]
Callback = Callable[["MultipartParam | None", int, int], Any]
ParamsInput = Union[
    Mapping[Any, Any],
    Iterable[Union["MultipartParam", Tuple[Any, Any]]],
]


class BoundaryCollisionError(ValueError):
    """The boundary appears inside a part's content.

    Raised before any byte of the block that holds it is yielded.  Encode again
    with another boundary (the default, :func:`gen_boundary`, is random).
    """


class ContentSizeError(ValueError):
    """A file part's content is not the size that was announced.

    The file ended early, or grew or shrank after its param was made.  Raised
    before the body could be completed, so no request of a wrong length is
    ever finished.
    """


def gen_boundary() -> str:
    """A new random boundary: 32 hex digits from the OS's secure random source."""
    return secrets.token_hex(16)


def encode_and_quote(data: Optional[Union[str, bytes]]) -> Optional[str]:
    """``urllib.parse.quote_plus`` of ``data``'s UTF-8 bytes; ``None`` stays ``None``."""
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return urllib.parse.quote_plus(data)


def _quote_boundary(boundary: Boundary) -> str:
    """The one spelling of ``boundary`` used on the wire (quoted exactly once)."""
    if not isinstance(boundary, (str, bytes)):
        raise TypeError(
            f"boundary must be str or bytes, not {type(boundary).__name__}"
        )
    if not boundary:
        raise ValueError("boundary must not be empty; omit it to get a random one")
    quoted = encode_and_quote(boundary)
    assert quoted is not None
    return quoted


def _delimiter(boundary: Boundary) -> bytes:
    return b"--" + _quote_boundary(boundary).encode("ascii")


def _as_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} {bytes(value)!r} is not valid UTF-8; pass it as str") from None
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    # Anything else is sent as its str(), as poster 0.8.1 did for numbers.
    text = value if isinstance(value, str) else str(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"value cannot be encoded as UTF-8 ({exc.reason})") from None


def _check_binary_file(fileobj: Any) -> None:
    if not callable(getattr(fileobj, "read", None)):
        raise TypeError(
            f"fileobj must be a binary file-like object with read(), not "
            f"{type(fileobj).__name__}"
        )
    text = isinstance(fileobj, io.TextIOBase)
    if not text:
        try:
            text = isinstance(fileobj.read(0), str)
        except Exception:
            text = False
    if text:
        raise TypeError(
            "fileobj is a text stream; open the file in binary mode ('rb') "
            "or wrap the data in io.BytesIO"
        )


def _tell(fileobj: Any) -> Optional[int]:
    """The current position, or None when the object cannot seek."""
    try:
        if hasattr(fileobj, "seekable") and not fileobj.seekable():
            return None
        position = fileobj.tell()
    except (OSError, AttributeError, ValueError):
        return None
    return position if isinstance(position, int) else None


def _remaining_size(fileobj: Any, start: Optional[int]) -> int:
    """Bytes from ``start`` to the end of ``fileobj``, without reading them."""
    try:
        st = os.fstat(fileobj.fileno())
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and start is not None:
        return max(0, st.st_size - start)
    if start is not None:
        try:
            end = fileobj.seek(0, io.SEEK_END)
            fileobj.seek(start)
        except (OSError, AttributeError, ValueError):
            pass
        else:
            if isinstance(end, int):
                return max(0, end - start)
    raise ValueError(
        f"cannot determine the size of {type(fileobj).__name__} (it cannot "
        "seek); pass filesize= with the number of bytes to send"
    )


@functools.total_ordering
class MultipartParam:
    """One part of a multipart/form-data body.

    ``name`` is the form field name.  The content is either ``value``
    (``str`` is sent as UTF-8; ``bytes``, ``bytearray`` and ``memoryview`` as
    they are; anything else as ``str(value)``) or ``fileobj``, a binary
    file-like object.  ``filename`` and ``filetype`` fill the
    ``Content-Disposition`` filename and the ``Content-Type``.

    A file part's content is the bytes from the object's position when the
    param is made: ``filesize`` bytes when given, else up to its end.  Exactly
    that many bytes are sent; a file that ends early or changes size raises
    :class:`ContentSizeError`.

    ``cb(param, current, total)`` is called as the part is encoded, with the
    bytes of this part produced so far and the part's total size.

    ``style`` is ``"poster"`` (poster 0.8.1's header bytes) or ``"html5"``
    (what browsers send).
    """

    __slots__ = (
        "name", "value", "filename", "filetype", "filesize", "fileobj", "cb", "style",
        "_headers", "_path", "_start", "_size_given", "_consumed",
    )

    def __init__(
        self,
        name: Union[str, bytes],
        value: Any = None,
        filename: Optional[Union[str, bytes]] = None,
        filetype: Optional[Union[str, bytes]] = None,
        filesize: Optional[int] = None,
        fileobj: Any = None,
        cb: Optional[Callback] = None,
        *,
        style: str = "poster",
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be 'poster' or 'html5', not {style!r}")
        if value is not None and fileobj is not None:
            raise ValueError("Only one of value or fileobj may be specified")
        # The common types are taken as they are: many small fields are made
        # by the thousand, so the checks below stay off their path.
        self.name = name if type(name) is str else _as_text(name, "name")
        self.filename = filename if filename is None or type(filename) is str else _as_text(filename, "filename")
        self.filetype = filetype if filetype is None or type(filetype) is str else _as_text(filetype, "filetype")
        self.style = style
        self.cb = cb
        self.fileobj = fileobj
        self.value: Optional[bytes] = value if value is None or type(value) is bytes else _as_bytes(value)
        # The part's header lines, rendered (and validated) once.
        self._headers: bytes = _impl.render_part_headers(
            self.name, self.filename, self.filetype, style == "html5"
        )

        if filesize is not None:
            if isinstance(filesize, bool) or not isinstance(filesize, int):
                raise TypeError(f"filesize must be an int, not {type(filesize).__name__}")
            if filesize < 0:
                raise ValueError(f"filesize must not be negative, got {filesize}")
        if self.value is not None and filesize is not None and filesize != len(self.value):
            raise ValueError(
                f"filesize={filesize} does not match the value's {len(self.value)} bytes"
            )
        self.filesize = filesize

        # File content: where it starts, whether its size was given, how much
        # has been read, and (for from_file) the path opened when the part is
        # reached.
        self._path: Optional[Union[str, bytes]] = None
        self._start: Optional[int] = None
        self._size_given = filesize is not None
        self._consumed = 0
        if fileobj is not None:
            _check_binary_file(fileobj)
            self._start = _tell(fileobj)
            if filesize is None:
                self.filesize = _remaining_size(fileobj, self._start)

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        paramname: Union[str, bytes],
        filename: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"],
        *,
        style: str = "poster",
    ) -> "MultipartParam":
        """A file part for the file at ``filename`` (a path or ``os.PathLike``).

        The size comes from the file system, the type from
        ``mimetypes.guess_type`` and the sent filename is the base name.  The
        file is opened only when its part is encoded, and closed right after,
        so a body can hold any number of files.  A missing or unreadable file
        raises here, not in the middle of an upload.
        """
        path = os.fspath(filename)
        st = os.stat(path)  # FileNotFoundError / PermissionError, now
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path!r} is not a regular file; only files can be uploaded")
        if not os.access(path, os.R_OK):
            raise PermissionError(f"{path!r} is not readable")
        basename = os.path.basename(os.fsdecode(path))
        param = cls(
            paramname,
            filename=basename,
            filetype=mimetypes.guess_type(os.fsdecode(path))[0],
            filesize=st.st_size,
            style=style,
        )
        param._path = path
        param._start = 0
        param._size_given = False
        return param

    @classmethod
    def from_params(cls, params: ParamsInput, *, style: str = "poster") -> List["MultipartParam"]:
        """Turn ``params`` into a list of :class:`MultipartParam`.

        ``params`` is a mapping or a sequence of ``(name, value)`` pairs and
        ``MultipartParam`` objects.  A value that has ``read`` becomes a file
        part, with ``filename`` its ``name`` attribute (when a ``str``) and a
        type guessed from it.  A ``MultipartParam`` given as the value of a
        pair must carry the same name.
        """
        if hasattr(params, "items"):
            params = params.items()
        result: List[MultipartParam] = []
        for item in params:
            if isinstance(item, cls):
                result.append(item)
                continue
            try:
                name, value = item  # type: ignore[misc]  # a pair, checked here
            except (TypeError, ValueError):
                raise TypeError(
                    f"params must be (name, value) pairs or MultipartParam objects, got {item!r}"
                ) from None
            if type(value) is str or type(value) is bytes:  # the common case, first
                result.append(cls(name, value, style=style))
            elif isinstance(value, cls):
                if value.name != _as_text(name, "name"):
                    raise ParamNameMismatchError(
                        f"MultipartParam named {value.name!r} was given under the name {name!r}"
                    )
                result.append(value)
            elif hasattr(value, "read"):
                filename = getattr(value, "name", None)
                if not isinstance(filename, str):
                    filename = None
                filetype = mimetypes.guess_type(filename)[0] if filename else None
                result.append(cls(name, filename=filename, filetype=filetype, fileobj=value, style=style))
            else:
                result.append(cls(name, value, style=style))
        return result

    # -- comparison ---------------------------------------------------------

    def _identity(self) -> Tuple[Any, ...]:
        source = self._path if self._path is not None else self.fileobj
        return (self.name, self.value, self.filename, self.filetype, self.filesize, source)

    def _sort_key(self) -> Tuple[Any, ...]:
        return (
            self.name,
            self.value is not None, self.value or b"",
            self.filename is not None, self.filename or "",
            self.filetype is not None, self.filetype or "",
            self.filesize is not None, self.filesize or 0,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultipartParam):
            return NotImplemented
        return self._identity() == other._identity()

    def __lt__(self, other: "MultipartParam") -> bool:
        if not isinstance(other, MultipartParam):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        content = f"value={self.value!r}" if self.value is not None else f"filesize={self.filesize}"
        extra = f", filename={self.filename!r}" if self.filename is not None else ""
        return f"<MultipartParam {self.name!r} {content}{extra}>"

    # -- encoding -----------------------------------------------------------

    def _content_size(self) -> int:
        if self.value is not None:
            return len(self.value)
        if self.filesize is None:
            raise ValueError(f"part {self.name!r} has no value, file or filesize")
        return self.filesize

    def encode_hdr(self, boundary: Boundary) -> bytes:
        """The part's delimiter line and headers, ending in the blank line."""
        return _delimiter(boundary) + b"\r\n" + self._headers

    def get_size(self, boundary: Boundary) -> int:
        """``len(self.encode(boundary))``, computed without reading anything."""
        return self._size(len(_delimiter(boundary)))

    def _size(self, delimiter_length: int) -> int:
        return delimiter_length + 2 + len(self._headers) + self._content_size() + 2

    def encode(self, boundary: Boundary) -> bytes:
        """Header, content and CRLF as one ``bytes`` (a file part reads its file)."""
        return b"".join(self._iter_encode(_delimiter(boundary), DEFAULT_BLOCKSIZE, None))

    def iter_encode(self, boundary: Boundary, blocksize: int = 4096) -> Iterator[bytes]:
        """Yield the part as ``bytes``: the header, content blocks, the CRLF."""
        _check_blocksize(blocksize)
        return self._iter_encode(_delimiter(boundary), blocksize, self.cb)

    def _iter_encode(self, delimiter: bytes, blocksize: int, cb: Optional[Callback]) -> Iterator[bytes]:
        total = self._size(len(delimiter))
        header = delimiter + b"\r\n" + self._headers
        if self.value is not None:
            self._check_value(delimiter)
            if cb:
                cb(self, total, total)
            yield header + self.value + b"\r\n"
            return
        current = len(header)
        if cb:
            cb(self, current, total)
        yield header
        for block in self._iter_file(delimiter, blocksize):
            current += len(block)
            if cb:
                cb(self, current, total)
            yield block
        if cb:
            cb(self, total, total)
        yield b"\r\n"

    def _check_value(self, delimiter: bytes) -> None:
        assert self.value is not None
        if _impl.find_collision(delimiter, self.value) >= 0:
            raise BoundaryCollisionError(
                f"boundary found in the value of part {self.name!r}; "
                "use another boundary"
            )

    def _open(self) -> Any:
        if self._path is not None and self.fileobj is None:
            self.fileobj = open(self._path, "rb")
            self._consumed = 0
        if self.fileobj is None:
            raise ValueError(f"part {self.name!r} has neither a value nor a file to read")
        return self.fileobj

    def _close_opened(self) -> None:
        """Close a file that from_file opened; files given by the user stay open."""
        if self._path is not None and self.fileobj is not None:
            fileobj, self.fileobj = self.fileobj, None
            fileobj.close()

    def _iter_file(self, delimiter: bytes, blocksize: int) -> Iterator[bytes]:
        """Yield the file's content as ``bytes`` blocks, checked (see :meth:`_checked_content`)."""
        return self._checked_content(delimiter, _impl.BlockReader().read, blocksize, by_offset=True)

    def _checked_content(
        self, delimiter: bytes, read: Callable[[Any, int], Any], blocksize: int, by_offset: bool = False
    ) -> Generator[Any, None, None]:
        """Yield the file's content, checked by the hot path's :class:`FileContent`.

        ``read(fileobj, size)`` gives the next block: ``size`` bytes (at most
        ``blocksize``), fewer only at end of file.  A block is yielded only
        once the next one has been read and scanned, so a delimiter that
        straddles two blocks stops the body before either block leaves
        (:class:`BoundaryCollisionError`).  A file that ends early, or grew
        when its size was not given, raises :class:`ContentSizeError` before
        the last block is yielded.

        With ``by_offset``, a readable regular file of a built-in type is read
        by descriptor and offset instead, each block read and scanned in one
        call without the GIL; once the content is through, its position is
        set past what was read, as reading it would have left it.
        """
        fileobj = self._open()
        fd = None
        content = None
        try:
            if self._consumed:
                raise ContentSizeError(
                    f"part {self.name!r}: {self._consumed} bytes of its file were "
                    "already read; call reset() before encoding it again"
                )
            if self._start is not None and self._path is None and hasattr(fileobj, "seek"):
                # The content starts where the file was when the param was
                # made, wherever it has been moved since.
                fileobj.seek(self._start)
            if by_offset and self._start is not None:
                fd = _regular_file_descriptor(fileobj, _PREAD_TYPES)
            if fd is not None and self._path is None:
                # A descriptor of its own: were the caller's file closed
                # meanwhile, its number could name another file.  (None left:
                # the file is read through its object instead.)
                try:
                    fd = os.dup(fd)
                except OSError:
                    fd = None
            expected = self._content_size()
            content = _impl.FileContent(
                fd if fd is not None else functools.partial(read, fileobj),
                self._start or 0, expected, blocksize, delimiter, not self._size_given,
            )
            yield from content
            if fd is not None and self._path is None:
                _seek_quietly(fileobj, content.position)
            if content.problem == "shrank":
                raise ContentSizeError(
                    f"part {self.name!r}: the file ended after {self._read_by(content)} "
                    f"of {expected} bytes; it shrank since the part was made"
                )
            if content.problem == "grew":
                raise ContentSizeError(
                    f"part {self.name!r}: the file is longer than the {expected} "
                    "bytes announced; it grew since the part was made"
                )
            if content.problem == "collision":
                raise BoundaryCollisionError(
                    f"boundary found in the file of part {self.name!r} at byte "
                    f"{content.collision}; use another boundary"
                )
        finally:
            if content is not None:
                self._consumed = self._read_by(content)
            if fd is not None and self._path is None:
                os.close(fd)
            self._close_opened()

    def _read_by(self, content: Any) -> int:
        """How many bytes of the file ``content`` (a FileContent) has read."""
        return int(content.position) - (self._start or 0)

    def reset(self) -> None:
        """Rewind to where the content started, so the part can be sent again.

        Raises ``ValueError`` when the file cannot seek and some of it was read.
        """
        if self._path is not None:
            self._close_opened()
            self._consumed = 0
            return
        if self.fileobj is None:
            if self.value is None:
                raise ValueError(f"part {self.name!r} has no content to reset")
            return
        if self._consumed == 0:
            return
        if self._start is None:
            raise ValueError(
                f"cannot reset part {self.name!r}: its file cannot seek back"
            )
        self.fileobj.seek(self._start)
        self._consumed = 0

    # -- sending on a socket ------------------------------------------------

    def _write_file(
        self, sock: Any, delimiter: bytes, buffer: mmap.mmap, use_sendfile: bool
    ) -> Iterator[int]:
        """Put the file's content on ``sock``; yield the byte count of each send.

        The content moves in windows of half of ``buffer``, checked as
        :meth:`_checked_content` checks blocks: each window is read and
        scanned before the window before it is sent.  With ``use_sendfile``
        and a regular file, a scanned window goes out with ``os.sendfile``
        from the page cache; otherwise it is sent from ``buffer`` as a
        ``memoryview``.
        """
        half = len(buffer) // 2
        halves = (memoryview(buffer)[:half], memoryview(buffer)[half:])
        turn = [0]

        def read_window(fileobj: Any, size: int) -> memoryview:
            window = halves[turn[0]][:size]
            turn[0] ^= 1
            return window[: _impl.readinto_exact(fileobj, window)]

        # The file is open once the first window has come: then it is known
        # whether os.sendfile can read it.  Windows start where the content
        # starts (from_file opens at 0).
        offset = self._start or 0
        source: Optional[int] = None
        looked = False
        for window in self._checked_content(delimiter, read_window, half):
            if not looked:
                source = _regular_file_descriptor(self.fileobj, _SENDFILE_TYPES) if use_sendfile else None
                looked = True
            offset = self._send_window(sock, window, source, offset)
            yield len(window)

    def _send_window(self, sock: Any, window: memoryview, source: Optional[int], offset: int) -> int:
        """Send one scanned window: from the file (``source``) or from memory.

        Returns the file offset after the window.
        """
        if source is None:
            sock.sendall(window)
            return offset + len(window)
        if not _sendfile_all(sock, source, offset, len(window)):
            raise ContentSizeError(
                f"part {self.name!r}: the file was cut short while it was sent; "
                f"fewer than the {self._content_size()} bytes announced are left"
            )
        return offset + len(window)


class ParamNameMismatchError(AssertionError, ValueError):
    """A ``MultipartParam`` was given under a name other than its own.

    Both an ``AssertionError`` (what poster 0.8.1 raised) and a ``ValueError``.
    """


def _check_blocksize(blocksize: int) -> None:
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ValueError(f"blocksize must be a positive int, not {blocksize!r}")


def encode_string(boundary: Boundary, name: Union[str, bytes], value: Any) -> bytes:
    """One text part: ``MultipartParam(name, value).encode(boundary)``."""
    return MultipartParam(name, value).encode(boundary)


def encode_file_header(
    boundary: Boundary,
    paramname: Union[str, bytes],
    filesize: int,
    filename: Optional[Union[str, bytes]] = None,
    filetype: Optional[Union[str, bytes]] = None,
) -> bytes:
    """The delimiter line and headers of a file part."""
    return MultipartParam(
        paramname, filesize=filesize, filename=filename, filetype=filetype
    ).encode_hdr(boundary)


class _TextRun:
    """Text fields given as ``(name, value)`` pairs, rendered in one piece.

    :func:`multipart_encode` keeps runs of plain text fields this way, so that
    thousands of small fields do not each become a :class:`MultipartParam`:
    ``rendered`` is their bytes for one delimiter, as the params would give
    them.  The params are made from ``pairs`` only when asked for
    (:attr:`MultipartBody.params`).
    """

    __slots__ = ("rendered", "pairs", "style")

    #: No value of its own: render_value_parts stops before a run, as it
    #: stops before a file part.
    value = None

    def __init__(self, rendered: bytes, pairs: List[Tuple[Any, Any]], style: str) -> None:
        self.rendered = rendered
        self.pairs = pairs
        self.style = style

    def _size(self, delimiter_length: int) -> int:
        return len(self.rendered)

    def reset(self) -> None:
        """Nothing to rewind: the content is in memory."""

    def to_params(self) -> List[MultipartParam]:
        return MultipartParam.from_params(self.pairs, style=self.style)


_Part = Union[MultipartParam, _TextRun]


def _parts_from_params(params: ParamsInput, delimiter: bytes, style: str, limit: int) -> List[_Part]:
    """:meth:`MultipartParam.from_params`, with runs of plain text pairs kept as :class:`_TextRun`.

    Runs are rendered about ``limit`` bytes at a time; every other item (and a
    pair the hot path does not take, which then raises its error) becomes a
    param exactly as ``from_params`` makes it.
    """
    items = list(params.items()) if hasattr(params, "items") else list(params)
    parts: List[_Part] = []
    html5 = style == "html5"
    index = 0
    while index < len(items):
        rendered, stop = _impl.render_text_pairs(items, index, delimiter, html5, limit)
        if stop > index:
            parts.append(_TextRun(rendered, items[index:stop], style))
        else:
            stop = index + 1
            parts += MultipartParam.from_params(items[index:stop], style=style)
        index = stop
    return parts


def _body_size(parts: Iterable[_Part], delimiter: bytes) -> int:
    return sum(p._size(len(delimiter)) for p in parts) + len(delimiter) + 4


def get_body_size(params: ParamsInput, boundary: Boundary) -> int:
    """The length of the body ``params`` encode to, computed without reading files."""
    delimiter = _delimiter(boundary)
    return _body_size(_parts_from_params(params, delimiter, "poster", DEFAULT_BLOCKSIZE), delimiter)


def get_headers(params: ParamsInput, boundary: Boundary) -> Dict[str, str]:
    """``Content-Type`` and ``Content-Length`` for the body of ``params``."""
    quoted = _quote_boundary(boundary)
    return {
        "Content-Type": f"multipart/form-data; boundary={quoted}",
        "Content-Length": str(get_body_size(params, boundary)),
    }


class MultipartBody:
    """A multipart/form-data body, streamed: what :func:`multipart_encode` returns.

    Iterate it for ``bytes`` blocks (``b"".join(body)`` is the whole body),
    ``len(body)`` is the ``Content-Length``, ``reset()`` rewinds every part so
    the body can be sent again, and ``async for`` reads files in a worker
    thread.  Exhausted and not reset, it yields nothing.

    ``cb(param, current, total)`` is called as blocks are produced, with the
    body's bytes so far and its total; last with ``(None, total, total)``.
    """

    def __init__(
        self,
        params: Iterable[_Part],
        boundary: str,
        cb: Optional[Callback] = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
    ) -> None:
        _check_blocksize(blocksize)
        # What is encoded: params, and (from multipart_encode) runs of text
        # fields, which become params only when ``params`` is read.
        self._parts: List[Any] = params if isinstance(params, list) else list(params)
        self._params: Optional[List[Any]] = None
        self.boundary = boundary
        self.cb = cb
        self.blocksize = blocksize
        self._delimiter = b"--" + boundary.encode("ascii")
        self.total = _body_size(self._parts, self._delimiter)
        self._blocks = self._generate()

    @property
    def params(self) -> List[MultipartParam]:
        """The parts, as :class:`MultipartParam` objects.

        Text fields that :func:`multipart_encode` got as pairs are made into
        params on first access; iterations that start after that encode those
        very objects.
        """
        if self._params is None:
            if any(isinstance(part, _TextRun) for part in self._parts):
                self._parts = [
                    param
                    for part in self._parts
                    for param in (part.to_params() if isinstance(part, _TextRun) else (part,))
                ]
            self._params = self._parts
        return self._params

    @params.setter
    def params(self, params: Iterable[MultipartParam]) -> None:
        self._parts = self._params = list(params)

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> "MultipartBody":
        return self

    def __next__(self) -> bytes:
        block: bytes = next(self._blocks)
        return block

    next = __next__  # poster 0.8.1's spelling

    def reset(self) -> None:
        """Rewind every part; the next iteration yields the whole body again."""
        self._blocks.close()
        for part in self._parts:
            part.reset()
        self._blocks = self._generate()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._agenerate()

    async def _agenerate(self) -> AsyncIterator[bytes]:
        while True:
            block = await asyncio.to_thread(next, self._blocks, None)
            if block is None:
                return
            yield block

    def _generate(self) -> Generator[Any, None, None]:
        """The body's blocks, for iteration."""
        delimiter, blocksize = self._delimiter, self.blocksize
        return self._produce(blocksize, lambda param: param._iter_file(delimiter, blocksize))

    def _produce(
        self, blocksize: int, file_content: Callable[[MultipartParam], Iterator[Any]]
    ) -> Generator[Any, None, None]:
        """The body in order, calling the callbacks as it goes.

        Yields ``bytes`` to put out: runs of in-memory parts (rendered and
        scanned for the boundary by the hot path in one call, up to about
        ``blocksize``), each file part's header and the close delimiter.  A
        file part's content comes from ``file_content(param)``, passed on:
        ``bytes`` blocks (iteration), or the counts of bytes it put on a
        socket itself (:meth:`write_to`).
        """
        delimiter = self._delimiter
        delimiter_line = delimiter + b"\r\n"
        total, cb = self.total, self.cb
        current = 0
        # The body's callback is called with each part's param: make them.
        params = self.params if cb else self._parts
        pending: List[bytes] = []
        pending_size = 0
        index = 0
        while index < len(params):
            param = params[index]
            if isinstance(param, _TextRun):  # rendered and scanned already
                if pending and pending_size + len(param.rendered) > blocksize:
                    yield b"".join(pending)
                    pending.clear()
                    pending_size = 0
                pending.append(param.rendered)
                pending_size += len(param.rendered)
                current += len(param.rendered)
                index += 1
                if pending_size >= blocksize:
                    yield b"".join(pending)
                    pending.clear()
                    pending_size = 0
                continue
            if param.value is not None:
                rendered, stop, collision = _impl.render_value_parts(
                    params, index, delimiter, blocksize - pending_size
                )
                pending.append(rendered)
                pending_size += len(rendered)
                for param in itertools.islice(params, index, stop):
                    size = len(delimiter_line) + len(param._headers) + len(param.value or b"") + 2
                    current += size
                    if param.cb:
                        param.cb(param, size, size)
                    if cb:
                        cb(param, current, total)
                if collision:
                    params[stop]._check_value(delimiter)  # raises, naming the part
                index = stop
                if pending_size >= blocksize:
                    yield b"".join(pending)
                    pending.clear()
                    pending_size = 0
                continue
            index += 1
            part_total = param._size(len(delimiter))
            pending += (delimiter_line, param._headers)
            part_current = len(delimiter_line) + len(param._headers)
            current += part_current
            if param.cb:
                param.cb(param, part_current, part_total)
            if cb:
                cb(param, current, total)
            yield b"".join(pending)
            pending.clear()
            if not (cb or param.cb):  # nothing to count: pass the content on as it comes
                yield from file_content(param)
                current += param._content_size()
            else:
                for item in file_content(param):
                    count = item if isinstance(item, int) else len(item)
                    part_current += count
                    current += count
                    if param.cb:
                        param.cb(param, part_current, part_total)
                    if cb:
                        cb(param, current, total)
                    yield item
            pending.append(b"\r\n")
            pending_size = 2
            current += 2
            if param.cb:
                param.cb(param, part_total, part_total)
        pending.append(delimiter + b"--\r\n")
        current += len(delimiter) + 4
        if cb:
            cb(None, current, total)
        yield b"".join(pending)

    # -- sending on a socket ------------------------------------------------

    def write_to(self, sock: Any, *, sendfile: bool = True) -> int:
        """Send the whole body on ``sock``, a connected socket; return its length.

        The bytes sent are exactly ``b"".join(body)``, and the same checks
        apply: every part is scanned for the boundary before the block that
        holds a collision leaves, a file that shrank or grew raises
        :class:`ContentSizeError` before the body is complete, and the
        callbacks are called as the bytes go out.  File content moves in
        windows of a buffer allocated once per call (a few hundred KiB):

        * over a plain TCP socket, from a regular file, and with ``sendfile``
          true, each window is read once to scan it and then sent with
          ``os.sendfile`` (zero-copy, straight from the page cache).  A file
          that shrinks meanwhile is caught; one overwritten in place between
          the scan of a window and its send would send the new bytes, so
          pass ``sendfile=False`` for files that are written while uploaded;
        * otherwise (TLS sockets, other streams) as ``memoryview`` slices of
          the buffer, through ``sock.sendall``.

        ``sock`` may be anything with ``sendall``; ``os.sendfile`` is used only
        for a ``socket.socket`` that is not an ``ssl.SSLSocket``.  Errors of
        the socket (reset, timeout) propagate; the body is then partly sent.

        The body must be fresh: once iterated or sent, call :meth:`reset`
        before sending it again (``ValueError`` otherwise).  After the call it
        counts as exhausted, as after iterating it.
        """
        if inspect.getgeneratorstate(self._blocks) != inspect.GEN_CREATED:
            raise ValueError(
                "this body was already iterated or sent; call reset() to send it again"
            )
        self._blocks.close()
        use_sendfile = sendfile and _is_plain_socket(sock)
        delimiter = self._delimiter
        # Two windows of one buffer: one goes out while the next is read and
        # scanned.
        buffer = _read_buffer(2 * _SEND_WINDOW)
        for item in self._produce(
            _SEND_WINDOW, lambda param: param._write_file(sock, delimiter, buffer, use_sendfile)
        ):
            if not isinstance(item, int):  # counts are file content already sent
                sock.sendall(item)
        return self.total


multipart_yielder = MultipartBody  # poster 0.8.1's name


def multipart_encode(
    params: ParamsInput,
    boundary: Optional[Boundary] = None,
    cb: Optional[Callback] = None,
    *,
    style: str = "poster",
    blocksize: int = DEFAULT_BLOCKSIZE,
) -> Tuple["MultipartBody", Dict[str, str]]:
    """Encode ``params`` as multipart/form-data: returns ``(datagen, headers)``.

    ``params`` is what :meth:`MultipartParam.from_params` takes.  ``boundary``
    defaults to :func:`gen_boundary`; a given one is ``quote_plus``'d once and
    that spelling is used everywhere.  ``headers`` holds ``Content-Type`` and
    ``Content-Length``; ``datagen`` yields the body in blocks of about
    ``blocksize`` bytes.  ``style`` applies to the parts made from pairs.
    """
    if style not in STYLES:
        raise ValueError(f"style must be 'poster' or 'html5', not {style!r}")
    _check_blocksize(blocksize)
    quoted = _quote_boundary(gen_boundary() if boundary is None else boundary)
    parts: List[Any]
    if cb is None:
        parts = _parts_from_params(params, b"--" + quoted.encode("ascii"), style, blocksize)
    else:  # the callback is called with each part's param
        parts = MultipartParam.from_params(params, style=style)
    body = MultipartBody(parts, quoted, cb, blocksize)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={quoted}",
        "Content-Length": str(body.total),
    }
    return body, headers


# -- sending on a socket (MultipartBody.write_to) -------------------------------

#: Size of the windows in which write_to moves file content, in bytes.  Two
#: windows of one buffer: one being sent while the next is read and scanned.
_SEND_WINDOW = 256 * 1024


def _read_buffer(size: int) -> mmap.mmap:
    """A writable buffer of ``size`` bytes for file content to be read into.

    Anonymous memory, so it starts on a page boundary: some CPUs (measured on
    AMD EPYC) copy a read() from the page cache into memory 1 to 31 bytes past
    a page boundary, where a large ``bytearray`` starts, 4 times slower.
    """
    return mmap.mmap(-1, size)


def _is_plain_socket(sock: Any) -> bool:
    """A TCP socket that ``os.sendfile`` can write to (not TLS)."""
    if not hasattr(os, "sendfile") or not isinstance(sock, socket.socket):
        return False
    tls = sys.modules.get("ssl")  # not imported for plain HTTP
    return tls is None or not isinstance(sock, tls.SSLSocket)


def _regular_file_descriptor(fileobj: Any, types: Tuple[type, ...]) -> Optional[int]:
    """The descriptor of ``fileobj`` when its bytes can be taken from it by offset.

    That is when ``fileobj`` is readable, a regular file, and of one of the
    built-in ``types`` exactly, over an ``io.FileIO`` when buffered: a
    subclass or another raw stream may read something else than its
    descriptor holds (a tar member, a decrypting reader).
    """
    if type(fileobj) not in types:
        return None
    if type(fileobj) is not io.FileIO and type(getattr(fileobj, "raw", None)) is not io.FileIO:
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


#: What os.sendfile may send from (write_to).
_SENDFILE_TYPES = (io.FileIO, io.BufferedReader, io.BufferedRandom)
#: What is read with pread when a body is iterated: not io.BufferedRandom,
#: which may hold writes that are not in the file yet.
_PREAD_TYPES = (io.FileIO, io.BufferedReader) if hasattr(os, "pread") else ()


def _seek_quietly(fileobj: Any, position: int) -> None:
    """Set a file's position after it was read by offset; a file closed meanwhile stays so."""
    try:
        fileobj.seek(position)
    except (OSError, ValueError):
        pass


def _sendfile_all(sock: Any, fd: int, offset: int, count: int) -> bool:
    """``os.sendfile`` ``count`` bytes of ``fd`` from ``offset`` to ``sock``.

    Honours the socket's timeout for every wait (``TimeoutError``).  Returns
    False when the file ends before ``count`` bytes were sent.
    """
    timeout = sock.gettimeout()
    out = sock.fileno()
    poller = None
    while count > 0:
        try:
            sent = os.sendfile(out, fd, offset, count)
        except BlockingIOError:
            # A socket with a timeout is non-blocking underneath.
            if poller is None:
                poller = select.poll()
                poller.register(out, select.POLLOUT)
            if not poller.poll(None if timeout is None else timeout * 1000):
                raise TimeoutError("timed out") from None
            continue
        if sent == 0:
            return False
        offset += sent
        count -= sent
    return True
