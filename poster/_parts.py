"""The part model: what one part of a body is, its header bytes and its size.

A :class:`MultipartParam` is made once and does not change: its header lines
are rendered (and validated) when it is made, its content is a ``bytes`` value
or a file source (:mod:`poster._sources`), and its size follows from those
without reading anything (:func:`part_size`, the one size formula).  A
:class:`TextRun` holds text fields given as ``(name, value)`` pairs, rendered
in one piece.  Bodies (:mod:`poster._body`) walk a snapshot of such parts.
"""

from __future__ import annotations

import functools
import inspect
import io
import mimetypes
import os
import stat
import urllib.parse
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from poster import _backend
from poster._digests import DigestSource, check_algorithm
from poster._sources import AsyncSource, IterableSource, PathSource, Source, source_for
from poster.errors import ParamNameMismatchError

__all__ = [
    "MultipartParam",
    "TextRun",
    "Part",
    "STYLES",
    "check_style",
    "check_blocksize",
    "quote_boundary",
    "part_size",
    "body_size",
    "parts_from_params",
]

STYLES = ("poster", "html5")

#: The longest boundary RFC 2046 allows, in characters on the wire.
MAX_BOUNDARY = 70

Boundary = Union[str, bytes]
Callback = Callable[["MultipartParam | None", int, Optional[int]], Any]
ParamsInput = Union[
    Mapping[Any, Any],
    Iterable[Union["MultipartParam", Tuple[Any, Any]]],
]


def check_style(style: Any) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be 'poster' or 'html5', not {style!r}")


def check_blocksize(blocksize: Any) -> None:
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ValueError(f"blocksize must be a positive int, not {blocksize!r}")


def quote_boundary(boundary: Boundary) -> str:
    """The one spelling of ``boundary`` used on the wire (``quote_plus``'d exactly once)."""
    if type(boundary) is str and boundary.isascii() and boundary.isalnum() and len(boundary) <= MAX_BOUNDARY:
        return boundary  # what quote_plus gives for letters and digits (gen_boundary's)
    if not isinstance(boundary, (str, bytes)):
        raise TypeError(f"boundary must be str or bytes, not {type(boundary).__name__}")
    if not boundary:
        raise ValueError("boundary must not be empty; omit it to get a random one")
    if ('"' if isinstance(boundary, str) else b'"') in boundary:  # type: ignore[operator]
        raise ValueError(f"boundary {boundary!r} holds '\"', which no boundary may; omit it to get a random one")
    quoted = urllib.parse.quote_plus(boundary.encode("utf-8") if isinstance(boundary, str) else boundary)
    if len(quoted) > MAX_BOUNDARY:
        raise ValueError(
            f"boundary {boundary!r} is {len(quoted)} characters on the wire; RFC 2046 "
            f"allows at most {MAX_BOUNDARY}; use a shorter one, or omit it to get a random one"
        )
    return quoted


def delimiter_of(boundary: Boundary) -> bytes:
    """``--`` and the boundary's wire spelling: what starts every part."""
    return b"--" + quote_boundary(boundary).encode("ascii")


def part_size(delimiter_length: int, headers_length: int, content_length: Optional[int]) -> Optional[int]:
    """The size of one part: delimiter CRLF, header lines, content, CRLF
    (None when the content's length is not known)."""
    if content_length is None:
        return None
    return delimiter_length + 2 + headers_length + content_length + 2


def body_size(parts: Iterable["Part"], delimiter: bytes) -> Optional[int]:
    """The size of a body of ``parts``: the parts, then the close delimiter ``--`` CRLF.

    None when the length of a part is not known (a stream, a generator).
    """
    total = len(delimiter) + 4
    for part in parts:
        size = part.size(len(delimiter))
        if size is None:
            return None
        total += size
    return total


# -- checking what a param is made of -------------------------------------------

def _as_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        # A subclass (markupsafe's Markup, say) may change what its methods
        # do: its characters are taken as a plain str.
        return value if type(value) is str else str.__getitem__(value, slice(None))
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} {bytes(value)!r} is not valid UTF-8; pass it as str") from None
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return bytes(memoryview(value)) if type(value) is not bytes else value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    # Anything else is sent as its str(), as poster 0.8.1 did for numbers.
    text = value if isinstance(value, str) else str(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"value cannot be encoded as UTF-8 ({exc.reason})") from None


