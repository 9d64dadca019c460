"""poster.encode: poster 0.8.1's documented behaviour, in bytes, and the golden vectors."""

import base64
import io
import os

import pytest

import poster
from poster.encode import (
    BodyConsumedError,
    BodyFrozenError,
    BoundaryCollisionError,
    MultipartBody,
    MultipartParam,
    encode_and_quote,
    encode_file_header,
    encode_string,
    gen_boundary,
    get_body_size,
    get_headers,
    multipart_encode,
)

from helpers import golden_cases, golden_params

PLAIN = b"Content-Type: text/plain; charset=utf-8\r\n"


@pytest.mark.parametrize("case", golden_cases(), ids=lambda c: c["boundary"][:12])
def test_golden_vectors_byte_exact(case):
    datagen, headers = multipart_encode(golden_params(case), boundary=case["boundary"])
    body = b"".join(datagen)
    assert body == base64.b64decode(case["body"])
    assert headers == case["headers"]
    assert len(datagen) == len(body)


def test_golden_vectors_from_pairs():
    # The value-only cases again, given as (name, value) pairs.
    checked = 0
    for case in golden_cases():
        if all(p["kind"] == "value" and "filetype" not in p for p in case["params"]):
            pairs = [(p["name"], base64.b64decode(p["value"])) for p in case["params"]]
            datagen, headers = multipart_encode(pairs, boundary=case["boundary"])
            assert b"".join(datagen) == base64.b64decode(case["body"])
            assert headers == case["headers"]
            checked += 1
    assert checked >= 3


# -- encode_string / encode_file_header (poster 0.8.1's tests) ----------------

def test_encode_string_simple():
    assert encode_string("XXXXXXXXX", "foo", "bar") == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"\r\n'
        + PLAIN + b"\r\nbar\r\n"
    )


@pytest.mark.parametrize("name", ["foo baz", "files[]", "a b[c]"])
def test_names_with_spaces_and_brackets_are_sent_as_they_are(name):
    assert f'name="{name}"'.encode() in encode_string("XXXXXXXXX", name, "bar")


def test_unicode_name_is_an_rfc2047_word():
    assert b'name="=?utf-8?b?4piD?="' in encode_string("XXXXXXXXX", "\N{SNOWMAN}", "bar")


def test_long_unicode_name_is_never_folded():
    header = encode_string("XX", "\N{SNOWMAN}" * 100, "v").split(b"\r\n")[1]
    assert header.startswith(b'Content-Disposition: form-data; name="=?utf-8?b?')
    assert header.count(b"=?utf-8?b?") == 1
    assert base64.b64decode(header.split(b"?b?")[1].split(b"?=")[0]) == ("\N{SNOWMAN}" * 100).encode()


def test_long_ascii_name_is_never_folded():
    name = "n" * 500
    assert f'name="{name}"\r\n'.encode() in encode_string("XX", name, "v")


def test_name_keeps_leading_white_space():
    assert b'name="  lead"' in encode_string("XX", "  lead", "v")


def test_unicode_value_is_utf8():
    assert b"\r\n\r\n\xe2\x98\x83\r\n" in encode_string("XXXXXXXXX", "foo", "\N{SNOWMAN}")


@pytest.mark.parametrize("value, sent", [(42, b"42"), (1.5, b"1.5"), (bytearray(b"ab"), b"ab"),
                                          (memoryview(b"cd"), b"cd"), (b"\x00\xff", b"\x00\xff")])
def test_value_types(value, sent):
    assert encode_string("XX", "v", value).endswith(b"\r\n\r\n" + sent + b"\r\n")


def test_encode_file_header_simple():
    assert encode_file_header("XXXXXXXXX", "foo", 42) == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"\r\n' + PLAIN + b"\r\n"
    )


def test_encode_file_header_content_type():
    assert encode_file_header("XXXXXXXXX", "foo", 42, filetype="image/jpeg") == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )


def test_encode_file_header_filename():
    assert encode_file_header("XXXXXXXXX", "foo", 42, "test.txt") == (
        b'--XXXXXXXXX\r\nContent-Disposition: form-data; name="foo"; filename="test.txt"\r\n'
        + PLAIN + b"\r\n"
    )


