"""Many small uploads over one kept-alive connection, per client.

    python benchmarks/bench_small.py [--rounds 5] [--sizes 1,16,256]

Each upload is a file of the given size (KiB) and two text fields, POSTed to
a loopback sink (benchmarks/sink.py --keep-alive, its own process) over one
persistent connection.  For each client (requests Session, urllib3
PoolManager, httpx Client) three contenders send the same form:

* ``poster``: a body made for each upload with ``multipart_encode`` (the
  file by its path), sent as the client sends any iterable body;
* ``prebuilt bytes``: the same client sending that form as ``bytes`` made
  once, before the clock: the floor of what the client costs;
* ``prebuilt stream``: those bytes as a streaming body (one block, and a
  length): the floor of any body that is not ``bytes``, as the client
  sends an iterable;
* ``own encoder``: the client's own multipart encoder (requests ``files=``,
  urllib3 ``fields=``, httpx ``files=``), the file opened and read for each
  upload; and for requests, requests-toolbelt's ``MultipartEncoder``;
* ``read + prebuilt``: the prebuilt bytes, sent after opening the upload's
  file, reading it whole into a buffer made before the clock (no
  allocation) and closing it: the floor of any encoder that reads its file
  for each upload (it neither scans nor builds anything).

Every contender runs in a process of its own, imports and connection set up
(and a few uploads made) before the clock; contenders alternate round by
round in a rotating order and a ratio (their time / poster's) is taken
within each round; the table shows medians of those ratios, and the rate
column the wall time and the client's CPU time (user + system) per upload,
medians too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

FIELDS = [("title", "a small upload"), ("description", "one of many, over one connection")]
WARMUP = 20
#: Uploads a contender makes per round, by file size in KiB.
COUNTS = {1: 1000, 16: 1000, 256: 300}

#: (client, contender) -> the least acceptable median of (their time / poster's).
TARGETS = {
    ("requests", "prebuilt bytes"): 0.95, ("requests", "own encoder"): 0.95,
    ("urllib3", "prebuilt bytes"): 0.95, ("urllib3", "own encoder"): 1.0,
    ("httpx", "prebuilt bytes"): 0.95, ("httpx", "own encoder"): 1.0,
}
CONTENDERS = {
    "requests": ["poster", "prebuilt bytes", "prebuilt stream", "read + prebuilt", "own encoder", "requests-toolbelt"],
    "urllib3": ["poster", "prebuilt bytes", "prebuilt stream", "read + prebuilt", "own encoder"],
    "httpx": ["poster", "prebuilt bytes", "prebuilt stream", "read + prebuilt", "own encoder"],
}


def start_sink() -> Tuple[subprocess.Popen, str]:
    """The keep-alive sink in its own process, and its URL."""
    sink = subprocess.Popen([sys.executable, os.path.join(HERE, "sink.py"), "--keep-alive"],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    port = int(sink.stdout.readline().split()[0])
    return sink, f"http://127.0.0.1:{port}/upload"


def small_file(size_kib: int) -> str:
    import cases

    return str(cases.big_file(size_kib * 1024, name="small"))


# -- one contender, in its own process --------------------------------------------


class PrebuiltStream:
    """The prebuilt bytes as a streaming body: one block, a length, nothing else."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        yield self.data


def make_upload(client: str, kind: str, url: str, path: str):
    """A zero-argument callable making one upload; it returns the bytes the sink got."""
    from poster.encode import MultipartParam, multipart_encode

    def poster_body():
        return multipart_encode(FIELDS + [MultipartParam.from_file("file", path)])

    prebuilt, prebuilt_headers = poster_body()
    prebuilt = b"".join(prebuilt)
    with open(path, "rb") as f:
        content = f.read()
    name = os.path.basename(path)

    buffer = bytearray(len(content) + 1)

    def read_file():
        with open(path, "rb", buffering=0) as f:
            f.readinto(buffer)

    # Per client: send(body, headers) -> response, its own encoders, and
    # how to read a response (the count of bytes the sink got).
    if client == "requests":
        import requests

        session = requests.Session()

        def send(body, headers):
            return session.post(url, data=body, headers=headers)

        def own_encoder():
            with open(path, "rb") as f:
                return session.post(url, data=dict(FIELDS), files={"file": (name, f)})

        def toolbelt():
            from requests_toolbelt import MultipartEncoder

            with open(path, "rb") as f:
                encoder = MultipartEncoder(FIELDS + [("file", (name, f, "application/octet-stream"))])
                return session.post(url, data=encoder, headers={"Content-Type": encoder.content_type})

        own = {"own encoder": own_encoder, "requests-toolbelt": toolbelt}
        answer = lambda response: response.content  # noqa: E731
    elif client == "urllib3":
        import urllib3

        pool = urllib3.PoolManager()

        def send(body, headers):
            return pool.request("POST", url, body=body, headers=headers)

        def own_encoder():
            with open(path, "rb") as f:
                data = f.read()
            return pool.request("POST", url, fields=FIELDS + [("file", (name, data))])

        own = {"own encoder": own_encoder}
        answer = lambda response: response.data  # noqa: E731
    elif client == "httpx":
        import httpx

        http = httpx.Client()

        def send(body, headers):
            return http.post(url, content=body, headers=headers)

        def own_encoder():
            with open(path, "rb") as f:
                return http.post(url, data=dict(FIELDS), files={"file": (name, f)})

        own = {"own encoder": own_encoder}
        answer = lambda response: response.content  # noqa: E731
    else:
        raise SystemExit(f"unknown client {client!r}")

    if kind in ("poster", "poster base"):
        def upload():
            return send(*poster_body())
    elif kind == "prebuilt bytes":
        def upload():
            return send(prebuilt, prebuilt_headers)
    elif kind == "prebuilt stream":
        stream = PrebuiltStream(prebuilt)

        def upload():
            return send(stream, prebuilt_headers)
    elif kind == "read + prebuilt":
        def upload():
            read_file()
            return send(prebuilt, prebuilt_headers)
    else:
        upload = own[kind]
    return lambda: int(answer(upload()))