def _content_kind(fileobj: Any) -> str:
    """What a part's ``fileobj`` is: ``"file"`` (it has ``read``), ``"async"``
    (``async def read`` or an async iterable) or ``"chunks"`` (an iterable of
    bytes-like chunks); ``TypeError`` for anything else."""
    read = getattr(fileobj, "read", None)
    if callable(read):
        return "async" if inspect.iscoroutinefunction(read) else "file"
    if _is_bytes_like(fileobj):
        raise TypeError(
            f"fileobj is {type(fileobj).__name__} content, not a file or an iterable of "
            "chunks; pass it as value=, or wrap it in io.BytesIO"
        )
    if callable(getattr(fileobj, "__aiter__", None)):
        return "async"
    if (
        callable(getattr(fileobj, "__iter__", None))
        and not isinstance(fileobj, (str, bytes, bytearray, memoryview, Mapping))
    ):
        return "chunks"
    raise TypeError(
        "fileobj must be a binary file-like object with read(), an iterable of "
        f"bytes-like chunks, or an async source, not {type(fileobj).__name__}"
    )


def _is_bytes_like(value: Any) -> bool:
    try:
        memoryview(value).release()
    except TypeError:
        return False
    return True


def _chunks_size(chunks: Any, label: str) -> Optional[int]:
    """The byte count of a list or tuple of chunks, each refused now if it is
    not bytes-like; None for other iterables (read only when sent)."""
    if not isinstance(chunks, (list, tuple)):
        return None
    total = 0
    for chunk in chunks:
        try:
            with memoryview(chunk) as view:
                total += view.nbytes
        except TypeError:
            raise TypeError(
                f"{label}: its fileobj holds a {type(chunk).__name__} chunk; "
                "chunks must be bytes-like (bytes, bytearray, memoryview): encode text first"
            ) from None
    return total


def _async_size(source: Any) -> Optional[int]:
    """The size of an async file that exposes a regular file's descriptor
    (aiofiles) and was not read yet; None otherwise.

    Only a descriptor at offset 0 tells: once read, a buffered file's
    descriptor is ahead of the file's position by what it buffered.
    """
    fileno = getattr(source, "fileno", None)
    if not callable(fileno) or inspect.iscoroutinefunction(fileno):
        return None
    try:
        fd = fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or os.lseek(fd, 0, os.SEEK_CUR) != 0:
            return None
        return int(st.st_size)
    except (OSError, ValueError, TypeError):
        return None


def _is_stream(value: Any) -> bool:
    """Whether a pair's value is a stream of chunks: an iterator (a generator)
    or an async iterable.  Other values (a list, a number) are sent as their
    ``str()``, as poster 0.8.1 sent them."""
    return callable(getattr(value, "__next__", None)) or callable(getattr(value, "__aiter__", None))


def _check_binary_file(fileobj: Any, start: Optional[int]) -> None:
    """Refuse a text file object; ``start`` is its position now.

    An object of a binary ``io`` type is binary; another is asked for
    ``read(0)``, and put back at ``start`` should that have read something.
    """
    if isinstance(fileobj, (io.BufferedIOBase, io.RawIOBase)):
        return
    text = isinstance(fileobj, io.TextIOBase)
    if not text:
        try:
            text = isinstance(fileobj.read(0), str)
        except Exception:
            text = False
        if start is not None and tell_or_none(fileobj) != start:
            fileobj.seek(start)  # a read(0) that read: undone
    if text:
        raise TypeError(
            "fileobj is a text stream; open the file in binary mode ('rb') "
            "or wrap the data in io.BytesIO"
        )


def _is_its_descriptor(fileobj: Any) -> bool:
    """Whether ``fileobj``'s bytes are those of its descriptor (not of a
    compressor, an archive member or another wrapper)."""
    kind = type(fileobj)
    if kind is io.FileIO:
        return True
    return kind in (io.BufferedReader, io.BufferedRandom) and type(fileobj.raw) is io.FileIO


def tell_or_none(fileobj: Any) -> Optional[int]:
    """The current position, or None when the object cannot seek."""
    try:
        if hasattr(fileobj, "seekable") and not fileobj.seekable():
            return None
        position = fileobj.tell()
    except (OSError, AttributeError, ValueError):
        return None
    return position if isinstance(position, int) and not isinstance(position, bool) else None


