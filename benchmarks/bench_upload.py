"""Upload benchmark: poster against the bare-sendfile limit, curl, requests and httpx.

    python benchmarks/bench_upload.py [--size-mib 512] [--rounds 5] [--rss-mib 1024]

A file of random bytes is uploaded as one multipart/form-data file field to a
loopback sink (benchmarks/sink.py, its own process) that reads and discards
the body.  Every client uploads once before the clock (which also makes
each Python client, once: see ``made_once``), then once per round, in an
order that rotates from round to round, so slow phases of a noisy machine
hit all of them alike; the table shows medians, and each ratio is the
median of the ratios taken within each round.  Wall time and client CPU (user + system of this process,
or of the child for curl) are measured per upload.

* ``bare sendfile``: a hand-written request head, then ``socket.sendfile`` of
  the file: the limit for plain HTTP.
* ``bare read + send``: the same head, then the file read 256 KiB at a time
  into one page-aligned buffer, each read put on the socket with
  ``sendall``: the floor of any client that reads its file (as curl does, and
  as poster does to scan it), shown beside the other limit.  On loopback
  TCP it is at times faster than ``sendfile``.
* ``poster``: ``urllib.request`` with poster's streaming handlers (file
  content leaves in the blocks the boundary scan read).
* ``poster, sendfile=True``: ``StreamingHTTPConnection(sendfile=True)``, which
  sends each block with ``os.sendfile`` once it was scanned (plain HTTP only).
* ``curl -F``: /usr/bin/curl or whatever ``curl`` is on PATH (left out, with
  a note, when absent).
* ``requests + toolbelt``: ``requests`` with ``requests_toolbelt``'s
  ``MultipartEncoder``.
* ``httpx``: ``httpx.Client().post(files=...)``.

Over TLS (a certificate made with trustme) the same, and for the limit
``bare TLS sendall``: the request head, then the file read into one buffer
made before the clock and put on the TLS socket with ``sendall``, 256 KiB at
a time (no boundary scan, no framing; ``bare read + send`` over TLS): what
any Python client over ``ssl`` costs at least.
Last, peak RSS growth of a fresh process uploading ``--rss-mib`` with poster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import mmap
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Tuple

import poster
from poster.encode import MultipartParam, multipart_encode
from poster.streaminghttp import StreamingHTTPConnection, StreamingHTTPHandler, StreamingHTTPSHandler

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- clients: each uploads `path` to `url`, returns the body bytes the sink got --


def bare_head(size: int) -> bytes:
    """The head of a bare upload of ``size`` bytes."""
    return (b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)


def bare_answer(sock: socket.socket) -> int:
    """The count of bytes the sink got, from its answer (read to the close)."""
    answer = b""
    while True:
        block = sock.recv(65536)
        if not block:
            break
        answer += block
    return int(answer.rpartition(b"\r\n\r\n")[2])


def bare_sendfile(url: str, path: str, context: Optional[ssl.SSLContext]) -> int:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(bare_head(os.path.getsize(path)))
        with open(path, "rb") as fileobj:
            sock.sendfile(fileobj)
        return bare_answer(sock)


READ_BUFFER = memoryview(mmap.mmap(-1, 256 * 1024))


def bare_read_send(url: str, path: str, context: Optional[ssl.SSLContext]) -> int:
    """The head, then the file read into READ_BUFFER and put on the socket
    (TLS with ``context``) with ``sendall``, 256 KiB at a time."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as raw:
        sock = raw if context is None else context.wrap_socket(raw, server_hostname="127.0.0.1")
        with sock:
            sock.sendall(bare_head(os.path.getsize(path)))
            with open(path, "rb", buffering=0) as fileobj:
                while True:
                    count = fileobj.readinto(READ_BUFFER)
                    if not count:
                        break
                    sock.sendall(READ_BUFFER[:count])
            return bare_answer(sock)


