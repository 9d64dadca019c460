"""The hot path of poster, in pure Python.

This module is the readable reference for ``src/_fastencode.pyx``: both define
the same names with the same signatures and must give byte-identical results
and raise the same errors for every input.  ``poster._backend`` picks one of
them at import time.

It owns every loop over bytes:

* :class:`BoundaryScanner` looks for a delimiter inside part content, carrying
  its state across block edges;
* :func:`render_part_headers` quotes names and filenames and renders the
  header lines of one part, in either header style;
* :func:`render_value_parts` renders a run of in-memory parts in one call,
  :func:`render_text_pairs` a run of plain ``(name, value)`` text fields
  without making a param for each (:func:`measure_text_pairs` measures
  one, :func:`write_text_pairs` renders one that was measured);
* :class:`BlockReader` and :func:`readinto_exact` move file content, and
  :class:`FileContent` hands out a file part's content block by block,
  checked for the boundary and for its size; it raises the errors of
  :mod:`poster.errors` itself;
* :func:`measure_file` measures a file by its path, and :func:`is_same_file`
  tells whether a file opened again is the one measured;
* :func:`reads_hold_gil` asks this thread's reads by offset to keep the GIL
  for what the page cache holds (the compiled backend only: here a read is
  ``os.preadv``, which always lets it go).
"""

from __future__ import annotations

import base64
import os
import stat
import sys
from typing import Any, List, Optional, Tuple

from poster.errors import BoundaryCollisionError, ContentSizeError

__all__ = [
    "BoundaryScanner",
    "find_collision",
    "render_part_headers",
    "render_value_parts",
    "render_text_pairs",
    "measure_text_pairs",
    "write_text_pairs",
    "BlockReader",
    "FileContent",
    "readinto_exact",
    "measure_file",
    "is_same_file",
    "reads_hold_gil",
]

def _check_delimiter(delimiter: Any) -> None:
    if not isinstance(delimiter, bytes) or not delimiter:
        raise ValueError("delimiter must be non-empty bytes")


#: Delimiters not after a line break that are passed over one by one; past
#: that many in one block (a boundary such as "-" in a table of dashes), two
#: searches (LF + delimiter, CR + delimiter) take over.
_NEAR_MISSES = 8


def _find_after_line_break(data: bytes, delimiter: bytes) -> int:
    """The offset of the first CR or LF in ``data`` that ``delimiter`` follows, or -1."""
    at = data.find(delimiter, 1)
    if at < 0:  # the common case: one search
        return -1
    for _ in range(_NEAR_MISSES):
        if data[at - 1] in b"\r\n":
            return at - 1
        at = data.find(delimiter, at + 1)
        if at < 0:
            return -1
    # Every delimiter before ``at`` was passed over: a match starts at at - 1 or later.
    lf = data.find(b"\n" + delimiter, at - 1)
    cr = data.find(b"\r" + delimiter, at - 1, len(data) if lf < 0 else lf + len(delimiter))
    return lf if cr < 0 else cr


def _as_bytes(block: Any) -> bytes:
    # memoryview() raises the TypeError for objects that are not buffers;
    # any buffer, strided or not, is taken as its bytes in C order (a bytes
    # subclass too: its buffer, whatever its __len__ or __bytes__ say).
    return block if type(block) is bytes else memoryview(block).tobytes()


class BoundaryScanner:
    """Finds ``delimiter`` at the start of a part's content or right after a
    line break, CR or LF (werkzeug and the email package split a body after
    a bare CR too).

    Feed it the content block after block; :meth:`feed` returns the offset
    (counted from the start of the content) where the first collision begins,
    or -1.  The content is scanned as if a LF stood just before it, so a
    delimiter at the very start is found like any other.  The last
    ``len(delimiter)`` bytes seen are kept, so a delimiter split across two
    blocks is found as well.  A scanner is not meant to be fed from two
    threads at once.
    """

    def __init__(self, delimiter: bytes) -> None:
        _check_delimiter(delimiter)
        self._delimiter = delimiter
        self.reset()

    @property
    def delimiter(self) -> bytes:
        """The delimiter (``--`` + boundary) looked for."""
        return self._delimiter

    def reset(self) -> None:
        """Start a new part: forget what was fed so far."""
        # The virtual LF that precedes the content; its offset is -1.
        self._tail = b"\n"
        self._consumed = 0
        self._found = -1

    @property
    def position(self) -> int:
        """How many bytes of content have been fed since the last reset."""
        return self._consumed

    def feed(self, block: Any) -> int:
        """Scan the next block of content; return the first collision offset or -1.

        Once a collision has been found, every later call returns the same
        offset.
        """
        if self._found >= 0:
            return self._found
        data = _as_bytes(block)
        delimiter = self._delimiter
        keep = len(delimiter)
        tail = self._tail
        # A match that starts in the tail and ends in this block.
        if tail:
            edge = tail + data[:keep]
            index = _find_after_line_break(edge, delimiter)
            if index >= 0:
                self._found = self._consumed - len(tail) + index + 1
                return self._found
        index = _find_after_line_break(data, delimiter)
        if index >= 0:
            self._found = self._consumed + index + 1
            return self._found
        if len(data) >= keep:
            self._tail = data[len(data) - keep:]
        else:
            self._tail = (tail + data)[-keep:]
        self._consumed += len(data)
        return -1


