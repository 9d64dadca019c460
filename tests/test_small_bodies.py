"""A small body leaves as one block: file parts that fit go in whole.

What many small uploads over one connection need: one block is one send
(the clients send an iterable body block by block), and the bytes, the
callbacks and the checks are those of a body sent in pieces.
"""

import io
import os

import pytest

from poster._body import DEFAULT_BLOCKSIZE, SYNC_WHOLE_FILE
from poster.encode import MultipartParam, multipart_encode
from poster.errors import BoundaryCollisionError, ContentSizeError

BOUNDARY = "0123456789abcdef"


def small_file(tmp_path, size=1000, name="small.bin"):
    path = tmp_path / name
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path.write_bytes(data)
    return path, data


def expected(fields, files):
    delimiter = b"--" + BOUNDARY.encode()
    out = b""
    for name, value in fields:
        out += delimiter + (
            b'\r\nContent-Disposition: form-data; name="%s"\r\n'
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % (name.encode(), value.encode())
        )
    for name, filename, data in files:
        out += delimiter + (
            b'\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" % (name.encode(), filename.encode())
        ) + data + b"\r\n"
    return out + delimiter + b"--\r\n"


def test_fields_and_a_small_file_are_one_block(tmp_path):
    path, data = small_file(tmp_path)
    fields = [("title", "a small upload"), ("description", "one of many")]
    body, headers = multipart_encode(fields + [MultipartParam.from_file("file", str(path))], BOUNDARY)
    blocks = list(body)
    assert len(blocks) == 1
    assert blocks[0] == expected(fields, [("file", "small.bin", data)])
    assert int(headers["Content-Length"]) == len(blocks[0])


@pytest.mark.parametrize("kind", ["path", "file object", "stream", "iterable"])
def test_every_kind_of_small_file_part_goes_in_whole(tmp_path, kind):
    path, data = small_file(tmp_path)
    if kind == "path":
        param = MultipartParam.from_file("file", str(path))
    elif kind == "file object":
        param = MultipartParam("file", fileobj=open(path, "rb"), filename="small.bin")
    elif kind == "stream":
        param = MultipartParam("file", fileobj=io.BytesIO(data), filename="small.bin")
    else:
        param = MultipartParam("file", fileobj=[data[:10], data[10:]], filename="small.bin")
    body, _ = multipart_encode([param, ("after", "it")], BOUNDARY)
    blocks = list(body)
    assert len(blocks) == 1
    delimiter = b"--" + BOUNDARY.encode()
    assert blocks[0].startswith(delimiter + b"\r\n" + param._headers + data + b"\r\n" + delimiter)
    assert blocks[0].endswith(b"\r\n\r\nit\r\n" + delimiter + b"--\r\n")


def test_a_part_larger_than_the_block_is_sent_in_pieces(tmp_path):
    path, data = small_file(tmp_path, size=10_000)
    param = MultipartParam.from_file("file", str(path))
    body, _ = multipart_encode([("a", "b"), param], BOUNDARY, blocksize=4096)
    blocks = list(body)
    # The header goes with the first block of content, the close delimiter with the last.
    assert len(blocks) == 3
    assert blocks[0].endswith(param._headers + data[:4096])
    assert blocks[1] == data[4096:8192]
    assert blocks[2] == data[8192:] + b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
    assert b"".join(blocks) == expected([("a", "b")], [("file", "small.bin", data)])


def test_parts_fill_blocks_up_to_the_blocksize(tmp_path):
    paths = [small_file(tmp_path, size=1500, name=f"f{i}.bin")[0] for i in range(6)]
    body, _ = multipart_encode([MultipartParam.from_file(f"f{i}", str(p)) for i, p in enumerate(paths)],
                               BOUNDARY, blocksize=4096)
    blocks = list(body)
    assert all(len(block) <= 4096 for block in blocks)
    assert len(blocks) < 6
    body.reset()
    assert b"".join(blocks) == b"".join(body)


def test_with_callbacks_a_small_part_is_sent_apart_and_counted_as_before(tmp_path):
    path, data = small_file(tmp_path)
    calls = []
    param = MultipartParam.from_file("file", str(path))
    param.cb = lambda p, current, total: calls.append(("part", current, total))
    body, _ = multipart_encode([param], BOUNDARY, cb=lambda p, current, total: calls.append(
        ("body", current, total)))
    total = len(body)
    head = len(b"--" + BOUNDARY.encode() + b"\r\n") + len(param._headers)
    part = head + len(data) + 2
    # Header, content, close delimiter: a callback that resets the body
    # stops the walk at the next block.
    assert len(list(body)) == 3
    assert calls == [
        ("part", head, part), ("body", head, total),
        ("part", head + len(data), part), ("body", head + len(data), total),
        ("part", part, part), ("body", total, total),
    ]


