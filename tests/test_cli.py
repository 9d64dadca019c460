"""The command line, run as a subprocess: ``python -m poster upload|serve|demo``.

Uploads go to a real ``poster serve`` process, to the werkzeug echo server (plain
and TLS) and to werkzeug apps that answer errors.  The receiver's parsing is
also driven in-process with bodies no client of poster would send (chunked,
cut short, malformed).
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import termios
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from werkzeug.wrappers import Request, Response

from servers import serve

TIMEOUT = 60
EXIT_HTTP_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_TLS, EXIT_BODY = 1, 2, 3, 4, 5


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def backend_name(backend: Any) -> str:
    return "python" if backend.__name__.endswith("_fastencode_py") else "cython"


@pytest.fixture
def cli_env(backend_name: str, tmp_path: Path) -> Dict[str, str]:
    """The environment of a CLI subprocess: the backend under test, no proxy."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.pop("POSTER_NO_EXTENSIONS", None)
    if backend_name == "python":
        env["POSTER_NO_EXTENSIONS"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_poster(
    *args: str, env: Dict[str, str], cwd: Path, stdin: Any = subprocess.DEVNULL,
    input: Optional[bytes] = None,
) -> subprocess.CompletedProcess:
    """``python -m poster ARGS`` (run away from the source tree, so the installed
    package is the one tested)."""
    return subprocess.run(
        [sys.executable, "-m", "poster", *args], env=env, cwd=cwd,
        stdin=None if input is not None else stdin, input=input,
        capture_output=True, timeout=TIMEOUT,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failure writes to stderr."""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("poster: error: ")
    return lines[0]


class ServeProcess:
    def __init__(self, process: subprocess.Popen, url: str, save_dir: Path) -> None:
        self.process, self.url, self.save_dir = process, url, save_dir


# ``python -m poster``, with Ctrl+C (SIGINT) raising KeyboardInterrupt even
# when the test run was started with SIGINT ignored (as a shell's background
# job is), which the child would otherwise inherit.
INTERRUPTIBLE_POSTER = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'poster'; runpy.run_module('poster', run_name='__main__', alter_sys=True)"
)


def start_serve(*args: str, env: Optional[Dict[str, str]] = None, cwd: Path) -> Tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE_POSTER, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
    assert ready, "poster serve printed nothing"
    line = process.stdout.readline().decode()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert match, (line, process.stderr.read() if process.poll() is not None else "")  # type: ignore[union-attr]
    return process, match.group(0)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(TIMEOUT)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``poster serve`` with a save directory and a 1 MiB limit, for this module."""
    root = tmp_path_factory.mktemp("serve")
    save_dir = root / "saved"
    process, url = start_serve("--quiet", "--save-dir", str(save_dir), "--max-size", "1M", cwd=root)
    try:
        yield ServeProcess(process, url, save_dir)
    finally:
        stop(process)


@pytest.fixture
def files(tmp_path: Path) -> Dict[str, Path]:
    paths = {
        "photo": tmp_path / "photo.jpg",
        "notes": tmp_path / "notes.txt",
        "semi": tmp_path / "a;b,c.bin",
    }
    paths["photo"].write_bytes(os.urandom(200_000))
    paths["notes"].write_bytes("première ligne\n".encode())
    paths["semi"].write_bytes(b"\x00\x01\x02")
    return paths


def refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- upload to poster serve ---------------------------------------------------------

def test_upload_to_serve(receiver: ServeProcess, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    photo, notes, semi = files["photo"].read_bytes(), files["notes"].read_bytes(), files["semi"].read_bytes()
    result = run_poster(
        "upload", receiver.url + "form?x=1",
        "-F", "comment=héllo",
        "-F", 'quoted="a;b"',
        "-F", f"photo=@{files['photo']}",
        "-F", f"notes=@{files['notes']};type=text/markdown;filename=renamed.md",
        "-F", f'odd=@"{files["semi"]}"',
        "-F", f"inline=<{files['notes']}",
        "-H", "X-Trace: 42",
        env=cli_env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""  # stderr is a pipe: no progress bar
    answer = json.loads(result.stdout)
    assert answer["method"] == "POST" and answer["path"] == "/form?x=1"
    headers = answer["headers"]
    assert headers["X-Trace"] == "42"
    assert int(headers["Content-Length"]) > len(photo)
    assert "Transfer-Encoding" not in headers
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    fields = {f["name"]: f for f in answer["fields"]}
    assert list(fields) == ["comment", "quoted", "photo", "notes", "odd", "inline"]
    assert fields["comment"]["value"] == "héllo" and fields["comment"]["filename"] is None
    assert fields["quoted"]["value"] == "a;b"
    assert (fields["photo"]["filename"], fields["photo"]["content_type"]) == ("photo.jpg", "image/jpeg")
    assert (fields["photo"]["size"], fields["photo"]["sha256"]) == (len(photo), _sha(photo))
    assert (fields["notes"]["filename"], fields["notes"]["content_type"]) == ("renamed.md", "text/markdown")
    assert fields["notes"]["sha256"] == _sha(notes)
    assert (fields["odd"]["filename"], fields["odd"]["sha256"]) == ("a;b,c.bin", _sha(semi))
    assert fields["inline"]["filename"] is None and fields["inline"]["value"] == notes.decode()
    # The files were saved, the text fields were not.
    for name, data in (("photo", photo), ("notes", notes), ("odd", semi)):
        saved = receiver.save_dir / fields[name]["saved_as"]
        assert saved.read_bytes() == data
    assert "saved_as" not in fields["comment"]


def test_upload_method_boundary_and_style(receiver: ServeProcess, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster(
        "upload", receiver.url, "-X", "PUT", "--boundary", "my-boundary",
        "-F", f"f=@{files['notes']};filename=résumé \"1\".txt",
        env=cli_env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["method"] == "PUT"
    assert answer["headers"]["Content-Type"] == "multipart/form-data; boundary=my-boundary"
    assert answer["fields"][0]["filename"] == "résumé %221%22.txt"  # html5 by default: UTF-8, as browsers send it

    result = run_poster("upload", receiver.url, "--style", "poster",
                        "-F", "f=@" + str(files["notes"]) + ";filename=résumé.txt", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fields"][0]["filename"] == "r&#233;sum&#233;.txt"  # poster 0.8.1's way


def test_upload_from_stdin(receiver: ServeProcess, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    data = os.urandom(50_000)
    piped = run_poster("upload", receiver.url, "-F", "f=@-;type=application/x-test", input=data,
                       env=cli_env, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    field = json.loads(piped.stdout)["fields"][0]
    assert (field["filename"], field["content_type"], field["size"], field["sha256"]) == (
        "-", "application/x-test", len(data), _sha(data))

    with open(files["photo"], "rb") as stdin:  # a regular file: sent as it is
        redirected = run_poster("upload", receiver.url, "-F", "t=<-", stdin=stdin, env=cli_env, cwd=tmp_path)
    assert redirected.returncode == 0, redirected.stderr
    field = json.loads(redirected.stdout)["fields"][0]
    assert field["filename"] is None and field["sha256"] == _sha(files["photo"].read_bytes())


def test_saved_filenames_stay_inside_save_dir(receiver: ServeProcess, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    outside = set(receiver.save_dir.parent.iterdir())
    hostile = ["../../evil.txt", "..", "/etc/passwd", "a\\..\\..\\b.txt", ".hidden", "x\x01y", "same.txt", "same.txt"]
    args = []
    for i, name in enumerate(hostile):
        args += ["-F", f'f{i}=@{files["notes"]};filename="{name}"']
    # html5: the filenames arrive as they are, control characters included,
    # but for the backslash, which html5 style writes %5C
    result = run_poster("upload", receiver.url, "--style", "html5", *args, env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)["fields"]
    assert [f["filename"] for f in fields] == [name.replace("\\", "%5C") for name in hostile]
    saved = [f["saved_as"] for f in fields]
    assert len(set(saved)) == len(saved)  # nothing overwritten
    assert saved[-2] != saved[-1] and saved[-1].startswith("same")
    for name in saved:
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        path = receiver.save_dir / name
        assert path.resolve().parent == receiver.save_dir.resolve()
        assert path.read_bytes() == files["notes"].read_bytes()
    assert set(receiver.save_dir.parent.iterdir()) == outside
    assert not [p for p in receiver.save_dir.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("expect_continue", [False, True])
def test_too_large_is_413(receiver: ServeProcess, tmp_path: Path, cli_env: Dict[str, str], expect_continue: bool) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1_100_000))  # over serve's 1 MiB limit
    before = set(receiver.save_dir.iterdir()) if receiver.save_dir.exists() else set()
    result = run_poster("upload", receiver.url, "-F", f"f=@{big}",
                        *(["--expect-continue"] if expect_continue else []), env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_HTTP_ERROR
    assert "HTTP 413" in error_line(result)
    assert "1048576" in json.loads(result.stdout)["error"]
    after = set(receiver.save_dir.iterdir()) if receiver.save_dir.exists() else set()
    assert after == before


# -- failures: one line and an exit status ------------------------------------------

def test_missing_file(receiver: ServeProcess, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", receiver.url, "-F", "a=1", "-F", "f=@no/such/file.bin", env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    line = error_line(result)
    assert "file not found" in line and "no/such/file.bin" in line
    assert result.stdout == b""


def test_directory_is_not_a_file(receiver: ServeProcess, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", receiver.url, "-F", f"f=@{tmp_path};type=a/b", env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert "is a directory" in error_line(result)


def test_connection_refused(cli_env: Dict[str, str], tmp_path: Path) -> None:
    port = refused_port()
    result = run_poster("upload", f"http://127.0.0.1:{port}/", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_CONNECTION
    assert f"connection refused by 127.0.0.1:{port}" in error_line(result)


def test_silent_server_times_out(cli_env: Dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = run_poster("upload", f"http://127.0.0.1:{port}/", "-F", "a=1", "--timeout", "1",
                            env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_CONNECTION
    assert f"127.0.0.1:{port} did not answer within 1 s" in error_line(result)
    assert time.monotonic() - started < 20


def status_app(environ: Dict[str, Any], start_response: Any) -> Any:
    """Answers the status named by the path, /status/503, after reading the body."""
    request = Request(environ)
    request.get_data()
    status = int(request.path.rsplit("/", 1)[-1])
    return Response(f"you asked for {status}\n", status=status)(environ, start_response)


@pytest.mark.parametrize("status", [404, 503])
def test_http_error_status(status: int, cli_env: Dict[str, str], tmp_path: Path) -> None:
    with serve(status_app) as server:
        result = run_poster("upload", f"{server.url}/status/{status}", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_HTTP_ERROR
    assert re.fullmatch(rf"poster: error: HTTP {status} [A-Za-z ]+ from POST {server.url}/status/{status}",
                        error_line(result))
    assert result.stdout == f"you asked for {status}\n".encode()  # the body still goes to stdout


def test_redirect_status_is_success(cli_env: Dict[str, str], tmp_path: Path) -> None:
    with serve(status_app) as server:
        result = run_poster("upload", f"{server.url}/status/204", "-F", "a=1", env=cli_env, cwd=tmp_path)
        assert result.returncode == 0 and result.stderr == b""
        result = run_poster("upload", f"{server.url}/status/304", "-F", "a=1", env=cli_env, cwd=tmp_path)
        assert result.returncode == 0 and result.stderr == b""


def test_tls(tls_echo_server: Any, trustme_ca: Any, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    args = ["upload", tls_echo_server.url + "/up", "-F", f"f=@{files['photo']}"]
    untrusted = run_poster(*args, env=cli_env, cwd=tmp_path)
    assert untrusted.returncode == EXIT_TLS
    line = error_line(untrusted)
    assert "not trusted" in line and "--cacert" in line

    ca = tmp_path / "ca.pem"
    trustme_ca.cert_pem.write_to_path(str(ca))
    trusted = run_poster(*args, "--cacert", str(ca), env=cli_env, cwd=tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    field = json.loads(trusted.stdout)["fields"][0]
    assert field["sha256"] == _sha(files["photo"].read_bytes())


def test_expect_continue_header_is_sent(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", echo_server.url, "--expect-continue", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["headers"]["Expect"] == "100-continue"
    assert answer["fields"][0]["value"] == "1"


def test_boundary_in_content(receiver: ServeProcess, tmp_path: Path, cli_env: Dict[str, str]) -> None:
    clash = tmp_path / "clash.txt"
    clash.write_bytes(b"line\n--xyz and more\n")
    result = run_poster("upload", receiver.url, "--boundary", "xyz", "-F", f"f=@{clash}", env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_BODY
    assert "boundary" in error_line(result)


@pytest.mark.parametrize("args, message", [
    ([], "nothing to send"),
    (["-F", "novalue"], "expected name=value"),
    (["-F", "=x"], "field name"),
    (["-F", "a=b;c"], "unknown attribute"),
    (["-F", "a=b;type=nonsense"], "not a media type"),
    (["-F", "f=@x,y"], "one file per -F"),
    (["-F", "f=@"], "no file name"),
    (["-F", "f=<x;filename=y"], "filename= goes with"),
    (["-F", "a=1", "-H", "no colon"], "expected 'Name: value'"),
    (["-F", "a=1", "-H", "Content-Length: 5"], "poster sets Content-Length"),
    (["-F", "a=1", "-X", "P T"], "not an HTTP method"),
    (["-F", "a=1", "--boundary", ""], "--boundary"),
    (["-F", "a=1", "--cacert", "no-such-ca.pem"], "--cacert"),
    (["-F", "f=@-", "-F", "g=<-"], "standard input"),
])
def test_bad_upload_arguments(args: List[str], message: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", f"http://127.0.0.1:{refused_port()}/", *args, env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert message in error_line(result)  # found before any connection is tried


@pytest.mark.parametrize("args, message", [
    (["upload", "ftp://example.org/", "-F", "a=1"], "http:// or https://"),
    (["upload", "http://127.0.0.1:1/", "-F", "a=1", "--timeout", "0"], "positive number"),
    (["serve", "--port", "70000"], "not a port"),
    (["demo", "--size", "lots"], "not a size"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments(args: List[str], message: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster(*args, env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr.decode()
    assert result.stdout == b""


# -- progress bar ---------------------------------------------------------------------

def read_pty_until_exit(process: subprocess.Popen, master: int) -> bytes:
    output = bytearray()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not data:
                break
            output += data
        elif process.poll() is not None:
            break
    process.wait(TIMEOUT)
    return bytes(output)


@pytest.mark.parametrize("window", [(24, 100), None], ids=["100-columns", "no-size"])
def test_progress_bar_on_a_terminal(echo_server: Any, tmp_path: Path, cli_env: Dict[str, str], window: Optional[Tuple[int, int]]) -> None:
    big = tmp_path / "big.bin"
    size = 20_000_000
    with open(big, "wb") as f:
        f.truncate(size)
    master, slave = pty.openpty()
    if window is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *window, 0, 0))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "poster", "upload", echo_server.url, "-F", f"f=@{big}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=cli_env, cwd=tmp_path,
        )
        os.close(slave)
        terminal = read_pty_until_exit(process, master).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert process.returncode == 0, terminal
    assert process.stdout is not None
    answer = json.loads(process.stdout.read())
    process.stdout.close()
    assert answer["fields"][0]["size"] == size
    assert "100%" in terminal
    assert re.search(r"20\.0M/20\.0M", terminal), terminal  # bytes sent / total
    assert re.search(r"\d+(\.\d+)?[kMG]?B/s", terminal), terminal  # rate
    assert "poster: error" not in terminal


def test_no_progress_on_a_pipe(echo_server: Any, tmp_path: Path, cli_env: Dict[str, str]) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(5_000_000)
    result = run_poster("upload", echo_server.url, "-F", f"f=@{big}", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == b""
    forced = run_poster("upload", echo_server.url, "-F", f"f=@{big}", "--progress", env=cli_env, cwd=tmp_path)
    assert forced.returncode == 0 and b"B/s" in forced.stderr


# -- demo -------------------------------------------------------------------------

def test_demo(tmp_path: Path, cli_env: Dict[str, str], backend_name: str) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(cli_env, TMPDIR=str(temp))
    result = run_poster("demo", "--size", "8M", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    line = result.stdout.decode()
    assert re.fullmatch(
        rf"poster demo: 8 MiB uploaded and sha256-verified in \d+\.\d\d s, \d+\.\d MB/s, backend {backend_name}\n",
        line,
    ), line
    assert list(temp.iterdir()) == []  # the generated file is gone


# -- serve ------------------------------------------------------------------------

def test_serve_port_in_use(tmp_path: Path, cli_env: Dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_poster("serve", "--port", str(busy.getsockname()[1]), env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_CONNECTION
    assert "cannot use 127.0.0.1:" in error_line(result)


def test_serve_stops_on_interrupt(tmp_path: Path, cli_env: Dict[str, str]) -> None:
    process, url = start_serve(env=cli_env, cwd=tmp_path)
    try:
        result = run_poster("upload", url, "-F", "a=1", env=cli_env, cwd=tmp_path)
        assert result.returncode == 0
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 0
        assert process.stderr is not None
        assert b'"POST / HTTP/1.1" 200' in process.stderr.read()  # one log line per request
    finally:
        stop(process)


def test_console_script(cli_env: Dict[str, str], tmp_path: Path, backend_name: str) -> None:
    script = Path(sysconfig.get_path("scripts")) / "poster"
    result = subprocess.run([str(script), "--version"], env=cli_env, cwd=tmp_path,
                            capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"poster \d+\.\d+\.\d+ \(backend {backend_name}\)\n", result.stdout.decode())


# -- the receiver, in-process, with bodies poster would not send ------------------------

@pytest.fixture
def in_process_receiver(tmp_path: Path) -> Iterator[Any]:
    from poster.receiver import ReceiverServer, serving_in_thread

    with serving_in_thread(ReceiverServer(save_dir=str(tmp_path / "saved"), max_size=100_000, quiet=True)) as server:
        yield server


def post_raw(server: Any, body: Any, headers: Dict[str, str], method: str = "POST", chunked: bool = False) -> Tuple[int, Dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=TIMEOUT)
    try:
        connection.request(method, "/", body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_receiver_chunked_body(in_process_receiver: Any) -> None:
    import io

    from poster.encode import multipart_encode

    data = os.urandom(30_000)
    datagen, headers = multipart_encode([("a", "1"), ("f", io.BytesIO(data))])
    del headers["Content-Length"]
    whole = b"".join(datagen)
    pieces = [whole[i:i + 7777] for i in range(0, len(whole), 7777)]
    status, answer = post_raw(in_process_receiver, iter(pieces), headers, chunked=True)
    assert status == 200, answer
    assert answer["headers"]["Transfer-Encoding"] == "chunked"
    assert [(f["name"], f["size"], f["sha256"]) for f in answer["fields"]] == [
        ("a", 1, _sha(b"1")), ("f", len(data), _sha(data))]

    status, answer = post_raw(in_process_receiver, iter([data[:100], data[100:]]),
                              {"Content-Type": "application/octet-stream"}, method="PUT", chunked=True)
    assert status == 200
    assert answer["body"] == {"size": len(data), "sha256": _sha(data)}


def test_receiver_chunked_body_over_limit(in_process_receiver: Any) -> None:
    status, answer = post_raw(in_process_receiver, iter([b"x" * 60_000, b"y" * 60_000]),
                              {"Content-Type": "application/octet-stream"}, chunked=True)
    assert status == 413 and "100000" in answer["error"]


def test_receiver_refuses_incomplete_bodies(in_process_receiver: Any, tmp_path: Path) -> None:
    import io

    from poster.encode import multipart_encode

    datagen, headers = multipart_encode([("f", io.BytesIO(os.urandom(5000)))], boundary="b0undary")
    whole = b"".join(datagen)
    cut = whole[: whole.index(b"--b0undary--")]  # no close delimiter
    status, answer = post_raw(in_process_receiver, cut, dict(headers, **{"Content-Length": str(len(cut))}))
    assert status == 400 and "close delimiter" in answer["error"]

    status, answer = post_raw(in_process_receiver, b"garbage" * 10, headers | {"Content-Length": "70"})
    assert status == 400 and "malformed" in answer["error"]

    status, answer = post_raw(in_process_receiver, b"", {"Content-Type": "multipart/form-data", "Content-Length": "0"})
    assert status == 400 and "boundary" in answer["error"]

    saved = tmp_path / "saved"
    assert not saved.exists() or list(saved.iterdir()) == []  # nothing half-written is kept


def test_receiver_needs_a_length(in_process_receiver: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", in_process_receiver.server_port, timeout=TIMEOUT)
    try:
        connection.putrequest("POST", "/")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 411
    finally:
        connection.close()


@pytest.mark.parametrize("filename, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "__.._etc_passwd"),
    ("..", "upload"),
    (".", "upload"),
    ("...x", "_x"),
    ("", "upload"),
    ("/", "upload"),
    ("C:\\Users\\me\\x.txt", "C:_Users_me_x.txt"),
    (".bashrc", "_bashrc"),
    ("a\x00b\nc", "a_b_c"),
    ("é" * 300, "é" * 100),
])
def test_safe_filename(filename: str, expected: str) -> None:
    from poster.receiver import safe_filename

    assert safe_filename(filename) == expected


# -- messages -------------------------------------------------------------------------

def test_human_sizes() -> None:
    from poster.cli import _human

    assert [_human(n) for n in (0, 1, 2, 1023, 1024, 8 << 20)] == [
        "0 bytes", "1 byte", "2 bytes", "1023 bytes", "1 KiB", "8 MiB"]


def test_large_body_hint_only_for_large_bodies(cli_env: Dict[str, str], tmp_path: Path) -> None:
    """A server that closes the connection without answering: the hint that it
    may refuse bodies this large comes only with a body of 1 MiB or more."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def drop_two() -> None:
        with listener:
            for _ in range(2):
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(TIMEOUT)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        block = connection.recv(65536)
                        if not block:
                            break
                        data += block

    thread = threading.Thread(target=drop_two, daemon=True)
    thread.start()
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (1 << 20))
    small = run_poster("upload", f"http://127.0.0.1:{port}/", "-F", "a=1", env=cli_env, cwd=tmp_path)
    large = run_poster("upload", f"http://127.0.0.1:{port}/", "-F", f"f=@{big}", env=cli_env, cwd=tmp_path)
    thread.join(TIMEOUT)
    assert small.returncode == large.returncode == EXIT_CONNECTION
    assert "closed the connection" in error_line(small) and "bodies this large" not in error_line(small)
    assert "bodies this large" in error_line(large)


@pytest.mark.parametrize("args, message", [
    (["-F", "a=1", "-H", "@no-such-headers.txt"], "-H @no-such-headers.txt: file not found"),
    (["-F", "a=1", "-b", "cookies.txt"], "reading cookies from a file is not supported"),
    (["--form-string", "novalue"], "expected name=value"),
    (["-F", 'a=1;headers="X-A"'], "is not 'Name: value'"),
    (["-F", "f=@x;type=text/plain;charset"], "not a media type"),
    (["-F", "a=1", "-w", "%{nonsense}"], "unknown variable"),
    (["-F", "a=1", "--retry", "-1"], "--retry -1"),
    (["-F", "a=1", "-H", "Host:"], "cannot be left out"),
])
def test_bad_curl_style_arguments(args: List[str], message: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", f"http://127.0.0.1:{refused_port()}/", *args, env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert message in error_line(result)


def test_silent_hides_errors_unless_show_error(cli_env: Dict[str, str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{refused_port()}/"
    silent = run_poster("upload", url, "-F", "a=1", "-s", env=cli_env, cwd=tmp_path)
    assert silent.returncode == EXIT_CONNECTION and silent.stderr == b""
    shown = run_poster("upload", url, "-F", "a=1", "-sS", env=cli_env, cwd=tmp_path)
    assert shown.returncode == EXIT_CONNECTION and "connection refused" in error_line(shown)


def test_missing_extras_hint_names_the_distribution() -> None:
    from poster.cli import INSTALL_HINT

    assert "poster-py3[cli]" in INSTALL_HINT and ".[cli]" in INSTALL_HINT


def test_a_redirect_from_https_to_http_is_not_followed(tls_echo_server: Any, echo_server: Any, trustme_ca: Any,
                                                         cli_env: Dict[str, str], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme_ca.cert_pem.write_to_path(str(ca))
    url = f"{tls_echo_server.url}/redirect/307?to={echo_server.url}/landed"
    result = run_poster("upload", url, "-L", "--cacert", str(ca), "-F", "secret=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 7
    assert "unencrypted" in error_line(result)


def test_an_invalid_url_error_does_not_show_the_password(cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", "http://user:s3cr3t@127.0.0.1:99999/", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert b"s3cr3t" not in result.stderr and "invalid URL" in error_line(result)


@pytest.mark.parametrize("option", ["-A", "-e", "-b"])
def test_a_line_break_in_a_header_option_is_a_usage_error(option: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    value = "k=x\r\nX-Injected: 1" if option == "-b" else "x\r\n X-Fold: 1"
    result = run_poster("upload", "http://127.0.0.1:9/", option, value, "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "line break" in error_line(result)


def test_a_custom_host_goes_to_the_first_origin_only(cli_env: Dict[str, str], tmp_path: Path) -> None:
    from servers import serve

    with serve() as first, serve() as second:
        other = f"http://localhost:{second.port}/landed"
        result = run_poster("upload", f"{first.url}/redirect/307?to={other}", "-L", "-H", "Host: internal.example",
                            "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["headers"]["Host"] == f"localhost:{second.port}"


def test_what_a_server_says_is_shown_without_its_escape_sequences(cli_env: Dict[str, str], tmp_path: Path) -> None:
    from rawservers import RawServer, read_body, respond

    def answer(conn: Any, record: Any) -> None:
        read_body(conn, record)
        respond(conn, "302 Found\x1b]0;owned\x07", extra="Location: /x\x1b[2J\x07\r\n")

    with RawServer(answer) as server:
        result = run_poster("upload", server.url + "/", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"points to" in result.stderr
    assert b"\x1b" not in result.stderr and b"\x07" not in result.stderr
    assert b"\\x1b" in result.stderr  # shown, not obeyed


@pytest.mark.parametrize("option", ["--timeout", "--retry-delay"])
@pytest.mark.parametrize("value", ["inf", "nan", "1e300"])
def test_endless_times_are_usage_errors(option: str, value: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", "http://127.0.0.1:9/", option, value, "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("follow", [False, True])
def test_a_location_that_is_no_url_is_a_clear_answer(follow: bool, cli_env: Dict[str, str], tmp_path: Path) -> None:
    from rawservers import RawServer, read_body, respond

    def answer(conn: Any, record: Any) -> None:
        read_body(conn, record)
        respond(conn, "307 Temporary Redirect", extra="Location: http://[::1\r\n")

    with RawServer(answer) as server:
        result = run_poster("upload", server.url + "/", *(["-L"] if follow else []), "-F", "a=1",
                            env=cli_env, cwd=tmp_path)
    assert b"Traceback" not in result.stderr
    assert result.returncode == (7 if follow else 0), result.stderr


def test_an_empty_user_agent_or_referer_is_left_out(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", echo_server.url, "-A", "", "-e", "", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout)["headers"]
    assert "User-Agent" not in headers and "Referer" not in headers
