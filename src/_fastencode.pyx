# cython: language_level=3
"""The hot path of poster, compiled.

The twin of ``poster/_fastencode_py.py``, which is the readable reference:
both define the same names with the same signatures, give byte-identical
results and raise the same errors for every input.  Here the loops over bytes
run in C:

* :class:`BoundaryScanner` finds a delimiter 16 or 128 offsets at a time (see
  ``_fastencode_scan.h``) and releases the GIL while it scans a large block;
* :func:`render_part_headers` copies names and filenames that need no
  escaping straight from the ``str``'s ASCII storage;
* :meth:`BlockReader.read` has a built-in file's ``readinto`` fill the very
  ``bytes`` object it returns (one copy, from the kernel),
  :func:`readinto_exact` fills a buffer the caller reuses;
* :class:`FileContent` hands out a file part's content block by block, held
  back one block and checked; a regular file is read with ``pread`` and
  scanned in one stretch without the GIL (:meth:`BlockReader.pread_scanned`);
* :func:`render_value_parts` renders a run of in-memory parts into one
  ``bytes`` with a single allocation, :func:`render_text_pairs` a run of
  plain text fields straight from their ``(name, value)`` pairs;
* :func:`measure_file` and :func:`is_same_file` call ``stat`` and ``fstat``
  without making an ``os.stat_result``.

Python-level errors are raised here, at the edge (those of a body are the
classes of :mod:`poster.errors`, as in the twin); the C helpers only report
offsets and counts.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdlib cimport free, malloc, realloc
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno, PyErr_SetFromErrnoWithFilenameObject
from libc.errno cimport EINTR, errno
from libc.limits cimport INT_MAX
from libc.string cimport memcmp, memcpy, memmove, memset

import base64
import io
import os
import sys

from poster import _fastencode_py as _reference
from poster.errors import BoundaryCollisionError, ContentSizeError

cdef extern from "_fastencode_scan.h":
    Py_ssize_t poster_find(const unsigned char *data, Py_ssize_t n,
                           const unsigned char *pattern, Py_ssize_t plen) nogil
    void poster_scan_init()

poster_scan_init()

cdef extern from "Python.h":
    # Spelled with PyObject* because the bytes a block is read into is
    # resized in place, and _PyBytes_Resize needs the pointer itself.
    PyObject *bytes_new_raw "PyBytes_FromStringAndSize"(const char *v, Py_ssize_t size) except NULL
    int bytes_resize_raw "_PyBytes_Resize"(PyObject **obj, Py_ssize_t size) except -1
    char *bytes_data_raw "PyBytes_AS_STRING"(PyObject *obj)
    void decref_raw "Py_DECREF"(PyObject *obj)
    object memoryview_from_memory "PyMemoryView_FromMemory"(char *mem, Py_ssize_t size, int flags)
    int PyBUF_WRITE
    bint PyUnicode_IS_ASCII(object text)
    const unsigned char *PyUnicode_1BYTE_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    const Py_ssize_t PY_SSIZE_T_MAX

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
]

# Blocks at least this long are scanned without the GIL: the scan then takes
# far longer than handing the GIL over and back.
cdef Py_ssize_t RELEASE_GIL_AT = 16384

# The largest block a BlockReader allocates, as in the twin.
cdef object MAX_BLOCK = sys.maxsize // 2


# ---------------------------------------------------------------------------
# Boundary scanning


cdef inline long long first_collision(const unsigned char *data, Py_ssize_t n,
                                      const unsigned char *pattern, Py_ssize_t plen) noexcept nogil:
    """The first collision offset in one whole content, or -1.

    The same answer as a fresh BoundaryScanner fed the content at once: a
    delimiter at offset 0 (the virtual LF before the content), else the first
    CR or LF + delimiter, whose delimiter starts one byte later.
    """
    cdef Py_ssize_t index
    if n >= plen - 1 and memcmp(data, pattern + 1, plen - 1) == 0:
        return 0
    index = poster_find(data, n, pattern, plen)
    return index + 1 if index >= 0 else -1


cdef object check_delimiter(object delimiter):
    if not isinstance(delimiter, bytes) or not delimiter:
        raise ValueError("delimiter must be non-empty bytes")
    return b"\n" + delimiter


cdef object contiguous_bytes_owner(object block):
    """An object exposing ``block``'s bytes as one C-contiguous buffer.

    ``memoryview(block)`` raises the twin's TypeError for non-buffers; a
    strided view is copied, as the twin's ``tobytes()`` does.
    """
    if isinstance(block, bytes):
        return block
    view = memoryview(block)
    return view if view.c_contiguous else view.tobytes()


cdef class BoundaryScanner:
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

    cdef object _delimiter
    cdef bytes _pattern              # LF + delimiter (poster_find takes the LF for CR or LF)
    cdef const unsigned char *_pattern_data   # its bytes, read without the GIL
    cdef Py_ssize_t _keep            # len(_pattern) - 1: the tail kept between blocks
    cdef unsigned char *_tail        # the last _tail_len bytes seen (_keep at most)
    cdef Py_ssize_t _tail_len
    cdef unsigned char *_edge        # scratch: the tail + the head of the next block
    cdef long long _consumed
    cdef long long _found
    cdef bint _busy                  # scanning without the GIL: no other call may touch the state

    def __cinit__(self, *args, **kwargs):
        self._tail = NULL
        self._edge = NULL
        self._found = -1

    def __init__(self, delimiter):
        self.check_idle()
        pattern = check_delimiter(delimiter)
        free(self._tail)
        free(self._edge)
        self._tail = NULL
        self._edge = NULL
        self._delimiter = delimiter
        self._pattern = pattern
        self._pattern_data = <const unsigned char *>PyBytes_AS_STRING(pattern)
        self._keep = PyBytes_GET_SIZE(pattern) - 1
        self._tail = <unsigned char *>malloc(self._keep)
        self._edge = <unsigned char *>malloc(2 * self._keep)
        if self._tail == NULL or self._edge == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self._tail)
        free(self._edge)

    @property
    def delimiter(self):
        """The delimiter (``--`` + boundary) looked for."""
        return self._delimiter

    def reset(self):
        """Start a new part: forget what was fed so far."""
        if self._tail == NULL:
            raise ValueError("BoundaryScanner was not initialised")
        self.check_idle()
        # The virtual LF that precedes the content; its offset is -1.
        self._tail[0] = b"\n"
        self._tail_len = 1
        self._consumed = 0
        self._found = -1

    @property
    def position(self):
        """How many bytes of content have been fed since the last reset."""
        return self._consumed

    def feed(self, block):
        """Scan the next block of content; return the first collision offset or -1.

        Once a collision has been found, every later call returns the same
        offset.
        """
        cdef Py_buffer view
        cdef long long found
        if self._found >= 0:
            return self._found
        if self._tail == NULL:
            raise ValueError("BoundaryScanner was not initialised")
        self.check_idle()
        owner = contiguous_bytes_owner(block)
        PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
        try:
            if view.len < RELEASE_GIL_AT:
                return self._scan_nogil(<const unsigned char *>view.buf, view.len)
            # The buffer stays valid: it is held until the scan is done.
            self._busy = True
            with nogil:
                found = self._scan_nogil(<const unsigned char *>view.buf, view.len)
            self._busy = False
            return found
        finally:
            PyBuffer_Release(&view)

    cdef int check_idle(self) except -1:
        # A scanner is fed from one thread at a time; one fed from two at once
        # must fail, not have its state changed by both.
        if self._busy:
            raise RuntimeError("this BoundaryScanner is scanning in another thread")
        return 0

    cdef long long _scan_nogil(self, const unsigned char *data, Py_ssize_t n) noexcept nogil:
        """feed() of an initialised, idle scanner that has found nothing yet."""
        cdef const unsigned char *pattern = self._pattern_data
        cdef Py_ssize_t plen = self._keep + 1
        cdef Py_ssize_t keep = self._keep
        cdef Py_ssize_t head, index, total, drop
        # A match that starts in the tail and ends in this block.
        if self._tail_len:
            head = n if n < keep else keep
            memcpy(self._edge, self._tail, self._tail_len)
            memcpy(self._edge + self._tail_len, data, head)
            index = poster_find(self._edge, self._tail_len + head, pattern, plen)
            if index >= 0:
                self._found = self._consumed - self._tail_len + index + 1
                return self._found
        index = poster_find(data, n, pattern, plen)
        if index >= 0:
            self._found = self._consumed + index + 1
            return self._found
        # Keep the last ``keep`` bytes of (tail + block).
        if n >= keep:
            memcpy(self._tail, data + n - keep, keep)
            self._tail_len = keep
        else:
            total = self._tail_len + n
            drop = total - keep if total > keep else 0
            memmove(self._tail, self._tail + drop, self._tail_len - drop)
            memcpy(self._tail + self._tail_len - drop, data, n)
            self._tail_len = total - drop
        self._consumed += n
        return -1


def find_collision(delimiter, data):
    """One-shot :class:`BoundaryScanner`: the first collision offset in ``data`` or -1."""
    cdef Py_buffer view
    pattern = check_delimiter(delimiter)
    owner = contiguous_bytes_owner(data)
    PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
    try:
        return first_collision(<const unsigned char *>view.buf, view.len,
                               <const unsigned char *>PyBytes_AS_STRING(pattern),
                               PyBytes_GET_SIZE(pattern))
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------------------
# Header rendering

# Which ASCII characters each quoting copies unchanged.  A str made only of
# those is copied byte for byte from its ASCII storage; anything else takes
# the same route as the twin.  No table holds the backslash, which is never
# written inside a quoted value, nor '=', whose "=?" is escaped (the email
# package would take it for the start of an encoded word): a str holding one
# of them takes the twin's route as well.
cdef enum:
    POSTER_NAME_PLAIN = 0       # printable ASCII but \ " and =
    POSTER_FILENAME_PLAIN = 1   # printable ASCII but \ ' " and =
    HTML5_PLAIN = 2             # ASCII but NUL, CR, LF, \ " and =
    PRINTABLE_ASCII = 3         # space to ~

cdef unsigned char PLAIN[4][128]


cdef void init_plain_tables() noexcept:
    cdef int c
    for c in range(128):
        PLAIN[PRINTABLE_ASCII][c] = 0x20 <= c <= 0x7E
        PLAIN[POSTER_NAME_PLAIN][c] = (PLAIN[PRINTABLE_ASCII][c] and c != ord("\\")
                                       and c != ord('"') and c != ord("="))
        PLAIN[POSTER_FILENAME_PLAIN][c] = PLAIN[POSTER_NAME_PLAIN][c] and c != ord("'")
        PLAIN[HTML5_PLAIN][c] = (c != 0 and c != ord("\r") and c != ord("\n")
                                 and c != ord('"') and c != ord("\\") and c != ord("="))


init_plain_tables()


cdef bint all_plain(object text, int charset):
    """Whether ``text`` is ASCII made only of ``charset``'s characters."""
    cdef const unsigned char *chars
    cdef Py_ssize_t i, n
    if not PyUnicode_IS_ASCII(text):
        return False
    chars = PyUnicode_1BYTE_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    for i in range(n):
        # An ASCII str holds only code points below 128: in the table.
        if not PLAIN[charset][chars[i]]:
            return False
    return True