# poster 0.8.1's XML character references ("&#9731;") stand for every
# character a parser could misread: no backslash escape is ever written.
@pytest.mark.parametrize("filename, sent", [
    ("test file.txt", b'filename="test file.txt"'),
    ('test"file.txt', b'filename="test&#34;file.txt"'),
    ("\N{SNOWMAN}.txt", b'filename="&#9731;.txt"'),
    ("it's.txt", b'filename="it&#39;s.txt"'),
    ("back\\slash", b'filename="back&#92;slash"'),
    ("a\r\nb\t", b'filename="a&#13;&#10;b&#9;"'),
    ("nul\x00\x7f", b'filename="nul&#0;&#127;"'),
    ("a=?b=c?", b'filename="a&#61;?b=c?"'),
])
def test_filename_quoting_poster_style(filename, sent):
    assert sent in encode_file_header("XX", "foo", 1, filename)


def test_bytes_names_and_filenames_are_utf8():
    assert encode_file_header("XX", b"f\xc3\xa9", 1, b"\xe2\x98\x83") == encode_file_header("XX", "fé", 1, "\N{SNOWMAN}")


def test_encode_and_quote():
    assert encode_and_quote(None) is None
    assert encode_and_quote("\N{SNOWMAN}") == "%E2%98%83"
    assert encode_and_quote(b"\xe2\x98\x83") == "%E2%98%83"
    assert encode_and_quote("a b/c") == "a+b%2Fc"


def test_gen_boundary_is_random_hex():
    seen = {gen_boundary() for _ in range(600)}  # more than one fetch of random bytes
    assert len(seen) == 600
    for boundary in seen:
        assert len(boundary) == 32
        int(boundary, 16)


