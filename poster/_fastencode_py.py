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
* :func:`read_block` and :func:`readinto_exact` move file content.
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = [
    "BoundaryScanner",
    "find_collision",
    "render_part_headers",
    "read_block",
    "readinto_exact",
]

class BoundaryScanner:
    """Finds ``delimiter`` at the start of a part's content or right after a LF.

    Feed it the content block after block; :meth:`feed` returns the offset
    (counted from the start of the content) where the first collision begins,
    or -1.  The content is scanned as if a LF stood just before it, so a
    delimiter at the very start is found like any other.  The last
    ``len(delimiter)`` bytes seen are kept, so a delimiter split across two
    blocks is found as well.
    """

    def __init__(self, delimiter: bytes) -> None:
        if not isinstance(delimiter, bytes) or not delimiter:
            raise ValueError("delimiter must be non-empty bytes")
        self.delimiter = delimiter
        self._pattern = b"\n" + delimiter
        self.reset()

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
        data = bytes(block) if not isinstance(block, bytes) else block
        pattern = self._pattern
        tail = self._tail
        # A match that starts in the tail and ends in this block.
        if tail:
            edge = tail + data[: len(pattern) - 1]
            index = edge.find(pattern)
            if index >= 0:
                self._found = self._consumed - len(tail) + index + 1
                return self._found
        index = data.find(pattern)
        if index >= 0:
            self._found = self._consumed + index + 1
            return self._found
        keep = len(pattern) - 1
        if len(data) >= keep:
            self._tail = data[len(data) - keep:]
        else:
            self._tail = (tail + data)[-keep:]
        self._consumed += len(data)
        return -1


def find_collision(delimiter: bytes, data: Any) -> int:
    """One-shot :class:`BoundaryScanner`: the first collision offset in ``data`` or -1."""
    return BoundaryScanner(delimiter).feed(data)


# ---------------------------------------------------------------------------
# Header rendering


def _as_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
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
    # route here, so no raw CR, LF or NUL can reach the header line; the word
    # is never folded, and leading white space is kept.
    if _is_plain_ascii(name):
        return name.replace("\\", "\\\\").replace('"', '\\"').encode("ascii")
    encoded = base64.b64encode(_utf8(name, "name")).decode("ascii")
    return f"=?utf-8?b?{encoded}?=".encode("ascii")


_STRING_ESCAPES = {
    ord("\\"): "\\\\",
    ord("'"): "\\'",
    ord('"'): '\\"',
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
}


def _quote_filename_poster(filename: str) -> bytes:
    # poster 0.8.1: non-ASCII characters become XML character references,
    # then Python 2's "string_escape" codec, then '"' becomes '\"'.
    out = []
    for char in filename:
        code = ord(char)
        if code > 0x7F:
            out.append(f"&#{code};")
        elif code in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[code])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out).encode("ascii")


def _quote_html5(text: str, what: str) -> bytes:
    # WHATWG multipart/form-data encoding escapes '"', CR and LF.  A backslash
    # is doubled as well: parsers (werkzeug, python-multipart) read quoted
    # strings with backslash escapes, so a raw one would be lost, or would
    # swallow the closing quote when it ends the value.
    if "\x00" in text:
        raise ValueError(
            f"{what} {text!r} contains a NUL character, which cannot be sent in "
            "a header; remove it"
        )
    quoted = text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
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
    ``bytes``; ``filename`` and ``filetype`` may be ``None``.
    """
    name = _as_text(name, "name")
    if filename is not None:
        filename = _as_text(filename, "filename")
    ctype = None
    if filetype is not None:
        ctype = _check_filetype(_as_text(filetype, "filetype"))

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


# ---------------------------------------------------------------------------
# Moving file content


def _short_read_error(fileobj: Any) -> TypeError:
    return TypeError(
        f"{type(fileobj).__name__}.read() returned None: non-blocking files "
        "cannot be streamed; pass a blocking binary file"
    )


def read_block(fileobj: Any, size: int) -> bytes:
    """Read ``size`` bytes from ``fileobj``, fewer only at end of file.

    Short reads (pipes, raw files) are retried until ``size`` bytes have come
    or ``read`` returns ``b""``.
    """
    block = fileobj.read(size)
    if block is None:
        raise _short_read_error(fileobj)
    if not isinstance(block, bytes):
        block = _binary(block, fileobj)
    if len(block) >= size or not block:
        return block
    pieces = [block]
    got = len(block)
    while got < size:
        more = fileobj.read(size - got)
        if more is None:
            raise _short_read_error(fileobj)
        if not more:
            break
        if not isinstance(more, bytes):
            more = _binary(more, fileobj)
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def _binary(block: Any, fileobj: Any) -> bytes:
    if isinstance(block, str):
        raise TypeError(
            f"{type(fileobj).__name__} returned str: open the file in binary "
            "mode ('rb')"
        )
    return bytes(block)


def readinto_exact(fileobj: Any, buffer: Any) -> int:
    """Fill the writable ``buffer`` from ``fileobj``; return the byte count.

    Fewer than ``len(buffer)`` bytes only at end of file.  Objects without
    ``readinto`` are read with ``read``.
    """
    view = memoryview(buffer).cast("B")
    size = len(view)
    got = 0
    readinto = getattr(fileobj, "readinto", None)
    while got < size:
        if readinto is not None:
            n = readinto(view[got:])
            if n is None:
                raise _short_read_error(fileobj)
        else:
            chunk = fileobj.read(size - got)
            if chunk is None:
                raise _short_read_error(fileobj)
            if not isinstance(chunk, bytes):
                chunk = _binary(chunk, fileobj)
            n = len(chunk)
            view[got:got + n] = chunk
        if not n:
            break
        got += n
    return got
