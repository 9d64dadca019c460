"""No name or filename can add, drop or change a header parameter.

Every body here is read by five real parsers: python-multipart (its streaming
parser, its form parser and its ``parse_options_header``), werkzeug (its form
parser and its ``parse_options_header``), the ``multipart`` package (its
parser and its ``parse_options_header``) and the standard library's ``email``
parser.  Each must see, for every part, a ``name``, a ``filename`` exactly
when the part is a file, no other parameter, and the very spelling the style
wrote (after the escapes that parser documents it undoes).

The spellings are computed here, from the rules, not by the encoder:

* html5: ``\\`` -> ``%5C``, ``"`` -> ``%22``, CR -> ``%0D``, LF -> ``%0A``
  and the ``=`` of ``=?`` -> ``%3D``; everything else as UTF-8.
* poster, names: ``\\`` -> ``&#92;``; a name that holds a ``"``, ``=?``, a
  control or a non-ASCII character is then one RFC 2047 ``=?utf-8?b?...?=``
  word.
* poster, filenames: ``\\``, ``"``, ``'``, control and non-ASCII characters
  and the ``=`` of ``=?`` -> ``&#NN;`` references; an empty filename is left
  out (poster 0.8.1).

So no backslash is ever written inside a quoted value, and no ``=?`` but the
encoder's own RFC 2047 words (the email parser decodes encoded words inside
quoted strings, and a decoded value that ends in a backslash, or a word that
runs past the closing quote, would shift its parameters).
"""

import base64
import email.parser
import email.policy
import io
import json
import os
import re
import urllib.request
from typing import List, NamedTuple, Optional

import multipart as multipart_pkg
import pytest
import python_multipart
import werkzeug.http
from hypothesis import given, strategies as st
from python_multipart.multipart import parse_options_header as pm_parse_options_header

from poster.encode import MultipartParam, multipart_encode
from poster.receiver import ReceiverServer, safe_filename, serving_in_thread

from helpers import parse_with_python_multipart, parse_with_werkzeug

BOUNDARY = "headerparams0123456789abcdef"


class Part(NamedTuple):
    name: str
    filename: Optional[str]  # None: no filename parameter


# -- the spellings, from the rules -----------------------------------------------

def html5_spelling(text: str) -> str:
    return (text.replace("\\", "%5C").replace('"', "%22").replace("\r", "%0D")
            .replace("\n", "%0A").replace("=?", "%3D?"))


