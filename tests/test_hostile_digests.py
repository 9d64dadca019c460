"""Hostile input to digests, rate pacing, other subtypes and the CLI's
--digest, --verify and --limit-rate: each test once showed a bug.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import io
import json
import os
import socket
import struct
import threading
import time

import pytest
from werkzeug.wrappers import Request, Response

from poster.encode import MultipartParam, multipart_encode
from rawservers import RawServer, read_body
from servers import serve
from test_cli import cli_env, backend_name, run_poster  # noqa: F401

DATA = bytes(range(256)) * 256  # 64 KiB


# -- library: rate= --------------------------------------------------------------------

def test_async_iteration_cancelled_while_paced_loses_no_block():
    """A step cancelled (asyncio.wait_for timeout) while it sleeps for rate=
    drops the block it already took from the walk: the next __anext__ hands
    out the block after it.  Without rate= the shield keeps the block."""
    def make():
        return multipart_encode(
            [MultipartParam("f", fileobj=io.BytesIO(DATA), filename="f.bin")],
            boundary="B", blocksize=1024, rate=1024 * 400,
        )[0]

    expected = b"".join(make().__iter__())

    async def main():
        body = make()
        blocks = body.__aiter__()
        out = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                out.append(await asyncio.wait_for(blocks.__anext__(), 0.002))
            except asyncio.TimeoutError:
                continue
            except StopAsyncIteration:
                break
        return b"".join(out), body

    got, body = asyncio.run(main())
    assert len(got) == len(expected) == body.total
    assert got == expected


def test_rate_too_large_for_a_float_is_a_value_error():
    """check_rate accepts an int over float range, then float() raises
    OverflowError; every other bad rate is the documented ValueError."""
    with pytest.raises(ValueError):
        multipart_encode([("a", "b")], rate=10 ** 400)


def test_a_tiny_rate_is_refused_or_sleeps_but_never_overflows():
    """rate=1e-12 passes check_rate, then the first paced step does
    time.sleep(1.3e17) and raises OverflowError ("timestamp out of range")
    after __next__ counted the block as sent: the block is lost, and the
    next __next__ goes on with the block after it."""
    try:
        body, _ = multipart_encode(
            [("a", "x" * 5000), MultipartParam("f", fileobj=io.BytesIO(DATA), filename="f")],
            boundary="B", blocksize=1024, rate=1e-12,
        )
    except ValueError:
        return  # refused up front: fine
    errors = []

    def step():
        try:
            next(body)
            next(body)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=step, daemon=True)
    thread.start()
    thread.join(1.5)  # still sleeping after that: fine
    assert not any(isinstance(exc, OverflowError) for exc in errors), errors


# -- library: parts without a name ----------------------------------------------------

@pytest.mark.parametrize("style", ["poster", "html5"])
def test_a_nameless_part_with_an_empty_filetype_still_gets_a_content_type(style):
    """Poster style treats filetype="" as no type (text/plain; charset=utf-8);
    html5 style writes an empty 'Content-Type: ' line, which is no media
    type (RFC 2045) although a nameless part is promised one always."""
    body, headers = multipart_encode(
        [MultipartParam(None, "hi", filetype="", style=style)], boundary="B", subtype="mixed", style=style,
    )
    raw = b"".join(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + raw
    )
    (part,) = message.iter_parts()
    assert part["Content-Type"] is not None and str(part["Content-Type"]).strip() != ""


# -- CLI --verify -----------------------------------------------------------------------

def _early_answer(conn, record):
    """Read 4 KiB of the body, answer 200 with the digest of the text field
    that came first, close with the rest unread (a reset)."""
    read_body(conn, record, limit=4096)
    payload = json.dumps({"fields": [{"name": "note", "sha256": hashlib.sha256(b"hi").hexdigest()}]}).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(payload) + payload
    )
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_verify_does_not_pass_an_upload_cut_short_by_an_early_answer(cli_env, tmp_path):
    """The server answers after 4 KiB of a 32 MiB upload; streaminghttp reads
    that early answer, datagen.digests holds only the parts completed
    (note), the server reports note, and --verify says "verified: the
    server got every one of the 1 parts as sent", exit 0.  The file part
    never arrived: --verify must compare every part of the body (exit 8)."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:
        file.truncate(32 << 20)
    with RawServer(_early_answer, rcvbuf=4096) as raw:
        result = run_poster("upload", raw.url + "/up", "-F", "note=hi", "-F", f"f=@{big}", "--verify",
                            "-o", os.devnull, env=cli_env, cwd=tmp_path)
    stderr = result.stderr.decode()
    assert "verified" not in stderr
    assert result.returncode == 8, stderr


@Request.application
def _hostile_app(request):
    request.get_data()
    if request.path == "/deep":
        return Response("[" * 200000 + "]" * 200000, mimetype="application/json")
    sha = hashlib.sha256(b"b").hexdigest().upper()
    return Response(json.dumps({"fields": [{"name": "a", "sha256": sha}]}), mimetype="application/json")


def test_verify_against_deeply_nested_json_is_exit_8_not_a_traceback(cli_env, tmp_path):
    """json.loads raises RecursionError, which _verify does not catch."""
    with serve(_hostile_app) as server:
        result = run_poster("upload", server.url + "/deep", "-F", "a=b", "--verify", "-o", os.devnull,
                            env=cli_env, cwd=tmp_path)
    assert b"Traceback" not in result.stderr, result.stderr.decode()[-400:]
    assert result.returncode == 8


def test_verify_takes_an_uppercase_hex_digest(cli_env, tmp_path):
    """(Arguable.) A server reporting the right sha256 in uppercase hex is
    a mismatch, exit 8: the digests are compared as strings."""
    with serve(_hostile_app) as server:
        result = run_poster("upload", server.url + "/upper", "-F", "a=b", "--verify", "-o", os.devnull,
                            env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()


def test_verify_with_digest_spelled_SHA256_is_not_refused(cli_env, tmp_path):
    """(Minor.) --digest SHA256 is sha256 to hashlib, but --verify compares
    the spelling with "sha256" and refuses it as 'cannot be verified'."""
    with serve(_hostile_app) as server:
        result = run_poster("upload", server.url + "/lower", "-F", "a=b", "--digest", "SHA256", "--verify",
                            "-o", os.devnull, env=cli_env, cwd=tmp_path)
    assert "cannot be verified" not in result.stderr.decode()


# -- CLI --limit-rate -------------------------------------------------------------------

def test_limit_rate_with_too_many_digits_is_a_usage_error_not_a_traceback(cli_env, tmp_path):
    """parse_size does int(float("999...9")): OverflowError, which argparse
    does not turn into a usage error (it takes ValueError/TypeError)."""
    result = run_poster("upload", "http://127.0.0.1:9/", "-F", "a=b", "--limit-rate", "9" * 400,
                        env=cli_env, cwd=tmp_path)
    assert b"Traceback" not in result.stderr, result.stderr.decode()[-300:]
    assert result.returncode == 2
