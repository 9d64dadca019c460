"""Streaming HTTP uploads with ``urllib.request``: poster 0.8.1's streaminghttp.

``urllib.request`` can send a file or an iterable as a request body, but it
falls back to chunked encoding when no length is given, does not rewind a body
for a redirect or an authentication retry, and copies file content through
small blocks.  The handlers here fix that for poster bodies and keep plain
bodies working::

    >>> from poster.encode import multipart_encode
    >>> from poster.streaminghttp import register_openers
    >>> import urllib.request
    >>> opener = register_openers()
    >>> datagen, headers = multipart_encode({"image1": open("DSC0001.jpg", "rb")})
    >>> request = urllib.request.Request("http://localhost:5000/upload", datagen, headers)
    >>> print(urllib.request.urlopen(request).read())          # doctest: +SKIP

What the connections send:

* a body from :func:`poster.encode.multipart_encode` puts itself on the
  socket (:meth:`poster.encode.MultipartBody.write_to`): file content goes
  out in the very blocks its boundary scan read, 256 KiB at a time (with
  ``sendfile=True``, over plain HTTP from a regular file, with
  ``os.sendfile`` after the scan).  The bytes on the wire are
  ``b"".join(datagen)`` either way, and the body is rewound before it is
  sent, so an authentication retry or a 307/308 redirect sends all of it
  again;
* a binary file object is sent from its position to its end (``os.sendfile``
  when it can), an iterable block by block, ``bytes`` as they are.

A poster body of unknown length (a part from a pipe or a generator) is sent
with ``Transfer-Encoding: chunked``, in chunks of up to its block size.  Any
other file or iterable body needs a ``Content-Length`` header
(``ValueError`` otherwise, as in poster 0.8.1).
A file body is held to it: a file with fewer or more bytes from its position
raises :class:`poster.encode.ContentSizeError` before the request is complete.

``Expect: 100-continue`` is honoured when the request carries it: the body is
sent after ``100 Continue``, or after ``continue_timeout`` seconds without an
answer; a final status that comes first is returned and no byte of the body
is sent.  The wait has one deadline, the connection's timeout, however slowly
the server trickles its answer.  Other interim responses (``103 Early
Hints``) are skipped, there and before the final response.

A 307/308 redirect from ``https`` to ``http`` of a request with a body is not
followed (:class:`InsecureRedirectError`): the body would go out in clear text.
"""

from __future__ import annotations

import functools
import http.client
import io
import os
import select
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, List, Optional, Tuple, Type

from poster import _backend, _send
from poster._parts import tell_or_none
from poster._sources import readable_regular_descriptor
from poster.encode import ContentSizeError, MultipartStream

__all__ = [
    "StreamingHTTPConnection",
    "StreamingHTTPSConnection",
    "StreamingHTTPHandler",
    "StreamingHTTPSHandler",
    "StreamingHTTPRedirectHandler",
    "InsecureRedirectError",
    "get_handlers",
    "register_openers",
    "DEFAULT_CONTINUE_TIMEOUT",
]

#: Seconds to wait for ``100 Continue`` before sending the body anyway.
DEFAULT_CONTINUE_TIMEOUT = 1.0

# Buffer through which plain file bodies are copied when sendfile can't be used.
_COPY_BUFFER_SIZE = 256 * 1024

# Bounds on the interim response read while waiting for 100 Continue.
_MAX_LINE = 65536
_MAX_HEADER_LINES = 100
# Interim (1xx) responses skipped before the final one, at most.
_MAX_INTERIM_RESPONSES = 32


def _is_buffer(data: Any) -> bool:
    try:
        memoryview(data)
    except TypeError:
        return False
    return True


# -- connections ---------------------------------------------------------------


