"""Digests computed while a body streams, ``digest_of`` parts, and the rate limit."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import socket
import threading
import time
import urllib.request

import pytest
from hypothesis import given, strategies as st

from poster import streaminghttp
from poster.encode import MultipartParam, multipart_encode

from helpers import parse_with_python_multipart
from servers import serve

DATA = os.urandom(2_500_000)
SHA = hashlib.sha256(DATA).hexdigest()


def file_param(name="f"):
    return MultipartParam(name, fileobj=io.BytesIO(DATA), filename="f.bin")


# -- digest= ---------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["sha256", "md5", "blake2b", "sha3_512"])
def test_each_part_is_hashed_as_it_is_produced(algorithm, tmp_path):
    path = tmp_path / "disk.bin"
    path.write_bytes(DATA[:100_000])
    params = [("text", "hello"), file_param(), MultipartParam.from_file("disk", str(path)),
              MultipartParam("gen", fileobj=iter([b"ab", b"cd"]))]
    body, _ = multipart_encode(params, "BND", digest=algorithm)
    assert body.digests == []
    b"".join(body)
    def h(data):
        return hashlib.new(algorithm, data).hexdigest()
    assert body.digests == [("text", h(b"hello")), ("f", h(DATA)), ("disk", h(DATA[:100_000])),
                            ("gen", h(b"abcd"))]


def test_a_reset_clears_the_digests_and_a_second_send_makes_them_again():
    body, _ = multipart_encode([file_param()], "BND", digest="sha256")
    b"".join(body)
    assert body.digests == [("f", SHA)]
    body.reset()
    assert body.digests == []
    b"".join(body)
    assert body.digests == [("f", SHA)]


@pytest.mark.parametrize("sendfile", [True, False])
def test_write_to_hashes_what_it_scanned(tmp_path, sendfile):
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    body, headers = multipart_encode([MultipartParam.from_file("f", str(path))], "BND", digest="sha256")
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def sink():
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                received.extend(chunk)

    thread = threading.Thread(target=sink)
    thread.start()
    with socket.create_connection(server.getsockname()) as client:
        body.write_to(client, sendfile=sendfile)
    thread.join(10)
    server.close()
    assert len(received) == int(headers["Content-Length"])
    assert body.digests == [("f", SHA)]


def test_async_iteration_fills_the_digests():
    body, _ = multipart_encode([file_param()], "BND", digest="sha256")

    async def main():
        return b"".join([block async for block in body])

    asyncio.run(main())
    assert body.digests == [("f", SHA)]


@pytest.mark.parametrize("algorithm", ["nope", "shake_128"])
def test_an_unknown_or_unsized_algorithm_is_refused(algorithm):
    with pytest.raises(ValueError, match="digest algorithm|fixed digest length"):
        multipart_encode([("a", "b")], "BND", digest=algorithm)


# -- digest_of -----------------------------------------------------------------------

def test_digest_of_sends_the_digest_after_its_part_with_an_exact_length():
    data_part = file_param("upload")
    params = [data_part, MultipartParam.digest_of("upload_sha256", data_part)]
    body, headers = multipart_encode(params, "BND")
    sent = b"".join(body)
    assert len(sent) == int(headers["Content-Length"]) == len(body)
    parts = parse_with_python_multipart(sent, "multipart/form-data; boundary=BND")
    assert [p["name"] for p in parts] == [b"upload", b"upload_sha256"]
    assert parts[0]["data"] == DATA and parts[1]["data"] == SHA.encode()


def test_digest_of_with_another_algorithm_and_a_stream():
    gen = MultipartParam("rows", fileobj=(DATA[i:i + 1000] for i in range(0, 50_000, 1000)))
    body, headers = multipart_encode([gen, MultipartParam.digest_of("rows_md5", gen, "md5")], "BND")
    assert "Content-Length" not in headers  # the stream's length is unknown, not the digest's
    parts = parse_with_python_multipart(b"".join(body), "multipart/form-data; boundary=BND")
    assert parts[1]["data"] == hashlib.md5(DATA[:50_000]).hexdigest().encode()


@given(st.binary(max_size=5000), st.sampled_from(["sha256", "sha1", "blake2s"]))
def test_property_digest_of_matches_hashlib_and_the_length_is_exact(data, algorithm):
    part = MultipartParam("d", fileobj=io.BytesIO(data), filename="d")
    body, headers = multipart_encode([part, MultipartParam.digest_of("sum", part, algorithm)], "BND")
    sent = b"".join(body)
    assert len(sent) == int(headers["Content-Length"])
    assert parse_with_python_multipart(sent, "multipart/form-data; boundary=BND")[1]["data"] == \
        hashlib.new(algorithm, data).hexdigest().encode()


def test_digest_of_a_part_not_before_it_is_refused():
    part = file_param()
    digest = MultipartParam.digest_of("sum", part)
    with pytest.raises(ValueError, match="not before it"):
        multipart_encode([digest, part], "BND")
    with pytest.raises(ValueError, match="not before it"):
        multipart_encode([digest], "BND")
    with pytest.raises(ValueError, match="digest of another part"):
        digest.encode("BND")
    with pytest.raises(TypeError, match="MultipartParam"):
        MultipartParam.digest_of("sum", b"data")


def test_a_digest_part_reaches_a_server_through_poster_handlers():
    part = file_param("upload")
    body, headers = multipart_encode([part, MultipartParam.digest_of("upload.sha256", part)])
    with serve() as server:
        opener = urllib.request.build_opener(*streaminghttp.get_handlers())
        request = urllib.request.Request(server.url + "/upload", body, headers, method="POST")
        with opener.open(request, timeout=30) as response:
            fields = {f["name"]: f for f in json.loads(response.read())["fields"]}
    assert fields["upload"]["sha256"] == SHA
    assert fields["upload.sha256"]["value"] == SHA


# -- rate= -------------------------------------------------------------------------

RATE = 2 * 1024 * 1024


def test_a_4_mib_body_at_2_mib_a_second_takes_2_seconds_sleeping():
    body, _ = multipart_encode([MultipartParam("g", os.urandom(4 << 20))], "BND", rate=RATE)
    wall, cpu = time.perf_counter(), time.process_time()
    total = 0
    for block in body:
        total += len(block)
        # never ahead of the rate by more than one block
        assert total - (time.perf_counter() - wall) * RATE <= body.blocksize + len(block)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert 1.8 <= wall <= 2.2, wall
    assert cpu <= 0.05 * wall, (cpu, wall)


def test_async_iteration_is_paced_without_blocking_the_loop():
    body, _ = multipart_encode([MultipartParam("g", os.urandom(1 << 20))], "BND", rate=RATE)

    async def main():
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        started = time.perf_counter()
        data = b"".join([block async for block in body])
        done = True
        await task
        return data, time.perf_counter() - started, ticks

    data, wall, ticks = asyncio.run(main())
    assert 0.4 <= wall <= 0.65, wall
    assert ticks >= 20  # the loop ran meanwhile


def test_write_to_is_paced(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(1 << 20))
    body, _ = multipart_encode([MultipartParam.from_file("f", str(path))], "BND", rate=RATE)
    server = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: [c.recv(1 << 22) for c in [server.accept()[0]]
                                              for _ in iter(lambda: c.recv(1 << 20), b"")])
    thread.start()
    started = time.perf_counter()
    with socket.create_connection(server.getsockname()) as client:
        body.write_to(client)
    wall = time.perf_counter() - started
    thread.join(10)
    server.close()
    assert 0.4 <= wall <= 0.65, wall


@pytest.mark.parametrize("rate", [0, -5, 0.5, 1e-12, 10**400, float("inf"), float("nan"), "10M", True])
def test_a_rate_that_is_no_positive_number_is_refused(rate):
    with pytest.raises(ValueError, match="rate must be"):
        multipart_encode([("a", "b")], "BND", rate=rate)


def test_crc32c_from_google_crc32c():
    import google_crc32c
    part = file_param()
    body, headers = multipart_encode([part, MultipartParam.digest_of("crc", part, "crc32c")], "BND",
                                     digest="crc32c")
    sent = b"".join(body)
    want = f"{google_crc32c.value(DATA):08x}"
    assert body.digests[0] == ("f", want)
    assert len(sent) == int(headers["Content-Length"])
    assert parse_with_python_multipart(sent, "multipart/form-data; boundary=BND")[1]["data"] == want.encode()
    assert f"{google_crc32c.value(b'123456789'):08x}" == "e3069283"  # the check value of CRC-32C
