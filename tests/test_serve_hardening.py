"""``poster serve`` against clients no well-behaved client would be.

A real ``poster serve`` process (with ``--save-dir`` and ``--max-size 1M``)
is driven over raw sockets on 127.0.0.1: chunk sizes that ``int(..., 16)``
would take but HTTP does not, file names with C1 and bidirectional controls,
``filename*=``, and requests that end in every error status it has, which
must all be answered as JSON.  Nothing of a refused request may be left in
the save directory.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

TIMEOUT = 30
SOCKET_TIMEOUT = 10.0
MAX_ANSWER = 1 << 20
EXIT_USAGE = 2


def serve_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class Serve:
    def __init__(self, process: subprocess.Popen, port: int, save_dir: Path) -> None:
        self.process, self.port, self.save_dir = process, port, save_dir

    def saved(self) -> List[str]:
        """Every name in the save directory, hidden temporary files included."""
        return sorted(os.listdir(self.save_dir)) if self.save_dir.exists() else []


def start_serve(root: Path, *args: str) -> Serve:
    save_dir = root / "saved"
    process = subprocess.Popen(
        [sys.executable, "-m", "poster", "serve", "--port", "0", "--quiet",
         "--save-dir", str(save_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root, env=serve_env(),
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
    assert ready, "poster serve printed nothing"
    line = process.stdout.readline().decode()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    return Serve(process, int(match.group(1)), save_dir)


def stop(serve: Serve) -> None:
    if serve.process.poll() is None:
        serve.process.terminate()
    serve.process.wait(TIMEOUT)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """``poster serve --save-dir DIR --max-size 1M`` for this module."""
    serve = start_serve(tmp_path_factory.mktemp("serve"), "--max-size", "1M")
    try:
        yield serve
    finally:
        stop(serve)


class Answer:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        assert self.headers.get("content-type", "").split(";")[0] == "application/json", self.headers
        return json.loads(self.body)


def exchange(port: int, *pieces: bytes, pause: float = 0.0) -> Answer:
    """Send ``pieces`` on a new connection (``pause`` s apart) and read the answer.

    Sending stops quietly when the server has closed its side already.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:
                break
            time.sleep(pause)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> Answer:
    data = bytearray()
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while b"\r\n\r\n" not in data:
        assert time.monotonic() < deadline and len(data) < MAX_ANSWER, "no complete answer head"
        block = sock.recv(65536)
        assert block, f"closed without an answer: {bytes(data)!r}"
        data += block
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body_data = bytearray(body)
    while len(body_data) < length:
        assert time.monotonic() < deadline, "the answer's body did not come"
        block = sock.recv(65536)
        if not block:
            break
        body_data += block
    return Answer(status, headers, bytes(body_data[:length]))


