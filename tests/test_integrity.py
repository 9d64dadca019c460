"""A body sends exactly the bytes it announced, whatever is done around it.

Each test here is a way a body could once send other bytes than promised:
params shared between bodies and threads, params or bodies changed after
encoding, file objects that lie, files replaced under their path, bodies sent
again (retries, redirects), collisions at tiny block sizes.
"""

import asyncio
import hashlib
import io
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, strategies as st

from poster.encode import (
    BodyConsumedError,
    BodyFrozenError,
    BoundaryCollisionError,
    ContentSizeError,
    MultipartParam,
    SourceChangedError,
    SourceInUseError,
    get_body_size,
    get_headers,
    multipart_encode,
)

from servers import FLAKY_BODIES

BOUNDARY = "integrity0123456789abcdef"


def write(path, data):
    path.write_bytes(data)
    return path


def content_of(body: bytes, name: str) -> bytes:
    """The content of the part named ``name`` in ``body`` (one delimiter spelling)."""
    import python_multipart

    found = {}
    current = {}

    def on_header_value(data, start, end):
        current["header"] = current.get("header", b"") + data[start:end]

    def on_header_end():
        header = current.pop("header", b"")
        if header.lower().startswith(b"form-data"):
            current["disposition"] = header

    def on_part_data(data, start, end):
        current.setdefault("data", []).append(data[start:end])

    def on_part_end():
        disposition = current.pop("disposition", b"")
        _, options = python_multipart.multipart.parse_options_header(disposition)
        found[options[b"name"].decode()] = b"".join(current.pop("data", []))

    parser = python_multipart.MultipartParser(BOUNDARY.encode(), {
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    parser.write(body)
    parser.finalize()
    return found[name]


# -- a param in several bodies --------------------------------------------------------

def test_a_from_file_param_in_two_bodies_at_once_sends_its_own_file(tmp_path):
    a = write(tmp_path / "a.bin", os.urandom(300_000))
    b = write(tmp_path / "b.bin", os.urandom(300_000))
    pa = MultipartParam.from_file("a", a)
    body1, _ = multipart_encode([pa], BOUNDARY, blocksize=4096)
    body2, _ = multipart_encode([pa], BOUNDARY, blocksize=4096)
    second = [next(body2), next(body2)]  # body 2 is inside part a
    first = b"".join(body1)  # body 1 finishes a and closes what it opened
    with open(b, "rb") as other:  # the kernel would reuse that number for this file
        other.read(1)
        second += list(body2)
    assert content_of(first, "a") == content_of(b"".join(second), "a") == a.read_bytes()


@pytest.mark.parametrize("opened", ["from_file", "open file"])
def test_two_threads_posting_one_param_list(tmp_path, echo_server, opened):
    import requests

    files = [write(tmp_path / f"{i}.bin", os.urandom(200_000 + i)) for i in range(3)]
    handles = [open(path, "rb") for path in files]
    try:
        if opened == "from_file":
            params = [MultipartParam.from_file(f"f{i}", path) for i, path in enumerate(files)]
        else:
            params = [MultipartParam(f"f{i}", fileobj=f, filename=f"{i}.bin") for i, f in enumerate(handles)]
        expected = {f"f{i}": hashlib.sha256(path.read_bytes()).hexdigest() for i, path in enumerate(files)}

        def post(_):
            datagen, headers = multipart_encode(params, blocksize=8192)
            with requests.Session() as session:
                reply = session.post(echo_server.url + "/upload", data=datagen, headers=headers, timeout=10)
            return {field["name"]: field["sha256"] for field in reply.json()["fields"]}

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(post, range(30)))
    finally:
        for f in handles:
            f.close()
    assert results == [expected] * 30


def test_an_open_file_closed_after_its_param_was_made_is_still_sent(tmp_path):
    data = os.urandom(100_000)
    path = write(tmp_path / "a.bin", data)
    with open(path, "rb") as f:
        f.read(10)
        param = MultipartParam("a", fileobj=f)
    with open(write(tmp_path / "b.bin", b"x" * 99_990), "rb"):  # may take the old number
        body, headers = multipart_encode([param], BOUNDARY)
        sent = b"".join(body)
    assert content_of(sent, "a") == data[10:]
    assert len(sent) == int(headers["Content-Length"])


def test_a_file_object_without_a_descriptor_feeds_one_body_at_a_time():
    param = MultipartParam("s", fileobj=io.BytesIO(os.urandom(50_000)), filename="s.bin")
    body1, _ = multipart_encode([param], BOUNDARY, blocksize=1024)
    body2, _ = multipart_encode([param], BOUNDARY, blocksize=1024)
    begun = next(body1) + next(body1)  # body 1 reads it now
    with pytest.raises(SourceInUseError, match="another body"):
        next(body2)
    whole = begun + b"".join(body1)  # body 1 is unharmed
    body3, _ = multipart_encode([param], BOUNDARY, blocksize=1024)
    assert whole == b"".join(body3)  # free again once body 1 is through
    body1.reset()
    assert b"".join(body1) == b"".join(multipart_encode([param], BOUNDARY, blocksize=1024)[0])


# -- a body is a snapshot ---------------------------------------------------------------

def test_params_appended_after_encoding_are_refused():
    datagen, headers = multipart_encode([("a", "b")], BOUNDARY)
    with pytest.raises(BodyFrozenError, match="multipart_encode"):
        datagen.params.append(MultipartParam("late", "x" * 100))
    with pytest.raises(BodyFrozenError):
        datagen.params += [MultipartParam("late", "x")]
    with pytest.raises(BodyFrozenError):
        datagen.params = [MultipartParam("late", "x")]
    assert [param.name for param in datagen.params] == ["a"]
    with pytest.raises(BodyFrozenError):
        datagen.params[0] = MultipartParam("a", "longer value")
    assert len(b"".join(datagen)) == int(headers["Content-Length"]) == len(datagen)


@pytest.mark.parametrize("attribute", ["name", "value", "filename", "filetype", "filesize", "fileobj", "style"])
def test_a_param_cannot_change_once_made(attribute):
    param = MultipartParam("a", "value")
    datagen, headers = multipart_encode([param], BOUNDARY)
    with pytest.raises(AttributeError, match="make a new MultipartParam"):
        setattr(param, attribute, "x" * 100)
    assert len(b"".join(datagen)) == int(headers["Content-Length"])


def test_a_callback_can_still_be_set():
    param = MultipartParam("a", "value")
    calls = []
    param.cb = lambda p, current, total: calls.append(current)
    b"".join(multipart_encode([param], BOUNDARY)[0])
    assert calls == [param.get_size(BOUNDARY)]


# -- what read() may return --------------------------------------------------------------

class Returns:
    """A file object whose read() returns ``chunk`` (no readinto)."""

    def __init__(self, chunk):
        self.chunk = chunk

    def read(self, size=-1):
        return self.chunk


@pytest.mark.parametrize("chunk", [1000, [1, 2, 3], 2.5, object()], ids=repr)
def test_read_returning_something_not_bytes_like_is_a_type_error(chunk):
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=Returns(chunk), filesize=1000)], BOUNDARY)
    with pytest.raises(TypeError, match=f"returned {type(chunk).__name__}.*not a bytes-like object"):
        b"".join(datagen)


