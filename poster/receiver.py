"""A receiver for uploads: what ``poster serve`` and ``poster demo`` run.

It is built on :mod:`http.server` and python-multipart's streaming parser, so
a body of any size is parsed in constant memory: each part is hashed (and, with
a save directory, written to disk) block by block as it arrives.  The answer is
JSON, for a multipart/form-data body::

    {"method": "POST", "path": "/", "headers": {...},
     "fields": [{"name": "file", "filename": "a.bin",
                 "content_type": "application/octet-stream",
                 "size": 1048576, "sha256": "...", "saved_as": "a.bin"}]}

and for any other body ``"body": {"size": ..., "sha256": ...}`` instead of
``"fields"``.  Small text fields (no filename, at most 1 KiB of UTF-8) also
carry their ``"value"``.

Every other answer is JSON too, an error included: ``{"error": "..."}``
with the status (400, 405, 411, 413, 431, 500, ...).

With ``save_dir`` the file parts are written under that directory and never
outside it: the sent filename (``filename``, or ``filename*`` of RFC 5987) is
only a suggestion, with path separators, control characters (C0 and C1),
bidirectional controls and leading dots replaced by ``_``, and a long name
cut keeping its extension; an existing file is never overwritten
(``name-1.ext`` and so on).  A request that fails leaves no
file behind.  With ``max_size`` a body larger than that many bytes is refused
with ``413 Payload Too Large`` before it is read, or as soon as it is seen to be
too long when its length was not announced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.server
import itertools
import io
import json
import logging
import os
import re
import socket
import socketserver
import tempfile
import threading
import time
import urllib.parse
from http import HTTPStatus
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Tuple

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

import poster
from poster._send import DeadlineReader

__all__ = [
    "ReceiverError",
    "ReceiverServer",
    "UploadDirectory",
    "UploadHandler",
    "serving_in_thread",
    "safe_filename",
]

#: Bytes read from the socket at a time.
READ_BLOCK = 256 * 1024
#: A text field's value is echoed back when it is at most this long.
VALUE_ECHO_LIMIT = 1024
#: Limits on what a part's headers may hold, so they too take bounded memory.
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_PART_HEADERS = 32
#: Limit on the number of fields in one body (each costs one line of the answer).
MAX_FIELDS = 100_000
#: Longest file name written, in bytes of UTF-8 (leaves room for "-NNN").
MAX_FILENAME_BYTES = 200
#: Longest multipart boundary taken (RFC 2046 allows 70; some clients send more).
MAX_BOUNDARY = 256
#: Seconds a client may take to send a request's head (from the connection's
#: start, or the previous answer), and may stay silent while sending a body.
DEFAULT_TIMEOUT = 60.0

# python-multipart logs why a body is malformed, on stderr when logging is not
# set up; the receiver answers the reason itself (and logs it unless quiet).
logging.getLogger("python_multipart").addHandler(logging.NullHandler())


class ReceiverError(Exception):
    """A request the receiver refuses: answered with ``status`` and a JSON error."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: Characters that become ``_`` in a saved name, besides ``/``, ``\\`` and the
