"""Concurrent async uploads: 64 uploads of 1 MiB files at once on one event loop.

    python benchmarks/bench_async.py [--rounds 5]

Each of 64 files of 1 MiB (in the page cache) is POSTed at once, every one
over its own kept-alive connection to a loopback sink (benchmarks/sink.py
--keep-alive, its own process), ``BATCHES`` times over.  Through aiohttp and
through httpx.AsyncClient, three contenders:

* ``poster``: a body per upload (``multipart_encode``, the file by its path),
  aiohttp ``data=body``, httpx ``content=aiter(body)``;
* ``prebuilt bytes``: the same client sending the same forms as ``bytes``
  made before the clock;
* ``own encoder``: ``aiohttp.FormData`` with the file object, httpx ``files=``;
* ``read + prebuilt``: prebuilt bytes sent after reading the upload's file
  whole in a worker thread into a buffer of its own made before the clock
  (``readinto``: no allocation, no page faults): the floor of any encoder
  that reads its file for each upload (it neither scans nor builds anything).

With ``--busy-thread`` every contender also runs a thread of pure Python
beside its loop, as an application with CPU-bound work does.

Meanwhile a ticker task sleeps 1 ms at a time and records the largest gap
between its ticks: how long the loop was kept from running it.  Every
contender runs in a process of its own (imports, connections and one batch
before the clock); contenders alternate round by round; ratios (their time
/ poster's) are taken within a round, and the table shows their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

UPLOADS = 64
FILE_SIZE = 1 << 20
BATCHES = 4

TARGETS = {
    ("aiohttp", "prebuilt bytes"): 0.9, ("aiohttp", "own encoder"): 1.0,
    ("httpx", "prebuilt bytes"): 0.9, ("httpx", "own encoder"): 1.0,
}
#: poster's largest ticker gap may exceed prebuilt bytes' by this much (ms).
GAP_ALLOWANCE_MS = 2.0
CONTENDERS = {
    "aiohttp": ["poster", "prebuilt bytes", "own encoder", "read + prebuilt"],
    "httpx": ["poster", "prebuilt bytes", "own encoder", "read + prebuilt"],
}


def read_into(path: str, buffer: bytearray) -> int:
    """Read the file at ``path`` whole into ``buffer``, made before the clock."""
    with open(path, "rb", buffering=0) as f:
        return f.readinto(buffer)


def busy() -> None:
    """Python that never waits (``--busy-thread``): an application's CPU-bound
    thread, which holds the GIL whenever the loop's thread lets it go."""
    count = 0
    while True:
        count += 1


def files() -> List[str]:
    import cases

    return [str(cases.big_file(FILE_SIZE, name=f"async{i}")) for i in range(UPLOADS)]


async def ticker(stop: asyncio.Event) -> float:
    """The largest gap between ticks of 1 ms, in seconds, until ``stop``."""
    gap = 0.0
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
    return gap


async def contend(client: str, kind: str, url: str, paths: List[str]) -> str:
    from poster.encode import MultipartParam, multipart_encode

    def poster_body(path):
        return multipart_encode([MultipartParam.from_file("file", path)])

    prebuilt = []
    buffers = [bytearray(FILE_SIZE + 1) for _ in paths]  # read + prebuilt's
    for path in paths:
        body, headers = poster_body(path)
        prebuilt.append((b"".join(body), headers))

    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=UPLOADS))

        async def upload(index: int) -> int:
            path = paths[index]
            if kind in ("poster", "poster base"):
                body, headers = poster_body(path)
                async with session.post(url, data=body, headers=headers) as response:
                    return int(await response.read())
            if kind in ("prebuilt bytes", "read + prebuilt"):
                if kind == "read + prebuilt":
                    await asyncio.get_running_loop().run_in_executor(None, read_into, path, buffers[index])
                body, headers = prebuilt[index]
                async with session.post(url, data=body, headers=headers) as response:
                    return int(await response.read())
            with open(path, "rb") as f:
                form = aiohttp.FormData()
                form.add_field("file", f, filename=os.path.basename(path))
                async with session.post(url, data=form) as response:
                    return int(await response.read())
    else:
        import httpx

        session = httpx.AsyncClient(limits=httpx.Limits(max_connections=UPLOADS), timeout=60)

        async def upload(index: int) -> int:
            path = paths[index]
            if kind in ("poster", "poster base"):
                body, headers = poster_body(path)
                response = await session.post(url, content=aiter(body), headers=headers)
            elif kind in ("prebuilt bytes", "read + prebuilt"):
                if kind == "read + prebuilt":
                    await asyncio.get_running_loop().run_in_executor(None, read_into, path, buffers[index])
                body, headers = prebuilt[index]
                response = await session.post(url, content=body, headers=headers)
            else:
                with open(path, "rb") as f:
                    response = await session.post(url, files={"file": (os.path.basename(path), f)})
            return int(response.content)

    async def batch() -> None:
        received = await asyncio.gather(*(upload(i) for i in range(len(paths))))
        if not all(FILE_SIZE < got < FILE_SIZE + 1024 for got in received):
            raise SystemExit(f"{client} {kind}: the sink got {sorted(set(received))} bytes")

    await batch()  # warm up: connections, imports
    stop = asyncio.Event()
    ticks = asyncio.ensure_future(ticker(stop))
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    for _ in range(BATCHES):
        await batch()
    elapsed = time.perf_counter() - start
    stop.set()
    gap = await ticks
    if client == "aiohttp":
        await session.close()
    else:
        await session.aclose()
    return f"{elapsed} {gap}"