def test_a_bytes_subclass_that_lies_counts_its_buffer():
    class Liar(bytes):
        def __len__(self):
            return 5

        def __bytes__(self):
            return b"L" * 5175

    datagen, headers = multipart_encode(
        [MultipartParam("f", fileobj=Returns(Liar(b"y" * 200)), filesize=200)], BOUNDARY
    )
    body = b"".join(datagen)  # 200 bytes asked, the buffer's 200 bytes sent
    assert content_of(body, "f") == b"y" * 200
    assert len(body) == int(headers["Content-Length"])


def test_a_buffered_reader_over_a_lying_raw_never_shows_old_memory():
    # A raw stream that writes 4 bytes and claims to have filled the buffer.
    class LyingRaw(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:4] = b"data"
            return len(buffer)

    secret = b"SECRET-TOKEN" * 10_000
    del secret  # freed memory that a careless allocation could hand out
    reader = io.BufferedReader(LyingRaw(), buffer_size=4096)
    param = MultipartParam("f", fileobj=reader, filesize=1 << 20)
    content = content_of(b"".join(multipart_encode([param], BOUNDARY)[0]), "f")
    assert b"SECRET" not in content
    assert set(content) <= set(b"data\x00")


# -- sent again: retries and redirects ------------------------------------------------------

def sample_body(tmp_path):
    path = write(tmp_path / "r.bin", os.urandom(150_000))
    params = [("t", "text"), MultipartParam.from_file("f", path),
              MultipartParam("m", fileobj=io.BytesIO(os.urandom(20_000)), filename="m.bin")]
    datagen, headers = multipart_encode(params)
    whole = b"".join(datagen)
    datagen.reset()
    return datagen, headers, [len(whole), hashlib.sha256(whole).hexdigest()]


