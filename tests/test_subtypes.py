"""Bodies of other multipart subtypes than form-data, and parts without a name.

``multipart_encode(..., subtype="related" | "mixed", type=..., start=...)``,
``MultipartParam(None, ...)``; each body is read back with the standard
library's ``email`` parser, as a MIME reader of such bodies would.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from hypothesis import given, strategies as st
from werkzeug.wrappers import Request, Response

from poster import _fastencode_py as reference
from poster.encode import (
    BoundaryCollisionError,
    MultipartBody,
    MultipartParam,
    get_body_size,
    get_headers,
    multipart_encode,
)

from conftest import BACKENDS
from servers import serve

BOUNDARY = "subtypes0123456789abcdef"
README = Path(__file__).resolve().parent.parent / "README.md"


def parse(body: bytes, content_type: str) -> email.message.EmailMessage:
    """``body`` as the email package reads it under ``content_type``."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + body
    )
    assert not message.defects, message.defects
    return message  # type: ignore[return-value]


def raw_headers(part: email.message.Message) -> List[Tuple[str, str]]:
    """A part's header lines as they were sent: name and value, in order."""
    return list(part.raw_items())


def payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def encoded(params: Any, **kwargs: Any) -> Tuple[bytes, dict]:
    """The whole body and headers of ``multipart_encode(params, BOUNDARY, **kwargs)``,
    checked to be as long as announced."""
    datagen, headers = multipart_encode(params, BOUNDARY, **kwargs)
    body = b"".join(datagen)
    assert len(body) == len(datagen) == int(headers["Content-Length"])
    assert datagen.content_type == headers["Content-Type"]
    return body, headers


# -- the Content-Type header ----------------------------------------------------------

@pytest.mark.parametrize("subtype, sent", [
    ("related", "related"),
    ("mixed", "mixed"),
    ("Related", "related"),
    ("MIXED", "mixed"),
    ("alternative", "alternative"),
    ("x-vendor.thing+v1", "x-vendor.thing+v1"),
    ("form-data", "form-data"),
])
def test_subtype_names_the_content_type(subtype, sent):
    params = [MultipartParam("a", "1")] if sent == "form-data" else [MultipartParam(None, "1")]
    body, headers = encoded(params, subtype=subtype)
    assert headers["Content-Type"] == f"multipart/{sent}; boundary={BOUNDARY}"
    assert get_headers(params, BOUNDARY, subtype=subtype) == headers
    assert get_body_size(params, BOUNDARY, subtype=subtype) == len(body)
    direct = MultipartBody(params, BOUNDARY, subtype=subtype)
    assert (direct.subtype, direct.content_type) == (sent, headers["Content-Type"])
    assert parse(body, headers["Content-Type"]).get_content_type() == f"multipart/{sent}"


def test_the_default_is_form_data_as_before():
    datagen, headers = multipart_encode([("a", "1")], BOUNDARY)
    assert headers["Content-Type"] == f"multipart/form-data; boundary={BOUNDARY}"
    assert (datagen.subtype, datagen.content_type) == ("form-data", headers["Content-Type"])
    assert MultipartBody([], "b+c d").content_type == "multipart/form-data; boundary=b%2Bc+d"


@pytest.mark.parametrize("kwargs, parameters", [
    ({"type": "application/json"}, '; type="application/json"'),
    ({"start": "<meta@x>"}, '; start="<meta@x>"'),
    ({"type": "application/json", "start": "<meta@x>"}, '; type="application/json"; start="<meta@x>"'),
    ({"type": "text/xml; charset=utf-8", "start": "<a b;c=d>"}, '; type="text/xml; charset=utf-8"; start="<a b;c=d>"'),
])
def test_related_takes_type_and_start_quoted(kwargs, parameters):
    params = [MultipartParam(None, b"{}", filetype="application/json", headers={"Content-ID": "<meta@x>"})]
    body, headers = encoded(params, subtype="related", **kwargs)
    assert headers["Content-Type"] == f"multipart/related; boundary={BOUNDARY}{parameters}"
    assert get_headers(params, BOUNDARY, subtype="related", **kwargs) == headers
    message = parse(body, headers["Content-Type"])
    assert message.get_param("boundary") == BOUNDARY
    for key, value in kwargs.items():
        assert message.get_param(key) == value