def child_env(kind: str) -> Dict[str, str]:
    from bench_small import child_env

    return child_env(kind)


def run_child(client: str, kind: str, url: str) -> List[float]:
    out = subprocess.run([sys.executable, __file__, "--child", client, kind, url],
                         check=True, capture_output=True, text=True, env=child_env(kind)).stdout
    return [float(x) for x in out.split()]


def async_rows(rounds: int) -> List[tuple]:
    """Rows for run_all.py's table: (case, contender, median ms, rate, ratio, target)."""
    from bench_small import start_sink

    files()
    sink, url = start_sink()
    try:
        base = ["poster base"] if os.environ.get("POSTER_BENCH_BASE") else []
        runs = [(client, kind) for client, kinds in CONTENDERS.items() for kind in kinds + base]
        times: Dict[tuple, List[float]] = {run: [] for run in runs}
        gaps: Dict[tuple, List[float]] = {run: [] for run in runs}
        for number in range(rounds):
            for run in runs[number % len(runs):] + runs[: number % len(runs)]:
                elapsed, gap = run_child(*run, url)
                times[run].append(elapsed)
                gaps[run].append(gap)
            print(f"  async uploads: round {number + 1}/{rounds}", file=sys.stderr)
    finally:
        sink.kill()
        sink.wait()
    mib = UPLOADS * BATCHES * FILE_SIZE / 2**20
    rows = []
    for client, kind in runs:
        ours = times[client, "poster"]
        theirs = times[client, kind]
        ratio = statistics.median(t / o for t, o in zip(theirs, ours))
        rate = f"{mib / statistics.median(theirs):8.0f} MiB/s"
        rows.append((f"async 64x1M {client}", kind, statistics.median(theirs) * 1000, rate, ratio,
                     TARGETS.get((client, kind))))
    for client in CONTENDERS:
        for kind in CONTENDERS[client] + base:
            gap_ms = statistics.median(gaps[client, kind]) * 1000
            rows.append((f"async gap {client}", kind, gap_ms, "max tick gap", None, None))
        excess = statistics.median(
            (o - p) * 1000 for o, p in zip(gaps[client, "poster"], gaps[client, "prebuilt bytes"])
        )
        rows.append((f"async gap {client}", "poster - prebuilt", excess, "ms", excess, ("<=", GAP_ALLOWANCE_MS)))
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        client, kind, url = sys.argv[2:5]
        if os.environ.get("POSTER_BENCH_BUSY_THREAD"):
            threading.Thread(target=busy, daemon=True).start()
        print(asyncio.run(contend(client, kind, url, files())))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", default=",".join(CONTENDERS))
    parser.add_argument("--base", help="a directory holding another poster package, to compare with")
    parser.add_argument("--busy-thread", action="store_true",
                        help="each contender runs a thread of pure Python beside its loop")
    args = parser.parse_args()
    if args.busy_thread:
        os.environ["POSTER_BENCH_BUSY_THREAD"] = "1"
    if args.base:
        os.environ["POSTER_BENCH_BASE"] = os.path.abspath(args.base)
    for client in set(CONTENDERS) - set(args.clients.split(",")):
        del CONTENDERS[client]
    import run_all

    run_all.print_rows(async_rows(args.rounds))


if __name__ == "__main__":
    main()
