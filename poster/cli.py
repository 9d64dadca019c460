"""The command line: ``poster upload``, ``poster serve`` and ``poster demo``.

``python -m poster`` and the ``poster`` script run :func:`main`.  Each command
flows one way: parse the arguments, build the params, send, report.  What a
user can fix ends the program with one line on stderr, ``poster: error: ...``
(``upload -s`` keeps it quiet unless ``-S`` is given too), and an exit status:

===  ==========================================================================
 0   done; ``upload``: the server answered 2xx, or 3xx that was not followed
     (without ``-L``, or a 3xx that is no redirect, such as 304)
 1   ``upload``: the server answered with an HTTP status of 400 or more
     (without ``--fail``); ``demo``: the receiver got other bytes than were
     sent
 2   bad arguments (a malformed URL among them), a missing or unreadable file
 3   no connection: refused, unreachable host, timeout, connection dropped
 4   TLS: the server's certificate is not trusted, or the handshake failed
 5   the body could not be sent as announced (a file changed while it was
     sent, or the boundary occurs in the content)
 7   ``upload -L``: a redirect that is not followed: a 301, 302 or 303 (it
     would turn the upload into a GET without its body), more than
     ``--max-redirs`` redirects, or a ``Location`` that is no http(s) URL
 8   ``upload --verify``: a part's sha256 differs from what the server
     reports, or its answer reports none
 9   ``upload``: the server's final answer was ``101 Switching Protocols``,
     another protocol than HTTP, not an answer to the upload
 22  ``upload --fail``: the server answered with an HTTP status of 400 or
     more (curl's status for it)
 23  ``upload``: the answer could not be written (``-o`` names a directory or
     a file in a directory that does not exist, a full disk, a closed pipe);
     curl's "write error"
===  ==========================================================================

Without ``--fail`` an HTTP status of 400 or more is exit 1 with the answer's
body on stdout, where curl would exit 0: a failed upload never looks like a
success to a script.  ``--fail`` gives curl's 22 and no body,
``--fail-with-body`` 22 and the body.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import getpass
import hashlib
import http.client
import io
import ipaddress
import itertools
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
from dataclasses import dataclass, field as dataclass_field
from typing import IO, Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple

import poster
from poster.encode import (
    BoundaryCollisionError,
    ContentSizeError,
    MultipartParam,
    NotReplayableError,
    multipart_encode,
)

__all__ = [
    "EXIT_OK",
    "EXIT_HTTP_ERROR",
    "EXIT_USAGE",
    "EXIT_CONNECTION",
    "EXIT_TLS",
    "EXIT_BODY",
    "EXIT_REDIRECT",
    "EXIT_VERIFY",
    "EXIT_WEIRD_REPLY",
    "EXIT_FAIL",
    "EXIT_WRITE",
    "INSTALL_HINT",
    "CommandError",
    "FormField",
    "Target",
    "parse_form_field",
    "parse_header",
    "parse_size",
    "parse_url",
    "parse_write_out",
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
EXIT_REDIRECT = 7
EXIT_VERIFY = 8
EXIT_WEIRD_REPLY = 9
EXIT_FAIL = 22
EXIT_WRITE = 23

#: How to install the command line's extras (the distribution is ``poster-py3``;
#: the import name stays ``poster``).
INSTALL_HINT = "pip install 'poster-py3[cli]' (in a clone: pip install '.[cli]')"

#: ``poster demo``'s file size when ``--size`` is not given.
DEMO_SIZE = 256 * 1024 * 1024
#: Seconds any one socket operation may take before ``upload`` gives up.
DEFAULT_TIMEOUT = 120.0
#: ``serve --timeout``: seconds a client may take to send a request's head
#: (poster.receiver.DEFAULT_TIMEOUT, not imported: python-multipart is an extra).
DEFAULT_SERVE_TIMEOUT = 60.0
#: A connection dropped before the answer hints that the server may refuse
#: bodies this large, from this size on.
LARGE_BODY = 1024 * 1024
#: ``--max-redirs`` when not given (curl's default).
DEFAULT_MAX_REDIRS = 50
#: The longest time in seconds an option takes (a week): a larger one, or
#: inf, is no time a socket or sleep can wait.
MAX_SECONDS = 7 * 24 * 3600.0
#: Answers that ``--retry`` retries (curl's list).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The longest wait between two tries, in seconds (curl's).
MAX_RETRY_DELAY = 600.0
#: The answers ``-L`` follows, when they carry a ``Location``.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Headers poster writes itself, from the form.
_OWN_HEADERS = {"content-type", "content-length", "transfer-encoding"}
#: Headers not sent to another origin after a redirect.
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization", "host"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
#: Control characters but the line feeds poster writes itself.
_CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


class CommandError(Exception):
    """Something the user can fix: one line on stderr and an exit status.

    ``retryable`` marks a transient failure that ``--retry`` tries again.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.retryable = retryable


# -- parsing the arguments -----------------------------------------------------

