"""Replay every saved fuzz input (seeds and past crashes) through its harness."""

import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):  # the test extra installs atheris from 3.11 on (wheels)
    pytest.skip("atheris has no wheel before Python 3.11", allow_module_level=True)

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

CASES = sorted(
    (harness.name, path)
    for harness in (FUZZ / "corpus").iterdir()
    for path in harness.iterdir()
)


def test_there_are_inputs_for_every_harness():
    assert {name for name, _ in CASES} == {"scanner", "headers", "bodies"}


@pytest.mark.parametrize("harness, path", CASES, ids=[f"{h}/{p.name}" for h, p in CASES])
def test_replay(harness, path):
    module = __import__(f"fuzz_{harness}")
    module.TestOneInput(path.read_bytes())
