"""What the fuzz harnesses share: both backends of the hot path."""

from __future__ import annotations

from types import ModuleType

from poster import _fastencode_py


def compiled() -> ModuleType:
    """The compiled hot path; a harness that compares backends needs it."""
    try:
        from poster import _fastencode
    except ImportError as exc:
        raise SystemExit(
            "poster._fastencode is not built: install poster with a C compiler "
            "(POSTER_REQUIRE_EXTENSIONS=1 pip install .)"
        ) from exc
    return _fastencode



def backends() -> dict[str, ModuleType]:
    """Both implementations, by name."""
    return {"python": _fastencode_py, "cython": compiled()}


def outcome(function, *args):
    """What a call gives: ("ok", result) or ("error", type name, message)."""
    try:
        return ("ok", function(*args))
    except Exception as exc:  # the twins must raise the same errors
        return ("error", type(exc).__name__, str(exc))
