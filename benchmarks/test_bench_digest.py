"""One 256 MiB file encoded with digest="sha256", against a bare hashlib.sha256 of it."""

import pytest

import cases

CONTENDERS = list(cases.digest_cases(cases.Path("unused")))


@pytest.mark.benchmark(group="digest")
@pytest.mark.parametrize("contender", CONTENDERS)
def test_digest(benchmark, big_path, contender):
    run = cases.digest_cases(big_path)[contender]
    benchmark.extra_info["mib"] = cases.BIG_FILE_SIZE / 2**20
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