@dataclass(frozen=True)
class FormField:
    """One ``-F`` (or ``--form-string``) argument, parsed.

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
    headers: Tuple[Tuple[str, str], ...] = ()


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


_ATTRIBUTE = re.compile(r";[ \t]*([A-Za-z]+)[ \t]*=", re.ASCII)
_KNOWN_ATTRIBUTES = ("type", "filename")
_MEDIA_TYPE = re.compile(r"[^/\s;,\"]+/[^/\s;,\"]+\Z")
_MEDIA_PARAMETER = re.compile(
    r"[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+=(?:\"(?:[^\"\\]|\\.)*\"|[^;\"\s]*)[ \t]*\Z"
)


def _read_type(text: str, pos: int, stops: str) -> Tuple[str, int]:
    """The value of ``type=``: a media type with its parameters, as curl reads it.

    ``type=text/plain;charset=utf-8`` keeps ``;charset=utf-8``: the value runs
    up to a ``;`` that starts another attribute (``filename=``, ``type=``,
    ``headers=``, ...) or to the end.  A quoted value is taken as it is.
    """
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if text.startswith('"', pos):
        return _read_word(text, pos, stops)
    end = pos
    while end < len(text):
        ch = text[end]
        if ch == "," and "," in stops:
            break
        if ch == ";":
            match = _ATTRIBUTE.match(text, end)
            if match and match.group(1).lower() in _KNOWN_ATTRIBUTES + ("headers", "encoder"):
                break
        end += 1
    return text[pos:end].strip(" \t"), end


def _check_media_type(spec: str, filetype: str) -> None:
    major_minor, semicolon, parameters = filetype.partition(";")
    ok = _MEDIA_TYPE.match(major_minor.rstrip(" \t")) is not None
    if semicolon:
        ok = ok and all(_MEDIA_PARAMETER.match(part) for part in parameters.split(";"))
    if not ok:
        raise CommandError(
            f"-F {spec!r}: type={filetype!r} is not a media type like text/plain "
            "or text/plain;charset=utf-8"
        )


def parse_form_field(spec: str) -> FormField:
    """Parse one ``-F`` argument, in curl's syntax.

    ``name=value``, ``name=@path`` (upload a file), ``name=<path`` (a text field
    with the file's content), each optionally followed by ``;type=major/minor``
    (parameters kept: ``;type=text/plain;charset=utf-8``) and ``;filename=name``.
    A value holding ``;`` (or a path holding ``;`` or ``,``) is written in
    double quotes: ``name="a;b"``.
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
        part_headers: List[Tuple[str, str]] = []
        while pos < len(rest):
            if rest[pos] == ",":
                raise CommandError("one file per -F; repeat -F name=@file for each file")
            key, eq, _ = rest[pos + 1:].lstrip(" \t").partition("=")
            key = key.strip().lower()
            if key == "headers" and eq:
                # Repeatable, as curl: headers="X-A: 1" or headers=@file.
                start = rest.index("=", pos) + 1
                value, pos = _read_word(rest, start, ";")
                part_headers += _part_headers(value)
                continue
            if not eq or key not in _KNOWN_ATTRIBUTES:
                raise CommandError(
                    f"unknown attribute {rest[pos + 1:].strip()!r} (known: type=, filename=); "
                    'quote a value that holds ";": name="a;b"'
                )
            if key in attributes:
                raise CommandError(f"{key}= given twice")
            start = rest.index("=", pos) + 1
            if key == "type":
                attributes[key], pos = _read_type(rest, start, stops)
            else:
                attributes[key], pos = _read_word(rest, start, stops)
    except CommandError as exc:
        raise CommandError(f"-F {spec!r}: {exc.message}") from None
    filetype = attributes.get("type")
    if filetype is not None:
        _check_media_type(spec, filetype)
    if source != "text" and not data:
        raise CommandError(f"-F {spec!r}: no file name after {'@' if source == 'file' else '<'}")
    if source == "file-content" and "filename" in attributes:
        raise CommandError(f"-F {spec!r}: filename= goes with name=@file, not name=<file")
    return FormField(spec, name, source, data, attributes.get("filename"), filetype, tuple(part_headers))


def _part_headers(value: str) -> List[Tuple[str, str]]:
    """``headers=`` of one part: ``"Name: value"``, or ``@file`` with one per line."""
    if value.startswith("@"):
        try:
            with open(value[1:], "r", encoding="utf-8") as f:
                lines = [line.rstrip("\r\n") for line in f]
        except OSError as exc:
            raise CommandError(f"cannot read the headers file {value[1:]!r}: {exc.strerror or exc}") from None
    else:
        lines = [value]
    pairs = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header, colon, text = line.partition(":")
        if not colon or not header.strip():
            raise CommandError(f"headers={line!r} is not 'Name: value'")
        pairs.append((header.strip(), text.strip(" \t")))
    return pairs


def parse_form_string(spec: str) -> FormField:
    """``--form-string name=value``: the value as it is (``@``, ``<`` and
    ``;type=`` mean nothing)."""
    name, sep, value = spec.partition("=")
    if not sep:
        raise CommandError(f"--form-string {spec!r}: expected name=value")
    if not name:
        raise CommandError(f"--form-string {spec!r}: the field name before '=' is empty")
    return FormField(spec, name, "text", value)


def _header_text(value: str) -> str:
    """``value`` as http.client sends it: its bytes (UTF-8 as typed) one
    character each, so that a non-ASCII value goes out as the user typed it."""
    return os.fsencode(value).decode("latin-1")


def _shown(value: str) -> str:
    """A header value made by :func:`_header_text`, for the terminal again."""
    return value.encode("latin-1").decode("utf-8", "replace")


def parse_header(text: str) -> Tuple[str, Optional[str]]:
    """``-H 'Name: value'`` as a pair; the headers poster writes itself are refused.

    As curl: ``-H 'Name:'`` (no value) leaves out a header poster would send
    (``User-Agent``, ``Accept``): the pair's value is ``None``; ``-H 'Name;'``
    sends the header with an empty value.
    """
    stripped = text.strip()
    if stripped.endswith(";") and ":" not in stripped:
        name, sep, value = stripped[:-1], ":", ""
        remove = False
    else:
        name, sep, value = text.partition(":")
        remove = not value.strip()
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
    if remove and name.lower() == "host":
        raise CommandError(f"-H {text!r}: the Host header cannot be left out")
    return name, None if remove else _header_text(value)


def _read_header_file(path: str) -> List[str]:
    """``-H @file``: one header a line; empty lines are skipped.

    Lines end at LF only, a CR before it dropped, as curl reads them: a form
    feed, NEL or U+2028 inside a line stays in the header (``str.splitlines``
    would split there).
    """
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8", "surrogateescape")
        lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    except FileNotFoundError:
        raise CommandError(f"-H @{path}: file not found") from None
    except OSError as exc:
        raise CommandError(f"-H @{path}: cannot read it ({exc.strerror or exc})") from None
    return [line for line in lines if line.strip()]


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A byte count: ``1048576``, ``512K``, ``256M``, ``1.5G`` (powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 4096, 512K, 256M or 1G")
    number, unit = match.groups()
    try:
        return int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too large a size") from None


def parse_rate(text: str) -> float:
    """Bytes a second, as curl's ``--limit-rate``: ``500``, ``100K``, ``1.5M``
    (powers of 1024), at least 1."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate like 500, 100K or 10M (bytes a second)")
    number, unit = match.groups()
    rate: float = float(number) * 1024 ** " kmgt".index(unit.lower() or " ")
    if not 1 <= rate < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a rate of at least 1 byte a second and below infinity, such as 100K or 10M"
        )
    return rate


# -- URLs ----------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A URL as poster sends it.

    ``url`` has no credentials and no fragment, its path and query
    percent-encoded (UTF-8); ``credentials`` are the URL's ``user:password``,
    percent-decoded, as bytes (``None`` when it has none).
    """

    url: str
    credentials: Optional[bytes]
    origin: Tuple[str, str, int]


_REG_NAME = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]+\Z")
_PATH_SAFE = "/:@!$&'()*+,;=%~"
_QUERY_SAFE = _PATH_SAFE + "?[]"


def _without_password(url: str) -> str:
    """``url`` as an error may show it: a password in it written ``***``."""
    return re.sub(r"(?<=://)([^/@]*?):[^/@]*@", r"\1:***@", url)


def parse_url(url: str) -> Target:
    """Check and normalize an ``upload`` URL; a malformed one is a CommandError (exit 2).

    Credentials (``http://user:password@host/``) are taken out of it, the
    fragment is dropped, a non-ASCII (or blank) character of the path or the
    query is percent-encoded as UTF-8, a non-ASCII host name goes through IDNA.
    """
    def invalid(why: str) -> CommandError:
        return CommandError(f"invalid URL {_without_password(url)!r}: {why}")

    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise invalid("it holds a control character")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"URL {url!r} must start with http:// or https:// and name a host")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        host, bracket, port_text = hostport[1:].partition("]")
        address = host.split("%", 1)[0]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise invalid(f"[{host}] is not an IPv6 address") from None
        if not bracket or (port_text and not port_text.startswith(":")):
            raise invalid("expected [IPv6 address] or [IPv6 address]:port")
        shown_host = f"[{host}]"
        port_text = port_text[1:]
    else:
        host, _, port_text = hostport.partition(":")
        if not host:
            raise invalid("no host name")
        host = urllib.parse.unquote(host)  # as curl: http://%41/ is http://A/
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise invalid(f"{host!r} is not a valid host name") from None
        if not _REG_NAME.match(host):
            raise invalid(f"{host!r} is not a valid host name")
        # One dot at the end is allowed: a fully qualified name ("example.org.").
        labels = (host[:-1] if host.endswith(".") else host).split(".")
        if not all(labels):
            raise invalid(f"{host!r} is not a valid host name: a dot at its start or two dots in a row")
        if any(len(label) > 63 for label in labels):
            raise invalid(f"{host!r} is not a valid host name: a part between dots is over 63 characters")
        shown_host = host
    default_port = 443 if scheme == "https" else 80
    if port_text:
        if not port_text.isdigit() or not port_text.isascii() or not 0 < int(port_text) <= 65535:
            raise invalid(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
        netloc = f"{shown_host}:{port}"
    else:
        port = default_port
        netloc = shown_host
    path = urllib.parse.quote(parts.path, safe=_PATH_SAFE) or "/"
    query = urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
    normalized = f"{scheme}://{netloc}{path}" + (f"?{query}" if query or url.endswith("?") else "")
    credentials = None
    if at:
        user, _, password = userinfo.partition(":")
        credentials = urllib.parse.unquote_to_bytes(user) + b":" + urllib.parse.unquote_to_bytes(password)
    return Target(normalized, credentials, (scheme, host.lower(), port))


def _basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def _user_credentials(text: str) -> bytes:
    """``-u user:password`` as bytes; ``-u user`` asks for the password on the terminal."""
    raw = os.fsencode(text)
    if b":" in raw:
        return raw
    if not sys.stdin.isatty():
        raise CommandError(f"-u {text!r}: give the password too, -u user:password")
    return raw + b":" + os.fsencode(getpass.getpass(f"Enter host password for user '{text}': "))


def _ssl_context(cacert: Optional[str], insecure: bool = False) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cacert is None:
        return ssl.create_default_context()
    if not os.path.isfile(cacert):
        raise CommandError(f"--cacert {cacert!r}: no such file")
    try:
        return ssl.create_default_context(cafile=cacert)
    except (ssl.SSLError, OSError) as exc:
        raise CommandError(f"--cacert {cacert!r} holds no usable PEM certificate ({exc})") from None


# -- --write-out -----------------------------------------------------------------

#: The ``-w`` variables poster knows.
WRITE_OUT_VARIABLES = (
    "content_type", "errormsg", "exitcode", "http_code", "http_version", "method",
    "num_redirects", "redirect_url", "response_code", "size_download", "size_upload",
    "speed_download", "speed_upload", "stderr", "stdout", "time_total", "url_effective",
)
_WRITE_OUT_TOKEN = re.compile(r"%\{([^}]*)\}|%header\{([^}]*)\}|%%|\\[nrt\\]|[%\\]|[^%\\]+")


def parse_write_out(text: str) -> List[Tuple[str, str]]:
    """``-w FORMAT`` (``-w @file`` reads it from a file) as a list of
    ``(kind, value)``: ``("text", ...)``, ``("var", name)``, ``("header", name)``.

    An unknown ``%{variable}`` is refused before anything is sent.
    """
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8", errors="surrogateescape") as file:
                text = file.read()
        except OSError as exc:
            raise CommandError(f"-w {text}: cannot read it ({exc.strerror or exc})") from None
    tokens: List[Tuple[str, str]] = []
    escapes = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\", "%%": "%"}
    for match in _WRITE_OUT_TOKEN.finditer(text):
        variable, header, whole = match.group(1), match.group(2), match.group(0)
        if variable is not None:
            if variable not in WRITE_OUT_VARIABLES:
                raise CommandError(
                    f"-w: unknown variable %{{{variable}}} (known: "
                    + ", ".join(WRITE_OUT_VARIABLES) + ", and %header{name})"
                )
            tokens.append(("var", variable))
        elif header is not None:
            tokens.append(("header", header))
        else:
            tokens.append(("text", escapes.get(whole, whole)))
    return tokens


@dataclass
class Transfer:
    """What ``-w`` reports about one ``upload``."""

    url: str
    method: str
    started: float = dataclass_field(default_factory=time.monotonic)
    finished: Optional[float] = None
    status: int = 0
    version: str = ""
    headers: Any = None
    size_upload: int = 0
    size_download: int = 0
    num_redirects: int = 0
    redirect_url: str = ""
    exitcode: int = 0
    errormsg: str = ""

    def values(self) -> Dict[str, str]:
        seconds = (self.finished or time.monotonic()) - self.started

        def per_second(size: int) -> str:
            return str(int(size / seconds)) if seconds > 0 else "0"

        return {
            "content_type": (self.headers.get("Content-Type") or "") if self.headers else "",
            "errormsg": self.errormsg,
            "exitcode": str(self.exitcode),
            "http_code": f"{self.status:03d}",
            "http_version": self.version or "0",
            "method": self.method,
            "num_redirects": str(self.num_redirects),
            "redirect_url": self.redirect_url,
            "response_code": f"{self.status:03d}",
            "size_download": str(self.size_download),
            "size_upload": str(self.size_upload),
            "speed_download": per_second(self.size_download),
            "speed_upload": per_second(self.size_upload),
            "time_total": f"{seconds:.6f}",
            "url_effective": self.url,
        }


def write_out(tokens: Sequence[Tuple[str, str]], transfer: Transfer, stdout: BinaryIO) -> None:
    """Write ``-w``'s output: to stdout, or stderr after ``%{stderr}``."""
    values = transfer.values()
    out: BinaryIO = stdout
    for kind, value in tokens:
        if kind == "var" and value in ("stdout", "stderr"):
            out.flush()
            out = stdout if value == "stdout" else sys.stderr.buffer
            continue
        if kind == "var":
            text = values[value]
        elif kind == "header":
            text = (transfer.headers.get(value) or "") if transfer.headers else ""
        else:
            text = value
        out.write(os.fsencode(text))
    out.flush()
    if out is not stdout:
        stdout.flush()


# -- building the params -------------------------------------------------------

def _spool(source: BinaryIO, stack: contextlib.ExitStack) -> BinaryIO:
    """Copy ``source`` to a temporary file (poster needs the size up front)."""
    spool = stack.enter_context(tempfile.TemporaryFile())
    shutil.copyfileobj(source, spool, 1 << 20)
    spool.seek(0)
    return spool


def _has_real_size(status: os.stat_result) -> bool:
    """Whether a file's size is known from ``stat``: a regular file that is
    not empty.  A pipe, a device, and the files of /proc and /sys (regular,
    of size 0, yet they hold something when read) are not; an empty regular
    file is not either, which costs nothing: it is spooled as it is, empty."""
    return stat.S_ISREG(status.st_mode) and status.st_size > 0


def _stdin_file(stack: contextlib.ExitStack, stream: bool = False) -> BinaryIO:
    """Standard input as a file of known size: as it is when it is a regular
    file, else spooled to a temporary file (with ``stream``: read as it comes)."""
    if sys.stdin is None:  # started with stdin closed (0<&-)
        raise CommandError("standard input is closed: give the content on stdin, or a file")
    stdin = sys.stdin.buffer
    if stream or _has_real_size(os.fstat(stdin.fileno())):
        return stdin
    return _spool(stdin, stack)


def _open_file(path: str, stack: contextlib.ExitStack, stream: bool = False) -> BinaryIO:
    """``path`` opened for reading; what has no real size (a pipe, a process
    substitution ``<(cmd)``, ``/dev/stdin``, ``/dev/null``, ``/proc/self/status``)
    is spooled to a temporary file first, or with ``stream`` (``--chunked``)
    read as it comes, a part of unknown length."""
    if path == "-":
        return _stdin_file(stack, stream)
    if os.path.isdir(path):
        raise CommandError(f"{path!r} is a directory; upload its files one -F at a time")
    file = stack.enter_context(open(path, "rb"))
    if stream or _has_real_size(os.fstat(file.fileno())):
        return file
    return _spool(file, stack)


def _reads_stdin(path: str) -> bool:
    """Whether ``path`` reads standard input, once only: ``-``, or another
    name (``/dev/stdin``, ``/dev/fd/0``) of a standard input that is a pipe,
    a socket or a terminal.  A regular file or ``/dev/null`` given as stdin
    can be opened again from its start, and read twice."""
    if path == "-":
        return True
    try:
        stdin = os.fstat(0)
        if not (stat.S_ISFIFO(stdin.st_mode) or stat.S_ISSOCK(stdin.st_mode) or os.isatty(0)):
            return False
        there = os.stat(path)
    except OSError:  # no stdin, or no such file: opening it says so
        return False
    return (there.st_dev, there.st_ino) == (stdin.st_dev, stdin.st_ino)


def _known_size(path: str) -> bool:
    """Whether ``path`` can be sent from the file itself, opened when its part is sent."""
    try:
        return _has_real_size(os.stat(path))
    except OSError:
        return True  # opening it says what is wrong


def build_params(
    fields: Sequence[FormField], style: str, stack: contextlib.ExitStack, stream: bool = False
) -> List[MultipartParam]:
    """The params of the form; files opened here are closed by ``stack``.

    With ``stream`` (``--chunked``) standard input, pipes and other files that
    are not regular are read as they come instead of being spooled.  A
    missing or unreadable file is a :class:`CommandError` naming the ``-F``
    it came from.
    """
    if sum(_reads_stdin(field.data) for field in fields if field.source != "text") > 1:
        raise CommandError(
            "standard input ('-', /dev/stdin, /dev/fd/0) can be read by one -F only: "
            "the first would take all of it; save it to a file for the others"
        )
    params = []
    for field in fields:
        try:
            params.append(_build_param(field, style, stack, stream))
        except FileNotFoundError:
            raise CommandError(f"-F {field.spec!r}: file not found: {field.data}") from None
        except PermissionError:
            raise CommandError(f"-F {field.spec!r}: cannot read {field.data}: permission denied") from None
        except CommandError as exc:
            raise CommandError(f"-F {field.spec!r}: {exc.message}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"-F {field.spec!r}: {exc}") from None
    return params


def _build_param(field: FormField, style: str, stack: contextlib.ExitStack, stream: bool) -> MultipartParam:
    if field.source == "text":
        # os.fsencode gives back the very bytes of the argument.
        return MultipartParam(
            field.name, os.fsencode(field.data), filename=field.filename,
            filetype=field.filetype, style=style, headers=field.headers,
        )
    if field.source == "file-content":
        fileobj = _open_file(field.data, stack, stream)
        return MultipartParam(field.name, filetype=field.filetype, fileobj=fileobj, style=style,
                              headers=field.headers)
    if (field.data != "-" and field.filename is None and field.filetype is None
            and _known_size(field.data)):
        # Opened only when its part is sent, closed right after.
        return MultipartParam.from_file(field.name, field.data, style=style, headers=field.headers)
    fileobj = _open_file(field.data, stack, stream)
    default_name = "-" if field.data == "-" else os.path.basename(field.data)
    filename = default_name if field.filename is None else field.filename
    filetype = field.filetype
    if filetype is None and field.data != "-":
        filetype = mimetypes.guess_type(field.data)[0]
    return MultipartParam(
        field.name, filename=filename, filetype=filetype, fileobj=fileobj, style=style,
        headers=field.headers,
    )


# -- sending -------------------------------------------------------------------

class ProgressBar:
    """A tqdm bar on stderr fed by poster's body callback ``(param, current, total)``.

    Shown only when ``enabled`` (stderr is a terminal) and tqdm is installed.
    A body sent again (a retry, a 307 redirect) starts the bar over.
    ``sent`` is the last count of bytes reported, shown or not.
    """

    def __init__(self, enabled: bool, description: str = "upload") -> None:
        self.enabled = enabled
        self.description = description
        self.sent = 0
        self._bar: Any = None
        self._shown = 0

    def __call__(self, param: Optional[MultipartParam], current: int, total: Optional[int]) -> None:
        self.sent = current
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


HeadCallback = Callable[[List[str]], None]


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


class _HeadRecorder:
    """A connection mixin: hands the request head (request line and header
    lines) to ``on_head`` just before it is sent (``-v``)."""

    def __init__(self, *args: Any, on_head: Optional[HeadCallback] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_head = on_head
        self._head_lines: List[str] = []

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        self._head_lines = [f"{method} {url} HTTP/1.1"]
        super().putrequest(method, url, *args, **kwargs)  # type: ignore[misc]

    def putheader(self, header: Any, *values: Any) -> None:
        super().putheader(header, *values)  # type: ignore[misc]
        self._head_lines.append(f"{_text(header)}: {', '.join(_text(v) for v in values)}")

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        if self._on_head is not None:
            self._on_head(self._head_lines)
        super().endheaders(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]


def _build_opener(
    context: ssl.SSLContext, on_head: Optional[HeadCallback] = None
) -> urllib.request.OpenerDirector:
    """An opener with poster's streaming connections (see :mod:`poster.streaminghttp`)
    that hands every answer back as it is: urllib follows no redirect and
    raises no HTTPError; :func:`_transfer` decides."""
    from poster import streaminghttp

    class Connection(_HeadRecorder, streaminghttp.StreamingHTTPConnection):
        pass

    class TLSConnection(_HeadRecorder, streaminghttp.StreamingHTTPSConnection):
        pass

    class HTTPHandler(streaminghttp.StreamingHTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(
                functools.partial(Connection, on_head=on_head), req,
                continue_timeout=self.continue_timeout,
            )

    class HTTPSHandler(streaminghttp.StreamingHTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(
                functools.partial(TLSConnection, on_head=on_head), req,
                context=context, continue_timeout=self.continue_timeout,
            )

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    class EveryAnswer(urllib.request.HTTPErrorProcessor):
        def http_response(self, request: Any, response: Any) -> Any:
            return response

        https_response = http_response

    opener = urllib.request.build_opener(
        HTTPHandler(), HTTPSHandler(context=context), NoRedirects(), EveryAnswer()
    )
    opener.addheaders = []  # no "Python-urllib" User-Agent behind the user's back
    return opener


@dataclass
class Reply:
    """The server's answer: status, reason, headers and the open body (read it, then close)."""

    status: int
    reason: str
    body: IO[bytes]
    headers: Any = None
    version: str = "1.1"


def send(
    url: str,
    method: str,
    datagen: Any,
    headers: Sequence[Tuple[str, str]],
    *,
    context: ssl.SSLContext,
    timeout: float,
    on_head: Optional[HeadCallback] = None,
) -> Reply:
    """Send the body once; any HTTP status (redirects too) comes back as a :class:`Reply`.

    What prevents an answer (no connection, TLS, a body that could not be
    sent as announced) is a :class:`CommandError`.
    """
    request = urllib.request.Request(url, data=datagen, method=method)
    for name, value in headers:
        request.add_header(name, value)
    try:
        response = _build_opener(context, on_head).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:  # not raised by this opener; kept for safety
        return Reply(exc.code, exc.reason, exc, exc.headers)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        size = len(datagen) if hasattr(datagen, "__len__") else 0
        raise _explain(exc, url, timeout, size) from None
    version = {9: "0.9", 10: "1.0", 11: "1.1"}.get(getattr(response, "version", 11), "1.1")
    return Reply(response.status, response.reason, response, response.headers, version)


def _explain(exc: BaseException, url: str, timeout: float, body_size: int = 0) -> CommandError:
    """One line saying why a request got no answer, and what to do."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return CommandError(
            f"TLS: the certificate of {host} is not trusted ({reason.verify_message}); "
            "pass --cacert FILE with the CA that signed it (-k skips the check)",
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
        return CommandError(
            f"connection refused by {host}: is the server running?", EXIT_CONNECTION, retryable=True
        )
    if isinstance(reason, socket.gaierror):
        hostname = urllib.parse.urlsplit(url).hostname
        return CommandError(f"cannot resolve host {hostname!r} ({reason.strerror})", EXIT_CONNECTION)
    if isinstance(reason, TimeoutError):
        return CommandError(
            f"{host} did not answer within {timeout:g} s (--timeout)", EXIT_CONNECTION, retryable=True
        )
    if isinstance(reason, (ConnectionError, http.client.RemoteDisconnected)):
        hint = (
            " (it may refuse bodies this large; --expect-continue lets it say so before the upload)"
            if body_size >= LARGE_BODY else ""
        )
        return CommandError(
            f"{host} closed the connection before answering{hint}", EXIT_CONNECTION, retryable=True
        )
    if isinstance(reason, http.client.InvalidURL):
        return CommandError(f"invalid URL {url!r}: {reason}", EXIT_USAGE)
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


#: How much of an answer ``--verify`` keeps to read the digests from.
KEEP_LIMIT = 16 << 20


def _copy_body(
    reply: Reply, out: Optional[BinaryIO], url: str, where: str = "stdout",
    keep: Optional[bytearray] = None,
) -> int:
    """Copy the answer's body to ``out`` (``None``: read and drop it); returns
    its size.  A connection lost meanwhile is a CommandError, and so is a
    write to ``out`` (named ``where``) that fails (exit 23).  ``keep`` gets
    the body too, until it holds more than :data:`KEEP_LIMIT` bytes."""
    size = 0
    with reply.body:
        while True:
            try:
                block = reply.body.read(1 << 16)
            except (OSError, http.client.HTTPException) as exc:
                host = urllib.parse.urlsplit(url).netloc
                raise CommandError(f"the answer from {host} was cut short ({exc})", EXIT_CONNECTION) from None
            if not block:
                break
            size += len(block)
            if keep is not None and len(keep) <= KEEP_LIMIT:
                keep += block
            if out is not None:
                _write_all(out, block, where)
    if out is not None:
        _write_all(out, b"", where)
    return size


def _write_all(out: BinaryIO, block: bytes, where: str) -> None:
    """Write ``block`` to ``out`` and flush; a failure is exit 23."""
    try:
        view = memoryview(block)
        while view:
            written = out.write(view)
            if not written:
                raise OSError(f"no byte of {len(view)} could be written")
            view = view[written:]
        out.flush()
    except OSError as exc:
        if out is sys.stdout.buffer:
            _silence_stdout()
        raise CommandError(
            f"cannot write the answer to {where} ({exc.strerror or exc}); what it holds there is incomplete",
            EXIT_WRITE,
        ) from None


# -- the upload command ----------------------------------------------------------

class Console:
    """stderr for ``upload``: errors and notes (quiet with ``-s``, errors back
    with ``-S``) and ``-v``'s request and response heads."""

    def __init__(self, silent: bool, show_error: bool, verbose: bool) -> None:
        self.silent, self.show_error, self.verbose = silent, show_error, verbose

    def _write(self, text: str) -> None:
        # What a server sent (a Location, a reason phrase) may hold escape
        # sequences for the terminal: controls are shown, not obeyed.
        sys.stderr.write(_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text))
        sys.stderr.flush()

    def error(self, message: str) -> None:
        if not self.silent or self.show_error:
            self._write(f"poster: error: {message}\n")

    def note(self, message: str) -> None:
        if not self.silent:
            self._write(f"poster: {message}\n")

    def report(self, message: str) -> None:
        """What an option asked for (``--digest``, ``--verify``): shown even with ``-s``."""
        self._write(f"poster: {message}\n")

    def info(self, message: str) -> None:
        if self.verbose:
            self._write(f"* {message}\n")

    def request_head(self, lines: List[str]) -> None:
        if self.verbose:
            self._write("".join(f"> {_shown(line)}\n" for line in lines) + "> \n")

    def response_head(self, reply: Reply) -> None:
        if self.verbose:
            lines = [f"HTTP/{reply.version} {reply.status} {reply.reason}"]
            if reply.headers is not None:
                lines += [f"{name}: {value}" for name, value in reply.headers.items()]
            self._write("".join(f"< {line}\n" for line in lines) + "< \n")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _request_headers(
    args: argparse.Namespace, target: Target, first: Target, custom: Sequence[Tuple[str, Optional[str]]],
) -> List[Tuple[str, str]]:
    """The headers of one request to ``target``: curl's defaults and the user's
    (``-u``, ``-A``, ``-e``, ``-b``, ``-H``).  Credentials and cookies go only
    to the origin of the first URL, unless ``target`` carries its own.
    ``-u`` comes before the URL's credentials, as in curl."""
    same_origin = target.origin == first.origin
    headers: List[Tuple[str, str]] = []
    credentials = target.credentials
    if same_origin:
        credentials = args.user_credentials or credentials or first.credentials
    if credentials is not None:
        headers.append(("Authorization", _basic(credentials)))
    # An empty -A or -e leaves the header out, as curl does.
    if args.user_agent is None:
        headers.append(("User-Agent", f"poster/{poster.__version__}"))
    elif args.user_agent:
        headers.append(("User-Agent", _header_text(args.user_agent)))
    if args.referer:
        headers.append(("Referer", _header_text(args.referer)))
    headers.append(("Accept", "*/*"))
    if args.cookie and same_origin:
        headers.append(("Cookie", _header_text(";".join(args.cookie))))
    if args.expect_continue:
        headers.append(("Expect", "100-continue"))
    named = {name.lower() for name, _ in custom}
    headers = [(name, value) for name, value in headers if name.lower() not in named]
    for name, value in custom:
        if value is None or (not same_origin and name.lower() in _CREDENTIAL_HEADERS):
            continue
        headers.append((name, value))
    return headers


def _retry_delay(args: argparse.Namespace, reply: Optional[Reply], retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): ``--retry-delay``,
    else the answer's ``Retry-After`` (in seconds), else 1, 2, 4, ... (at most 600)."""
    if args.retry_delay is not None:
        return float(args.retry_delay)
    if reply is not None and reply.headers is not None:
        after = (reply.headers.get("Retry-After") or "").strip()
        if after.isascii() and after.isdigit():
            return min(float(after), MAX_RETRY_DELAY)
    return min(2.0 ** (retry - 1), MAX_RETRY_DELAY)


def _may_retry(args: argparse.Namespace, retries: int, transfer: Transfer) -> bool:
    """Whether one more retry is allowed after ``retries`` of them."""
    if retries >= args.retry:
        return False
    if args.retry_max_time:
        return bool(time.monotonic() - transfer.started < args.retry_max_time)
    return True


def _rewind(datagen: Any) -> None:
    """Rewind the body for a try; a streamed input cannot be sent twice."""
    try:
        datagen.reset()
    except NotReplayableError:
        raise CommandError(
            "the upload streams its input as it comes (--chunked), so it cannot be sent "
            "again for a retry or a redirect; without --chunked the input is spooled "
            "first and can be",
            EXIT_BODY,
        ) from None


def _transfer(
    args: argparse.Namespace,
    first: Target,
    datagen: Any,
    form_headers: List[Tuple[str, str]],
    custom: Sequence[Tuple[str, Optional[str]]],
    context: ssl.SSLContext,
    console: Console,
    transfer: Transfer,
    progress: ProgressBar,
) -> Tuple[Reply, Target, Optional[CommandError]]:
    """Send the form, with ``--retry`` and ``-L``.

    Returns the final answer, its URL, and the error to end with once the
    answer's body is out (a redirect that ``-L`` does not follow).  Every try
    and every redirect sends the whole body again (``datagen.reset()``; a
    file given with ``@`` is read again).  Only a transient failure uses up
    one of the ``--retry`` retries; a redirect followed does not.
    """
    target = first
    retries = 0
    while True:
        transfer.url = target.url
        progress.sent = 0
        headers = form_headers + _request_headers(args, target, first, custom)
        reply: Optional[Reply] = None
        failure: Optional[str] = None
        try:
            _rewind(datagen)
            reply = send(
                target.url, args.method, datagen, headers, context=context,
                timeout=args.timeout, on_head=console.request_head,
            )
        except CommandError as exc:
            transfer.size_upload = progress.sent
            if not (exc.retryable and _may_retry(args, retries, transfer)):
                raise
            failure = exc.message
        else:
            transfer.size_upload = progress.sent
            console.response_head(reply)
            if reply.status in RETRY_STATUSES and _may_retry(args, retries, transfer):
                failure = f"HTTP {reply.status} {reply.reason} from {args.method} {target.url}"
        if failure is not None:
            retries += 1
            delay = _retry_delay(args, reply, retries)
            if reply is not None:
                _copy_body(reply, None, target.url)
            left = args.retry - retries + 1
            console.note(
                f"warning: {failure}; will retry in {delay:g} s, "
                f"{left} {'retry' if left == 1 else 'retries'} left"
            )
            time.sleep(delay)
            continue
        assert reply is not None
        location = reply.headers.get("Location") if reply.headers is not None else None
        if reply.status not in REDIRECT_STATUSES or not location:
            return reply, target, None
        said = f"HTTP {reply.status} {reply.reason} from {args.method} {target.url}"
        try:
            where = urllib.parse.urljoin(target.url, location.strip())
        except ValueError:  # a Location such as http://[::1
            where = location.strip()
            if args.location:
                return reply, target, CommandError(
                    f"{said} points to {where!r}, which is no valid URL", EXIT_REDIRECT
                )
        if not args.location:
            transfer.redirect_url = where
            console.note(f"{said} points to {where}; not followed: -L (--location) follows it")
            return reply, target, None
        if reply.status not in (307, 308):
            return reply, target, CommandError(
                f"{said} points to {where}; not followed: it would turn the {args.method} into "
                "a GET without the upload (a server that wants the upload there answers 307 "
                "or 308); send it to that URL",
                EXIT_REDIRECT,
            )
        if transfer.num_redirects >= args.max_redirs:
            return reply, target, CommandError(
                f"{said}: more than {_plural(args.max_redirs, 'redirect')} (--max-redirs)",
                EXIT_REDIRECT,
            )
        try:
            new_target = parse_url(where)
        except CommandError:
            return reply, target, CommandError(
                f"{said} points to {_without_password(where)!r}, which is no http(s) URL", EXIT_REDIRECT
            )
        if target.url.startswith("https:") and new_target.url.startswith("http:"):
            return reply, target, CommandError(
                f"{said} points to {new_target.url}; not followed: it would send the upload "
                "unencrypted (https to http)",
                EXIT_REDIRECT,
            )
        _copy_body(reply, None, target.url)
        transfer.num_redirects += 1
        console.info(f"following the {reply.status} to {new_target.url}; the upload is sent again")
        target = new_target


def upload(args: argparse.Namespace) -> int:
    """``poster upload``: send the form, print the answer's body (and ``-w``)."""
    console = Console(args.silent, args.show_error, args.verbose)
    try:
        return _upload(args, console)
    except CommandError as exc:
        console.error(exc.message)
        return exc.exit_code


def _upload(args: argparse.Namespace, console: Console) -> int:
    # -w is read first: as curl, it is written out whatever fails after it
    # (a malformed URL, a missing file, a refused connection).
    tokens = parse_write_out(args.write_out) if args.write_out is not None else None
    transfer = Transfer(_without_password(args.url), args.method)
    try:
        code = _checked_upload(args, console, transfer)
    except CommandError as exc:
        transfer.exitcode, transfer.errormsg = exc.exit_code, exc.message
        transfer.finished = transfer.finished or time.monotonic()
        if tokens is not None:
            console.error(exc.message)
            _write_out(tokens, transfer, failed=True)
            return exc.exit_code
        raise
    if tokens is not None:
        _write_out(tokens, transfer)
    return code


def _write_out(tokens: Sequence[Tuple[str, str]], transfer: Transfer, failed: bool = False) -> None:
    """``-w``'s output; stdout that cannot be written is exit 23 (unless the
    upload failed already: its own status stays)."""
    try:
        write_out(tokens, transfer, sys.stdout.buffer)
    except OSError as exc:
        _silence_stdout()
        if not failed:
            raise CommandError(f"cannot write -w's output to stdout ({exc.strerror or exc})", EXIT_WRITE) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a
    stdout that cannot be written (full, or a closed pipe) passes quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _check_output(path: str) -> None:
    """Refuse an ``-o`` that cannot be written, before anything is uploaded
    (as far as can be known: a disk may still fill up)."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise CommandError(
            f"-o {path!r} names a directory; give a file name, e.g. -o {os.path.join(path, 'answer')!r}",
            EXIT_WRITE,
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(
            f"-o {path!r}: there is no directory {directory!r}; create it first", EXIT_WRITE
        )
    writable = path if os.path.exists(path) else directory
    if not os.access(writable, os.W_OK):
        raise CommandError(f"-o {path!r}: {writable!r} is not writable (permission denied)", EXIT_WRITE)


def _checked_upload(args: argparse.Namespace, console: Console, transfer: Transfer) -> int:
    first = parse_url(args.url)
    transfer.url = first.url
    if not _TOKEN.match(args.method):
        raise CommandError(f"-X {args.method!r} is not an HTTP method")
    fields = [
        parse_form_field(spec) if kind == "form" else parse_form_string(spec)
        for kind, spec in args.form
    ]
    if not fields:
        raise CommandError(
            "nothing to send: give at least one -F name=value, -F name=@file or --form-string"
        )
    header_texts: List[str] = []
    for text in args.header:
        header_texts += _read_header_file(text[1:]) if text.startswith("@") else [text]
    custom = [parse_header(text) for text in header_texts]
    for option, text in (("-A", args.user_agent), ("-e", args.referer), *(("-b", c) for c in args.cookie)):
        if text is not None and any(ch in text for ch in "\r\n\x00"):
            raise CommandError(f"{option} {text!r}: a header value cannot hold a line break or NUL")
    for cookie in args.cookie:
        if "=" not in cookie:
            raise CommandError(
                f"-b {cookie!r}: reading cookies from a file is not supported; "
                "pass them as -b 'name=value; other=value'"
            )
    if args.verify and args.digest is not None and args.digest.lower() != "sha256":
        raise CommandError(
            f"--verify compares sha256 digests (what poster serve reports); "
            f"--digest {args.digest} cannot be verified: leave it out or give sha256"
        )
    if args.verify:
        args.digest = "sha256"
    if args.digest is not None:
        try:
            multipart_encode([], digest=args.digest)
        except ValueError as exc:
            raise CommandError(f"--digest {args.digest!r}: {exc}") from None
    if args.retry < 0:
        raise CommandError(f"--retry {args.retry}: give a count of 0 or more")
    if args.max_redirs < 0:
        raise CommandError(f"--max-redirs {args.max_redirs}: give a count of 0 or more")
    if args.output not in (None, "-"):
        _check_output(args.output)
    args.user_credentials = _user_credentials(args.user) if args.user is not None else None
    context = _ssl_context(args.cacert, args.insecure)
    return _send_form(args, first, fields, custom, context, console, transfer)


def _send_form(
    args: argparse.Namespace, first: Target, fields: Sequence[FormField],
    custom: Sequence[Tuple[str, Optional[str]]], context: ssl.SSLContext, console: Console,
    transfer: Transfer,
) -> int:
    with contextlib.ExitStack() as stack:
        params = build_params(fields, args.style, stack, args.chunked)
        with ProgressBar(_progress_wanted(args)) as progress:
            try:
                datagen, headers = multipart_encode(
                    params, boundary=args.boundary, cb=progress, style=args.style,
                    digest=args.digest, rate=args.limit_rate,
                )
            except ValueError as exc:
                raise CommandError(f"--boundary {args.boundary!r}: {exc}") from None
            form_headers = list(headers.items())
            reply, target, error = _transfer(
                args, first, datagen, form_headers, custom, context, console, transfer, progress
            )
    transfer.status, transfer.version, transfer.headers = reply.status, reply.version, reply.headers
    failed = reply.status >= 400
    said = f"HTTP {reply.status} {reply.reason} from {args.method} {target.url}"
    if reply.status == 101:
        # What follows is another protocol's, not an answer to the upload.
        reply.body.close()
        transfer.finished = time.monotonic()
        protocol = (reply.headers.get("Upgrade") if reply.headers is not None else None) or "another protocol"
        raise CommandError(
            f"{said}: the server switched to {protocol} instead of answering the upload; "
            "poster speaks HTTP/1.1 only: is it the right URL?",
            EXIT_WEIRD_REPLY,
        )
    if failed and args.fail and not args.fail_with_body:
        _copy_body(reply, None, target.url)
        transfer.finished = time.monotonic()
        raise CommandError(said, EXIT_FAIL)
    if args.digest is not None:
        _print_digests(params, datagen.digests, args.digest, console)
    answer = bytearray() if args.verify else None
    with contextlib.ExitStack() as outputs:
        out: BinaryIO = sys.stdout.buffer
        where = "stdout"
        if args.output not in (None, "-"):
            where = repr(args.output)
            try:
                # Unbuffered: a write that fails fails here, not again when closing.
                out = outputs.enter_context(open(args.output, "wb", buffering=0))
            except OSError as exc:
                _copy_body(reply, None, target.url)
                raise CommandError(
                    f"-o {args.output!r}: cannot write it ({exc.strerror or exc})", EXIT_WRITE
                ) from None
        transfer.size_download = _copy_body(reply, out, target.url, where, keep=answer)
    transfer.finished = time.monotonic()
    if error is not None:
        raise error
    if answer is not None and not failed:
        if len(datagen.digests) != len(params):
            raise CommandError(
                f"--verify: the server answered before the upload was complete ({datagen.tell()} "
                f"bytes of it sent, {len(datagen.digests)} of {len(params)} parts); it cannot have "
                "got them all", EXIT_VERIFY,
            )
        _verify(datagen.digests, bytes(answer) if len(answer) <= KEEP_LIMIT else None, console)
    if failed:
        raise CommandError(said, EXIT_FAIL if args.fail or args.fail_with_body else EXIT_HTTP_ERROR)
    return EXIT_OK


def _print_digests(params: Sequence[MultipartParam], digests: Sequence[Tuple[Optional[str], str]],
                   algorithm: str, console: "Console") -> None:
    """``--digest``: one stderr line per file part, its digest as sent."""
    for param, (name, hexdigest) in zip(params, digests):
        if param.filename is not None or param.value is None:
            label = f"{name}" + (f" ({param.filename})" if param.filename else "")
            console.report(f"{algorithm} {hexdigest}  {label}")


def _verify(digests: Sequence[Tuple[Optional[str], str]], answer: Optional[bytes], console: "Console") -> None:
    """``--verify``: the sha256 of every part as sent against what the receiver reports."""
    try:
        fields = json.loads(answer or b"")["fields"]
        received = [(field["name"], field["sha256"].lower()) for field in fields]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise CommandError(
            "--verify: the answer holds no per-field sha256 (is the server poster serve?); "
            "nothing to compare the upload with", EXIT_VERIFY,
        ) from None
    for index, (sent, got) in enumerate(itertools.zip_longest(digests, received)):
        if sent != got:
            said = "nothing" if got is None else f"{str(got[0])!r} with sha256 {got[1]}"
            sent_said = "nothing" if sent is None else f"{str(sent[0])!r} with sha256 {sent[1]}"
            raise CommandError(
                f"--verify: part {index + 1} was sent as {sent_said}, the server reports {said}",
                EXIT_VERIFY,
            )
    console.report(f"verified: the server got every one of the {len(digests)} parts as sent")


def serve(args: argparse.Namespace) -> int:
    """``poster serve``: receive uploads until interrupted."""
    from poster.receiver import ReceiverServer

    try:
        server = ReceiverServer(
            args.host, args.port, save_dir=args.save_dir, max_size=args.max_size, quiet=args.quiet,
            timeout=args.timeout,
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
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    amount = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            return f"{amount:.4g} {unit}"
    raise AssertionError("unreachable")


def _progress_wanted(args: argparse.Namespace) -> bool:
    if getattr(args, "silent", False):
        return False
    if args.progress is None:
        return sys.stderr.isatty() and not getattr(args, "verbose", False)
    return bool(args.progress)


# -- the parser and main ---------------------------------------------------------

def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds (at most {MAX_SECONDS:g})"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 to {MAX_SECONDS:g})")
    return value


class _FormAction(argparse.Action):
    """``-F`` and ``--form-string`` into one list, in the order given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        kind = "string" if option_string == "--form-string" else "form"
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((kind, values))
        setattr(namespace, self.dest, items)


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
        "--style", choices=["html5", "poster"], default="html5",
        help="part headers as browsers and curl write them (default), or as poster 0.8.1 did",
    )

    up = commands.add_parser(
        "upload", parents=[progress, style], help="send a multipart/form-data request",
        description="Send a multipart/form-data request, streamed from disk; the "
                    "response body goes to stdout. The options are curl's.",
        epilog="Exit status: 0 done (2xx, or 3xx not followed), 1 HTTP status >= 400, "
               "2 bad arguments or file, 3 no connection, 4 TLS, 5 body could not be sent "
               "as announced, 7 a redirect -L does not follow, 8 --verify found a mismatch, 9 the server "
               "switched protocols (101), 22 HTTP status >= 400 with --fail, 23 the answer could not be written.",
    )
    up.add_argument("url", metavar="URL", help="http:// or https:// URL (http://user:password@host/ sends them)")
    up.add_argument(
        "-F", "--form", action=_FormAction, dest="form", default=[], metavar="NAME=VALUE",
        help="a field, in curl's syntax: name=value, name=@file (upload), name=<file "
             "(text from a file), with ;type=mime/type and ;filename=name; '-' is stdin",
    )
    up.add_argument(
        "--form-string", action=_FormAction, dest="form", metavar="NAME=VALUE",
        help="a text field whose value is taken as it is (@, < and ;type= mean nothing)",
    )
    up.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="an extra request header; 'Name:' leaves out one poster sends, "
             "'Name;' sends it empty, @FILE reads headers from FILE, one a line",
    )
    up.add_argument("-X", "--request", dest="method", default="POST", metavar="METHOD",
                    help="the HTTP method, as given (default POST)")
    up.add_argument("-u", "--user", metavar="USER:PASSWORD",
                    help="HTTP Basic authentication (sent to the URL's origin only)")
    up.add_argument("-A", "--user-agent", metavar="NAME", help="the User-Agent header")
    up.add_argument("-e", "--referer", metavar="URL", help="the Referer header")
    up.add_argument("-b", "--cookie", action="append", default=[], metavar="'NAME=VALUE'",
                    help="cookies to send (repeatable; not a cookie file)")
    up.add_argument("-o", "--output", metavar="FILE", help="write the answer's body to FILE, not stdout")
    up.add_argument("-s", "--silent", action="store_true",
                    help="no progress bar, notes or error messages")
    up.add_argument("-S", "--show-error", action="store_true", help="with -s: show errors still")
    up.add_argument("-v", "--verbose", action="store_true",
                    help="the request's and the answer's heads on stderr ('> ', '< ')")
    up.add_argument("-w", "--write-out", metavar="FORMAT",
                    help="print FORMAT after the transfer: %%{http_code}, %%{size_upload}, "
                         "%%{speed_upload}, %%{time_total}, %%{url_effective}, ..., \\n; @FILE reads it")
    up.add_argument("-f", "--fail", action="store_true",
                    help="HTTP status >= 400: exit 22 and no body (default: exit 1, body on stdout)")
    up.add_argument("--fail-with-body", action="store_true",
                    help="HTTP status >= 400: exit 22, the body on stdout")
    up.add_argument("-L", "--location", action="store_true",
                    help="follow 307 and 308 redirects, the upload sent again "
                         "(301, 302 and 303 are not followed: exit 7)")
    up.add_argument("--max-redirs", type=int, default=DEFAULT_MAX_REDIRS, metavar="N",
                    help=f"with -L, follow at most N redirects (default {DEFAULT_MAX_REDIRS})")
    up.add_argument("--retry", type=int, default=0, metavar="N",
                    help="try N more times on a transient failure: refused or dropped "
                         "connection, timeout, HTTP 408, 429, 500, 502, 503, 504")
    up.add_argument("--retry-delay", type=_seconds, metavar="SECONDS",
                    help="wait this long between tries (default: Retry-After, else 1, 2, 4, ... s)")
    up.add_argument("--retry-max-time", type=_seconds, metavar="SECONDS",
                    help="start no new try after this many seconds")
    up.add_argument("--retry-connrefused", action="store_true",
                    help="accepted for curl's sake: --retry retries a refused connection anyway")
    up.add_argument("-k", "--insecure", action="store_true",
                    help="do not verify the server's TLS certificate")
    up.add_argument("--cacert", metavar="FILE", help="trust the CA certificates in this PEM file")
    up.add_argument("--digest", metavar="ALGORITHM",
                    help="hash each part as it is sent (sha256, sha512, md5, ...) and print "
                         "each file part's digest on stderr")
    up.add_argument("--verify", action="store_true",
                    help="compare each part's sha256 with what the server reports (poster "
                         "serve's answer); exit 8 on a mismatch")
    up.add_argument("--limit-rate", type=parse_rate, metavar="RATE",
                    help="send at most RATE bytes a second (100K, 10M, ...), as curl")
    up.add_argument("--chunked", action="store_true",
                    help="stream standard input, pipes and <(cmd) as they come, with "
                         "Transfer-Encoding: chunked (no temporary file; the server must "
                         "take chunked bodies; --retry and -L cannot send it again)")
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
    sv.add_argument("--timeout", type=_positive_number, default=DEFAULT_SERVE_TIMEOUT, metavar="SECONDS",
                    help="drop a client that takes longer to send a request's head, or is silent "
                         f"this long while sending a body (default {DEFAULT_SERVE_TIMEOUT:g})")
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
            f"extras: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("poster: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout was closed early (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
