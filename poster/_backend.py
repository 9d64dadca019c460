"""Picks the implementation of the hot path, once, at import.

``POSTER_NO_EXTENSIONS=1`` forces the pure-Python twin; otherwise the compiled
``poster._fastencode`` is used when it can be imported.  Callers reach the hot
path through :data:`impl` at call time (``_backend.impl.find_collision(...)``),
so :func:`select` switches every caller at once (the tests run each case on
both backends that way).  For the type checker :data:`impl` is the pure-Python
twin, whose signatures the compiled module shares: every call into the hot
path is checked.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Dict

from poster import _fastencode_py

__all__ = ["impl", "AVAILABLE", "BACKEND", "select", "current"]

if TYPE_CHECKING:
    from poster import _fastencode_py as impl
else:
    impl = _fastencode_py

#: The implementations that can be imported here, by name.
AVAILABLE: Dict[str, ModuleType] = {"python": _fastencode_py}

try:
    from poster import _fastencode
except ImportError:
    pass
else:
    AVAILABLE["cython"] = _fastencode


def select(name: str) -> str:
    """Use the backend ``name`` from now on; return the name of the one it replaces.

    For tests and benchmarks that compare the two.  ``KeyError`` when ``name``
    is not importable here.
    """
    previous = current()
    # Through globals(): for the type checker ``impl`` is the twin itself.
    globals()["impl"] = AVAILABLE[name]
    return previous


def current() -> str:
    """The name of the backend in use now."""
    return "cython" if impl is AVAILABLE.get("cython") else "python"


#: The backend picked at import: ``"cython"`` or ``"python"``.
BACKEND = "python"
if os.environ.get("POSTER_NO_EXTENSIONS", "") in ("", "0") and "cython" in AVAILABLE:
    BACKEND = "cython"
    select(BACKEND)
