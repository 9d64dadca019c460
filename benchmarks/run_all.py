"""Every encoding benchmark side by side, with a table of ratios.

    python benchmarks/run_all.py [--rounds 7] [--only bigfile,fields,digest,threads,memory,small,async]

The uploads through clients (``small``: bench_small.py, ``async``:
bench_async.py) run each contender in a process of its own against a
loopback keep-alive sink; the rest run in this process.

Contenders of a case run one after the other within a round, in an order
that rotates from round to round, so a slow phase of a noisy machine hits
them alike.  A ratio is computed within each round (the peer's time over
ours, or for the threads case the combined throughput of two threads over
one) and the table shows the median of those ratios, next to each target.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import statistics
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_async  # noqa: E402
import bench_small  # noqa: E402
import cases  # noqa: E402
from poster import _backend  # noqa: E402
import poster  # noqa: E402

OURS = "poster (cython)"

# (case, peer) -> the least acceptable median ratio (peer time / our time).
TARGETS = {
    # httpx scans nothing and reads at 0.88-0.92 x a bare loop: 1.5 x httpx
    # asked for 1.7 x the limit and is withdrawn for these two.
    ("bigfile", "bare readinto"): 0.85,
    ("bigfile", "httpx"): 0.95,
    ("bigfile", "requests-toolbelt"): 3.0,
    ("bigfile", "poster (python)"): 1.3,
    ("fields", "httpx"): 3.0,
    ("fields", "urllib3"): 5.0,
    ("fields", "poster (python)"): 3.0,
    ("threads", "two threads / one"): 1.6,
    ("digest", "bare sha256"): 0.9,
}
MEMORY_LIMIT_KIB = 4 * 1024


def timed(run) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def rounds_of(contenders: Dict[str, object], rounds: int) -> Dict[str, List[float]]:
    """Times of every contender, ``rounds`` times, rotating the order."""
    names = list(contenders)
    for name in names:  # warm up: imports, caches, page cache
        contenders[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names[index % len(names):] + names[: index % len(names)]:
            times[name].append(timed(contenders[name]))
    return times


def ratio_rows(case: str, times: Dict[str, List[float]], size_mib: float = 0) -> List[tuple]:
    rows = []
    for name, peer_times in times.items():
        ratios = [peer / ours for peer, ours in zip(peer_times, times[OURS])]
        median_time = statistics.median(peer_times)
        rate = f"{size_mib / median_time:8.0f} MiB/s" if size_mib else ""
        rows.append((case, name, median_time * 1000, rate, statistics.median(ratios), TARGETS.get((case, name))))
    return rows


def print_rows(rows: List[tuple]) -> None:
    print(f"{'case':20} {'contender':20} {'median ms':>10} {'rate':>14} {'ours x':>8}  target")
    for case, name, ms, rate, ratio, target in rows:
        if target is None:
            verdict = ""
        elif isinstance(target, tuple):  # ("<=", limit): a figure that must stay low
            verdict = f"<= {target[1]:<4} {'met' if ratio <= target[1] else 'MISSED'}"
        else:
            verdict = f">= {target:<4} {'met' if ratio >= target else 'MISSED'}"
        shown = "" if ratio is None else f"{ratio:8.2f}"
        print(f"{case:20} {name:20} {ms:10.1f} {rate:>14} {shown:>8}  {verdict}")


def save_chart(rows: List[tuple], path: str) -> None:
    """A bar chart of the ratios with their targets, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart)")
        return
    # Ratios only: not poster against itself, nor the ticker's gaps.
    shown = [row for row in rows if row[1] not in (OURS, "poster") and isinstance(row[4], float)
             and not isinstance(row[5], tuple)]
    labels = [f"{case}: {name}" for case, name, *_ in shown]
    ratios = [row[4] for row in shown]
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.2))
    bars = axes.barh(labels, ratios, color=["#3b7dd8" if r[5] is None or r[4] >= r[5] else "#d8803b" for r in shown])
    for bar, row in zip(bars, shown):
        if row[5] is not None:
            y = bar.get_y()
            axes.plot([row[5], row[5]], [y, y + bar.get_height()], color="black", linewidth=2)
    for bar, row in zip(bars, shown):
        axes.annotate(f"{row[4]:.2f}", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                      xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    axes.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    # Ratios run from below 1 to a few hundred: a log scale shows them all.
    axes.set_xscale("log")
    axes.invert_yaxis()
    axes.set_xlabel("peer time / poster (cython) time, median of rounds, log scale (black: target)")
    axes.set_title(f"poster {poster.__version__} encoding, {datetime.date.today()}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"chart: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--chart", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "ratios.png"),
                        help="where to save the chart of ratios (needs matplotlib)")
    parser.add_argument("--only", default="bigfile,fields,digest,threads,memory,small,async",
                        help="the cases to run, comma-separated")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"poster {poster.__version__}, backend {poster.BACKEND}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, {datetime.datetime.now().isoformat(timespec='seconds')}")
    saved = _backend.current()
    rows: List[tuple] = []
    try:
        big = cases.big_file()
        mib = cases.BIG_FILE_SIZE / 2**20
        if "bigfile" in only:
            rows += ratio_rows("bigfile", rounds_of(cases.bigfile_cases(big), args.rounds), mib)
        if "fields" in only:
            rows += ratio_rows("fields", rounds_of(cases.fields_cases(), args.rounds))
        if "digest" in only:
            rows += ratio_rows("digest", rounds_of(cases.digest_cases(big), args.rounds), mib)

        if "threads" in only:
            second = cases.big_file(name="big2")
            threads = rounds_of({
                "one": cases.threaded_bigfiles([big]),
                "two": cases.threaded_bigfiles([big, second]),
            }, args.rounds)
            ratios = [2 * one / two for one, two in zip(threads["one"], threads["two"])]
            rows.append(("threads", "two threads / one", statistics.median(threads["two"]) * 1000,
                         f"{2 * mib / statistics.median(threads['two']):8.0f} MiB/s",
                         statistics.median(ratios), TARGETS[("threads", "two threads / one")]))
    finally:
        _backend.select(saved)
    # Uploads through clients, each contender in a process of its own.
    if "small" in only:
        rows += bench_small.small_rows(args.rounds)
    if "async" in only:
        rows += bench_async.async_rows(args.rounds)
    print_rows(rows)
    save_chart(rows, args.chart)

    if "memory" not in only:
        return 0
    gib = cases.big_file(cases.MEMORY_FILE_SIZE, name="gib")
    for backend in ("cython", "python"):
        growth = cases.peak_rss_growth_kib(gib, backend)
        verdict = "met" if growth <= MEMORY_LIMIT_KIB else "MISSED"
        print(f"memory   peak RSS growth encoding 1 GiB, {backend:6}: {growth} KiB (<= {MEMORY_LIMIT_KIB} KiB {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