class _StreamingConnectionMixin:
    """Sends poster bodies, files and iterables; honours Expect: 100-continue."""

    # Set by http.client.HTTPConnection.
    sock: Any
    debuglevel: int
    auto_open: int

    continue_timeout: float = DEFAULT_CONTINUE_TIMEOUT
    use_sendfile: Any = None  # None, or true or false: see StreamingHTTPConnection
    _expect_continue: bool = False
    _content_length: Optional[int] = None
    _chunked_head: bool = False
    _early_status_line: Optional[bytes] = None
    timeout: Any

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        self._expect_continue = False
        self._content_length = None
        self._chunked_head = False
        super().putrequest(method, url, *args, **kwargs)  # type: ignore[misc]

    def putheader(self, header: Any, *values: Any) -> None:
        name = _text(header).strip().lower()
        if name == "expect" and any(
            _text(value).strip().lower() == "100-continue" for value in values
        ):
            self._expect_continue = True
        elif name == "transfer-encoding":
            self._chunked_head = "chunked" in ",".join(_text(v) for v in values).lower()
        elif name == "content-length":
            text = _text(values[0]).strip() if len(values) == 1 else ""
            if not (text.isascii() and text.isdigit()):
                # A body is held to its length: one that cannot be read is refused.
                raise ValueError(
                    f"Content-Length {', '.join(_text(v) for v in values)!r} is not a "
                    "number of bytes; nothing was sent"
                )
            self._content_length = int(text)
        super().putheader(header, *values)  # type: ignore[misc]

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        """Send the head, then the body (after ``100 Continue`` when asked for)."""
        expect, self._expect_continue = self._expect_continue, False
        poster_body = isinstance(message_body, MultipartStream)
        if (
            message_body is None
            or (encode_chunked and not poster_body)
            or (not expect and _is_buffer(message_body))
        ):
            super().endheaders(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]
            return
        super().endheaders()  # type: ignore[misc]
        if expect and not self._await_continue():
            return
        self._send_body(message_body, self._content_length, chunked=encode_chunked)

    def send(self, data: Any) -> None:
        """Send ``data``: ``bytes``, a poster body, a binary file or an iterable of bytes.

        A poster body is rewound and sent whole; a file from its position to
        its end.  On any error the connection is closed before the error
        propagates, since the server got part of a request; but when the
        server answered and closed before all was sent, that answer is left
        for :meth:`getresponse`.
        """
        self._send_body(data, None)

    def _send_body(self, data: Any, length: Optional[int], chunked: bool = False) -> None:
        """:meth:`send`; a file body given with the head is held to ``length``.

        With ``chunked`` (a poster body only) it goes out chunked.

        ``length`` is the request's ``Content-Length`` when ``data`` is the
        whole body: a file that holds fewer or more bytes from its position
        raises :class:`poster.encode.ContentSizeError` before the request is
        complete (the server never gets a body of another length).
        """
        if self.sock is None:
            if self.auto_open:
                self.connect()  # type: ignore[attr-defined]
            else:
                raise http.client.NotConnected()
        try:
            if isinstance(data, MultipartStream):
                chunked = chunked or self._chunked_head
                if data.total is None and not chunked:
                    raise ValueError(
                        "a poster body of unknown length (a part from a pipe or a generator) "
                        "is sent chunked: put 'Transfer-Encoding: chunked' in the head, or "
                        "use request(..., encode_chunked=True); nothing of it was sent"
                    )
                if self.debuglevel > 0:
                    size = "unknown length" if data.total is None else f"{data.total} bytes"
                    print(f"send: a poster body of {size}" + (", chunked" if chunked else ""))
                data.reset()
                # sendfile=None (the default): the blocks scanned, as write_to does.
                data.write_to(self.sock, sendfile=bool(self.use_sendfile), chunked=chunked)
            elif hasattr(data, "read"):
                if self.debuglevel > 0:
                    print("send: a file object")
                self._send_file(data, length)
            elif _is_buffer(data):
                if self.debuglevel > 0:
                    print("send:", repr(data))
                self.sock.sendall(data)
            else:
                if self.debuglevel > 0:
                    print("send: an iterable")
                for block in data:
                    self.sock.sendall(block)
        except (ConnectionError, ssl.SSLEOFError):
            # A server may answer (413, 500) and close before the body is all
            # sent: that answer, when it came, is the response to read.
            if not _answer_waiting(self.sock):
                self.close()  # type: ignore[attr-defined]
                raise
            self._early_status_line = b""  # getresponse reads it; the connection then closes
        except BaseException:
            self.close()  # type: ignore[attr-defined]
            raise

    def _send_file(self, fileobj: Any, length: Optional[int] = None) -> None:
        source = None
        if (self.use_sendfile is None or self.use_sendfile) and _send.is_plain_socket(self.sock):
            source = readable_regular_descriptor(fileobj)
        if source is not None:
            offset = fileobj.tell()
            count = max(0, os.fstat(source).st_size - offset)
            if length is not None:
                _check_file_length(count, length)
            if not _send.sendfile_all(self.sock, source, offset, count):
                raise ContentSizeError(
                    "the file body was cut short while it was sent; the request is incomplete"
                )
            fileobj.seek(offset + count)
            return
        buffer = _send.read_buffer(_COPY_BUFFER_SIZE)
        view = memoryview(buffer)
        if length is None:
            while True:
                got = _backend.impl.readinto_exact(fileobj, buffer)
                if got:
                    self.sock.sendall(view[:got])
                if got < len(buffer):
                    return
        # Read one byte past what is still due, so that a file longer than
        # announced is seen before its last announced byte is sent.
        remaining = length
        while True:
            want = min(len(buffer), remaining + 1)
            got = _backend.impl.readinto_exact(fileobj, view[:want])
            if got > remaining:
                raise ContentSizeError(
                    f"the file body holds more than its Content-Length of {length} bytes; "
                    "the request was not completed"
                )
            if got < want and got < remaining:
                raise ContentSizeError(
                    f"the file body ended after {length - remaining + got} of its "
                    f"Content-Length of {length} bytes; the request was not completed"
                )
            if got:
                self.sock.sendall(view[:got])
            remaining -= got
            if got < want:
                return

    def _await_continue(self) -> bool:
        """Wait for the answer to ``Expect: 100-continue``; True to send the body.

        ``100 Continue`` is read and dropped, and so are other interim (1xx)
        responses such as ``103 Early Hints``.  No ``100`` within
        ``continue_timeout`` seconds: send the body anyway.  A final status
        first: it is left for :meth:`getresponse` and the body is not sent.

        The whole wait has one deadline, the connection's timeout: a server
        that trickles its interim responses cannot hold the request longer
        (``TimeoutError``, and the connection is closed).
        """
        if self.continue_timeout <= 0:
            return True
        sock = self.sock
        previous = sock.gettimeout()
        started = time.monotonic()
        silence_until = started + self.continue_timeout
        deadline = None if previous is None else started + previous
        try:
            for _ in range(_MAX_INTERIM_RESPONSES):
                # Silence until continue_timeout (or the deadline): send the body.
                wait = silence_until - time.monotonic()
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return True
                sock.settimeout(wait)
                try:
                    first = sock.recv(1)
                except TimeoutError:
                    return True
                # The server has begun a response: its head must come within
                # the deadline (or, without a connection timeout, each byte
                # within continue_timeout).
                status_line = first + _read_line(sock, first, deadline, self.continue_timeout)
                parts = status_line.split(None, 2)
                code = parts[1] if len(parts) >= 2 and parts[0].startswith(b"HTTP/") else b""
                if not (len(code) == 3 and code.startswith(b"1") and code.isdigit()) or code == b"101":
                    # The final response (or the server closed, or garbage):
                    # getresponse reads it, starting with the bytes read here.
                    self._early_status_line = status_line
                    return False
                for _ in range(_MAX_HEADER_LINES):
                    line = _read_line(sock, b"", deadline, self.continue_timeout)
                    if line in (b"\r\n", b"\n"):
                        break
                    if not line:
                        raise http.client.RemoteDisconnected(
                            "the server closed the connection in an interim response"
                        )
                else:
                    raise http.client.HTTPException(
                        f"interim response {code.decode()} with too many header lines"
                    )
                if code == b"100":
                    return True
            raise http.client.HTTPException(
                f"more than {_MAX_INTERIM_RESPONSES} interim responses before the final one"
            )
        except BaseException:
            self.close()  # type: ignore[attr-defined]
            raise
        finally:
            if self.sock is not None:
                sock.settimeout(previous)

    def getresponse(self) -> http.client.HTTPResponse:
        """The response; its head must arrive within the connection's timeout."""
        early, self._early_status_line = self._early_status_line, None
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        self.__dict__["response_class"] = functools.partial(
            _StreamingResponse, prefix=early or b"", early=early is not None, head_timeout=timeout
        )
        try:
            response: http.client.HTTPResponse = super().getresponse()  # type: ignore[misc]
            return response
        finally:
            self.__dict__.pop("response_class", None)


