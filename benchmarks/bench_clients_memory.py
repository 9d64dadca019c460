"""Peak memory of uploading a large sparse file through each HTTP client.

    python benchmarks/bench_clients_memory.py [--size 1G] [--clients requests,httpx]

A sparse file (1 GiB by default) is sent as one file part of a
``multipart_encode`` body, by each client in a fresh Python process, to a
``poster serve`` receiver in another process (so its memory is not counted),
which reports the size and sha256 of what arrived.  For each client the table
gives the time, the throughput and the growth of the client process's resident
memory: its peak during the upload minus what it held just before (after the
imports and the body were set up).  Flat memory means a growth of a few MiB,
whatever the file's size.

The last row, ``requests files=``, is a reference: requests' own multipart
encoder, which builds the body in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from poster.encode import MultipartBody, MultipartParam, multipart_encode

TIMEOUT = 600
GiB = 1 << 30


# -- the clients (each runs in its own process) ------------------------------------

def send_urllib(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import urllib.request

    request = urllib.request.Request(url, data=datagen, headers=headers)
    with urllib.request.build_opener().open(request, timeout=TIMEOUT) as response:
        return response.read()


def send_urllib_streaminghttp(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import urllib.request

    from poster.streaminghttp import register_openers

    register_openers()
    request = urllib.request.Request(url, data=datagen, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read()


def send_http_client(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=TIMEOUT)
    try:
        connection.request("POST", parts.path, body=datagen, headers=headers)
        return connection.getresponse().read()
    finally:
        connection.close()


def send_requests(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import requests

    return requests.post(url, data=datagen, headers=headers, timeout=TIMEOUT).content


def send_urllib3(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import urllib3

    with urllib3.PoolManager(timeout=TIMEOUT, retries=False) as pool:
        return pool.request("POST", url, body=datagen, headers=headers).data


def send_httpx(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import httpx

    with httpx.Client(timeout=TIMEOUT) as client:
        return client.post(url, content=datagen, headers=headers).content


def send_httpx_async(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import httpx

    async def post() -> bytes:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            return (await client.post(url, content=aiter(datagen), headers=headers)).content

    return asyncio.run(post())


def send_aiohttp(url: str, datagen: MultipartBody, headers: Dict[str, str]) -> bytes:
    import aiohttp

    async def post() -> bytes:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
            async with session.post(url, data=datagen, headers=headers) as response:
                return await response.read()

    return asyncio.run(post())


def send_requests_files(url: str, path: str) -> bytes:
    """The reference: requests' own encoder, which holds the whole body in memory."""
    import requests

    with open(path, "rb") as file:
        return requests.post(url, files={"file": file}, timeout=TIMEOUT).content


CLIENTS: Dict[str, Callable[[str, MultipartBody, Dict[str, str]], bytes]] = {
    "urllib.request": send_urllib,
    "urllib + streaminghttp": send_urllib_streaminghttp,
    "http.client": send_http_client,
    "requests data=": send_requests,
    "urllib3 body=": send_urllib3,
    "httpx content=": send_httpx,
    "httpx.AsyncClient": send_httpx_async,
    "aiohttp data=": send_aiohttp,
}
REFERENCE = "requests files="
_IMPORTS = {"requests": "requests", "urllib3": "urllib3", "httpx": "httpx", "aiohttp": "aiohttp"}


def _rss_kib() -> int:
    """Resident memory now, in KiB (Linux); elsewhere the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return _peak_kib()


def _peak_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def run_child(client: str, url: str, path: str) -> None:
    """Upload ``path`` with ``client`` and print one JSON line of measurements."""
    for word, module in _IMPORTS.items():  # imports are not part of the upload's cost
        if word in client:
            __import__(module)
    datagen: Optional[MultipartBody] = None
    if client != REFERENCE:
        datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
    before = _rss_kib()
    started = time.perf_counter()
    if datagen is None:
        answer = send_requests_files(url, path)
    else:
        answer = CLIENTS[client](url, datagen, headers)
    seconds = time.perf_counter() - started
    field = json.loads(answer)["fields"][0]
    print(json.dumps({
        "seconds": seconds, "growth_kib": max(0, _peak_kib() - before),
        "size": field["size"], "sha256": field["sha256"],
    }))


# -- the parent: a receiver, one process per client, the table ----------------------

def _zeros_sha256(size: int) -> str:
    sha256, block = hashlib.sha256(), bytes(1 << 20)
    for _ in range(size // len(block)):
        sha256.update(block)
    sha256.update(bytes(size % len(block)))
    return sha256.hexdigest()


def _start_receiver() -> Tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "poster", "serve", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
    )
    assert process.stdout is not None
    match = re.search(r"http://\S+/", process.stdout.readline().decode())
    if not match:
        process.kill()
        raise SystemExit("poster serve did not start (is poster installed with its [cli] extra?)")
    return process, match.group(0)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="size of the sparse file (default 1G)")
    parser.add_argument("--clients", help="comma-separated names, default all: " + ", ".join([*CLIENTS, REFERENCE]))
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "URL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(*args.child)
        return 0

    from poster import BACKEND
    from poster.cli import parse_size

    size = parse_size(args.size)
    names = [*CLIENTS, REFERENCE] if not args.clients else [n.strip() for n in args.clients.split(",")]
    unknown = [n for n in names if n not in CLIENTS and n != REFERENCE]
    if unknown:
        parser.error(f"unknown clients {unknown}; known: {[*CLIENTS, REFERENCE]}")
    expected = _zeros_sha256(size)
    receiver, url = _start_receiver()
    rows: List[Tuple[str, Dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="poster-bench-") as directory:
            path = os.path.join(directory, "sparse.bin")
            with open(path, "wb") as file:
                file.truncate(size)
            for name in names:
                result = subprocess.run(
                    [sys.executable, __file__, "--child", name, url, path],
                    capture_output=True, timeout=TIMEOUT, cwd=directory,
                )
                if result.returncode != 0:
                    print(f"{name}: failed\n{result.stderr.decode()}", file=sys.stderr)
                    continue
                rows.append((name, json.loads(result.stdout.decode().splitlines()[-1])))
    finally:
        receiver.terminate()
        receiver.wait(TIMEOUT)

    print(f"{size / GiB:g} GiB sparse file, one file part; poster backend {BACKEND}; "
          f"Python {sys.version.split()[0]}")
    print(f"| {'client':<24} | {'seconds':>7} | {'MB/s':>7} | {'peak RSS growth':>15} | {'sha256 ok':<9} |")
    print(f"|{'-' * 26}|{'-' * 8}:|{'-' * 8}:|{'-' * 16}:|{'-' * 11}|")
    for name, row in rows:
        ok = row["size"] == size and row["sha256"] == expected
        print(f"| {name:<24} | {row['seconds']:>7.2f} | {size / row['seconds'] / 1e6:>7.0f} | "
              f"{row['growth_kib'] / 1024:>11.1f} MiB | {'yes' if ok else 'NO':<9} |")
    return 0 if len(rows) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
