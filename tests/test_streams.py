"""Parts of any length: pipes, generators, lists of chunks and async sources.

A body whose every size is known keeps an exact ``Content-Length``; one with a
part of unknown length has no ``len()``, no ``Content-Length`` in its headers,
and every client sends it with ``Transfer-Encoding: chunked``.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator, List

import pytest
from hypothesis import given, strategies as st

from poster import streaminghttp
from poster.encode import (
    BoundaryCollisionError,
    ContentSizeError,
    MultipartBody,
    MultipartParam,
    MultipartStream,
    NotReplayableError,
    get_headers,
    multipart_encode,
)

from helpers import ReadOnlyStream, chunks_of, parse_with_python_multipart
from servers import serve

TIMEOUT = 30
PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Pipe:
    """A pipe fed with ``data`` by a thread: a stream whose size can't be known."""

    def __init__(self, data: bytes) -> None:
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb")
        self._writer = threading.Thread(target=self._feed, args=(write_fd, data), daemon=True)
        self._writer.start()

    @staticmethod
    def _feed(fd: int, data: bytes) -> None:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks_of(data, 10_000):
                out.write(chunk)

    def close(self) -> None:
        self.reader.close()
        self._writer.join(10)


def expected_body(fields: List[tuple], boundary: str = "BND") -> bytes:
    """The body the same fields give as bytes values (the known-length way)."""
    params = [MultipartParam(name, value, filename=filename) for name, value, filename in fields]
    return b"".join(multipart_encode(params, boundary)[0])


# -- the body ------------------------------------------------------------------

def test_a_generator_part_makes_a_body_of_unknown_length():
    param = MultipartParam("export", fileobj=chunks_of(PAYLOAD, 4096), filename="export.csv", filetype="text/csv")
    body, headers = multipart_encode([("note", "hi"), param], "BND")
    assert type(body) is MultipartStream and not isinstance(body, MultipartBody)
    assert not hasattr(body, "__len__") and body.total is None
    with pytest.raises(TypeError):
        len(body)
    assert headers == {"Content-Type": "multipart/form-data; boundary=BND"}
    data = b"".join(body)
    want = b"".join(multipart_encode([("note", "hi"), MultipartParam(
        "export", PAYLOAD, filename="export.csv", filetype="text/csv")], "BND")[0])
    assert data == want and body.tell() == len(want)


def test_get_headers_leaves_out_the_length_it_cannot_know():
    param = MultipartParam("p", fileobj=ReadOnlyStream(b"x"))
    assert "Content-Length" not in get_headers([param], "BND")
    assert get_headers([("a", "b")], "BND")["Content-Length"].isdigit()


def test_a_direct_multipart_body_with_an_unknown_part_is_a_stream():
    body = MultipartBody([MultipartParam("p", fileobj=ReadOnlyStream(b"abc"))], "BND")
    assert type(body) is MultipartStream and not hasattr(body, "__len__")
    assert b"".join(body).count(b"abc") == 1


@pytest.mark.parametrize("make", [
    lambda: chunks_of(PAYLOAD, 1),
    lambda: chunks_of(PAYLOAD, 777),
    lambda: chunks_of(PAYLOAD, 65536),
    lambda: chunks_of(PAYLOAD, 1 << 20),
    lambda: iter([PAYLOAD[:5], b"", bytearray(PAYLOAD[5:100]), memoryview(PAYLOAD[100:])]),
    lambda: [PAYLOAD[:70000], PAYLOAD[70000:]],
    lambda: (PAYLOAD,),
], ids=["1B", "777B", "64KiB", "1MiB", "mixed-types", "list", "tuple"])
def test_every_chunking_gives_the_same_bytes(make):
    body, _ = multipart_encode([MultipartParam("f", fileobj=make(), filename="f.bin")], "BND")
    assert b"".join(body) == expected_body([("f", PAYLOAD, "f.bin")])


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(1, 200))
def test_property_chunks_round_trip_and_known_lengths_match(chunks, blocksize):
    data = b"".join(chunks)
    for fileobj in (iter(chunks), list(chunks)):
        body, headers = multipart_encode(
            [MultipartParam("f", fileobj=fileobj, filename="f")], "BND", blocksize=blocksize
        )
        sent = b"".join(body)
        assert sent == expected_body([("f", data, "f")])
        if isinstance(fileobj, list):  # a list's size is known: exact Content-Length
            assert int(headers["Content-Length"]) == len(sent) == len(body)
        else:
            assert "Content-Length" not in headers
        (part,) = parse_with_python_multipart(sent, "multipart/form-data; boundary=BND")
        assert part["data"] == data