cdef bytes ascii_bytes(object text):
    """The bytes of an ASCII ``str`` (checked by all_plain), copied once."""
    return PyBytes_FromStringAndSize(<const char *>PyUnicode_1BYTE_DATA(text),
                                     PyUnicode_GET_LENGTH(text))


cdef object as_text(object value, str what):
    if isinstance(value, str):
        # A subclass may change what its methods do: see the twin.
        return value if type(value) is str else str.__getitem__(value, slice(None))
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{what} {bytes(value)!r} is not valid UTF-8; pass it as str"
            ) from None
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


cdef bytes utf8(object text, str what):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} {text!r} cannot be encoded as UTF-8 ({exc.reason}); "
            "remove the lone surrogate"
        ) from None


cdef bytes quote_name_poster(object name):
    # poster 0.8.1 passed names through email.header.Header; a backslash is
    # written "&#92;", a '"' or "=?" makes an RFC 2047 word: see the twin.
    if all_plain(name, POSTER_NAME_PLAIN):
        return ascii_bytes(name)
    if all_plain(name, PRINTABLE_ASCII) and '"' not in name and "=?" not in name:
        return name.replace("\\", "&#92;").encode("ascii")
    encoded = base64.b64encode(utf8(name, "name").replace(b"\\", b"&#92;")).decode("ascii")
    return f"=?utf-8?b?{encoded}?=".encode("ascii")


cdef bytes quote_filename_poster(object filename):
    # poster 0.8.1's XML character references, for every character a parser
    # could misread as well, so no backslash is written: see the twin.
    cdef Py_UCS4 char
    cdef Py_ssize_t code, index, last
    if all_plain(filename, POSTER_FILENAME_PLAIN):
        return ascii_bytes(filename)
    out = []
    last = len(filename) - 1
    for index in range(last + 1):
        char = filename[index]
        code = char
        if (code > 0x7E or code < 0x20 or char == u"\\" or char == u"'" or char == u'"'
                or (char == u"=" and index < last and filename[index + 1] == u"?")):
            out.append(f"&#{code};")
        else:
            out.append(char)
    return "".join(out).encode("ascii")


cdef bytes quote_html5(object text, str what):
    # WHATWG multipart/form-data encoding escapes '"', CR and LF; a backslash
    # is %5C and the '=' of a "=?" is %3D: see the twin.
    if all_plain(text, HTML5_PLAIN):
        return ascii_bytes(text)
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
    return utf8(quoted, what)


cdef bytes check_filetype(object filetype):
    cdef Py_UCS4 char
    if all_plain(filetype, PRINTABLE_ASCII):
        return ascii_bytes(filetype)
    for char in filetype:
        if char < u" " or char == u"\x7f":
            raise ValueError(
                f"filetype {filetype!r} contains the control character "
                f"{char!r}; a content type must be a single header-safe line "
                "such as 'text/csv'"
            )
    return utf8(filetype, "filetype")