def request_head(method: str = "POST", path: str = "/", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


BOUNDARY = "hardening0boundary"


def file_part(disposition: bytes, content: bytes) -> bytes:
    return (
        b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"f\"; " + disposition
        + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    )


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


# -- 4. chunk sizes are hex digits, nothing else ----------------------------------------


BAD_CHUNK_SIZES = [b"-1", b"+5", b"0x5", b"0_5", b"", b" 5", b"5 ", b"5\t", b"5 5", b"\t5",
                   b"1" * 17, b"g", b"5g", b"\xd9\xa5", b";ext", b"-0"]


@pytest.mark.parametrize("size", BAD_CHUNK_SIZES)
def test_bad_chunk_size_is_400(receiver: Serve, size: bytes) -> None:
    # Followed by what a lax parser would take for a chunk of 5 and the end.
    answer = exchange(
        receiver.port,
        request_head("PUT", Content_Type="application/octet-stream", Transfer_Encoding="chunked")
        + size + b"\r\nzzzzz\r\n0\r\n\r\n",
    )
    assert answer.status == 400, answer.body
    assert "chunk size" in answer.json()["error"]


@pytest.mark.parametrize("size", BAD_CHUNK_SIZES)
def test_bad_chunk_size_in_a_form_is_400_and_nothing_is_saved(receiver: Serve, size: bytes) -> None:
    before = receiver.saved()
    first = multipart(file_part(b'filename="chunky.bin"', os.urandom(1000)))[:600]
    answer = exchange(
        receiver.port,
        request_head(Content_Type=MULTIPART, Transfer_Encoding="chunked")
        + f"{len(first):x}\r\n".encode() + first + b"\r\n",
        size + b"\r\n" + b"x" * 65536,
        pause=0.1,
    )
    assert answer.status == 400, answer.body
    assert "chunk size" in answer.json()["error"]
    assert receiver.saved() == before


def test_negative_chunk_size_does_not_read_past_max_size(receiver: Serve) -> None:
    """``-1`` once read the body to its end, whatever --max-size said."""
    before = receiver.saved()
    started = time.monotonic()
    answer = exchange(
        receiver.port,
        request_head(Content_Type=MULTIPART, Transfer_Encoding="chunked") + b"-1\r\n",
        *[multipart(file_part(b'filename="big.bin"', b"y" * (1 << 20)))] * 3,
    )
    assert answer.status == 400 and "chunk size" in answer.json()["error"]
    assert time.monotonic() - started < 8
    assert receiver.saved() == before


@pytest.mark.parametrize("size_line", [b"5", b"05", b"0000000000000005", b"5;name=value", b"5 ;ext", b"5;a;b=\"c\"",
                                       b"A", b"a"])
def test_good_chunk_sizes_are_taken(receiver: Serve, size_line: bytes) -> None:
    size = int(size_line.split(b";")[0], 16)
    answer = exchange(
        receiver.port,
        request_head("PUT", Content_Type="application/octet-stream", Transfer_Encoding="chunked")
        + size_line + b"\r\n" + b"z" * size + b"\r\n0\r\n\r\n",
    )
    assert answer.status == 200, answer.body
    assert answer.json()["body"]["size"] == size


def test_chunk_not_followed_by_crlf_is_400(receiver: Serve) -> None:
    answer = exchange(
        receiver.port,
        request_head("PUT", Content_Type="application/octet-stream", Transfer_Encoding="chunked")
        + b"5\r\nzzzzzXX\r\n0\r\n\r\n",
    )
    assert answer.status == 400 and "chunk" in answer.json()["error"]


def test_endless_trailers_are_refused(receiver: Serve) -> None:
    answer = exchange(
        receiver.port,
        request_head("PUT", Content_Type="application/octet-stream", Transfer_Encoding="chunked")
        + b"1\r\nz\r\n0\r\n" + b"X-Trailer: 1\r\n" * 100 + b"\r\n",
    )
    assert answer.status == 431 and "trailer" in answer.json()["error"]


# -- 5. saved names ------------------------------------------------------------------------


def upload_named(receiver: Serve, disposition: bytes, content: bytes = b"named content\n") -> Dict[str, Any]:
    body = multipart(file_part(disposition, content))
    answer = exchange(receiver.port, request_head(Content_Type=MULTIPART, Content_Length=str(len(body))) + body)
    assert answer.status == 200, answer.body
    [field] = answer.json()["fields"]
    saved = receiver.save_dir / field["saved_as"]
    assert saved.read_bytes() == content
    assert saved.parent == receiver.save_dir
    return field


CONTROLS = ["\x80", "\x85", "\x9b", "\x9f", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d",
            "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u2028", "\u2029", "\u061c"]


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_c1_and_bidi_controls_become_underscores(receiver: Serve, control: str) -> None:
    name = f"invoice{control}fdp.exe"
    field = upload_named(receiver, b'filename="' + name.encode("utf-8") + b'"')
    assert field["filename"] == name  # the answer says what was sent
    assert re.fullmatch(r"invoice_fdp(-\d+)?\.exe", field["saved_as"]), field["saved_as"]


def test_latin1_c1_byte_becomes_an_underscore(receiver: Serve) -> None:
    # Not UTF-8, so read as Latin-1: 0x85 is NEL, a C1 control.
    field = upload_named(receiver, b'filename="line\x85break.txt"')
    assert re.fullmatch(r"line_break(-\d+)?\.txt", field["saved_as"]), field["saved_as"]


@pytest.mark.parametrize("name, ending", [
    ("a" * 300 + ".txt", ".txt"),
    ("é" * 300 + ".tar.gz", ".gz"),
    ("b" * 250 + ".jpeg", ".jpeg"),
])
def test_long_names_keep_their_extension(receiver: Serve, name: str, ending: str) -> None:
    field = upload_named(receiver, b'filename="' + name.encode("utf-8") + b'"')
    saved = field["saved_as"]
    assert re.search(rf"(-\d+)?{re.escape(ending)}\Z", saved), saved
    assert len(saved.encode("utf-8")) <= 210
    assert saved.startswith(name[:50])


def test_extended_filename_alone_makes_a_file(receiver: Serve) -> None:
    field = upload_named(receiver, b"filename*=UTF-8''na%C3%AFve.txt")
    assert field["filename"] == "naïve.txt"
    assert re.fullmatch(r"naïve(-\d+)?\.txt", field["saved_as"]), field["saved_as"]
    assert "value" not in field  # a file, not a text field


@pytest.mark.parametrize("disposition, saved", [
    (b"filename*=utf-8''..%2F..%2Fescape%E2%80%AE.txt", r"__.._escape_(-\d+)?\.txt"),
    (b"filename*=ISO-8859-1'fr'%E9t%E9.txt", r"été(-\d+)?\.txt"),
    (b"filename=\"plain.txt\"; filename*=UTF-8''pr%C3%A9f%C3%A9r%C3%A9.txt", r"préféré(-\d+)?\.txt"),
    (b"filename*=UTF-8''%C2%85%E2%80%A8x.txt", r"__x(-\d+)?\.txt"),
])
def test_extended_filename_is_sanitised(receiver: Serve, disposition: bytes, saved: str) -> None:
    field = upload_named(receiver, disposition)
    assert re.fullmatch(saved, field["saved_as"]), field["saved_as"]


# -- 6. every answer is JSON ------------------------------------------------------------------


def assert_json_error(answer: Answer, status: int) -> Dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body)
    payload = answer.json()
    assert isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"]
    assert int(answer.headers["content-length"]) == len(answer.body)
    return payload


