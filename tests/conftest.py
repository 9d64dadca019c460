"""Every test runs on both backends of the hot path.

The autouse ``backend`` fixture points the modules that use the hot path at
the compiled module or at its pure-Python twin.  When the package was built
with ``POSTER_REQUIRE_EXTENSIONS=1`` (CI), a missing compiled module fails the
run instead of quietly testing only the fallback.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import poster.encode
from poster import _fastencode_py

try:
    from poster import _fastencode
except ImportError:
    _fastencode = None

BACKENDS = {"python": _fastencode_py}
if _fastencode is not None:
    BACKENDS["cython"] = _fastencode
elif os.environ.get("POSTER_REQUIRE_EXTENSIONS", "") not in ("", "0"):
    raise RuntimeError(
        "POSTER_REQUIRE_EXTENSIONS is set but poster._fastencode cannot be imported"
    )

# Modules that call the hot path through a module-level ``_impl``.
PATCHED_MODULES = [poster.encode]

settings.register_profile(
    "default",
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=sorted(BACKENDS), autouse=True)
def backend(request, monkeypatch):
    """The hot-path module in use for this test ("python" or "cython")."""
    impl = BACKENDS[request.param]
    for module in PATCHED_MODULES:
        monkeypatch.setattr(module, "_impl", impl)
    return impl