def _answer_waiting(sock: Any) -> bool:
    """Whether the server sent something that may be an answer, to read now."""
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        if isinstance(sock, ssl.SSLSocket):
            return True
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (OSError, ValueError):
        return False


def _check_file_length(available: int, length: int) -> None:
    """Refuse, before sending, a file body whose size is not its Content-Length."""
    if available != length:
        more = "more" if available > length else "fewer"
        raise ContentSizeError(
            f"the file body holds {available} bytes from its position, {more} than its "
            f"Content-Length of {length}; nothing of it was sent"
        )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _read_line(
    sock: Any,
    started: bytes = b"",
    deadline: Optional[float] = None,
    byte_timeout: Optional[float] = None,
) -> bytes:
    """Read from ``sock`` up to and including a LF, one byte at a time.

    Byte by byte so that nothing after the line is taken from the socket.
    ``started`` is what was already read of the line.  With ``deadline``
    (a :func:`time.monotonic` moment) the line must be complete by then
    (``TimeoutError``); without, each byte must come within ``byte_timeout``.
    """
    if started.endswith(b"\n"):
        return b""
    line = bytearray()
    while len(line) < _MAX_LINE:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for the interim response")
            sock.settimeout(remaining)
        elif byte_timeout is not None:
            sock.settimeout(byte_timeout)
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
        if byte == b"\n":
            break
    return bytes(line)


