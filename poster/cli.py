"""The command line: ``poster upload``, ``poster serve`` and ``poster demo``.

``python -m poster`` and the ``poster`` script run :func:`main`.  Each command
flows one way: parse the arguments, build the params, send, report.  What a
user can fix ends the program with one line on stderr, ``poster: error: ...``,
and an exit status:

===  ==========================================================================
 0   done (``upload``: the server answered 2xx or 3xx)
 1   the server answered with an HTTP status of 400 or more; ``demo``: the
     receiver got other bytes than were sent
 2   bad arguments, a missing or unreadable file
 3   no connection: refused, unreachable host, timeout, connection dropped
 4   TLS: the server's certificate is not trusted, or the handshake failed
 5   the body could not be sent as announced (a file changed while it was
     sent, or the boundary occurs in the content)
===  ==========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import json
import mimetypes
import os
import re
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Dict, List, Optional, Sequence, Tuple

import poster
from poster.encode import (
    BoundaryCollisionError,
    ContentSizeError,
    MultipartParam,
    multipart_encode,
)

__all__ = [
    "EXIT_OK",
    "EXIT_HTTP_ERROR",
    "EXIT_USAGE",
    "EXIT_CONNECTION",
    "EXIT_TLS",
    "EXIT_BODY",
    "CommandError",
    "FormField",
    "parse_form_field",
    "parse_header",
    "parse_size",
    "build_params",
    "send",
    "main",
]

EXIT_OK = 0
EXIT_HTTP_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_TLS = 4
EXIT_BODY = 5

#: ``poster demo``'s file size when ``--size`` is not given.
DEMO_SIZE = 256 * 1024 * 1024
#: Seconds any one socket operation may take before ``upload`` gives up.
DEFAULT_TIMEOUT = 120.0
#: Headers poster writes itself, from the form.
_OWN_HEADERS = {"content-type", "content-length", "transfer-encoding"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


class CommandError(Exception):
    """Something the user can fix: one line on stderr and an exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# -- parsing the arguments -----------------------------------------------------

@dataclass(frozen=True)
class FormField:
    """One ``-F`` argument, parsed.

    ``source`` is ``"text"`` (``name=value``), ``"file"`` (``name=@path``: a
    file upload) or ``"file-content"`` (``name=<path``: a text field holding
    the file's content).  ``data`` is the value or the path (``-`` is stdin).
    """

    spec: str
    name: str
    source: str
    data: str
    filename: Optional[str] = None
    filetype: Optional[str] = None


def _read_word(text: str, pos: int, stops: str) -> Tuple[str, int]:
    """A value starting at ``pos``: a ``"quoted string"`` (with ``\\"`` and
    ``\\\\`` escapes) or the text up to one of ``stops``, trailing blanks cut.
    Returns the value and the position after it."""
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if text.startswith('"', pos):
        word: List[str] = []
        i = pos + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                word.append(text[i + 1])
                i += 2
            elif ch == '"':
                i += 1
                while i < len(text) and text[i] in " \t":
                    i += 1
                if i < len(text) and text[i] not in stops:
                    raise CommandError(f"unexpected {text[i:]!r} after a closing quote")
                return "".join(word), i
            else:
                word.append(ch)
                i += 1
        # No closing quote: taken as it is, as curl does.
    end = pos
    while end < len(text) and text[end] not in stops:
        end += 1
    return text[pos:end].rstrip(" \t"), end


