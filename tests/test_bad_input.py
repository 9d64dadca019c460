"""Bad input gets a clear exception, never a wrong body."""

import io
import os
import threading

import pytest

from poster.encode import (
    BoundaryCollisionError,
    ContentSizeError,
    NotReplayableError,
    SourceChangedError,
    MultipartParam,
    multipart_encode,
)

from helpers import ReadOnlyStream


def test_value_and_fileobj_together():
    with pytest.raises(ValueError, match="Only one of value or fileobj"):
        MultipartParam("a", "b", fileobj=io.BytesIO(b"c"))


def test_text_mode_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello")
    with open(path) as f:
        with pytest.raises(TypeError, match="binary mode"):
            MultipartParam("a", fileobj=f)
    with pytest.raises(TypeError, match="binary mode"):
        MultipartParam("a", fileobj=io.StringIO("hello"))
    with pytest.raises(TypeError, match="binary mode"):
        multipart_encode([("a", io.StringIO("hello"))])


def test_fileobj_without_read():
    with pytest.raises(TypeError, match="read"):
        MultipartParam("a", fileobj=object())


def test_a_stream_without_a_size_is_a_part_of_unknown_length():
    param = MultipartParam("a", fileobj=ReadOnlyStream(b"data"))
    assert param.content_size() is None and param.get_size("XX") is None
    assert param.encode("XX").endswith(b"\r\n\r\ndata\r\n")
    param = MultipartParam("a", fileobj=ReadOnlyStream(b"data"), filesize=4)
    assert param.encode("XX").endswith(b"\r\n\r\ndata\r\n")


def test_a_pipe_streams_with_or_without_filesize_and_cannot_be_reset_once_read():
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        unsized = MultipartParam("a", fileobj=reader)
        assert unsized.content_size() is None
        writer.write(b"piped")
        writer.close()
        param = MultipartParam("a", fileobj=reader, filesize=5)
        assert param.encode("XX").endswith(b"\r\n\r\npiped\r\n")
        with pytest.raises(NotReplayableError, match="cannot reset"):
            param.reset()


def test_file_shorter_than_filesize():
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(b"abc"), filesize=10)], "XX")
    with pytest.raises(ContentSizeError, match="'f'.*ended after 3 of 10 bytes"):
        b"".join(datagen)


def test_content_size_error_is_value_error():
    assert issubclass(ContentSizeError, ValueError)
    assert issubclass(BoundaryCollisionError, ValueError)


def _received(datagen):
    """Blocks yielded before the error, and the error."""
    blocks = []
    with pytest.raises(ValueError) as info:
        for block in datagen:
            blocks.append(block)
    return b"".join(blocks), info.value


def test_file_grows_after_param_was_made(tmp_path):
    path = tmp_path / "grow.bin"
    path.write_bytes(b"a" * 10_000)
    with open(path, "rb") as f:
        param = MultipartParam("g", fileobj=f)
        with open(path, "ab") as w:
            w.write(b"b" * 100)
        datagen, headers = multipart_encode([param], "XX", blocksize=4096)
        sent, error = _received(datagen)
    assert isinstance(error, ContentSizeError) and "grew" in str(error) and "'g'" in str(error)
    assert len(sent) < int(headers["Content-Length"])


def test_file_shrinks_after_param_was_made(tmp_path):
    path = tmp_path / "shrink.bin"
    path.write_bytes(b"a" * 10_000)
    with open(path, "rb") as f:
        param = MultipartParam("s", fileobj=f)
        os.truncate(path, 5000)
        sent, error = _received(multipart_encode([param], "XX", blocksize=4096)[0])
    assert isinstance(error, ContentSizeError) and "shrank" in str(error)
    assert len(sent) < param.get_size("XX")


def test_from_file_grows_or_shrinks(tmp_path):
    # Checked when its part is reached: before any of its content leaves.
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 5000)
    param = MultipartParam.from_file("f", path)
    path.write_bytes(b"x" * 6000)
    with pytest.raises(SourceChangedError, match="from 5000 to 6000 bytes"):
        b"".join(multipart_encode([param], "XX")[0])
    param = MultipartParam.from_file("f", path)
    path.write_bytes(b"x" * 10)
    with pytest.raises(SourceChangedError, match="from 6000 to 10 bytes"):
        b"".join(multipart_encode([param], "XX")[0])


