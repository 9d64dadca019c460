"""Properties of poster.encode, checked with hypothesis on both backends."""

import io

from hypothesis import assume, given, strategies as st

from poster.encode import BoundaryCollisionError, MultipartParam, get_body_size, multipart_encode

from helpers import parse_with_python_multipart, parse_with_werkzeug

names = st.text(min_size=1, max_size=30)
contents = st.binary(max_size=3000)
blocksizes = st.integers(min_value=1, max_value=5000)


@st.composite
def any_part(draw, style="poster", name=names, filename=st.none() | names):
    kind = draw(st.sampled_from(["text", "bytes", "file"]))
    filetype = draw(st.none() | st.sampled_from(["text/csv", "application/octet-stream", "image/png"]))
    if kind == "text":
        return MultipartParam(draw(name), draw(st.text(max_size=200)), filename=draw(filename), filetype=filetype, style=style)
    if kind == "bytes":
        return MultipartParam(draw(name), draw(contents), filename=draw(filename), filetype=filetype, style=style)
    return MultipartParam(draw(name), fileobj=io.BytesIO(draw(contents)), filename=draw(filename),
                          filetype=filetype, style=style)


safe_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\r\n\x00'), min_size=1, max_size=30)


@given(parts=st.lists(any_part(name=safe_text, filename=st.none() | safe_text), max_size=8),
       style=st.sampled_from(["poster", "html5"]), blocksize=blocksizes)
def test_length_is_content_length_and_reset_reproduces(parts, style, blocksize):
    parts = [MultipartParam(p.name, p.value, p.filename, p.filetype, fileobj=p.fileobj, style=style) for p in parts]
    datagen, headers = multipart_encode(parts, blocksize=blocksize)
    body = b"".join(datagen)
    assert len(datagen) == len(body) == int(headers["Content-Length"])
    datagen.reset()
    assert b"".join(datagen) == body


@given(parts=st.lists(any_part(), max_size=6), blocksize=blocksizes)
def test_any_names_poster_style_exact_length(parts, blocksize):
    datagen, headers = multipart_encode(parts, blocksize=blocksize)
    body = b"".join(datagen)
    assert len(body) == int(headers["Content-Length"])
    for line in body.split(b"\r\n\r\n")[0].split(b"\r\n"):
        assert b"\n" not in line and b"\r" not in line


# Names and filenames as the html5 property needs them: no '"', CR, LF, '\\'
# or "=?" (the escapes of those are not undone by parsers; what each parser
# sees for them is checked in test_header_params), and no NUL (refused).
html5_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters='"\r\n\x00\\'), min_size=1, max_size=30
).filter(lambda t: "=?" not in t)
content_types = st.sampled_from(["text/csv", "application/octet-stream", "image/png", "application/json"])


@st.composite
def html5_fields(draw):
    fields = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(html5_text)
        if draw(st.booleans()):
            fields.append({"name": name, "filename": draw(html5_text),
                           "content_type": draw(content_types), "data": draw(contents)})
        else:
            fields.append({"name": name, "filename": None, "content_type": None,
                           "data": draw(st.text(max_size=300)).encode("utf-8")})
    return fields


def _params(fields):
    params = []
    for field in fields:
        if field["filename"] is None:
            params.append(MultipartParam(field["name"], field["data"], style="html5"))
        else:
            params.append(MultipartParam(field["name"], fileobj=io.BytesIO(field["data"]),
                                         filename=field["filename"], filetype=field["content_type"], style="html5"))
    return params


@given(fields=html5_fields(), blocksize=blocksizes)
def test_html5_round_trip_python_multipart(fields, blocksize):
    datagen, headers = multipart_encode(_params(fields), blocksize=blocksize)
    parsed = parse_with_python_multipart(b"".join(datagen), headers["Content-Type"])
    assert len(parsed) == len(fields)
    for field, part in zip(fields, parsed):
        assert part["name"].decode("utf-8") == field["name"]
        assert (part["filename"] and part["filename"].decode("utf-8")) == field["filename"]
        assert (part["content_type"] and part["content_type"].decode()) == field["content_type"]
        assert part["data"] == field["data"]


def _sort_key(field):
    return (field["filename"] is not None, field["name"], field["filename"] or "", field["data"])


@given(fields=html5_fields(), blocksize=blocksizes)
def test_html5_round_trip_werkzeug(fields, blocksize):
    # werkzeug reads %22 in a quoted value as the '"' browsers escape that way,
    # so a name that holds the three characters "%22" cannot come back as sent.
    assume(not any("%22" in f["name"] or "%22" in (f["filename"] or "") for f in fields))
    datagen, headers = multipart_encode(_params(fields), blocksize=blocksize)
    parsed = parse_with_werkzeug(b"".join(datagen), headers["Content-Type"])
    expected = [dict(f) for f in fields]
    assert sorted(parsed, key=_sort_key) == sorted(expected, key=_sort_key)


boundaries = st.text("ab-", min_size=1, max_size=4)
colliding_content = st.lists(st.sampled_from([b"a", b"b", b"-", b"\n", b"\r", b"--", b"x"]), max_size=60).map(b"".join)


