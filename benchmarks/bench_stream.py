"""Upload benchmark for streams of unknown length, sent with Transfer-Encoding: chunked.

    python benchmarks/bench_stream.py [--size-mib 1024] [--rounds 3] [--rss-mib 1024]

A stream of ``--size-mib`` MiB is uploaded to a loopback sink
(benchmarks/sink.py, its own process) that reads the chunked body, throws it
away and answers the number of data bytes it got; every upload is checked
against that count, and a wrong count stops the run.  Two sources:

* ``generator``: a generator in this process yielding 64 KiB chunks (16
  rotations of one random 64 KiB block, taken in turn, so a chunk costs
  nothing to make);
* ``pipe``: a child process writing the same bytes, 64 KiB at a time, to a
  pipe.  The clock starts once the child has written its first bytes, so
  its start-up is not counted.

Contenders, for each source:

* ``poster handlers``: a poster body (one file part read from the source,
  no length) through ``urllib.request`` with ``get_handlers()``, which send
  it with ``write_to(sock, chunked=True)``;
* ``poster + requests``: the same body as ``requests`` ``data=``;
* ``poster + httpx``: the same body as ``httpx`` ``content=``;
* ``httpx own``: the raw bytes (no multipart framing) as ``httpx``
  ``content=`` a generator of 64 KiB chunks (for the pipe, ``read(65536)``
  until the end);
* ``curl -T -``: ``curl -X POST -T - -H 'Transfer-Encoding: chunked'`` with
  the raw bytes on its standard input: for the pipe, the child's pipe
  itself; for the generator, a pipe that a thread of this process fills from
  the generator (curl has no other way to read one).  curl's own start-up is
  counted, as in bench_upload.py.  Left out, with a note, when there is no
  curl.

The clients (an opener, a requests session, an httpx client) are made and
every module imported before the clock; each upload opens one connection
(the sink closes it).  Every contender runs once per round, in an order that
rotates from round to round; a ratio (the peer's wall time over
``poster handlers``' time) is computed within each round, and the table
shows the median of the times and of those ratios, with their spread
(min-max).  Last, each poster contender uploads ``--rss-mib`` from each
source in a fresh process, and its peak RSS growth is read from
/proc/self/status (VmHWM, reset just before, minus VmRSS just before).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import select
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import poster
from poster.encode import MultipartParam, multipart_encode
from poster.streaminghttp import get_handlers

HERE = os.path.abspath(__file__)
CHUNK = 64 * 1024
BOUNDARY = "poster-bench-stream-5f0c1e2d9a7b"
OURS = "poster handlers"
#: The block size of poster's bodies (--blocksize): its chunks are up to this long.
BLOCKSIZE = 64 * 1024
CURL = "/usr/bin/curl"
TIMEOUT = 600

# (contender) -> the least acceptable median ratio (their time / poster handlers' time).
TARGETS = {"httpx own": 1.3, "curl -T -": 1.0}
RSS_LIMIT_MIB = 8.0

# The bytes every source gives: made the same way here and in the feeding child.
CHUNKS_CODE = """
import random
def rotations():
    block = random.Random(20261201).randbytes(65536)
    return [block[i * 4096:] + block[:i * 4096] for i in range(16)]
"""
FEEDER = CHUNKS_CODE + """
import os, sys
size = int(sys.argv[1])
blocks = [memoryview(b) for b in rotations()]
index = 0
while size > 0:
    view = blocks[index % 16][:size]
    index += 1
    size -= len(view)
    while view:
        view = view[os.write(1, view):]