def _rfc2047(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def poster_name_spelling(text: str) -> str:
    text = text.replace("\\", "&#92;")
    if re.fullmatch(r"[ -~]*", text) and '"' not in text and "=?" not in text:
        return text
    return _rfc2047(text)


def poster_filename_spelling(text: str) -> str:
    out = []
    for index, char in enumerate(text):
        if (not " " <= char <= "~" or char in "\\\"'"
                or (char == "=" and text[index + 1:index + 2] == "?")):
            out.append(f"&#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def sent(name: str, filename: Optional[str], style: str) -> Part:
    """The part as the style spells it: what goes between the quotes."""
    if style == "html5":
        return Part(html5_spelling(name), None if filename is None else html5_spelling(filename))
    return Part(poster_name_spelling(name), poster_filename_spelling(filename) if filename else None)


# -- what each parser does to a quoted value it reads -------------------------------

def as_werkzeug(value: str) -> str:
    # werkzeug turns %22 back into '"', as browsers escape it.
    return value.replace("%22", '"')


def as_multipart(value: str) -> str:
    # multipart undoes the three WHATWG escapes.
    if "%" in value:
        value = value.replace("%0D", "\r").replace("%0A", "\n").replace("%22", '"')
    return value


def as_email(value: str) -> str:
    # email decodes an RFC 2047 word, even inside a quoted string.
    match = re.fullmatch(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=", value)
    return base64.b64decode(match.group(1)).decode("utf-8") if match else value


def expected(parts: List[Part], reader) -> List[Part]:
    return [Part(reader(p.name), None if p.filename is None else reader(p.filename)) for p in parts]


# -- the parsers ---------------------------------------------------------------------

def dispositions(body: bytes, content_type: str) -> List[str]:
    """Each part's raw Content-Disposition value, as python-multipart splits the body."""
    return [p["headers"][b"content-disposition"].decode("utf-8")
            for p in parse_with_python_multipart(body, content_type)]


def read_python_multipart(body: bytes, content_type: str) -> List[Part]:
    parts = []
    for raw in dispositions(body, content_type):
        disposition, options = pm_parse_options_header(raw.encode("utf-8").decode("latin-1"))
        assert disposition == b"form-data"
        assert set(options) <= {b"name", b"filename"}, options
        parts.append(Part(options[b"name"].decode("utf-8"),
                          options[b"filename"].decode("utf-8") if b"filename" in options else None))
    return parts


def read_python_multipart_form(body: bytes, content_type: str) -> List[Part]:
    """python-multipart's FormParser: a Field or a File per part."""
    parts: List[Part] = []
    files = []

    def on_field(field) -> None:
        parts.append(Part(field.field_name.decode("utf-8"), None))

    def on_file(file) -> None:
        parts.append(Part(file.field_name.decode("utf-8"), file.file_name.decode("utf-8")))
        files.append(file)  # closed once parsed: python-multipart 0.0.32 flushes it after this call

    _, options = pm_parse_options_header(content_type)
    parser = python_multipart.FormParser("multipart/form-data", on_field, on_file,
                                         boundary=options[b"boundary"])
    parser.write(body)
    parser.finalize()
    for file in files:
        file.close()
    return parts


def read_werkzeug_options(body: bytes, content_type: str) -> List[Part]:
    parts = []
    for raw in dispositions(body, content_type):
        disposition, options = werkzeug.http.parse_options_header(raw)
        assert disposition == "form-data"
        assert set(options) <= {"name", "filename"}, options
        parts.append(Part(options["name"], options.get("filename")))
    return parts


def read_werkzeug_form(body: bytes, content_type: str) -> List[Part]:
    """werkzeug's form parser (see kinds for the order)."""
    return kinds([Part(f["name"], f["filename"]) for f in parse_with_werkzeug(body, content_type)])


def read_multipart_options(body: bytes, content_type: str) -> List[Part]:
    parts = []
    for raw in dispositions(body, content_type):
        disposition, options = multipart_pkg.parse_options_header(
            raw, unquote=multipart_pkg.content_disposition_unquote)
        assert disposition == "form-data"
        assert set(options) <= {"name", "filename"}, options
        parts.append(Part(options["name"], options.get("filename")))
    return parts


def read_multipart(body: bytes, content_type: str) -> List[Part]:
    _, options = multipart_pkg.parse_options_header(content_type)
    parser = multipart_pkg.MultipartParser(io.BytesIO(body), options["boundary"], len(body), strict=True)
    return [Part(part.name, part.filename) for part in parser]


def read_email(body: bytes, content_type: str) -> List[Part]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + body)
    assert message.is_multipart()
    parts = []
    for part in message.iter_parts():
        params = part.get_params(header="content-disposition")
        keys = [key for key, _ in params]
        assert keys in (["form-data", "name"], ["form-data", "name", "filename"]), params
        parts.append(Part(part.get_param("name", header="content-disposition"), part.get_filename()))
    return parts


def kinds(parts: List[Part]) -> List[Part]:
    """Text fields, then files, each sorted: werkzeug's form parser gives them
    by kind, and by name within a kind (a MultiDict)."""
    def key(part: Part):
        return (part.filename is not None, part.name, part.filename or "")

    return sorted(parts, key=key)


def check_every_parser(params: list, intended: List[Part], style: str = "poster") -> None:
    """Encode ``params`` (pairs are made parts in ``style``) and check what
    every parser sees against ``intended`` (the parts as the style spells them)."""
    datagen, headers = multipart_encode(params, boundary=BOUNDARY, style=style)
    body = b"".join(datagen)
    assert len(body) == int(headers["Content-Length"])
    content_type = headers["Content-Type"]
    for raw in dispositions(body, content_type):
        assert "\\" not in raw
    assert read_python_multipart(body, content_type) == intended
    assert read_python_multipart_form(body, content_type) == intended
    assert read_werkzeug_options(body, content_type) == expected(intended, as_werkzeug)
    assert read_werkzeug_form(body, content_type) == kinds(expected(intended, as_werkzeug))
    assert read_multipart_options(body, content_type) == expected(intended, as_multipart)
    assert read_multipart(body, content_type) == expected(intended, as_multipart)
    email_parts = expected(intended, as_email)
    # email strips white space around a filename.
    email_parts = [Part(p.name, p.filename and p.filename.strip()) for p in email_parts]
    assert read_email(body, content_type) == email_parts


# -- (a) the two reproductions --------------------------------------------------------

STYLES = ["poster", "html5"]


@pytest.mark.parametrize("style", STYLES)
def test_name_ending_in_backslash_cannot_make_a_filename(style):
    param = MultipartParam("x\\", fileobj=io.BytesIO(b"d"), filename="; filename=evil.php; a=", style=style)
    intended = [sent("x\\", "; filename=evil.php; a=", style)]
    assert intended[0].filename == "; filename=evil.php; a="
    check_every_parser([param], intended)


@pytest.mark.parametrize("style", STYLES)
def test_name_ending_in_backslash_keeps_the_filename(style):
    param = MultipartParam("photo\\", fileobj=io.BytesIO(b"jpeg"), filename="cat.jpg", style=style)
    intended = [sent("photo\\", "cat.jpg", style)]
    assert intended[0].filename == "cat.jpg"
    check_every_parser([param], intended)


def test_the_spellings():
    header = MultipartParam("x\\", fileobj=io.BytesIO(b"d"), filename="a\\b\"c", style="html5").encode_hdr("B")
    assert b'name="x%5C"; filename="a%5Cb%22c"' in header
    header = MultipartParam("x\\", fileobj=io.BytesIO(b"d"), filename="a\\b\"c'\t").encode_hdr("B")
    assert b'name="x&#92;"; filename="a&#92;b&#34;c&#39;&#9;"' in header
    header = MultipartParam('q"', "v").encode_hdr("B")
    assert b'name="=?utf-8?b?cSI=?="' in header
    header = MultipartParam("=?a?=", fileobj=io.BytesIO(b"d"), filename="=?b?=").encode_hdr("B")
    assert b'name="=?utf-8?b?PT9hPz0=?="; filename="&#61;?b?="' in header
    header = MultipartParam("=?a?=", fileobj=io.BytesIO(b"d"), filename="=?b?=", style="html5").encode_hdr("B")
    assert b'name="%3D?a?="; filename="%3D?b?="' in header


# Names and filenames an email parser would read as encoded words: one that
# decodes to a value ending in a backslash, one that runs from the name into
# the filename.
ENCODED_WORDS = [
    ("=?utf-8?q?x=5C?=", "; filename=evil.php; a="),
    ("=?utf-8?b?eFw=?=", "cat.jpg"),
    ("=?utf-8?q?x", "y?="),
    (" =?utf-8?q?a?= ", " =?utf-8?q?b=5C?= "),
]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name, filename", ENCODED_WORDS)
def test_encoded_words_in_names_and_filenames(style, name, filename):
    params = [
        MultipartParam(name, fileobj=io.BytesIO(b"d"), filename=filename, style=style),
        MultipartParam(name, b"text", style=style),
        (name, "a pair"),
    ]
    check_every_parser(params, [sent(name, filename, style)] + [sent(name, None, style)] * 2, style)


# Every ASCII character, and the characters str.splitlines takes for line ends.
SWEEP = [chr(code) for code in range(128)] + ["\x85", "\u2028", "\u2029", "\ufeff"]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("char", SWEEP, ids=lambda c: f"U+{ord(c):04X}")
def test_every_character_alone_and_inside(style, char):
    if style == "html5" and char == "\x00":
        with pytest.raises(ValueError, match="NUL"):
            MultipartParam(char, b"v", style=style)
        return
    params, intended = [], []
    for text in (char, f"a{char}b", f"{char}{char}", f" {char} "):
        params += [MultipartParam(text, fileobj=io.BytesIO(b"d"), filename=text, style=style),
                   MultipartParam(text, b"v", style=style), (text, "pair")]
        intended += [sent(text, text, style), sent(text, None, style), sent(text, None, style)]
    check_every_parser(params, intended, style)


# -- (b) any names and filenames -------------------------------------------------------

SPICE = ["\\", '"', ";", "=", "'", "\r", "\n", "\r\n", "\t", " ", "é", "\N{SNOWMAN}", "\U0001f600",
         "=?", "?=", "=?utf-8?q?", "=?utf-8?b?", "=5C", "%22", "%5C", "%0D", "&#92;", "filename=",
         "name=", "*", "\x7f", "\x01", "C:\\", "\\\\"]
texts = st.lists(
    st.sampled_from(SPICE) | st.text(st.characters(blacklist_categories=("Cs",)), max_size=4),
    max_size=8,
).map("".join)
# NUL is refused in html5 style (a ValueError; see test_hostile).
html5_texts = texts.map(lambda t: t.replace("\x00", ""))


@st.composite
def parts(draw, style):
    kind = draw(st.sampled_from(["pair", "text", "text with filename", "file", "file without filename"]))
    text = html5_texts if style == "html5" else texts
    name = draw(text)
    filename = draw(text) if kind in ("text with filename", "file") else None
    if kind == "pair":
        # multipart_encode renders a run of plain (name, value) pairs by a
        # fast path of its own.
        param = (name, draw(st.text(max_size=20) | st.binary(max_size=20)))
    elif kind.startswith("text"):
        param = MultipartParam(name, draw(st.binary(max_size=20)), filename=filename, style=style)
    else:
        param = MultipartParam(name, fileobj=io.BytesIO(draw(st.binary(max_size=20))),
                               filename=filename, style=style)
    return param, sent(name, filename, style)


@given(data=st.data(), style=st.sampled_from(STYLES))
def test_every_parser_sees_exactly_the_parts_sent(data, style):
    drawn = data.draw(st.lists(parts(style), min_size=1, max_size=5))
    check_every_parser([param for param, _ in drawn], [part for _, part in drawn], style)


@given(name=texts, filename=texts, style=st.sampled_from(STYLES))
def test_no_backslash_and_no_stray_encoded_word(name, filename, style):
    if style == "html5":
        name, filename = name.replace("\x00", ""), filename.replace("\x00", "")
    header = MultipartParam(name, fileobj=io.BytesIO(b""), filename=filename, style=style).encode_hdr("B")
    disposition = header.split(b"\r\n")[1]
    assert b"\\" not in disposition
    for value in re.findall(rb'"([^"]*)"', disposition):
        assert b"=?" not in value or re.fullmatch(rb"=\?utf-8\?b\?[A-Za-z0-9+/=]*\?=", value)


# -- (c) the receiver saves under the filename sent --------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_receiver_saves_injection_under_a_safe_name(style, tmp_path):
    save_dir = tmp_path / "saved"
    params = [
        MultipartParam("x\\", fileobj=io.BytesIO(b"payload"), filename="; filename=evil.php; a=", style=style),
        MultipartParam("photo\\", fileobj=io.BytesIO(b"jpeg"), filename="cat.jpg", style=style),
    ]
    intended = [sent("x\\", "; filename=evil.php; a=", style), sent("photo\\", "cat.jpg", style)]
    datagen, headers = multipart_encode(params)
    with serving_in_thread(ReceiverServer(save_dir=str(save_dir), quiet=True)) as server:
        request = urllib.request.Request(server.url, data=b"".join(datagen), headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1
        with opener.open(request, timeout=30) as response:
            answer = json.load(response)
    fields = answer["fields"]
    assert [(f["name"], f["filename"]) for f in fields] == intended
    assert [f["saved_as"] for f in fields] == [safe_filename(p.filename) for p in intended]
    assert "evil.php" not in [f["saved_as"] for f in fields]
    assert sorted(os.listdir(save_dir)) == sorted(f["saved_as"] for f in fields)
    assert (save_dir / fields[0]["saved_as"]).read_bytes() == b"payload"
    assert (save_dir / fields[1]["saved_as"]).read_bytes() == b"jpeg"
    assert not (save_dir / "evil.php").exists()
