"""Hostile use of parts of unknown length: each test once showed a hole.

Servers are on 127.0.0.1 only; whatever could hang for good (a deadlock)
runs in a child process with a timeout.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from poster import streaminghttp
from poster.encode import (
    BodyConsumedError,
    MultipartBody,
    MultipartParam,
    NotReplayableError,
    multipart_encode,
)

from helpers import chunks_of
from servers import serve

TIMEOUT = 30
PAYLOAD = os.urandom(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(scope="module")
def echo():
    with serve() as server:
        yield server


@pytest.fixture
def backend_name(backend) -> str:
    return "python" if backend.__name__.endswith("_fastencode_py") else "cython"


def run_child(code: str, backend_name: str, timeout: float = 20) -> tuple:
    """Run ``code`` in a child Python on ``backend_name``; (returncode or "hung", stdout).

    It runs away from the source tree, so the installed package is the one tested.
    """
    script = f"from poster import _backend\n_backend.select({backend_name!r})\n" + textwrap.dedent(code)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=timeout,
                              cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired as exc:  # the child is killed
        return "hung", (exc.stdout or b"").decode()
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def field(answer: dict, name: str):
    fields = {f["name"]: f for f in answer.get("fields", [])}
    return fields.get(name)


# -- 1. a None chunk is taken for the end of the content ------------------------

@pytest.mark.parametrize("blocksize", [16, 65536])
def test_a_none_chunk_from_a_generator_is_a_type_error_not_the_end(blocksize):
    def rows():
        yield b"a" * blocksize  # a whole block, so the None starts the next one
        yield None              # a bug in the producer
        yield b"the rest of the export"

    body, _ = multipart_encode([MultipartParam("f", fileobj=rows())], "BND", blocksize=blocksize)
    with pytest.raises(TypeError, match="'f'"):
        b"".join(body)


def test_a_none_chunk_from_an_async_generator_is_a_type_error_not_the_end():
    async def rows():
        yield None
        yield b"the whole export"

    body, _ = multipart_encode([MultipartParam("f", fileobj=rows())], "BND")

    async def collect():
        return b"".join([block async for block in body])

    with pytest.raises(TypeError, match="'f'"):
        asyncio.run(collect())


def test_a_none_chunk_is_not_uploaded_as_a_truncated_success(echo):
    import requests

    def export():
        yield None
        yield PAYLOAD

    body, headers = multipart_encode([MultipartParam("f", fileobj=export(), filename="f.bin")])
    try:
        answer = requests.post(echo.url + "/upload", data=body, headers=headers, timeout=TIMEOUT).json()
    except (TypeError, requests.RequestException):
        return  # refused: fine
    got = field(answer, "f")
    assert (got["size"], got["sha256"]) == (len(PAYLOAD), SHA), "a truncated part was uploaded as a success"


# -- 2. async iteration of an ended body yields nothing instead of refusing -------

def test_an_ended_async_iteration_iterated_again_raises_body_consumed():
    body, _ = multipart_encode([MultipartParam("f", fileobj=chunks_of(PAYLOAD, 5000))], "BND")
    blocks = aiter(body)  # what the README tells httpx users to pass

    async def twice():
        first = b"".join([block async for block in blocks])
        second = b"".join([block async for block in blocks])
        return first, second

    with pytest.raises(BodyConsumedError):
        first, second = asyncio.run(twice())
        assert second == b"", second  # once: the second pass was silently empty


@pytest.mark.parametrize("code", [307, 308])
def test_httpx_async_does_not_follow_a_redirect_with_an_empty_body(echo, code):
    import httpx

    body, headers = multipart_encode([MultipartParam("f", fileobj=chunks_of(PAYLOAD, 5000), filename="f")])

    async def post():
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True) as client:
            url = f"{echo.url}/redirect/{code}?to={echo.url}/upload"
            return (await client.post(url, content=aiter(body), headers=headers)).json()

    try:
        answer = asyncio.run(post())
    except (BodyConsumedError, NotReplayableError, httpx.HTTPError):
        return  # refused: fine
    got = field(answer, "f")
    assert got is not None and got["sha256"] == SHA, f"the {code} was followed with an empty body: {answer}"


# -- 3. the worker thread that waits on the loop ---------------------------------

def test_a_reset_on_the_loop_after_a_cancelled_async_step_does_not_deadlock(backend_name):
    # The worker thread holds the body's lock while it waits for the loop to
    # run the async read; reset() on the loop waits for that lock: deadlock.
    rc, out = run_child("""
        import asyncio
        from poster.encode import MultipartParam, multipart_encode

        class Replayable:  # every __aiter__ starts again: reset() is allowed
            def __aiter__(self):
                async def chunks():
                    yield b"a" * 10
                    await asyncio.sleep(0.5)
                    yield b"b" * 10
                return chunks()

        body, _ = multipart_encode([MultipartParam("f", fileobj=Replayable())], "BND", blocksize=16)

        async def main():
            steps = body.__aiter__()
            try:
                while True:
                    await asyncio.wait_for(steps.__anext__(), 0.1)
            except asyncio.TimeoutError:
                pass
            body.reset()  # to send it again
            data = b"".join([block async for block in body])
            content = data.split(b"\\r\\n\\r\\n", 1)[1].rsplit(b"\\r\\n--BND--", 1)[0]
            print("sent", content.count(b"a"), content.count(b"b"), len(content))

        asyncio.run(main())
    """, backend_name)
    assert rc == 0 and out.strip() == "sent 10 10 20", (rc, out)


@pytest.mark.parametrize("reader", ["to_thread", "aiofiles"])
def test_many_concurrent_async_uploads_do_not_starve_the_default_executor(backend_name, reader, tmp_path):
    # Each step of each body occupies a default-executor thread that waits for
    # the loop; an async source that itself needs that executor (aiofiles,
    # asyncio.to_thread) then never runs: every upload hangs for good.
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD)
    workers = min(32, (os.cpu_count() or 1) + 4)
    rc, out = run_child(f"""
        import asyncio
        from poster.encode import MultipartParam, multipart_encode

        async def via_to_thread(path):
            with open(path, "rb") as f:
                while True:
                    chunk = await asyncio.to_thread(f.read, 4096)
                    if not chunk:
                        return
                    yield chunk

        async def one(path):
            if {reader!r} == "aiofiles":
                import aiofiles
                async with aiofiles.open(path, "rb") as f:
                    body, _ = multipart_encode([MultipartParam("f", fileobj=f)], "BND", blocksize=4096)
                    return sum([len(b) async for b in body])
            body, _ = multipart_encode([MultipartParam("f", fileobj=via_to_thread(path))], "BND", blocksize=4096)
            return sum([len(b) async for b in body])

        async def main():
            sizes = await asyncio.gather(*(one({str(path)!r}) for _ in range({workers} + 2)))
            print("done", len(sizes))

        asyncio.run(main())
    """, backend_name, timeout=25)
    assert rc == 0 and "done" in out, (rc, out)


def test_a_loop_closed_during_an_async_read_does_not_hang_the_process_exit(backend_name):
    # The worker waits for run_coroutine_threadsafe(...).result() without end;
    # on a loop that is closed meanwhile it never returns, and the executor's
    # thread is joined at exit.
    rc, out = run_child("""
        import asyncio
        from poster.encode import MultipartParam, multipart_encode

        async def chunks():
            yield b"a" * 10
            await asyncio.sleep(3600)
            yield b"b"

        body, _ = multipart_encode([MultipartParam("f", fileobj=chunks())], "BND", blocksize=16)

        async def upload():
            async for _ in body:
                pass

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(upload(), 0.3))
        except asyncio.TimeoutError:
            print("timed out")
        loop.close()
    """, backend_name, timeout=15)
    assert rc == 0 and "timed out" in out, (rc, out)


# -- 4. aiofiles read partly before ------------------------------------------------

def test_an_aiofiles_file_read_partly_before_sends_the_rest(tmp_path):
    import aiofiles
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD)

    async def main():
        async with aiofiles.open(path, "rb") as f:
            await f.read(10)  # a magic number, checked before the upload
            body, headers = multipart_encode([MultipartParam("f", fileobj=f)], "BND")
            data = b"".join([block async for block in body])
            return data, headers

    # once: Content-Length counted from the buffered descriptor position, then
    # ContentSizeError "the file is longer ...; it grew since the part was made"
    data, headers = asyncio.run(main())
    want = b"".join(multipart_encode([MultipartParam("f", fileobj=io.BytesIO(PAYLOAD[10:]))], "BND")[0])
    assert data == want
    if "Content-Length" in headers:
        assert int(headers["Content-Length"]) == len(data)


# -- 5. a body of unknown length handed to send() goes out unframed ------------

def test_send_of_a_body_of_unknown_length_after_the_head_is_not_a_silent_empty_upload(echo):
    body, headers = multipart_encode([MultipartParam("f", fileobj=chunks_of(PAYLOAD, 1000), filename="f")])
    conn = streaminghttp.StreamingHTTPConnection("127.0.0.1", echo.port, timeout=TIMEOUT)
    try:
        conn.putrequest("POST", "/upload")
        for name, value in headers.items():  # poster 0.8.1's low-level way
            conn.putheader(name, value)
        conn.endheaders()
        try:
            conn.send(body)
        except ValueError:
            return  # refused (no Content-Length, no Transfer-Encoding): fine
        answer = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    got = field(answer, "f")
    assert got is not None and got["sha256"] == SHA, f"the server got a request without the body: {answer}"


# -- 6. smaller API holes ---------------------------------------------------------

def test_a_multipart_body_subclass_keeps_its_class_with_a_stream_part():
    class TracedBody(MultipartBody):
        def trace(self):
            return "traced"

    body = TracedBody([MultipartParam("f", fileobj=chunks_of(b"abc", 1))], "BND")
    assert isinstance(body, TracedBody), type(body)  # once: a plain MultipartStream
    assert body.trace() == "traced"


def test_one_generator_given_to_two_params_is_not_sent_empty_the_second_time():
    rows = chunks_of(PAYLOAD, 1000)
    first, _ = multipart_encode({"f": rows}, "BND")
    b"".join(first)
    second, _ = multipart_encode({"f": rows}, "BND")  # e.g. a retry loop that encodes again
    with pytest.raises(NotReplayableError):
        data = b"".join(second)
        assert PAYLOAD in data, "the second body was sent with an empty part"


def test_a_bytes_like_fileobj_that_iterates_ints_is_refused_when_the_param_is_made():
    # bytes, bytearray and memoryview are refused at once; array.array (also
    # bytes-like) is taken as an iterable and fails mid-upload, after headers left.
    with pytest.raises(TypeError):
        MultipartParam("f", fileobj=array.array("B", b"abc"))


def test_cli_chunked_with_standard_input_closed_is_a_clear_error(tmp_path, backend_name):
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if backend_name == "python":
        env["POSTER_NO_EXTENSIONS"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "poster", "upload", "http://127.0.0.1:9/", "-F", "a=@-", "--chunked"],
        capture_output=True, timeout=TIMEOUT, cwd=tmp_path, env=env, preexec_fn=lambda: os.close(0),
    )
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert result.returncode == 2 and stderr.startswith("poster: error: "), (result.returncode, stderr)