def test_a_pipe_without_filesize_is_streamed_to_its_end():
    pipe = Pipe(PAYLOAD)
    try:
        body, headers = multipart_encode([("a", "1"), ("data", pipe.reader)], "BND")
        assert "Content-Length" not in headers
        assert b"".join(body) == expected_body([("a", b"1", None), ("data", PAYLOAD, None)])
    finally:
        pipe.close()


def test_an_iterable_given_filesize_is_held_to_it():
    body, headers = multipart_encode([MultipartParam("f", fileobj=chunks_of(b"abcdef", 2), filesize=6)], "BND")
    assert int(headers["Content-Length"]) == len(b"".join(body))
    short, _ = multipart_encode([MultipartParam("f", fileobj=chunks_of(b"abc", 2), filesize=6)], "BND")
    with pytest.raises(ContentSizeError, match="'f'.*ended after 3 of 6"):
        b"".join(short)
    long, _ = multipart_encode([MultipartParam("f", fileobj=chunks_of(b"abcdefgh", 2), filesize=6)], "BND")
    with pytest.raises(ContentSizeError, match="'f'.*longer than the 6 bytes"):
        b"".join(long)


@pytest.mark.parametrize("make", [
    lambda: iter(["text"]), lambda: ["text"], lambda: iter([1, 2]), lambda: [b"ok", 3],
], ids=["str-iterator", "str-list", "int-iterator", "int-in-list"])
def test_chunks_that_are_not_bytes_like_are_a_type_error_naming_the_part(make):
    with pytest.raises(TypeError, match="'rows'.*chunk.*bytes-like"):
        body, _ = multipart_encode([MultipartParam("rows", fileobj=make())], "BND")
        b"".join(body)


@pytest.mark.parametrize("fileobj", ["text", b"bytes", {"a": b"b"}, 42])
def test_what_is_no_source_is_a_type_error(fileobj):
    with pytest.raises(TypeError, match="fileobj (must be|is bytes content)"):
        MultipartParam("x", fileobj=fileobj)


def test_a_collision_across_chunk_edges_raises_before_its_block_leaves():
    boundary = "BND" * 5
    delimiter = ("\r\n--" + boundary).encode()
    data = b"x" * 70000 + delimiter + b"y" * 10
    pieces = [data[i:i + 1] for i in range(69990, 70000 + len(delimiter) + 10)]
    chunks = [data[:69990]] + pieces
    body, _ = multipart_encode([MultipartParam("f", fileobj=iter(chunks), filename="f")], boundary)
    out = []
    with pytest.raises(BoundaryCollisionError, match="'f'"):
        for block in body:
            out.append(block)
    sent = b"".join(out)
    header = sent.index(b"\r\n\r\n") + 4
    assert len(sent) - header <= 70000  # no byte of the colliding delimiter left


def test_callbacks_say_the_total_is_unknown_until_the_end():
    calls = []
    part_calls = []
    param = MultipartParam("f", fileobj=chunks_of(PAYLOAD, 50_000), filename="f",
                           cb=lambda p, current, total: part_calls.append((current, total)))
    body, _ = multipart_encode([param], "BND", cb=lambda p, c, t: calls.append((p, c, t)))
    sent = len(b"".join(body))
    assert all(total is None for _, _, total in calls[:-1])
    assert calls[-1] == (None, sent, sent)
    assert all(total is None for _, total in part_calls[:-1])
    assert part_calls[-1][0] == part_calls[-1][1] == sent - len(b"--BND--\r\n")


# -- reset and replay ----------------------------------------------------------