@pytest.mark.parametrize("subtype", ["", "form data", "related; type=x", "multipart/related",
                                     "mixéd", 'a"b', "a\r\nX-Injected: 1", "a\x00", "[x]"])
def test_a_subtype_that_is_no_token_is_refused(subtype):
    with pytest.raises(ValueError, match="is not an RFC 7230 token; give the part after 'multipart/'"):
        multipart_encode([MultipartParam(None, "x")], subtype=subtype)
    with pytest.raises(ValueError, match="RFC 7230 token"):
        get_headers([MultipartParam(None, "x")], BOUNDARY, subtype=subtype)
    with pytest.raises(ValueError, match="RFC 7230 token"):
        MultipartBody([], BOUNDARY, subtype=subtype)


@pytest.mark.parametrize("subtype", [None, b"related", 3])
def test_a_subtype_that_is_no_str_is_a_type_error(subtype):
    with pytest.raises(TypeError, match="subtype must be a str such as 'related'"):
        multipart_encode([("a", "1")], subtype=subtype)


@pytest.mark.parametrize("value, error", [
    ("a\r\nX-Injected: 1", "holds '\\\\r', which cannot go inside a quoted header parameter"),
    ("a\nb", "holds '\\\\n'"),
    ("a\x00b", "holds '\\\\x00'"),
    ("a\tb", "holds '\\\\t'"),
    ("a\x7f", "holds '\\\\x7f'"),
    ('text/"x"', "holds '\"'"),
    ("a\\", "holds '\\\\\\\\'"),
    ("café", "holds the non-ASCII character 'é'; a header parameter is ASCII"),
    ("\ud800", "non-ASCII"),
    ("=?utf-8?q?x?=", "encoded word"),
    ("", "must not be empty; leave it out"),
])
@pytest.mark.parametrize("key", ["type", "start"])
def test_unsafe_type_and_start_are_refused(key, value, error):
    example = "'application/json'" if key == "type" else "'<root@example.org>'"
    with pytest.raises(ValueError, match=f"^{key} .*{error}.*give one such as {re.escape(example)}$"):
        multipart_encode([MultipartParam(None, "x")], subtype="related", **{key: value})
    with pytest.raises(ValueError, match=error):
        get_headers([MultipartParam(None, "x")], BOUNDARY, subtype="related", **{key: value})


@pytest.mark.parametrize("key", ["type", "start"])
def test_type_and_start_must_be_str(key):
    with pytest.raises(TypeError, match=f"{key} must be a str"):
        multipart_encode([MultipartParam(None, "x")], subtype="related", **{key: b"application/json"})


@pytest.mark.parametrize("subtype", ["mixed", "form-data", "alternative", None])
@pytest.mark.parametrize("key", ["type", "start"])
def test_type_and_start_belong_to_related_only(subtype, key):
    kwargs = {key: "application/json" if key == "type" else "<a@b>"}
    if subtype is not None:
        kwargs["subtype"] = subtype
    message = rf"^{key}= is a parameter of multipart/related \(RFC 2387\), not of multipart/"
    with pytest.raises(ValueError, match=message + r".*pass subtype='related', or leave " + key):
        multipart_encode([("a", "1")], **kwargs)
    with pytest.raises(ValueError, match=message):
        get_headers([("a", "1")], BOUNDARY, **kwargs)
    with pytest.raises(ValueError, match=message):
        MultipartBody([], BOUNDARY, **kwargs)


# -- parts without a name --------------------------------------------------------------

