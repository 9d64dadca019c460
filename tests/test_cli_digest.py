"""``poster upload --digest``, ``--verify`` (exit 8 on a mismatch) and ``--limit-rate``."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
from werkzeug.wrappers import Request, Response

from servers import serve
from test_cli import cli_env, backend_name, run_poster, start_serve, stop  # noqa: F401

DATA = os.urandom(1 << 20)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    process, url = start_serve("--quiet", cwd=tmp_path_factory.mktemp("digest"))
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture
def upload_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


def test_digest_prints_each_file_part_as_sent(receiver, cli_env, tmp_path, upload_file):
    result = run_poster("upload", receiver, "-F", f"f=@{upload_file}", "-F", "note=hi", "--digest", "sha512",
                        "-o", os.devnull, env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines == [f"poster: sha512 {hashlib.sha512(DATA).hexdigest()}  f (data.bin)"]


def test_verify_against_poster_serve_passes(receiver, cli_env, tmp_path, upload_file):
    result = run_poster("upload", receiver, "-F", f"f=@{upload_file}", "-F", "note=hi", "--verify",
                        "-o", os.devnull, env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert f"sha256 {SHA}  f (data.bin)" in stderr and "verified" in stderr


@Request.application
def lying_app(request):
    request.get_data()
    if request.path == "/not-json":
        return Response("thanks")
    fields = [{"name": "f", "sha256": "0" * 64}, {"name": "note", "sha256": hashlib.sha256(b"hi").hexdigest()}]
    return Response(json.dumps({"fields": fields}), mimetype="application/json")


@pytest.mark.parametrize("path", ["/lies", "/not-json"])
def test_verify_exits_8_when_the_server_got_other_bytes_or_says_nothing(cli_env, tmp_path, upload_file, path):
    with serve(lying_app) as server:
        result = run_poster("upload", server.url + path, "-F", f"f=@{upload_file}", "-F", "note=hi",
                            "--verify", "-o", os.devnull, env=cli_env, cwd=tmp_path)
    assert result.returncode == 8
    stderr = result.stderr.decode()
    assert ("part 1 was sent as 'f' with sha256 " + SHA) in stderr if path == "/lies" else "no per-field sha256" in stderr


@pytest.mark.parametrize("args", [["--digest", "nope"], ["--digest", "md5", "--verify"], ["--limit-rate", "0"],
                                  ["--limit-rate", "fast"]])
def test_bad_digest_or_rate_options_are_usage_errors(receiver, cli_env, tmp_path, args):
    result = run_poster("upload", receiver, "-F", "a=b", *args, env=cli_env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr


def test_limit_rate_paces_the_upload(receiver, cli_env, tmp_path, upload_file):
    started = time.monotonic()
    result = run_poster("upload", receiver, "-F", f"f=@{upload_file}", "--limit-rate", "2M", "--verify",
                        "-o", os.devnull, env=cli_env, cwd=tmp_path)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert took >= 0.45  # 1 MiB at 2 MiB a second, less one block ahead
