"""Load: many threads uploading random bodies at once, every byte checked.

8 threads x 100 uploads over HTTP and over HTTPS, to the werkzeug echo server;
each upload is 1 to 3 random parts (text and files, 1 B to 8 MiB, sizes spread
log-uniformly so most are small and some are large).  Every sha256 echoed back
must match, no thread may hang, and no file descriptor may leak.
"""

import hashlib
import json
import math
import os
import random
import threading
import time
import urllib.request

import pytest

from poster.encode import MultipartParam, multipart_encode
from poster.streaminghttp import StreamingHTTPHandler, StreamingHTTPSHandler

THREADS = 8
UPLOADS_PER_THREAD = 100
MAX_PART = 8 * 1024 * 1024


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled_fds(expected: int) -> int:
    """Open descriptors once the server's threads have closed their sockets (5 s at most)."""
    deadline = time.monotonic() + 5
    while _open_fds() > expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return _open_fds()


def _random_size(rng: random.Random) -> int:
    return max(1, int(math.exp(rng.uniform(0, math.log(MAX_PART)))))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Files of random content to upload from, with their sha256 by size."""
    directory = tmp_path_factory.mktemp("load")
    rng = random.Random(1234)
    blob = rng.randbytes(MAX_PART)
    files = []
    for index in range(24):
        size = _random_size(rng)
        path = directory / f"part{index}.bin"
        start = rng.randrange(0, MAX_PART - size + 1)
        path.write_bytes(blob[start:start + size])
        files.append((path, size, hashlib.sha256(blob[start:start + size]).hexdigest()))
    files.append((directory / "max.bin", MAX_PART, hashlib.sha256(blob).hexdigest()))
    (directory / "max.bin").write_bytes(blob)
    return files


def _run_load(url, opener, pool, seed):
    errors = []
    counts = {"uploads": 0, "bytes": 0}
    lock = threading.Lock()

    def worker(index):
        rng = random.Random(seed * 100 + index)
        for _ in range(UPLOADS_PER_THREAD):
            params, expected = [], []
            for number in range(rng.randint(1, 3)):
                name = f"f{number}"
                if rng.random() < 0.4:
                    text = rng.randbytes(min(_random_size(rng), 64 * 1024)).hex()
                    params.append(MultipartParam(name, text))
                    expected.append((name, None, len(text), hashlib.sha256(text.encode()).hexdigest()))
                else:
                    path, size, sha = rng.choice(pool)
                    params.append(MultipartParam.from_file(name, path))
                    expected.append((name, path.name, size, sha))
            datagen, headers = multipart_encode(params)
            try:
                with opener.open(urllib.request.Request(url, datagen, headers), timeout=60) as response:
                    answer = json.loads(response.read())
            except Exception as exc:  # collected and reported below
                errors.append(repr(exc))
                continue
            got = sorted((f["name"], f["filename"], f["size"], f["sha256"]) for f in answer["fields"])
            if got != sorted(expected):
                errors.append(f"mismatch: sent {sorted(expected)}, server saw {got}")
            with lock:
                counts["uploads"] += 1
                counts["bytes"] += len(datagen)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    hung = [t for t in threads if t.is_alive()]
    return errors, hung, counts


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_load(scheme, request, pool):
    if scheme == "http":
        server = request.getfixturevalue("echo_server")
        opener = urllib.request.build_opener(StreamingHTTPHandler())
    else:
        server = request.getfixturevalue("tls_echo_server")
        context = request.getfixturevalue("client_ssl_context")
        opener = urllib.request.build_opener(StreamingHTTPSHandler(context=context))
    fds = _open_fds()
    errors, hung, counts = _run_load(server.url + "/load", opener, pool, seed=len(scheme))
    assert not hung, f"{len(hung)} threads hung"
    assert errors == []
    assert counts["uploads"] == THREADS * UPLOADS_PER_THREAD
    assert _settled_fds(fds) == fds