@pytest.mark.parametrize("style, kwargs, headers", [
    ("poster", {}, b"Content-Type: text/plain; charset=utf-8\r\n"),
    ("html5", {}, b"Content-Type: text/plain; charset=utf-8\r\n"),
    ("poster", {"filetype": "application/json; charset=UTF-8"},
     b"Content-Type: application/json; charset=UTF-8\r\n"),
    ("html5", {"filetype": "image/png"}, b"Content-Type: image/png\r\n"),
    ("poster", {"filetype": ""}, b"Content-Type: text/plain; charset=utf-8\r\n"),
    ("poster", {"filename": "notes.txt"},
     b'Content-Disposition: attachment; filename="notes.txt"\r\nContent-Type: text/plain; charset=utf-8\r\n'),
    ("html5", {"filename": "notes.txt"},
     b'Content-Disposition: attachment; filename="notes.txt"\r\nContent-Type: application/octet-stream\r\n'),
    ("html5", {"filename": "notes.txt", "filetype": "text/csv"},
     b'Content-Disposition: attachment; filename="notes.txt"\r\nContent-Type: text/csv\r\n'),
    ("poster", {"filename": ""}, b"Content-Type: text/plain; charset=utf-8\r\n"),
    ("html5", {"filename": ""},
     b'Content-Disposition: attachment; filename=""\r\nContent-Type: application/octet-stream\r\n'),
    ("poster", {"filename": 'ré"s\\.txt'},
     b'Content-Disposition: attachment; filename="r&#233;&#34;s&#92;.txt"\r\nContent-Type: text/plain; charset=utf-8\r\n'),
    ("html5", {"filename": 'ré"s\\.txt'},
     b'Content-Disposition: attachment; filename="r\xc3\xa9%22s%5C.txt"\r\nContent-Type: application/octet-stream\r\n'),
    ("poster", {"headers": {"Content-ID": "<a@b>", "X-Checksum": "sha256=0"}},
     b"Content-Type: text/plain; charset=utf-8\r\nContent-ID: <a@b>\r\nX-Checksum: sha256=0\r\n"),
    ("html5", {"filetype": "application/json", "headers": [("Content-ID", "<a@b>")]},
     b"Content-Type: application/json\r\nContent-ID: <a@b>\r\n"),
], ids=repr)
def test_a_part_without_a_name_has_no_form_data_disposition(style, kwargs, headers):
    param = MultipartParam(None, "value", style=style, **kwargs)
    assert param.name is None
    assert param.encode_hdr(BOUNDARY) == f"--{BOUNDARY}\r\n".encode() + headers + b"\r\n"
    assert param.encode(BOUNDARY) == f"--{BOUNDARY}\r\n".encode() + headers + b"\r\nvalue\r\n"
    body, _ = encoded([param], subtype="mixed")
    assert body == param.encode(BOUNDARY) + f"--{BOUNDARY}--\r\n".encode()


def test_a_named_part_keeps_its_disposition_in_any_subtype():
    body, headers = encoded([("comment", "hi"), MultipartParam(None, "x")], subtype="mixed")
    first, second = parse(body, headers["Content-Type"]).iter_parts()
    assert raw_headers(first) == [("Content-Disposition", 'form-data; name="comment"'),
                                  ("Content-Type", "text/plain; charset=utf-8")]
    assert raw_headers(second) == [("Content-Type", "text/plain; charset=utf-8")]


