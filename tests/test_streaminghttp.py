"""poster.streaminghttp against real servers on 127.0.0.1.

The werkzeug echo server (tests/servers.py) parses what arrives and answers
each field's name, filename, size and sha256; the raw-socket servers
(tests/rawservers.py) count bytes and misbehave on purpose.  Every test runs
on both backends of the hot path (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from poster import streaminghttp
from poster.encode import (
    BoundaryCollisionError,
    ContentSizeError,
    MultipartParam,
    multipart_encode,
)
from poster.streaminghttp import (
    StreamingHTTPConnection,
    StreamingHTTPHandler,
    StreamingHTTPRedirectHandler,
    StreamingHTTPSConnection,
    StreamingHTTPSHandler,
)
from rawservers import RawServer, counting, multipart_digest, reset_after, stall
from servers import AUTH_PASSWORD, AUTH_USER

TIMEOUT = 10


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_file(tmp_path, name: str, size: int) -> tuple:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def build_opener(client_ssl_context, *extra, continue_timeout=streaminghttp.DEFAULT_CONTINUE_TIMEOUT):
    return urllib.request.build_opener(
        StreamingHTTPHandler(continue_timeout=continue_timeout),
        StreamingHTTPRedirectHandler,
        StreamingHTTPSHandler(context=client_ssl_context, continue_timeout=continue_timeout),
        *extra,
    )


@pytest.fixture(params=["http", "https"])
def server(request, echo_server, tls_echo_server):
    """The werkzeug echo server, over HTTP and over TLS."""
    return echo_server if request.param == "http" else tls_echo_server


@pytest.fixture
def opener(client_ssl_context):
    return build_opener(client_ssl_context)


def open_json(opener, request, timeout=TIMEOUT) -> dict:
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def fields_by_name(answer: dict) -> dict:
    return {field["name"]: field for field in answer["fields"]}


def sample_params(tmp_path, size=300_000):
    path, data = random_file(tmp_path, "upload.bin", size)
    memory = os.urandom(70_000)
    params = [
        ("comment", "héllo wörld"),
        MultipartParam.from_file("file", path),
        MultipartParam("stream", fileobj=io.BytesIO(memory), filename="memory.bin",
                       filetype="application/octet-stream"),
    ]
    expected = {
        "comment": ("héllo wörld".encode(), None),
        "file": (data, "upload.bin"),
        "stream": (memory, "memory.bin"),
    }
    return params, expected


def check_fields(answer: dict, expected: dict) -> None:
    got = fields_by_name(answer)
    assert set(got) == set(expected)
    for name, (data, filename) in expected.items():
        assert got[name]["size"] == len(data), name
        assert got[name]["sha256"] == sha(data), name
        assert got[name]["filename"] == filename, name


# -- poster 0.8.1's streaming behaviour ------------------------------------------


def test_get_with_path_and_query(server, opener):
    answer = open_json(opener, f"{server.url}/some/path?a=1&b=two%20words")
    assert answer["method"] == "GET"
    assert answer["path"] == "/some/path"
    assert answer["query"] == "a=1&b=two%20words"


def test_prejoined_body(server, opener, tmp_path):
    params, expected = sample_params(tmp_path)
    datagen, headers = multipart_encode(params)
    request = urllib.request.Request(f"{server.url}/upload", b"".join(datagen), headers)
    check_fields(open_json(opener, request), expected)


def test_streamed_datagen(server, opener, tmp_path):
    params, expected = sample_params(tmp_path, size=3_000_000)
    datagen, headers = multipart_encode(params)
    answer = open_json(opener, urllib.request.Request(f"{server.url}/upload", datagen, headers))
    check_fields(answer, expected)
    assert answer["headers"]["Content-Length"] == str(len(datagen))
    assert "Transfer-Encoding" not in answer["headers"]


def test_streamed_file_with_content_length(server, opener, tmp_path):
    path, data = random_file(tmp_path, "raw.bin", 1_500_000)
    with open(path, "rb") as fileobj:
        fileobj.seek(1000)  # sent from its position, as http.client does
        request = urllib.request.Request(
            f"{server.url}/raw", fileobj,
            {"Content-Length": str(len(data) - 1000), "Content-Type": "application/octet-stream"},
        )
        answer = open_json(opener, request)
    assert answer["body"] == {"size": len(data) - 1000, "sha256": sha(data[1000:])}


def test_streamed_iterable_with_content_length(server, opener):
    blocks = [os.urandom(10_000) for _ in range(7)]
    request = urllib.request.Request(
        f"{server.url}/raw", iter(blocks),
        {"Content-Length": str(70_000), "Content-Type": "application/octet-stream"},
    )
    answer = open_json(opener, request)
    assert answer["body"] == {"size": 70_000, "sha256": sha(b"".join(blocks))}


@pytest.mark.parametrize("kind", ["file", "generator", "datagen"])
def test_missing_content_length_is_a_value_error(server, opener, tmp_path, kind):
    path, data = random_file(tmp_path, "raw.bin", 1000)
    with open(path, "rb") as fileobj:
        body = {
            "file": fileobj,
            "generator": (block for block in [data]),
            "datagen": multipart_encode({"f": fileobj})[0],
        }[kind]
        request = urllib.request.Request(f"{server.url}/raw", body)
        with pytest.raises(ValueError, match="Content-Length"):
            opener.open(request, timeout=TIMEOUT)


# -- redirects ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303])
def test_redirect_after_post_becomes_get_without_body(server, opener, tmp_path, code):
    params, _ = sample_params(tmp_path)
    datagen, headers = multipart_encode(params)
    request = urllib.request.Request(
        f"{server.url}/redirect/{code}?to=/landed", datagen, headers)
    answer = open_json(opener, request)
    assert answer["method"] == "GET"
    assert answer["path"] == "/landed"
    assert "Content-Type" not in answer["headers"]
    assert "Content-Length" not in answer["headers"]
    assert answer["body"]["size"] == 0


@pytest.mark.parametrize("code", [307, 308])
def test_redirect_307_308_resends_the_whole_body(server, opener, tmp_path, code):
    params, expected = sample_params(tmp_path, size=2_000_000)
    datagen, headers = multipart_encode(params)
    request = urllib.request.Request(
        f"{server.url}/redirect/{code}?to=/landed", datagen, headers, method="PUT")
    answer = open_json(opener, request)
    assert answer["method"] == "PUT"
    assert answer["path"] == "/landed"
    check_fields(answer, expected)


@pytest.mark.parametrize("code", [307, 308])
def test_redirect_307_308_of_a_file_body_rewinds_it(server, opener, tmp_path, code):
    path, data = random_file(tmp_path, "raw.bin", 500_000)
    with open(path, "rb") as fileobj:
        request = urllib.request.Request(
            f"{server.url}/redirect/{code}?to=/landed", fileobj,
            {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"})
        answer = open_json(opener, request)
    assert answer["path"] == "/landed"
    assert answer["body"] == {"size": len(data), "sha256": sha(data)}


@pytest.mark.parametrize("code", [307, 308])
def test_redirect_307_308_with_a_one_shot_body_is_an_http_error(server, opener, code):
    blocks = (block for block in [b"x" * 5000])
    request = urllib.request.Request(
        f"{server.url}/redirect/{code}?to=/landed", blocks,
        {"Content-Length": "5000", "Content-Type": "application/octet-stream"})
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=TIMEOUT)
    assert info.value.code == code
    info.value.close()


def test_redirect_307_with_an_unseekable_part_is_an_http_error(server, opener):
    class OneShot(io.RawIOBase):
        def __init__(self):
            self.data = io.BytesIO(b"y" * 100_000)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self.data.readinto(buffer)

    part = MultipartParam("once", fileobj=OneShot(), filesize=100_000, filename="once.bin")
    datagen, headers = multipart_encode([part])
    request = urllib.request.Request(f"{server.url}/redirect/307?to=/landed", datagen, headers)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=TIMEOUT)
    assert info.value.code == 307
    info.value.close()


CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "Proxy-Authorization": "Basic cHJveHk6cHJveHk=",
    "Cookie": "session=secret",
}


@pytest.mark.parametrize("code", [302, 307])
def test_cross_origin_redirect_drops_credentials(server, opener, tmp_path, code):
    params, _ = sample_params(tmp_path, size=1000)
    datagen, headers = multipart_encode(params)
    other_origin = server.url.replace("127.0.0.1", "localhost") + "/landed"
    request = urllib.request.Request(
        f"{server.url}/redirect/{code}?to={other_origin}", datagen, {**headers, **CREDENTIALS})
    answer = open_json(opener, request)
    assert answer["headers"]["Host"].startswith("localhost:")
    for name in CREDENTIALS:
        assert name not in answer["headers"]


def test_same_origin_redirect_keeps_credentials(server, opener, tmp_path):
    params, _ = sample_params(tmp_path, size=1000)
    datagen, headers = multipart_encode(params)
    request = urllib.request.Request(
        f"{server.url}/redirect/307?to=/landed", datagen, {**headers, **CREDENTIALS})
    answer = open_json(opener, request)
    for name, value in CREDENTIALS.items():
        assert answer["headers"][name] == value


# -- logins and cookies --------------------------------------------------------------


def basic_auth_handler(server) -> urllib.request.HTTPBasicAuthHandler:
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, server.url, AUTH_USER, AUTH_PASSWORD)
    return urllib.request.HTTPBasicAuthHandler(passwords)


def test_401_login_resends_the_whole_body(server, client_ssl_context, tmp_path):
    opener = build_opener(client_ssl_context, basic_auth_handler(server))
    params, expected = sample_params(tmp_path, size=2_000_000)
    seen = []
    datagen, headers = multipart_encode(params, cb=lambda p, current, total: seen.append(current))
    answer = open_json(opener, urllib.request.Request(f"{server.url}/auth/upload", datagen, headers))
    check_fields(answer, expected)
    assert answer["headers"]["Authorization"].startswith("Basic ")
    # The body went out twice, whole both times.
    assert seen.count(len(datagen)) == 2


def test_401_login_with_a_one_shot_body_is_a_value_error(server, client_ssl_context):
    opener = build_opener(client_ssl_context, basic_auth_handler(server))
    request = urllib.request.Request(
        f"{server.url}/auth/upload", (block for block in [b"z" * 1000]),
        {"Content-Length": "1000", "Content-Type": "application/octet-stream"})
    with pytest.raises(ValueError, match="one-shot"):
        opener.open(request, timeout=TIMEOUT)


def test_with_cookie_processor(server, client_ssl_context, tmp_path):
    opener = build_opener(client_ssl_context, urllib.request.HTTPCookieProcessor())
    params, expected = sample_params(tmp_path)
    datagen, headers = multipart_encode(params)
    request = urllib.request.Request(f"{server.url}/set-cookie?to=/after", datagen, headers)
    answer = open_json(opener, request)
    assert answer["method"] == "GET" and answer["path"] == "/after"
    assert answer["headers"]["Cookie"] == "session=poster-cookie"
    datagen.reset()
    answer = open_json(opener, urllib.request.Request(f"{server.url}/upload", datagen, headers))
    assert answer["headers"]["Cookie"] == "session=poster-cookie"
    check_fields(answer, expected)


# -- TLS -------------------------------------------------------------------------------


def test_untrusted_certificate_is_rejected_by_default(tls_echo_server):
    opener = urllib.request.build_opener(*streaminghttp.get_handlers())
    datagen, headers = multipart_encode({"a": "b"})
    request = urllib.request.Request(tls_echo_server.url + "/upload", datagen, headers)
    with pytest.raises(urllib.error.URLError) as info:
        opener.open(request, timeout=TIMEOUT)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_host_name_is_checked_unless_told_not_to(trustme_ca, client_ssl_context):
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme_ca.issue_cert("other.example").configure_cert(server_context)
    with RawServer(counting(), server_context) as raw:
        opener = build_opener(client_ssl_context)
        with pytest.raises(urllib.error.URLError) as info:
            opener.open(raw.url + "/", timeout=TIMEOUT)
        assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
        assert "other.example" in str(info.value.reason) or "match" in str(info.value.reason)
        context = ssl.create_default_context()
        trustme_ca.configure_trust(context)
        opener = urllib.request.build_opener(StreamingHTTPSHandler(context=context, check_hostname=False))
        with opener.open(raw.url + "/", timeout=TIMEOUT) as response:
            assert json.loads(response.read())["size"] == 0


# -- Expect: 100-continue ---------------------------------------------------------------


def expect_request(url, params):
    datagen, headers = multipart_encode(params)
    return datagen, urllib.request.Request(url, datagen, {**headers, "Expect": "100-continue"})


def test_expect_continue_server_says_100(server, client_ssl_context, tmp_path):
    opener = build_opener(client_ssl_context, continue_timeout=5)
    params, expected = sample_params(tmp_path)
    _, request = expect_request(f"{server.url}/upload", params)
    started = time.monotonic()
    answer = open_json(opener, request)
    assert time.monotonic() - started < 4  # it did not wait for the timeout
    assert answer["headers"]["Expect"] == "100-continue"
    check_fields(answer, expected)


@pytest.mark.parametrize("tls", [False, True])
def test_expect_continue_server_says_nothing(client_ssl_context, server_ssl_context, tmp_path, tls):
    opener = build_opener(client_ssl_context, continue_timeout=0.3)
    params, _ = sample_params(tmp_path)
    with RawServer(counting(expect=None), server_ssl_context if tls else None) as raw:
        datagen, request = expect_request(raw.url + "/upload", params)
        started = time.monotonic()
        answer = open_json(opener, request)
        elapsed = time.monotonic() - started
        [record] = raw.wait(1)
    assert 0.3 <= elapsed < 5
    assert answer["size"] == record.body_bytes == len(datagen)


@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize("status", ["401", "413"])
def test_expect_continue_final_status_first_sends_no_body(
    client_ssl_context, server_ssl_context, tmp_path, status, tls
):
    opener = build_opener(client_ssl_context, continue_timeout=5)
    params, _ = sample_params(tmp_path, size=1_000_000)
    with RawServer(counting(expect=status), server_ssl_context if tls else None) as raw:
        datagen, request = expect_request(raw.url + "/upload", params)
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(request, timeout=TIMEOUT)
        assert info.value.code == int(status)
        assert json.loads(info.value.read()) == {"refused": True}
        info.value.close()
        [record] = raw.wait(1)
    assert record.body_bytes == 0
    assert record.content_length == len(datagen)


def test_expect_continue_401_then_login_sends_the_body(client_ssl_context, tmp_path):
    """The first try gets 401 and sends nothing; the retry sends it all."""
    params, _ = sample_params(tmp_path, size=1_000_000)
    answers = iter(["401", "100"])

    def behaviour(conn, record):
        counting(expect=next(answers))(conn, record)

    with RawServer(behaviour) as raw:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, raw.url, "user", "pw")
        opener = build_opener(client_ssl_context, urllib.request.HTTPBasicAuthHandler(passwords))
        datagen, request = expect_request(raw.url + "/upload", params)
        answer = open_json(opener, request)
        first, second = raw.wait(2)
    assert first.body_bytes == 0
    assert second.body_bytes == len(datagen) == answer["size"]
    assert second.headers["authorization"].startswith("Basic ")


def test_continue_timeout_is_configurable_on_the_connection():
    with RawServer(counting(expect=None)) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT, continue_timeout=0.5)
        datagen, headers = multipart_encode({"a": "b" * 1000})
        started = time.monotonic()
        conn.request("POST", "/", datagen, {**headers, "Expect": "100-continue"})
        response = conn.getresponse()
        elapsed = time.monotonic() - started
        assert response.status == 200
        assert json.loads(response.read())["size"] == len(datagen)
        conn.close()
    assert 0.5 <= elapsed < 5


# -- faults: reset, stall -----------------------------------------------------------------


def big_body(tmp_path, size=64 * 1024 * 1024):
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    return multipart_encode([MultipartParam.from_file("file", path)])


@pytest.mark.parametrize("tls", [False, True])
def test_reset_mid_body_raises_and_the_body_can_be_resent(
    client_ssl_context, server_ssl_context, echo_server, tmp_path, tls
):
    opener = build_opener(client_ssl_context)
    datagen, headers = big_body(tmp_path)
    with RawServer(reset_after(256 * 1024), server_ssl_context if tls else None) as raw:
        started = time.monotonic()
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)) as info:
            opener.open(urllib.request.Request(raw.url + "/upload", datagen, headers), timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT
        [record] = raw.wait(1)
    assert 256 * 1024 <= record.body_bytes < len(datagen)
    error = info.value.reason if isinstance(info.value, urllib.error.URLError) else info.value
    assert isinstance(error, (ConnectionError, ssl.SSLError))
    # The same body goes out again, whole.
    with RawServer(multipart_digest) as raw:
        answer = open_json(opener, urllib.request.Request(raw.url + "/upload", datagen, headers))
    assert answer["size"] == len(datagen)
    assert answer["fields"][0]["sha256"] == sha(bytes(64 * 1024 * 1024))


@pytest.mark.parametrize("path", ["sendfile", "memoryview", "tls"])
def test_stalled_server_times_out(client_ssl_context, server_ssl_context, tmp_path, path):
    datagen, headers = big_body(tmp_path)
    stop = threading.Event()
    context = server_ssl_context if path == "tls" else None
    with RawServer(stall(stop), context, rcvbuf=4096) as raw:
        if path == "tls":
            conn = StreamingHTTPSConnection("127.0.0.1", raw.port, timeout=1, context=client_ssl_context)
        else:
            conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=1, sendfile=path == "sendfile")
        started = time.monotonic()
        try:
            with pytest.raises((TimeoutError, ssl.SSLError)):
                conn.request("POST", "/upload", datagen, headers)
                conn.getresponse()
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            conn.close()
    assert elapsed < 8
    assert conn.sock is None  # closed: the connection cannot be reused half-sent


# -- what goes on the wire ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["sendfile", "memoryview", "tls"])
def test_wire_bytes_are_the_joined_datagen(client_ssl_context, server_ssl_context, tmp_path, path):
    params, _ = sample_params(tmp_path, size=1_234_567)
    params.append(("big value", os.urandom(600_000)))
    params.append(MultipartParam.from_file("empty", random_file(tmp_path, "empty", 0)[0]))
    datagen, headers = multipart_encode(params)
    expected = b"".join(datagen)
    datagen.reset()
    context = server_ssl_context if path == "tls" else None
    with RawServer(counting(), context, keep_body=True) as raw:
        if path == "tls":
            conn = StreamingHTTPSConnection("127.0.0.1", raw.port, timeout=TIMEOUT, context=client_ssl_context)
        else:
            conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT, sendfile=path == "sendfile")
        conn.request("POST", "/upload", datagen, headers)
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        conn.close()
        [record] = raw.wait(1)
    assert bytes(record.body) == expected


@pytest.mark.parametrize("path", ["sendfile", "memoryview", "tls"])
@pytest.mark.parametrize("kind", ["fileio", "buffered", "random"])
def test_file_moved_since_its_param_was_made_is_sent_from_where_it_was(
    client_ssl_context, server_ssl_context, tmp_path, path, kind
):
    file_path, data = random_file(tmp_path, "moved.bin", 700_000)
    opened = {"fileio": lambda: io.FileIO(file_path, "rb"), "buffered": lambda: open(file_path, "rb"),
              "random": lambda: open(file_path, "r+b")}[kind]
    expected = b"".join(multipart_encode(
        [MultipartParam("file", fileobj=io.BytesIO(data[4103:]), filename="moved.bin")], boundary="XYZ")[0])
    context = server_ssl_context if path == "tls" else None
    with opened() as f, RawServer(counting(), context, keep_body=True) as raw:
        f.seek(4103)
        param = MultipartParam("file", fileobj=f, filename="moved.bin")
        f.seek(0)
        datagen, headers = multipart_encode([param], boundary="XYZ")
        if path == "tls":
            conn = StreamingHTTPSConnection("127.0.0.1", raw.port, timeout=TIMEOUT, context=client_ssl_context)
        else:
            conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT, sendfile=path == "sendfile")
        conn.request("POST", "/upload", datagen, headers)
        assert conn.getresponse().status == 200
        conn.close()
        [record] = raw.wait(1)
    assert bytes(record.body) == expected


def sendfile_spy(monkeypatch):
    """The byte counts os.sendfile sends from now on."""
    calls = []
    real_sendfile = os.sendfile

    def spy(out_fd, in_fd, offset, count):
        sent = real_sendfile(out_fd, in_fd, offset, count)
        calls.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", spy)
    return calls


def test_a_poster_body_sends_the_blocks_it_scanned(echo_server, tls_echo_server, opener, tmp_path, monkeypatch):
    # By default a poster body's file content leaves in the blocks its
    # boundary scan read, over HTTP as over TLS: no os.sendfile.
    calls = sendfile_spy(monkeypatch)
    params, expected = sample_params(tmp_path, size=5_000_000)
    datagen, headers = multipart_encode(params)
    check_fields(open_json(opener, urllib.request.Request(echo_server.url + "/u", datagen, headers)), expected)
    check_fields(open_json(opener, urllib.request.Request(tls_echo_server.url + "/u", datagen, headers)), expected)
    assert calls == []


def test_sendfile_true_sends_a_poster_body_s_files_with_sendfile(echo_server, tmp_path, monkeypatch):
    calls = sendfile_spy(monkeypatch)
    params, expected = sample_params(tmp_path, size=5_000_000)
    datagen, headers = multipart_encode(params)
    conn = StreamingHTTPConnection("127.0.0.1", echo_server.port, timeout=TIMEOUT, sendfile=True)
    try:
        conn.request("POST", "/u", datagen, headers)
        response = conn.getresponse()
        check_fields(json.loads(response.read()), expected)
    finally:
        conn.close()
    assert sum(calls) == 5_000_000  # the file part, and nothing else


@pytest.mark.parametrize("value, raw, poster_body", [
    (None, True, False), (True, True, True), (1, True, True), (False, False, False), (0, False, False),
])
def test_sendfile_none_true_or_false(echo_server, tmp_path, monkeypatch, value, raw, poster_body):
    # None (the default): a raw file body by os.sendfile, a poster body from
    # the blocks scanned; a true value: both by os.sendfile; a false one
    # other than None: neither.  The constructor's argument and the
    # attribute set afterwards alike.
    calls = sendfile_spy(monkeypatch)
    path, data = random_file(tmp_path, "raw.bin", 300_000)
    params, expected = sample_params(tmp_path, size=300_000)
    datagen, headers = multipart_encode(params)
    for how in ("argument", "attribute"):
        conn = (StreamingHTTPConnection("127.0.0.1", echo_server.port, timeout=TIMEOUT, sendfile=value)
                if how == "argument" else StreamingHTTPConnection("127.0.0.1", echo_server.port, timeout=TIMEOUT))
        if how == "attribute":
            conn.use_sendfile = value
        try:
            with open(path, "rb") as fileobj:
                conn.request("POST", "/raw", fileobj, {"Content-Length": str(len(data))})
                assert json.loads(conn.getresponse().read())["body"] == {"size": len(data), "sha256": sha(data)}
            assert (sum(calls) == len(data)) == raw and (calls == []) == (not raw)
            calls.clear()
            conn.request("POST", "/u", datagen, headers)
            check_fields(json.loads(conn.getresponse().read()), expected)
            assert (sum(calls) == 300_000) == poster_body and (calls == []) == (not poster_body)
            calls.clear()
        finally:
            conn.close()


def test_plain_file_body_uses_sendfile_over_http(echo_server, opener, tmp_path, monkeypatch):
    calls = []
    real_sendfile = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(a) or real_sendfile(*a))
    path, data = random_file(tmp_path, "raw.bin", 2_000_000)
    with open(path, "rb") as fileobj:
        request = urllib.request.Request(echo_server.url + "/raw", fileobj, {"Content-Length": str(len(data))})
        answer = open_json(opener, request)
    assert answer["body"] == {"size": len(data), "sha256": sha(data)}
    assert calls


# -- the SPEC's rules on the sending path ----------------------------------------------------


def make_collision_file(tmp_path, boundary: str, at: int, size: int):
    data = bytearray(os.urandom(size)).replace(b"\n", b"\x00")
    needle = b"\n--" + boundary.encode()
    data[at:at + len(needle)] = needle
    path = tmp_path / "collision.bin"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("at", [5, 256 * 1024 - 7, 3 * 256 * 1024 + 100, 2_000_000 - 40])
def test_boundary_collision_never_leaves(tmp_path, sendfile, at):
    boundary = "c0ffee" * 6
    path = make_collision_file(tmp_path, boundary, at, 2_000_000)
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)], boundary=boundary)
    with RawServer(counting(), keep_body=True) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT, sendfile=sendfile)
        with pytest.raises(BoundaryCollisionError):
            conn.request("POST", "/upload", datagen, headers)
        [record] = raw.wait(1)
    delimiter = b"--" + boundary.encode()
    body = bytes(record.body)
    assert body.count(delimiter) == 1  # the part's own delimiter line, nothing else
    assert record.body_bytes < len(datagen)


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("change", ["shrink", "grow"])
def test_file_that_changed_size_stops_the_body(tmp_path, sendfile, change):
    path, data = random_file(tmp_path, "changing.bin", 1_000_000)
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
    if change == "shrink":
        os.truncate(path, 600_000)
    else:
        with open(path, "ab") as f:
            f.write(b"more")
    with RawServer(counting()) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT, sendfile=sendfile)
        with pytest.raises(ContentSizeError):
            conn.request("POST", "/upload", datagen, headers)
        [record] = raw.wait(1)
    assert record.body_bytes < len(datagen)


def test_callbacks_while_sending(echo_server, opener, tmp_path):
    params, expected = sample_params(tmp_path, size=2_000_000)
    part_calls = []
    params[1].cb = lambda param, current, total: part_calls.append((param.name, current, total))
    body_calls = []
    datagen, headers = multipart_encode(params, cb=lambda p, c, t: body_calls.append((p, c, t)))
    check_fields(open_json(opener, urllib.request.Request(echo_server.url + "/u", datagen, headers)), expected)
    total = len(datagen)
    assert body_calls[-1] == (None, total, total)
    currents = [current for _, current, _ in body_calls]
    assert currents == sorted(currents) and len(currents) > 5
    part_total = params[1].get_size(datagen.boundary)
    assert part_calls[-1] == ("file", part_total, part_total)
    assert [c for _, c, _ in part_calls] == sorted(c for _, c, _ in part_calls)


def test_write_to_needs_a_fresh_body(tmp_path):
    datagen, _ = multipart_encode({"a": "b"})
    next(datagen)
    with RawServer(counting()) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=TIMEOUT)
        conn.connect()
        with pytest.raises(ValueError, match="reset"):
            datagen.write_to(conn.sock)
        conn.close()


# -- the handler set ---------------------------------------------------------------------------


def test_handlers_and_register_openers(echo_server, tmp_path):
    handlers = streaminghttp.get_handlers()
    assert StreamingHTTPSHandler in handlers and StreamingHTTPHandler in handlers
    assert StreamingHTTPHandler.handler_order == StreamingHTTPSHandler.handler_order == 499
    try:
        opener = streaminghttp.register_openers()
        assert isinstance(opener, urllib.request.OpenerDirector)
        kinds = {type(handler) for handler in opener.handlers}
        assert set(handlers) <= kinds
        assert not {urllib.request.HTTPHandler, urllib.request.HTTPSHandler} & kinds
        params, expected = sample_params(tmp_path)
        datagen, headers = multipart_encode(params)
        with urllib.request.urlopen(
            urllib.request.Request(echo_server.url + "/u", datagen, headers), timeout=TIMEOUT
        ) as response:
            check_fields(json.loads(response.read()), expected)
    finally:
        urllib.request.install_opener(None)


def test_http_client_connection_sends_bytes_files_and_iterables(echo_server, tmp_path):
    path, data = random_file(tmp_path, "raw.bin", 300_000)
    bodies = {
        "bytes": lambda: data,
        "file": lambda: open(path, "rb"),
        "iterable": lambda: [data[:1000], data[1000:]],
    }
    for kind, make in bodies.items():
        conn = StreamingHTTPConnection("127.0.0.1", echo_server.port, timeout=TIMEOUT)
        body = make()
        conn.request("POST", "/raw", body, {"Content-Length": str(len(data))})
        answer = json.loads(conn.getresponse().read())
        conn.close()
        if hasattr(body, "close"):
            body.close()
        assert answer["body"] == {"size": len(data), "sha256": sha(data)}, kind


# -- size ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_multi_gib_sparse_file(tmp_path, client_ssl_context):
    size = 3 * 1024**3 + 12345
    path = tmp_path / "sparse-3g.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    expected = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(size >> 20):
        expected.update(zeros)
    expected.update(bytes(size & ((1 << 20) - 1)))
    datagen, headers = multipart_encode([("note", "sparse"), MultipartParam.from_file("file", path)])
    opener = build_opener(client_ssl_context)
    with RawServer(multipart_digest) as raw:
        answer = open_json(opener, urllib.request.Request(raw.url + "/upload", datagen, headers), timeout=60)
    assert answer["size"] == len(datagen)
    file_field = [f for f in answer["fields"] if f["name"] == "file"][0]
    assert file_field == {"name": "file", "filename": "sparse-3g.bin", "size": size,
                          "sha256": expected.hexdigest()}
