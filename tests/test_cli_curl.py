"""``poster upload`` beside the real ``curl``, on the same arguments.

Each case runs ``curl`` and ``poster upload`` against one server on
127.0.0.1 (the werkzeug echo server of tests/servers.py, or an app made
here) and compares what the server parsed: fields, filenames, content types,
sha256 of the contents and the request headers that matter.  Where poster
differs from curl on purpose, the test says so and checks both sides.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from werkzeug.wrappers import Request, Response

from rawservers import RawServer, counting, read_body
from servers import AUTH_PASSWORD, AUTH_USER, echo_payload, serve
from test_cli import EXIT_HTTP_ERROR, TIMEOUT, cli_env, backend_name, error_line, refused_port, run_poster  # noqa: F401

CURL = shutil.which("curl")
EXIT_USAGE, EXIT_CONNECTION, EXIT_REDIRECT, EXIT_FAIL = 2, 3, 7, 22

if CURL is None:  # CI has curl; a machine without it cannot compare
    pytest.skip("curl is not installed", allow_module_level=True)


def curl_env() -> Dict[str, str]:
    """The environment curl runs in: no proxies, and none of the sanitizer
    runtimes a sanitized test run preloads for poster (curl hangs under them)."""
    return {k: v for k, v in os.environ.items()
            if "proxy" not in k.lower() and k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def run_curl(*args: str, cwd: Path, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CURL, "-sS", *args], cwd=cwd, input=input, capture_output=True, timeout=TIMEOUT,
        stdin=None if input is not None else subprocess.DEVNULL,
        env=curl_env(),
    )


def run_both(*args: str, env: Dict[str, str], cwd: Path, input: bytes | None = None
             ) -> Tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    return run_curl(*args, cwd=cwd, input=input), run_poster("upload", *args, env=env, cwd=cwd, input=input)


def in_shell(command: str, *, env: Dict[str, str], cwd: Path, input: bytes) -> subprocess.CompletedProcess:
    """``command`` run by bash (for ``<(...)``), with ``curl`` and ``poster`` on hand."""
    shell_env = dict(env, CURL=CURL or "curl", POSTER=f"{sys.executable} -m poster upload")
    return subprocess.run(["bash", "-c", command], env=shell_env, cwd=cwd, input=input,
                          capture_output=True, timeout=TIMEOUT)


def fields_of(result: subprocess.CompletedProcess) -> List[Tuple[Any, ...]]:
    """What the echo server parsed, field by field, in the order it lists them."""
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    return [(f["name"], f["filename"], f["content_type"], f["size"], f["sha256"]) for f in answer["fields"]]


def headers_of(result: subprocess.CompletedProcess) -> Dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["headers"])


@pytest.fixture
def files(tmp_path: Path) -> Dict[str, Path]:
    paths = {"notes": tmp_path / "notes.txt", "photo": tmp_path / "photo.jpg", "blob": tmp_path / "blob.bin"}
    paths["notes"].write_bytes("première ligne\n".encode())
    paths["photo"].write_bytes(os.urandom(70_000))
    paths["blob"].write_bytes(os.urandom(3000))
    return paths


# -- the form -----------------------------------------------------------------------

def test_form_fields_files_and_shared_names(echo_server: Any, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    args = [
        echo_server.url + "/form",
        "-F", "comment=héllo",
        "-F", f"file=@{files['notes']}",
        "-F", f"file=@{files['photo']}",        # two parts under one name
        "-F", f"file=@{files['blob']};filename=renamed.dat",
        "-F", "tag=a", "-F", "tag=b",
        "-F", f"inline=<{files['notes']}",
        "--form-string", "literal=@not-a-file;type=x/y",  # taken as it is
        "--form-string", "lt=<also literal",
    ]
    curl, ours = run_both(*args, env=cli_env, cwd=tmp_path)
    assert fields_of(ours) == fields_of(curl)
    values = {f["name"]: f.get("value") for f in json.loads(ours.stdout)["fields"] if f["filename"] is None}
    assert values["literal"] == "@not-a-file;type=x/y" and values["lt"] == "<also literal"


def test_type_keeps_its_parameters(echo_server: Any, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    args = [echo_server.url, "-F", f"f=@{files['notes']};type=text/plain;charset=utf-8",
            "-F", f"g=@{files['notes']};type=text/plain; charset=utf-8;filename=x.txt",
            "-F", "t=text;type=text/plain;charset=iso-8859-1"]
    curl, ours = run_both(*args, env=cli_env, cwd=tmp_path)
    assert fields_of(ours) == fields_of(curl)
    types = [f[2] for f in fields_of(ours)]
    assert "text/plain;charset=utf-8" in types and "text/plain; charset=utf-8" in types

    # Quoted, curl sends the quotes themselves (a Content-Type no parser
    # takes); poster sends the media type inside them.
    quoted = [echo_server.url, "-F", f'f=@{files["notes"]};type="text/plain; charset=utf-8"']
    curl, ours = run_both(*quoted, env=cli_env, cwd=tmp_path)
    assert fields_of(curl)[0][2] == '"text/plain; charset=utf-8"'
    assert fields_of(ours)[0][2] == "text/plain; charset=utf-8"


def test_non_regular_files(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    form = '-F p=@<(printf xyz) -F n=@/dev/null -F s=@/dev/stdin -F "t=<"<(printf text)'
    curl = in_shell(f'env -u LD_PRELOAD "$CURL" -sS {echo_server.url} {form}', env=cli_env, cwd=tmp_path,
                    input=b"from stdin")
    ours = in_shell(f'$POSTER {echo_server.url} {form}', env=cli_env, cwd=tmp_path, input=b"from stdin")
    assert fields_of(ours) == fields_of(curl)
    by_name = {f[0]: f for f in fields_of(ours)}
    assert by_name["n"][3] == 0 and by_name["s"][3] == len(b"from stdin") and by_name["p"][3] == 3


def test_files_of_proc_are_sent_whole(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    """/proc/self/status is regular and of size 0, yet it holds text: spooled, as a pipe is."""
    args = [echo_server.url, "-F", "f=@/proc/self/status", "-F", "t=</proc/self/status"]
    curl, ours = run_both(*args, env=cli_env, cwd=tmp_path)
    # curl believes the size and sends nothing.
    assert [f[3] for f in fields_of(curl)] == [0, 0]
    fields = {f["name"]: f for f in json.loads(ours.stdout)["fields"]}
    assert fields["f"]["filename"] == "status" and fields["f"]["size"] > 100
    assert fields["t"]["value"].startswith("Name:\tpython")
    with open("/proc/self/status", "rb") as stdin:
        piped = run_poster("upload", echo_server.url, "-F", "f=@-", env=cli_env, cwd=tmp_path, stdin=stdin)
    assert fields_of(piped)[0][3] > 100


@pytest.mark.parametrize("form", [["-F", "a=@-", "-F", "b=@/dev/stdin"], ["-F", "a=@/dev/fd/0", "-F", "b=</dev/stdin"]])
def test_stdin_read_by_two_fields_is_refused(form: List[str], echo_server: Any, cli_env: Dict[str, str],
                                              tmp_path: Path) -> None:
    curl = run_curl(echo_server.url, *form, cwd=tmp_path, input=b"from stdin")
    # curl sends the second one empty.
    assert sorted(f[3] for f in fields_of(curl)) == [0, len(b"from stdin")]
    ours = run_poster("upload", f"http://127.0.0.1:{refused_port()}/", *form, env=cli_env, cwd=tmp_path,
                      input=b"from stdin")
    assert ours.returncode == EXIT_USAGE
    assert "standard input ('-', /dev/stdin, /dev/fd/0) can be read by one -F only" in error_line(ours)
    # A regular file as stdin is opened again by each: both parts get all of it.
    stdin_file = tmp_path / "stdin.txt"
    stdin_file.write_bytes(b"from a file")
    with open(stdin_file, "rb") as stdin:
        both = run_poster("upload", echo_server.url, "-F", "a=@/dev/stdin", "-F", "b=@/dev/stdin",
                          env=cli_env, cwd=tmp_path, stdin=stdin)
    assert [f[3] for f in fields_of(both)] == [len(b"from a file")] * 2


def test_a_closed_stdin_is_a_clear_error(cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = in_shell(f"$POSTER http://127.0.0.1:{refused_port()}/ -F a=@- 0<&-", env=cli_env, cwd=tmp_path, input=b"")
    assert result.returncode == EXIT_USAGE and "standard input is closed" in error_line(result)


# -- headers ----------------------------------------------------------------------------

def test_credentials(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    host = echo_server.url.split("//", 1)[1]
    for args in (
        ["-u", f"{AUTH_USER}:{AUTH_PASSWORD}", f"{echo_server.url}/auth/x"],
        [f"http://{AUTH_USER}:{AUTH_PASSWORD}@{host}/auth/x"],
        ["http://us%40er:p%3Ass@" + host + "/x?q=1"],       # decoded as curl does
        ["http://only-user@" + host + "/x"],
        ["-u", "u:p:with:colons", f"http://ignored:creds@{host}/x"],  # -u wins
    ):
        curl, ours = run_both(*args, "-F", "a=1", env=cli_env, cwd=tmp_path)
        theirs, mine = headers_of(curl), headers_of(ours)
        assert mine["Authorization"] == theirs["Authorization"], args
        assert mine["Host"] == theirs["Host"] == host
        assert json.loads(ours.stdout)["path"] == json.loads(curl.stdout)["path"]


def test_request_headers(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    header_file = tmp_path / "headers.txt"
    header_file.write_text("X-From-File: 1\nX-Other: two words\n\n")
    args = [echo_server.url, "-F", "a=1", "-A", "agent/1.0", "-e", "http://example.org/page",
            "-b", "k=v", "-b", "z=1", "-H", f"@{header_file}", "-H", "X-Plain: yes",
            "-H", "X-Empty;", "-H", "Accept:"]
    curl, ours = run_both(*args, env=cli_env, cwd=tmp_path)
    theirs, mine = headers_of(curl), headers_of(ours)
    for name in ("User-Agent", "Referer", "Cookie", "X-From-File", "X-Other", "X-Plain", "X-Empty"):
        assert mine.get(name) == theirs.get(name), name
    assert "Accept" not in mine and "Accept" not in theirs
    default_curl, default_ours = run_both(echo_server.url, "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert headers_of(default_ours)["Accept"] == headers_of(default_curl)["Accept"] == "*/*"


def test_header_file_lines_end_at_line_feeds_only(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    """A form feed, NEL (U+0085) or U+2028 inside a line is no line end, for curl either."""
    header_file = tmp_path / "headers.txt"
    header_file.write_bytes("X-Ff: a\fb\nX-Nel: c\u0085d\r\nX-Ls: e\u2028f\nX-Last: i\r\n".encode())
    curl, ours = run_both(echo_server.url, "-F", "a=1", "-H", f"@{header_file}", env=cli_env, cwd=tmp_path)
    theirs, mine = headers_of(curl), headers_of(ours)
    for name in ("X-Ff", "X-Nel", "X-Ls", "X-Last"):
        assert name in theirs and mine.get(name) == theirs[name], (name, mine, theirs)
    assert mine["X-Last"] == "i" and len(mine["X-Ls"]) > 2


def test_method_kept_as_given(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    curl, ours = run_both(echo_server.url, "-F", "a=1", "-X", "get", "-v", env=cli_env, cwd=tmp_path)
    assert curl.returncode == ours.returncode == 0, ours.stderr
    assert b"> get / HTTP/1.1" in curl.stderr and b"> get / HTTP/1.1" in ours.stderr


def test_verbose(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    curl, ours = run_both(echo_server.url + "/v", "-F", "a=1", "-H", "X-Trace: 42", "-v",
                          env=cli_env, cwd=tmp_path)
    host = echo_server.url.split("//", 1)[1]
    for result in (curl, ours):
        lines = result.stderr.decode().splitlines()
        for wanted in ("> POST /v HTTP/1.1", f"> Host: {host}", "> X-Trace: 42", "> Accept: */*",
                       "< HTTP/1.1 200 OK", "< Content-Type: application/json"):
            assert wanted in lines, (wanted, lines)
        assert re.search(r"^> Content-Length: \d+$", "\n".join(lines), re.M)
        assert lines.index("< HTTP/1.1 200 OK") > lines.index("> POST /v HTTP/1.1")
    assert fields_of(ours) == fields_of(curl)


# -- output -------------------------------------------------------------------------------

def test_output_file_and_silent(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    curl = run_curl(echo_server.url, "-F", "a=1", "-o", "curl.json", "-s", cwd=tmp_path)
    ours = run_poster("upload", echo_server.url, "-F", "a=1", "-o", "poster.json", "-s", env=cli_env, cwd=tmp_path)
    assert curl.returncode == ours.returncode == 0
    assert curl.stdout == ours.stdout == b"" and ours.stderr == b""
    theirs = json.loads((tmp_path / "curl.json").read_bytes())["fields"]
    mine = json.loads((tmp_path / "poster.json").read_bytes())["fields"]
    assert mine == theirs


def test_write_out(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    url = echo_server.url + "/w?x=1"
    form = "%{http_code}|%{size_upload}|%{speed_upload}|%{time_total}|%{url_effective}|%{method}\\n"
    outputs = []
    for result in run_both(url, "-F", "a=1", "-o", os.devnull, "-w", form, env=cli_env, cwd=tmp_path):
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.decode())
    for output in outputs:
        match = re.fullmatch(r"200\|(\d+)\|(\d+)\|(\d+\.\d{6})\|(\S+)\|POST\n", output)
        assert match, output
        assert match.group(4) == url
        # the body's size (the boundaries differ in length, so not equal to curl's)
        assert 100 < int(match.group(1)) < 400

    # The upload's size is the Content-Length that was sent.
    ours = run_poster("upload", url, "-F", "a=1", "-w", "\\n%{size_upload}", env=cli_env, cwd=tmp_path)
    body, _, size = ours.stdout.decode().rpartition("\n")
    assert json.loads(body)["headers"]["Content-Length"] == size

    # On a connection failure, curl and poster still write it out.
    dead = f"http://127.0.0.1:{refused_port()}/"
    for result in run_both(dead, "-F", "a=1", "-w", "%{http_code} %{exitcode}", env=cli_env, cwd=tmp_path):
        assert result.stdout.decode().split()[0] == "000"


def test_unknown_write_out_variable(cli_env: Dict[str, str], tmp_path: Path) -> None:
    ours = run_poster("upload", f"http://127.0.0.1:{refused_port()}/", "-F", "a=1", "-w", "%{nonsense}",
                      env=cli_env, cwd=tmp_path)
    assert ours.returncode == EXIT_USAGE and b"unknown variable %{nonsense}" in ours.stderr


def test_fail(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    curl, ours = run_both(f"{echo_server.url}/auth/x", "-F", "a=1", "--fail", env=cli_env, cwd=tmp_path)
    assert curl.returncode == ours.returncode == EXIT_FAIL
    assert curl.stdout == ours.stdout == b""
    assert b"401" in curl.stderr and b"HTTP 401" in ours.stderr
    curl, ours = run_both(f"{echo_server.url}/auth/x", "-F", "a=1", "--fail-with-body", env=cli_env, cwd=tmp_path)
    assert curl.returncode == ours.returncode == EXIT_FAIL
    assert curl.stdout == ours.stdout == b"login first"
    # Without --fail curl says 0; poster keeps its own 1, the body on stdout.
    curl, ours = run_both(f"{echo_server.url}/auth/x", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert (curl.returncode, ours.returncode) == (0, 1)
    assert curl.stdout == ours.stdout == b"login first"


# -- TLS --------------------------------------------------------------------------------------

def test_insecure(tls_echo_server: Any, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    args = [tls_echo_server.url + "/tls", "-F", f"f=@{files['photo']}"]
    curl, ours = run_both(*args, env=cli_env, cwd=tmp_path)
    assert curl.returncode == 60 and ours.returncode == 4  # not trusted
    curl, ours = run_both(*args, "-k", env=cli_env, cwd=tmp_path)
    assert fields_of(ours) == fields_of(curl)


# -- URLs ---------------------------------------------------------------------------------------

def test_non_ascii_path_and_query(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    url = echo_server.url + "/dossier/é?q=ü&r=a%20b"
    curl, ours = run_both(url, "-F", "a=1", env=cli_env, cwd=tmp_path)

    def parsed(result: subprocess.CompletedProcess) -> Tuple[str, Any]:
        answer = json.loads(result.stdout)
        return answer["path"], urllib.parse.parse_qs(answer["query"])

    assert parsed(ours) == ("/dossier/é", {"q": ["ü"], "r": ["a b"]})
    assert json.loads(ours.stdout)["query"] == "q=%C3%BC&r=a%20b"
    # curl 7.88 percent-encodes the path too, but sends the query's UTF-8
    # bytes raw, which this server (werkzeug's) reads as Latin-1.
    assert parsed(curl)[0] == "/dossier/é"
    assert parsed(curl)[1]["q"] != ["ü"]


@pytest.mark.parametrize("url", [
    "http://[::1", "http://127.0.0.1:99999/", "http://127.0.0.1:port/", "http://exa mple.org/",
    "http://[nonsense]/", "http://:8000/", "http://127.0.0.1:-1/",
    # host names with an empty label, or one over 63 characters
    "http://a..b/", "http://.a/", "http://a../", "http://a%2e%2eb/", "http://é..b/", f"http://{'a' * 64}.b/",
])
def test_malformed_url(url: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    result = run_poster("upload", url, "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poster: error: invalid URL "), lines


def test_an_empty_label_in_the_host(cli_env: Dict[str, str], tmp_path: Path) -> None:
    curl, ours = run_both("http://a..b/", "-F", "a=1", env=cli_env, cwd=tmp_path)
    # curl tries to resolve it (exit 6); poster says what is wrong with it.
    assert curl.returncode == 6 and ours.returncode == EXIT_USAGE
    assert "two dots in a row" in error_line(ours)


# -- redirects -------------------------------------------------------------------------------

def test_redirect_not_followed_without_location_option(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    url = f"{echo_server.url}/redirect/302?to=/elsewhere"
    curl, ours = run_both(url, "-F", "a=1", "-w", "%{http_code} %{redirect_url}", env=cli_env, cwd=tmp_path)
    assert curl.returncode == ours.returncode == 0
    assert curl.stdout == ours.stdout == f"302 {echo_server.url}/elsewhere".encode()
    assert f"points to {echo_server.url}/elsewhere".encode() in ours.stderr and b"-L" in ours.stderr


@pytest.mark.parametrize("code", [307, 308])
def test_location_resends_the_body(code: int, echo_server: Any, files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    url = f"{echo_server.url}/redirect/{code}?to=/landed"
    args = [url, "-L", "-F", "a=1", "-F", f"f=@{files['photo']}", "-u", "me:pw",
            "-w", "\\n%{num_redirects} %{url_effective}"]
    curl, ours = run_both(*args, env=cli_env, cwd=tmp_path)
    results = []
    for result in (curl, ours):
        assert result.returncode == 0, result.stderr
        body, _, tail = result.stdout.decode().rpartition("\n")
        # curl writes -u's credentials into url_effective; poster never shows them
        credentials = "me:pw@" if result is curl else ""
        assert tail == f"1 {echo_server.url}/landed".replace("//", "//" + credentials)
        answer = json.loads(body)
        assert answer["path"] == "/landed" and answer["method"] == "POST"
        assert answer["headers"]["Authorization"] == "Basic bWU6cHc="  # same origin: kept
        results.append([(f["name"], f["filename"], f["size"], f["sha256"]) for f in answer["fields"]])
    assert results[0] == results[1]


def test_location_refuses_to_drop_the_upload(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    url = f"{echo_server.url}/redirect/303?to=/landed"
    curl, ours = run_both(url, "-L", "-F", "a=1", env=cli_env, cwd=tmp_path)
    # curl follows with a GET and no body; the server never gets the upload.
    assert curl.returncode == 0 and json.loads(curl.stdout)["method"] == "GET"
    assert ours.returncode == EXIT_REDIRECT
    assert b"would turn the POST into a GET" in ours.stderr


def test_max_redirs(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    inner = urllib.parse.quote("/redirect/307?to=/landed", safe="")
    url = f"{echo_server.url}/redirect/307?to={inner}"
    curl, ours = run_both(url, "-L", "--max-redirs", "1", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert curl.returncode == 47 and ours.returncode == EXIT_REDIRECT
    assert b"--max-redirs" in ours.stderr
    curl, ours = run_both(url, "-L", "--max-redirs", "2", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert fields_of(ours) == fields_of(curl)


def test_url_credentials_kept_on_the_same_origin(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    host = echo_server.url.split("//", 1)[1]
    url = f"http://me:pw@{host}/redirect/307?to=/landed"
    curl, ours = run_both(url, "-L", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert headers_of(ours)["Authorization"] == headers_of(curl)["Authorization"] == "Basic bWU6cHc="
    assert json.loads(ours.stdout)["path"] == json.loads(curl.stdout)["path"] == "/landed"


def test_credentials_not_sent_to_another_origin(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    with serve() as other:
        url = f"{echo_server.url}/redirect/307?to={other.url}/there"
        curl, ours = run_both(url, "-L", "-u", "me:pw", "-b", "k=v", "-F", "a=1", env=cli_env, cwd=tmp_path)
    for result in (curl, ours):
        headers = headers_of(result)
        assert "Authorization" not in headers, result
    assert "Cookie" not in headers_of(ours)


# -- retries -------------------------------------------------------------------------------

class Flaky:
    """Answers 503 to the first ``failures`` requests, then echoes; keeps what it got."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: List[Dict[str, Any]] = []
        self.lock = threading.Lock()

    @Request.application
    def __call__(self, request: Request) -> Response:
        payload = echo_payload(request)
        with self.lock:
            self.seen.append(payload)
            failing = len(self.seen) <= self.failures
        if failing:
            return Response(b"busy", status=503)
        return Response(json.dumps(payload), mimetype="application/json")