def parse_form_field(spec: str) -> FormField:
    """Parse one ``-F`` argument, in curl's syntax.

    ``name=value``, ``name=@path`` (upload a file), ``name=<path`` (a text field
    with the file's content), each optionally followed by ``;type=major/minor``
    and ``;filename=name``.  A value holding ``;`` (or a path holding ``;`` or
    ``,``) is written in double quotes: ``name="a;b"``.
    """
    name, sep, rest = spec.partition("=")
    if not sep:
        raise CommandError(f"-F {spec!r}: expected name=value, name=@file or name=<file")
    if not name:
        raise CommandError(f"-F {spec!r}: the field name before '=' is empty")
    source, stops = "text", ";"
    if rest.startswith("@"):
        source, stops, rest = "file", ";,", rest[1:]
    elif rest.startswith("<"):
        source, rest = "file-content", rest[1:]
    try:
        data, pos = _read_word(rest, 0, stops)
        attributes: dict[str, str] = {}
        while pos < len(rest):
            if rest[pos] == ",":
                raise CommandError("one file per -F; repeat -F name=@file for each file")
            key, eq, _ = rest[pos + 1:].lstrip(" \t").partition("=")
            key = key.strip().lower()
            if not eq or key not in ("type", "filename"):
                raise CommandError(
                    f"unknown attribute {rest[pos + 1:].strip()!r} (known: type=, filename=); "
                    'quote a value that holds ";": name="a;b"'
                )
            if key in attributes:
                raise CommandError(f"{key}= given twice")
            attributes[key], pos = _read_word(rest, rest.index("=", pos) + 1, stops)
    except CommandError as exc:
        raise CommandError(f"-F {spec!r}: {exc.message}") from None
    filetype = attributes.get("type")
    if filetype is not None and not re.fullmatch(r"[^/\s;,]+/[^/\s;,]+", filetype):
        raise CommandError(f"-F {spec!r}: type={filetype!r} is not a media type like text/plain")
    if source != "text" and not data:
        raise CommandError(f"-F {spec!r}: no file name after {'@' if source == 'file' else '<'}")
    if source == "file-content" and "filename" in attributes:
        raise CommandError(f"-F {spec!r}: filename= goes with name=@file, not name=<file")
    return FormField(spec, name, source, data, attributes.get("filename"), filetype)


