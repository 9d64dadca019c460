"""Real HTTP(S) servers for the tests, on 127.0.0.1.

``EchoApp`` is a werkzeug application that parses multipart/form-data bodies
and answers, as JSON, what it received: the request line, the headers, and for
every field its name, filename, content type, size and sha256.  Any other
body is answered with its size and sha256.  ``routes_app`` adds redirect,
login and cookie routes in front of it.  ``serve`` runs an application in
a threaded werkzeug server (optionally TLS) for the length of a ``with``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import ssl
import threading
from typing import Any, Iterator, Optional

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


def _digest(stream: Any) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    while True:
        block = stream.read(1 << 20)
        if not block:
            return size, sha.hexdigest()
        sha.update(block)
        size += len(block)


class EchoRequest(Request):
    max_form_memory_size = 64 * 1024 * 1024
    max_form_parts = 100_000


def echo_payload(request: Request) -> dict:
    """What the echo server answers for ``request``."""
    answer: dict = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string.decode("latin-1"),
        "headers": {key: value for key, value in request.headers.items()},
    }
    if request.mimetype == "multipart/form-data":
        fields = []
        for name, values in request.form.lists():
            for value in values:
                data = value.encode("utf-8")
                fields.append({
                    "name": name, "filename": None, "content_type": None,
                    "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "value": value if len(data) <= 4096 else None,
                })
        for name, storages in request.files.lists():
            for storage in storages:
                size, sha = _digest(storage.stream)
                fields.append({
                    "name": name, "filename": storage.filename,
                    "content_type": storage.content_type, "size": size, "sha256": sha,
                })
        answer["fields"] = fields
    else:
        size, sha = _digest(request.stream)
        answer["body"] = {"size": size, "sha256": sha}
    return answer


@EchoRequest.application
def echo_app(request: Request) -> Response:
    return Response(json.dumps(echo_payload(request)), mimetype="application/json")


#: The user and password the ``/auth/`` routes accept (HTTP Basic).
AUTH_USER, AUTH_PASSWORD = "poster", "s3cret"


def _drain(request: Request) -> None:
    _digest(request.stream)


#: What each ``/flaky/<token>`` route received: (size, sha256) per request.
FLAKY_BODIES: dict = {}


@EchoRequest.application
def routes_app(request: Request) -> Response:
    """``echo_app`` plus a few routes for redirects, logins and cookies.

    * ``/redirect/<code>?to=<url>``: reads the body, answers ``code`` with
      ``Location: <url>``;
    * ``/auth/...``: answers 401 (``WWW-Authenticate: Basic``) unless the
      request carries ``AUTH_USER``/``AUTH_PASSWORD``, then echoes;
    * ``/set-cookie?to=<url>``: reads the body, sets ``session=poster-cookie``
      and answers 303 to ``<url>``;
    * ``/flaky/<token>?fail=<n>``: reads the body and notes its size and
      sha256 in ``FLAKY_BODIES[token]``; answers 503 to the first ``n``
      requests (default 1), then 200 with the list of what came;
    * anything else: ``echo_app``.
    """
    path = request.path
    if path.startswith("/flaky/"):
        seen = FLAKY_BODIES.setdefault(path.split("/")[2], [])
        seen.append(list(_digest(request.stream)))
        if len(seen) <= int(request.args.get("fail", "1")):
            return Response(json.dumps({"attempt": len(seen)}), status=503, mimetype="application/json")
        return Response(json.dumps({"bodies": seen}), mimetype="application/json")
    if path.startswith("/redirect/"):
        _drain(request)
        code = int(path.split("/")[2])
        return Response(b"", status=code, headers={"Location": request.args["to"]})
    if path.startswith("/auth/"):
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (AUTH_USER, AUTH_PASSWORD):
            _drain(request)
            return Response(
                b"login first", status=401,
                headers={"WWW-Authenticate": 'Basic realm="poster"'},
            )
    if path == "/set-cookie":
        _drain(request)
        response = Response(b"", status=303, headers={"Location": request.args["to"]})
        response.set_cookie("session", "poster-cookie", path="/")
        return response
    return Response(json.dumps(echo_payload(request)), mimetype="application/json")


class QuietHandler(WSGIRequestHandler):
    """Keeps the test output free of one log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class RunningServer:
    def __init__(self, server: Any, scheme: str) -> None:
        self.server = server
        self.scheme = scheme
        self.port = server.server_port
        self.url = f"{scheme}://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(app: Any = routes_app, ssl_context: Optional[ssl.SSLContext] = None) -> Iterator[RunningServer]:
    """Run ``app`` on a free port of 127.0.0.1 until the ``with`` ends."""
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context, request_handler=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield RunningServer(server, "https" if ssl_context else "http")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
