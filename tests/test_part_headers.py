"""Header lines of a part's own: ``MultipartParam(..., headers=...)`` and the
command line's ``-F '...;headers="Name: value"'``, beside curl."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest
from werkzeug.wrappers import Request, Response

from poster.encode import MultipartParam, get_body_size, multipart_encode

from servers import serve
from test_cli import cli_env, backend_name, run_poster  # noqa: F401

BOUNDARY = "partheaders0123456789"


def parts_seen_by_email(body: bytes, content_type: str) -> List[Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return list(message.iter_parts())


@pytest.mark.parametrize("style", ["poster", "html5"])
@pytest.mark.parametrize("kind", ["text", "file", "from_file"])
def test_part_headers_are_sent_in_order_and_counted(tmp_path, style, kind):
    extra = [("Content-ID", "<meta@example>"), ("X-Checksum", "sha256=abc"), ("X-Empty", "")]
    if kind == "text":
        param = MultipartParam("meta", b'{"a": 1}', filetype="application/json", headers=extra, style=style)
    elif kind == "file":
        param = MultipartParam("f", fileobj=io.BytesIO(b"data" * 100), filename="f.bin",
                               headers=dict(extra), style=style)
    else:
        path = tmp_path / "f.bin"
        path.write_bytes(os.urandom(5000))
        param = MultipartParam.from_file("f", path, headers=extra, style=style)
    datagen, headers = multipart_encode([("before", "x"), param], BOUNDARY)
    body = b"".join(datagen)
    assert len(body) == int(headers["Content-Length"]) == get_body_size([("before", "x"), param], BOUNDARY)
    [_, part] = parts_seen_by_email(body, headers["Content-Type"])
    assert [(k, v) for k, v in part.items() if k.lower() not in ("content-disposition", "content-type")] == extra
    assert param.headers == tuple(extra)
    assert param.encode(BOUNDARY).index(b"Content-ID") > param.encode(BOUNDARY).index(b"Content-Disposition")


@pytest.mark.parametrize("headers, error", [
    ({"Content-Type": "text/plain"}, "filetype"),
    ({"content-disposition": "x"}, "name/filename"),
    ({"Content-Length": "3"}, "no part lengths"),
    ({"Bad Name": "v"}, "token"),
    ({"": "v"}, "token"),
    ({"X-A": "a\r\nX-Injected: 1"}, "control character"),
    ({"X-A": "a\nb"}, "control character"),
    ({"X-A": "a\x00b"}, "control character"),
], ids=repr)
def test_bad_part_headers_are_refused(headers, error):
    with pytest.raises(ValueError, match=error):
        MultipartParam("a", "b", headers=headers)


def test_part_headers_are_part_of_a_params_identity():
    assert MultipartParam("a", "b", headers={"X-A": "1"}) != MultipartParam("a", "b")
    with pytest.raises(AttributeError):
        MultipartParam("a", "b").headers = {"X-A": "1"}


# -- the command line, beside curl ---------------------------------------------------------

@Request.application
def raw_part_headers_app(request: Request) -> Response:
    """Answers each part's own header lines, as the email parser reads the body."""
    parts = parts_seen_by_email(request.get_data(), request.headers["Content-Type"])
    return Response(json.dumps([
        [[k, v] for k, v in part.items() if k.lower() not in ("content-disposition", "content-type")]
        for part in parts
    ]), mimetype="application/json")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_headers_attribute_as_curl(tmp_path: Path, cli_env: Dict[str, str]) -> None:
    from test_cli_curl import run_curl

    (tmp_path / "notes.txt").write_text("n")
    (tmp_path / "h.txt").write_text("X-From-File: 1\nX-Second: two words\n")
    args = ["-F", 'a=1;headers="X-A: 1"', "-F", "f=@notes.txt;headers=@h.txt",
            "-F", 'b=2;type=text/plain;headers="X-B: b";headers="X-C: c"']
    with serve(raw_part_headers_app) as server:
        curl = run_curl(server.url + "/", *args, cwd=tmp_path)
        ours = run_poster("upload", server.url + "/", *args, env=cli_env, cwd=tmp_path)
    assert curl.returncode == 0 and ours.returncode == 0, ours.stderr
    expected = [[["X-A", "1"]], [["X-From-File", "1"], ["X-Second", "two words"]], [["X-B", "b"], ["X-C", "c"]]]
    assert json.loads(curl.stdout) == expected
    assert json.loads(ours.stdout) == expected


def test_a_bad_part_header_is_a_usage_error(tmp_path: Path, cli_env: Dict[str, str]) -> None:
    result = run_poster("upload", "http://127.0.0.1:9/", "-F", 'a=1;headers="Content-Type: x/y"',
                        env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert b"Content-Type cannot be given in headers=" in result.stderr