def parse_header(text: str) -> Tuple[str, str]:
    """``-H 'Name: value'`` as a pair; the headers poster writes itself are refused."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name):
        raise CommandError(f"-H {text!r}: expected 'Name: value'")
    if "\r" in value or "\n" in value:
        raise CommandError(f"-H {text!r}: a header value cannot hold a line break")
    if name.lower() in _OWN_HEADERS:
        raise CommandError(
            f"-H {text!r}: poster sets {name} from the form itself"
            + ("; use --boundary to choose the boundary" if name.lower() == "content-type" else "")
        )
    return name, value


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A byte count: ``1048576``, ``512K``, ``256M``, ``1.5G`` (powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 4096, 512K, 256M or 1G")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise CommandError(f"URL {url!r} must start with http:// or https:// and name a host")
    return url


def _ssl_context(cacert: Optional[str]) -> ssl.SSLContext:
    if cacert is None:
        return ssl.create_default_context()
    if not os.path.isfile(cacert):
        raise CommandError(f"--cacert {cacert!r}: no such file")
    try:
        return ssl.create_default_context(cafile=cacert)
    except (ssl.SSLError, OSError) as exc:
        raise CommandError(f"--cacert {cacert!r} holds no usable PEM certificate ({exc})") from None


# -- building the params -------------------------------------------------------

def _stdin_file(stack: contextlib.ExitStack) -> BinaryIO:
    """Standard input as a file of known size: as it is when it is a regular
    file, else spooled to a temporary file (poster needs the size up front)."""
    stdin = sys.stdin.buffer
    if stat.S_ISREG(os.fstat(stdin.fileno()).st_mode):
        return stdin
    spool = stack.enter_context(tempfile.TemporaryFile())
    shutil.copyfileobj(stdin, spool, 1 << 20)
    spool.seek(0)
    return spool


def _open_file(path: str, stack: contextlib.ExitStack) -> BinaryIO:
    if path == "-":
        return _stdin_file(stack)
    if os.path.isdir(path):
        raise CommandError(f"{path!r} is a directory; upload its files one -F at a time")
    return stack.enter_context(open(path, "rb"))


def build_params(
    fields: Sequence[FormField], style: str, stack: contextlib.ExitStack
) -> List[MultipartParam]:
    """The params of the form; files opened here are closed by ``stack``.

    A missing or unreadable file is a :class:`CommandError` naming the ``-F``
    it came from.
    """
    if sum(field.data == "-" for field in fields if field.source != "text") > 1:
        raise CommandError("standard input ('-') can be read by one -F only")
    params = []
    for field in fields:
        try:
            params.append(_build_param(field, style, stack))
        except FileNotFoundError:
            raise CommandError(f"-F {field.spec!r}: file not found: {field.data}") from None
        except PermissionError:
            raise CommandError(f"-F {field.spec!r}: cannot read {field.data}: permission denied") from None
        except CommandError as exc:
            raise CommandError(f"-F {field.spec!r}: {exc.message}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"-F {field.spec!r}: {exc}") from None
    return params


def _build_param(field: FormField, style: str, stack: contextlib.ExitStack) -> MultipartParam:
    if field.source == "text":
        # os.fsencode gives back the very bytes of the argument.
        return MultipartParam(
            field.name, os.fsencode(field.data), filename=field.filename,
            filetype=field.filetype, style=style,
        )
    if field.source == "file-content":
        fileobj = _open_file(field.data, stack)
        return MultipartParam(field.name, filetype=field.filetype, fileobj=fileobj, style=style)
    if field.data != "-" and field.filename is None and field.filetype is None:
        # Opened only when its part is sent, closed right after.
        return MultipartParam.from_file(field.name, field.data, style=style)
    fileobj = _open_file(field.data, stack)
    default_name = "-" if field.data == "-" else os.path.basename(field.data)
    filename = default_name if field.filename is None else field.filename
    filetype = field.filetype
    if filetype is None and field.data != "-":
        filetype = mimetypes.guess_type(field.data)[0]
    return MultipartParam(
        field.name, filename=filename, filetype=filetype, fileobj=fileobj, style=style
    )


# -- sending -------------------------------------------------------------------

class ProgressBar:
    """A tqdm bar on stderr fed by poster's body callback ``(param, current, total)``.

    Shown only when ``enabled`` (stderr is a terminal) and tqdm is installed.
    A body sent again (a 307 redirect) starts the bar over.
    """

    def __init__(self, enabled: bool, description: str = "upload") -> None:
        self.enabled = enabled
        self.description = description
        self._bar: Any = None
        self._shown = 0

    def __call__(self, param: Optional[MultipartParam], current: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            try:
                from tqdm import tqdm
            except ImportError:
                self.enabled = False
                return
            try:
                width = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                width = 0
            # A terminal that reports no size (a bare pty) gets 80x24.
            size: Dict[str, Any] = {"dynamic_ncols": True} if width else {"ncols": 80, "nrows": 24}
            self._bar = tqdm(
                total=total, desc=self.description, unit="B", unit_scale=True,
                file=sys.stderr, mininterval=0.1, **size,
            )
        if current < self._shown:
            self._bar.reset(total)
            self._shown = 0
        self._bar.update(current - self._shown)
        self._shown = current

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _build_opener(context: ssl.SSLContext) -> urllib.request.OpenerDirector:
    """An opener with poster's streaming handlers (see :mod:`poster.streaminghttp`)."""
    from poster import streaminghttp

    return urllib.request.build_opener(
        streaminghttp.StreamingHTTPHandler(),
        streaminghttp.StreamingHTTPSHandler(context=context),
        streaminghttp.StreamingHTTPRedirectHandler(),
    )


@dataclass
class Reply:
    """The server's answer: status, reason and the open body (read it, then close)."""

    status: int
    reason: str
    body: IO[bytes]


