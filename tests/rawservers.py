"""A raw-socket HTTP server on 127.0.0.1 for faults and byte counting.

``RawServer(behaviour)`` accepts connections in a thread and runs
``behaviour(conn, record)`` for each in its own thread; ``record`` is a
:class:`Connection` the test reads afterwards (the request head, how many body
bytes arrived, their sha256, or the body itself when asked to keep it).
Every socket has a timeout and every loop is bounded, so a test that goes
wrong fails instead of hanging.  The behaviours are small functions:
:func:`counting` (answer after the whole body, optionally answering
``Expect: 100-continue`` first), :func:`reset_after`, :func:`stall`,
:func:`multipart_digest` (parses multipart/form-data in constant memory).
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional

SOCKET_TIMEOUT = 20.0
MAX_HEAD = 256 * 1024


class Connection:
    """What one connection delivered."""

    def __init__(self) -> None:
        self.head: bytes = b""
        self.headers: Dict[str, str] = {}
        self.body_bytes = 0
        self.sha = hashlib.sha256()
        self.body: Optional[bytearray] = None
        self.done = threading.Event()
        self.error: Optional[BaseException] = None

    @property
    def content_length(self) -> int:
        return int(self.headers.get("content-length", "0"))

    @property
    def expects_continue(self) -> bool:
        return self.headers.get("expect", "").lower() == "100-continue"


class RawServer:
    """Run ``behaviour`` for every connection, on a free port of 127.0.0.1."""

    def __init__(
        self,
        behaviour: Callable[["socket.socket", Connection], None],
        ssl_context: Optional[ssl.SSLContext] = None,
        rcvbuf: Optional[int] = None,
        keep_body: bool = False,
    ) -> None:
        self.behaviour = behaviour
        self.ssl_context = ssl_context
        self.keep_body = keep_body
        self.connections: List[Connection] = []
        self.stop = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Inherited by accepted sockets: a small window makes a stalled
            # reader stall the sender quickly.
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "RawServer":
        self._acceptor.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        self.listener.close()

    def wait(self, count: int = 1, timeout: float = 10.0) -> List[Connection]:
        """The first ``count`` connections, once each has finished."""
        deadline = time.monotonic() + timeout
        while len(self.connections) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        for record in self.connections[:count]:
            record.done.wait(max(0.0, deadline - time.monotonic()))
        assert len(self.connections) >= count, f"only {len(self.connections)} connections"
        return self.connections[:count]

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            record = Connection()
            if self.keep_body:
                record.body = bytearray()
            self.connections.append(record)
            thread = threading.Thread(target=self._run, args=(conn, record), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket, record: Connection) -> None:
        try:
            conn.settimeout(SOCKET_TIMEOUT)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            read_head(conn, record)
            self.behaviour(conn, record)
        except (OSError, ValueError) as exc:
            record.error = exc
        finally:
            record.done.set()
            try:
                conn.close()
            except OSError:
                pass

    # -- what behaviours use ---------------------------------------------------


def read_head(conn: socket.socket, record: Connection) -> None:
    """Read the request head byte-exactly; leftover body bytes stay in the socket."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        if not byte:
            raise ConnectionError("closed before the end of the head")
        head += byte
        if len(head) > MAX_HEAD:
            raise ValueError("head too long")
    record.head = bytes(head)
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            record.headers[key.strip().lower()] = value.strip()


def read_body(conn: socket.socket, record: Connection, limit: Optional[int] = None,
              sink: Optional[Callable[[bytes], None]] = None) -> None:
    """Read up to ``limit`` (default: Content-Length) body bytes, or until EOF."""
    want = record.content_length if limit is None else limit
    while record.body_bytes < want:
        block = conn.recv(min(1 << 20, want - record.body_bytes))
        if not block:
            return
        record.body_bytes += len(block)
        record.sha.update(block)
        if record.body is not None:
            record.body += block
        if sink is not None:
            sink(block)


def respond(conn: socket.socket, status: str, payload: Any = None, extra: str = "") -> None:
    body = json.dumps(payload).encode() if payload is not None else b""
    conn.sendall(
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n".encode() + body
    )


def drain_until_closed(conn: socket.socket, record: Connection, timeout: float = 5.0) -> None:
    """Count whatever body bytes still come until the client closes."""
    conn.settimeout(timeout)
    try:
        read_body(conn, record, limit=1 << 62)
    except (socket.timeout, OSError):
        pass


# -- behaviours -----------------------------------------------------------------


def counting(expect: Optional[str] = None) -> Callable[[socket.socket, Connection], None]:
    """Read the whole body, answer 200 with its size and sha256.

    ``expect`` is how an ``Expect: 100-continue`` is answered: ``"100"``,
    ``None`` (say nothing), or a final status such as ``"413"`` / ``"401"``
    sent before any body byte (then the body bytes that still arrive are
    counted until the client closes).
    """

    def behaviour(conn: socket.socket, record: Connection) -> None:
        if record.expects_continue and expect == "100":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif record.expects_continue and expect is not None:
            extra = 'WWW-Authenticate: Basic realm="poster"\r\n' if expect == "401" else ""
            respond(conn, f"{expect} Refused", {"refused": True}, extra)
            drain_until_closed(conn, record)
            return
        read_body(conn, record)
        respond(conn, "200 OK", {"size": record.body_bytes, "sha256": record.sha.hexdigest()})

    return behaviour


def reset_after(count: int) -> Callable[[socket.socket, Connection], None]:
    """Read ``count`` body bytes, then reset the connection (RST, not FIN)."""

    def behaviour(conn: socket.socket, record: Connection) -> None:
        read_body(conn, record, limit=count)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return behaviour


def stall(server_stop: threading.Event, longest: float = 30.0) -> Callable[[socket.socket, Connection], None]:
    """Read the head, then stop reading until ``server_stop`` (at most ``longest`` s)."""

    def behaviour(conn: socket.socket, record: Connection) -> None:
        server_stop.wait(longest)

    return behaviour


def multipart_digest(conn: socket.socket, record: Connection) -> None:
    """Parse a multipart/form-data body in constant memory; answer per part its
    name, filename, size and sha256 (python-multipart's streaming parser)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(record.headers["content-type"])
    parts: List[dict] = []
    current: Dict[str, Any] = {}
    header = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        current.clear()
        current.update(headers={}, size=0, sha=hashlib.sha256())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        current["headers"][header["field"].decode().lower()] = header["value"].decode()
        header["field"] = header["value"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["size"] += end - start
        current["sha"].update(data[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(current["headers"].get("content-disposition", ""))
        parts.append({
            "name": disposition.get(b"name", b"").decode(),
            "filename": (disposition.get(b"filename") or b"").decode() or None,
            "size": current["size"],
            "sha256": current["sha"].hexdigest(),
        })

    parser = MultipartParser(options[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    read_body(conn, record, sink=parser.write)
    parser.finalize()
    respond(conn, "200 OK", {"size": record.body_bytes, "fields": parts})
