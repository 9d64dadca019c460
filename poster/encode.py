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
filenames as ``&#NNNN;`` references.  ``style="html5"`` gives what browsers
send: UTF-8 as is, with ``"``, CR and LF in names and filenames written
``%22``, ``%0D`` and ``%0A``.  In neither style is a backslash ever written
inside a quoted value (the README's "Header styles" gives each spelling), so
no name or filename can change another header parameter.

Bodies of other RFC 2046 subtypes are made the same way::

    >>> datagen, headers = multipart_encode(
    ...     [MultipartParam(None, b'{"name": "cat.jpg"}', filetype="application/json"),
    ...      MultipartParam(None, b"JPEG...", filetype="image/jpeg")],
    ...     boundary="xyz", subtype="related", type="application/json")
    >>> headers["Content-Type"]
    'multipart/related; boundary=xyz; type="application/json"'
    >>> datagen.content_type == headers["Content-Type"]
    True

A part without a name (``MultipartParam(None, ...)``) has no
``Content-Disposition``; a form-data body refuses it.

The modules behind this one: ``_parts`` (the part model), ``_sources``
(where a file part's content comes from), ``_body`` (the body), ``_send``
(sockets) and :mod:`poster.errors`.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Dict, Iterator, Optional, Tuple, Union

from poster._body import DEFAULT_BLOCKSIZE, MultipartBody, MultipartStream
from poster._parts import (
    Boundary,
    Callback,
    MultipartParam,
    ParamsInput,
    body_size,
    check_blocksize,
    check_style,
    delimiter_of,
    parts_from_params,
    quote_boundary,
)
from poster._subtypes import FORM_DATA, check_names, check_subtype, content_type
from poster.errors import (
    BodyConsumedError,
    BodyFrozenError,
    BoundaryCollisionError,
    ContentSizeError,
    NotReplayableError,
    ParamNameMismatchError,
    SourceChangedError,
    SourceInUseError,
)

__all__ = [
    "gen_boundary",
    "encode_and_quote",
    "MultipartParam",
    "MultipartBody",
    "MultipartStream",
    "multipart_yielder",
    "encode_string",
    "encode_file_header",
    "get_body_size",
    "get_headers",
    "multipart_encode",
    "BoundaryCollisionError",
    "ContentSizeError",
    "SourceChangedError",
    "SourceInUseError",
    "NotReplayableError",
    "BodyConsumedError",
    "BodyFrozenError",
    "ParamNameMismatchError",
    "DEFAULT_BLOCKSIZE",
]


class _Boundaries:
    """Random boundaries of 32 hex digits, made 128 at a time from one read
    of the OS's secure random source: one system call per 128 boundaries,
    not one each.

    Taking one is one ``next()`` of a list iterator, which no other thread
    and no signal handler can come between; so there is no lock (which a
    signal handler calling :func:`gen_boundary` could deadlock on), and no
    boundary is handed out twice.  A forked child drops what it inherited
    (``os.register_at_fork``, as the ``random`` module reseeds), so parent and
    child never share boundaries; a fork made from C, which runs no such
    hooks, shares them as it shares the ``random`` module's state.
    """

    DIGITS = 32
    COUNT = 128

    def __init__(self) -> None:
        self._made: Iterator[str] = iter(())

    def take(self) -> str:
        while True:  # again if other threads took every new one meanwhile
            try:
                return next(self._made)
            except StopIteration:
                digits = os.urandom(self.DIGITS // 2 * self.COUNT).hex()
                self._made = iter([digits[at:at + self.DIGITS] for at in range(0, len(digits), self.DIGITS)])

    def drop(self) -> None:
        self._made = iter(())


_boundaries = _Boundaries()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_boundaries.drop)


def gen_boundary() -> str:
    """A new random boundary: 32 hex digits from the OS's secure random source."""
    return _boundaries.take()


def encode_and_quote(data: Optional[Union[str, bytes]]) -> Optional[str]:
    """``urllib.parse.quote_plus`` of ``data``'s UTF-8 bytes; ``None`` stays ``None``."""
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return urllib.parse.quote_plus(data)


def encode_string(boundary: Boundary, name: Union[str, bytes], value: object) -> bytes:
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


def get_body_size(
    params: ParamsInput, boundary: Boundary, *, style: str = "poster", subtype: str = FORM_DATA
) -> Optional[int]:
    """The length of the body ``params`` encode to, computed without reading
    files; None when a part's length cannot be known (a pipe, a generator).

    ``subtype`` is that of :func:`multipart_encode`: a form-data body refuses
    parts without a name.
    """
    check_style(style)
    subtype = check_subtype(subtype)
    delimiter = delimiter_of(boundary)
    parts = parts_from_params(params, delimiter, style, DEFAULT_BLOCKSIZE)
    check_names(parts, subtype)
    return body_size(parts, delimiter)


def get_headers(
    params: ParamsInput,
    boundary: Boundary,
    *,
    style: str = "poster",
    subtype: str = FORM_DATA,
    type: Optional[str] = None,
    start: Optional[str] = None,
) -> Dict[str, str]:
    """``Content-Type`` and ``Content-Length`` for the body of ``params``
    (no ``Content-Length`` when its length cannot be known).

    ``subtype``, ``type`` and ``start`` are those of :func:`multipart_encode`.
    """
    headers = {"Content-Type": content_type(quote_boundary(boundary), check_subtype(subtype), type, start)}
    size = get_body_size(params, boundary, style=style, subtype=subtype)
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


multipart_yielder = MultipartBody  # poster 0.8.1's name


def multipart_encode(
    params: ParamsInput,
    boundary: Optional[Boundary] = None,
    cb: Optional[Callback] = None,
    *,
    style: str = "poster",
    blocksize: Optional[int] = None,
    subtype: str = FORM_DATA,
    type: Optional[str] = None,
    start: Optional[str] = None,
    digest: Optional[str] = None,
    rate: Optional[float] = None,
) -> Tuple[MultipartStream, Dict[str, str]]:
    """Encode ``params`` as multipart/form-data (or another ``subtype``): returns ``(datagen, headers)``.

    ``params`` is what :meth:`MultipartParam.from_params` takes.  ``boundary``
    defaults to :func:`gen_boundary`; a given one is ``quote_plus``'d once and
    that spelling is used everywhere (at most 70 characters, RFC 2046).
    ``headers`` holds ``Content-Type`` and ``Content-Length``; ``datagen``
    yields the body in blocks of about ``blocksize`` bytes, and is a
    snapshot of the params as they are now.  Without a ``blocksize``, blocks
    are of 64 KiB (``DEFAULT_BLOCKSIZE``), and iterating reads a regular
    file of at most 256 KiB into one block with what surrounds it, so that a
    small upload is one send.  ``style`` applies to the parts
    made from pairs.

    When a part's length cannot be known (a pipe, a generator without
    ``filesize``), ``headers`` has no ``Content-Length`` and ``datagen`` is a
    :class:`MultipartStream` without ``len()``: clients send it chunked.
    Otherwise it is a :class:`MultipartBody`.

    ``subtype`` makes a body of another RFC 2046 subtype (``"related"``,
    ``"mixed"``, any RFC 7230 token, sent lowercased), with
    ``Content-Type: multipart/<subtype>; boundary=...``; its parts may have
    no name (``MultipartParam(None, ...)``, sent without a
    ``Content-Disposition``), which a form-data body refuses.  For
    ``"related"`` only, ``type`` (the root part's media type) and ``start``
    (its ``Content-ID``) add RFC 2387's parameters, in double quotes; a value
    holding CR, LF, NUL, another control character, ``"``, ``\\`` or a
    non-ASCII character is refused.  Each of these mistakes is a
    ``ValueError`` that says what to do.
    ``datagen.content_type`` is the ``Content-Type`` header.

    ``digest`` (a ``hashlib`` algorithm name such as ``"sha256"``) hashes
    each part's content as it is produced or sent, with no second read:
    once the body is through, ``datagen.digests`` is a list of
    ``(name, hexdigest)`` in part order (a reset clears it).  ``rate``
    limits iterating or sending the body to that many bytes per second
    (never more than one block ahead; it sleeps).
    """
    check_style(style)
    limit = DEFAULT_BLOCKSIZE if blocksize is None else blocksize
    check_blocksize(limit)
    if boundary is None:
        boundary = gen_boundary()
    quoted = quote_boundary(boundary)
    if cb is None:
        parts = parts_from_params(params, b"--" + quoted.encode("ascii"), style, limit)
    else:  # the callback is called with each part's param
        parts = MultipartParam.from_params(params, style=style)  # type: ignore[assignment]
    body = MultipartBody(parts, boundary, cb, blocksize, subtype=subtype, type=type, start=start,
                         digest=digest, rate=rate)
    headers = {"Content-Type": body.content_type}
    if body.total is not None:
        headers["Content-Length"] = str(body.total)
    return body, headers
