"""``poster upload --chunked``: standard input, pipes and FIFOs streamed as they come.

Checked against ``poster serve`` (which reports each field's size and sha256)
and werkzeug; "no temporary file" is shown by a ``TMPDIR`` that cannot hold
one, where spooling fails and ``--chunked`` works.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import threading

import pytest

from servers import FLAKY_BODIES, serve
from test_cli import TIMEOUT, cli_env, backend_name, run_poster, start_serve, stop  # noqa: F401

DATA = os.urandom(3 << 20)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(scope="module")
def plain_receiver(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunked")
    process, url = start_serve("--quiet", cwd=root)
    try:
        yield url
    finally:
        stop(process)


def fields_of(result) -> dict:
    assert result.returncode == 0, result.stderr.decode()
    answer = json.loads(result.stdout)
    return answer, {field["name"]: field for field in answer["fields"]}


def no_files_over_a_mebibyte() -> None:
    """In the child: no file it writes may grow past 1 MiB (a spool of the input would)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def run_without_room_for_a_spool(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "poster", *args], env=env, cwd=cwd, input=DATA,
                          capture_output=True, timeout=TIMEOUT, preexec_fn=no_files_over_a_mebibyte)


@pytest.mark.parametrize("spec", ["data=@-", "data=<-"])
def test_standard_input_is_streamed_chunked_without_a_temporary_file(plain_receiver, cli_env, tmp_path, spec):
    result = run_without_room_for_a_spool(
        ["upload", plain_receiver, "-F", spec, "-F", "note=hi", "--chunked"], cli_env, tmp_path)
    answer, fields = fields_of(result)
    assert answer["headers"]["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in answer["headers"]
    assert (fields["data"]["size"], fields["data"]["sha256"]) == (len(DATA), SHA)
    assert fields["note"]["size"] == 2
    spooled = run_without_room_for_a_spool(["upload", plain_receiver, "-F", spec], cli_env, tmp_path)
    assert spooled.returncode != 0  # without --chunked the input is spooled to a file first


def test_without_chunked_standard_input_keeps_an_exact_length(plain_receiver, cli_env, tmp_path):
    answer, fields = fields_of(run_poster("upload", plain_receiver, "-F", "data=@-",
                                          env=cli_env, cwd=tmp_path, input=DATA))
    assert "Transfer-Encoding" not in answer["headers"]
    assert int(answer["headers"]["Content-Length"]) > len(DATA)
    assert fields["data"]["sha256"] == SHA


def test_a_fifo_is_streamed_with_chunked(plain_receiver, cli_env, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as out:
            out.write(DATA)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    answer, fields = fields_of(run_poster("upload", plain_receiver, "-F", f"data=@{fifo}", "--chunked",
                                          env=cli_env, cwd=tmp_path))
    writer.join(TIMEOUT)
    assert answer["headers"]["Transfer-Encoding"] == "chunked"
    assert (fields["data"]["filename"], fields["data"]["sha256"]) == ("fifo", SHA)


def test_a_process_substitution_is_streamed_with_chunked(plain_receiver, cli_env, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    command = (f'"{sys.executable}" -m poster upload {plain_receiver} '
               f'-F data=@<(cat "{source}") --chunked')
    result = subprocess.run(["bash", "-c", command], env=cli_env, cwd=tmp_path,
                            capture_output=True, timeout=TIMEOUT)
    answer, fields = fields_of(result)
    assert answer["headers"]["Transfer-Encoding"] == "chunked"
    assert fields["data"]["sha256"] == SHA


def test_a_retry_of_a_streamed_input_says_it_cannot_be_sent_again(cli_env, tmp_path, backend_name):
    token = "chunked-retry-" + backend_name
    with serve() as server:
        result = run_poster("upload", f"{server.url}/flaky/{token}?fail=1", "-F", "data=@-",
                            "--chunked", "--retry", "2", "--retry-delay", "0",
                            env=cli_env, cwd=tmp_path, input=DATA)
    assert result.returncode == 5
    assert "cannot be sent again" in result.stderr.decode() and "--chunked" in result.stderr.decode()
    assert len(FLAKY_BODIES[token]) == 1  # one try, no second