def test_tell_and_seek():
    datagen, _ = multipart_encode([("a", "b" * 10)], BOUNDARY, blocksize=16)
    assert datagen.tell() == 0
    first = next(datagen)
    assert datagen.tell() == len(first)
    with pytest.raises(io.UnsupportedOperation):
        datagen.seek(3)
    with pytest.raises(io.UnsupportedOperation):
        datagen.seek(0, io.SEEK_END)
    assert datagen.seek(0) == 0 and datagen.tell() == 0
    assert b"".join(datagen) == b"".join(multipart_encode([("a", "b" * 10)], BOUNDARY)[0])
    assert not hasattr(datagen, "read")  # http.client would copy it 8 KiB at a time


def test_an_ended_body_says_to_reset():
    datagen, _ = multipart_encode([("a", "b")], BOUNDARY)
    b"".join(datagen)
    with pytest.raises(BodyConsumedError, match=r"reset\(\)"):
        next(datagen)
    with pytest.raises(BodyConsumedError):
        list(datagen)


def test_requests_retries_resend_the_whole_body(tmp_path, echo_server):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    datagen, headers, expected = sample_body(tmp_path)
    token = uuid.uuid4().hex
    with requests.Session() as session:
        retry = Retry(total=3, status_forcelist=[503], allowed_methods=None, backoff_factor=0)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        reply = session.post(f"{echo_server.url}/flaky/{token}?fail=2", data=datagen, headers=headers, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["bodies"] == [expected] * 3


def test_urllib3_retries_resend_the_whole_body(tmp_path, echo_server):
    import urllib3
    from urllib3.util.retry import Retry

    datagen, headers, expected = sample_body(tmp_path)
    token = uuid.uuid4().hex
    retry = Retry(total=3, status_forcelist=[503], allowed_methods=None, backoff_factor=0)
    reply = urllib3.request("POST", f"{echo_server.url}/flaky/{token}", body=datagen, headers=headers,
                            retries=retry, timeout=5)
    assert reply.status == 200
    assert reply.json()["bodies"] == [expected] * 2


@pytest.mark.parametrize("code", [307, 308])
def test_requests_redirects_resend_the_whole_body(tmp_path, echo_server, code):
    import requests

    datagen, headers, expected = sample_body(tmp_path)
    token = uuid.uuid4().hex
    target = f"{echo_server.url}/flaky/{token}?fail=0"
    reply = requests.post(f"{echo_server.url}/redirect/{code}?to={target}", data=datagen, headers=headers, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["bodies"] == [expected]
    assert FLAKY_BODIES[token] == [expected]


# -- collisions: no byte of the delimiter leaves --------------------------------------------

@given(blocksize=st.integers(1, 12), before=st.binary(max_size=20), split=st.integers(0, 8))
def test_no_byte_of_a_colliding_delimiter_leaves(blocksize, before, split):
    content = before.replace(b"\n", b"_") + b"\n--bnd" + b"tail"
    param = MultipartParam("f", fileobj=io.BytesIO(content))
    datagen, _ = multipart_encode([param], "bnd", blocksize=blocksize)
    sent = []
    with pytest.raises(BoundaryCollisionError):
        for block in datagen:
            sent.append(block)
    body = b"".join(sent)
    emitted = body.partition(b"\r\n\r\n")[2]
    assert len(emitted) <= content.index(b"--bnd")


def test_the_example_of_blocksize_1():
    datagen, _ = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(b"x\n--bnd"))], "bnd", blocksize=1)
    sent = []
    with pytest.raises(BoundaryCollisionError):
        for block in datagen:
            sent.append(block)
    assert b"-" not in b"".join(sent).partition(b"\r\n\r\n")[2]


# -- from_file checks it is still the file it measured ----------------------------------------

def replace(path, data):
    other = path.with_name(path.name + ".new")
    other.write_bytes(data)
    os.replace(other, path)


@pytest.mark.parametrize("change", ["same size", "larger", "smaller"])
def test_a_file_renamed_over_the_path_is_refused_before_its_content(tmp_path, change):
    path = write(tmp_path / "f.bin", b"a" * 100_000)
    param = MultipartParam.from_file("f", path)
    replace(path, {"same size": b"b" * 100_000, "larger": b"b" * 200_000, "smaller": b"b" * 10}[change])
    datagen, _ = multipart_encode([("before", "x"), param], BOUNDARY, blocksize=4096)
    sent = []
    with pytest.raises(SourceChangedError, match="no longer the file"):
        for block in datagen:
            sent.append(block)
    assert b"b" * 10 not in b"".join(sent) and b'name="f"' not in b"".join(sent)


def test_a_fifo_swapped_in_is_refused_without_blocking(tmp_path):
    path = write(tmp_path / "f.bin", b"a" * 1000)
    param = MultipartParam.from_file("f", path)
    os.unlink(path)
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(SourceChangedError, match="not a regular file"):
        b"".join(multipart_encode([param], BOUNDARY)[0])
    assert time.monotonic() - started < 5