def send(
    url: str,
    method: str,
    datagen: Any,
    headers: Sequence[Tuple[str, str]],
    *,
    context: ssl.SSLContext,
    timeout: float,
) -> Reply:
    """Send the body; any HTTP status comes back as a :class:`Reply`.

    What prevents an answer (no connection, TLS, a body that could not be
    sent as announced) is a :class:`CommandError`.
    """
    request = urllib.request.Request(url, data=datagen, method=method)
    for name, value in headers:
        request.add_header(name, value)
    try:
        response = _build_opener(context).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.reason, exc)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise _explain(exc, url, timeout) from None
    return Reply(response.status, response.reason, response)


def _explain(exc: BaseException, url: str, timeout: float) -> CommandError:
    """One line saying why a request got no answer, and what to do."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return CommandError(
            f"TLS: the certificate of {host} is not trusted ({reason.verify_message}); "
            "pass --cacert FILE with the CA that signed it",
            EXIT_TLS,
        )
    if isinstance(reason, ssl.SSLError):
        hint = "; is it an http:// server?" if reason.reason == "WRONG_VERSION_NUMBER" else ""
        return CommandError(f"TLS handshake with {host} failed ({reason.reason or reason}){hint}", EXIT_TLS)
    if isinstance(reason, BoundaryCollisionError):
        return CommandError(f"{reason} (--boundary)", EXIT_BODY)
    if isinstance(reason, ContentSizeError):
        return CommandError(f"{reason}; nothing was completed, send it again", EXIT_BODY)
    if isinstance(reason, ConnectionRefusedError):
        return CommandError(f"connection refused by {host}: is the server running?", EXIT_CONNECTION)
    if isinstance(reason, socket.gaierror):
        hostname = urllib.parse.urlsplit(url).hostname
        return CommandError(f"cannot resolve host {hostname!r} ({reason.strerror})", EXIT_CONNECTION)
    if isinstance(reason, TimeoutError):
        return CommandError(f"{host} did not answer within {timeout:g} s (--timeout)", EXIT_CONNECTION)
    if isinstance(reason, (ConnectionError, http.client.RemoteDisconnected)):
        return CommandError(
            f"{host} closed the connection before answering (it may refuse bodies this "
            "large; --expect-continue lets it say so before the upload)",
            EXIT_CONNECTION,
        )
    if isinstance(reason, http.client.HTTPException):
        return CommandError(
            f"{host} did not answer in HTTP ({type(reason).__name__}); is it an https:// URL?",
            EXIT_CONNECTION,
        )
    if isinstance(reason, OSError):
        return CommandError(f"cannot reach {host}: {reason.strerror or reason}", EXIT_CONNECTION)
    if isinstance(reason, ValueError):
        return CommandError(str(reason), EXIT_BODY)
    return CommandError(f"{url}: {reason}", EXIT_CONNECTION)


def _copy_body(reply: Reply, out: BinaryIO, url: str) -> None:
    """Copy the answer's body to ``out``; a connection lost meanwhile is a CommandError."""
    with reply.body:
        while True:
            try:
                block = reply.body.read(1 << 16)
            except (OSError, http.client.HTTPException) as exc:
                host = urllib.parse.urlsplit(url).netloc
                raise CommandError(f"the answer from {host} was cut short ({exc})", EXIT_CONNECTION) from None
            if not block:
                break
            out.write(block)
    out.flush()


# -- the commands --------------------------------------------------------------