@given(boundary=boundaries, content=colliding_content, blocksize=st.integers(1, 12), as_file=st.booleans())
def test_collision_always_detected_and_never_emitted(boundary, content, blocksize, as_file):
    delimiter = b"--" + boundary.encode()
    # At the start, or after a line break: CR or LF.
    collides = any(content.startswith(delimiter, at) and (at == 0 or content[at - 1] in b"\r\n")
                   for at in range(len(content)))
    if as_file:
        param = MultipartParam("f", fileobj=io.BytesIO(content), filename="f")
    else:
        param = MultipartParam("f", content)
    datagen, _ = multipart_encode([param], boundary=boundary, blocksize=blocksize)
    sent = []
    try:
        for block in datagen:
            sent.append(block)
    except BoundaryCollisionError:
        assert collides
        body = b"".join(sent)
        header_end = body.find(b"\r\n\r\n")
        emitted = b"\n" + (body[header_end + 4:] if header_end >= 0 else b"")
        assert all(emitted.find(b + delimiter) < 0 for b in (b"\n", b"\r"))
    else:
        assert not collides


# Content built to make parsers see a part poster did not send.
forged_content = st.lists(st.sampled_from([
    b"a", b"B", b" ", b"\t", b"\r", b"\n", b"\r\n", b"-", b"--", b"--B", b"--B--",
    b'Content-Disposition: form-data; name="evil"', b"\r\n\r\n",
]), max_size=40).map(b"".join)


@given(content=forged_content, blocksize=st.integers(1, 64), as_file=st.booleans())
def test_every_body_that_leaves_parses_as_the_parts_sent(content, blocksize, as_file):
    """Whatever its content, a body that is not refused for a collision reads
    back as the one part sent: with werkzeug, python-multipart and email."""
    import email
    import email.policy

    fileobj = io.BytesIO(content) if as_file else None
    param = MultipartParam("f", None if as_file else content, filename="f.bin",
                           filetype="application/octet-stream", fileobj=fileobj)
    datagen, headers = multipart_encode([param], boundary="B", blocksize=blocksize)
    try:
        body = b"".join(datagen)
    except BoundaryCollisionError:
        return
    content_type = headers["Content-Type"]
    expected = [{"name": "f", "filename": "f.bin", "content_type": "application/octet-stream", "data": content}]
    assert parse_with_werkzeug(body, content_type) == expected
    parsed = parse_with_python_multipart(body, content_type)
    assert [(part["name"], part["data"]) for part in parsed] == [(b"f", content)]
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
                                       policy=email.policy.HTTP)
    assert [part.get_param("name", header="content-disposition") for part in message.iter_parts()] == ["f"]


@given(content=st.binary(max_size=2000), blocksize=blocksizes, split=st.integers(0, 2000))
def test_file_parts_read_from_any_position(content, blocksize, split):
    assume(split <= len(content))
    f = io.BytesIO(content)
    f.seek(split)
    param = MultipartParam("f", fileobj=f)
    blocks = list(param.iter_encode("0123456789abcdef0123456789abcdef", blocksize))
    assert b"".join(blocks[1:-1]) == content[split:]
    # Blocks of blocksize, or one byte more than the delimiter when that is
    # more (so a colliding delimiter never leaves in part).
    assert all(len(b) <= max(blocksize, 35) for b in blocks[1:-1])


# Pairs as multipart_encode takes them: plain text fields (kept as rendered
# runs), and everything that leaves a run: names to quote, lone surrogates,
# values that hold the boundary or exceed the block size, non-tuple pairs.
pair_names = st.text(max_size=12) | st.sampled_from(["a", 'q"', "\\", "n\u00e9", "\ud800", "x\r\ny"])
pair_values = (
    st.text(max_size=40)
    | st.binary(max_size=40)
    | st.sampled_from(["--b", "a\n--b--", "\ud800", 12, bytearray(b"ba"), "x" * 300])
)
pair_items = st.tuples(pair_names, pair_values) | st.builds(list, st.tuples(pair_names, pair_values))


def _encode_outcome(make_body):
    """The body's bytes, or where and what it raised."""
    try:
        body = make_body()
    except Exception as exc:
        return ("raised at encode", type(exc), str(exc))
    blocks = []
    try:
        for block in body:
            blocks.append(block)
    except Exception as exc:
        return ("raised", type(exc), str(exc), b"".join(blocks))
    return ("ok", b"".join(blocks), len(body))


@given(items=st.lists(pair_items, max_size=12), style=st.sampled_from(["poster", "html5"]),
       blocksize=st.integers(1, 400))
def test_pairs_encode_as_their_params_would(items, style, blocksize):
    from poster.encode import MultipartBody

    fast = _encode_outcome(lambda: multipart_encode(items, "b", style=style, blocksize=blocksize)[0])
    slow = _encode_outcome(lambda: MultipartBody(
        MultipartParam.from_params(items, style=style), "b", blocksize=blocksize))
    if fast[0] == "raised" and slow[0] == "raised":
        # The same error, after the same bytes (blocks may split differently).
        assert fast[:3] == slow[:3]
        assert fast[3] == slow[3][: len(fast[3])] or slow[3] == fast[3][: len(slow[3])]
    else:
        assert fast == slow
    if fast[0] == "ok" and style == "poster":
        assert get_body_size(items, "b") == fast[2]