def test_a_deleted_file_is_a_clear_error(tmp_path):
    path = write(tmp_path / "f.bin", b"a" * 1000)
    param = MultipartParam.from_file("f", path)
    os.unlink(path)
    with pytest.raises(SourceChangedError, match="cannot be opened"):
        b"".join(multipart_encode([param], BOUNDARY)[0])


# -- smaller ones ---------------------------------------------------------------------------

def test_from_params_sends_the_base_name_of_an_open_file(tmp_path):
    path = write(tmp_path / "secret-dir-name" / "photo.jpg" if False else tmp_path / "photo.jpg", b"jpeg")
    with open(path, "rb") as f:
        body = b"".join(multipart_encode([("pic", f)], BOUNDARY)[0])
    assert b'filename="photo.jpg"' in body
    assert str(tmp_path).encode() not in body


def test_body_size_and_headers_take_a_style():
    params = [("name\u00e9", "v"), ("b", "w")]
    for style in ("poster", "html5"):
        datagen, headers = multipart_encode(params, BOUNDARY, style=style)
        assert get_body_size(params, BOUNDARY, style=style) == len(b"".join(datagen))
        assert get_headers(params, BOUNDARY, style=style) == headers
    assert get_body_size(params, BOUNDARY, style="html5") != get_body_size(params, BOUNDARY)
    with pytest.raises(ValueError, match="style"):
        get_body_size(params, BOUNDARY, style="html")


@pytest.mark.parametrize("boundary", ["a" * 71, "a b" * 30, 'a"b', b'a"b', "\u00e9" * 12])
def test_boundaries_rfc_2046_forbids_are_refused(boundary):
    with pytest.raises(ValueError, match="boundary"):
        multipart_encode([("a", "b")], boundary)


def test_a_boundary_of_70_characters_is_taken():
    datagen, headers = multipart_encode([("a", "b")], "a" * 70)
    assert headers["Content-Type"].endswith("boundary=" + "a" * 70)


def test_reset_right_after_a_cancelled_async_iteration(tmp_path):
    path = write(tmp_path / "big.bin", os.urandom(4 << 20))
    in_step, go_on = threading.Event(), threading.Event()

    def cb(param, current, total):  # called by the step in its worker thread
        if current > 0 and not go_on.is_set():
            in_step.set()
            go_on.wait(10)

    datagen, headers = multipart_encode([MultipartParam.from_file("f", path)], BOUNDARY, blocksize=4096, cb=cb)

    async def cancel_midway():
        async def consume():
            async for _ in datagen:
                await asyncio.sleep(0)

        task = asyncio.create_task(consume())
        await asyncio.get_running_loop().run_in_executor(None, in_step.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        threading.Timer(0.05, go_on.set).start()
        datagen.reset()  # while the cancelled step still runs in its thread

    asyncio.run(cancel_midway())
    body = b"".join(datagen)
    assert len(body) == int(headers["Content-Length"])
    assert content_of(body, "f") == path.read_bytes()


@pytest.mark.parametrize("style", ["poster", "html5"])
def test_a_filename_that_is_not_utf8_is_spelled_with_percent_escapes(tmp_path, style):
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(path, "wb") as f:
        f.write(b"data")
    param = MultipartParam.from_file("f", path, style=style)
    assert param.filename == "caf%E9.txt"
    body = b"".join(multipart_encode([param], BOUNDARY)[0])
    assert b'filename="caf%E9.txt"' in body
    assert content_of(body, "f") == b"data"


def test_the_errors_are_value_errors():
    for error in (BodyConsumedError, ContentSizeError, SourceChangedError, SourceInUseError,
                  BoundaryCollisionError):
        assert issubclass(error, ValueError)
    assert issubclass(BodyFrozenError, TypeError)


def test_a_body_shared_across_threads_is_not_needed_to_share_params(tmp_path):
    # Many bodies of one param list, iterated in many threads at once.
    paths = [write(tmp_path / f"{i}.bin", os.urandom(50_000)) for i in range(4)]
    params = [MultipartParam.from_file(f"f{i}", p) for i, p in enumerate(paths)]
    expected = b"".join(multipart_encode(params, BOUNDARY, blocksize=1000)[0])
    results = []

    def run():
        for _ in range(10):
            results.append(b"".join(multipart_encode(params, BOUNDARY, blocksize=1000)[0]))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [expected] * 40


# -- found by trying to break it --------------------------------------------------------------

class SlowFile(io.RawIOBase):
    """A file object whose reads take a while (a network file)."""

    def __init__(self, data, delay=0.05):
        self._data = io.BytesIO(data)
        self._delay = delay

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, *args):
        return self._data.seek(*args)

    def tell(self):
        return self._data.tell()

    def readinto(self, buffer):
        time.sleep(self._delay)
        return self._data.readinto(buffer)


