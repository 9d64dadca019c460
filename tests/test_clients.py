"""``(datagen, headers)`` as the request body of every HTTP client poster names.

Each test sends one form through one client to the werkzeug echo server, checks
every field's filename, size and sha256 as the server parsed them, that the
request carried ``Content-Length`` and no ``Transfer-Encoding``, then
``reset()``s the body and sends it again: the server must see the same bytes.
The async clients also show that no file was read on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import os
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest

from poster.encode import BodyConsumedError, MultipartBody, MultipartParam, multipart_encode

TIMEOUT = 30


class ThreadRecordingFile(io.BytesIO):
    """A binary file that remembers which threads read it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.readers: Set[int] = set()

    def read(self, size: Optional[int] = -1) -> bytes:
        self.readers.add(threading.get_ident())
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self.readers.add(threading.get_ident())
        return super().readinto(buffer)


class Form:
    """A form with text fields, a file from disk and an in-memory file, and
    what the server should report for each field."""

    def __init__(self, directory: Path) -> None:
        disk_data = os.urandom(300_000)  # several blocks
        memory_data = os.urandom(70_000)
        path = directory / "photo.jpg"
        path.write_bytes(disk_data)
        self.memory_file = ThreadRecordingFile(memory_data)
        self.params: List[MultipartParam] = [
            MultipartParam("comment", "héllo wörld"),
            MultipartParam.from_file("photo", path),
            MultipartParam("blob", filename="blob.bin", filetype="application/octet-stream",
                           fileobj=self.memory_file),
            MultipartParam("count", 42),
        ]
        self.memory_file.readers.clear()  # the param made sure it is binary
        self.expected: Dict[str, Tuple[Optional[str], int, str]] = {
            "comment": (None, len("héllo wörld".encode()), _sha("héllo wörld".encode())),
            "photo": ("photo.jpg", len(disk_data), _sha(disk_data)),
            "blob": ("blob.bin", len(memory_data), _sha(memory_data)),
            "count": (None, 2, _sha(b"42")),
        }

    def encode(self) -> Tuple[MultipartBody, Dict[str, str]]:
        return multipart_encode(self.params)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fields(answer: Dict[str, Any]) -> Dict[str, Tuple[Optional[str], int, str]]:
    fields = {}
    for field in answer["fields"]:
        assert field["name"] not in fields
        fields[field["name"]] = (field["filename"], field["size"], field["sha256"])
    return fields


def check_twice(
    form: Form, url: str, send: Callable[[str, MultipartBody, Dict[str, str]], Dict[str, Any]]
) -> None:
    """Send the form, check what arrived; reset the body, send it again, compare."""
    datagen, headers = form.encode()
    first = send(url, datagen, headers)
    assert _fields(first) == form.expected
    assert first["headers"]["Content-Length"] == headers["Content-Length"] == str(len(datagen))
    assert "Transfer-Encoding" not in first["headers"]
    assert first["headers"]["Content-Type"] == headers["Content-Type"]

    with pytest.raises(BodyConsumedError):  # ended, and not reset: no silent empty body
        b"".join(datagen)
    datagen.reset()
    second = send(url, datagen, headers)
    assert second["fields"] == first["fields"]
    assert second["headers"]["Content-Length"] == headers["Content-Length"]
    assert "Transfer-Encoding" not in second["headers"]


@pytest.fixture
def form(tmp_path: Path) -> Form:
    return Form(tmp_path)


# -- standard library -------------------------------------------------------------

def test_urllib_request_without_register_openers(echo_server: Any, form: Form) -> None:
    opener = urllib.request.build_opener()  # urllib's own handlers only

    def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        request = urllib.request.Request(url, data=datagen, headers=headers)
        with opener.open(request, timeout=TIMEOUT) as response:
            return json.load(response)

    check_twice(form, echo_server.url + "/upload", send)


@pytest.fixture
def registered_opener() -> Any:
    from poster.streaminghttp import register_openers

    opener = register_openers()
    yield opener
    urllib.request.install_opener(None)


def test_urllib_request_with_register_openers(
    echo_server: Any, form: Form, registered_opener: Any
) -> None:
    assert isinstance(registered_opener, urllib.request.OpenerDirector)

    def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        request = urllib.request.Request(url, data=datagen, headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.load(response)

    check_twice(form, echo_server.url + "/upload", send)


def test_http_client_connection_request(echo_server: Any, form: Form) -> None:
    def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=TIMEOUT)
        try:
            connection.request("POST", parts.path, body=datagen, headers=headers)
            response = connection.getresponse()
            assert response.status == 200
            return json.loads(response.read())
        finally:
            connection.close()

    check_twice(form, echo_server.url + "/upload", send)


# -- third-party clients ----------------------------------------------------------

def test_requests_data(echo_server: Any, form: Form) -> None:
    import requests

    def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        response = requests.post(url, data=datagen, headers=headers, timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()

    check_twice(form, echo_server.url + "/upload", send)


def test_urllib3_body(echo_server: Any, form: Form) -> None:
    import urllib3

    with urllib3.PoolManager(timeout=TIMEOUT, retries=False) as pool:
        def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
            response = pool.request("POST", url, body=datagen, headers=headers)
            assert response.status == 200
            return json.loads(response.data)

        check_twice(form, echo_server.url + "/upload", send)


def test_httpx_content(echo_server: Any, form: Form) -> None:
    import httpx

    with httpx.Client(timeout=TIMEOUT) as client:
        def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
            response = client.post(url, content=datagen, headers=headers)
            response.raise_for_status()
            return response.json()

        check_twice(form, echo_server.url + "/upload", send)


def test_httpx_async_client(echo_server: Any, form: Form) -> None:
    import httpx

    async def post(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(url, content=aiter(datagen), headers=headers)
            response.raise_for_status()
            return response.json()

    loop_threads: Set[int] = set()

    def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        loop_threads.add(threading.get_ident())  # asyncio.run's loop runs here
        return asyncio.run(post(url, datagen, headers))

    check_twice(form, echo_server.url + "/upload", send)
    assert form.memory_file.readers  # it was read...
    assert not form.memory_file.readers & loop_threads  # ...never on the event loop


def test_aiohttp_client_session(echo_server: Any, form: Form) -> None:
    import aiohttp

    async def post(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url, data=datagen, headers=headers) as response:
                assert response.status == 200
                return json.loads(await response.read())

    loop_threads: Set[int] = set()

    def send(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> Dict[str, Any]:
        loop_threads.add(threading.get_ident())
        return asyncio.run(post(url, datagen, headers))

    check_twice(form, echo_server.url + "/upload", send)
    assert form.memory_file.readers
    assert not form.memory_file.readers & loop_threads