@pytest.mark.parametrize("before, after", [(100, 100), (150_000, 50_000)])  # in the block; a whole file
def test_a_small_file_holding_the_boundary_never_leaves(tmp_path, before, after):
    path = tmp_path / "collision.bin"
    path.write_bytes(b"x" * before + b"\r\n--" + BOUNDARY.encode() + b"y" * after)
    body, _ = multipart_encode([("a", "b"), MultipartParam.from_file("file", str(path))], BOUNDARY)
    out = []
    with pytest.raises(BoundaryCollisionError):
        for block in body:
            out.append(block)
    assert out == []


@pytest.mark.parametrize("change", [b"more", None])
def test_a_small_file_that_changed_size_never_completes(tmp_path, change):
    path, data = small_file(tmp_path)
    with open(path, "rb") as f:
        param = MultipartParam("file", fileobj=f, filename="small.bin")
        if change is None:
            os.truncate(path, 500)
        else:
            with open(path, "ab") as out:
                out.write(change)
        body, _ = multipart_encode([param], BOUNDARY)
        out = []
        with pytest.raises(ContentSizeError):
            for block in body:
                out.append(block)
        assert out == []


# -- files of up to SYNC_WHOLE_FILE bytes, with the default block size -----------


@pytest.mark.parametrize("kind", ["path", "file object"])
@pytest.mark.parametrize("extra", [0, 1])
def test_a_file_of_at_most_sync_whole_file_bytes_is_one_block(tmp_path, kind, extra):
    # Fields, the part's header, the content, its CRLF and the close
    # delimiter go out together; a byte more and the content comes in
    # blocks of the block size again, the header in the first, the close
    # delimiter in the last.
    path, data = small_file(tmp_path, size=SYNC_WHOLE_FILE + extra)
    fields = [("title", "a small upload")]
    with open(path, "rb") as f:
        param = (MultipartParam.from_file("file", str(path)) if kind == "path"
                 else MultipartParam("file", fileobj=f, filename="small.bin",
                                     filetype="application/octet-stream"))
        body, headers = multipart_encode(fields + [param], BOUNDARY)
        blocks = list(body)
    whole = expected(fields, [("file", "small.bin", data)])
    assert b"".join(blocks) == whole
    assert len(whole) == int(headers["Content-Length"]) == body.tell()
    if extra:
        assert [len(block) for block in blocks[1:-1]] == [DEFAULT_BLOCKSIZE] * 3
        assert blocks[-1] == data[-extra:] + b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
    else:
        assert blocks == [whole]


def test_blocksize_none_is_the_default(tmp_path):
    path, data = small_file(tmp_path, size=200_000)
    param = MultipartParam.from_file("file", str(path))
    body, _ = multipart_encode([param], BOUNDARY, blocksize=None)
    assert body.blocksize == DEFAULT_BLOCKSIZE
    assert list(body) == [expected([], [("file", "small.bin", data)])]
    with pytest.raises(ValueError, match="blocksize must be a positive int"):
        multipart_encode([param], BOUNDARY, blocksize=0)


def test_a_whole_file_before_other_parts_is_one_block_of_its_own(tmp_path):
    path, data = small_file(tmp_path, size=200_000)
    param = MultipartParam.from_file("file", str(path))
    body, _ = multipart_encode([param, ("after", "it")], BOUNDARY)
    blocks = list(body)
    assert len(blocks) == 2
    assert blocks[0] == b"--" + BOUNDARY.encode() + b"\r\n" + param._headers + data + b"\r\n"
    assert blocks[1].startswith(b"--" + BOUNDARY.encode() + b"\r\n")


@pytest.mark.parametrize("how", ["blocksize", "the default's size given", "rate", "stream"])
def test_a_chosen_blocksize_a_rate_or_a_stream_keeps_blocks_of_the_blocksize(tmp_path, how):
    path, data = small_file(tmp_path, size=200_000)
    kwargs = {
        "blocksize": {"blocksize": 32 * 1024},
        "the default's size given": {"blocksize": DEFAULT_BLOCKSIZE},
        "rate": {"rate": 1e12},
        "stream": {},
    }[how]
    size = kwargs.get("blocksize", DEFAULT_BLOCKSIZE)
    param = (MultipartParam("file", fileobj=io.BytesIO(data), filename="small.bin",
                            filetype="application/octet-stream") if how == "stream"
             else MultipartParam.from_file("file", str(path)))
    body, _ = multipart_encode([param], BOUNDARY, **kwargs)
    blocks = list(body)
    assert len(blocks) > 200_000 // size
    assert all(len(block) <= size + len(param._headers) + 64 for block in blocks)
    assert b"".join(blocks) == expected([], [("file", "small.bin", data)])