def _remaining_size(fileobj: Any, start: Optional[int]) -> Optional[int]:
    """Bytes from ``start`` to the end of ``fileobj``, without reading them;
    None when that cannot be known (a pipe, a socket, a decompressor)."""
    st = None
    if _is_its_descriptor(fileobj):
        try:
            st = os.fstat(fileobj.fileno())
        except (OSError, ValueError):
            pass
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
    return None


def _sendable_filename(path: Union[str, bytes]) -> str:
    """The base name of ``path`` as text; bytes that are not UTF-8 become ``%XX``.

    A name read from the file system may hold such bytes (``os.fsdecode``
    gives lone surrogates for them), which no header can carry as they are.
    """
    name = os.path.basename(os.fsdecode(path))
    if name.isascii() or not any("\udc80" <= char <= "\udcff" for char in name):
        return name
    return "".join(
        f"%{ord(char) - 0xDC00:02X}" if "\udc80" <= char <= "\udcff" else char for char in name
    )


#: The characters of an RFC 7230 token (a header name).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

#: Headers a part's own arguments write: not to be given in ``headers=``.
_OWN_HEADERS = {"content-disposition": "name/filename", "content-type": "filetype", "content-length": None}


def _header_lines(headers: Any) -> Tuple[Tuple[str, str], ...]:
    """``headers`` (a mapping or pairs) as checked ``(name, value)`` pairs, in order."""
    if headers is None:
        return ()
    items = headers.items() if hasattr(headers, "items") else headers
    lines = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"headers must be a mapping or (name, value) pairs, got {item!r}") from None
        name, value = _as_text(name, "header name"), _as_text(value, "header value")
        if not name or not set(name) <= _TOKEN:
            raise ValueError(f"header name {name!r} is not an RFC 7230 token (letters, digits, -, ...)")
        own = name.lower()
        if own in _OWN_HEADERS:
            use = _OWN_HEADERS[own]
            raise ValueError(
                f"{name} cannot be given in headers="
                + (f"; it is written from the part's {use}" if use else "; poster writes no part lengths")
            )
        bad = next((c for c in value if c in "\r\n\x00" or (c < " " and c != "\t") or c == "\x7f"), None)
        if bad is not None:
            raise ValueError(
                f"the value of header {name!r} holds the control character {bad!r}; "
                "a header value is one line of text"
            )
        lines.append((name, value))
    return tuple(lines)


def _frozen(name: str) -> property:
    slot = "_" + name

    def get(self: "MultipartParam") -> Any:
        return getattr(self, slot)

    def refuse(self: "MultipartParam", value: Any) -> None:
        raise AttributeError(
            f"MultipartParam.{name} cannot be changed once the param is made (a body "
            "encoded from it measured it already); make a new MultipartParam"
        )

    return property(get, refuse, doc=f"The part's ``{name}`` (read-only).")