def test_a_list_of_chunks_is_replayed_and_shared_by_bodies():
    param = MultipartParam("f", fileobj=[PAYLOAD[:1000], PAYLOAD[1000:]], filename="f")
    body, _ = multipart_encode([param], "BND")
    first = b"".join(body)
    body.reset()
    assert b"".join(body) == first
    other, _ = multipart_encode([param], "BND")
    assert b"".join(other) == first


@pytest.mark.parametrize("make", [
    lambda: chunks_of(PAYLOAD, 1000),
    lambda: Pipe(PAYLOAD).reader,
    lambda: ReadOnlyStream(PAYLOAD),
], ids=["generator", "pipe", "unseekable-stream"])
def test_a_one_shot_source_refuses_a_replay_and_tell_still_works(make):
    body, _ = multipart_encode([MultipartParam("f", fileobj=make(), filename="f")], "BND")
    body.reset()  # nothing read yet: a reset is harmless
    sent = b"".join(body)
    assert body.tell() == len(sent)
    with pytest.raises(NotReplayableError, match="cannot"):
        body.reset()
    with pytest.raises(OSError):  # what urllib3 and requests turn into "unrewindable body"
        body.seek(0)
    assert body.tell() == len(sent)


def test_a_generator_in_a_second_body_is_refused():
    param = MultipartParam("f", fileobj=chunks_of(b"abc", 1))
    first, _ = multipart_encode([param], "BND")
    b"".join(first)
    second, _ = multipart_encode([param], "BND")
    with pytest.raises(NotReplayableError, match="'f'.*read already"):
        b"".join(second)


def test_an_unsized_seekable_stream_is_replayed():
    class SeekOnly(io.RawIOBase):  # seeks, but refuses to tell its end
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self._data.readinto(buffer)

        def seekable(self):
            return True

        def tell(self):
            return self._data.tell()

        def seek(self, offset, whence=0):
            if whence != 0:
                raise OSError("cannot seek from the end")
            return self._data.seek(offset)

    body, headers = multipart_encode([MultipartParam("f", fileobj=SeekOnly(PAYLOAD))], "BND")
    assert "Content-Length" not in headers
    first = b"".join(body)
    body.reset()
    assert b"".join(body) == first


# -- async sources -------------------------------------------------------------