#: Each Python client (an opener, a requests Session, an httpx Client) is
#: made on its first upload, the warm-up before the clock, and used again
#: for every upload after: making one builds an SSL context, which loads the
#: system's CA certificates (some 30 ms here), a cost of setting a client up
#: rather than of an upload.
_CLIENTS: Dict[Tuple[str, Any], Any] = {}


def made_once(kind: str, key: Any, make: Callable[[], Any]) -> Any:
    """The client of ``kind`` for ``key``, made by ``make`` the first time."""
    if (kind, key) not in _CLIENTS:
        _CLIENTS[kind, key] = make()
    return _CLIENTS[kind, key]


def poster_urllib(url: str, path: str, context: Optional[ssl.SSLContext]) -> int:
    opener = made_once("urllib", context, lambda: urllib.request.build_opener(
        StreamingHTTPHandler, StreamingHTTPSHandler(context=context)))
    datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
    with opener.open(urllib.request.Request(url, datagen, headers)) as response:
        return int(response.read())


def poster_sendfile(url: str, path: str, context: Optional[ssl.SSLContext]) -> int:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    conn = StreamingHTTPConnection("127.0.0.1", port, sendfile=True)
    try:
        datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
        conn.request("POST", "/upload", datagen, headers)
        return int(conn.getresponse().read())
    finally:
        conn.close()


def curl(url: str, path: str, context: Optional[ssl.SSLContext], cafile: str = "") -> int:
    command = ["curl", "-sS", "--fail", "-F", f"file=@{path}", url]
    if cafile:
        command[1:1] = ["--cacert", cafile]
    return int(subprocess.run(command, check=True, capture_output=True).stdout)


def requests_toolbelt(url: str, path: str, context: Optional[ssl.SSLContext], cafile: str = "") -> int:
    import requests
    from requests_toolbelt import MultipartEncoder

    session = made_once("requests", cafile, requests.Session)
    with open(path, "rb") as fileobj:
        encoder = MultipartEncoder({"file": (os.path.basename(path), fileobj, "application/octet-stream")})
        response = session.post(url, data=encoder, headers={"Content-Type": encoder.content_type},
                                verify=cafile or True)
    response.raise_for_status()
    return int(response.text)


def httpx_client(url: str, path: str, context: Optional[ssl.SSLContext]) -> int:
    import httpx

    client = made_once("httpx", context, lambda: httpx.Client(
        verify=context if context is not None else True, timeout=None))
    with open(path, "rb") as fileobj:
        response = client.post(url, files={"file": (os.path.basename(path), fileobj)})
    response.raise_for_status()
    return int(response.text)


# -- the run -------------------------------------------------------------------------


def measure(client: Callable[[], int], subprocess_cpu: bool) -> Tuple[float, float, int]:
    cpu_before = cpu_children() if subprocess_cpu else cpu_self()
    started = time.perf_counter()
    received = client()
    wall = time.perf_counter() - started
    cpu = (cpu_children() if subprocess_cpu else cpu_self()) - cpu_before
    return wall, cpu, received


RSS_PROBE = r"""
import sys, urllib.request
from poster.encode import MultipartParam, multipart_encode
from poster.streaminghttp import StreamingHTTPHandler
url, path = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(StreamingHTTPHandler)
def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
before = status_kib("VmRSS")
datagen, headers = multipart_encode([MultipartParam.from_file("file", path)])
with opener.open(urllib.request.Request(url, datagen, headers)) as response:
    assert int(response.read()) == len(datagen)
# VmHWM, not ru_maxrss: the latter starts at the RSS of the process that forked us.
print((status_kib("VmHWM") - before) / 1024)
"""


def make_file(directory: str, size: int) -> str:
    path = os.path.join(directory, "upload.bin")
    with open(path, "wb") as fileobj:
        left = size
        while left:
            block = os.urandom(min(left, 16 << 20))
            fileobj.write(block)
            left -= len(block)
    return path


PATH = ""