def test_next_reads_a_whole_file_as_iteration_does(tmp_path):
    path, data = small_file(tmp_path, size=200_000)
    body, _ = multipart_encode([MultipartParam.from_file("file", str(path))], BOUNDARY)
    block = body.next()
    assert block == expected([], [("file", "small.bin", data)])
    with pytest.raises(StopIteration):
        body.next()


def test_callbacks_count_a_whole_file_once(tmp_path):
    path, data = small_file(tmp_path, size=200_000)
    calls = []
    param = MultipartParam.from_file("file", str(path))
    body, _ = multipart_encode([param], BOUNDARY, cb=lambda p, current, total: calls.append((current, total)))
    total = len(body)
    head = len(b"--" + BOUNDARY.encode() + b"\r\n") + len(param._headers)
    assert b"".join(body) == expected([], [("file", "small.bin", data)])
    assert calls == [(head, total), (head + len(data), total), (total, total)]


@pytest.mark.parametrize("change", ["grew", "shrank"])
def test_a_whole_file_that_changed_size_never_completes(tmp_path, change):
    path, data = small_file(tmp_path, size=200_000)
    param = MultipartParam.from_file("file", str(path))
    body, _ = multipart_encode([("a", "b"), param], BOUNDARY)
    if change == "grew":
        with open(path, "ab") as out:
            out.write(b"more")
    else:
        os.truncate(path, 150_000)
    out = []
    with pytest.raises(ContentSizeError):
        for block in body:
            out.append(block)
    assert out == []


def test_a_digest_of_a_part_sent_whole(tmp_path):
    import hashlib

    path, data = small_file(tmp_path)
    param = MultipartParam.from_file("file", str(path))
    body, _ = multipart_encode([param, MultipartParam.digest_of("sha", param)], BOUNDARY, digest="sha256")
    blocks = list(body)
    assert len(blocks) == 1
    assert hashlib.sha256(data).hexdigest().encode() in blocks[0]
    assert body.digests[0] == ("file", hashlib.sha256(data).hexdigest())


def test_write_to_sends_a_small_body_in_one_call(tmp_path):
    path, data = small_file(tmp_path)

    class Recorder:
        def __init__(self):
            self.sent = []

        def sendall(self, data):
            self.sent.append(bytes(data))

    body, _ = multipart_encode([("a", "b"), MultipartParam.from_file("file", str(path))], BOUNDARY)
    sock = Recorder()
    assert body.write_to(sock) == len(body)
    assert sock.sent == [expected([("a", "b")], [("file", "small.bin", data)])]


def test_iter_encode_keeps_header_content_and_crlf_apart(tmp_path):
    path, data = small_file(tmp_path)
    param = MultipartParam.from_file("file", str(path))
    assert list(param.iter_encode(BOUNDARY)) == [param.encode_hdr(BOUNDARY), data, b"\r\n"]


@pytest.mark.parametrize("boundary", ["0123456789abcdef", "A" * 70, "a" * 71, "a-b", "é1", ""])
def test_the_boundary_shortcut_gives_what_quote_plus_gives(boundary):
    import urllib.parse

    from poster._parts import quote_boundary

    if not boundary or len(boundary) > 70:
        with pytest.raises(ValueError):
            quote_boundary(boundary)
    else:
        assert quote_boundary(boundary) == urllib.parse.quote_plus(boundary.encode("utf-8"))


def test_the_filename_and_subtype_shortcuts_change_nothing(tmp_path):
    from poster._parts import _sendable_filename
    from poster._subtypes import check_subtype

    assert _sendable_filename(str(tmp_path / "plain.bin")) == "plain.bin"
    assert _sendable_filename(str(tmp_path / "caf\u00e9.bin")) == "caf\u00e9.bin"
    assert _sendable_filename(os.path.join(os.fsencode(tmp_path), b"caf\xe9.bin")) == "caf%E9.bin"
    assert check_subtype("form-data") == "form-data"
    assert check_subtype("Form-Data") == "form-data"
    with pytest.raises(TypeError):
        check_subtype(b"form-data")