class AsyncReader:
    """An object with ``async def read(n)``, giving short reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.loop_threads: set = set()

    async def read(self, size: int = -1) -> bytes:
        self.loop_threads.add(threading.get_ident())
        await asyncio.sleep(0)
        return self._data.read(min(size, 5000))


async def agen(data: bytes, size: int):
    for chunk in chunks_of(data, size):
        await asyncio.sleep(0)
        yield chunk


async def collect(body) -> bytes:
    return b"".join([block async for block in body])


@pytest.mark.parametrize("make", [
    lambda: AsyncReader(PAYLOAD),
    lambda: agen(PAYLOAD, 3000),
], ids=["async-read", "async-generator"])
def test_an_async_source_is_read_by_async_for_only(make):
    body, headers = multipart_encode([MultipartParam("f", fileobj=make(), filename="f.bin")], "BND")
    assert "Content-Length" not in headers
    with pytest.raises(TypeError, match="async for"):
        iter(body)
    with pytest.raises(TypeError, match="async for"):
        next(body)
    assert asyncio.run(collect(body)) == expected_body([("f", PAYLOAD, "f.bin")])


def test_an_async_source_given_filesize_keeps_the_length():
    body, headers = multipart_encode([MultipartParam("f", fileobj=AsyncReader(PAYLOAD), filesize=len(PAYLOAD))], "BND")
    data = asyncio.run(collect(body))
    assert int(headers["Content-Length"]) == len(data) == len(body)


def test_an_aiofiles_file_has_a_known_size_and_its_reads_run_on_the_loop(tmp_path):
    import aiofiles
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD)

    async def main():
        async with aiofiles.open(path, "rb") as fileobj:
            body, headers = multipart_encode([MultipartParam("f", fileobj=fileobj, filename="data.bin")], "BND")
            assert int(headers["Content-Length"]) == body.total
            return await collect(body), int(headers["Content-Length"])

    data, length = asyncio.run(main())
    assert len(data) == length and data == expected_body([("f", PAYLOAD, "data.bin")])


def test_an_anyio_file_streams():
    import anyio

    async def main(path):
        async with await anyio.open_file(path, "rb") as fileobj:
            body, headers = multipart_encode([MultipartParam("f", fileobj=fileobj)], "BND")
            return await collect(body)

    with open(__file__, "rb") as own:
        want = own.read()
    assert asyncio.run(main(__file__)) == expected_body([("f", want, None)])


def test_an_async_source_does_not_block_the_loop():
    class SlowAsync:
        async def read(self, size):
            await asyncio.sleep(0.01)
            self.count = getattr(self, "count", 0) + 1
            return b"z" * 1000 if self.count <= 30 else b""

    async def main():
        gaps = []
        done = False

        async def ticker():
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.ensure_future(ticker())
        body, _ = multipart_encode([MultipartParam("f", fileobj=SlowAsync())], "BND")
        data = await collect(body)
        done = True
        await task
        return data, max(gaps)

    data, gap = asyncio.run(main())
    assert data.count(b"z") == 30_000
    assert gap < 0.25


# -- every client sends a body of unknown length chunked ------------------------

@pytest.fixture(scope="module")
def echo():
    with serve() as server:
        yield server


def sync_sources() -> List[tuple]:
    """(field name, fileobj, its bytes) for each kind of synchronous source."""
    pipe = Pipe(PAYLOAD[:200_000])
    return [
        ("generator", chunks_of(PAYLOAD, 8192), PAYLOAD),
        ("pipe", pipe.reader, PAYLOAD[:200_000]),
        ("stream", ReadOnlyStream(PAYLOAD[:50_000]), PAYLOAD[:50_000]),
    ]


def stream_body(sources: List[tuple]) -> tuple:
    params = [("note", "streamed")] + [
        MultipartParam(name, fileobj=fileobj, filename=name + ".bin") for name, fileobj, _ in sources
    ]
    body, headers = multipart_encode(params)
    assert "Content-Length" not in headers
    return body, headers


def check_answer(answer: dict, sources: List[tuple], note: bool = True) -> None:
    assert answer["headers"].get("Transfer-Encoding", "").lower() == "chunked"
    assert "Content-Length" not in answer["headers"]
    fields = {field["name"]: field for field in answer["fields"]}
    if note:
        assert fields["note"]["value"] == "streamed"
    for name, _, data in sources:
        assert (fields[name]["size"], fields[name]["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def post_urllib(url, body, headers):
    request = urllib.request.Request(url, body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def post_urllib_poster(url, body, headers):
    opener = urllib.request.build_opener(*streaminghttp.get_handlers())
    request = urllib.request.Request(url, body, headers, method="POST")
    with opener.open(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def post_http_client(url, body, headers, connection=http.client.HTTPConnection):
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = connection(host, int(port), timeout=TIMEOUT)
    try:
        conn.request("POST", "/upload", body=body, headers=headers, encode_chunked=True)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def post_streaming_connection(url, body, headers):
    return post_http_client(url, body, headers, streaminghttp.StreamingHTTPConnection)


def post_requests(url, body, headers):
    import requests

    return requests.post(url, data=body, headers=headers, timeout=TIMEOUT).json()


def post_urllib3(url, body, headers):
    import urllib3

    with urllib3.PoolManager() as pool:
        return json.loads(pool.request("POST", url, body=body, headers=headers, timeout=TIMEOUT).data)


def post_httpx(url, body, headers):
    import httpx

    with httpx.Client(timeout=TIMEOUT) as client:
        return client.post(url, content=body, headers=headers).json()


async def post_httpx_async(url, body, headers):
    import httpx

    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        return (await client.post(url, content=aiter(body), headers=headers)).json()


async def post_aiohttp(url, body, headers):
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        async with session.post(url, data=body, headers=headers) as response:
            return await response.json()


SYNC_CLIENTS = {
    "urllib.request": post_urllib,
    "urllib.request+poster": post_urllib_poster,
    "http.client": post_http_client,
    "StreamingHTTPConnection": post_streaming_connection,
    "requests": post_requests,
    "urllib3": post_urllib3,
    "httpx": post_httpx,
}
ASYNC_CLIENTS = {"httpx.AsyncClient": post_httpx_async, "aiohttp": post_aiohttp}


@pytest.mark.parametrize("client", sorted(SYNC_CLIENTS))
def test_a_sync_client_sends_streams_chunked(echo, client):
    sources = sync_sources()
    body, headers = stream_body(sources)
    check_answer(SYNC_CLIENTS[client](echo.url + "/upload", body, headers), sources)


@pytest.mark.parametrize("client", sorted(ASYNC_CLIENTS))
def test_an_async_client_sends_sync_and_async_streams_chunked(echo, client):
    sources = sync_sources() + [
        ("asyncgen", agen(PAYLOAD, 10_000), PAYLOAD),
        ("asyncread", AsyncReader(PAYLOAD[:100_000]), PAYLOAD[:100_000]),
    ]
    body, headers = stream_body(sources)
    check_answer(asyncio.run(ASYNC_CLIENTS[client](echo.url + "/upload", body, headers)), sources)


def test_a_known_length_list_body_keeps_content_length_through_requests(echo):
    import requests

    body, headers = multipart_encode([MultipartParam("f", fileobj=[PAYLOAD], filename="f")])
    answer = requests.post(echo.url + "/upload", data=body, headers=headers, timeout=TIMEOUT).json()
    assert answer["headers"]["Content-Length"] == headers["Content-Length"]
    assert "Transfer-Encoding" not in answer["headers"]


# -- poster's own handlers: chunk sizes, sendfile, redirects ----------------------

class ChunkRecorder:
    """A raw HTTP/1.1 server that reads one chunked request and notes its chunk sizes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sizes: List[int] = []
        self.body = b""
        self.head = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(TIMEOUT)
        reader = conn.makefile("rb")
        while True:
            line = reader.readline()
            self.head += line
            if line in (b"\r\n", b""):
                break
        body = []
        while True:
            size = int(reader.readline().split(b";")[0], 16)
            if size == 0:
                reader.readline()
                break
            self.sizes.append(size)
            body.append(reader.read(size))
            assert reader.read(2) == b"\r\n"
        self.body = b"".join(body)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()
        self.sock.close()