"""
_namespace: Dict[str, Any] = {}
exec(CHUNKS_CODE, _namespace)
ROTATIONS: List[bytes] = _namespace["rotations"]()


def generate(size: int) -> Iterator[bytes]:
    """``size`` bytes in chunks of 64 KiB (the last may be shorter)."""
    index = 0
    while size >= CHUNK:
        yield ROTATIONS[index & 15]
        index += 1
        size -= CHUNK
    if size:
        yield ROTATIONS[index & 15][:size]


class Feeder:
    """A child process writing ``size`` bytes to a pipe; ``reader`` is its far end.

    :meth:`wait_ready` returns once the first bytes are in the pipe (the child
    is up); :meth:`finish` checks that the child wrote everything.
    """

    def __init__(self, size: int) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen([sys.executable, "-c", FEEDER, str(size)], stdout=write_fd)
        finally:
            os.close(write_fd)
        self.fd = read_fd
        self.reader: Any = None

    def wait_ready(self) -> None:
        readable, _, _ = select.select([self.fd], [], [], 60)
        if not readable:
            raise SystemExit("the feeding process wrote nothing in 60 s")

    def open(self) -> Any:
        self.reader = open(self.fd, "rb")
        return self.reader

    def finish(self) -> None:
        if self.reader is not None:
            self.reader.close()
        else:
            os.close(self.fd)
        if self.process.wait(timeout=60) != 0:
            raise SystemExit(f"the feeding process ended with status {self.process.returncode}")


def poster_body(source: Any) -> Tuple[Any, Dict[str, str]]:
    param = MultipartParam("file", fileobj=source, filename="stream.bin", filetype="application/octet-stream")
    return multipart_encode([param], boundary=BOUNDARY, blocksize=BLOCKSIZE)


def framing() -> int:
    """The bytes a poster body adds around the stream's (its headers, delimiters)."""
    body, _ = poster_body(iter([]))
    return len(b"".join(body))


# -- contenders: each takes the source (a generator or a pipe reader) and the
# -- sink's URL, uploads, and returns the byte count the sink answered.


def make_clients() -> Dict[str, Any]:
    import httpx
    import requests

    return {
        "opener": urllib.request.build_opener(*get_handlers()),
        "session": requests.Session(),
        "httpx": httpx.Client(timeout=TIMEOUT),
    }


def poster_handlers(clients: Dict[str, Any], url: str, source: Any) -> int:
    body, headers = poster_body(source)
    request = urllib.request.Request(url, data=body, headers=headers)
    with clients["opener"].open(request, timeout=TIMEOUT) as response:
        return int(response.read())


def poster_requests(clients: Dict[str, Any], url: str, source: Any) -> int:
    body, headers = poster_body(source)
    response = clients["session"].post(url, data=body, headers=headers, timeout=TIMEOUT)
    response.raise_for_status()
    return int(response.text)


def poster_httpx(clients: Dict[str, Any], url: str, source: Any) -> int:
    body, headers = poster_body(source)
    response = clients["httpx"].post(url, content=body, headers=headers)
    response.raise_for_status()
    return int(response.text)


def read_chunks(reader: Any) -> Iterator[bytes]:
    while True:
        chunk = reader.read(CHUNK)
        if not chunk:
            return
        yield chunk


def httpx_own(clients: Dict[str, Any], url: str, source: Any) -> int:
    chunks = read_chunks(source) if hasattr(source, "read") else source
    response = clients["httpx"].post(url, content=chunks, headers={"Content-Type": "application/octet-stream"})
    response.raise_for_status()
    return int(response.text)


def curl_command(url: str) -> List[str]:
    return [CURL, "-sS", "--fail", "-X", "POST", "-T", "-", "-H", "Transfer-Encoding: chunked",
            "-H", "Content-Type: application/octet-stream", url]