def upload(args: argparse.Namespace) -> int:
    """``poster upload``: send the form, print the answer's body."""
    url = _check_url(args.url)
    if not _TOKEN.match(args.method):
        raise CommandError(f"-X {args.method!r} is not an HTTP method")
    fields = [parse_form_field(spec) for spec in args.form]
    if not fields:
        raise CommandError("nothing to send: give at least one -F name=value or -F name=@file")
    extra_headers = [parse_header(text) for text in args.header]
    if args.expect_continue:
        extra_headers.append(("Expect", "100-continue"))
    if not any(name.lower() == "user-agent" for name, _ in extra_headers):
        extra_headers.append(("User-Agent", f"poster/{poster.__version__}"))
    context = _ssl_context(args.cacert)
    with contextlib.ExitStack() as stack:
        params = build_params(fields, args.style, stack)
        with ProgressBar(_progress_wanted(args)) as progress:
            try:
                datagen, headers = multipart_encode(
                    params, boundary=args.boundary, cb=progress, style=args.style
                )
            except ValueError as exc:
                raise CommandError(f"--boundary {args.boundary!r}: {exc}") from None
            reply = send(
                url, args.method.upper(), datagen, list(headers.items()) + extra_headers,
                context=context, timeout=args.timeout,
            )
    _copy_body(reply, sys.stdout.buffer, url)
    if reply.status >= 400:
        raise CommandError(
            f"HTTP {reply.status} {reply.reason} from {args.method.upper()} {url}", EXIT_HTTP_ERROR
        )
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    """``poster serve``: receive uploads until interrupted."""
    from poster.receiver import ReceiverServer

    try:
        server = ReceiverServer(
            args.host, args.port, save_dir=args.save_dir, max_size=args.max_size, quiet=args.quiet
        )
    except OSError as exc:
        if exc.filename:  # --save-dir is not a directory, or cannot be made: a usage error
            raise CommandError(
                f"cannot use --save-dir {args.save_dir!r}: {exc.strerror or exc}", EXIT_USAGE
            ) from None
        raise CommandError(f"cannot use {args.host}:{args.port}: {exc.strerror or exc}", EXIT_CONNECTION) from None
    with server:
        where = f" saving files under {server.save_dir.path}," if server.save_dir else ""
        print(f"poster serve: receiving uploads on {server.url},{where} Ctrl+C stops", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _write_demo_file(path: str, size: int) -> str:
    """Write ``size`` random-looking bytes to ``path``; returns their sha256.

    One MiB comes from the OS's random source; every block is that MiB rotated
    by a random offset, which is quick and never repeats a block exactly.
    """
    pool = os.urandom(1 << 20)
    sha256 = hashlib.sha256()
    with open(path, "wb") as file:
        remaining = size
        while remaining:
            offset = int.from_bytes(os.urandom(3), "big") % len(pool)
            block = (pool[offset:] + pool[:offset])[:remaining]
            file.write(block)
            sha256.update(block)
            remaining -= len(block)
    return sha256.hexdigest()


def demo(args: argparse.Namespace) -> int:
    """``poster demo``: upload a generated file to an in-process receiver and check it."""
    from poster.receiver import ReceiverServer, serving_in_thread

    size = args.size
    with tempfile.TemporaryDirectory(prefix="poster-demo-") as directory, \
            serving_in_thread(ReceiverServer(quiet=True)) as server:
        path = os.path.join(directory, "demo.bin")
        expected = _write_demo_file(path, size)
        params = [MultipartParam.from_file("file", path, style=args.style)]
        with ProgressBar(_progress_wanted(args), "demo") as progress:
            datagen, headers = multipart_encode(params, cb=progress, style=args.style)
            started = time.perf_counter()
            reply = send(
                server.url, "POST", datagen, list(headers.items()),
                context=ssl.create_default_context(), timeout=DEFAULT_TIMEOUT,
            )
            answer = io.BytesIO()
            _copy_body(reply, answer, server.url)
            seconds = time.perf_counter() - started
    if reply.status != 200:
        raise CommandError(f"the receiver answered HTTP {reply.status} {reply.reason}", EXIT_HTTP_ERROR)
    fields = json.loads(answer.getvalue())["fields"]
    got = (fields[0]["size"], fields[0]["sha256"]) if len(fields) == 1 else None
    if got != (size, expected):
        raise CommandError(
            f"the receiver got other bytes than were sent: {got}, expected {(size, expected)}",
            EXIT_HTTP_ERROR,
        )
    rate = size / seconds / 1e6 if seconds > 0 else float("inf")
    print(
        f"poster demo: {_human(size)} uploaded and sha256-verified in {seconds:.2f} s, "
        f"{rate:.1f} MB/s, backend {poster.BACKEND}",
        flush=True,
    )
    return EXIT_OK


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.4g} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _progress_wanted(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


# -- the parser and main ---------------------------------------------------------

def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``poster``."""
    parser = argparse.ArgumentParser(
        prog="poster",
        description="Streaming multipart/form-data uploads: send files of any size "
                    "in constant memory, and receive them.",
    )
    parser.add_argument(
        "--version", action="version",
        version=f"poster {poster.__version__} (backend {poster.BACKEND})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    style = argparse.ArgumentParser(add_help=False)
    style.add_argument(
        "--style", choices=["poster", "html5"], default="poster",
        help="part headers as poster 0.8.1 wrote them (default) or as browsers do",
    )

    up = commands.add_parser(
        "upload", parents=[progress, style], help="send a multipart/form-data request",
        description="Send a multipart/form-data request, streamed from disk; the "
                    "response body goes to stdout.",
        epilog="Exit status: 0 done, 1 HTTP status >= 400, 2 bad arguments or file, "
               "3 no connection, 4 TLS, 5 body could not be sent as announced.",
    )
    up.add_argument("url", metavar="URL", help="http:// or https:// URL")
    up.add_argument(
        "-F", "--form", action="append", default=[], metavar="NAME=VALUE",
        help="a field, in curl's syntax: name=value, name=@file (upload), name=<file "
             "(text from a file), with ;type=mime/type and ;filename=name; '-' is stdin",
    )
    up.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="an extra request header",
    )
    up.add_argument("-X", "--request", dest="method", default="POST", metavar="METHOD",
                    help="the HTTP method (default POST)")
    up.add_argument("--cacert", metavar="FILE", help="trust the CA certificates in this PEM file")
    up.add_argument("--expect-continue", action="store_true",
                    help="send 'Expect: 100-continue': the body goes out once the server agrees")
    up.add_argument("--boundary", help="the multipart boundary (default: random)")
    up.add_argument("--timeout", type=_positive_number, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                    help=f"give up when the server is silent this long (default {DEFAULT_TIMEOUT:g})")
    up.set_defaults(run=upload)

    sv = commands.add_parser(
        "serve", help="receive uploads and answer what arrived, as JSON",
        description="Receive uploads in constant memory; answer each request with every "
                    "field's name, filename, content type, size and sha256, as JSON.",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=_port, default=8000, help="port to listen on, 0 for any free one (default 8000)")
    sv.add_argument("--save-dir", metavar="DIR",
                    help="save uploaded files in DIR (never outside it; existing files are kept)")
    sv.add_argument("--max-size", type=parse_size, metavar="SIZE",
                    help="answer 413 to bodies larger than SIZE (e.g. 100M, 2G)")
    sv.add_argument("-q", "--quiet", action="store_true", help="no log line per request")
    sv.set_defaults(run=serve)

    dm = commands.add_parser(
        "demo", parents=[progress, style], help="upload a generated file to a local receiver",
        description="Start a receiver on a free loopback port, upload a generated file to "
                    "it, check the sha256 it reports and print the throughput.",
    )
    dm.add_argument("--size", type=parse_size, default=DEMO_SIZE, metavar="SIZE",
                    help="size of the generated file (default 256M)")
    dm.set_defaults(run=demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``poster`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = make_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"poster: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:
        if exc.name not in ("python_multipart", "tqdm"):
            raise
        print(
            f"poster: error: {exc.name or exc} is missing; install the command line's "
            "extras: pip install 'poster[cli]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("poster: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout was closed early (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