#: control characters (C0, DEL, C1): the line and paragraph separators and
#: the bidirectional controls, which make a name read otherwise than it is.
_UNSAFE_IN_NAMES = frozenset(
    "\u2028\u2029\u061c\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: An extension longer than this (in bytes of UTF-8) is not kept when a name is cut.
_MAX_KEPT_EXTENSION = 32


def _unsafe_char(ch: str) -> bool:
    code = ord(ch)
    return ch in "/\\" or code < 0x20 or 0x7F <= code <= 0x9F or ch in _UNSAFE_IN_NAMES


def _cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")


def safe_filename(filename: str) -> str:
    """A name for ``filename`` that stays inside the directory it is joined to.

    Path separators (``/`` and ``\\``), control characters (C0, DEL and C1,
    NUL included), the line and paragraph separators and the bidirectional
    controls become ``_``, and so do leading dots (no ``..``, no hidden files).
    What is left is cut to :data:`MAX_FILENAME_BYTES`, keeping its extension;
    an empty result is ``"upload"``.
    """
    cleaned = "".join("_" if _unsafe_char(ch) else ch for ch in filename)
    stripped = cleaned.lstrip(".")
    if len(stripped) != len(cleaned):
        cleaned = "_" + stripped
    if len(cleaned.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        stem, ext = os.path.splitext(cleaned)
        ext_bytes = len(ext.encode("utf-8", "surrogatepass"))
        if stem and ext_bytes <= _MAX_KEPT_EXTENSION:
            cleaned = _cut_utf8(stem, MAX_FILENAME_BYTES - ext_bytes) + ext
        else:
            cleaned = _cut_utf8(cleaned, MAX_FILENAME_BYTES)
    return cleaned if cleaned.strip(" _") else "upload"


class UploadDirectory:
    """Where a receiver saves file parts: a temporary file while the part
    arrives, renamed to a fresh name in the directory once the request is done.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        os.makedirs(self.path, exist_ok=True)

    def create_temporary(self) -> Tuple[BinaryIO, str]:
        """A new hidden file in the directory, open for writing, and its path."""
        fd, temp_path = tempfile.mkstemp(dir=self.path, prefix=".poster-", suffix=".part")
        return os.fdopen(fd, "wb"), temp_path

    def commit(self, temp_path: str, filename: str) -> str:
        """Move ``temp_path`` to a name made from ``filename``; returns the name.

        The name is claimed with ``O_EXCL`` first, so two requests never get the
        same one and no existing file (nor a symbolic link) is written through.
        """
        name = safe_filename(filename)
        stem, ext = os.path.splitext(name)
        for number in itertools.count():
            candidate = name if number == 0 else f"{stem}-{number}{ext}"
            target = os.path.join(self.path, candidate)
            if os.path.dirname(target) != self.path:  # safe_filename makes this impossible
                raise ReceiverError(HTTPStatus.BAD_REQUEST, f"unusable filename {filename!r}")
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            os.replace(temp_path, target)
            return candidate
        raise AssertionError("unreachable")


class _PartSink:
    """Takes one part's content as it arrives: size, sha256, maybe a file."""

    def __init__(
        self,
        name: Optional[str],
        filename: Optional[str],
        content_type: Optional[str],
        file: Optional[BinaryIO],
    ) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.file = file
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._value: Optional[bytearray] = bytearray() if filename is None else None

    def write(self, chunk: memoryview) -> None:
        self._sha256.update(chunk)
        self.size += len(chunk)
        if self.file is not None:
            self.file.write(chunk)
        if self._value is not None:
            if len(self._value) + len(chunk) <= VALUE_ECHO_LIMIT:
                self._value += chunk
            else:
                self._value = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def summary(self) -> Dict[str, Any]:
        field: Dict[str, Any] = {
            "name": self.name,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self._sha256.hexdigest(),
        }
        if self._value is not None:
            try:
                field["value"] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return field


def _header_text(raw: bytes) -> str:
    """A header parameter as text: UTF-8 when it is (browsers send that), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _disposition_params(header: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """The ``name=value`` parameters of a Content-Disposition, quotes respected.

    A quoted value is given without its quotes and backslash escapes.
    """
    pos, end = 0, len(header)
    first = True
    while pos < end:
        # A parameter runs to the next ';' outside a quoted string.
        start, quoted, escaped = pos, False, False
        while pos < end:
            byte = header[pos]
            if escaped:
                escaped = False
            elif quoted and byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # '"'
                quoted = not quoted
            elif byte == 0x3B and not quoted:  # ';'
                break
            pos += 1
        item, pos = header[start:pos], pos + 1
        if first:  # the disposition type
            first = False
            continue
        key, equals, value = item.partition(b"=")
        if not equals:
            continue
        value = value.strip()
        if len(value) >= 2 and value[:1] == value[-1:] == b'"':
            value = re.sub(rb"\\(.)", rb"\1", value[1:-1])
        yield key.strip().lower(), value


_EXTENDED_CHARSETS = {"utf-8": "utf-8", "iso-8859-1": "latin-1", "us-ascii": "ascii"}


def _extended_filename(header: bytes) -> Optional[str]:
    """The ``filename*`` of a Content-Disposition (RFC 5987/8187), decoded; else None.

    ``charset'language'percent-encoded``; UTF-8 and ISO-8859-1 are decoded
    (bytes that do not decode become U+FFFD), another charset as UTF-8.
    """
    for key, value in _disposition_params(header):
        if key != b"filename*":
            continue
        charset, quote1, rest = value.partition(b"'")
        _, quote2, encoded = rest.partition(b"'")
        if not (quote1 and quote2):
            return None
        codec = _EXTENDED_CHARSETS.get(charset.decode("latin-1").strip().lower(), "utf-8")
        return urllib.parse.unquote_to_bytes(encoded).decode(codec, "replace")
    return None


def _parser_limits() -> Dict[str, int]:
    """The part-header limits for python-multipart's parser, when it takes them.

    Recent versions have limits of their own, lower than the receiver's:
    raised to just above the receiver's, which are checked as the headers'
    bytes reach the callbacks (a part-header error is answered 431 either way).
    """
    import inspect

    parameters = inspect.signature(MultipartParser).parameters
    wanted = {"max_header_count": MAX_PART_HEADERS + 1, "max_header_size": MAX_PART_HEADER_BYTES + 1}
    return {key: value for key, value in wanted.items() if key in parameters}


_PARSER_LIMITS = _parser_limits()


class FormReceiver:
    """Drives python-multipart's streaming parser over one body.

    Feed it blocks with :meth:`feed`; :meth:`finish` checks the body was
    complete, saves the files and returns one summary per field.  On any error
    call :meth:`abort`, which removes what was written.
    """

    def __init__(self, boundary: bytes, save_dir: Optional[UploadDirectory]) -> None:
        if len(boundary) > MAX_BOUNDARY:
            raise ReceiverError(
                HTTPStatus.BAD_REQUEST,
                f"the multipart boundary is {len(boundary)} characters long; this receiver "
                f"takes at most {MAX_BOUNDARY} (RFC 2046 allows 70)",
            )
        self.save_dir = save_dir
        # RFC 2046: a preamble may come before the first delimiter, and is
        # ignored.  Until that delimiter is found, this holds what may be its
        # start (a CRLF before the body's first byte, so that a body starting
        # with "--boundary" is found the same way); None after.
        self._delimiter = b"\r\n--" + boundary
        self._preamble_tail: Optional[bytes] = b"\r\n"
        self.fields: List[Dict[str, Any]] = []
        self.complete = False
        self._pending_files: List[Tuple[str, str, Dict[str, Any]]] = []  # temp path, filename, field
        self._part: Optional[_PartSink] = None
        self._temp_path: Optional[str] = None
        self._headers: Dict[str, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }, **_PARSER_LIMITS)

    def feed(self, block: bytes) -> None:
        if self._preamble_tail is not None:
            block = self._after_preamble(block)
            if not block:
                return
        try:
            self._parser.write(block)
        except MultipartParseError as exc:
            if str(exc).startswith("Maximum header"):  # python-multipart's own part-header limits
                raise ReceiverError(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"a part's headers are too large: {exc} (at most {MAX_PART_HEADERS} headers, "
                    f"{MAX_PART_HEADER_BYTES} bytes)",
                ) from None
            raise ReceiverError(HTTPStatus.BAD_REQUEST, f"malformed multipart body: {exc}") from None

    def _after_preamble(self, block: bytes) -> bytes:
        """What of ``block`` comes from the first delimiter on; the preamble
        before it is dropped as it arrives (memory stays bounded)."""
        assert self._preamble_tail is not None
        seen = self._preamble_tail + block
        at = seen.find(self._delimiter)
        if at < 0:
            self._preamble_tail = seen[-(len(self._delimiter) - 1):]
            return b""
        self._preamble_tail = None
        return seen[at + 2:]  # from "--boundary"

    def finish(self) -> List[Dict[str, Any]]:
        if self._preamble_tail is not None:
            raise ReceiverError(
                HTTPStatus.BAD_REQUEST,
                "malformed multipart body: no line in it is a delimiter, '--' and the boundary "
                f"{self._delimiter[4:].decode('latin-1')!r} of its Content-Type",
            )
        self._parser.finalize()
        if not self.complete:
            raise ReceiverError(
                HTTPStatus.BAD_REQUEST,
                "the multipart body ended before its close delimiter",
            )
        while self._pending_files:
            temp_path, filename, field = self._pending_files[0]
            assert self.save_dir is not None  # files are kept only with a save_dir
            field["saved_as"] = self.save_dir.commit(temp_path, filename)
            self._pending_files.pop(0)
        return self.fields

    def abort(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None
        paths = [temp_path for temp_path, _, _ in self._pending_files]
        if self._temp_path is not None:
            paths.append(self._temp_path)
        self._pending_files.clear()
        self._temp_path = None
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)

    # -- parser callbacks ------------------------------------------------------

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise ReceiverError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"a part's headers are longer than {MAX_PART_HEADER_BYTES} bytes",
            )

    def _on_part_begin(self) -> None:
        if len(self.fields) >= MAX_FIELDS:
            raise ReceiverError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"more than {MAX_FIELDS} fields in one body"
            )
        self._headers = {}
        self._header_bytes = 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if len(self._headers) >= MAX_PART_HEADERS:
            raise ReceiverError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"a part has more than {MAX_PART_HEADERS} headers",
            )
        name = self._header_field.decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"")
        _, options = parse_options_header(disposition.decode("latin-1"))
        name = options.get(b"name")
        raw_filename = options.get(b"filename")
        # RFC 6266: filename* (RFC 5987) wins over filename when both are sent.
        filename = _extended_filename(disposition)
        if filename is None and raw_filename is not None:
            filename = _header_text(raw_filename)
        content_type = self._headers.get("content-type")
        file: Optional[BinaryIO] = None
        if filename is not None and self.save_dir is not None:
            file, self._temp_path = self.save_dir.create_temporary()
        self._part = _PartSink(
            None if name is None else _header_text(name),
            filename,
            None if content_type is None else _header_text(content_type),
            file,
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self._part is not None
        self._part.write(memoryview(data)[start:end])

    def _on_part_end(self) -> None:
        part, self._part = self._part, None
        assert part is not None
        part.close()
        field = part.summary()
        self.fields.append(field)
        if self._temp_path is not None:
            assert part.filename is not None
            self._pending_files.append((self._temp_path, part.filename, field))
            self._temp_path = None

    def _on_end(self) -> None:
        self.complete = True


def _announced_length(headers: Any, max_size: Optional[int]) -> Optional[int]:
    """The body's length from the headers (``None`` when chunked), or a refusal.

    One framing only: two ``Content-Length`` or ``Transfer-Encoding`` lines
    are refused, since a proxy in front might read the other one and take
    the rest of the body for a request of its own.
    """
    for name in ("Transfer-Encoding", "Content-Length"):
        if len(headers.get_all(name) or ()) > 1:
            raise ReceiverError(HTTPStatus.BAD_REQUEST, f"{name} was sent more than once")
    transfer_encoding = headers.get("Transfer-Encoding")
    content_length = headers.get("Content-Length")
    if transfer_encoding is not None:
        if transfer_encoding.strip().lower() != "chunked":
            raise ReceiverError(
                HTTPStatus.NOT_IMPLEMENTED,
                f"Transfer-Encoding {transfer_encoding!r} is not supported; send Content-Length or chunked",
            )
        if content_length is not None:
            raise ReceiverError(
                HTTPStatus.BAD_REQUEST, "both Content-Length and Transfer-Encoding were sent"
            )
        return None
    if content_length is None:
        raise ReceiverError(HTTPStatus.LENGTH_REQUIRED, "send Content-Length (or a chunked body)")
    text = content_length.strip()
    if not (text.isascii() and text.isdigit()):
        raise ReceiverError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {content_length!r}")
    length = int(text)
    if max_size is not None and length > max_size:
        raise ReceiverError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body is {length} bytes; this receiver takes at most {max_size}",
        )
    return length


def _iter_body(rfile: BinaryIO, length: Optional[int], max_size: Optional[int]) -> Iterator[bytes]:
    """The request body in blocks: ``length`` bytes, or a chunked body decoded."""
    if length is not None:
        remaining = length
        while remaining:
            block = rfile.read1(min(READ_BLOCK, remaining))  # type: ignore[attr-defined]
            if not block:
                raise ReceiverError(
                    HTTPStatus.BAD_REQUEST,
                    f"the body ended after {length - remaining} of {length} bytes",
                )
            remaining -= len(block)
            yield block
        return
    received = 0
    while True:
        size = _chunk_size(rfile.readline(MAX_CHUNK_LINE + 1))
        if size == 0:
            _skip_trailers(rfile)
            return
        received += size
        if max_size is not None and received > max_size:
            raise ReceiverError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is longer than {max_size} bytes, the most this receiver takes",
            )
        while size:
            block = rfile.read1(min(READ_BLOCK, size))  # type: ignore[attr-defined]
            if not block:
                raise ReceiverError(HTTPStatus.BAD_REQUEST, "the chunked body ended early")
            size -= len(block)
            yield block
        if rfile.readline(3) not in (b"\r\n", b"\n"):
            raise ReceiverError(HTTPStatus.BAD_REQUEST, "malformed chunked body: no CRLF after a chunk")


#: Longest chunk-size line (size and extensions) of a chunked body.
MAX_CHUNK_LINE = 4096
#: Most hex digits in a chunk size (16: any 64-bit size).
MAX_CHUNK_SIZE_DIGITS = 16
#: Limits on the trailer section after the last chunk.
MAX_TRAILER_LINES = 64
MAX_TRAILER_LINE = 8192

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _chunk_size(line: bytes) -> int:
    """The size of a chunk from its line: ``1*HEXDIG [ BWS ";" ext ] CRLF``.

    Nothing else is taken: no sign, ``0x``, ``_``, spaces around the digits
    or an empty size (``int(..., 16)`` takes all of those).
    """
    if not line.endswith(b"\n"):
        raise ReceiverError(HTTPStatus.BAD_REQUEST, "malformed chunked body: chunk-size line too long or cut")
    text = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    digits, semicolon, _ = text.partition(b";")
    if semicolon:
        digits = digits.rstrip(b" \t")  # whitespace before the extensions (RFC 9112 BWS)
    if not digits or not set(digits) <= _HEX_DIGITS:
        raise ReceiverError(HTTPStatus.BAD_REQUEST, f"malformed chunk size {text[:40]!r}")
    if len(digits) > MAX_CHUNK_SIZE_DIGITS:
        raise ReceiverError(HTTPStatus.BAD_REQUEST, f"chunk size of more than {MAX_CHUNK_SIZE_DIGITS} hex digits")
    return int(digits, 16)


def _skip_trailers(rfile: BinaryIO) -> None:
    """Read the trailer section after the last chunk (its fields are ignored)."""
    for _ in range(MAX_TRAILER_LINES + 1):
        line = rfile.readline(MAX_TRAILER_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return
        if not line.endswith(b"\n"):
            if not line:
                raise ReceiverError(HTTPStatus.BAD_REQUEST, "the chunked body ended in its trailers")
            raise ReceiverError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "a trailer line of the chunked body is too long"
            )
    raise ReceiverError(
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_TRAILER_LINES} trailer lines"
    )


class UploadHandler(http.server.BaseHTTPRequestHandler):
    """Answers POST, PUT and PATCH with what the body held (see the module doc)."""

    protocol_version = "HTTP/1.1"
    server_version = f"poster-receiver/{poster.__version__}"
    #: Seconds a silent client may hold a connection (the server's ``timeout`` is used).
    timeout = DEFAULT_TIMEOUT
    server: "ReceiverServer"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)
        # The request head is read against a deadline (see handle_one_request).
        self.rfile.close()
        self._head_deadline = DeadlineReader(self.connection, None, "the request head did not come in time")
        self.rfile = io.BufferedReader(self._head_deadline)

    def handle_one_request(self) -> None:
        """One request; its head (the wait for it included) must come within
        the timeout, however slowly its bytes trickle in."""
        self._head_deadline.deadline = time.monotonic() + self.server.request_timeout
        super().handle_one_request()

    def parse_request(self) -> bool:
        try:
            return super().parse_request()
        finally:
            self._head_deadline.deadline = None  # the body is read with per-read timeouts

    def do_POST(self) -> None:
        try:
            answer = self._receive()
        except ReceiverError as exc:
            self._refuse(exc)
        except (TimeoutError, ConnectionError) as exc:
            self.close_connection = True
            self.log_message("connection lost while receiving: %s", exc)
        except OSError as exc:  # writing to --save-dir failed
            self._refuse(ReceiverError(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot save the upload: {exc.strerror or exc}"
            ))
        except Exception as exc:  # a bug: still answered, as JSON
            self.log_error("error while receiving: %r", exc)
            self._refuse(ReceiverError(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}"
            ))
        else:
            self._send_json(HTTPStatus.OK, answer)

    do_PUT = do_PATCH = do_POST

    def do_GET(self) -> None:
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
            # A body that is not read would be taken for the next request on
            # the connection: answered, and the connection closed.
            self.close_connection = True
        self._send_json(HTTPStatus.OK, {
            "receiver": f"poster {poster.__version__}",
            "usage": "POST or PUT a body here: the answer gives each multipart field's "
                     "name, filename, content type, size and sha256",
        })

    do_HEAD = do_GET

    #: The methods answered; other known ones get 405, unknown ones 501.
    ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH"

    def _method_not_allowed(self) -> None:
        self._answer_and_close(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"method {self.command} is not allowed; use {self.ALLOWED_METHODS}"},
            {"Allow": self.ALLOWED_METHODS},
        )

    do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _method_not_allowed

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Answer an error of :mod:`http.server` (a malformed request line, a
        header too large, an unknown method) as JSON, as every other answer."""
        try:
            short, long = self.responses[code]
        except KeyError:
            short, long = "error", ""
        message = message or short
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        # http.server takes a request line it cannot parse for HTTP/0.9 and
        # would answer without a head: answer with one, so the error is seen.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        answer = {"error": message}
        if (explain or long) and (explain or long) != message:
            answer["detail"] = explain or long
        if code < 200 or code in (HTTPStatus.NO_CONTENT, HTTPStatus.RESET_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.send_response(code, message)
            self.send_header("Connection", "close")
            self.end_headers()
            return
        self._answer_and_close(code, answer)

    def handle_expect_100(self) -> bool:
        """Refuse a body that is too large before the client sends it."""
        try:
            _announced_length(self.headers, self.server.max_size)
        except ReceiverError as exc:
            self._refuse(exc)
            return False
        return super().handle_expect_100()

    def _receive(self) -> Dict[str, Any]:
        length = _announced_length(self.headers, self.server.max_size)
        body = _iter_body(self.rfile, length, self.server.max_size)  # type: ignore[arg-type]
        answer: Dict[str, Any] = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
        }
        content_type, options = parse_options_header(self.headers.get("Content-Type", ""))
        if content_type != b"multipart/form-data":
            sha256, size = hashlib.sha256(), 0
            for block in body:
                sha256.update(block)
                size += len(block)
            answer["body"] = {"size": size, "sha256": sha256.hexdigest()}
            return answer
        boundary = options.get(b"boundary")
        if not boundary:
            raise ReceiverError(HTTPStatus.BAD_REQUEST, "multipart/form-data without a boundary")
        form = FormReceiver(boundary, self.server.save_dir)
        try:
            for block in body:
                form.feed(block)
            answer["fields"] = form.finish()
        except BaseException:
            form.abort()
            raise
        return answer

    def _send_json(
        self, status: int, answer: Dict[str, Any], headers: Optional[Dict[str, str]] = None
    ) -> None:
        data = (json.dumps(answer, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _refuse(self, error: ReceiverError) -> None:
        """Answer ``error`` and close; the unread body is drained for a moment so
        the client sees the answer rather than a reset connection."""
        self.log_message("refused with %d: %s", error.status, error.message)
        self._answer_and_close(error.status, {"error": error.message})

    def _answer_and_close(
        self, status: int, answer: Dict[str, Any], headers: Optional[Dict[str, str]] = None
    ) -> None:
        """Answer and close, draining what the client still sends for a moment."""
        self.close_connection = True
        try:
            self._send_json(status, answer, headers)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.25)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and self.connection.recv(READ_BLOCK):
                pass
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)


class ReceiverServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server running :class:`UploadHandler`, bound to
    ``host:port`` (port 0: a free one) and not yet serving.

    ``timeout``: a client that takes longer to send a request's head (or is
    silent that long while sending a body) is dropped.
    """

    daemon_threads = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        save_dir: Optional[str] = None,
        max_size: Optional[int] = None,
        quiet: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must not be negative, got {max_size}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        self.save_dir = None if save_dir is None else UploadDirectory(save_dir)
        self.max_size = max_size
        self.quiet = quiet
        #: Seconds a client may take to send a request's head, and may stay
        #: silent while sending a body.
        self.request_timeout = timeout
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), UploadHandler)

    def server_bind(self) -> None:
        # http.server looks the host's name up (a DNS query); the address is enough.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        return f"http://[{host}]:{self.server_port}/" if ":" in host else f"http://{host}:{self.server_port}/"


@contextlib.contextmanager
def serving_in_thread(server: ReceiverServer) -> Iterator[ReceiverServer]:
    """Run ``server`` in a background thread for the length of a ``with``; close it after."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