def test_poster_handlers_send_chunks_of_up_to_the_block_size_from_the_blocks_scanned(tmp_path, monkeypatch):
    path = tmp_path / "known.bin"
    path.write_bytes(PAYLOAD)
    calls = []
    real_sendfile = os.sendfile

    def counting_sendfile(*args):
        calls.append(args[3])
        return real_sendfile(*args)

    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    params = [("a", "1"), ("b", "2"), MultipartParam("gen", fileobj=chunks_of(PAYLOAD, 100), filename="g"),
              MultipartParam.from_file("known", str(path))]
    body, headers = multipart_encode(params, "BND", blocksize=32768)
    want = b"".join(multipart_encode(params[:2] + [MultipartParam("gen", PAYLOAD, filename="g"), params[3]],
                                     "BND")[0])
    recorder = ChunkRecorder()
    opener = urllib.request.build_opener(*streaminghttp.get_handlers())
    request = urllib.request.Request(f"http://127.0.0.1:{recorder.port}/", body, headers, method="POST")
    with opener.open(request, timeout=TIMEOUT) as response:
        assert response.read() == b"ok"
    recorder.thread.join(TIMEOUT)
    assert b"transfer-encoding: chunked" in recorder.head.lower()
    assert recorder.body == want
    assert max(recorder.sizes) <= 32768
    # 100-byte generator chunks leave as full blocks, not one chunk each
    assert len(recorder.sizes) < len(want) // 32768 + 12
    assert calls == []  # the file part of known length went from the blocks scanned


