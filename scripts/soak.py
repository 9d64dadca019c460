"""Soak: uploads at a steady rate for a long time, reporting every minute.

Runs the werkzeug echo server of the test suite on 127.0.0.1 (HTTP and HTTPS,
with a CA made by trustme), then uploads random bodies (text and file parts,
1 B to 8 MiB) at ``--rate`` uploads per second from ``--threads`` threads for
``--minutes`` minutes, alternating HTTP and HTTPS.  Every sha256 the server
echoes is checked.  Each minute it prints uploads, bytes, errors, open file
descriptors and RSS; RSS should stay flat.

    python scripts/soak.py                    # 30 minutes
    python scripts/soak.py --minutes 2 --rate 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import trustme  # noqa: E402
from servers import serve  # noqa: E402

import poster  # noqa: E402
from poster.encode import MultipartParam, multipart_encode  # noqa: E402
from poster.streaminghttp import StreamingHTTPHandler, StreamingHTTPSHandler  # noqa: E402

MAX_PART = 8 * 1024 * 1024


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def random_size(rng: random.Random) -> int:
    return max(1, int(math.exp(rng.uniform(0, math.log(MAX_PART)))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="uploads per second, all threads together")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    openers = [
        urllib.request.build_opener(StreamingHTTPHandler()),
        urllib.request.build_opener(StreamingHTTPSHandler(context=client_context)),
    ]

    with tempfile.TemporaryDirectory() as directory, serve() as http, serve(ssl_context=server_context) as https:
        rng = random.Random(0)
        pool = []
        for index in range(16):
            data = rng.randbytes(random_size(rng))
            path = Path(directory) / f"part{index}.bin"
            path.write_bytes(data)
            pool.append((path, len(data), hashlib.sha256(data).hexdigest()))

        stats = {"uploads": 0, "bytes": 0, "errors": 0}
        lock = threading.Lock()
        deadline = time.monotonic() + args.minutes * 60
        interval = args.threads / args.rate
        urls = [http.url + "/soak", https.url + "/soak"]

        def worker(seed: int) -> None:
            wrng = random.Random(seed)
            turn = seed
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                params, expected = [], []
                for number in range(wrng.randint(1, 3)):
                    path, size, sha = wrng.choice(pool)
                    params.append(MultipartParam.from_file(f"f{number}", path))
                    expected.append((f"f{number}", size, sha))
                datagen, headers = multipart_encode(params)
                turn += 1
                try:
                    request = urllib.request.Request(urls[turn % 2], datagen, headers)
                    with openers[turn % 2].open(request, timeout=60) as response:
                        fields = json.loads(response.read())["fields"]
                    ok = sorted((f["name"], f["size"], f["sha256"]) for f in fields) == sorted(expected)
                except Exception as exc:  # counted, and the soak goes on
                    print(f"error: {exc!r}", file=sys.stderr)
                    ok = False
                with lock:
                    stats["uploads"] += 1
                    stats["bytes"] += len(datagen) if ok else 0
                    stats["errors"] += 0 if ok else 1
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
        print(f"soak: {args.minutes} min at {args.rate}/s, {args.threads} threads, backend {poster.BACKEND}")
        print("minute  uploads      MiB  errors  fds  rss_mib")
        start = time.monotonic()
        for thread in threads:
            thread.start()
        def report(label: str) -> None:
            with lock:
                print(f"{label:>6} {stats['uploads']:8d} {stats['bytes'] / 2**20:8.0f} {stats['errors']:7d} "
                      f"{len(os.listdir('/proc/self/fd')):4d} {rss_mib():8.1f}", flush=True)

        minute = 0
        while any(t.is_alive() for t in threads):
            next_report = start + (minute + 1) * 60
            while time.monotonic() < next_report and any(t.is_alive() for t in threads):
                time.sleep(min(1.0, max(0.0, next_report - time.monotonic())))
            if time.monotonic() >= next_report:
                minute += 1
                report(str(minute))
        for thread in threads:
            thread.join(120)
        report("end")
        return 1 if stats["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