def test_retry_resends_the_whole_body(files: Dict[str, Path], cli_env: Dict[str, str], tmp_path: Path) -> None:
    seen = {}
    for name in ("curl", "poster"):
        app = Flaky(failures=2)
        with serve(app) as server:
            args = [server.url + "/r", "--retry", "3", "--retry-delay", "1", "-F", "a=1", "-F", f"f=@{files['photo']}"]
            started = time.monotonic()
            if name == "curl":
                result = run_curl(*args, cwd=tmp_path)
            else:
                result = run_poster("upload", *args, env=cli_env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert time.monotonic() - started < 30
        assert len(app.seen) == 3
        seen[name] = [[(f["name"], f["size"], f["sha256"]) for f in s["fields"]] for s in app.seen]
        assert seen[name][0] == seen[name][1] == seen[name][2]  # the whole body each time
    assert seen["curl"] == seen["poster"]


def test_retry_gives_up(cli_env: Dict[str, str], tmp_path: Path) -> None:
    app = Flaky(failures=10)
    with serve(app) as server:
        curl, ours = run_both(server.url, "--retry", "1", "--retry-delay", "1", "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert curl.returncode == 0 and ours.returncode == 1  # the last answer, 503
    assert len(app.seen) == 4
    assert ours.stderr.decode().count("will retry in 1 s") == 1


def test_retry_on_dropped_and_refused_connections(cli_env: Dict[str, str], tmp_path: Path) -> None:
    """A server that drops the first connection, then answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    bodies: List[bytes] = []

    def serve_twice() -> None:
        with listener:
            for attempt in range(2):
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(TIMEOUT)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += connection.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                    while len(body) < length:
                        body += connection.recv(65536)
                    bodies.append(body)
                    if attempt == 1:
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=serve_twice, daemon=True)
    thread.start()
    result = run_poster("upload", f"http://127.0.0.1:{port}/", "--retry", "2", "--retry-delay", "0.2",
                        "-F", "a=1", env=cli_env, cwd=tmp_path)
    thread.join(TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ok" and len(bodies) == 2 and bodies[0] == bodies[1]
    assert b"closed the connection" in result.stderr and b"bodies this large" not in result.stderr

    refused = run_poster("upload", f"http://127.0.0.1:{refused_port()}/", "--retry", "2", "--retry-delay", "0.1",
                         "-F", "a=1", env=cli_env, cwd=tmp_path)
    assert refused.returncode == EXIT_CONNECTION
    assert refused.stderr.decode().count("will retry") == 2


class RedirectsToFlaky(Flaky):
    """``/start`` redirects (307) to ``/flaky``, which answers 503 ``failures`` times, then echoes."""

    @Request.application
    def __call__(self, request: Request) -> Response:
        if request.path == "/start":
            request.get_data()
            return Response(b"", status=307, headers={"Location": "/flaky"})
        return Flaky.__call__.__wrapped__(self, request)  # type: ignore[attr-defined]


def test_a_redirect_followed_is_no_retry(cli_env: Dict[str, str], tmp_path: Path) -> None:
    """--retry 1 has one retry for the 503, whatever redirect came before it."""
    for name in ("curl", "poster"):
        app = RedirectsToFlaky(failures=1)
        with serve(app) as server:
            args = [server.url + "/start", "-L", "--retry", "1", "--retry-delay", "1", "-F", "a=1",
                    "-w", "\\n%{http_code} %{num_redirects}"]
            if name == "curl":
                result = run_curl(*args, cwd=tmp_path)
            else:
                result = run_poster("upload", *args, env=cli_env, cwd=tmp_path)
        assert result.returncode == 0, (name, result.stderr)
        body, _, tail = result.stdout.decode().rpartition("\n")
        if name == "curl":  # curl leaves the 503's body on stdout, before the last answer's
            assert body.startswith("busy")
            body = body[len("busy"):]
        assert json.loads(body)["path"] == "/flaky" and tail == "200 1", (name, result.stdout)
        assert len(app.seen) == 2  # the 503, then the echo


# -- writing the answer --------------------------------------------------------------------

EXIT_WRITE = 23


def run_to_stdout(command: List[str], stdout: Path, env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``command`` with its stdout going to the file ``stdout`` (such as /dev/full)."""
    with open(stdout, "wb") as out:
        return subprocess.run(command, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=env, cwd=cwd, timeout=TIMEOUT)


def test_an_answer_that_cannot_be_written_is_exit_23(echo_server: Any, cli_env: Dict[str, str], tmp_path: Path) -> None:
    args = [echo_server.url, "-F", "a=1"]
    curl, ours = run_both(*args, "-o", "/dev/full", env=cli_env, cwd=tmp_path)
    assert curl.returncode == ours.returncode == EXIT_WRITE
    assert error_line(ours) == "poster: error: cannot write the answer to '/dev/full' (No space left on device); " \
                               "what it holds there is incomplete"
    curl = run_to_stdout([CURL or "curl", "-sS", *args], Path("/dev/full"), curl_env(), tmp_path)
    ours = run_to_stdout([sys.executable, "-m", "poster", "upload", *args], Path("/dev/full"), cli_env, tmp_path)
    assert curl.returncode == ours.returncode == EXIT_WRITE
    assert "cannot write the answer to stdout (No space left on device)" in error_line(ours)
    # -w's output too, when it is all there is to write.
    ours = run_to_stdout([sys.executable, "-m", "poster", "upload", *args, "-o", os.devnull, "-w", "%{http_code}"],
                         Path("/dev/full"), cli_env, tmp_path)
    assert ours.returncode == EXIT_WRITE and "cannot write -w's output" in error_line(ours)


@pytest.mark.parametrize("output", ["into/", "{tmp}", "{tmp}/", "missing/answer.json"])
def test_an_output_that_cannot_be_written_is_refused_before_the_upload(
        output: str, cli_env: Dict[str, str], tmp_path: Path) -> None:
    output = output.format(tmp=tmp_path)
    (tmp_path / "into").mkdir()
    with RawServer(counting()) as raw:
        curl = run_curl(raw.url, "-F", "a=1", "-o", output, cwd=tmp_path)
        uploads_by_curl = len(raw.connections)
        ours = run_poster("upload", raw.url, "-F", "a=1", "-o", output, "-w", "%{http_code}",
                          env=cli_env, cwd=tmp_path)
        uploads_by_poster = len(raw.connections) - uploads_by_curl
    # curl finds out after the upload; poster before it.
    assert curl.returncode == ours.returncode == EXIT_WRITE, ours.stderr
    assert uploads_by_curl == 1 and uploads_by_poster == 0
    message = error_line(ours)
    assert message.startswith(f"poster: error: -o {output!r}")
    assert ("names a directory" in message) if output != "missing/answer.json" else ("no directory" in message)
    assert ours.stdout == b"000"  # -w is written still, as curl does


# -- -w when the upload fails ----------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["http://127.0.0.1:99999/", "-F", "a=1"],                # a malformed URL
    ["http://a..b/", "-F", "a=1"],
    ["http://127.0.0.1:{refused}/", "-F", "a=1"],            # refused
    ["http://127.0.0.1:{refused}/", "-F", "a=@missing.bin"],  # no such file
])
def test_write_out_is_written_whatever_fails(args: List[str], cli_env: Dict[str, str], tmp_path: Path) -> None:
    args = [arg.format(refused=refused_port()) for arg in args]
    curl, ours = run_both(*args, "-w", "[%{http_code} %{url_effective}]", env=cli_env, cwd=tmp_path)
    assert curl.returncode != 0 and ours.returncode != 0
    assert curl.stdout == ours.stdout == f"[000 {args[0]}]".encode()