ERRORS = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "bad version": (b"GET / HTTP/1.x\r\n\r\n", 400),
    "HTTP/0.9 POST": (b"POST /\r\n", 400),
    "bad Content-Length": (request_head(Content_Length="12abc"), 400),
    "both lengths": (request_head(Content_Length="5", Transfer_Encoding="chunked"), 400),
    "bad chunk size": (request_head(Transfer_Encoding="chunked") + b"-1\r\n", 400),
    "malformed multipart": (request_head(Content_Type=MULTIPART, Content_Length="7") + b"garbage", 400),
    "no boundary": (request_head(Content_Type="multipart/form-data", Content_Length="0"), 400),
    "DELETE": (request_head("DELETE"), 405),
    "OPTIONS": (request_head("OPTIONS"), 405),
    "no length": (request_head(), 411),
    "too large": (request_head(Content_Length=str(2 << 20)), 413),
    "too large, Expect": (request_head(Content_Length=str(2 << 20), Expect="100-continue"), 413),
    "request line too long": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    "header line too long": (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", 431),
    "part headers too large": (
        request_head(Content_Type=MULTIPART, Content_Length="20100")
        + (b"--" + BOUNDARY.encode() + b"\r\nX-Long: " + b"h" * 20_000 + b"\r\n").ljust(20_100, b"h"),
        431,
    ),
    "unknown method": (request_head("BREW"), 501),
    "gzip body": (request_head(Transfer_Encoding="gzip"), 501),
    "HTTP/2": (b"GET / HTTP/2.0\r\n\r\n", 505),
}


@pytest.mark.parametrize("request_bytes, status", list(ERRORS.values()), ids=list(ERRORS))
def test_every_error_is_json(receiver: Serve, request_bytes: bytes, status: int) -> None:
    assert_json_error(exchange(receiver.port, request_bytes), status)


def test_405_says_what_is_allowed(receiver: Serve) -> None:
    answer = exchange(receiver.port, request_head("DELETE"))
    assert_json_error(answer, 405)
    assert "POST" in answer.headers["allow"]