def main() -> None:
    global PATH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-mib", type=int, default=1024)
    parser.add_argument("--no-tls", action="store_true")
    parser.add_argument("--json", help="also write the medians to this file")
    args = parser.parse_args()

    import trustme

    workdir = tempfile.mkdtemp(prefix="poster-bench-")
    sink = None
    try:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        certfile, keyfile, cafile = (os.path.join(workdir, n) for n in ("cert.pem", "key.pem", "ca.pem"))
        cert.cert_chain_pems[0].write_to_path(certfile)
        for blob in cert.cert_chain_pems[1:]:
            blob.write_to_path(certfile, append=True)
        cert.private_key_pem.write_to_path(keyfile)
        ca.cert_pem.write_to_path(cafile)
        client_context = ssl.create_default_context(cafile=cafile)

        sink = subprocess.Popen([sys.executable, os.path.join(HERE, "sink.py"),
                                 "--certfile", certfile, "--keyfile", keyfile],
                                stdout=subprocess.PIPE, text=True)
        http_port, https_port = (int(p) for p in sink.stdout.readline().split())
        http_url = f"http://127.0.0.1:{http_port}/upload"
        https_url = f"https://127.0.0.1:{https_port}/upload"

        size = args.size_mib << 20
        PATH = make_file(workdir, size)
        body_size = len(multipart_encode([MultipartParam.from_file("file", PATH)])[0])
        have_curl = shutil.which("curl") is not None

        print(f"poster {poster.__version__}, backend {poster.BACKEND}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, {args.size_mib} MiB, {args.rounds} rounds, "
              f"{datetime.date.today().isoformat()}")
        clients: Dict[str, Tuple[Callable[[], int], bool]] = {
            "bare sendfile": (lambda: bare_sendfile(http_url, PATH, None), False),
            "bare read + send": (lambda: bare_read_send(http_url, PATH, None), False),
            "poster": (lambda: poster_urllib(http_url, PATH, None), False),
            "poster, sendfile=True": (lambda: poster_sendfile(http_url, PATH, None), False),
            "requests + toolbelt": (lambda: requests_toolbelt(http_url, PATH, None), False),
            "httpx": (lambda: httpx_client(http_url, PATH, None), False),
        }
        if have_curl:
            clients["curl -F"] = (lambda: curl(http_url, PATH, None), True)
        results = {"http": run_rounds_checked(clients, args.rounds, body_size)}
        if not args.no_tls:
            tls_clients: Dict[str, Tuple[Callable[[], int], bool]] = {
                "bare TLS sendall": (lambda: bare_read_send(https_url, PATH, client_context), False),
                "poster": (lambda: poster_urllib(https_url, PATH, client_context), False),
                "requests + toolbelt": (lambda: requests_toolbelt(https_url, PATH, None, cafile), False),
                "httpx": (lambda: httpx_client(https_url, PATH, client_context), False),
            }
            if have_curl:
                tls_clients["curl -F"] = (lambda: curl(https_url, PATH, None, cafile), True)
            results["https"] = run_rounds_checked(tls_clients, args.rounds, body_size)

        rss = None
        if args.rss_mib:
            rss_path = os.path.join(workdir, "rss.bin")
            with open(rss_path, "wb") as fileobj:
                fileobj.truncate(args.rss_mib << 20)
            out = subprocess.run([sys.executable, "-c", RSS_PROBE, http_url, rss_path],
                                 check=True, capture_output=True, text=True).stdout
            rss = float(out)

        report(results, rss, args.rss_mib, have_curl)
        if args.json:
            with open(args.json, "w") as fileobj:
                json.dump({"results": results, "rss_growth_mib": rss}, fileobj, indent=2)
    finally:
        if sink is not None:
            sink.kill()
            sink.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def run_rounds_checked(clients: Dict[str, Tuple[Callable[[], int], bool]], rounds: int,
                       body_size: int) -> Dict[str, Dict[str, Any]]:
    """Per client: the medians of wall time and CPU, and each round's (wall, cpu)."""
    names = list(clients)
    samples: Dict[str, List[Tuple[float, float]]] = {name: [] for name in names}
    file_size = os.path.getsize(PATH)
    for name in names:  # the warm-up: clients made, the file and the sink warm
        clients[name][0]()
    for number in range(rounds):
        order = names[number % len(names):] + names[:number % len(names)]
        for name in order:
            client, subprocess_cpu = clients[name]
            wall, cpu, received = measure(client, subprocess_cpu)
            # Every body carries the whole file plus a small, client-specific framing.
            if not file_size <= received <= file_size + 4096:
                raise SystemExit(f"{name}: the sink got {received} bytes for a {file_size}-byte file")
            samples[name].append((wall, cpu))
        print(f"  round {number + 1}/{rounds}", file=sys.stderr)
    return {
        name: {
            "wall": statistics.median(s[0] for s in values),
            "cpu": statistics.median(s[1] for s in values),
            "rounds": values,
        }
        for name, values in samples.items()
    }