# -- one part --------------------------------------------------------------------

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
    :class:`~poster.errors.ContentSizeError`.

    ``fileobj`` may also be an iterable of bytes-like chunks (a generator, a
    list), or, for a body sent with ``async for`` only, an object with
    ``async def read(n)`` (aiofiles, anyio) or an async iterable of chunks.
    When its size can't be known (a pipe, a generator without ``filesize``)
    the part is of unknown length: the body then has no ``len()`` and is sent
    with ``Transfer-Encoding: chunked``.  An iterable given with ``filesize``
    must give exactly that many bytes (``ContentSizeError``).

    A param does not change once made (its attributes are read-only, but
    ``cb``), and it can be in any number of bodies at once, in any number of
    threads: each body reads a regular file by offset through a descriptor of
    its own.  A file object without a descriptor (``io.BytesIO``, a socket
    file) can be read by one body at a time.

    ``cb(param, current, total)`` is called as the part is encoded, with the
    bytes of this part produced so far and the part's total size.

    ``style`` is ``"poster"`` (poster 0.8.1's header bytes) or ``"html5"``
    (what browsers send).  ``headers`` (a mapping or ``(name, value)``
    pairs, order kept) adds header lines of the part's own, such as
    ``Content-ID``: names are RFC 7230 tokens, values single lines of text;
    ``Content-Disposition``, ``Content-Type`` and ``Content-Length`` are
    refused there (use ``name``, ``filename``, ``filetype``).

    ``name=None`` makes a part without a name, for a body of another
    subtype than form-data (``multipart_encode(..., subtype="related")``):
    it has no ``Content-Disposition`` (but ``attachment; filename="..."``
    when it has a ``filename``) and always a ``Content-Type``: ``filetype``,
    else ``text/plain; charset=utf-8`` (in html5 style
    ``application/octet-stream`` when it has a filename).  A form-data
    body refuses it.
    """

    __slots__ = (
        "_name", "_value", "_filename", "_filetype", "_filesize", "_fileobj", "_style",
        "_extra_headers", "_headers", "_source", "_check_growth", "cb",
    )

    name = _frozen("name")
    value = _frozen("value")
    filename = _frozen("filename")
    filetype = _frozen("filetype")
    filesize = _frozen("filesize")
    fileobj = _frozen("fileobj")
    style = _frozen("style")
    headers = _frozen("extra_headers")

    _name: Optional[str]
    _value: Optional[bytes]
    _filename: Optional[str]
    _filetype: Optional[str]
    _filesize: Optional[int]
    _fileobj: Any
    _style: str
    _headers: bytes
    _source: Optional[Union[Source, DigestSource]]
    _check_growth: bool

    def __init__(
        self,
        name: Optional[Union[str, bytes]],
        value: Any = None,
        filename: Optional[Union[str, bytes]] = None,
        filetype: Optional[Union[str, bytes]] = None,
        filesize: Optional[int] = None,
        fileobj: Any = None,
        cb: Optional[Callback] = None,
        *,
        style: str = "poster",
        headers: Any = None,
    ) -> None:
        check_style(style)
        if value is not None and fileobj is not None:
            raise ValueError("Only one of value or fileobj may be specified")
        # The common types are taken as they are: many small fields are made
        # by the thousand, so the checks below stay off their path.
        self._name = name if type(name) is str or name is None else _as_text(name, "name")
        self._filename = filename if filename is None or type(filename) is str else _as_text(filename, "filename")
        self._filetype = filetype if filetype is None or type(filetype) is str else _as_text(filetype, "filetype")
        self._style = style
        self.cb = cb
        self._fileobj = fileobj
        self._value = value if value is None or type(value) is bytes else _as_bytes(value)
        self._headers = _backend.impl.render_part_headers(
            self._name, self._filename, self._filetype, style == "html5"
        )
        self._extra_headers = _header_lines(headers) if headers is not None else ()
        if self._extra_headers:
            # Its own lines go after Content-Disposition and Content-Type,
            # before the blank line that ends the headers.
            self._headers = self._headers[:-2] + b"".join(
                f"{name}: {value}\r\n".encode("utf-8") for name, value in self._extra_headers
            ) + b"\r\n"
        if filesize is not None:
            if isinstance(filesize, bool) or not isinstance(filesize, int):
                raise TypeError(f"filesize must be an int, not {type(filesize).__name__}")
            if filesize < 0:
                raise ValueError(f"filesize must not be negative, got {filesize}")
        if self._value is not None and filesize is not None and filesize != len(self._value):
            raise ValueError(
                f"filesize={filesize} does not match the value's {len(self._value)} bytes"
            )
        self._filesize = filesize
        # A file given its size sends that many bytes of it; one measured
        # here must not have grown meanwhile, and an iterable must give no more.
        self._check_growth = filesize is None
        self._source = None
        if fileobj is not None:
            kind = _content_kind(fileobj)
            if kind == "file":
                start = tell_or_none(fileobj)
                _check_binary_file(fileobj, start)
                if filesize is None:
                    self._filesize = _remaining_size(fileobj, start)
                self._source = source_for(fileobj, start)
            elif kind == "chunks":
                size = _chunks_size(fileobj, self.label())
                if filesize is None:
                    self._filesize = size
                self._check_growth = True
                self._source = IterableSource(fileobj)
            else:
                if filesize is None:
                    self._filesize = _async_size(fileobj)
                self._check_growth = True
                self._source = AsyncSource(fileobj)

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        paramname: Optional[Union[str, bytes]],
        filename: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"],
        *,
        style: str = "poster",
        headers: Any = None,
    ) -> "MultipartParam":
        """A file part for the file at ``filename`` (a path or ``os.PathLike``).

        The size comes from the file system, the type from
        ``mimetypes.guess_type`` and the sent filename is the base name (bytes
        of it that are not UTF-8 written ``%XX``).  The file is opened by each
        body only when its part is reached, checked to be the very file
        measured here, and closed right after, so a body can hold any number
        of files.  A missing or unreadable file raises here, not in the middle
        of an upload.
        """
        path = os.fspath(filename)
        identity = _backend.impl.measure_file(path)  # FileNotFoundError / PermissionError, now
        if identity is None:
            raise ValueError(f"{path!r} is not a regular file; only files can be uploaded")
        if not os.access(path, os.R_OK):
            raise PermissionError(f"{path!r} is not readable")
        basename = _sendable_filename(path)
        param = cls(
            paramname,
            filename=basename,
            filetype=mimetypes.guess_type(basename)[0],
            filesize=identity[2],
            style=style,
            headers=headers,
        )
        param._source = PathSource(path, identity)
        param._check_growth = True
        return param

    @classmethod
    def digest_of(
        cls,
        name: Optional[Union[str, bytes]],
        part: "MultipartParam",
        algorithm: str = "sha256",
        *,
        style: str = "poster",
        headers: Any = None,
    ) -> "MultipartParam":
        """A text part whose value is the hex digest of ``part``'s content as sent.

        Place it after ``part`` in the same body: the body hashes ``part``'s
        content as it produces it (no second read) and sends the digest
        here.  Its length is the digest's, known in advance, so the body
        keeps an exact ``Content-Length``.  ``algorithm`` is any of
        ``hashlib``'s with a fixed length.
        """
        if not isinstance(part, MultipartParam):
            raise TypeError(f"digest_of takes the MultipartParam to hash, not {type(part).__name__}")
        param = cls(name, filesize=check_algorithm(algorithm), style=style, headers=headers)
        param._source = DigestSource(part, algorithm)
        param._check_growth = False
        return param

    @classmethod
    def from_params(cls, params: ParamsInput, *, style: str = "poster") -> List["MultipartParam"]:
        """Turn ``params`` into a list of :class:`MultipartParam`.

        ``params`` is a mapping or a sequence of ``(name, value)`` pairs and
        ``MultipartParam`` objects.  A value that has ``read`` becomes a file
        part, with ``filename`` the base name of its ``name`` attribute (when
        a ``str``) and a type guessed from it.  A ``MultipartParam`` given as
        the value of a pair must carry the same name.
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
                if value._name != (None if name is None else _as_text(name, "name")):
                    raise ParamNameMismatchError(
                        f"MultipartParam named {value._name!r} was given under the name {name!r}"
                    )
                result.append(value)
            elif hasattr(value, "read") or _is_stream(value):
                path = getattr(value, "name", None)
                # The base name only: a full local path is nobody else's business.
                filename = _sendable_filename(path) if isinstance(path, str) else None
                filetype = mimetypes.guess_type(filename)[0] if filename else None
                result.append(cls(name, filename=filename, filetype=filetype, fileobj=value, style=style))
            else:
                result.append(cls(name, value, style=style))
        return result

    # -- comparison ---------------------------------------------------------

    def _identity(self) -> Tuple[Any, ...]:
        source: Any = self._source.path if isinstance(self._source, PathSource) else self._fileobj
        return (self._name, self._value, self._filename, self._filetype, self._filesize, source,
                self._extra_headers)

    def _sort_key(self) -> Tuple[Any, ...]:
        return (
            self._name is not None, self._name or "",
            self._value is not None, self._value or b"",
            self._filename is not None, self._filename or "",
            self._filetype is not None, self._filetype or "",
            self._filesize is not None, self._filesize or 0,
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
        content = f"value={self._value!r}" if self._value is not None else f"filesize={self._filesize}"
        extra = f", filename={self._filename!r}" if self._filename is not None else ""
        return f"<MultipartParam {self._name!r} {content}{extra}>"

    # -- the part protocol: size and content ----------------------------------

    def content_size(self) -> Optional[int]:
        """The number of content bytes, known without reading anything;
        None for content of unknown length (a stream, a generator)."""
        if self._value is not None:
            return len(self._value)
        if self._filesize is None and self._source is None:
            raise ValueError(f"part {self._name!r} has no value, file or filesize")
        return self._filesize

    def size(self, delimiter_length: int) -> Optional[int]:
        """The part's size for a delimiter of ``delimiter_length`` bytes (None: not known)."""
        return part_size(delimiter_length, len(self._headers), self.content_size())

    def label(self) -> str:
        """How errors name this part."""
        return f"part {self._name!r}" if self._name is not None else "a part without a name"

    def check_sendable(self) -> None:
        """Raise now what a body would raise when it reached this part's content."""
        if self._value is None and self._source is None:
            raise ValueError(f"part {self._name!r} has neither a value nor a file to read")

    # -- poster 0.8.1's per-part methods ---------------------------------------

    def encode_hdr(self, boundary: Boundary) -> bytes:
        """The part's delimiter line and headers, ending in the blank line."""
        return delimiter_of(boundary) + b"\r\n" + self._headers

    def get_size(self, boundary: Boundary) -> Optional[int]:
        """``len(self.encode(boundary))``, computed without reading anything
        (None for content of unknown length)."""
        return self.size(len(delimiter_of(boundary)))

    def encode(self, boundary: Boundary) -> bytes:
        """Header, content and CRLF as one ``bytes`` (a file part reads its file)."""
        from poster._body import DEFAULT_BLOCKSIZE, part_blocks

        return b"".join(part_blocks(self, delimiter_of(boundary), DEFAULT_BLOCKSIZE, False))

    def iter_encode(self, boundary: Boundary, blocksize: int = 4096) -> Iterator[bytes]:
        """Yield the part as ``bytes``: the header, content blocks, the CRLF."""
        from poster._body import part_blocks

        check_blocksize(blocksize)
        return part_blocks(self, delimiter_of(boundary), blocksize, True)

    def reset(self) -> None:
        """Rewind a file object to where the content started.

        Every encoding reads the content from there anyway; this puts the
        object's own position back, as poster 0.8.1 did.  Raises
        ``ValueError`` when the file cannot seek and some of it was read.
        """
        if self._source is not None:
            self._source.reset()
        elif self._value is None:
            raise ValueError(f"part {self._name!r} has no content to reset")


class TextRun:
    """Text fields given as ``(name, value)`` pairs, kept as pairs.

    :func:`poster.encode.multipart_encode` keeps runs of plain text fields
    this way, so that thousands of small fields do not each become a
    :class:`MultipartParam`: the hot path measured them and checked them for
    the boundary (``measure_text_pairs``), and the body's walk writes them
    (``write_text_pairs``) block by block as the body is sent, as the params
    would give them.  A body thus holds no rendered copy of its fields.  The
    pairs hold only ``str`` and ``bytes``, which cannot change.  The params
    are made from ``pairs`` only when asked for (:meth:`to_params`).
    """

    __slots__ = ("pairs", "style", "html5", "length")

    #: No value of its own: render_value_parts stops before a run, as it
    #: stops before a file part; and nothing to read.
    _value = None
    _source = None

    def __init__(self, pairs: List[Tuple[Any, Any]], style: str, length: int) -> None:
        self.pairs = pairs
        self.style = style
        self.html5 = style == "html5"
        self.length = length

    def size(self, delimiter_length: int) -> int:
        return self.length

    def to_params(self) -> List[MultipartParam]:
        return MultipartParam.from_params(self.pairs, style=self.style)


Part = Union[MultipartParam, TextRun]


def parts_from_params(params: ParamsInput, delimiter: bytes, style: str, limit: int) -> List[Part]:
    """:meth:`MultipartParam.from_params`, with runs of plain text pairs kept as :class:`TextRun`.

    Runs are measured about ``limit`` bytes at a time; every other item (and
    a pair the hot path does not take, which then raises its error) becomes a
    param exactly as ``from_params`` makes it.
    """
    items = list(params.items()) if hasattr(params, "items") else list(params)
    parts: List[Part] = []
    html5 = style == "html5"
    measure_text_pairs = _backend.impl.measure_text_pairs
    index = 0
    while index < len(items):
        item = items[index]
        if isinstance(item, MultipartParam):  # what from_params would do
            parts.append(item)
            index += 1
            continue
        length, stop = measure_text_pairs(items, index, delimiter, html5, limit)
        if stop > index:
            parts.append(TextRun(items[index:stop], style, length))
        else:
            stop = index + 1
            parts += MultipartParam.from_params(items[index:stop], style=style)
        index = stop
    return parts
