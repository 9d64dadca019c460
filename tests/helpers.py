"""Small helpers shared by the tests."""

from __future__ import annotations

import base64
import io
import json
import shlex
import shutil
import sysconfig
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from poster.encode import MultipartParam

DATA = Path(__file__).parent / "data"


def golden_cases() -> List[dict]:
    """The byte-exact cases recorded from poster 0.8.1."""
    with open(DATA / "poster-0.8.1-golden.json", encoding="utf-8") as f:
        return json.load(f)["cases"]


def golden_params(case: dict) -> List[MultipartParam]:
    """The params of a golden case, as poster 0.8.1 was given them."""
    params = []
    for p in case["params"]:
        if p["kind"] == "value":
            params.append(MultipartParam(p["name"], base64.b64decode(p["value"]), filetype=p.get("filetype")))
        else:
            params.append(MultipartParam(
                p["name"], fileobj=io.BytesIO(base64.b64decode(p["data"])),
                filename=p.get("filename"), filetype=p.get("filetype"),
            ))
    return params


class ReadOnlyStream:
    """A binary stream that can only be read: no seek, tell or fileno."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` as a generator of chunks of ``size`` bytes: a stream of unknown length."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def parse_with_python_multipart(body: bytes, content_type: str) -> List[dict]:
    """Parse a body with python-multipart's streaming parser, fed in small pieces."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options[b"boundary"]
    parts: List[dict] = []
    current: dict[str, Any] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        current.clear()
        current.update(headers={}, data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        current["headers"][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"].extend(data[start:end])

    def on_part_end() -> None:
        disposition, options = parse_options_header(current["headers"].get(b"content-disposition", b""))
        parts.append({
            "disposition": disposition,
            "name": options.get(b"name"),
            "filename": options.get(b"filename"),
            "content_type": current["headers"].get(b"content-type"),
            "data": bytes(current["data"]),
            "headers": dict(current["headers"]),
        })

    parser = MultipartParser(boundary, callbacks={
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    }, max_header_size=1 << 20)
    for start in range(0, len(body), 7):
        parser.write(body[start:start + 7])
    parser.finalize()
    return parts


def parse_with_werkzeug(body: bytes, content_type: str) -> List[dict]:
    """Parse a body with werkzeug's form parser: every field, in order of kind."""
    from werkzeug.formparser import parse_form_data
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(
        method="POST", input_stream=io.BytesIO(body), content_type=content_type,
        content_length=len(body),
    ).get_environ()
    _, form, files = parse_form_data(environ, max_form_parts=None, max_form_memory_size=None)
    fields = []
    for name, values in form.lists():
        for value in values:
            fields.append({"name": name, "filename": None, "content_type": None, "data": value.encode("utf-8")})
    for name, storages in files.lists():
        for storage in storages:
            fields.append({
                "name": name, "filename": storage.filename,
                "content_type": storage.content_type, "data": storage.read(),
            })
    return fields


def c_compiler(purpose: str) -> List[str]:
    """The command of the C compiler that builds the extension (CC), or a
    skip of the test that needs it for ``purpose``."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    if shutil.which(compiler[0]) is None:
        pytest.skip(f"no C compiler ({compiler[0]}) to build {purpose} with")
    return compiler
