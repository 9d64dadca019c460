"""poster.streaminghttp against servers that stall, downgrade or answer 1xx.

Raw-socket servers on 127.0.0.1 (tests/rawservers.py) trickle interim
responses a byte at a time, answer ``103 Early Hints`` before the final
response, or count the body bytes of a request whose file body is not the
length it announced; a TLS server redirects to plain HTTP.  Every test runs
on both backends of the hot path (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import pytest

from poster.encode import ContentSizeError, MultipartParam, multipart_encode
from poster.streaminghttp import (
    InsecureRedirectError,
    StreamingHTTPConnection,
    StreamingHTTPHandler,
    StreamingHTTPRedirectHandler,
    StreamingHTTPSHandler,
)
from rawservers import RawServer, counting, read_body, respond

TIMEOUT = 2.0
#: Generous: a request with a 2 s timeout must be over well before this.
WALL_LIMIT = 4.0
TIMEOUT_ERRORS = (TimeoutError, urllib.error.URLError)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def opener_for(client_ssl_context=None, continue_timeout=1.0):
    return urllib.request.build_opener(
        StreamingHTTPHandler(continue_timeout=continue_timeout),
        StreamingHTTPRedirectHandler,
        StreamingHTTPSHandler(context=client_ssl_context, continue_timeout=continue_timeout),
    )


def expect_request(url, size=50_000):
    datagen, headers = multipart_encode([MultipartParam("f", os.urandom(size), filename="f.bin")])
    return datagen, urllib.request.Request(url, datagen, {**headers, "Expect": "100-continue"})


def trickler(text: bytes, stop: threading.Event, interval: float = 0.5, read_first: bool = False):
    """A behaviour sending ``text`` one byte every ``interval`` s (at most 30 bytes)."""

    def behaviour(conn, record):
        if read_first:
            read_body(conn, record)
        for byte in text[:30]:
            if stop.wait(interval):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return

    return behaviour


def timed_failure(function):
    started = time.monotonic()
    with pytest.raises(TIMEOUT_ERRORS) as info:
        function()
    elapsed = time.monotonic() - started
    reason = getattr(info.value, "reason", info.value)
    assert isinstance(reason, TimeoutError), repr(info.value)
    return elapsed


# -- 1. one deadline for the interim responses -------------------------------------------


@pytest.mark.parametrize("text", [
    b"HTTP/1.1 100 Continue\r\nX-Slow: yes\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
])
def test_trickled_100_continue_fails_within_the_timeout(text):
    stop = threading.Event()
    with RawServer(trickler(text, stop, interval=0.5)) as raw:
        _, request = expect_request(raw.url + "/upload")
        opener = opener_for(continue_timeout=1.0)
        try:
            elapsed = timed_failure(lambda: opener.open(request, timeout=TIMEOUT).read())
        finally:
            stop.set()
    assert elapsed < WALL_LIMIT, f"held {elapsed:.1f} s by a trickled interim response"


def test_trickled_100_continue_on_the_connection_closes_it():
    stop = threading.Event()
    with RawServer(trickler(b"HTTP/1.1 100 Continue\r\n\r\n", stop)) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT, continue_timeout=1.0)
        datagen, headers = multipart_encode({"a": "b" * 1000})
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                conn.request("POST", "/", datagen, {**headers, "Expect": "100-continue"})
        finally:
            stop.set()
        elapsed = time.monotonic() - started
        assert conn.sock is None  # closed: the server got part of a request
        [record] = raw.wait(1)
    assert elapsed < WALL_LIMIT
    assert record.body_bytes == 0


def test_trickled_interim_response_after_the_body_fails_within_the_timeout():
    stop = threading.Event()
    text = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    with RawServer(trickler(text, stop, read_first=True)) as raw:
        datagen, headers = multipart_encode({"a": "b" * 1000})
        opener = opener_for()
        try:
            elapsed = timed_failure(
                lambda: opener.open(urllib.request.Request(raw.url, datagen, headers), timeout=TIMEOUT).read()
            )
        finally:
            stop.set()
    assert elapsed < WALL_LIMIT


def test_endless_early_hints_fail_within_bounds():
    """A server answering 103 after 103, quickly, never gets taken for final."""
    stop = threading.Event()

    def behaviour(conn, record):
        read_body(conn, record)
        for _ in range(200):
            if stop.wait(0.02):
                return
            try:
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
            except OSError:
                return

    with RawServer(behaviour) as raw:
        datagen, headers = multipart_encode({"a": "b"})
        started = time.monotonic()
        try:
            with pytest.raises((http.client.HTTPException, TimeoutError)):
                opener_for().open(urllib.request.Request(raw.url, datagen, headers), timeout=TIMEOUT)
        finally:
            stop.set()
    assert time.monotonic() - started < WALL_LIMIT


# -- 3b. interim responses other than 100 are skipped ---------------------------------------


def interim_then(interim: bytes, expect_answer: bytes = b"", final: str = "200 OK"):
    """Answer ``interim`` (after the body, or, to an Expect, before it), then ``final``."""

    def behaviour(conn, record):
        if record.expects_continue:
            conn.sendall(interim + expect_answer)
            if expect_answer.startswith(b"HTTP/1.1 100"):
                read_body(conn, record)
        else:
            read_body(conn, record)
            conn.sendall(interim)
        respond(conn, final, {"size": record.body_bytes, "sha256": record.sha.hexdigest()})

    return behaviour


EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"


@pytest.mark.parametrize("interim", [EARLY_HINTS, PROCESSING, EARLY_HINTS * 3 + PROCESSING])
def test_early_hints_before_the_final_response_are_skipped(interim):
    with RawServer(interim_then(interim)) as raw:
        datagen, headers = multipart_encode([MultipartParam("f", os.urandom(10_000), filename="f.bin")])
        body = b"".join(datagen)
        with opener_for().open(urllib.request.Request(raw.url, datagen, headers), timeout=10) as response:
            assert response.status == 200
            answer = json.loads(response.read())
    assert answer == {"size": len(body), "sha256": sha(body)}


def test_early_hints_then_100_continue_then_the_body():
    with RawServer(interim_then(EARLY_HINTS, b"HTTP/1.1 100 Continue\r\n\r\n")) as raw:
        datagen, request = expect_request(raw.url, size=300_000)
        started = time.monotonic()
        with opener_for(continue_timeout=5).open(request, timeout=10) as response:
            answer = json.loads(response.read())
        elapsed = time.monotonic() - started
    assert elapsed < 4  # the 100 was seen behind the 103, not waited out
    assert answer["size"] == len(datagen)


def test_early_hints_then_a_final_status_sends_no_body():
    with RawServer(interim_then(EARLY_HINTS, final="413 Too Large")) as raw:
        datagen, request = expect_request(raw.url, size=300_000)
        with pytest.raises(urllib.error.HTTPError) as info:
            opener_for(continue_timeout=5).open(request, timeout=10)
        assert info.value.code == 413
        assert json.loads(info.value.read())["size"] == 0
        info.value.close()
        [record] = raw.wait(1)
    assert record.body_bytes == 0


def answer_then_close(status, reset):
    """A behaviour: answer ``status`` at once, read no body, close (with the
    body unread, a reset; ``reset``: a reset at once, SO_LINGER 0)."""

    def behaviour(conn, record):
        respond(conn, status, {"early": True})
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return behaviour


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("status, reset", [("413 Too Large", False), ("500 Broken", True)])
def test_an_answer_before_the_body_is_sent_is_the_response(tmp_path, sendfile, status, reset):
    """The server answers and closes while the body goes out: the send fails
    (broken pipe, reset), and the answer that came is the response."""
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(32 << 20)
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
    with RawServer(answer_then_close(status, reset), rcvbuf=4096) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10, sendfile=sendfile)
        try:
            conn.request("POST", "/", datagen, headers)
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (int(status.split()[0]), {"early": True})
            assert response.will_close
        finally:
            conn.close()
        [record] = raw.wait(1)
    assert record.body_bytes == 0


def test_a_reset_without_an_answer_still_raises(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(32 << 20)
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])

    def reset_at_once(conn, record):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with RawServer(reset_at_once, rcvbuf=4096) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10)
        with pytest.raises(ConnectionError):
            conn.request("POST", "/", datagen, headers)
        assert conn.sock is None  # closed
        raw.wait(1)


# -- 2. no 307/308 from https to http with a body ------------------------------------------


@pytest.mark.parametrize("code", [307, 308])
@pytest.mark.parametrize("kind", ["poster body", "file", "bytes"])
def test_redirect_from_https_to_http_never_sends_the_body_in_clear(
    tls_echo_server, client_ssl_context, tmp_path, code, kind
):
    data = os.urandom(100_000)
    path = tmp_path / "secret.bin"
    path.write_bytes(data)
    with RawServer(counting()) as plain, open(path, "rb") as fileobj:
        target = f"{plain.url}/landed"
        url = f"{tls_echo_server.url}/redirect/{code}?to={target}"
        if kind == "poster body":
            body, headers = multipart_encode([MultipartParam.from_file("f", path)])
        elif kind == "file":
            body, headers = fileobj, {"Content-Length": str(len(data))}
        else:
            body, headers = data, {}
        request = urllib.request.Request(url, body, headers, method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            opener_for(client_ssl_context).open(request, timeout=10)
        time.sleep(0.2)  # a connection that was going to come would have come
        connections = list(plain.connections)
    error = info.value
    assert isinstance(error, InsecureRedirectError)
    assert error.code == code
    assert "https to http" in str(error) and "unencrypted" in str(error)
    error.close()
    assert sum(record.body_bytes for record in connections) == 0
    assert connections == []


def test_redirect_from_https_to_http_without_a_body_is_followed(tls_echo_server, client_ssl_context, tmp_path):
    """303 after POST is a GET without a body: nothing to leak, so it is followed."""
    datagen, headers = multipart_encode([MultipartParam("f", os.urandom(1000), filename="f.bin")])
    with RawServer(counting()) as plain:
        url = f"{tls_echo_server.url}/redirect/303?to={plain.url}/landed"
        with opener_for(client_ssl_context).open(urllib.request.Request(url, datagen, headers), timeout=10) as response:
            assert response.status == 200
            response.read()
        [record] = plain.wait(1)
    assert record.head.startswith(b"GET /landed ")
    assert record.body_bytes == 0


# -- 3. a file body is its Content-Length, or no complete request ----------------------------


def file_body(tmp_path, kind, size):
    data = os.urandom(size)
    if kind == "memory":
        return io.BytesIO(data), data
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    return open(path, "rb", buffering=0 if kind == "raw file" else -1), data


SIZE = 600_000  # over two copy buffers


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("kind", ["file", "raw file", "memory"])
@pytest.mark.parametrize("announced", [0, 1, SIZE - 300_000, SIZE - 1, SIZE + 1, SIZE + 300_000])
def test_file_body_of_another_length_than_announced_never_completes(tmp_path, sendfile, kind, announced):
    fileobj, _ = file_body(tmp_path, kind, SIZE)
    with fileobj, RawServer(counting()) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10, sendfile=sendfile)
        with pytest.raises(ContentSizeError, match="Content-Length"):
            conn.request("PUT", "/file", fileobj, {"Content-Length": str(announced)})
        assert conn.sock is None
        [record] = raw.wait(1)
    assert record.content_length == announced
    assert record.body_bytes < announced or announced == 0 == record.body_bytes


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("kind", ["file", "raw file", "memory"])
def test_file_body_from_its_position_is_sent_exactly(tmp_path, sendfile, kind):
    fileobj, data = file_body(tmp_path, kind, SIZE)
    fileobj.seek(1000)
    with fileobj, RawServer(counting()) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10, sendfile=sendfile)
        conn.request("PUT", "/file", fileobj, {"Content-Length": str(SIZE - 1000)})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == {"size": SIZE - 1000, "sha256": sha(data[1000:])}
        conn.close()
        assert fileobj.tell() == SIZE


def test_file_body_shorter_than_announced_through_urllib(tmp_path):
    fileobj, _ = file_body(tmp_path, "file", SIZE)
    with fileobj, RawServer(counting()) as raw:
        request = urllib.request.Request(raw.url + "/put", fileobj, {"Content-Length": str(SIZE + 10)}, method="PUT")
        with pytest.raises(ContentSizeError):
            opener_for().open(request, timeout=10)
        [record] = raw.wait(1)
    assert record.body_bytes < SIZE + 10


@pytest.mark.parametrize("announced", [SIZE - 1, SIZE + 1])
def test_file_body_of_another_length_over_tls_never_completes(
    tmp_path, server_ssl_context, client_ssl_context, announced
):
    fileobj, _ = file_body(tmp_path, "file", SIZE)
    with fileobj, RawServer(counting(), ssl_context=server_ssl_context) as raw:
        request = urllib.request.Request(raw.url + "/put", fileobj, {"Content-Length": str(announced)}, method="PUT")
        with pytest.raises(ContentSizeError):
            opener_for(client_ssl_context).open(request, timeout=10)
        [record] = raw.wait(1)
    assert record.content_length == announced
    assert record.body_bytes < announced


@pytest.mark.parametrize("code", [307, 308])
def test_a_redirect_to_another_scheme_is_never_followed_with_the_body(echo_server, code):
    body, headers = multipart_encode([("a", "b")])
    url = f"{echo_server.url}/redirect/{code}?to=ftp://127.0.0.1:9/answer.txt"
    with pytest.raises(urllib.error.HTTPError) as info:
        opener_for().open(urllib.request.Request(url, body, headers), timeout=10)
    assert info.value.code == code and "ftp" in str(info.value) and "not followed" in str(info.value)
    info.value.close()


@pytest.mark.parametrize("length", ["-1", "0x0a", "abc", "1 2"])
def test_a_file_body_with_a_length_that_is_no_number_is_refused(tmp_path, length):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10)
    with RawServer(counting()) as raw, open(path, "rb") as f:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=5)
        with pytest.raises(ValueError, match="not a number of bytes"):
            conn.request("PUT", "/", f, {"Content-Length": length})
        conn.close()
        time.sleep(0.1)
        assert sum(record.body_bytes for record in raw.connections) == 0