def find_collision(delimiter: bytes, data: Any) -> int:
    """One-shot :class:`BoundaryScanner`: the first collision offset in ``data`` or -1."""
    _check_delimiter(delimiter)
    data = _as_bytes(data)
    if data.startswith(delimiter):  # after the virtual LF
        return 0
    index = _find_after_line_break(data, delimiter)
    return index + 1 if index >= 0 else -1


# ---------------------------------------------------------------------------
# Header rendering


def _as_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        # A subclass (markupsafe's Markup, say) may change what its methods
        # do, replace() and encode() among them: its characters are taken
        # as a plain str.
        return value if type(value) is str else str.__getitem__(value, slice(None))
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{what} {bytes(value)!r} is not valid UTF-8; pass it as str"
            ) from None
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} {text!r} cannot be encoded as UTF-8 ({exc.reason}); "
            "remove the lone surrogate"
        ) from None


def _is_plain_ascii(text: str) -> bool:
    """Printable ASCII and space only: nothing to encode in poster style."""
    for char in text:
        if not " " <= char <= "~":
            return False
    return True


def _quote_name_poster(name: str) -> bytes:
    # poster 0.8.1 passed names through email.header.Header: non-ASCII names
    # became one RFC 2047 encoded word.  Control characters take the same
    # route here, so no raw CR, LF or NUL can reach the header line, and so
    # do a '"' and a "=?" (which the email package would take for the start
    # of an encoded word); the word is never folded, and leading white space
    # is kept.  A backslash never sits inside the quoted value, where parsers
    # read it as an escape: it is written as the character reference
    # "&#92;", as in filenames, before any encoding (the email package
    # decodes an encoded word inside a quoted string, then misreads a value
    # that ends in a backslash).
    if _is_plain_ascii(name) and '"' not in name and "=?" not in name:
        return name.replace("\\", "&#92;").encode("ascii")
    encoded = base64.b64encode(_utf8(name, "name").replace(b"\\", b"&#92;")).decode("ascii")
    return f"=?utf-8?b?{encoded}?=".encode("ascii")


def _quote_filename_poster(filename: str) -> bytes:
    # poster 0.8.1 wrote non-ASCII characters as XML character references
    # ("&#9731;").  Every character a parser could misread takes the same
    # route: '\\', '"' and "'" (0.8.1 escaped these with a backslash, which
    # parsers read as an escape), control characters, and the '=' of a "=?"
    # (the email package would take it for the start of an encoded word).
    # So no backslash is ever written.
    out = []
    last = len(filename) - 1
    for index, char in enumerate(filename):
        code = ord(char)
        if (
            code > 0x7E
            or code < 0x20
            or char in "\\'\""
            or (char == "=" and index < last and filename[index + 1] == "?")
        ):
            out.append(f"&#{code};")
        else:
            out.append(char)
    return "".join(out).encode("ascii")


def _quote_html5(text: str, what: str) -> bytes:
    # WHATWG multipart/form-data encoding escapes '"', CR and LF as %22, %0D
    # and %0A.  A backslash is written %5C the same way: parsers (werkzeug,
    # python-multipart, multipart, email) read quoted strings with backslash
    # escapes, so a raw one could swallow the closing quote and let the rest
    # of the value be read as other parameters.  The '=' of a "=?" is %3D:
    # the email package would take "=?" for the start of an encoded word.
    if "\x00" in text:
        raise ValueError(
            f"{what} {text!r} contains a NUL character, which cannot be sent in "
            "a header; remove it"
        )
    quoted = (
        text.replace("\\", "%5C")
        .replace('"', "%22")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace("=?", "%3D?")
    )
    return _utf8(quoted, what)


