"""20 000 short text fields to body bytes, from (name, value) pairs."""

import pytest

import cases

CONTENDERS = list(cases.fields_cases())


@pytest.mark.benchmark(group="fields")
@pytest.mark.parametrize("contender", CONTENDERS)
def test_small_fields(benchmark, contender):
    run = cases.fields_cases()[contender]
    body = benchmark.pedantic(run, rounds=10, warmup_rounds=1)
    assert b"field19999" in body


def test_bodies_hold_the_same_fields():
    # Every contender encodes the same fields (headers differ in detail).
    for contender, run in cases.fields_cases().items():
        assert run().count(b"value number ") == len(cases.SMALL_FIELDS), contender
