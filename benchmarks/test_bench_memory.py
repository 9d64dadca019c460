"""Peak RSS growth while a fresh process encodes a 1 GiB file (KiB, in extra_info)."""

import pytest

import cases


@pytest.fixture(scope="module")
def gib_path():
    return cases.big_file(cases.MEMORY_FILE_SIZE, name="gib")


@pytest.mark.benchmark(group="memory")
@pytest.mark.parametrize("backend", ["cython", "python"])
def test_memory(benchmark, gib_path, backend):
    growth = []
    benchmark.pedantic(lambda: growth.append(cases.peak_rss_growth_kib(gib_path, backend)), rounds=1)
    benchmark.extra_info["peak_rss_growth_kib"] = max(growth)