cdef bytes nameless_headers(object filename, bytes ctype, object html5):
    # An attachment disposition only with a filename, always a Content-Type:
    # see the twin's _nameless_headers.
    lines = []
    if html5:
        if filename is not None:
            lines.append(b'Content-Disposition: attachment; filename="' + quote_html5(filename, "filename") + b'"')
            if ctype is None:
                ctype = b"application/octet-stream"
        if ctype is None:
            ctype = b"text/plain; charset=utf-8"
    else:
        if filename:
            lines.append(b'Content-Disposition: attachment; filename="' + quote_filename_poster(filename) + b'"')
        if not ctype:
            ctype = b"text/plain; charset=utf-8"
    lines.append(b"Content-Type: " + ctype)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def render_part_headers(name, filename=None, filetype=None, html5=False):
    """The header lines of one part, after its delimiter line, up to and
    including the blank line that ends them.

    ``html5=False`` renders poster 0.8.1's bytes; ``html5=True`` what browsers
    send.  ``name``, ``filename`` and ``filetype`` are ``str`` or UTF-8
    ``bytes``; each may be ``None``.  A part without a name (one of a body
    that is not form-data) gets no form-data disposition: see the twin's
    ``_nameless_headers``.
    """
    # str subclasses are taken as plain str (as_text), as in the twin.
    cdef object name_text = None
    cdef object filename_text = None
    cdef bytes ctype = None
    if name is not None:
        name_text = as_text(name, "name")
    if filename is not None:
        filename_text = as_text(filename, "filename")
    if filetype is not None:
        # An empty filetype is no type: the style's default applies.
        ctype = check_filetype(as_text(filetype, "filetype")) or None

    if name_text is None:
        return nameless_headers(filename_text, ctype, html5)
    if html5:
        pieces = [b'Content-Disposition: form-data; name="', quote_html5(name_text, "name"), b'"']
        if filename_text is not None:
            pieces += (b'; filename="', quote_html5(filename_text, "filename"), b'"')
            if ctype is None:
                ctype = b"application/octet-stream"
    else:
        pieces = [b'Content-Disposition: form-data; name="', quote_name_poster(name_text), b'"']
        # poster 0.8.1 left out an empty filename.
        if filename_text:
            pieces += (b'; filename="', quote_filename_poster(filename_text), b'"')
        if not ctype:
            ctype = b"text/plain; charset=utf-8"

    if ctype is None:
        pieces.append(b"\r\n\r\n")
    else:
        pieces += (b"\r\nContent-Type: ", ctype, b"\r\n\r\n")
    return b"".join(pieces)


# ---------------------------------------------------------------------------
# Runs of in-memory parts


cdef Py_ssize_t clamp_index(object value, str what) except? -1:
    """An int argument as a Py_ssize_t; larger ones act as PY_SSIZE_T_MAX."""
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value > PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    if value < -PY_SSIZE_T_MAX:
        return -PY_SSIZE_T_MAX
    return value


cdef object check_run_arguments(object items, str what, object start, object delimiter, object limit,
                                Py_ssize_t *first, Py_ssize_t *limit_size):
    """The checks render_value_parts and render_text_pairs make of their
    arguments; returns the scan pattern, sets ``first`` and ``limit_size``."""
    if not isinstance(items, list):
        raise TypeError(f"{what} must be a list, not {type(items).__name__}")
    pattern = check_delimiter(delimiter)
    first[0] = clamp_index(start, "start")
    if first[0] < 0:
        raise ValueError(f"start must not be negative, got {start}")
    limit_size[0] = clamp_index(limit, "limit")
    return pattern


