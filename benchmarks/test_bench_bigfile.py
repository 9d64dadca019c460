"""One 256 MiB file in the page cache, iterated in 64 KiB blocks, boundary scan on."""

import pytest

import cases

CONTENDERS = list(cases.bigfile_cases(cases.Path("unused")))


@pytest.mark.benchmark(group="bigfile")
@pytest.mark.parametrize("contender", CONTENDERS)
def test_bigfile(benchmark, big_path, contender):
    run = cases.bigfile_cases(big_path)[contender]
    benchmark.extra_info["mib"] = cases.BIG_FILE_SIZE / 2**20
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