def test_a_timed_out_async_step_hands_its_block_to_the_next():
    data = os.urandom(16 * 1024)
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=SlowFile(data), filesize=len(data))],
                                        BOUNDARY, blocksize=1024)

    async def send():
        blocks = []
        it = aiter(datagen)
        blocks.append(await anext(it))
        with pytest.raises(asyncio.TimeoutError):  # a per-block timeout, as send loops have
            await asyncio.wait_for(anext(it), 0.01)
        async for block in it:  # the same iteration goes on
            blocks.append(block)
        return b"".join(blocks)

    body = asyncio.run(send())
    assert len(body) == int(headers["Content-Length"]) == datagen.tell()
    assert content_of(body, "f") == data


def test_a_new_async_iteration_of_a_body_under_way_is_refused():
    datagen, _ = multipart_encode([("a", "b" * 5000)], BOUNDARY, blocksize=1024)

    async def twice():
        it = aiter(datagen)
        await anext(it)
        with pytest.raises(BodyConsumedError):
            aiter(datagen)

    asyncio.run(twice())


def test_reset_during_a_loop_stops_that_loop():
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(os.urandom(50_000)))],
                                        BOUNDARY, blocksize=1024)
    with pytest.raises(BodyConsumedError, match="reset while it was being iterated"):
        for index, _ in enumerate(datagen):
            if index == 3:
                datagen.seek(0)
    assert len(b"".join(datagen)) == int(headers["Content-Length"])  # a new loop sends it whole


class _Received:
    """The far end of a socket pair, read to its end in a thread."""

    def __init__(self):
        import socket

        self.near, self._far = socket.socketpair()
        self.data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while chunk := self._far.recv(1 << 20):
            self.data += chunk

    def close(self):
        import socket

        self.near.shutdown(socket.SHUT_WR)
        self._thread.join(10)
        self.near.close()
        self._far.close()
        return bytes(self.data)


@pytest.mark.parametrize("sendfile", [False, True])
def test_a_reset_from_a_callback_stops_write_to(tmp_path, sendfile):
    path = tmp_path / "f.bin"
    write(path, os.urandom(1 << 20))
    calls = []

    def cb(param, current, total):
        calls.append(current)
        if len(calls) == 3:
            datagen.reset()

    datagen, headers = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY, cb=cb)
    peer = _Received()
    with pytest.raises(BodyConsumedError, match="reset while write_to"):
        datagen.write_to(peer.near, sendfile=sendfile)
    sent = peer.close()
    assert 0 < len(sent) < int(headers["Content-Length"])  # what went before the reset, no more
    assert datagen.tell() == 0
    # The reset made it fresh: sent again, it is whole.
    peer = _Received()
    assert datagen.write_to(peer.near, sendfile=sendfile) == int(headers["Content-Length"])
    again = peer.close()
    assert len(again) == int(headers["Content-Length"]) and again.startswith(sent)


def test_a_reset_from_another_thread_stops_write_to(tmp_path):
    path = tmp_path / "f.bin"
    write(path, os.urandom(4 << 20))
    datagen, headers = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY,
                                        rate=8 << 20)  # half a second: time to reset it
    peer = _Received()
    timer = threading.Timer(0.1, datagen.reset)
    timer.start()
    with pytest.raises(BodyConsumedError, match="reset while write_to"):
        datagen.write_to(peer.near)
    timer.join()
    assert len(peer.close()) < int(headers["Content-Length"])


def test_a_reset_while_a_send_is_blocked_stops_write_to_and_leaves_the_body_fresh():
    # The peer reads nothing until the reset is made, so the first block's
    # sendall blocks; the reset comes from another thread meanwhile.
    import socket

    near, far = socket.socketpair()
    received = bytearray()
    reset_done = threading.Event()

    def late_reader():
        reset_done.wait(10)
        while chunk := far.recv(1 << 20):
            received.extend(chunk)

    datagen, headers = multipart_encode([("v", "x" * (8 << 20)), ("w", "y")], BOUNDARY)
    reader = threading.Thread(target=late_reader, daemon=True)
    reader.start()

    def reset_soon():
        time.sleep(0.2)
        datagen.reset()
        reset_done.set()

    resetter = threading.Thread(target=reset_soon)
    resetter.start()
    try:
        with pytest.raises(BodyConsumedError, match="reset while write_to"):
            datagen.write_to(near)
    finally:
        resetter.join(10)
        near.shutdown(socket.SHUT_WR)
        reader.join(10)
        near.close()
        far.close()
    assert len(received) < int(headers["Content-Length"])  # the second part never left
    assert datagen.tell() == 0  # the block that was under way is not counted
    peer = _Received()
    assert datagen.write_to(peer.near) == int(headers["Content-Length"])  # fresh: no second reset
    assert len(peer.close()) == int(headers["Content-Length"])