class _ResponseSocket:
    """What :class:`_StreamingResponse` reads from: ``makefile`` is all HTTPResponse uses."""

    def __init__(self, sock: Any, prefix: bytes, deadline: Optional[float]) -> None:
        self._sock = sock
        self._prefix = prefix
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_send.DeadlineReader(
            self._sock, self._deadline, "timed out waiting for the response head", self._prefix
        ))


class _StreamingResponse(http.client.HTTPResponse):
    """An ``HTTPResponse`` whose head must arrive within the connection's timeout.

    ``early`` marks a final response that came before the body was sent: the
    connection closes after it, since the server may still expect the body.
    """

    def __init__(
        self,
        sock: Any,
        *args: Any,
        prefix: bytes = b"",
        early: bool = False,
        head_timeout: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        deadline = None if head_timeout is None else time.monotonic() + head_timeout
        super().__init__(_ResponseSocket(sock, prefix, deadline), *args, **kwargs)  # type: ignore[arg-type]
        self._early = early

    def _read_status(self) -> Tuple[str, int, str]:
        """The status line of the final response (or of ``100``, which ``begin`` skips).

        Other interim responses (``102 Processing``, ``103 Early Hints``) are
        read and dropped here: ``http.client`` would take them for the final
        response.  ``101 Switching Protocols`` is final for this request.
        """
        for _ in range(_MAX_INTERIM_RESPONSES):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 < status < 200 or status == 101:
                return version, status, reason
            skipped = http.client.parse_headers(self.fp)
            if self.debuglevel > 0:
                print(f"interim response {status}, skipped; headers:", list(skipped.items()))
        raise http.client.HTTPException(
            f"more than {_MAX_INTERIM_RESPONSES} interim responses before the final one"
        )

    def begin(self) -> None:
        super().begin()
        if self.fp is not None:
            head_reader = self.fp.raw
            assert isinstance(head_reader, _send.DeadlineReader)
            head_reader.deadline = None  # the body is read with per-read timeouts
        if self._early:
            self.will_close = True


class StreamingHTTPConnection(_StreamingConnectionMixin, http.client.HTTPConnection):
    """An ``http.client.HTTPConnection`` that streams request bodies.

    ``body`` (of :meth:`request`, or given to :meth:`send`) may be ``bytes``,
    a body from :func:`poster.encode.multipart_encode`, a binary file object
    or an iterable of ``bytes``.

    ``sendfile`` says how file content goes out:

    * None (the default): a file body (a regular file) with ``os.sendfile``,
      zero-copy; a poster body's file content in the blocks its boundary
      scan read, so the bytes sent are the bytes scanned (on loopback TCP
      that is also faster than reading each block again with
      ``os.sendfile``: see the README's performance section);
    * true: a poster body's file content with ``os.sendfile`` as well, once
      each block was scanned (a file rewritten in place meanwhile then sends
      bytes that were not scanned: see :meth:`~poster.encode.MultipartBody.write_to`);
    * false (but not None): never ``os.sendfile``.

    ``continue_timeout`` is how long to wait for ``100 Continue`` when the
    request carries ``Expect: 100-continue``.  Other arguments are those of
    ``http.client.HTTPConnection``.
    """

    def __init__(
        self,
        host: str,
        port: Optional[int] = None,
        *args: Any,
        continue_timeout: float = DEFAULT_CONTINUE_TIMEOUT,
        sendfile: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, *args, **kwargs)
        self.continue_timeout = continue_timeout
        self.use_sendfile = sendfile


class StreamingHTTPSConnection(_StreamingConnectionMixin, http.client.HTTPSConnection):
    """An ``http.client.HTTPSConnection`` that streams request bodies.

    As :class:`StreamingHTTPConnection`, over TLS: content is encrypted from
    ``memoryview`` slices of one reused buffer (no ``sendfile``).  The
    certificate and host name are verified unless ``context`` says otherwise.
    """

    def __init__(
        self,
        host: str,
        port: Optional[int] = None,
        *args: Any,
        continue_timeout: float = DEFAULT_CONTINUE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, *args, **kwargs)
        self.continue_timeout = continue_timeout


# -- urllib handlers -----------------------------------------------------------


class _BodyState:
    """Where a request body starts, so it can be sent again.

    Kept on the ``Request`` (and carried to the request of a 307/308
    redirect): the first time a request is opened its body is sent as it is;
    every later time (an authentication retry, a redirect) it is rewound
    first, or ``ValueError`` says why it can't be.
    """

    def __init__(self, data: Any) -> None:
        self.start: Optional[int] = None
        if not isinstance(data, MultipartStream) and hasattr(data, "read"):
            self.start = tell_or_none(data)

    def rewind(self, data: Any) -> None:
        if isinstance(data, MultipartStream) or callable(getattr(data, "reset", None)):
            data.reset()
        elif hasattr(data, "read"):
            if self.start is None:
                raise ValueError(
                    "cannot send the request body again: its file cannot seek back"
                )
            data.seek(self.start)
        elif iter(data) is data:
            raise ValueError(
                "cannot send the request body again: it is a one-shot iterator; "
                "pass a poster body, a file or a list"
            )


def _prepare_body(req: urllib.request.Request) -> None:
    """Check a streamed body has a Content-Length; rewind it when it is re-sent."""
    data = req.data
    if data is None or isinstance(data, str) or _is_buffer(data):
        return
    unknown_length = isinstance(data, MultipartStream) and data.total is None
    if not req.has_header("Content-length") and not unknown_length:
        raise ValueError(
            "No Content-Length specified for iterable body; pass the headers "
            "from multipart_encode, or a Content-Length header"
        )
    state = getattr(req, "_poster_body", None)
    if state is None:
        req._poster_body = _BodyState(data)  # type: ignore[attr-defined]
    else:
        state.rewind(data)


class StreamingHTTPHandler(urllib.request.HTTPHandler):
    """Opens ``http:`` URLs with :class:`StreamingHTTPConnection`.

    A file or iterable request body needs a ``Content-Length`` header
    (``ValueError`` otherwise).  A body opened again (an authentication
    retry) is rewound and sent whole.  ``continue_timeout``: see
    :class:`StreamingHTTPConnection`.
    """

    handler_order = 499

    def __init__(
        self, debuglevel: int = 0, *, continue_timeout: float = DEFAULT_CONTINUE_TIMEOUT
    ) -> None:
        super().__init__(debuglevel)
        self.continue_timeout = continue_timeout

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            StreamingHTTPConnection, req, continue_timeout=self.continue_timeout
        )

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        _prepare_body(req)
        return super().http_request(req)