def _check_filetype(filetype: str) -> bytes:
    for char in filetype:
        if char < " " or char == "\x7f":
            raise ValueError(
                f"filetype {filetype!r} contains the control character "
                f"{char!r}; a content type must be a single header-safe line "
                "such as 'text/csv'"
            )
    return _utf8(filetype, "filetype")


def render_part_headers(
    name: Any,
    filename: Any = None,
    filetype: Any = None,
    html5: bool = False,
) -> bytes:
    """The header lines of one part, after its delimiter line, up to and
    including the blank line that ends them.

    ``html5=False`` renders poster 0.8.1's bytes; ``html5=True`` what browsers
    send.  ``name``, ``filename`` and ``filetype`` are ``str`` or UTF-8
    ``bytes``; each may be ``None``.  A part without a name (one of a body
    that is not form-data) gets no form-data disposition: see
    :func:`_nameless_headers`.
    """
    if name is not None:
        name = _as_text(name, "name")
    if filename is not None:
        filename = _as_text(filename, "filename")
    ctype = None
    if filetype is not None:
        # An empty filetype is no type: the style's default applies.
        ctype = _check_filetype(_as_text(filetype, "filetype")) or None

    if name is None:
        return _nameless_headers(filename, ctype, html5)
    if html5:
        disposition = b'Content-Disposition: form-data; name="' + _quote_html5(name, "name") + b'"'
        if filename is not None:
            disposition += b'; filename="' + _quote_html5(filename, "filename") + b'"'
            if ctype is None:
                ctype = b"application/octet-stream"
    else:
        disposition = b'Content-Disposition: form-data; name="' + _quote_name_poster(name) + b'"'
        # poster 0.8.1 left out an empty filename.
        if filename:
            disposition += b'; filename="' + _quote_filename_poster(filename) + b'"'
        if not ctype:
            ctype = b"text/plain; charset=utf-8"

    if ctype is None:
        return disposition + b"\r\n\r\n"
    return disposition + b"\r\nContent-Type: " + ctype + b"\r\n\r\n"


def _nameless_headers(filename: Any, ctype: Any, html5: Any) -> bytes:
    """The header lines of a part without a name, as :func:`render_part_headers`.

    A filename makes ``Content-Disposition: attachment; filename="..."``
    (what mail sends in multipart/mixed), quoted as in that style; poster
    style leaves out an empty one, as for named parts.  There is always a
    ``Content-Type``: the one given, else ``text/plain; charset=utf-8``
    (poster style's default), except for a part with a filename in html5
    style, which gets ``application/octet-stream`` as its files do.
    Outside form-data a part without a ``Content-Type`` would be read as
    US-ASCII text (RFC 2046), so html5 style writes it for text too.
    """
    lines = []
    if html5:
        if filename is not None:
            lines.append(b'Content-Disposition: attachment; filename="' + _quote_html5(filename, "filename") + b'"')
            if ctype is None:
                ctype = b"application/octet-stream"
        if ctype is None:
            ctype = b"text/plain; charset=utf-8"
    else:
        if filename:
            lines.append(b'Content-Disposition: attachment; filename="' + _quote_filename_poster(filename) + b'"')
        if not ctype:
            ctype = b"text/plain; charset=utf-8"
    lines.append(b"Content-Type: " + ctype)
    return b"\r\n".join(lines) + b"\r\n\r\n"


# ---------------------------------------------------------------------------
# Runs of in-memory parts


