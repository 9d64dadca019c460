"""The backend is picked once, at import, and can be forced to pure Python."""

import importlib.metadata
import os
import subprocess
import sys

import poster


def _backend_in_subprocess(env):
    """poster.BACKEND and the hot-path module, as a fresh interpreter picks them."""
    result = subprocess.run(
        [sys.executable, "-c", "import poster; print(poster.BACKEND, poster._backend.impl.__name__)"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    return result.stdout.split()


def test_no_extensions_forces_python():
    assert _backend_in_subprocess({**os.environ, "POSTER_NO_EXTENSIONS": "1"}) == ["python", "poster._fastencode_py"]


def test_compiled_backend_is_used_when_importable():
    try:
        import poster._fastencode  # noqa: F401
    except ImportError:
        expected = ["python", "poster._fastencode_py"]
        assert os.environ.get("POSTER_REQUIRE_EXTENSIONS", "") in ("", "0"), "the extension was required"
    else:
        expected = ["cython", "poster._fastencode"]
    env = dict(os.environ)
    env.pop("POSTER_NO_EXTENSIONS", None)
    assert _backend_in_subprocess(env) == expected


def test_required_extension_is_in_use():
    # CI builds with POSTER_REQUIRE_EXTENSIONS=1: the compiled module must be the one imported.
    if os.environ.get("POSTER_REQUIRE_EXTENSIONS", "") not in ("", "0"):
        assert poster.BACKEND == "cython"
    else:
        assert poster.BACKEND in ("cython", "python")


def test_version_matches_metadata():
    assert poster.__version__ == importlib.metadata.version("poster-py3")
    assert poster.version == tuple(int(p) for p in importlib.metadata.version("poster-py3").split("."))