class StreamingHTTPSHandler(urllib.request.HTTPSHandler):
    """Opens ``https:`` URLs with :class:`StreamingHTTPSConnection`.

    Certificates and host names are verified by default.  ``context`` is an
    ``ssl.SSLContext`` to use instead (a custom CA, a client certificate);
    ``check_hostname``, when not ``None``, is set on it.  Bodies as
    :class:`StreamingHTTPHandler`.
    """

    handler_order = 499

    def __init__(
        self,
        debuglevel: int = 0,
        context: Optional[ssl.SSLContext] = None,
        check_hostname: Optional[bool] = None,
        *,
        continue_timeout: float = DEFAULT_CONTINUE_TIMEOUT,
    ) -> None:
        if context is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["http/1.1"])
        if check_hostname is not None:
            context.check_hostname = check_hostname
        super().__init__(debuglevel, context)
        self.continue_timeout = continue_timeout

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            StreamingHTTPSConnection,
            req,
            context=self._context,  # type: ignore[attr-defined]
            continue_timeout=self.continue_timeout,
        )

    def https_request(self, req: urllib.request.Request) -> urllib.request.Request:
        _prepare_body(req)
        return super().https_request(req)


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class InsecureRedirectError(urllib.error.HTTPError):
    """A 307/308 redirect from ``https`` to ``http`` of a request with a body.

    Following it would send the body again in clear text, so it is refused:
    the error names the downgrade and carries the redirect response.
    """