def test_file_truncated_by_another_thread_during_encoding(tmp_path):
    path = tmp_path / "race.bin"
    path.write_bytes(os.urandom(1 << 20))
    param = MultipartParam.from_file("r", path)
    datagen, headers = multipart_encode([param], "XX", blocksize=4096)
    sent = [next(datagen), next(datagen)]
    truncator = threading.Thread(target=os.truncate, args=(path, 8192))
    truncator.start()
    truncator.join()
    with pytest.raises(ContentSizeError):
        for block in datagen:
            sent.append(block)
    assert sum(map(len, sent)) < int(headers["Content-Length"])


def test_encoding_twice_reads_the_content_from_its_start():
    param = MultipartParam("f", fileobj=io.BytesIO(b"data"))
    assert param.encode("XX") == param.encode("XX")
    assert param.encode("XX").endswith(b"data\r\n")


def test_a_file_that_cannot_seek_is_read_once():
    read_end, write_end = os.pipe()
    os.write(write_end, b"data")
    os.close(write_end)
    with open(read_end, "rb", buffering=0) as pipe:
        param = MultipartParam("f", fileobj=pipe, filesize=4)
        assert param.encode("XX").endswith(b"data\r\n")
        with pytest.raises(NotReplayableError, match="cannot seek back"):
            param.encode("XX")
        with pytest.raises(NotReplayableError):
            param.reset()


# -- boundary collisions --------------------------------------------------------------

def test_boundary_in_a_value():
    with pytest.raises(BoundaryCollisionError, match="'v'"):
        b"".join(multipart_encode([("v", "line\n--XYZ\nmore")], "XYZ")[0])


def test_boundary_at_start_of_value():
    with pytest.raises(BoundaryCollisionError):
        MultipartParam("v", "--XYZ-- trailing").encode("XYZ")


@pytest.mark.parametrize("line_break", ["\r", "\n", "\r\n"])
def test_boundary_after_any_line_break_in_a_value(line_break):
    # werkzeug and the email package split a body after a bare CR as well.
    with pytest.raises(BoundaryCollisionError):
        b"".join(multipart_encode([("v", f"line{line_break}--XYZ\r\nmore")], "XYZ")[0])
    with pytest.raises(BoundaryCollisionError):
        MultipartParam("v", f"line{line_break}--XYZ").encode("XYZ")


@pytest.mark.parametrize("before", ["a", "\t", " ", "\x0b", "\x0c"])
def test_boundary_not_after_a_line_break_is_fine(before):
    assert f"{before}--XYZ".encode() in MultipartParam("v", f"{before}--XYZ").encode("XYZ")


def test_boundary_at_start_of_file():
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(b"--XYZ\r\nrest" + b"x" * 9000))], "XYZ", blocksize=4096)
    sent, error = _received(datagen)
    assert isinstance(error, BoundaryCollisionError)
    assert b"rest" not in sent


@pytest.mark.parametrize("line_break", [b"\r\n", b"\n", b"\r"])
def test_boundary_in_the_middle_of_a_file(line_break):
    data = b"a" * 9000 + line_break + b"--XYZ\r\n" + b"b" * 5000
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(data))], "XYZ", blocksize=4096)
    sent, error = _received(datagen)
    assert isinstance(error, BoundaryCollisionError)
    content = sent.partition(b"\r\n\r\n")[2]
    assert content == data[:4096]  # the blocks before the one that collides
    assert b"--XYZ\r\n" not in content


@pytest.mark.parametrize("offset", range(4090, 4100))
def test_boundary_straddling_two_blocks_never_leaves(offset):
    data = bytearray(b"q" * 9000)
    data[offset:offset + 6] = b"\n--XYZ"
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(bytes(data)))], "XYZ", blocksize=4096)
    sent, error = _received(datagen)
    assert isinstance(error, BoundaryCollisionError)
    content = sent.partition(b"\r\n\r\n")[2]  # nothing at all: the header goes with the content
    assert len(content) < offset + 1  # the block holding the delimiter's start never left
    assert b"\n--XYZ" not in content