def ratio(table: Dict[str, Dict[str, Any]], mine: str, theirs: str, what: str = "wall") -> float:
    """The median over the rounds of ``mine``'s time / ``theirs``' in the same round."""
    column = 0 if what == "wall" else 1
    return statistics.median(a[column] / b[column] for a, b in zip(table[mine]["rounds"], table[theirs]["rounds"]))


def report(results: Dict[str, Dict[str, Dict[str, Any]]], rss: Optional[float], rss_mib: int,
           have_curl: bool) -> None:
    print()
    for scheme, table in results.items():
        print(f"{scheme}: median wall s / client CPU s")
        for name, medians in table.items():
            print(f"  {name:22s} {medians['wall']:7.3f}  {medians['cpu']:7.3f}")
    print()
    print(f"{'ratio (medians)':46s} {'value':>7s}  target")
    http = results["http"]
    rows = [
        ("http: poster wall / bare sendfile wall", ratio(http, "poster", "bare sendfile"), "<= 1.15"),
        ("http: poster CPU / bare sendfile CPU", ratio(http, "poster", "bare sendfile", "cpu"), "<= 1.2"),
        ("http: poster wall / bare read+send wall", ratio(http, "poster", "bare read + send"), "(limit)"),
        ("http: bare sendfile wall / bare read+send wall", ratio(http, "bare sendfile", "bare read + send"), "(info)"),
        ("http: poster sendfile=True wall / poster wall", ratio(http, "poster, sendfile=True", "poster"), "(info)"),
    ]
    if have_curl:
        rows.append(("http: poster wall / curl -F wall", ratio(http, "poster", "curl -F"), "<= 1.0"))
    rows += [
        ("http: requests+toolbelt wall / poster wall", ratio(http, "requests + toolbelt", "poster"), ">= 3"),
        ("http: httpx wall / poster wall", ratio(http, "httpx", "poster"), ">= 1.5"),
    ]
    if "https" in results:
        tls = results["https"]
        rows += [
            ("https: requests+toolbelt wall / poster wall", ratio(tls, "requests + toolbelt", "poster"), ">= 2"),
            ("https: httpx wall / poster wall", ratio(tls, "httpx", "poster"), ">= 1.3"),
            ("https: poster wall / bare TLS sendall wall", ratio(tls, "poster", "bare TLS sendall"), "(limit)"),
            ("https: httpx wall / bare TLS sendall wall", ratio(tls, "httpx", "bare TLS sendall"), "(limit)"),
        ]
        if have_curl:
            rows.append(("https: poster wall / curl -F wall", ratio(tls, "poster", "curl -F"), "(info)"))
    for label, value, target in rows:
        print(f"{label:46s} {value:7.2f}  {target}")
    if not have_curl:
        print("curl was not found: the comparison with curl -F was left out")
    if rss is not None:
        print(f"{'peak RSS growth, ' + str(rss_mib) + ' MiB upload (MiB)':46s} {rss:7.2f}  <= 8")


if __name__ == "__main__":
    main()