def curl_upload(clients: Dict[str, Any], url: str, source: Any) -> int:
    if isinstance(source, int):  # the feeder's pipe, as curl's stdin
        done = subprocess.run(curl_command(url), stdin=source, capture_output=True)
    else:  # a thread fills a pipe from the generator
        read_fd, write_fd = os.pipe()
        failure: List[BaseException] = []

        def fill() -> None:
            try:
                for chunk in source:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(write_fd, view):]
            except BaseException as exc:  # noqa: BLE001 - reported below
                failure.append(exc)
            finally:
                os.close(write_fd)

        filler = threading.Thread(target=fill)
        try:
            process = subprocess.Popen(curl_command(url), stdin=read_fd, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
        finally:
            os.close(read_fd)
        filler.start()
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        filler.join()
        if failure:
            raise failure[0]
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if done.returncode != 0:
        raise SystemExit(f"curl failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return int(done.stdout)


CONTENDERS: Dict[str, Callable[[Dict[str, Any], str, Any], int]] = {
    "poster handlers": poster_handlers,
    "poster + requests": poster_requests,
    "poster + httpx": poster_httpx,
    "httpx own": httpx_own,
    "curl -T -": curl_upload,
}
POSTER_CONTENDERS = ("poster handlers", "poster + requests", "poster + httpx")


def upload(name: str, source_kind: str, clients: Dict[str, Any], url: str, size: int) -> Tuple[float, int]:
    """One timed upload: ``(wall seconds, bytes the sink counted)``."""
    client = CONTENDERS[name]
    if source_kind == "generator":
        source: Any = generate(size)
        started = time.perf_counter()
        received = client(clients, url, source)
        return time.perf_counter() - started, received
    feeder = Feeder(size)
    try:
        feeder.wait_ready()
        # curl gets the descriptor itself; the others a buffered reader of it.
        source = feeder.fd if name == "curl -T -" else feeder.open()
        started = time.perf_counter()
        received = client(clients, url, source)
        wall = time.perf_counter() - started
    finally:
        feeder.finish()
    return wall, received


def expected_count(name: str, size: int, extra: int) -> int:
    return size + extra if name in POSTER_CONTENDERS else size


# -- peak RSS, in a fresh process ---------------------------------------------------


def status_kib(field: str) -> int:
    with open("/proc/self/status") as fileobj:
        for line in fileobj:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def rss_probe(name: str, source_kind: str, url: str, size: int) -> None:
    """Run in a fresh process: one upload, then print the peak RSS growth in MiB."""
    clients = make_clients()
    extra = framing()
    feeder = Feeder(size) if source_kind == "pipe" else None
    if feeder is not None:
        feeder.wait_ready()
    source = generate(size) if feeder is None else feeder.open()
    try:
        # VmHWM starts at the peak of the imports; "5" resets it to VmRSS
        # (Linux 4.0+).  Without that, the growth is measured from VmRSS anyway.
        with open("/proc/self/clear_refs", "w") as fileobj:
            fileobj.write("5")
    except OSError:
        pass
    before = status_kib("VmRSS")
    received = CONTENDERS[name](clients, url, source)
    peak = status_kib("VmHWM")
    if feeder is not None:
        feeder.finish()
    if received != expected_count(name, size, extra):
        raise SystemExit(f"{name}: the sink got {received} bytes, not {expected_count(name, size, extra)}")
    print(max(0, peak - before) / 1024)


def measure_rss(url: str, size_mib: int) -> Dict[str, Dict[str, float]]:
    results: Dict[str, Dict[str, float]] = {}
    for source_kind in ("generator", "pipe"):
        for name in POSTER_CONTENDERS:
            out = subprocess.run([sys.executable, HERE, "--blocksize", str(BLOCKSIZE),
                                  "--rss-probe", name, source_kind, url, str(size_mib << 20)],
                                 check=True, capture_output=True, text=True).stdout
            results.setdefault(source_kind, {})[name] = float(out)
    return results


# -- the run ------------------------------------------------------------------------


def run_rounds(names: List[str], source_kind: str, clients: Dict[str, Any], url: str, size: int,
               rounds: int, extra: int) -> Dict[str, List[float]]:
    times: Dict[str, List[float]] = {name: [] for name in names}
    for number in range(rounds):
        order = names[number % len(names):] + names[:number % len(names)]
        for name in order:
            wall, received = upload(name, source_kind, clients, url, size)
            want = expected_count(name, size, extra)
            if received != want:
                raise SystemExit(f"{source_kind}, {name}: the sink got {received} bytes, not {want}")
            times[name].append(wall)
        print(f"  {source_kind}: round {number + 1}/{rounds}", file=sys.stderr)
    return times


def rows_of(source_kind: str, times: Dict[str, List[float]], size_mib: float) -> List[Dict[str, Any]]:
    rows = []
    for name, walls in times.items():
        ratios = [peer / ours for peer, ours in zip(walls, times[OURS])]
        median = statistics.median(walls)
        rows.append({
            "case": source_kind, "contender": name, "median_s": median, "min_s": min(walls), "max_s": max(walls),
            "mib_s": size_mib / median, "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "target": TARGETS.get(name), "times": walls,
        })
    return rows


def report(rows: List[Dict[str, Any]], rss: Optional[Dict[str, Dict[str, float]]], rss_mib: int,
           have_curl: bool) -> None:
    print()
    print(f"{'case':9} {'contender':18} {'median s':>8} {'min-max s':>13} {'MiB/s':>6} "
          f"{'ratio':>6} {'min-max':>11}  target")
    for row in rows:
        target = row["target"]
        verdict = "" if target is None else f">= {target:<4} {'met' if row['ratio'] >= target else 'MISSED'}"
        print(f"{row['case']:9} {row['contender']:18} {row['median_s']:8.3f} "
              f"{row['min_s']:6.3f}-{row['max_s']:<6.3f} {row['mib_s']:6.0f} "
              f"{row['ratio']:6.2f} {row['ratio_min']:5.2f}-{row['ratio_max']:<5.2f}  {verdict}")
    print("ratio: the contender's wall time / poster handlers' wall time in the same round, median of rounds")
    if not have_curl:
        print(f"{CURL} was not found: the comparison with curl -T - was left out")
    if rss is not None:
        print()
        for source_kind, table in rss.items():
            for name, growth in table.items():
                verdict = "met" if growth <= RSS_LIMIT_MIB else "MISSED"
                print(f"peak RSS growth, {rss_mib} MiB from a {source_kind:9}, {name:18} "
                      f"{growth:6.2f} MiB  (<= {RSS_LIMIT_MIB:g} MiB {verdict})")


def main() -> None:
    global BLOCKSIZE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-mib", type=int, default=None,
                        help="size of the fresh-process RSS uploads (default: --size-mib; 0: none)")
    parser.add_argument("--sources", default="generator,pipe", help="comma-separated: generator, pipe")
    parser.add_argument("--blocksize", type=int, default=BLOCKSIZE,
                        help="block size of poster's bodies, in bytes (default: poster's, 65536)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--rss-probe", nargs=4, metavar=("CONTENDER", "SOURCE", "URL", "BYTES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    BLOCKSIZE = args.blocksize
    if args.rss_probe:
        name, source_kind, url, size = args.rss_probe
        rss_probe(name, source_kind, url, int(size))
        return
    if args.size_mib <= 0 or args.rounds <= 0:
        parser.error("--size-mib and --rounds must be positive")
    rss_mib = args.size_mib if args.rss_mib is None else args.rss_mib
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    if not set(sources) <= {"generator", "pipe"}:
        parser.error("--sources takes generator and pipe")

    sink = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(HERE), "sink.py")],
                            stdout=subprocess.PIPE, text=True)
    try:
        http_port = int(sink.stdout.readline().split()[0])  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{http_port}/upload"
        size = args.size_mib << 20
        extra = framing()
        have_curl = os.access(CURL, os.X_OK)
        names = [name for name in CONTENDERS if have_curl or name != "curl -T -"]
        clients = make_clients()
        print(f"poster {poster.__version__}, backend {poster.BACKEND}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, {args.size_mib} MiB in 64 KiB chunks, poster blocksize {BLOCKSIZE}, "
              f"{args.rounds} rounds, "
              f"{datetime.datetime.now().isoformat(timespec='seconds')}")
        for source_kind in sources:  # warm up: first connections, first-use allocations
            for name in names:
                wall, received = upload(name, source_kind, clients, url, 8 << 20)
                if received != expected_count(name, 8 << 20, extra):
                    raise SystemExit(f"{source_kind}, {name}: wrong count in the warm-up ({received})")
        rows: List[Dict[str, Any]] = []
        for source_kind in sources:
            times = run_rounds(names, source_kind, clients, url, size, args.rounds, extra)
            rows += rows_of(source_kind, times, args.size_mib)
        rss = measure_rss(url, rss_mib) if rss_mib else None
        report(rows, rss, rss_mib, have_curl)
        if args.json:
            with open(args.json, "w") as fileobj:
                json.dump({"rows": rows, "rss_growth_mib": rss}, fileobj, indent=2)
    finally:
        sink.kill()
        sink.wait()


if __name__ == "__main__":
    main()