def test_a_chunked_connection_with_sendfile_sends_file_ranges_by_sendfile(tmp_path, monkeypatch):
    path = tmp_path / "known.bin"
    path.write_bytes(PAYLOAD)
    calls = []
    real_sendfile = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *args: calls.append(args[3]) or real_sendfile(*args))
    params = [("a", "1"), MultipartParam("gen", fileobj=chunks_of(PAYLOAD, 100), filename="g"),
              MultipartParam.from_file("known", str(path))]
    body, headers = multipart_encode(params, "BND", blocksize=32768)
    want = b"".join(multipart_encode(params[:1] + [MultipartParam("gen", PAYLOAD, filename="g"), params[2]],
                                     "BND")[0])
    recorder = ChunkRecorder()
    conn = streaminghttp.StreamingHTTPConnection("127.0.0.1", recorder.port, timeout=TIMEOUT, sendfile=True)
    try:
        conn.request("POST", "/", body, headers, encode_chunked=True)
        assert conn.getresponse().read() == b"ok"
    finally:
        conn.close()
    recorder.thread.join(TIMEOUT)
    assert recorder.body == want
    assert max(recorder.sizes) <= 32768
    assert sum(calls) == len(PAYLOAD)  # the file part of known length went by sendfile


class ShortSends(socket.socket):
    """A socket whose ``sendmsg`` takes a few bytes only, each call a different count."""

    counts = [3, 9, 10, 5000, 1 << 30, 1]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[int] = []

    def sendmsg(self, buffers, *args):  # type: ignore[no-untyped-def, override]
        limit = self.counts[len(self.calls) % len(self.counts)]
        data = b"".join(buffers)[:limit]
        self.calls.append(len(data))
        return self.send(data)


def unchunk(data: bytes) -> bytes:
    body, rest = [], data
    while True:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            assert rest == b"\r\n"
            return b"".join(body)
        body.append(rest[:size])
        assert rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]


def test_chunks_go_out_whole_through_short_sendmsg_calls():
    near, far = socket.socketpair()
    sock = ShortSends(fileno=near.detach())
    received: List[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(iter(lambda: far.recv(1 << 16), b"")), daemon=True)
    reader.start()
    params = [("a", "1"), MultipartParam("gen", fileobj=chunks_of(PAYLOAD, 40_000), filename="g")]
    body, _ = multipart_encode(params, "BND", blocksize=32768)
    want = b"".join(multipart_encode([params[0], MultipartParam("gen", PAYLOAD, filename="g")], "BND")[0])
    try:
        assert body.write_to(sock, chunked=True) == len(want)
    finally:
        sock.close()
    reader.join(TIMEOUT)
    far.close()
    assert unchunk(b"".join(received)) == want
    assert len(sock.calls) >= len(ShortSends.counts)  # every kind of short send was met


def test_a_redirect_of_a_consumed_stream_is_refused_with_a_clear_error(echo):
    body, headers = multipart_encode([MultipartParam("g", fileobj=chunks_of(PAYLOAD, 1000))])
    opener = urllib.request.build_opener(*streaminghttp.get_handlers())
    request = urllib.request.Request(f"{echo.url}/redirect/307?to={echo.url}/upload", body, headers, method="POST")
    with pytest.raises(urllib.error.HTTPError, match="not followed.*replayed"):
        opener.open(request, timeout=TIMEOUT)


def test_requests_reports_an_unrewindable_stream_on_a_307(echo):
    import requests

    body, headers = multipart_encode([MultipartParam("g", fileobj=chunks_of(PAYLOAD, 1000))])
    with pytest.raises(requests.exceptions.UnrewindableBodyError):
        requests.post(f"{echo.url}/redirect/307?to={echo.url}/upload", data=body, headers=headers, timeout=TIMEOUT)


def test_a_replayable_stream_follows_a_307_with_poster_handlers(echo):
    body, headers = multipart_encode([MultipartParam("g", fileobj=ReplayableChunks(PAYLOAD), filename="g")])
    assert "Content-Length" not in headers
    opener = urllib.request.build_opener(*streaminghttp.get_handlers())
    request = urllib.request.Request(f"{echo.url}/redirect/307?to={echo.url}/upload", body, headers, method="POST")
    with opener.open(request, timeout=TIMEOUT) as response:
        answer = json.loads(response.read())
    check_answer(answer, [("g", None, PAYLOAD)], note=False)


class ReplayableChunks:
    """An iterable whose every ``iter()`` starts again (its size unknown to poster)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        return chunks_of(self.data, 5000)
