"""Every test runs on both backends of the hot path.

The autouse ``backend`` fixture switches the hot path (``poster._backend``)
to the compiled module or to its pure-Python twin.  When the package was built
with ``POSTER_REQUIRE_EXTENSIONS=1`` (CI), a missing compiled module fails the
run instead of quietly testing only the fallback.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from poster import _backend

BACKENDS = dict(_backend.AVAILABLE)
if "cython" not in BACKENDS and os.environ.get("POSTER_REQUIRE_EXTENSIONS", "") not in ("", "0"):
    raise RuntimeError(
        "POSTER_REQUIRE_EXTENSIONS is set but poster._fastencode cannot be imported"
    )

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
def backend(request):
    """The hot-path module in use for this test ("python" or "cython")."""
    previous = _backend.select(request.param)
    yield _backend.impl
    _backend.select(previous)


@pytest.fixture
def no_wait_known():
    """What the system tells of reads with no wait, made before the test
    (else it is made in a thread on first use, and not known until then)."""
    from poster._sources import refresh_no_wait

    return refresh_no_wait()


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