def test_gen_boundary_in_threads_never_repeats():
    import threading

    seen = []

    def make():
        seen.extend(gen_boundary() for _ in range(2000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == len(seen) == 8000


def test_gen_boundary_from_a_signal_handler_during_a_refill():
    # The handler runs while the main thread is fetching random bytes:
    # it must get a boundary of its own, not wait for the main thread.
    import subprocess
    import sys

    code = """if True:
        import os, signal
        import poster.encode as encode
        real = os.urandom
        def urandom(n):
            os.urandom = real
            os.kill(os.getpid(), signal.SIGUSR1)
            return real(n)
        got = []
        signal.signal(signal.SIGUSR1, lambda *args: got.append(encode.gen_boundary()))
        encode._boundaries.drop()
        os.urandom = urandom
        got.append(encode.gen_boundary())
        assert len(got) == len(set(got)) == 2, got
        print("ok")
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_makes_boundaries_of_its_own():
    gen_boundary()  # the parent holds random digits it has not handed out
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write_end, " ".join(gen_boundary() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as child:
        theirs = set(child.read().decode().split())
    ours = {gen_boundary() for _ in range(3)}
    assert len(theirs) == 3 and not theirs & ours


# -- html5 style ---------------------------------------------------------------

def test_html5_style_utf8_and_percent_escapes():
    param = MultipartParam('na"me\r\n\N{SNOWMAN}', b"v", filename='f"i\rl\ne\N{SNOWMAN}.txt', style="html5")
    header = param.encode_hdr("XX")
    assert header == (
        b"--XX\r\nContent-Disposition: form-data; "
        b'name="na%22me%0D%0A\xe2\x98\x83"; filename="f%22i%0Dl%0Ae\xe2\x98\x83.txt"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )


def test_html5_text_field_has_no_content_type():
    assert MultipartParam("a", "b", style="html5").encode("XX") == (
        b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n'
    )


def test_html5_style_through_multipart_encode():
    datagen, _ = multipart_encode({"é": "v"}, boundary="XX", style="html5")
    assert b'name="\xc3\xa9"' in b"".join(datagen)


def test_unknown_style():
    with pytest.raises(ValueError, match="style"):
        MultipartParam("a", "b", style="html")
    with pytest.raises(ValueError, match="style"):
        multipart_encode({"a": "b"}, style="browser")


# -- MultipartParam ----------------------------------------------------------------

def test_from_params_pairs_and_dict():
    expected = [MultipartParam("a", "b"), MultipartParam("c", "d")]
    assert MultipartParam.from_params([("a", "b"), ("c", "d")]) == expected
    assert sorted(MultipartParam.from_params({"c": "d", "a": "b"})) == expected
    assert MultipartParam.from_params((("a", "b"), MultipartParam("c", "d"))) == expected


def test_from_params_mismatched_name_is_assertion_and_value_error():
    with pytest.raises(AssertionError):
        MultipartParam.from_params([("baz", MultipartParam("foo", "bar"))])
    with pytest.raises(ValueError, match="'foo'.*'baz'"):
        MultipartParam.from_params([("baz", MultipartParam("foo", "bar"))])


def test_from_params_matching_name():
    param = MultipartParam("foo", "bar")
    assert MultipartParam.from_params([("foo", param)])[0] is param


def test_from_params_file_object(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"jpeg data")
    with open(path, "rb") as f:
        (param,) = MultipartParam.from_params([("pic", f)])
        assert param.filename == "photo.jpg"  # the base name: 0.8.1 sent the whole path
        assert param.filetype == "image/jpeg"
        assert param.filesize == 9
        assert param.encode("XX").endswith(b"\r\n\r\njpeg data\r\n")


def test_from_params_bytesio_has_no_filename():
    (param,) = MultipartParam.from_params([("f", io.BytesIO(b"data"))])
    assert param.filename is None and param.filetype is None
    assert param.encode("XX") == b'--XX\r\nContent-Disposition: form-data; name="f"\r\n' + PLAIN + b"\r\ndata\r\n"


def test_from_params_duplicate_keys_keep_order():
    datagen, _ = multipart_encode([("key", "value1"), ("key", "value2")], "XYZXYZXYZ")
    body = b"".join(datagen)
    assert body.index(b"value1") < body.index(b"value2")
    assert body.count(b'name="key"') == 2


def test_params_equality_and_sorting():
    a, b, c = MultipartParam("a", "2"), MultipartParam("b", "1"), MultipartParam("a", "1")
    assert sorted([b, a, c]) == [c, a, b]
    assert MultipartParam("a", "1") == MultipartParam("a", b"1")
    assert MultipartParam("a", "1") != MultipartParam("a", "1", filename="x")
    f = io.BytesIO(b"x")
    assert MultipartParam("a", fileobj=f) == MultipartParam("a", fileobj=f)
    assert MultipartParam("a", fileobj=f) != MultipartParam("a", fileobj=io.BytesIO(b"x"))
    sorted([MultipartParam("a", fileobj=f), MultipartParam("a", "1"), MultipartParam("a", filesize=3)])


def test_get_size_matches_encode_without_reading():
    f = io.BytesIO(b"x" * 1000)
    param = MultipartParam("f", fileobj=f, filename="f.bin")
    size = param.get_size("boundary")
    assert f.tell() == 0
    assert size == len(param.encode("boundary"))


def test_iter_encode_blocks():
    param = MultipartParam("f", fileobj=io.BytesIO(b"x" * 10000), filename="f")
    blocks = list(param.iter_encode("XX", blocksize=4096))
    assert blocks[0] == param.encode_hdr("XX")
    assert [len(b) for b in blocks[1:-1]] == [4096, 4096, 1808]
    assert blocks[-1] == b"\r\n"


def test_iter_encode_value_is_one_block():
    param = MultipartParam("v", "text")
    assert list(param.iter_encode("XX")) == [param.encode("XX")]


def test_file_content_starts_at_the_position_when_the_param_was_made():
    f = io.BytesIO(b"skipme:payload")
    f.seek(7)
    param = MultipartParam("f", fileobj=f)
    assert param.filesize == 7
    assert param.encode("XX").endswith(b"\r\n\r\npayload\r\n")
    param.reset()
    assert f.tell() == 7
    assert param.encode("XX").endswith(b"\r\n\r\npayload\r\n")


def _opened(kind, path, data):
    return {"fileio": lambda: io.FileIO(path, "rb"), "buffered": lambda: open(path, "rb"),
            "random": lambda: open(path, "r+b"), "bytesio": lambda: io.BytesIO(data)}[kind]()


@pytest.mark.parametrize("kind", ["fileio", "buffered", "random", "bytesio"])
def test_content_comes_from_where_the_file_was_and_leaves_it_after(tmp_path, kind):
    data = os.urandom(300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    expected = b"".join(multipart_encode([MultipartParam("f", fileobj=io.BytesIO(data[1000:201_000]))], "XX")[0])
    with _opened(kind, path, data) as f:
        f.seek(1000)
        param = MultipartParam("f", fileobj=f, filesize=200_000)
        f.seek(5)  # moved since the param was made
        datagen, _ = multipart_encode([param], "XX", blocksize=65536)
        assert b"".join(datagen) == expected
        assert f.tell() == 201_000  # where reading the content leaves it
        datagen.reset()
        assert b"".join(datagen) == expected


def test_content_of_a_buffered_file_that_read_ahead(tmp_path):
    data = os.urandom(100_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert f.read(10) == data[:10]  # the buffer now holds bytes beyond 10
        datagen, _ = multipart_encode([MultipartParam("f", fileobj=f)], "XX")
        body = b"".join(datagen)
    assert body == b"".join(multipart_encode([MultipartParam("f", fileobj=io.BytesIO(data[10:]))], "XX")[0])


def test_writes_not_yet_flushed_are_part_of_the_content(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0" * 10_000)
    with open(path, "r+b") as f:
        param = MultipartParam("f", fileobj=f)  # at 0: 10 000 bytes
        f.seek(100)
        f.write(b"new bytes")  # held in the buffer, not yet in the file
        body = b"".join(multipart_encode([param], "XX")[0])
    assert b"0" * 100 + b"new bytes" + b"0" * 9891 in body


def test_a_file_closed_while_its_body_is_read_never_lends_its_number_to_another(tmp_path):
    data, other = os.urandom(300_000), b"other file " * 30_000
    (tmp_path / "f.bin").write_bytes(data)
    (tmp_path / "other.bin").write_bytes(other)
    expected = b"".join(multipart_encode([MultipartParam("f", fileobj=io.BytesIO(data))], "XX")[0])
    f = open(tmp_path / "f.bin", "rb")
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=f)], "XX")
    head = next(datagen) + next(datagen)
    number = f.fileno()
    f.close()
    with open(tmp_path / "other.bin", "rb") as g:
        assert g.fileno() == number  # the freed number, taken again
        rest = b"".join(datagen)
    assert head + rest == expected  # the file's own bytes, read by a descriptor of its own


class UpperRaw(io.RawIOBase):
    """A raw stream over a real file that reads its bytes upper-cased."""

    def __init__(self, path):
        self._file = io.FileIO(path, "rb")

    def readable(self):
        return True

    def seekable(self):
        return True

    def fileno(self):
        return self._file.fileno()

    def seek(self, offset, whence=0):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def readinto(self, buffer):
        data = self._file.read(len(buffer)).upper()
        buffer[: len(data)] = data
        return len(data)

    def close(self):
        self._file.close()
        super().close()


def test_a_buffered_reader_over_another_raw_stream_is_read_through_it(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"lower case text\n" * 10_000)
    with io.BufferedReader(UpperRaw(path)) as f:
        body = b"".join(multipart_encode([MultipartParam("f", fileobj=f)], "XX")[0])
    assert b"LOWER CASE TEXT\n" * 10_000 in body and b"lower" not in body


class TellOnly:
    def __init__(self, data):
        self._data = io.BytesIO(data)

    def read(self, size=-1):
        return self._data.read(size)

    def tell(self):
        return self._data.tell()


def test_a_file_with_tell_and_no_seek_is_read_as_it_comes():
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=TellOnly(b"0123456789"), filesize=10)], "XX")
    assert b"\r\n\r\n0123456789\r\n" in b"".join(datagen)


def test_params_cannot_be_set_on_a_body():
    datagen, _ = multipart_encode([("a", "1")], "XX")
    with pytest.raises(BodyFrozenError, match="multipart_encode"):
        datagen.params = (MultipartParam("a", "1"),)
    assert b"".join(datagen) == b"".join(multipart_encode([("a", "1")], "XX")[0])


def test_blocks_stay_near_blocksize_when_text_runs_and_params_alternate():
    items = []
    for i in range(200):
        items += [(f"t{i}", "v" * 40), (f"n{i}", 12345)]  # a number is a param of its own
    datagen, _ = multipart_encode(items, "XX", blocksize=1024)
    largest_part = max(len(MultipartParam(*item).encode("XX")) for item in items)
    assert max(len(block) for block in datagen) < 1024 + largest_part


def test_filesize_limits_the_content():
    param = MultipartParam("f", fileobj=io.BytesIO(b"0123456789"), filesize=4)
    assert param.encode("XX").endswith(b"\r\n\r\n0123\r\n")


# -- multipart_encode ---------------------------------------------------------------

def test_multipart_encode_simple():
    datagen, headers = multipart_encode([("key", "value1"), ("key", "value2")], "XYZXYZXYZ")
    assert headers == {"Content-Type": "multipart/form-data; boundary=XYZXYZXYZ", "Content-Length": "231"}
    assert len(b"".join(datagen)) == 231


def test_multipart_encode_empty():
    datagen, headers = multipart_encode([], "XX")
    assert b"".join(datagen) == b"--XX--\r\n"
    assert headers["Content-Length"] == "8"


def test_boundary_is_quoted_exactly_once_everywhere():
    datagen, headers = multipart_encode({"a": "b"}, boundary="a b/c")
    body = b"".join(datagen)
    assert headers["Content-Type"] == "multipart/form-data; boundary=a+b%2Fc"
    assert body.startswith(b"--a+b%2Fc\r\n") and body.endswith(b"--a+b%2Fc--\r\n")
    assert get_headers({"a": "b"}, "a b/c") == headers
    assert get_body_size({"a": "b"}, "a b/c") == len(body)
    assert MultipartParam("a", "b").encode_hdr("a b/c").startswith(b"--a+b%2Fc\r\n")


def test_boundary_as_bytes():
    assert b"".join(multipart_encode({"a": "b"}, boundary=b"XX")[0]) == b"".join(multipart_encode({"a": "b"}, boundary="XX")[0])


def test_default_boundary_is_fresh():
    _, h1 = multipart_encode({"a": "b"})
    _, h2 = multipart_encode({"a": "b"})
    assert h1["Content-Type"] != h2["Content-Type"]


@pytest.mark.parametrize("boundary", ["", b""])
def test_empty_boundary(boundary):
    with pytest.raises(ValueError, match="boundary must not be empty"):
        multipart_encode({"a": "b"}, boundary=boundary)
    with pytest.raises(ValueError):
        get_headers({"a": "b"}, boundary)


def test_bytesio_files_and_reset():
    params = [("a", "1"), MultipartParam("f", fileobj=io.BytesIO(b"file data" * 1000), filename="f.txt")]
    datagen, headers = multipart_encode(params, "XX", blocksize=1000)
    first = b"".join(datagen)
    with pytest.raises(BodyConsumedError, match=r"reset\(\)"):  # 0.8.1 yielded nothing: re-sends hung
        b"".join(datagen)
    datagen.reset()
    assert b"".join(datagen) == first
    assert len(first) == int(headers["Content-Length"]) == len(datagen)


def test_reset_in_the_middle():
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(os.urandom(100_000)))], "XX", blocksize=1000)
    whole = b"".join(datagen)
    datagen.reset()
    next(datagen), next(datagen), next(datagen)
    datagen.reset()
    assert b"".join(datagen) == whole


def test_next_spelling_of_0_8_1():
    datagen, _ = multipart_encode({"a": "b"}, "XX")
    assert datagen.next() + b"".join(datagen) == encode_string("XX", "a", "b") + b"--XX--\r\n"


def test_callbacks():
    f = io.BytesIO(b"z" * 10_000)
    part_calls, body_calls = [], []
    fparam = MultipartParam("f", fileobj=f, cb=lambda p, cur, tot: part_calls.append((p, cur, tot)))
    datagen, headers = multipart_encode(
        [("a", "b"), fparam], "XX", cb=lambda p, cur, tot: body_calls.append((p, cur, tot)), blocksize=4096
    )
    total = int(headers["Content-Length"])
    b"".join(datagen)
    part_total = fparam.get_size("XX")
    assert part_calls[-1] == (fparam, part_total, part_total)
    assert all(tot == part_total for _, _, tot in part_calls)
    assert [cur for _, cur, _ in part_calls] == sorted(cur for _, cur, _ in part_calls)
    assert body_calls[-1] == (None, total, total)
    assert body_calls[0][0].name == "a"
    assert any(p is fparam for p, _, _ in body_calls)
    assert [cur for _, cur, _ in body_calls] == sorted(cur for _, cur, _ in body_calls)


# -- text fields given as pairs -------------------------------------------------------
# multipart_encode renders runs of them without making a param for each.

def test_params_of_pairs_are_made_on_first_access_and_then_encoded():
    pairs = [(f"f{i}", f"v{i}") for i in range(500)] + [("n\u00e9", b"\xff")]
    datagen, _ = multipart_encode(pairs, "XX")
    params = datagen.params
    assert params == MultipartParam.from_params(pairs)
    assert datagen.params is params
    seen = []
    params[3].cb = lambda p, current, total: seen.append((p.name, current == total))
    body = b"".join(datagen)
    assert seen == [("f3", True)]
    assert body == b"".join(MultipartBody(MultipartParam.from_params(pairs), "XX"))


def test_params_given_to_the_body_are_a_snapshot():
    params = [MultipartParam("a", "1")]
    body = MultipartBody(params, "XX")
    params.append(MultipartParam("late", "x" * 100))
    assert body.params == params[:1]
    assert len(b"".join(body)) == len(body)


def test_a_callback_set_after_encoding_sees_every_text_field():
    datagen, headers = multipart_encode([("a", "1"), ("b", "2")], "XX")
    total = int(headers["Content-Length"])
    calls = []
    datagen.cb = lambda p, current, all_: calls.append((p and p.name, current, all_))
    b"".join(datagen)
    assert [name for name, _, _ in calls] == ["a", "b", None]
    assert calls[-1] == (None, total, total)


def test_collision_in_a_text_field_stops_before_its_block():
    pairs = [(f"f{i}", "x" * 100) for i in range(50)] + [("bad", "a\n--XX--"), ("after", "y")]
    datagen, _ = multipart_encode(pairs, "XX", blocksize=1000)
    sent = []
    with pytest.raises(BoundaryCollisionError, match="'bad'"):
        for block in datagen:
            sent.append(block)
    before = b"".join(MultipartParam(name, value).encode("XX") for name, value in pairs[:50])
    assert len(sent) > 1 and before.startswith(b"".join(sent))


def test_bad_text_field_still_raises_when_encoded():
    with pytest.raises(ValueError, match="UTF-8"):
        multipart_encode([("a", "1"), ("b", "\ud800")], "XX")


def test_text_fields_come_in_blocks_of_about_blocksize():
    pairs = [(f"f{i}", "v" * 30) for i in range(2000)]
    datagen, headers = multipart_encode(pairs, "XX", blocksize=4096)
    blocks = list(datagen)
    assert len(blocks) > 20
    assert all(len(block) < 2 * 4096 for block in blocks)
    assert sum(map(len, blocks)) == int(headers["Content-Length"])


def test_param_callback_on_iter_encode():
    calls = []
    param = MultipartParam("f", fileobj=io.BytesIO(b"q" * 9000), cb=lambda p, c, t: calls.append((c, t)))
    list(param.iter_encode("XX", 4096))
    total = param.get_size("XX")
    assert calls[-1] == (total, total)
    assert [c for c, _ in calls] == sorted(c for c, _ in calls)


def test_many_files_from_file_hold_no_descriptors(tmp_path):
    paths = []
    for i in range(300):
        path = tmp_path / f"f{i}.txt"
        path.write_bytes(b"%d" % i)
        paths.append(path)
    params = [MultipartParam.from_file(f"f{i}", p) for i, p in enumerate(paths)]
    fds_before = len(os.listdir("/proc/self/fd"))
    datagen, headers = multipart_encode(params, "XX")
    opened = 0
    for _ in datagen:
        opened = max(opened, len(os.listdir("/proc/self/fd")) - fds_before)
    assert opened <= 2
    assert len(os.listdir("/proc/self/fd")) == fds_before
    datagen.reset()
    body = b"".join(datagen)
    assert len(body) == int(headers["Content-Length"])
    assert b'filename="f299.txt"\r\nContent-Type: text/plain\r\n\r\n299\r\n' in body


def test_from_file_pathlike_and_type(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n")
    param = MultipartParam.from_file("csv", path)
    assert (param.filename, param.filetype, param.filesize) == ("data.csv", "text/csv", 4)
    assert param.encode("XX").endswith(b'filename="data.csv"\r\nContent-Type: text/csv\r\n\r\na,b\n\r\n')
    assert MultipartParam.from_file("csv", str(path)) == param


def test_version_and_backend():
    assert isinstance(poster.version, tuple) and len(poster.version) == 3
    assert all(isinstance(part, int) for part in poster.version)
    assert poster.version > (0, 8, 1)
    assert poster.BACKEND in ("cython", "python")