def test_nameless_parts_from_pairs_and_files(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    with open(path, "rb") as opened:
        params = [(None, "text"), (None, b"\x00\x01"), (None, opened),
                  MultipartParam.from_file(None, path), (None, MultipartParam(None, "p"))]
        body, headers = encoded(params, subtype="mixed")
    parts = list(parse(body, headers["Content-Type"]).iter_parts())
    attachment = [("Content-Disposition", 'attachment; filename="data.csv"'), ("Content-Type", "text/csv")]
    text = [("Content-Type", "text/plain; charset=utf-8")]
    assert [raw_headers(part) for part in parts] == [text, text, attachment, attachment, text]
    assert [payload(part) for part in parts] == [b"text", b"\x00\x01", path.read_bytes(), path.read_bytes(), b"p"]


def test_a_named_param_under_no_name_is_refused():
    from poster.encode import ParamNameMismatchError

    with pytest.raises(ParamNameMismatchError, match="named 'a' was given under the name None"):
        multipart_encode([(None, MultipartParam("a", "x"))], subtype="mixed")
    with pytest.raises(ParamNameMismatchError, match="named None was given under the name 'a'"):
        multipart_encode([("a", MultipartParam(None, "x"))], subtype="mixed")


@pytest.mark.parametrize("how", [
    "multipart_encode", "multipart_encode with cb", "pair", "mapping", "Form-Data",
    "get_headers", "get_body_size", "MultipartBody",
])
def test_form_data_refuses_a_part_without_a_name(how):
    nameless = MultipartParam(None, "x", filetype="text/csv")
    params: Any = [("a", "1"), nameless]
    if how == "multipart_encode":
        call = lambda: multipart_encode(params)
    elif how == "multipart_encode with cb":
        call = lambda: multipart_encode(params, cb=lambda *args: None)
    elif how == "pair":
        call = lambda: multipart_encode([("a", "1"), (None, "x")])
    elif how == "mapping":
        call = lambda: multipart_encode({"a": "1", None: "x"})
    elif how == "Form-Data":
        call = lambda: multipart_encode(params, subtype="Form-Data")
    elif how == "get_headers":
        call = lambda: get_headers(params, BOUNDARY)
    elif how == "get_body_size":
        call = lambda: get_body_size(params, BOUNDARY)
    else:
        call = lambda: MultipartBody(params[1:], BOUNDARY)
    with pytest.raises(ValueError, match=(
        r"^a part without a name cannot go in a multipart/form-data body, whose every part "
        r"needs a name \(RFC 7578\); give it a name, or encode the body with "
        r"subtype='related' or subtype='mixed'$"
    )):
        call()


def test_errors_name_a_part_without_a_name():
    with pytest.raises(BoundaryCollisionError, match="in the value of a part without a name"):
        encoded([MultipartParam(None, f"x\r\n--{BOUNDARY}\r\n")], subtype="related")
    assert repr(MultipartParam(None, b"ab")) == "<MultipartParam None value=b'ab'>"
    assert sorted([MultipartParam("b", "1"), MultipartParam(None, "2"), MultipartParam("a", "3")]) == [
        MultipartParam(None, "2"), MultipartParam("a", "3"), MultipartParam("b", "1")]


@pytest.fixture
def twins():
    """Every twin of the hot path: the pure-Python reference first."""
    return [reference] + [BACKENDS[name] for name in sorted(BACKENDS)]


@pytest.mark.parametrize("html5", [False, True, 0, 1, "", "x"])
@pytest.mark.parametrize("text", [
    None, "", "f.txt", " lead", "a\"b", "back\\slash", "it's", "tab\there", "cr\rlf\n", "nul\x00",
    "\x7f", "caf\u00e9", "\U0001f600", "\ud800", "x" * 200, "a=?b?=", b"bytes.bin", b"\xff", 3,
])
def test_twins_render_a_part_without_a_name_alike(twins, text, html5):
    for filetype in (None, "", "text/csv", text):
        outcomes = set()
        for twin in twins:
            try:
                outcomes.add(("ok", twin.render_part_headers(None, text, filetype, html5)))
            except Exception as exc:
                outcomes.add(("raised", type(exc), str(exc)))
        assert len(outcomes) == 1, outcomes
        [outcome] = outcomes
        if outcome[0] == "ok":
            lines = outcome[1].split(b"\r\n")
            assert lines[-2:] == [b"", b""] and lines[-3].startswith(b"Content-Type: ")
            assert all(b"\r" not in line and b"\n" not in line and b"\x00" not in line for line in lines)
            assert len(lines) == 3 or lines[0].startswith(b'Content-Disposition: attachment; filename="')


# -- read back by the email package: text, bytes and files, 1 B to 8 MiB -----------------

SIZES = [1, 2, 1000, 64 * 1024 - 1, 64 * 1024 + 7, 1 << 20, 8 << 20]
KINDS = ["text", "bytes", "bytes-edges", "fileobj", "disk-file", "from_file"]


def text_of(size: int) -> str:
    """A str of exactly ``size`` UTF-8 bytes, with non-ASCII, CRLF, LF and dashes."""
    unit = "ünïcode € 😀 line\r\n--not-the-boundary\nand\rmore "
    encoded = (unit * (size // len(unit.encode()) + 1)).encode()[:size]
    text = encoded.decode("utf-8", "ignore")
    return text + "x" * (size - len(text.encode()))


def content_of(kind: str, size: int) -> bytes:
    if kind == "text":
        return text_of(size).encode()
    if kind == "bytes-edges":  # line endings and dashes at both ends
        edge = b"\r\n--\r\r\n\n-"
        return (edge + os.urandom(max(0, size - 2 * len(edge))) + edge[::-1])[:size] if size > 1 else b"\r"
    return hashlib.shake_256(f"{kind}{size}".encode()).digest(size)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("subtype", ["related", "mixed"])
def test_email_reads_back_every_part_as_sent(tmp_path, subtype, kind, size):
    content = content_of(kind, size)
    meta = b'{"name": "data.bin"}'
    meta_headers = [("Content-Type", "application/json; charset=UTF-8"), ("Content-ID", "<meta@example.org>")]
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    expected: List[Tuple[str, str]]
    with open(path, "rb") as opened:
        if kind == "text":
            part = MultipartParam(None, content.decode("utf-8"), headers={"Content-ID": "<text@x>"})
            expected = [("Content-Type", "text/plain; charset=utf-8"), ("Content-ID", "<text@x>")]
        elif kind.startswith("bytes"):
            part = MultipartParam(None, content, filetype="application/octet-stream")
            expected = [("Content-Type", "application/octet-stream")]
        elif kind == "fileobj":
            part = MultipartParam(None, fileobj=io.BytesIO(content), filename="data.bin",
                                  filetype="image/jpeg", style="html5")
            expected = [("Content-Disposition", 'attachment; filename="data.bin"'), ("Content-Type", "image/jpeg")]
        elif kind == "disk-file":
            part = MultipartParam(None, fileobj=opened, filetype="image/jpeg", headers=[("X-Size", str(size))])
            expected = [("Content-Type", "image/jpeg"), ("X-Size", str(size))]
        else:
            part = MultipartParam.from_file(None, path)
            expected = [("Content-Disposition", 'attachment; filename="data.bin"'),
                        ("Content-Type", "application/octet-stream")]
        params = [MultipartParam(None, meta, filetype=meta_headers[0][1], headers=meta_headers[1:]),
                  part, MultipartParam(None, "last")]
        kwargs = {"type": "application/json", "start": "<meta@example.org>"} if subtype == "related" else {}
        datagen, headers = multipart_encode(params, subtype=subtype, **kwargs)
        body = b"".join(datagen)
    assert len(body) == len(datagen) == int(headers["Content-Length"])
    message = parse(body, headers["Content-Type"])
    assert message.get_content_type() == f"multipart/{subtype}"
    first, middle, last = message.iter_parts()
    assert raw_headers(first) == meta_headers and payload(first) == meta
    assert raw_headers(middle) == expected
    assert payload(middle) == content
    assert raw_headers(last) == [("Content-Type", "text/plain; charset=utf-8")] and payload(last) == b"last"


# -- a property: any nameless parts, related and mixed -------------------------------------

simple_text = st.text(st.sampled_from("abcXYZ019 ._-"), min_size=1, max_size=12)
filetypes = st.none() | st.sampled_from(["text/csv", "application/json; charset=UTF-8", "image/png"])
# (The email package drops the blanks that start a header value: none here.)
header_values = st.text(st.sampled_from("abcXYZ019<>@._-"), min_size=1, max_size=12)
part_headers = st.lists(st.tuples(st.sampled_from(["Content-ID", "X-A", "X-Checksum"]), header_values),
                        max_size=2, unique_by=lambda item: item[0])


@st.composite
def nameless_part(draw, style):
    """A part (nameless, or now and then named) and what the email package must read back."""
    kind = draw(st.sampled_from(["text", "bytes", "file"]))
    name = draw(st.none() | st.none() | simple_text)
    filename = draw(st.none() | simple_text)
    filetype = draw(filetypes)
    extra = draw(part_headers)
    if kind == "text":
        value: Any = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
        content = value.encode("utf-8")
        param = MultipartParam(name, value, filename=filename, filetype=filetype, style=style, headers=extra)
    else:
        content = draw(st.binary(max_size=3000))
        if kind == "bytes":
            param = MultipartParam(name, content, filename=filename, filetype=filetype, style=style, headers=extra)
        else:
            param = MultipartParam(name, fileobj=io.BytesIO(content), filename=filename, filetype=filetype,
                                   style=style, headers=extra)
    expected = []
    if name is not None:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        expected.append(("Content-Disposition", disposition))
    elif filename is not None:
        expected.append(("Content-Disposition", f'attachment; filename="{filename}"'))
    if filetype is None and not (name is not None and style == "html5" and filename is None):
        filetype = "application/octet-stream" if style == "html5" and filename else "text/plain; charset=utf-8"
    if filetype is not None:
        expected.append(("Content-Type", filetype))
    return param, expected + extra, content


@st.composite
def related_or_mixed_bodies(draw):
    style = draw(st.sampled_from(["poster", "html5"]))
    parts = draw(st.lists(nameless_part(style), min_size=1, max_size=6))
    return style, parts


@given(case=related_or_mixed_bodies(), subtype=st.sampled_from(["related", "mixed"]),
       blocksize=st.integers(min_value=1, max_value=5000))
def test_any_nameless_body_is_as_long_as_announced_and_reads_back(case, subtype, blocksize):
    style, parts = case
    params = [param for param, _, _ in parts]
    datagen, headers = multipart_encode(params, subtype=subtype, style=style, blocksize=blocksize)
    body = b"".join(datagen)
    assert len(body) == len(datagen) == int(headers["Content-Length"])
    assert headers == get_headers(params, datagen.boundary, subtype=subtype, style=style)
    message = parse(body, headers["Content-Type"])
    assert message.get_content_type() == f"multipart/{subtype}"
    seen = list(message.iter_parts())
    assert len(seen) == len(parts)
    for part, (_, expected, content) in zip(seen, parts):
        assert raw_headers(part) == expected
        assert payload(part) == content
    datagen.reset()
    assert b"".join(datagen) == body


# -- the README's Google-Drive-style recipe, against a local server --------------------------

#: What the local "Drive" saw of each upload: the request and its parts as
#: the email package reads them.
DRIVE_UPLOADS: List[dict] = []


@Request.application
def drive_app(request: Request) -> Response:
    """Answers a multipart/related upload as Drive does (``{"id": ...}``),
    noting what it received in ``DRIVE_UPLOADS``."""
    body = request.get_data()
    message = parse(body, request.headers["Content-Type"])
    DRIVE_UPLOADS.append({
        "query": request.query_string.decode(),
        "headers": dict(request.headers),
        "length": len(body),
        "content_type": message.get_content_type(),
        "parts": [(raw_headers(part), payload(part)) for part in message.iter_parts()],
    })
    return Response(json.dumps({"id": f"file-{len(DRIVE_UPLOADS)}"}), mimetype="application/json")


def readme_recipe(heading: str) -> str:
    """The Python code block right under ``heading`` in the README."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(f"### {heading}\n"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")]


def test_readme_drive_recipe_against_a_local_server(tmp_path, monkeypatch, capsys):
    code = readme_recipe("A multipart/related upload (Google Drive style)")
    drive_url = "https://www.googleapis.com/upload/drive/v3/files?uploadType=multipart"
    assert code.count(drive_url) == 1
    photo = b"\xff\xd8\xff\xe0" + os.urandom(300_000) + b"\xff\xd9"
    (tmp_path / "DSC0001.jpg").write_bytes(photo)
    monkeypatch.chdir(tmp_path)
    DRIVE_UPLOADS.clear()
    with serve(drive_app) as server:
        exec(compile(code.replace(drive_url, server.url + "/upload/drive/v3/files?uploadType=multipart"),
                     str(README), "exec"), {})
    assert capsys.readouterr().out == "file-1\n"
    [upload] = DRIVE_UPLOADS
    assert upload["query"] == "uploadType=multipart"
    assert upload["content_type"] == "multipart/related"
    assert re.fullmatch(r"multipart/related; boundary=[0-9a-f]{32}", upload["headers"]["Content-Type"])
    assert int(upload["headers"]["Content-Length"]) == upload["length"]
    assert upload["headers"]["Authorization"] == "Bearer ya29...."
    assert "Transfer-Encoding" not in upload["headers"]
    (meta_headers, meta), (file_headers, data) = upload["parts"]
    assert meta_headers == [("Content-Type", "application/json; charset=UTF-8")]
    assert json.loads(meta) == {"name": "DSC0001.jpg", "mimeType": "image/jpeg"}
    assert file_headers == [("Content-Type", "image/jpeg")]
    assert data == photo