@pytest.mark.parametrize("chunked", [False, True])
def test_a_reset_once_every_byte_went_out_returns_the_length(tmp_path, chunked):
    # A reset that lands during the last send (another thread's, made here
    # as the bytes that end the body go out): the request is whole, so
    # write_to says how much it sent (not 0, not an error); the body is fresh.
    path = tmp_path / "f.bin"
    write(path, os.urandom(600_000))
    datagen, headers = multipart_encode([("a", "b"), MultipartParam.from_file("f", str(path))], BOUNDARY)
    close = b"--" + BOUNDARY.encode() + b"--\r\n"
    peer = _Received()

    class ResetAtTheEnd:
        def sendall(self, data):
            peer.near.sendall(data)
            if bytes(data).endswith(close) or data == b"0\r\n\r\n" or bytes(data).endswith(close + b"\r\n0\r\n\r\n"):
                datagen.reset()

        def sendmsg(self, buffers):
            data = b"".join(buffers)
            self.sendall(data)
            return len(data)

    assert datagen.write_to(ResetAtTheEnd(), chunked=chunked) == int(headers["Content-Length"])
    received = peer.close()
    assert datagen.tell() == 0
    if chunked:
        assert received.endswith(b"0\r\n\r\n")
    else:
        assert received == b"".join(datagen)  # fresh: it iterates from the start


@pytest.mark.parametrize("what", ["values", "file"])
def test_a_reset_while_a_paced_send_waits_sends_nothing_more(tmp_path, monkeypatch, what):
    # The reset lands during the wait for the next block (another thread's,
    # made here at the very moment the wait starts): that block stays home.
    import poster._body

    path = tmp_path / "f.bin"
    write(path, os.urandom(300_000))
    params = ([("a", "x" * 100_000), ("b", "y" * 100_000)] if what == "values"
              else [MultipartParam.from_file("f", str(path))])
    datagen, _ = multipart_encode(params, BOUNDARY, rate=1e12)
    waits = []
    real_sleep = time.sleep

    def sleep_then_reset(seconds):
        waits.append(seconds)
        if len(waits) == 2:
            datagen.reset()
        real_sleep(0)

    monkeypatch.setattr(poster._body.time, "sleep", sleep_then_reset)
    peer = _Received()
    sent_before = []

    class Counting:
        def sendall(self, data):
            sent_before.append(len(waits))
            peer.near.sendall(data)

    with pytest.raises(BodyConsumedError, match="reset while write_to"):
        datagen.write_to(Counting())
    peer.close()
    assert sent_before == [1]  # the first block only; none after the reset in the second wait


def test_a_failed_write_to_lets_go_of_its_sources_at_once(tmp_path):
    # The error is kept (as a retry loop keeps its last one): the stream the
    # send held is free again, so a reset and a second send go through.
    import socket

    stream = io.BytesIO(os.urandom(1 << 20))
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=stream, filename="f.bin")], BOUNDARY)
    near, far = socket.socketpair()
    far.close()  # the peer is gone: the first send fails
    try:
        with pytest.raises(OSError) as kept:
            datagen.write_to(near)
    finally:
        near.close()
    datagen.reset()
    peer = _Received()
    assert datagen.write_to(peer.near) == int(headers["Content-Length"])
    assert len(peer.close()) == int(headers["Content-Length"])
    assert kept.value is not None


def test_a_body_being_written_cannot_be_iterated_meanwhile(tmp_path):
    path = tmp_path / "f.bin"
    write(path, os.urandom(1 << 20))
    seen = []

    def cb(param, current, total):
        if not seen:
            with pytest.raises(BodyConsumedError):
                seen.append(next(iter(datagen)))
            seen.append("refused")

    datagen, headers = multipart_encode([MultipartParam.from_file("f", str(path))], BOUNDARY, cb=cb)
    peer = _Received()
    assert datagen.write_to(peer.near) == int(headers["Content-Length"])
    assert len(peer.close()) == int(headers["Content-Length"])
    assert seen == ["refused"]


def test_reset_during_an_async_loop_stops_that_loop():
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(os.urandom(50_000)))],
                                        BOUNDARY, blocksize=1024)

    async def loop():
        count = 0
        async for _ in datagen:
            count += 1
            if count == 3:
                datagen.reset()

    with pytest.raises(BodyConsumedError):
        asyncio.run(loop())


