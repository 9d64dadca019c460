"""Hostile and broken peers: every one ends in a clean exception, in time.

Raw-socket servers on 127.0.0.1 answer garbage, close early, trickle one byte
a second, or count exactly what arrived; certificates made by trustme are
self-signed, for another host, or expired.  Boundaries forged in file content
at every offset around a window edge never reach the server, and a file
changed by another thread during an upload never yields a complete request.
"""

from __future__ import annotations

import datetime
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from poster._send import SEND_WINDOW as _SEND_WINDOW
from poster.encode import (
    BoundaryCollisionError,
    ContentSizeError,
    MultipartParam,
    multipart_encode,
)
from poster.streaminghttp import StreamingHTTPConnection, StreamingHTTPHandler, StreamingHTTPSHandler
from rawservers import RawServer, counting, read_body

TIMEOUT = 2.0
CONNECT_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)


def _upload(url, tmp_path, size=100_000, opener=None, timeout=TIMEOUT):
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(size))
    datagen, headers = multipart_encode([("note", "hi"), MultipartParam.from_file("file", path)])
    opener = opener or urllib.request.build_opener(StreamingHTTPHandler())
    return opener.open(urllib.request.Request(url, datagen, headers), timeout=timeout)


def _timed(function):
    started = time.monotonic()
    with pytest.raises(CONNECT_ERRORS) as info:
        function()
    return time.monotonic() - started, info.value


def answer_garbage(conn, record):
    read_body(conn, record)
    conn.sendall(b"\x00\xffthis is not HTTP at all\r\n\r\n")


def close_after_head(conn, record):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def close_after_body(conn, record):
    read_body(conn, record)


def trickle_response(conn, record):
    read_body(conn, record)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
        conn.sendall(bytes([byte]))
        time.sleep(1.0)


def trickle_reading(conn, record):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and conn.recv(1):
        record.body_bytes += 1
        time.sleep(1.0)


@pytest.mark.parametrize("behaviour", [answer_garbage, close_after_head, close_after_body, trickle_response])
def test_broken_server_gives_a_clean_exception_within_the_timeout(tmp_path, behaviour):
    with RawServer(behaviour) as raw:
        elapsed, error = _timed(lambda: _upload(raw.url + "/upload", tmp_path).read())
    assert elapsed < TIMEOUT + 1.5, f"{behaviour.__name__} held the client {elapsed:.1f} s"
    assert not isinstance(error, AssertionError)


def test_server_reading_a_byte_a_second_times_out(tmp_path):
    with RawServer(trickle_reading, rcvbuf=4096) as raw:
        elapsed, error = _timed(lambda: _upload(raw.url + "/upload", tmp_path, size=8 << 20).read())
    assert elapsed < TIMEOUT + 1.5
    reason = getattr(error, "reason", error)
    assert isinstance(reason, (TimeoutError, ConnectionError))


# -- TLS: refused by default -----------------------------------------------------------


def _tls_server_context(ca, *identities, **validity):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*identities, **validity).configure_cert(context)
    return context


@pytest.mark.parametrize("kind", ["self-signed", "wrong host", "expired"])
def test_bad_certificates_are_refused_by_default(tmp_path, trustme_ca, client_ssl_context, kind):
    import trustme

    now = datetime.datetime.now(datetime.timezone.utc)
    if kind == "self-signed":
        context = _tls_server_context(trustme.CA(), "127.0.0.1")  # a CA nobody trusts
        client = None
    elif kind == "wrong host":
        context = _tls_server_context(trustme_ca, "other.example")
        client = client_ssl_context
    else:
        context = _tls_server_context(trustme_ca, "127.0.0.1", not_before=now - datetime.timedelta(days=30),
                                      not_after=now - datetime.timedelta(days=1))
        client = client_ssl_context
    opener = urllib.request.build_opener(StreamingHTTPSHandler(context=client))
    with RawServer(counting(), ssl_context=context) as raw:
        with pytest.raises(urllib.error.URLError) as info:
            _upload(raw.url + "/upload", tmp_path, opener=opener)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    expected = {"self-signed": "unable to get local issuer", "wrong host": "match", "expired": "expired"}[kind]
    assert expected in str(info.value.reason).lower() or expected in info.value.reason.verify_message.lower()


# -- forged boundaries and changing files, as the server sees them ----------------------


BOUNDARY = "f0rged" * 6
NEEDLE = b"\n--" + BOUNDARY.encode()


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("shift", range(-len(NEEDLE) - 1, 3))
def test_forged_boundary_around_a_window_edge_never_arrives(tmp_path, sendfile, shift):
    at = 2 * _SEND_WINDOW + shift
    data = bytearray(os.urandom(4 * _SEND_WINDOW)).replace(b"\n", b"\x00")
    data[at:at + len(NEEDLE)] = NEEDLE
    path = tmp_path / "forged.bin"
    path.write_bytes(bytes(data))
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)], boundary=BOUNDARY)
    head_size = len(MultipartParam.from_file("file", path).encode_hdr(BOUNDARY))
    with RawServer(counting(), keep_body=True) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10, sendfile=sendfile)
        with pytest.raises(BoundaryCollisionError):
            conn.request("POST", "/upload", datagen, headers)
        [record] = raw.wait(1)
    content = bytes(record.body)[head_size:]
    window_start = (at + 1) // _SEND_WINDOW * _SEND_WINDOW  # the window holding the '--'
    assert len(content) <= window_start
    assert NEEDLE not in content


@pytest.mark.parametrize("sendfile", [True, False])
@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_file_changed_by_another_thread_during_upload(tmp_path, sendfile, change):
    path = tmp_path / "moving.bin"
    path.write_bytes(os.urandom(32 << 20))
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
    halfway = threading.Event()

    def slow_reader(conn, record):
        read_body(conn, record, limit=4 << 20)
        halfway.set()
        conn.settimeout(10)
        read_body(conn, record)

    def change_file():
        halfway.wait(10)
        if change == "truncate":
            os.truncate(path, 8 << 20)
        else:
            with open(path, "ab") as f:
                f.write(b"late bytes")

    changer = threading.Thread(target=change_file)
    changer.start()
    with RawServer(slow_reader, rcvbuf=64 * 1024) as raw:
        conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10, sendfile=sendfile)
        with pytest.raises(ContentSizeError):
            conn.request("POST", "/upload", datagen, headers)
        changer.join(10)
        [record] = raw.wait(1)
    assert record.body_bytes < int(headers["Content-Length"])


def test_file_subclass_is_sent_as_it_reads_not_from_its_descriptor(tmp_path):
    # A tar member is a BufferedReader subclass reading part of the archive:
    # os.sendfile of its descriptor would send the archive's bytes.
    import tarfile

    member = tmp_path / "member.txt"
    member.write_bytes(b"member content\n" * 1000)
    archive = tmp_path / "archive.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(member, arcname="member.txt")
    with tarfile.open(archive) as tar:
        fileobj = tar.extractfile("member.txt")
        datagen, headers = multipart_encode([MultipartParam("f", fileobj=fileobj, filename="m.txt")])
        expected = b"".join(datagen)
        datagen.reset()
        with RawServer(counting(), keep_body=True) as raw:
            conn = StreamingHTTPConnection("127.0.0.1", raw.port, timeout=10)
            conn.request("POST", "/upload", datagen, headers)
            assert conn.getresponse().status == 200
            conn.close()
            [record] = raw.wait(1)
    assert bytes(record.body) == expected
