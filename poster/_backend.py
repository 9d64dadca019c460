"""Picks the implementation of the hot path, once, at import.

``POSTER_NO_EXTENSIONS=1`` forces the pure-Python twin; otherwise the compiled
``poster._fastencode`` is used when it can be imported.
"""

from __future__ import annotations

import os
from types import ModuleType

from poster import _fastencode_py

impl: ModuleType
BACKEND: str

if os.environ.get("POSTER_NO_EXTENSIONS", "") not in ("", "0"):
    impl, BACKEND = _fastencode_py, "python"
else:
    try:
        from poster import _fastencode as impl
    except ImportError:
        impl, BACKEND = _fastencode_py, "python"
    else:
        BACKEND = "cython"
