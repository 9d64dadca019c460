"""Two threads encoding two big files at once, against one thread and one file.

Combined throughput of two threads over one thread is 2 * t(one) / t(two).
"""

import pytest

import cases


@pytest.fixture(scope="module")
def second_path():
    return cases.big_file(name="big2")


@pytest.mark.benchmark(group="threads")
@pytest.mark.parametrize("backend", ["cython", "python"])
@pytest.mark.parametrize("threads", [1, 2])
def test_threads(benchmark, big_path, second_path, threads, backend):
    paths = [big_path, second_path][:threads]
    benchmark.extra_info["bytes"] = threads * cases.BIG_FILE_SIZE
    benchmark.pedantic(cases.threaded_bigfiles(paths, backend), rounds=5, warmup_rounds=1)