# -- answers that come early, or are no answer to the upload -------------------------------

def answer_early(status: str, reset: bool) -> Any:
    """A behaviour: answer ``status`` as soon as the head is in, read no body,
    close (with the unread body: a reset), or with ``reset`` reset at once."""

    def behaviour(conn: socket.socket, record: Any) -> None:
        body = f"refused: {status}\n".encode()
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return behaviour


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """32 MiB (sparse): more than the socket buffers hold, so the upload is cut short."""
    path = tmp_path / "big.bin"
    with open(path, "wb") as file:
        file.truncate(32 << 20)
    return path


@pytest.mark.parametrize("status, reset", [("413 Payload Too Large", False), ("500 Internal Server Error", True)])
def test_an_answer_before_the_whole_body_is_the_answer(status: str, reset: bool, big_file: Path,
                                                        cli_env: Dict[str, str], tmp_path: Path) -> None:
    code = status.split()[0]
    with RawServer(answer_early(status, reset), rcvbuf=4096) as raw:
        args = [raw.url + "/up", "-F", f"f=@{big_file}"]
        curl, ours = run_both(*args, "-w", "\\n%{http_code}", env=cli_env, cwd=tmp_path)
        assert curl.returncode == 0 and ours.returncode == EXIT_HTTP_ERROR, ours.stderr
        assert curl.stdout == ours.stdout == f"refused: {status}\n\n{code}".encode()
        assert error_line(ours) == f"poster: error: HTTP {status} from POST {raw.url}/up"
        curl, ours = run_both(*args, "--fail", env=cli_env, cwd=tmp_path)
        assert curl.returncode == ours.returncode == EXIT_FAIL and curl.stdout == ours.stdout == b""
        tries = len(raw.connections)
        # 413 is no transient failure: not tried again (a 500 is).
        ours = run_poster("upload", *args, "--retry", "1", "--retry-delay", "0.1", env=cli_env, cwd=tmp_path)
        assert ours.returncode == EXIT_HTTP_ERROR
        assert len(raw.connections) - tries == (1 if code == "413" else 2)
        assert b"closed the connection" not in ours.stderr


def answer_101(conn: socket.socket, record: Any) -> None:
    read_body(conn, record)
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi")
    time.sleep(0.2)


def test_switching_protocols_is_no_answer_to_the_upload(cli_env: Dict[str, str], tmp_path: Path) -> None:
    with RawServer(answer_101) as raw:
        curl, ours = run_both(raw.url, "-F", "a=1", "-w", "%{http_code}", env=cli_env, cwd=tmp_path)
    # curl prints what came after the 101 (the other protocol's bytes), exit 0.
    assert curl.returncode == 0 and curl.stdout == b"\x81\x02hi101"
    assert ours.returncode == 9 and ours.stdout == b"101"
    assert "101 Switching Protocols" in error_line(ours) and "switched to websocket" in error_line(ours)