def test_head_and_get_are_json(receiver: Serve) -> None:
    get = exchange(receiver.port, request_head("GET", Connection="close"))
    assert get.status == 200 and "receiver" in get.json()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(request_head("HEAD", Connection="close"))
        data = b""
        deadline = time.monotonic() + SOCKET_TIMEOUT
        while time.monotonic() < deadline:
            block = sock.recv(65536)
            if not block:
                break
            data += block
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"application/json" in head
    assert body == b""


def test_save_failure_is_json_500(tmp_path: Path) -> None:
    serve = start_serve(tmp_path)
    try:
        shutil.rmtree(serve.save_dir)  # gone while serving: the upload cannot be saved
        body = multipart(file_part(b'filename="lost.bin"', b"lost"))
        answer = exchange(serve.port, request_head(Content_Type=MULTIPART, Content_Length=str(len(body))) + body)
        payload = assert_json_error(answer, 500)
        assert "cannot save" in payload["error"]
    finally:
        stop(serve)


# -- 7. --save-dir that is not a directory ----------------------------------------------------


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_save_dir_that_is_a_file_is_a_usage_error(tmp_path: Path, where: str) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("not a directory\n")
    target = path if where == "a file" else path / "sub"
    result = subprocess.run(
        [sys.executable, "-m", "poster", "serve", "--port", "0", "--save-dir", str(target)],
        env=serve_env(), cwd=tmp_path, capture_output=True, timeout=TIMEOUT,
    )
    assert result.returncode == EXIT_USAGE, result
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("poster: error: cannot use --save-dir ")
    assert "Not a directory" in lines[0]
    assert result.stdout == b""
    assert path.read_text() == "not a directory\n"


@pytest.mark.parametrize("framing", [
    b"Content-Length: 0\r\nContent-Length: 39\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
], ids=["two lengths", "two encodings"])
def test_two_framings_are_refused(receiver: Serve, framing: bytes) -> None:
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" + framing + b"\r\n"
    answer = exchange(receiver.port, head + b"0\r\n\r\n" + b"x" * 34)
    assert_json_error(answer, 400)


def test_a_get_with_a_body_closes_the_connection(receiver: Serve) -> None:
    # The unread body must never be taken for a second request.
    smuggled = request_head("DELETE", "/")
    head = request_head("GET", "/", Content_Length=str(len(smuggled)))
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(head + smuggled)
        answer = read_answer(sock)
        assert answer.status == 200 and answer.headers.get("connection") == "close"
        rest = b""
        while True:
            block = sock.recv(65536)
            if not block:
                break
            rest += block
    assert rest == b""  # no second answer (a 405 for the DELETE)


# -- 8. boundaries and preambles --------------------------------------------------------------


def form_with_boundary(boundary: str, preamble: bytes = b"") -> bytes:
    return preamble + (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--{boundary}--\r\n"
    ).encode()


@pytest.mark.parametrize("length", [70, 200, 256])
def test_a_boundary_up_to_256_characters_is_taken(receiver: Serve, length: int) -> None:
    boundary = "b" * length
    body = form_with_boundary(boundary)
    answer = exchange(receiver.port, request_head(
        Content_Type=f"multipart/form-data; boundary={boundary}", Content_Length=str(len(body))) + body)
    assert answer.status == 200, answer.body
    assert [(f["name"], f["value"]) for f in answer.json()["fields"]] == [("a", "value")]


@pytest.mark.parametrize("length", [257, 1000, 8000])
def test_a_longer_boundary_is_400_never_500(receiver: Serve, length: int) -> None:
    boundary = "b" * length
    body = form_with_boundary(boundary)
    answer = exchange(receiver.port, request_head(
        Content_Type=f"multipart/form-data; boundary={boundary}", Content_Length=str(len(body))) + body)
    payload = assert_json_error(answer, 400)
    assert f"boundary is {length} characters long" in payload["error"] and "at most 256" in payload["error"]