def test_boundary_collision_in_from_file_closes_the_file(tmp_path):
    path = tmp_path / "c.bin"
    path.write_bytes(b"--B\n")
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(BoundaryCollisionError):
        b"".join(multipart_encode([MultipartParam.from_file("c", path)], "B")[0])
    assert len(os.listdir("/proc/self/fd")) == fds


# -- header injection ------------------------------------------------------------------

@pytest.mark.parametrize("filetype", ["text/plain\r\nX-Evil: 1", "a\nb", "a\rb", "nul\x00", "tab\there", "del\x7f"])
def test_control_characters_in_filetype(filetype):
    with pytest.raises(ValueError, match="filetype"):
        MultipartParam("a", "b", filetype=filetype)
    with pytest.raises(ValueError, match="filetype"):
        MultipartParam("a", "b", filetype=filetype, style="html5")


@pytest.mark.parametrize("style", ["poster", "html5"])
@pytest.mark.parametrize("text", ['a"b', "a\rb", "a\nb", "a\r\nX-Evil: 1", '"', "\\", 'end\\'])
def test_names_and_filenames_never_break_the_header(style, text):
    header = MultipartParam(text, b"v", filename=text, style=style).encode_hdr("XX")
    lines = header.split(b"\r\n")
    assert lines[0] == b"--XX" and lines[-2:] == [b"", b""]
    assert len(lines) == 5  # delimiter, disposition, type, blank, (end)
    for line in lines:
        assert b"\r" not in line and b"\n" not in line
    disposition = lines[1]
    # Every '"' inside a quoted value is escaped: the header parses into exactly
    # the name and filename parameters.
    from werkzeug.http import parse_options_header

    value, options = parse_options_header(disposition.split(b": ", 1)[1].decode("utf-8"))
    assert value == "form-data" and set(options) == {"name", "filename"}


def test_nul_in_html5_name_is_refused():
    with pytest.raises(ValueError, match="NUL"):
        MultipartParam("a\x00b", "v", style="html5")
    assert b"=?utf-8?b?" in MultipartParam("a\x00b", "v").encode_hdr("XX")


def test_lone_surrogate_in_name():
    with pytest.raises(ValueError, match="UTF-8"):
        MultipartParam("\udc80", "v")
    with pytest.raises(ValueError, match="UTF-8"):
        MultipartParam("\udc80", "v", style="html5")


def test_invalid_utf8_bytes_name():
    with pytest.raises(ValueError, match="UTF-8"):
        MultipartParam(b"\xff", "v")


@pytest.mark.parametrize("filesize", [-1, "10", 1.5, True])
def test_bad_filesize(filesize):
    with pytest.raises((TypeError, ValueError), match="filesize"):
        MultipartParam("f", fileobj=io.BytesIO(b"x"), filesize=filesize)


def test_bad_blocksize():
    with pytest.raises(ValueError, match="blocksize"):
        multipart_encode({"a": "b"}, blocksize=0)


def test_bad_params_item():
    with pytest.raises(TypeError, match="pairs"):
        multipart_encode(["abc"])


def test_from_file_missing_path_fails_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError):
        MultipartParam.from_file("f", tmp_path / "missing.txt")


def test_from_file_directory(tmp_path):
    with pytest.raises(ValueError, match="not a regular file"):
        MultipartParam.from_file("f", tmp_path)


def test_param_without_content():
    param = MultipartParam("f", filesize=3)
    assert param.get_size("XX") == len(param.encode_hdr("XX")) + 5
    with pytest.raises(ValueError, match="neither a value nor a file"):
        param.encode("XX")
    with pytest.raises(ValueError, match="no value, file or filesize"):
        MultipartParam("f").get_size("XX")


def _unknown_length():
    yield b"x"


@pytest.mark.parametrize("params", [
    [("a", "b")], ["field"], {"a": "b"}, [MultipartParam("a", "b"), 3], [None], [MultipartParam],
    [MultipartParam("f", fileobj=_unknown_length()), ("a", "b")],  # after a part of unknown length
    [b"x" * 10_000_000],
], ids=lambda params: repr(params)[:40])
def test_a_body_made_of_what_is_not_a_part_says_so(params):
    from poster.encode import MultipartBody

    with pytest.raises(TypeError, match="a body is made of MultipartParam objects.*multipart_encode") as raised:
        MultipartBody(params, "XYZ")
    assert raised.value.__suppress_context__ and len(str(raised.value)) < 300
