"""pytest-benchmark setup: ``pytest benchmarks/`` (or one file of it).

The cases live in cases.py, which run_all.py shares.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import cases
from poster import _backend  # noqa: E402


@pytest.fixture(scope="session")
def big_path():
    return cases.big_file()


@pytest.fixture(autouse=True)
def restore_backend():
    """Cases select one backend; put the chosen one back after."""
    saved = _backend.current()
    yield
    _backend.select(saved)
