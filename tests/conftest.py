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
import poster.streaminghttp
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
PATCHED_MODULES = [poster.encode, poster.streaminghttp]

settings.register_profile(
    "default",
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# CI replays the same examples every run (a failure there is reproducible);
# local runs explore new ones.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


@pytest.fixture(params=sorted(BACKENDS), autouse=True)
def backend(request, monkeypatch):
    """The hot-path module in use for this test ("python" or "cython")."""
    impl = BACKENDS[request.param]
    for module in PATCHED_MODULES:
        monkeypatch.setattr(module, "_impl", impl)
    return impl


# -- real servers on 127.0.0.1 -------------------------------------------------

@pytest.fixture(scope="session")
def trustme_ca():
    """A certificate authority made for this test run."""
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl_context(trustme_ca):
    """A server-side TLS context with a certificate for 127.0.0.1 and localhost."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl_context(trustme_ca):
    """A client-side TLS context that trusts only the test CA."""
    import ssl

    context = ssl.create_default_context()
    trustme_ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def echo_server():
    """The werkzeug echo server over plain HTTP (see tests/servers.py)."""
    from servers import serve

    with serve() as server:
        yield server


@pytest.fixture(scope="session")
def tls_echo_server(server_ssl_context):
    """The werkzeug echo server over TLS, with a certificate from ``trustme_ca``."""
    from servers import serve

    with serve(ssl_context=server_ssl_context) as server:
        yield server