def _clamp_index(value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def _check_run_arguments(items: Any, what: str, start: Any, delimiter: Any, limit: Any) -> None:
    """The checks render_value_parts and render_text_pairs make of their arguments."""
    if not isinstance(items, list):
        raise TypeError(f"{what} must be a list, not {type(items).__name__}")
    _check_delimiter(delimiter)
    _clamp_index(start, "start")
    if start < 0:
        raise ValueError(f"start must not be negative, got {start}")
    _clamp_index(limit, "limit")


def render_value_parts(
    params: List[Any], start: int, delimiter: bytes, limit: int
) -> Tuple[bytes, int, bool]:
    """Render consecutive in-memory parts, ``params[start:stop]``, as one ``bytes``.

    ``params`` is a list of objects with ``_value`` (``bytes``, or ``None``
    for a file part) and ``_headers`` (the rendered header lines), as
    ``MultipartParam`` has.  Each part is ``delimiter`` CRLF, the headers,
    the value, CRLF.  Rendering stops at the end of ``params``, before a part
    whose value is ``None``, before a part whose value holds a collision, and
    after the part that brings the output to ``limit`` bytes or more.

    Returns ``(rendered, stop, collision)``; ``collision`` is true when
    ``params[stop]``'s value holds the delimiter.
    """
    _check_run_arguments(params, "params", start, delimiter, limit)
    delimiter_line = delimiter + b"\r\n"
    pieces: List[bytes] = []
    total = 0
    index = start
    while index < len(params):
        param = params[index]
        value = param._value
        if value is None:
            break
        headers = param._headers
        if not isinstance(value, bytes):
            raise TypeError(f"part {index}: value must be bytes, not {type(value).__name__}")
        if not isinstance(headers, bytes):
            raise TypeError(f"part {index}: _headers must be bytes, not {type(headers).__name__}")
        if find_collision(delimiter, value) >= 0:
            return b"".join(pieces), index, True
        pieces += (delimiter_line, headers, value, b"\r\n")
        total += len(delimiter_line) + len(headers) + len(value) + 2
        index += 1
        if total >= limit:
            break
    return b"".join(pieces), index, False


def render_text_pairs(
    pairs: List[Any], start: int, delimiter: bytes, html5: Any, limit: int
) -> Tuple[bytes, int]:
    """Render consecutive ``(name, value)`` pairs, ``pairs[start:stop]``, as text parts.

    Each part is the bytes ``MultipartParam(name, value)`` gives in that
    style: ``delimiter`` CRLF, ``render_part_headers(name, html5=html5)``, the
    value's bytes, CRLF; all of them in one ``bytes``, with no param made.

    A pair is taken when it is a ``tuple`` of two, its name a ``str`` that
    renders, its value a ``str`` that encodes as UTF-8 or a ``bytes``, of at
    most ``limit`` bytes and holding no collision.  Rendering stops at the end
    of ``pairs``, before the first pair not taken (the caller makes that one
    a param, which raises its error or reports its collision), and after the
    pair that brings the output to ``limit`` bytes or more.

    Returns ``(rendered, stop)``.
    """
    pieces: List[bytes] = []
    stop = _text_pairs(pairs, start, delimiter, html5, limit, pieces)
    return b"".join(pieces), stop


def measure_text_pairs(
    pairs: List[Any], start: int, delimiter: bytes, html5: Any, limit: int
) -> Tuple[int, int]:
    """What :func:`render_text_pairs` would render, measured: ``(size, stop)``.

    The same pairs are taken and the same ``stop`` is reached; ``size`` is
    the length the rendered ``bytes`` would have.  Nothing is rendered, so
    a body can hold its text fields as pairs and render them block by block
    as it is sent.
    """
    pieces: List[bytes] = []
    stop = _text_pairs(pairs, start, delimiter, html5, limit, pieces)
    return sum(map(len, pieces)), stop


def write_text_pairs(pairs: List[Any], delimiter: bytes, html5: Any, size: int) -> bytes:
    """Render every pair of ``pairs`` into one ``bytes`` of ``size`` bytes.

    ``pairs`` is a run that :func:`measure_text_pairs` took whole and
    measured at ``size`` bytes for this ``delimiter`` and style; its text
    is not checked for the boundary again.  Each pair must still be a
    ``(str, str or bytes)`` tuple, and the output exactly ``size`` bytes
    (``ValueError`` otherwise): nothing is written past it.
    """
    _check_delimiter(delimiter)
    if not isinstance(pairs, list):
        raise TypeError(f"pairs must be a list, not {type(pairs).__name__}")
    if not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0 or size > sys.maxsize:
        raise ValueError(f"size must be between 0 and {sys.maxsize}, got {size}")
    html5 = bool(html5)
    delimiter_line = delimiter + b"\r\n"
    pieces: List[bytes] = []
    at = 0
    for index, pair in enumerate(pairs):
        if type(pair) is not tuple or len(pair) != 2:
            raise TypeError(f"pair {index} is not a (name, value) tuple")
        name, value = pair
        if type(name) is not str:
            raise TypeError(f"pair {index}: the name is not a str")
        if type(value) is str:
            value = _utf8(value, "value")
        elif type(value) is not bytes:
            raise TypeError(f"pair {index}: the value is not a str or bytes")
        headers = render_part_headers(name, None, None, html5)
        part_size = len(delimiter_line) + len(headers) + len(value) + 2
        if part_size > size - at:
            raise ValueError(f"the pairs render to more than the {size} bytes measured")
        pieces += (delimiter_line, headers, value, b"\r\n")
        at += part_size
    if at != size:
        raise ValueError(f"the pairs render to {at} bytes, not the {size} measured")
    return b"".join(pieces)


def _text_pairs(
    pairs: List[Any], start: int, delimiter: bytes, html5: Any, limit: int, pieces: List[bytes]
) -> int:
    """The pieces of ``pairs[start:stop]`` rendered, appended to ``pieces``; returns ``stop``."""
    _check_run_arguments(pairs, "pairs", start, delimiter, limit)
    html5 = bool(html5)
    delimiter_line = delimiter + b"\r\n"
    total = 0
    index = start
    while index < len(pairs):
        pair = pairs[index]
        if type(pair) is not tuple or len(pair) != 2:
            break
        name, value = pair
        if type(name) is not str:
            break
        if type(value) is str:
            try:
                value = value.encode("utf-8")
            except UnicodeEncodeError:
                break
        elif type(value) is not bytes:
            break
        if len(value) > limit or find_collision(delimiter, value) >= 0:
            break
        try:
            headers = render_part_headers(name, None, None, html5)
        except ValueError:
            break
        pieces += (delimiter_line, headers, value, b"\r\n")
        total += len(delimiter_line) + len(headers) + len(value) + 2
        index += 1
        if total >= limit:
            break
    return index


# ---------------------------------------------------------------------------
# Moving file content

# The largest block a BlockReader allocates.
MAX_BLOCK = sys.maxsize // 2


def _non_blocking_error(fileobj: Any, method: str) -> TypeError:
    return TypeError(
        f"{type(fileobj).__name__}.{method}() returned None: non-blocking files "
        "cannot be streamed; pass a blocking binary file"
    )


def _checked_count(fileobj: Any, count: Any, asked: int) -> int:
    """What ``readinto`` returned, as a byte count in 0..asked."""
    if count is None:
        raise _non_blocking_error(fileobj, "readinto")
    if not isinstance(count, int):
        raise TypeError(
            f"{type(fileobj).__name__}.readinto() returned {type(count).__name__}, not int"
        )
    if count < 0 or count > asked:
        raise ValueError(
            f"{type(fileobj).__name__}.readinto() returned {count} for a "
            f"buffer of {asked} bytes"
        )
    return count


def _checked_chunk(fileobj: Any, chunk: Any, asked: int) -> bytes:
    """What ``read`` returned, as bytes of at most ``asked`` bytes.

    Only a bytes-like object is taken, as the bytes of its buffer: an ``int``
    or a list of them is no chunk (``bytes(1000)`` would be 1000 NULs), and a
    ``bytes`` subclass counts what its buffer holds, whatever its ``__len__``
    says.  The length is checked after the conversion.
    """
    if chunk is None:
        raise _non_blocking_error(fileobj, "read")
    if type(chunk) is bytes:
        data: bytes = chunk
    else:
        if isinstance(chunk, str):
            raise TypeError(
                f"{type(fileobj).__name__} returned str: open the file in binary "
                "mode ('rb')"
            )
        try:
            view = memoryview(chunk)
        except TypeError:
            raise TypeError(
                f"{type(fileobj).__name__}.read() returned {type(chunk).__name__} "
                f"{_short_repr(chunk)}, not a bytes-like object"
            ) from None
        with view:
            data = view.tobytes()
    if len(data) > asked:
        raise ValueError(
            f"{type(fileobj).__name__}.read({asked}) returned {len(data)} bytes"
        )
    return data


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked_size(size: Any) -> int:
    if not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0 or size > MAX_BLOCK:
        raise ValueError(f"size must be between 0 and {MAX_BLOCK}, got {size}")
    return size


# The largest file descriptor (a C int).
_MAX_DESCRIPTOR = 2**31 - 1


def _checked_descriptor(fd: Any) -> int:
    if not isinstance(fd, int):
        raise TypeError(f"fd must be an int, not {type(fd).__name__}")
    if fd < 0 or fd > _MAX_DESCRIPTOR:
        raise ValueError(f"fd must be a file descriptor (0 to {_MAX_DESCRIPTOR}), got {fd}")
    return fd


# The largest file offset or content size taken: two of them add up to less
# than 2**63, the range of a 64-bit off_t.
MAX_POSITION = 2**62


def _checked_position(value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0 or value > MAX_POSITION:
        raise ValueError(f"{what} must be between 0 and {MAX_POSITION}, got {value}")
    return value


def _read_with_read(fileobj: Any, size: int) -> bytes:
    """``read`` until ``size`` bytes came or it returns ``b""``."""
    block = _checked_chunk(fileobj, fileobj.read(size), size)
    got = len(block)
    if got == size or got == 0:
        return block
    pieces = [block]
    while got < size:
        more = _checked_chunk(fileobj, fileobj.read(size - got), size - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def _fill_from_readinto(fileobj: Any, readinto: Any, view: memoryview) -> int:
    """Call ``readinto`` on views of ``view`` until it is full or at end of file.

    Each view is released right after the call, so a ``readinto`` that kept
    it can no longer write through it.
    """
    size = len(view)
    got = 0
    while got < size:
        with view[got:] as target:
            result = readinto(target)
        count = _checked_count(fileobj, result, size - got)
        if count == 0:
            break
        got += count
    return got


def _read_into_own_buffer(fileobj: Any, readinto: Any, size: int) -> bytes:
    """``readinto`` a zeroed bytearray, then a copy of what came."""
    buffer = bytearray(size)
    with memoryview(buffer) as view:
        got = _fill_from_readinto(fileobj, readinto, view)
    # A copy of what came, not a resize: a readinto() that kept a slice of
    # its view would make resizing the bytearray fail.
    return bytes(buffer[:got])


class BlockReader:
    """Reads file content block after block.

    The compiled twin recycles a ``bytes`` it returned once nothing but the
    reader holds it any more, so a long file does not cost a fresh
    allocation (and fresh pages) per block; here every block is new.
    """

    def read(self, fileobj: Any, size: int) -> bytes:
        """Read ``size`` bytes from ``fileobj``, fewer only at end of file.

        With ``readinto`` the bytes land in a buffer first (the compiled twin
        has them land straight in the returned object when ``fileobj`` is a
        built-in file); short reads (pipes, raw files) are retried until
        ``size`` bytes have come or the file ends.  Objects without
        ``readinto`` are read with ``read``.
        """
        size = _checked_size(size)
        if size == 0:
            return b""
        readinto = getattr(fileobj, "readinto", None)
        if readinto is None:
            return _read_with_read(fileobj, size)
        return _read_into_own_buffer(fileobj, readinto, size)

    def pread_scanned(self, fd: int, offset: int, size: int, scanner: BoundaryScanner) -> Tuple[bytes, int]:
        """Read ``size`` bytes of the descriptor ``fd`` from ``offset`` (fewer
        only at end of file) and feed them to ``scanner``.

        Returns ``(block, scanner.feed(block))``.  The reads are ``os.pread``:
        the descriptor's position does not move.  (The compiled twin reads and
        scans in one stretch without the GIL.)
        """
        fd = _checked_descriptor(fd)
        offset = _checked_position(offset, "offset")
        size = _checked_size(size)
        if type(scanner) is not BoundaryScanner:
            raise TypeError(f"scanner must be a BoundaryScanner, not {type(scanner).__name__}")
        pieces = []
        got = 0
        while got < size:
            chunk = os.pread(fd, size - got, offset + got)
            if not chunk:
                break
            pieces.append(chunk)
            got += len(chunk)
        block = b"".join(pieces)
        return block, scanner.feed(block)

    def pread_last(self, fd: int, offset: int, size: int, scanner: BoundaryScanner) -> Tuple[bytes, int, bool]:
        """:meth:`pread_scanned` of the last ``size`` bytes of a content, and
        whether the file goes on after them.

        Returns ``(block, scanner.feed(block), more)``.  The reads ask for one
        byte more than they need, so telling that the file grew costs no
        read of its own.
        """
        fd = _checked_descriptor(fd)
        offset = _checked_position(offset, "offset")
        size = _checked_size(size)
        if type(scanner) is not BoundaryScanner:
            raise TypeError(f"scanner must be a BoundaryScanner, not {type(scanner).__name__}")
        if size == 0:
            return b"", scanner.feed(b""), len(os.pread(fd, 1, offset)) > 0
        pieces = []
        got = 0
        more = False
        while got < size:
            # A read that fills the bytes asked but not the one more ended at
            # end of file: a regular file reads all it has.
            chunk = os.pread(fd, size - got + 1, offset + got)
            if not chunk:
                break
            if len(chunk) > size - got:
                more = True
                chunk = chunk[: size - got]
            pieces.append(chunk)
            got += len(chunk)
        block = b"".join(pieces)
        return block, scanner.feed(block), more


class FileContent:
    """The content of one file part, as checked blocks: an iterator.

    ``source`` is a file descriptor, read by offset from ``start`` with
    :meth:`BlockReader.pread_scanned` (read and scanned without the GIL), or
    a callable ``read(n)`` giving the next ``n`` bytes (fewer only at end of
    file), whose blocks are fed to a :class:`BoundaryScanner`.  ``size``
    bytes are read (``None``: up to the end of the source, however long),
    ``blocksize`` at a time, or one byte more than the delimiter when that is
    more: then a colliding delimiter spans two blocks at most, and no byte of
    it leaves.

    A block is yielded only once the next one has been read and scanned, and
    the last once the end was checked: with ``check_growth``, the source must
    have no byte after ``size``.  A problem raises, the pending block held
    back: :class:`~poster.errors.ContentSizeError` when the source ended
    early or (``check_growth``) has more, or
    :class:`~poster.errors.BoundaryCollisionError` for the delimiter (at
    content offset :attr:`collision`).  ``label`` names the part in their
    messages.  :attr:`position` is ``start`` plus the bytes read so far.

    ``head`` and ``tail`` (``bytes``) go around the content: the first block
    starts with ``head`` and the last ends with ``tail`` (an empty content
    is the one block ``head + tail``, when that is not empty).  They are
    neither scanned nor counted in :attr:`position` (here they are joined
    to the blocks; the compiled twin reads content by offset into the block
    after ``head``, with no copy).

    :meth:`until_last` makes it stop before the last block, which is then
    :attr:`last` (once every check has passed).
    """

    def __init__(
        self, source: Any, start: int, size: Optional[int], blocksize: int, delimiter: bytes,
        check_growth: Any, label: str, head: bytes = b"", tail: bytes = b"",
    ) -> None:
        if isinstance(source, int):
            self._fd: int = _checked_descriptor(source)
            self._read: Any = None
        elif callable(source):
            self._fd = -1
            self._read = source
        else:
            raise TypeError(
                f"source must be a file descriptor or a read callable, not {type(source).__name__}"
            )
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        if type(head) is not bytes or type(tail) is not bytes:
            raise TypeError(
                f"head and tail must be bytes, not {type(head).__name__} and {type(tail).__name__}"
            )
        self._head = head  # b"" once a block took it
        self._tail = tail  # b"" once a block took it
        self._hold = False  # keep the last block back, as ``last``
        self.last: Optional[bytes] = None
        begin = _checked_position(start, "start")
        self._open_ended = size is None
        length = MAX_POSITION - begin if size is None else _checked_position(size, "size")
        self._blocksize = _checked_size(blocksize)
        if self._blocksize == 0:
            raise ValueError("blocksize must be positive")
        self._scanner = BoundaryScanner(delimiter)
        self._blocksize = max(self._blocksize, len(delimiter) + 1)
        self._reader = BlockReader()
        self._check_growth = bool(check_growth)
        self._label = label
        self._start = begin
        self._end = begin + length
        self.position = begin
        self.collision = -1
        self._pending: Any = None
        self._done = False
        # Whether the last read found more bytes after the content (None: not asked).
        self._more: Optional[bool] = None

    def __iter__(self) -> "FileContent":
        return self

    def until_last(self) -> "FileContent":
        """This iterator, made to stop before the last block: that one is
        :attr:`last` once the iteration has ended without an error."""
        self._hold = True
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        while self.position < self._end:
            n = min(self._blocksize, self._end - self.position)
            last = not self._open_ended and self.position + n == self._end
            if self._read is None:
                if self._check_growth and last:
                    # The last block: its read tells whether the file grew.
                    block, found, self._more = self._reader.pread_last(self._fd, self.position, n, self._scanner)
                else:
                    block, found = self._reader.pread_scanned(self._fd, self.position, n, self._scanner)
            else:
                block = self._read(n)
                found = self._scanner.feed(block)
            got = len(block)
            tail = self._tail if last and got == n else b""
            if self._head or tail:
                block = self._head + block + tail
            if got:
                self._head = b""
                if tail:
                    self._tail = b""
            self.position += got
            if got == 0:
                if self._open_ended:
                    break
                self._stop()
                raise ContentSizeError(
                    f"{self._label}: the file ended after {self.position - self._start} "
                    f"of {self._end - self._start} bytes; it shrank since the part was made"
                )
            if found >= 0:
                self.collision = found
                self._stop()
                raise BoundaryCollisionError(
                    f"boundary found in the file of {self._label} at byte {found}; "
                    "use another boundary"
                )
            pending, self._pending = self._pending, block
            if pending is not None:
                return pending
        if self._check_growth and not self._open_ended and self._grew():
            self._stop()
            raise ContentSizeError(
                f"{self._label}: the file is longer than the {self._end - self._start} "
                "bytes announced; it grew since the part was made"
            )
        self._done = True
        pending, self._pending = self._pending, None
        if self._head or self._tail:
            # No block took them: no content (head), or it ended open (tail).
            pending = self._head + self._tail if pending is None else pending + self._tail
            self._head = self._tail = b""
        if pending is None:
            raise StopIteration
        if self._hold:
            self.last = pending
            raise StopIteration
        return pending

    def _grew(self) -> bool:
        if self._more is not None:
            return self._more
        if self._read is None:
            return len(os.pread(self._fd, 1, self.position)) > 0
        return len(self._read(1)) > 0

    def _stop(self) -> None:
        self._done = True
        self._pending = None


def _writable_bytes_view(buffer: Any) -> memoryview:
    """A 1-D, writable, unsigned-byte view of ``buffer``; ``buffer`` itself when it is one."""
    if type(buffer) is memoryview:
        view = buffer
        if not view.readonly and view.ndim == 1 and view.format == "B" and view.c_contiguous:
            return view
    else:
        view = memoryview(buffer)
    if view.readonly:
        raise TypeError(f"buffer must be writable, not a read-only {type(buffer).__name__}")
    if not view.c_contiguous:
        raise ValueError("buffer must be C-contiguous")
    return view.cast("B")


def readinto_exact(fileobj: Any, buffer: Any) -> int:
    """Fill the writable ``buffer`` from ``fileobj``; return the byte count.

    Fewer than ``len(buffer)`` bytes only at end of file.  Objects without
    ``readinto`` are read with ``read``.  A ``memoryview`` of unsigned bytes
    is used as it is: the usual call allocates nothing.
    """
    view = _writable_bytes_view(buffer)
    size = len(view)
    readinto = getattr(fileobj, "readinto", None)
    got = 0
    while got < size:
        if readinto is not None:
            result = readinto(view if got == 0 else view[got:])
            count = _checked_count(fileobj, result, size - got)
        else:
            chunk = _checked_chunk(fileobj, fileobj.read(size - got), size - got)
            count = len(chunk)
            view[got:got + count] = chunk
        if count == 0:
            break
        got += count
    return got


def measure_file(path: Any) -> Optional[Tuple[int, int, int]]:
    """``(st_dev, st_ino, st_size)`` of the file at ``path`` (str or bytes),
    with the errors of ``os.stat``; None when it is not a regular file."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size) if stat.S_ISREG(st.st_mode) else None


def is_same_file(fd: int, identity: Tuple[int, int, int]) -> bool:
    """Whether the open descriptor ``fd`` is a regular file whose
    ``(st_dev, st_ino, st_size)`` is ``identity``."""
    st = os.fstat(fd)
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size) == identity


def reads_hold_gil(hold: Any) -> bool:
    """Whether this thread's reads by offset keep the GIL, as it was; from
    now on, ``hold``.  The compiled backend's reads can (on Linux: what the
    page cache holds, read with ``RWF_NOWAIT``); these are ``os.preadv``,
    which lets the GIL go whatever is asked: always False, and ``hold``
    changes nothing."""
    return False
