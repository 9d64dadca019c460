"""Hostile names, filenames and content types: a clear error, or a body whose
parsed header set is exactly the intended one.  Never an extra header."""

import email.header
import io
import re

import pytest
from werkzeug.http import parse_options_header

from poster.encode import MultipartParam, multipart_encode

from helpers import parse_with_python_multipart

HOSTILE = [
    "plain",
    "cr\rinside",
    "lf\ninside",
    "crlf\r\nContent-Type: text/evil",
    "nul\x00inside",
    'quote"inside',
    '"',
    "back\\slash",
    "ends with backslash\\",
    '\\"',
    "tab\there",
    "x" * 65536,
    "\N{SNOWMAN} unicode \u00e9",
    "lone \udc80 surrogate",
    "\r\n\r\n--boundary",
    "=?utf-8?q?x=5C?=",
]


def _parsed_headers(param):
    """The one part of a body made of ``param``: split by python-multipart, its
    Content-Disposition read by werkzeug's strict quoted-string parser."""
    datagen, headers = multipart_encode([param], boundary="hostileboundary")
    body = b"".join(datagen)
    assert len(body) == int(headers["Content-Length"])
    (part,) = parse_with_python_multipart(body, headers["Content-Type"])
    disposition, options = parse_options_header(part["headers"][b"content-disposition"].decode("utf-8"))
    assert disposition == "form-data"
    assert set(options) <= {"name", "filename"}
    part["name"] = options["name"].encode("utf-8")
    part["filename"] = options["filename"].encode("utf-8") if "filename" in options else None
    return part


def _decode_poster_name(raw):
    text = raw.decode("utf-8")
    if text.startswith("=?utf-8?b?"):
        ((decoded, charset),) = email.header.decode_header(text)
        return decoded.decode(charset)
    return text


def _poster_filename(text):
    """What poster style puts between the quotes: poster 0.8.1's XML character
    references for non-ASCII, and for what 0.8.1 escaped with a backslash
    (Python 2's "string_escape": control characters, '\\', "'", and '"')
    and for the '=' of "=?", so that no parser reads an escape or an encoded
    word there."""
    return re.sub(r"""[^ -~]|[\\'"]|=(?=\?)""", lambda m: f"&#{ord(m.group())};", text).encode("ascii")


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:24]))
def test_poster_style_name(text):
    try:
        param = MultipartParam(text, b"v")
    except ValueError as exc:
        assert "surrogate" in text and "UTF-8" in str(exc)
        return
    part = _parsed_headers(param)
    assert set(part["headers"]) == {b"content-disposition", b"content-type"}
    # A backslash is written as the character reference &#92;.
    assert _decode_poster_name(part["name"]) == text.replace("\\", "&#92;")
    assert part["data"] == b"v"


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:24]))
def test_poster_style_filename(text):
    part = _parsed_headers(MultipartParam("f", fileobj=io.BytesIO(b"data"), filename=text))
    assert set(part["headers"]) == {b"content-disposition", b"content-type"}
    assert part["name"] == b"f"
    raw = part["headers"][b"content-disposition"]
    assert raw == b'form-data; name="f"; filename="' + _poster_filename(text) + b'"'
    assert part["data"] == b"data"


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:24]))
def test_html5_style_name_and_filename(text):
    try:
        param = MultipartParam(text, fileobj=io.BytesIO(b"data"), filename=text, style="html5")
    except ValueError as exc:
        assert ("\x00" in text and "NUL" in str(exc)) or ("surrogate" in text and "UTF-8" in str(exc))
        return
    part = _parsed_headers(param)
    assert set(part["headers"]) == {b"content-disposition", b"content-type"}
    # werkzeug gives back the '"' that html5 style sent as %22 (as browsers do);
    # CR, LF, the backslash and the '=' of "=?" stay escaped.
    expected = (text.replace("\\", "%5C").replace("\r", "%0D").replace("\n", "%0A")
                .replace("=?", "%3D?").encode("utf-8"))
    assert part["name"] == expected
    assert part["filename"] == expected
    assert part["data"] == b"data"


@pytest.mark.parametrize("style", ["poster", "html5"])
@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:24]))
def test_content_type(style, text):
    try:
        param = MultipartParam("f", fileobj=io.BytesIO(b"data"), filename="f", filetype=text, style=style)
    except ValueError as exc:
        assert re.search(r"[\x00-\x1f]|[\ud800-\udfff]", text)
        assert "filetype" in str(exc) or "UTF-8" in str(exc)
        return
    part = _parsed_headers(param)
    assert set(part["headers"]) == {b"content-disposition", b"content-type"}
    assert part["content_type"] == text.encode("utf-8")