def test_a_retry_after_an_async_timeout_sends_the_whole_body():
    data = os.urandom(8 * 1024)
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=SlowFile(data, 0.03), filesize=len(data))],
                                        BOUNDARY, blocksize=1024)

    async def consume():
        return b"".join([block async for block in datagen])

    async def timed_out_then_again():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consume(), 0.1)
        datagen.reset()  # waits for the step still reading in its thread
        return await consume()

    body = asyncio.run(timed_out_then_again())
    assert content_of(body, "f") == data and len(body) == int(headers["Content-Length"])


@pytest.mark.parametrize("boundary", ["x\r\nX-Injected: 1", "form/data", b"bytes-boundary", "a b"])
def test_a_body_made_directly_quotes_its_boundary_as_multipart_encode(boundary):
    from poster.encode import MultipartBody, multipart_yielder

    params = [MultipartParam("field", "value")]
    for make in (MultipartBody, multipart_yielder):
        body = b"".join(make(params, boundary))
        assert body == b"".join(multipart_encode(params, boundary)[0])
        assert len(body) == int(get_headers(params, boundary)["Content-Length"])
        assert b"\r\nX-Injected" not in body
    for bad in ("", "z" * 100, 'q"q'):
        with pytest.raises(ValueError, match="boundary"):
            MultipartBody(params, bad)


