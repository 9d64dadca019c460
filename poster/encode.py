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

The modules behind this one: ``_parts`` (the part model), ``_sources``
(where a file part's content comes from), ``_body`` (the body), ``_send``
(sockets) and :mod:`poster.errors`.
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Dict, Optional, Tuple, Union

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


def get_body_size(params: ParamsInput, boundary: Boundary, *, style: str = "poster") -> Optional[int]:
    """The length of the body ``params`` encode to, computed without reading
    files; None when a part's length cannot be known (a pipe, a generator)."""
    check_style(style)
    delimiter = delimiter_of(boundary)
    return body_size(parts_from_params(params, delimiter, style, DEFAULT_BLOCKSIZE), delimiter)


def get_headers(params: ParamsInput, boundary: Boundary, *, style: str = "poster") -> Dict[str, str]:
    """``Content-Type`` and ``Content-Length`` for the body of ``params``
    (no ``Content-Length`` when its length cannot be known)."""
    headers = {"Content-Type": f"multipart/form-data; boundary={quote_boundary(boundary)}"}
    size = get_body_size(params, boundary, style=style)
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
    blocksize: int = DEFAULT_BLOCKSIZE,
) -> Tuple[MultipartStream, Dict[str, str]]:
    """Encode ``params`` as multipart/form-data: returns ``(datagen, headers)``.

    ``params`` is what :meth:`MultipartParam.from_params` takes.  ``boundary``
    defaults to :func:`gen_boundary`; a given one is ``quote_plus``'d once and
    that spelling is used everywhere (at most 70 characters, RFC 2046).
    ``headers`` holds ``Content-Type`` and ``Content-Length``; ``datagen``
    yields the body in blocks of about ``blocksize`` bytes, and is a
    snapshot of the params as they are now.  ``style`` applies to the parts
    made from pairs.

    When a part's length cannot be known (a pipe, a generator without
    ``filesize``), ``headers`` has no ``Content-Length`` and ``datagen`` is a
    :class:`MultipartStream` without ``len()``: clients send it chunked.
    Otherwise it is a :class:`MultipartBody`.
    """
    check_style(style)
    check_blocksize(blocksize)
    if boundary is None:
        boundary = gen_boundary()
    quoted = quote_boundary(boundary)
    if cb is None:
        parts = parts_from_params(params, b"--" + quoted.encode("ascii"), style, blocksize)
    else:  # the callback is called with each part's param
        parts = MultipartParam.from_params(params, style=style)  # type: ignore[assignment]
    body = MultipartBody(parts, boundary, cb, blocksize)
    headers = {"Content-Type": f"multipart/form-data; boundary={quoted}"}
    if body.total is not None:
        headers["Content-Length"] = str(body.total)
    return body, headers