def child(client: str, kind: str, url: str, path: str, count: int) -> None:
    upload = make_upload(client, kind, url, path)
    size = os.path.getsize(path)
    for _ in range(WARMUP):
        received = upload()
        if not size < received < size + 1024:
            raise SystemExit(f"{client} {kind}: the sink got {received} bytes for a {size}-byte file")
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(count):
        upload()
    print(time.perf_counter() - start, time.process_time() - cpu)


#: Another copy of poster to compare with ("poster base"), from --base.
BASE = os.environ.get("POSTER_BENCH_BASE", "")


def child_env(kind: str) -> Dict[str, str]:
    """The environment of a contender: "poster base" imports poster from BASE."""
    env = dict(os.environ)
    if kind == "poster base":
        env["PYTHONPATH"] = BASE
    return env


def run_child(client: str, kind: str, url: str, path: str, count: int) -> Tuple[float, float]:
    """The wall time and the client's CPU time (user + system) of ``count`` uploads."""
    out = subprocess.run([sys.executable, __file__, "--child", client, kind, url, path, str(count)],
                         check=True, capture_output=True, text=True, env=child_env(kind)).stdout
    wall, cpu = out.split()
    return float(wall), float(cpu)


# -- the run --------------------------------------------------------------------------


def small_rows(rounds: int, sizes: Sequence[int] = (1, 16, 256)) -> List[tuple]:
    """Rows for run_all.py's table: (case, contender, median ms, rate, ratio, target)."""
    sink, url = start_sink()
    try:
        paths = {size: small_file(size) for size in sizes}
        runs = [(size, client, kind) for size in sizes for client, kinds in CONTENDERS.items()
                for kind in kinds + (["poster base"] if BASE else [])]
        times: Dict[tuple, List[float]] = {run: [] for run in runs}
        cpus: Dict[tuple, List[float]] = {run: [] for run in runs}
        for number in range(rounds):
            for size, client, kind in runs[number % len(runs):] + runs[: number % len(runs)]:
                wall, cpu = run_child(client, kind, url, paths[size], COUNTS[size])
                times[size, client, kind].append(wall)
                cpus[size, client, kind].append(cpu)
            print(f"  small uploads: round {number + 1}/{rounds}", file=sys.stderr)
    finally:
        sink.kill()
        sink.wait()
    rows = []
    for size, client, kind in runs:
        ours = times[size, client, "poster"]
        theirs = times[size, client, kind]
        ratio = statistics.median(t / o for t, o in zip(theirs, ours))
        per_upload = statistics.median(theirs) / COUNTS[size] * 1e6
        cpu_per_upload = statistics.median(cpus[size, client, kind]) / COUNTS[size] * 1e6
        rows.append((f"small {size}K {client}", kind, statistics.median(theirs) * 1000,
                     f"{per_upload:4.0f}/{cpu_per_upload:3.0f} us/up", ratio, TARGETS.get((client, kind))))
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        client, kind, url, path, count = sys.argv[2:7]
        child(client, kind, url, path, int(count))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="1,16,256", help="file sizes in KiB, comma-separated")
    parser.add_argument("--clients", default=",".join(CONTENDERS))
    parser.add_argument("--base", help="a directory holding another poster package, to compare with")
    args = parser.parse_args()
    global BASE
    if args.base:
        BASE = os.environ["POSTER_BENCH_BASE"] = os.path.abspath(args.base)
    for client in set(CONTENDERS) - set(args.clients.split(",")):
        del CONTENDERS[client]
    import run_all

    run_all.print_rows(small_rows(args.rounds, [int(s) for s in args.sizes.split(",")]))


if __name__ == "__main__":
    main()