def render_value_parts(params, start, delimiter, limit):
    """Render consecutive in-memory parts, ``params[start:stop]``, as one ``bytes``.

    ``params`` is a list of objects with ``value`` (``bytes``, or ``None`` for
    a file part) and ``_headers`` (the rendered header lines), as
    ``MultipartParam`` has.  Each part is ``delimiter`` CRLF, the headers,
    the value, CRLF.  Rendering stops at the end of ``params``, before a part
    whose value is ``None``, before a part whose value holds a collision, and
    after the part that brings the output to ``limit`` bytes or more.

    Returns ``(rendered, stop, collision)``; ``collision`` is true when
    ``params[stop]``'s value holds the delimiter.
    """
    cdef Py_ssize_t index, first, limit_size, plen, total, dlen
    cdef long long found
    cdef object param, value, headers
    cdef char *out
    pattern = check_run_arguments(params, "params", start, delimiter, limit, &first, &limit_size)
    if first >= PyList_GET_SIZE(params):
        return b"", start, False

    plen = PyBytes_GET_SIZE(pattern)
    dlen = plen - 1
    # The headers and values are held here while they are measured, so the
    # copy below uses the very objects that were measured and checked.
    pieces = []
    total = 0
    collision = False
    index = first
    # Re-read the length every time: a ``_value`` property could change the list.
    while index < PyList_GET_SIZE(params):
        param = <object>PyList_GET_ITEM(params, index)
        value = param._value
        if value is None:
            break
        headers = param._headers
        if not isinstance(value, bytes):
            raise TypeError(f"part {index}: value must be bytes, not {type(value).__name__}")
        if not isinstance(headers, bytes):
            raise TypeError(f"part {index}: _headers must be bytes, not {type(headers).__name__}")
        found = first_collision(<const unsigned char *>PyBytes_AS_STRING(value),
                                PyBytes_GET_SIZE(value),
                                <const unsigned char *>PyBytes_AS_STRING(pattern), plen)
        if found >= 0:
            collision = True
            break
        pieces.append(headers)
        pieces.append(value)
        total += dlen + 2 + PyBytes_GET_SIZE(headers) + PyBytes_GET_SIZE(value) + 2
        index += 1
        if total >= limit_size:
            break

    rendered = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(rendered)
    cdef const char *delimiter_data = PyBytes_AS_STRING(pattern) + 1
    cdef Py_ssize_t i
    for i in range(0, PyList_GET_SIZE(pieces), 2):
        headers = <object>PyList_GET_ITEM(pieces, i)
        value = <object>PyList_GET_ITEM(pieces, i + 1)
        memcpy(out, delimiter_data, dlen)
        out += dlen
        out[0] = b"\r"
        out[1] = b"\n"
        out += 2
        memcpy(out, PyBytes_AS_STRING(headers), PyBytes_GET_SIZE(headers))
        out += PyBytes_GET_SIZE(headers)
        memcpy(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
        out += PyBytes_GET_SIZE(value)
        out[0] = b"\r"
        out[1] = b"\n"
        out += 2
    return rendered, start + (index - first), collision


# What render_part_headers gives a text field whose name needs no quoting:
# START + name + the style's END.
cdef bytes TEXT_HEADER_START = b'Content-Disposition: form-data; name="'
cdef bytes TEXT_HEADER_END_POSTER = b'"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
cdef bytes TEXT_HEADER_END_HTML5 = b'"\r\n\r\n'


def render_text_pairs(pairs, start, delimiter, html5, limit):
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
    total, stop = text_pairs(pairs, start, delimiter, html5, limit)
    return write_text_pairs(pairs[start:stop] if stop > start else [], delimiter, html5, total), stop


def measure_text_pairs(pairs, start, delimiter, html5, limit):
    """What :func:`render_text_pairs` would render, measured: ``(size, stop)``.

    The same pairs are taken and the same ``stop`` is reached; ``size`` is
    the length the rendered ``bytes`` would have.  Nothing is rendered, so
    a body can hold its text fields as pairs and render them block by block
    as it is sent.
    """
    return text_pairs(pairs, start, delimiter, html5, limit)


cdef tuple text_pairs(object pairs, object start, object delimiter, object html5, object limit):
    """measure_text_pairs: every check, nothing copied."""
    cdef Py_ssize_t index, first, limit_size, plen, dlen, value_size, total = 0
    cdef const char *value_data
    cdef object pair, name, value, encoded, headers, header_end
    cdef Py_ssize_t size
    cdef int charset
    pattern = check_run_arguments(pairs, "pairs", start, delimiter, limit, &first, &limit_size)
    html5 = bool(html5)
    charset = HTML5_PLAIN if html5 else POSTER_NAME_PLAIN
    header_end = TEXT_HEADER_END_HTML5 if html5 else TEXT_HEADER_END_POSTER
    plen = PyBytes_GET_SIZE(pattern)
    dlen = plen - 1

    index = first
    while index < PyList_GET_SIZE(pairs):
        pair = <object>PyList_GET_ITEM(pairs, index)
        if type(pair) is not tuple or PyTuple_GET_SIZE(pair) != 2:
            break
        name = <object>PyTuple_GET_ITEM(pair, 0)
        value = <object>PyTuple_GET_ITEM(pair, 1)
        if type(name) is not str:
            break
        # The value's UTF-8: an ASCII str is its own, no copy made.
        if type(value) is bytes:
            encoded = value
            value_data = PyBytes_AS_STRING(value)
            value_size = PyBytes_GET_SIZE(value)
        elif type(value) is str and PyUnicode_IS_ASCII(value):
            encoded = value
            value_data = <const char *>PyUnicode_1BYTE_DATA(value)
            value_size = PyUnicode_GET_LENGTH(value)
        elif type(value) is str:
            try:
                encoded = (<str>value).encode("utf-8")
            except UnicodeEncodeError:
                break
            value_data = PyBytes_AS_STRING(encoded)
            value_size = PyBytes_GET_SIZE(encoded)
        else:
            break
        if value_size > limit_size:
            break
        if first_collision(<const unsigned char *>value_data, value_size,
                           <const unsigned char *>PyBytes_AS_STRING(pattern), plen) >= 0:
            break
        if all_plain(name, charset):
            headers = None
            size = (dlen + 2 + PyBytes_GET_SIZE(TEXT_HEADER_START) + PyUnicode_GET_LENGTH(name)
                    + PyBytes_GET_SIZE(header_end) + value_size + 2)
        else:
            try:
                headers = render_part_headers(name, None, None, html5)
            except ValueError:
                break
            size = dlen + 2 + PyBytes_GET_SIZE(headers) + value_size + 2
        index += 1
        total += size
        if total >= limit_size:
            break
    return total, start + (index - first)


def write_text_pairs(pairs, delimiter, html5, size):
    """Render every pair of ``pairs`` into one ``bytes`` of ``size`` bytes.

    ``pairs`` is a run that :func:`measure_text_pairs` took whole and
    measured at ``size`` bytes for this ``delimiter`` and style; its text
    is not checked for the boundary again.  Each pair must still be a
    ``(str, str or bytes)`` tuple, and the output exactly ``size`` bytes
    (``ValueError`` otherwise): nothing is written past it.
    """
    cdef Py_ssize_t index, dlen, value_size, part_size, at = 0, total
    cdef const char *value_data
    cdef const char *name_data
    cdef Py_ssize_t name_size
    cdef object pair, name, value, encoded, headers, header_end
    cdef char *out
    cdef const char *lead_data
    cdef Py_ssize_t lead_size, end_size
    cdef int charset
    check_delimiter(delimiter)
    if not isinstance(pairs, list):
        raise TypeError(f"pairs must be a list, not {type(pairs).__name__}")
    if not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0 or size > PY_SSIZE_T_MAX:
        raise ValueError(f"size must be between 0 and {PY_SSIZE_T_MAX}, got {size}")
    total = size
    html5 = bool(html5)
    charset = HTML5_PLAIN if html5 else POSTER_NAME_PLAIN
    header_end = TEXT_HEADER_END_HTML5 if html5 else TEXT_HEADER_END_POSTER
    dlen = PyBytes_GET_SIZE(delimiter)
    # What every part starts with: its delimiter line, then (for a name
    # that needs no escaping) the start of its header, in one copy.
    lead = delimiter + b"\r\n" + TEXT_HEADER_START
    lead_data = PyBytes_AS_STRING(lead)
    lead_size = PyBytes_GET_SIZE(lead)
    end_size = PyBytes_GET_SIZE(header_end)
    rendered = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(rendered)
    index = 0
    while index < PyList_GET_SIZE(pairs):
        pair = <object>PyList_GET_ITEM(pairs, index)
        if type(pair) is not tuple or PyTuple_GET_SIZE(pair) != 2:
            raise TypeError(f"pair {index} is not a (name, value) tuple")
        name = <object>PyTuple_GET_ITEM(pair, 0)
        value = <object>PyTuple_GET_ITEM(pair, 1)
        if type(name) is not str:
            raise TypeError(f"pair {index}: the name is not a str")
        if type(value) is bytes:
            value_data = PyBytes_AS_STRING(value)
            value_size = PyBytes_GET_SIZE(value)
        elif type(value) is str and PyUnicode_IS_ASCII(value):
            value_data = <const char *>PyUnicode_1BYTE_DATA(value)
            value_size = PyUnicode_GET_LENGTH(value)
        elif type(value) is str:
            encoded = utf8(value, "value")
            value_data = PyBytes_AS_STRING(encoded)
            value_size = PyBytes_GET_SIZE(encoded)
        else:
            raise TypeError(f"pair {index}: the value is not a str or bytes")
        if all_plain(name, charset):
            headers = None
            name_data = <const char *>PyUnicode_1BYTE_DATA(name)
            name_size = PyUnicode_GET_LENGTH(name)
            part_size = (dlen + 2 + PyBytes_GET_SIZE(TEXT_HEADER_START) + name_size
                         + PyBytes_GET_SIZE(header_end) + value_size + 2)
        else:
            headers = render_part_headers(name, None, None, html5)
            part_size = dlen + 2 + PyBytes_GET_SIZE(headers) + value_size + 2
        if part_size > total - at:
            raise ValueError(f"the pairs render to more than the {total} bytes measured")
        if headers is None:
            memcpy(out + at, lead_data, lead_size)
            at += lead_size
            memcpy(out + at, name_data, name_size)
            at += name_size
            memcpy(out + at, PyBytes_AS_STRING(header_end), end_size)
            at += end_size
        else:
            memcpy(out + at, lead_data, dlen + 2)
            at += dlen + 2
            memcpy(out + at, PyBytes_AS_STRING(headers), PyBytes_GET_SIZE(headers))
            at += PyBytes_GET_SIZE(headers)
        memcpy(out + at, value_data, value_size)
        memcpy(out + at + value_size, b"\r\n", 2)
        at += value_size + 2
        index += 1
    if at != total:
        raise ValueError(f"the pairs render to {at} bytes, not the {total} measured")
    return rendered


# ---------------------------------------------------------------------------
# Moving file content


cdef object non_blocking_error(object fileobj, str method):
    return TypeError(
        f"{type(fileobj).__name__}.{method}() returned None: non-blocking files "
        "cannot be streamed; pass a blocking binary file"
    )


cdef Py_ssize_t checked_count(object fileobj, object count, Py_ssize_t asked) except -1:
    """What ``readinto`` returned, as a byte count in 0..asked."""
    if count is None:
        raise non_blocking_error(fileobj, "readinto")
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


cdef str short_repr(object value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


cdef bytes checked_chunk(object fileobj, object chunk, Py_ssize_t asked):
    """What ``read`` returned, as bytes of at most ``asked`` bytes.

    Only a bytes-like object is taken, as the bytes of its buffer (see the
    twin); the length is checked after the conversion.
    """
    if chunk is None:
        raise non_blocking_error(fileobj, "read")
    if type(chunk) is not bytes:  # subclasses too: the result is plain bytes
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
                f"{short_repr(chunk)}, not a bytes-like object"
            ) from None
        with view:
            chunk = view.tobytes()
    if PyBytes_GET_SIZE(chunk) > asked:
        raise ValueError(
            f"{type(fileobj).__name__}.read({asked}) returned "
            f"{PyBytes_GET_SIZE(chunk)} bytes"
        )
    return chunk


# Built-in file objects write exactly the count their readinto() returns and
# keep nothing of the buffer they are given: only they read straight into
# the bytes a BlockReader returns.  A buffered one only over an io.FileIO:
# over another raw stream, Python code would be handed the memory.
cdef tuple EXACT_READERS = (io.FileIO, io.BytesIO)
cdef tuple BUFFERED_READERS = (io.BufferedReader, io.BufferedRandom)


cdef bint exact_reader(object fileobj):
    kind = type(fileobj)
    if kind in EXACT_READERS:
        return True
    return kind in BUFFERED_READERS and type(fileobj.raw) is io.FileIO


cdef int checked_descriptor(object fd) except? -1:
    if not isinstance(fd, int):
        raise TypeError(f"fd must be an int, not {type(fd).__name__}")
    if fd < 0 or fd > INT_MAX:
        raise ValueError(f"fd must be a file descriptor (0 to {INT_MAX}), got {fd}")
    return fd


# The largest file offset or content size taken: two of them add up to less
# than 2**63, the range of a 64-bit off_t.
cdef long long MAX_POSITION = 2**62


cdef long long checked_position(object value, str what) except? -1:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0 or value > MAX_POSITION:
        raise ValueError(f"{what} must be between 0 and {MAX_POSITION}, got {value}")
    return value


cdef extern from *:
    """
    #include <errno.h>
    #ifdef _WIN32
    static Py_ssize_t poster_pread(int fd, char *buf, Py_ssize_t n, long long offset) {
        (void)fd; (void)buf; (void)n; (void)offset;
        errno = ENOSYS;
        return -1;
    }
    #else
    #include <unistd.h>
    static Py_ssize_t poster_pread(int fd, char *buf, Py_ssize_t n, long long offset) {
        return (Py_ssize_t)pread(fd, buf, (size_t)n, (off_t)offset);
    }
    #endif
    """
    Py_ssize_t poster_pread(int fd, char *buf, Py_ssize_t n, long long offset) nogil


cdef extern from *:
    """
    #ifdef _WIN32
    static Py_ssize_t poster_pread_probe(int fd, char *buf, Py_ssize_t n, long long offset, int *more) {
        (void)fd; (void)buf; (void)n; (void)offset; (void)more;
        errno = ENOSYS;
        return -1;
    }
    #else
    #include <sys/uio.h>
    /* pread() of n bytes that also asks for one byte more, into a spare:
       one system call tells whether the file goes on after them (*more). */
    static Py_ssize_t poster_pread_probe(int fd, char *buf, Py_ssize_t n, long long offset, int *more) {
        char spare;
        struct iovec iov[2];
        ssize_t count;
        iov[0].iov_base = buf;
        iov[0].iov_len = (size_t)n;
        iov[1].iov_base = &spare;
        iov[1].iov_len = 1;
        count = preadv(fd, iov, 2, (off_t)offset);
        if (count > n) {
            *more = 1;
            return n;
        }
        return (Py_ssize_t)count;
    }
    #endif
    """
    Py_ssize_t poster_pread_probe(int fd, char *buf, Py_ssize_t n, long long offset, int *more) nogil


cdef extern from *:
    """
    /* Reads by offset that keep the GIL, in one thread: a step made on an
       event loop whose file the page cache holds (poster._body's
       _AsyncBlocks) reads it so.  Letting the GIL go for a copy of a few
       hundred microseconds would cost the loop far more where another
       thread runs Python: the loop waits for that thread's switch interval
       (5 ms) to have it back.  Such a read never waits for the disk:
       preadv2(RWF_NOWAIT) takes only what the page cache holds, and the
       rest is read the usual way, without the GIL.  A file whose system
       does not take RWF_NOWAIT (tmpfs, say) and a descriptor opened with
       O_DIRECT (which RWF_NOWAIT lets read the disk) are read the usual
       way too. */
    #if defined(__linux__) && defined(RWF_NOWAIT)
    #include <fcntl.h>
    #include <sys/stat.h>
    static __thread int poster_hold_gil = 0;
    static int poster_nowait_works = 1;  /* 0: the system has no preadv2 for us */
    static int poster_set_hold_gil(int hold) {
        int was = poster_hold_gil;
        poster_hold_gil = hold != 0;
        return was;
    }
    /* Up to n bytes at offset from the page cache alone (0 when none can be
       had so); with more, also whether the file goes on after them, in
       *more, once *settled says it is known.  *settled is also set when
       n bytes came and more was not asked. */
    static Py_ssize_t poster_pread_cached(int fd, char *buf, Py_ssize_t n, long long offset,
                                          int *more, int *settled) {
        char spare;
        struct iovec iov[2];
        struct stat st;
        ssize_t count;
        int flags;
        *settled = 0;
        if (!poster_hold_gil || !poster_nowait_works || n <= 0)
            return 0;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || (flags & O_DIRECT))
            return 0;
        iov[0].iov_base = buf;
        iov[0].iov_len = (size_t)n;
        iov[1].iov_base = &spare;
        iov[1].iov_len = 1;
        count = preadv2(fd, iov, more != NULL ? 2 : 1, (off_t)offset, RWF_NOWAIT);
        if (count < 0) {
            if (errno == ENOSYS || errno == EPERM)
                poster_nowait_works = 0;  /* no such call here (or a filter forbids it) */
            return 0;  /* this file, or these pages: the usual read */
        }
        if (more == NULL) {
            *settled = count == n;
            return (Py_ssize_t)count;
        }
        if (count > n) {
            *more = 1;
            *settled = 1;
            return n;
        }
        if (count == n && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            /* All n came and the read stopped: at the end of the file, or
               where the cache holds no more (some kernels, 5.9 and 5.10,
               even answer 0 there).  The file's size tells which. */
            *more = (long long)st.st_size > offset + n;
            *settled = 1;
        }
        return (Py_ssize_t)count;
    }
    #else
    static int poster_set_hold_gil(int hold) {
        (void)hold;
        return 0;
    }
    static Py_ssize_t poster_pread_cached(int fd, char *buf, Py_ssize_t n, long long offset,
                                          int *more, int *settled) {
        (void)fd; (void)buf; (void)n; (void)offset; (void)more;
        *settled = 0;
        return 0;
    }
    #endif
    """
    int poster_set_hold_gil(int hold)
    Py_ssize_t poster_pread_cached(int fd, char *buf, Py_ssize_t n, long long offset,
                                   int *more, int *settled)


def reads_hold_gil(hold):
    """Whether this thread's reads by offset keep the GIL, as it was; from
    now on, ``hold``.  Such a read takes what the page cache holds with the
    GIL held, never waiting for the disk (``preadv2`` with ``RWF_NOWAIT``,
    on Linux), and reads the rest the usual way, without it.  Elsewhere it
    changes nothing, and says False."""
    return bool(poster_set_hold_gil(1 if hold else 0))


cdef Py_ssize_t checked_size(object size) except -1:
    if not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0 or size > MAX_BLOCK:
        raise ValueError(f"size must be between 0 and {MAX_BLOCK}, got {size}")
    return size


cdef bytes read_with_read(object fileobj, Py_ssize_t size):
    """``read`` until ``size`` bytes came or it returns ``b""``."""
    cdef bytes block = checked_chunk(fileobj, fileobj.read(size), size)
    cdef Py_ssize_t got = PyBytes_GET_SIZE(block)
    if got == size or got == 0:
        return block
    pieces = [block]
    while got < size:
        more = checked_chunk(fileobj, fileobj.read(size - got), size - got)
        if not more:
            break
        pieces.append(more)
        got += PyBytes_GET_SIZE(more)
    return b"".join(pieces)


cdef Py_ssize_t fill_from_readinto(object fileobj, object readinto, object whole) except -1:
    """Call ``readinto`` on slices of the memoryview ``whole`` until it is full
    or at end of file; return the byte count.

    Each slice is released right after the call, so a ``readinto`` that kept
    it can no longer write through it.
    """
    cdef Py_ssize_t got = 0, count
    cdef Py_ssize_t size = len(whole)
    while got < size:
        target = whole[got:]
        try:
            result = readinto(target)
        finally:
            target.release()
        count = checked_count(fileobj, result, size - got)
        if count == 0:
            break
        got += count
    return got


cdef bytes read_into_own_buffer(object fileobj, object readinto, Py_ssize_t size):
    """``readinto`` a zeroed bytearray, then a copy of what came (the twin's read path)."""
    buffer = bytearray(size)
    cdef Py_ssize_t got = fill_from_readinto(fileobj, readinto, memoryview(buffer))
    return PyBytes_FromStringAndSize(buffer, got)


cdef extern from *:
    """
    /* A bytes object may be written again only while its reader is its sole
       owner, and only where the interpreter's reference counts say so
       plainly (not in free-threaded builds).  Its cached hash is forgotten. */
    static int poster_can_recycle(PyObject *o) {
    #if defined(Py_GIL_DISABLED) || PY_VERSION_HEX >= 0x030E0000
        (void)o;
        return 0;
    #else
        return Py_REFCNT(o) == 1;
    #endif
    }
    static void poster_forget_hash(PyObject *o) {
    #if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030E0000
    #if defined(__GNUC__)
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    #endif
        ((PyBytesObject *)o)->ob_shash = -1;
    #if defined(__GNUC__)
    #pragma GCC diagnostic pop
    #endif
    #else
        (void)o;
    #endif
    }
    """
    bint poster_can_recycle(PyObject *o)
    void poster_forget_hash(PyObject *o)
    void incref_raw "Py_INCREF"(PyObject *obj)


cdef extern from *:
    """
    /* Whether the kernel copies into ``data`` slowly: on some x86-64 CPUs
       (measured on AMD EPYC) a read() whose target lies 1 to 31 bytes past
       a 4 KiB page boundary, from a page-aligned source such as the page
       cache, runs about 4 times slower than one a few bytes further on.
       Elsewhere avoiding those offsets costs nothing. */
    static int poster_slow_copy_target(const char *data) {
        size_t offset = (size_t)(uintptr_t)data & 4095u;
        return offset != 0 && offset < 32;
    }
    """
    bint poster_slow_copy_target(const char *data)


cdef PyObject *new_block(Py_ssize_t n) except NULL:
    """A new ``bytes`` of ``n`` bytes to read into (a new reference).

    One whose memory the kernel would copy into slowly is swapped for
    another, allocated while the first is still held so that it lands
    elsewhere; a few tries, then whatever came.  What it buys, measured with
    ``benchmarks/run_all.py --rounds 9`` on builds with and without it
    (2026-12-01, AMD EPYC, two runs each): big file against httpx 0.88-0.89
    with it, 0.83-0.85 without.
    """
    cdef PyObject *block = bytes_new_raw(NULL, n)
    cdef PyObject *other
    cdef int tries
    for tries in range(3):
        if not poster_slow_copy_target(bytes_data_raw(block)):
            break
        try:
            other = bytes_new_raw(NULL, n)
        except BaseException:
            decref_raw(block)
            raise
        decref_raw(block)
        block = other
    return block


# How many returned blocks a BlockReader keeps for reuse: the consumer's
# loop variable still holds the last block when the next is asked for, and
# the body holds one block back to scan the next, so fewer would rarely hit.
# What reuse buys, measured with benchmarks/run_all.py --rounds 9 on builds
# with and without it (2026-12-01, two runs each): two threads over one
# 1.58-1.60 with it, 1.45-1.54 without; big file against httpx 0.88-0.89
# with it, 0.87 without.  It leans on CPython's reference counts and bytes
# layout, so it is off where those say nothing plainly (see below).
cdef enum:
    RECYCLE_SLOTS = 4


cdef class BlockReader:
    """Reads file content block after block.

    A full block is kept after it is returned; once nothing but this reader
    holds it any more (the consumer sent it and let it go), the next read of
    the same size fills that very object again instead of allocating one.
    That spares the allocator, and the kernel the page faults of fresh
    memory, on every block of a long file.
    """

    cdef PyObject *slots[RECYCLE_SLOTS]   # owned references, or NULL

    def __dealloc__(self):
        cdef int i
        for i in range(RECYCLE_SLOTS):
            if self.slots[i] != NULL:
                decref_raw(self.slots[i])
                self.slots[i] = NULL

    cdef PyObject *take_recycled(self, Py_ssize_t n):
        """A kept block of ``n`` bytes nobody else holds (a new reference), or NULL."""
        cdef int i
        cdef PyObject *candidate
        for i in range(RECYCLE_SLOTS):
            candidate = self.slots[i]
            if candidate != NULL and PyBytes_GET_SIZE(<object>candidate) == n and poster_can_recycle(candidate):
                incref_raw(candidate)
                poster_forget_hash(candidate)
                return candidate
        return NULL

    cdef void keep(self, PyObject *block):
        """Keep ``block`` for reuse, in a free slot or in place of one nobody else holds."""
        cdef int i
        for i in range(RECYCLE_SLOTS):
            if self.slots[i] == NULL or poster_can_recycle(self.slots[i]):
                incref_raw(block)
                if self.slots[i] != NULL:
                    decref_raw(self.slots[i])
                self.slots[i] = block
                return

    def read(self, fileobj, size):
        """Read ``size`` bytes from ``fileobj``, fewer only at end of file.

        A built-in file's ``readinto`` fills the returned ``bytes`` itself, a
        recycled block when one is free; short reads (pipes, raw files) are
        retried until ``size`` bytes have come or the file ends.  Objects
        without ``readinto`` are read with ``read``.
        """
        cdef Py_ssize_t n = checked_size(size)
        cdef Py_ssize_t got
        cdef PyObject *raw
        cdef bint recycled
        if n == 0:
            return b""
        readinto = getattr(fileobj, "readinto", None)
        if readinto is None:
            return read_with_read(fileobj, n)
        if not exact_reader(fileobj):
            # A readinto() of other code could keep what it is given (a slice
            # of a view outlives release()) or claim more than it wrote: it
            # gets a zeroed bytearray of its own, and the block is a copy, as
            # in the twin.
            return read_into_own_buffer(fileobj, readinto, n)
        raw = self.take_recycled(n)
        recycled = raw != NULL
        if not recycled:
            raw = new_block(n)
        # A view of memory it does not own: only the built-in readers, which
        # keep nothing, are handed it, and it is released before the block
        # leaves.
        whole = memoryview_from_memory(bytes_data_raw(raw), n, PyBUF_WRITE)
        try:
            got = fill_from_readinto(fileobj, readinto, whole)
        except BaseException:
            whole.release()
            decref_raw(raw)
            raise
        whole.release()
        return self.finish(raw, recycled, got, n)

    def pread_scanned(self, fd, offset, size, scanner):
        """Read ``size`` bytes of the descriptor ``fd`` from ``offset`` (fewer
        only at end of file) and feed them to ``scanner``.

        Returns ``(block, scanner.feed(block))``.  The reads (``pread``: the
        descriptor's position does not move) and the scan run in one stretch
        without the GIL, into a recycled block when one is free.
        """
        cdef int descriptor = checked_descriptor(fd)
        cdef long long start = checked_position(offset, "offset")
        cdef Py_ssize_t n = checked_size(size)
        cdef long long found = -1
        if type(scanner) is not BoundaryScanner:
            raise TypeError(f"scanner must be a BoundaryScanner, not {type(scanner).__name__}")
        block = self.read_at(descriptor, start, n, <BoundaryScanner>scanner, &found)
        return block, found

    def pread_last(self, fd, offset, size, scanner):
        """:meth:`pread_scanned` of the last ``size`` bytes of a content, and
        whether the file goes on after them.

        Returns ``(block, scanner.feed(block), more)``.  The reads ask for one
        byte more than they need (``preadv`` into a spare byte), so telling
        that the file grew costs no read of its own.
        """
        cdef int descriptor = checked_descriptor(fd)
        cdef long long start = checked_position(offset, "offset")
        cdef Py_ssize_t n = checked_size(size)
        cdef long long found = -1
        cdef int more = 0
        if type(scanner) is not BoundaryScanner:
            raise TypeError(f"scanner must be a BoundaryScanner, not {type(scanner).__name__}")
        block = self.read_at(descriptor, start, n, <BoundaryScanner>scanner, &found, &more)
        return block, found, bool(more)

    cdef object read_at(self, int fd, long long offset, Py_ssize_t n, BoundaryScanner scanner,
                        long long *found, int *more=NULL, bytes head=b"", bytes tail=b"",
                        Py_ssize_t *read=NULL):
        """pread_scanned() of checked arguments; the scan's answer goes to
        ``found``.  With ``more``, the reads also tell whether the file goes
        on after the ``n`` bytes (pread_last()).

        ``head`` and ``tail`` (FileContent's) are put around the content in
        the block itself: the content is read in place after ``head``, and
        ``tail`` follows it only when all ``n`` bytes came.  Such a block is
        never kept for reuse.  The count of content bytes read goes to
        ``read``."""
        cdef Py_ssize_t got = 0, count = 0
        cdef Py_ssize_t head_size = len(head), tail_size = len(tail)
        cdef int error = 0, settled = 0
        cdef bint scan, recycled
        cdef PyObject *raw
        cdef char *data
        if n == 0:
            if read != NULL:
                read[0] = 0
            if more != NULL:
                more[0] = len(os.pread(fd, 1, offset)) > 0
            found[0] = scanner.feed(b"")
            return b""
        # A scanner that found a collision already (or was never set up)
        # answers feed() itself, after the read.
        scan = scanner._tail != NULL and scanner._found < 0
        if scan:
            scanner.check_idle()
        if head_size or tail_size:
            raw = new_block(head_size + n + tail_size)
            recycled = False
            memcpy(bytes_data_raw(raw), <const char *>head, head_size)
        else:
            raw = self.take_recycled(n)
            recycled = raw != NULL
            if not recycled:
                raw = new_block(n)
        data = bytes_data_raw(raw) + head_size
        scanner._busy = scan
        try:
            # With reads_hold_gil(): what the page cache holds first, with the GIL.
            got = poster_pread_cached(fd, data, n, offset, more, &settled)
            if got == n and settled:
                if scan:
                    found[0] = scanner._scan_nogil(<const unsigned char *>data, got)
            elif got == n:
                got = n - 1  # whether the file goes on is asked again below
            while got < n:
                with nogil:
                    while got < n:
                        # A read that fills the n bytes but not the spare
                        # ended at end of file: a regular file reads all it
                        # has.
                        if more != NULL:
                            count = poster_pread_probe(fd, data + got, n - got, offset + got, more)
                        else:
                            count = poster_pread(fd, data + got, n - got, offset + got)
                        if count <= 0:
                            break
                        got += count
                    if count < 0:
                        error = errno
                    elif scan:
                        found[0] = scanner._scan_nogil(<const unsigned char *>data, got)
                if count >= 0:
                    break
                if error != EINTR:
                    raise OSError(error, os.strerror(error))
                PyErr_CheckSignals()  # a signal handler may raise; else read on
        except BaseException:
            decref_raw(raw)
            raise
        finally:
            scanner._busy = False
        if read != NULL:
            read[0] = got
        if head_size or tail_size:
            if got == n:
                memcpy(data + n, <const char *>tail, tail_size)
            else:
                bytes_resize_raw(&raw, head_size + got)  # frees ``raw`` itself when it fails
            block = <object>raw
            decref_raw(raw)
            if not scan:
                found[0] = scanner.feed(memoryview(block)[head_size:head_size + got])
            return block
        block = self.finish(raw, recycled, got, n)
        if not scan:
            found[0] = scanner.feed(block)
        return block

    cdef object finish(self, PyObject *raw, bint recycled, Py_ssize_t got, Py_ssize_t n):
        """The block ``raw`` (a reference this call takes over) once ``got`` of its ``n`` bytes were read."""
        if got == n:
            if not recycled:
                self.keep(raw)
            result = <object>raw
            decref_raw(raw)
            return result
        # A short (last) block is handed out on its own, never kept: a new
        # one is cut to size in place, a recycled one (still kept) is copied.
        if recycled:
            result = PyBytes_FromStringAndSize(bytes_data_raw(raw), got)
            decref_raw(raw)
            return result
        bytes_resize_raw(&raw, got)  # frees ``raw`` itself when it fails
        result = <object>raw
        decref_raw(raw)
        return result


cdef class FileContent:
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
    neither scanned nor counted in :attr:`position`; content read by
    offset is read into the block after ``head``, with no copy.

    :meth:`until_last` makes it stop before the last block, which is then
    :attr:`last` (once every check has passed).
    """

    cdef object _read                # the callable, or None: read by offset
    cdef int _fd
    cdef long long _start
    cdef long long _end
    cdef Py_ssize_t _blocksize
    cdef BoundaryScanner _scanner
    cdef BlockReader _reader
    cdef bint _check_growth
    cdef bint _open_ended
    cdef bint _done
    cdef int _more                   # the last read found more bytes: 1, none: 0, not asked: -1
    cdef object _pending
    cdef str _label
    cdef bytes _head                 # b"" once a block took it
    cdef bytes _tail                 # b"" once a block took it
    cdef bint _hold                  # keep the last block back, as ``last``
    cdef readonly object last
    cdef readonly long long position
    cdef readonly long long collision

    def __init__(self, source, start, size, blocksize, delimiter, check_growth, label,
                 head=b"", tail=b""):
        cdef long long begin, length
        if isinstance(source, int):
            self._fd = checked_descriptor(source)
            self._read = None
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
        self._head = head
        self._tail = tail
        self._hold = False
        self.last = None
        begin = checked_position(start, "start")
        self._open_ended = size is None
        length = MAX_POSITION - begin if size is None else checked_position(size, "size")
        self._blocksize = checked_size(blocksize)
        if self._blocksize == 0:
            raise ValueError("blocksize must be positive")
        self._scanner = BoundaryScanner(delimiter)
        if self._blocksize < len(delimiter) + 1:
            self._blocksize = len(delimiter) + 1
        self._reader = BlockReader()
        self._check_growth = bool(check_growth)
        self._label = label
        self._start = begin
        self._end = begin + length
        self.position = begin
        self.collision = -1
        self._pending = None
        self._done = False
        self._more = -1

    def __iter__(self):
        return self

    def until_last(self):
        """This iterator, made to stop before the last block: that one is
        :attr:`last` once the iteration has ended without an error."""
        self._hold = True
        return self

    def __next__(self):
        cdef long long found = -1
        cdef Py_ssize_t n, got = 0
        cdef bint last
        cdef bytes tail
        if self._done:
            raise StopIteration
        while self.position < self._end:
            n = self._blocksize if self._end - self.position > self._blocksize else self._end - self.position
            last = not self._open_ended and self.position + n == self._end
            tail = self._tail if last else b""
            if self._read is None:
                if self._check_growth and last:
                    # The last block: its read tells whether the file grew.
                    self._more = 0
                    block = self._reader.read_at(self._fd, self.position, n, self._scanner, &found,
                                                 &self._more, self._head, tail, &got)
                else:
                    block = self._reader.read_at(self._fd, self.position, n, self._scanner, &found,
                                                 NULL, self._head, tail, &got)
            else:
                block = self._read(n)
                found = self._scanner.feed(block)
                got = len(block)
                if self._head or (tail and got == n):
                    block = self._head + block + (tail if got == n else b"")
            if got:
                self._head = b""
                if last and got == n:
                    self._tail = b""
            self.position += got
            if got == 0:
                if self._open_ended:
                    break
                self.stop()
                raise ContentSizeError(
                    f"{self._label}: the file ended after {self.position - self._start} "
                    f"of {self._end - self._start} bytes; it shrank since the part was made"
                )
            if found >= 0:
                self.collision = found
                self.stop()
                raise BoundaryCollisionError(
                    f"boundary found in the file of {self._label} at byte {found}; "
                    "use another boundary"
                )
            pending = self._pending
            self._pending = block
            if pending is not None:
                return pending
        if self._check_growth and not self._open_ended and self.grew():
            self.stop()
            raise ContentSizeError(
                f"{self._label}: the file is longer than the {self._end - self._start} "
                "bytes announced; it grew since the part was made"
            )
        self._done = True
        pending = self._pending
        self._pending = None
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

    cdef bint grew(self) except -1:
        if self._more >= 0:
            return self._more
        if self._read is None:
            return len(os.pread(self._fd, 1, self.position)) > 0
        return len(self._read(1)) > 0

    cdef void stop(self) noexcept:
        self._done = True
        self._pending = None


cdef object writable_bytes_view(object buffer):
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


def readinto_exact(fileobj, buffer):
    """Fill the writable ``buffer`` from ``fileobj``; return the byte count.

    Fewer than ``len(buffer)`` bytes only at end of file.  Objects without
    ``readinto`` are read with ``read``.  A ``memoryview`` of unsigned bytes
    is used as it is: the usual call allocates nothing.
    """
    cdef Py_ssize_t size, got = 0, count
    view = writable_bytes_view(buffer)
    size = len(view)
    readinto = getattr(fileobj, "readinto", None)
    while got < size:
        if readinto is not None:
            result = readinto(view if got == 0 else view[got:])
            count = checked_count(fileobj, result, size - got)
        else:
            chunk = checked_chunk(fileobj, fileobj.read(size - got), size - got)
            count = PyBytes_GET_SIZE(chunk)
            view[got:got + count] = chunk
        if count == 0:
            break
        got += count
    return got


cdef extern from *:
    """
    #ifdef _WIN32
    /* The C library's st_ino means nothing here: os.stat answers instead. */
    static int poster_measure_file(const char *path, long long *dev, long long *ino, long long *size, int *error) {
        (void)path; (void)dev; (void)ino; (void)size; (void)error;
        return -2;
    }
    static int poster_same_file(int fd, long long dev, long long ino, long long size, int *error) {
        (void)fd; (void)dev; (void)ino; (void)size; (void)error;
        return -2;
    }
    #else
    #include <sys/stat.h>
    /* stat(path): 1 with its device, inode and size when it is a regular
       file, 0 when it is something else, -1 with *error when stat fails,
       -2 when a number is negative as a long long (Python versions spell
       those differently: os.stat answers then). */
    static int poster_measure_file(const char *path, long long *dev, long long *ino, long long *size, int *error) {
        struct stat st;
        if (stat(path, &st) != 0) {
            *error = errno;
            return -1;
        }
        if ((long long)st.st_dev < 0 || (long long)st.st_ino < 0)
            return -2;
        *dev = (long long)st.st_dev;
        *ino = (long long)st.st_ino;
        *size = (long long)st.st_size;
        return S_ISREG(st.st_mode) ? 1 : 0;
    }
    /* fstat(fd): 1 when it is a regular file of that device, inode and
       size, 0 when it is not, -1 with *error when fstat fails. */
    static int poster_same_file(int fd, long long dev, long long ino, long long size, int *error) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            *error = errno;
            return -1;
        }
        return S_ISREG(st.st_mode) && (long long)st.st_dev == dev
            && (long long)st.st_ino == ino && (long long)st.st_size == size;
    }
    #endif
    """
    int poster_measure_file(const char *path, long long *dev, long long *ino, long long *size, int *error) nogil
    int poster_same_file(int fd, long long dev, long long ino, long long size, int *error) nogil


# measure_file and is_same_file answer the common case here, and fail as
# os.stat and os.fstat fail: the GIL released around the system call, the
# same exception from errno (with the path, for stat), an interrupted fstat
# retried once the signal handlers ran.  Arguments of other types, and
# numbers a long long cannot hold, go to the reference twin.

def measure_file(path):
    """``(st_dev, st_ino, st_size)`` of the file at ``path`` (str or bytes),
    with the errors of ``os.stat``; None when it is not a regular file."""
    cdef bytes encoded
    cdef const char *c_path
    cdef long long dev = 0, ino = 0, size = 0
    cdef int kind = -2, error = 0
    if type(path) is str or type(path) is bytes:
        try:
            encoded = os.fsencode(path)
        except UnicodeError:
            encoded = b"\0"  # not a name the system takes: the twin raises os.stat's error
        if b"\0" not in encoded:
            c_path = encoded
            with nogil:
                kind = poster_measure_file(c_path, &dev, &ino, &size, &error)
    if kind == -1:
        errno = error  # what os.stat raises is made from errno
        PyErr_SetFromErrnoWithFilenameObject(OSError, path)
    if kind == -2:
        return _reference.measure_file(path)
    return (dev, ino, size) if kind == 1 else None


def is_same_file(fd, identity):
    """Whether the open descriptor ``fd`` is a regular file whose
    ``(st_dev, st_ino, st_size)`` is ``identity``."""
    cdef int c_fd
    cdef long long dev, ino, size
    cdef int same = -2, error = 0
    if type(fd) is int and type(identity) is tuple and len(identity) == 3:
        given_dev, given_ino, given_size = identity
        if type(given_dev) is int and type(given_ino) is int and type(given_size) is int:
            try:
                c_fd, dev, ino, size = fd, given_dev, given_ino, given_size
            except OverflowError:
                pass
            else:
                if dev >= 0 and ino >= 0 and size >= 0:
                    while True:
                        with nogil:
                            same = poster_same_file(c_fd, dev, ino, size, &error)
                        if same != -1 or error != EINTR:
                            break
                        PyErr_CheckSignals()  # a handler that raises ends it
    if same == -1:
        errno = error  # what os.fstat raises is made from errno
        PyErr_SetFromErrno(OSError)
    if same == -2:
        return _reference.is_same_file(fd, identity)
    return same == 1