PREAMBLES = {
    "a line": b"This is a multi-part message in MIME format.\r\n",
    "lines": b"one\r\ntwo\r\n\r\n--not the boundary\r\n",
    "a blank line": b"\r\n",
    "binary": bytes(range(256)) + b"\r\n",
    "large": b"p" * 300_000 + b"\r\n",
}


@pytest.mark.parametrize("preamble", list(PREAMBLES.values()), ids=list(PREAMBLES))
def test_a_preamble_is_ignored(receiver: Serve, preamble: bytes) -> None:
    body = multipart(file_part(b'filename="after-preamble.txt"', b"the content"))
    body = preamble + body + b"an epilogue, ignored too\r\n"
    answer = exchange(receiver.port, request_head(Content_Type=MULTIPART, Content_Length=str(len(body))) + body)
    assert answer.status == 200, answer.body
    [field] = answer.json()["fields"]
    assert field["filename"] == "after-preamble.txt" and field["size"] == len(b"the content")


def test_a_delimiter_split_across_reads_after_a_preamble(receiver: Serve) -> None:
    body = b"preamble\r\n" + multipart(file_part(b'filename="split.txt"', b"split"))
    cut = len(b"preamble\r\n--hard")
    head = request_head(Content_Type=MULTIPART, Content_Length=str(len(body)))
    answer = exchange(receiver.port, head + body[:cut], body[cut:], pause=0.2)
    assert answer.status == 200, answer.body
    assert [f["filename"] for f in answer.json()["fields"]] == ["split.txt"]


def test_a_body_without_a_delimiter_is_400(receiver: Serve) -> None:
    body = b"no delimiter in here\r\n--other\r\n"
    answer = exchange(receiver.port, request_head(Content_Type=MULTIPART, Content_Length=str(len(body))) + body)
    payload = assert_json_error(answer, 400)
    assert "no line in it is a delimiter" in payload["error"]


# -- 9. -q, and clients that take their time --------------------------------------------------


def test_quiet_logs_nothing(tmp_path: Path) -> None:
    serve = start_serve(tmp_path)  # --quiet
    try:
        good = multipart(file_part(b'filename="fine.txt"', b"fine"))
        bad = b"--" + BOUNDARY.encode() + b"\r\nbroken header line\r\n\r\n"
        answers = [
            exchange(serve.port, request_head(Content_Type=MULTIPART, Content_Length=str(len(good))) + good),
            exchange(serve.port, request_head(Content_Type=MULTIPART, Content_Length=str(len(bad))) + bad),
            exchange(serve.port, b"GARBAGE\r\n\r\n"),
            exchange(serve.port, request_head("DELETE")),
        ]
        assert [a.status for a in answers] == [200, 400, 400, 405]
    finally:
        stop(serve)
    assert serve.process.stderr is not None
    assert serve.process.stderr.read() == b""


def trickle_head(port: int, interval: float, longest: float) -> float:
    """Send a request head a byte every ``interval`` s, for at most ``longest``
    s; the seconds until the server closed the connection."""
    head = request_head(Content_Length="0", X_Slow="x" * 200)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        for byte in head[:-1]:
            if time.monotonic() - started > longest:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: closed
                break
            if select.select([sock], [], [], interval)[0]:
                try:
                    if not sock.recv(65536):
                        break
                except OSError:
                    break
    return time.monotonic() - started


def test_a_trickled_request_head_is_dropped_after_the_timeout(tmp_path: Path) -> None:
    serve = start_serve(tmp_path, "--timeout", "1")
    try:
        closed_after = trickle_head(serve.port, interval=0.1, longest=15.0)
        assert 0.9 < closed_after < 4.0, closed_after
        # The server still answers, and a head that comes in time is taken.
        answer = exchange(serve.port, request_head("GET", Connection="close"))
        assert answer.status == 200
    finally:
        stop(serve)


def test_serve_timeout_must_be_a_positive_number(tmp_path: Path) -> None:
    for value in ("0", "-1", "soon"):
        result = subprocess.run(
            [sys.executable, "-m", "poster", "serve", "--port", "0", "--timeout", value],
            env=serve_env(), cwd=tmp_path, capture_output=True, timeout=TIMEOUT,
        )
        assert result.returncode == EXIT_USAGE and b"--timeout" in result.stderr