def test_running_out_of_descriptors_is_the_systems_error(tmp_path):
    import subprocess
    import sys

    path = write(tmp_path / "f.bin", b"data")
    script = f"""
import os, resource, errno
from poster.encode import MultipartParam, multipart_encode, SourceChangedError
param = MultipartParam.from_file("f", {str(path)!r})
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(os.open({str(path)!r}, os.O_RDONLY))
except OSError:
    pass
try:
    b"".join(multipart_encode([param], "b")[0])
except SourceChangedError:
    raise SystemExit("changed")
except OSError as exc:
    raise SystemExit(0 if exc.errno == errno.EMFILE else f"errno {{exc.errno}}")
raise SystemExit("no error")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("style", ["poster", "html5"])
def test_an_open_file_whose_name_is_not_utf8_gets_percent_escapes(tmp_path, style):
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(path, "wb") as f:
        f.write(b"data")
    with open(os.fsdecode(path), "rb") as f:
        body = b"".join(multipart_encode([("f", f)], BOUNDARY, style=style)[0])
    assert b'filename="caf%E9.txt"' in body


def test_a_read_0_that_reads_does_not_lose_the_content():
    class Greedy:
        """read(n <= 0) reads the rest, as some wrappers do."""

        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, size=-1):
            return self._data.read(None if size <= 0 else size)

        def seek(self, *args):
            return self._data.seek(*args)

        def tell(self):
            return self._data.tell()

    data = os.urandom(5000)
    body = b"".join(multipart_encode([MultipartParam("f", fileobj=Greedy(data))], BOUNDARY)[0])
    assert content_of(body, "f") == data


@pytest.mark.parametrize("module", ["gzip", "bz2", "lzma"])
def test_a_compressed_file_object_is_measured_by_what_it_reads(tmp_path, module):
    import importlib

    opener = importlib.import_module(module).open
    data = os.urandom(1000) * 140
    path = tmp_path / f"data.{module}"
    with opener(path, "wb") as f:
        f.write(data)
    with opener(path, "rb") as f:
        try:
            param = MultipartParam("f", fileobj=f, filename="data.bin")
        except ValueError as exc:  # it cannot say its size: said now, not mid-upload
            assert "filesize=" in str(exc)
            return
        assert param.filesize == len(data)
        body = b"".join(multipart_encode([param], BOUNDARY)[0])
    assert content_of(body, "f") == data


def test_str_subclasses_give_the_bytes_of_plain_str():
    class Sneaky(str):
        def replace(self, *args):
            return "x\r\nX-Injected: 1"

        def encode(self, *args, **kwargs):
            return b"x\r\nX-Injected: 1"

        def __str__(self):
            return "x\r\nX-Injected: 1"

    for style in ("poster", "html5"):
        sneaky = MultipartParam(Sneaky('a\\b"c'), b"v", filename=Sneaky('f\\"'),
                                filetype=Sneaky("text/plain"), style=style)
        plain = MultipartParam('a\\b"c', b"v", filename='f\\"', filetype="text/plain", style=style)
        assert sneaky.encode(BOUNDARY) == plain.encode(BOUNDARY)
        assert b"X-Injected" not in sneaky.encode(BOUNDARY)


def test_reset_of_one_body_never_rewinds_another_reading_the_same_object():
    data = bytes(range(65, 91)) * 4000

    class RemoteFile(io.BytesIO):
        def seek(self, *args):
            if threading.current_thread().name == "retry":
                time.sleep(0.05)  # a slow seek widens the window
            return super().seek(*args)

    param = MultipartParam("f", fileobj=RemoteFile(data), filesize=len(data))
    expected = b"".join(multipart_encode([param], "bnd", blocksize=1024)[0])
    body_a, _ = multipart_encode([param], "bnd", blocksize=1024)
    body_b, _ = multipart_encode([param], "bnd", blocksize=1024)
    retry = threading.Thread(target=body_a.reset, name="retry")
    retry.start()
    time.sleep(0.01)
    blocks = []
    try:
        blocks += [next(body_b) for _ in range(4)]
        retry.join()
        blocks += list(body_b)
    except SourceInUseError:
        return  # refused: fine; sending other bytes is not
    assert b"".join(blocks) == expected


@pytest.mark.parametrize("code", [307, 308])
def test_urllib3_redirects_never_send_a_wrong_body(tmp_path, echo_server, code):
    # urllib3's PoolManager follows a 307/308 without rewinding the body
    # (only its retries rewind): the body says so instead of sending nothing.
    import urllib3

    datagen, headers, expected = sample_body(tmp_path)
    token = uuid.uuid4().hex
    target = f"{echo_server.url}/flaky/{token}?fail=0"
    with pytest.raises(Exception) as info:
        urllib3.request("POST", f"{echo_server.url}/redirect/{code}?to={target}", body=datagen,
                        headers=headers, timeout=5)
    chain = [info.value, info.value.__context__, info.value.__cause__]
    assert any(isinstance(error, BodyConsumedError) for error in chain), chain
    assert FLAKY_BODIES.get(token, []) == []  # no body reached the redirect's target


def test_a_loop_left_early_is_taken_up_by_the_next():
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(os.urandom(20_000)))],
                                        BOUNDARY, blocksize=1024)
    first = next(iter(datagen))
    second = next(datagen)
    rest = []
    for block in datagen:
        rest.append(block)
        break
    rest += list(datagen)
    body = first + second + b"".join(rest)
    assert len(body) == int(headers["Content-Length"]) == datagen.tell()


def test_an_async_client_that_stops_at_the_last_byte_ends_the_body():
    # aiohttp may stop asking once it has Content-Length bytes.
    datagen, headers = multipart_encode([MultipartParam("f", fileobj=io.BytesIO(os.urandom(5000)))],
                                        BOUNDARY, blocksize=1024)

    async def take_all_bytes():
        it = aiter(datagen)
        got = 0
        while got < int(headers["Content-Length"]):
            got += len(await anext(it))
        return got

    assert asyncio.run(take_all_bytes()) == len(datagen)
    with pytest.raises(BodyConsumedError):
        b"".join(datagen)


# -- a part's reading ends when its last byte is out --------------------------------------------

def _stop_at_the_last_byte(body):
    """What a client does that stops once it has ``len(body)`` bytes: never
    asks for the end of the iteration."""
    got = []
    while sum(map(len, got)) < len(body):
        got.append(next(body))
    return b"".join(got)


async def _async_blocks(body):
    return b"".join([block async for block in body])


@pytest.mark.parametrize("size", [0, 10, 40_000, 700_000])
@pytest.mark.parametrize("how", ["stop at the last byte", "async for"])
def test_the_last_block_leaves_with_the_file_closed_and_the_object_past_it(tmp_path, size, how):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    send = _stop_at_the_last_byte if how != "async for" else lambda body: asyncio.run(_async_blocks(body))
    fields = [("a", "x")]
    fds = len(os.listdir("/proc/self/fd"))
    param = MultipartParam.from_file("f", str(path))
    expected = b"".join(multipart_encode(fields + [param], BOUNDARY)[0])
    assert send(multipart_encode(fields + [param], BOUNDARY)[0]) == expected
    assert len(os.listdir("/proc/self/fd")) == fds  # from_file's descriptor is closed
    with open(path, "rb") as f:
        param = MultipartParam("f", fileobj=f, filename="f.bin")
        expected = b"".join(multipart_encode(fields + [param], BOUNDARY)[0])
        f.seek(0)
        assert send(multipart_encode(fields + [param], BOUNDARY)[0]) == expected
        assert f.tell() == size  # where reading it would have left it
    stream = MultipartParam("f", fileobj=io.BytesIO(path.read_bytes()), filename="f.bin")
    expected = b"".join(multipart_encode(fields + [stream], BOUNDARY)[0])
    assert send(multipart_encode(fields + [stream], BOUNDARY)[0]) == expected
    # The stream is free for another body at once.
    assert b"".join(multipart_encode(fields + [stream], BOUNDARY)[0]) == expected