_CONTENT_HEADERS = ("content-length", "content-type")
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


class StreamingHTTPRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects of requests with streamed bodies.

    * 301, 302 and 303 after a ``POST`` (303 after anything but ``HEAD``):
      a ``GET`` without body, ``Content-Type`` or ``Content-Length``.
    * 307 and 308 (and 301/302 after methods other than ``POST``): the same
      method and the whole body again, rewound; ``HTTPError`` when the body
      cannot be rewound (a one-shot iterator, a file that cannot seek).
    * A redirect to another origin (scheme, host or port) drops the
      ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` headers.
    * A 307/308 from ``https`` to ``http`` of a request with a body is not
      followed (:class:`InsecureRedirectError`): the body would go out in
      clear text.
    """

    handler_order = 499

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> Optional[urllib.request.Request]:
        if code not in (301, 302, 303, 307, 308):
            raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)
        method = req.get_method()
        newurl = newurl.replace(" ", "%20")
        same_request = method not in ("GET", "HEAD") and (
            code in (307, 308) or (code in (301, 302) and method != "POST")
        )
        new_headers = dict(req.headers)
        data = None
        if same_request:
            data = req.data
            new_method = method
            if data is not None and _origin(newurl)[0] not in ("http", "https"):
                raise urllib.error.HTTPError(
                    req.full_url, code,
                    f"{msg} (not followed: a {code} redirect to {_origin(newurl)[0] or 'no'} "
                    f"scheme cannot carry the {method} and its body, to {newurl})",
                    headers, fp,
                )
            if (
                data is not None
                and _origin(req.full_url)[0] == "https"
                and _origin(newurl)[0] != "https"
            ):
                raise InsecureRedirectError(
                    req.full_url,
                    code,
                    f"{msg} (not followed: a {code} redirect from https to "
                    f"{_origin(newurl)[0]} would send the request body unencrypted, "
                    f"to {newurl})",
                    headers,
                    fp,
                )
            state = getattr(req, "_poster_body", None)
            if state is not None:
                try:
                    state.rewind(data)
                except ValueError as exc:
                    raise urllib.error.HTTPError(
                        req.full_url, code, f"{msg} (not followed: {exc})", headers, fp
                    ) from exc
        else:
            new_method = "HEAD" if method == "HEAD" else "GET"
            new_headers = {
                key: value for key, value in new_headers.items()
                if key.lower() not in _CONTENT_HEADERS
            }
        if _origin(req.full_url) != _origin(newurl):
            new_headers = {
                key: value for key, value in new_headers.items()
                if key.lower() not in _CREDENTIAL_HEADERS
            }
        new = urllib.request.Request(
            newurl,
            data=data,
            headers=new_headers,
            origin_req_host=req.origin_req_host,
            unverifiable=True,
            method=new_method,
        )
        if data is not None and getattr(req, "_poster_body", None) is not None:
            new._poster_body = req._poster_body  # type: ignore[attr-defined]
        return new

    # Python 3.10's handler does not follow 308.
    http_error_301 = http_error_302 = http_error_303 = http_error_307 = (
        urllib.request.HTTPRedirectHandler.http_error_302
    )
    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302


def get_handlers() -> List[Type[urllib.request.BaseHandler]]:
    """The handler classes that make ``urllib.request`` stream: HTTP, HTTPS, redirects."""
    return [StreamingHTTPHandler, StreamingHTTPRedirectHandler, StreamingHTTPSHandler]


def register_openers() -> urllib.request.OpenerDirector:
    """Build an opener with the streaming handlers and install it for ``urlopen``.

    Returns the ``OpenerDirector``; add more handlers to it with
    ``add_handler`` (an ``HTTPBasicAuthHandler``, an ``HTTPCookieProcessor``).
    """
    opener = urllib.request.build_opener(*get_handlers())
    urllib.request.install_opener(opener)
    return opener
