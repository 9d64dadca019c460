"""A loopback HTTP sink for the upload benchmarks: it reads bodies and discards them.

Run as its own process: ``python sink.py [--certfile F --keyfile K]``.  It
prints ``<http port> <https port>`` (the latter 0 without a certificate) on
one line, then serves until killed.  Every request body is read to its
``Content-Length``, or to its last chunk when it comes with
``Transfer-Encoding: chunked`` (``Expect: 100-continue`` is answered at once),
and thrown away; the answer is ``200`` with the number of body bytes received
(for a chunked body, the bytes of its chunks' data, without the framing), and
the connection is closed.  A chunked body that is not framed as RFC 9112 says
is answered ``400``.
"""

from __future__ import annotations

import argparse
import io
import socket
import ssl
import sys
import threading
from typing import Optional


def read_head(conn: socket.socket) -> Optional[bytes]:
    head = bytearray()
    while b"\r\n\r\n" not in head:
        block = conn.recv(65536)
        if not block:
            return None
        head += block
        if len(head) > 1 << 20:
            return None
    return bytes(head)


class _Prefixed(io.RawIOBase):
    """A socket read as a raw stream, ``prefix`` (what came with the head) first."""

    def __init__(self, conn: socket.socket, prefix: bytes) -> None:
        self._conn = conn
        self._prefix = memoryview(prefix)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return self._conn.recv_into(buffer)


class ChunkedError(ValueError):
    """A chunked body that is not framed as it should be."""


def read_chunked(conn: socket.socket, rest: bytes) -> int:
    """Read a chunked body to its end (trailers included); return its data bytes.

    The size line is read with ``readline`` of a buffered reader, the data
    into one reused buffer (no ``bytes`` per chunk), so a client sending 1 GiB
    in 64 KiB chunks does not find the sink in its way.
    """
    reader = io.BufferedReader(_Prefixed(conn, rest), buffer_size=1 << 18)
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    received = 0
    while True:
        line = reader.readline(4096)
        if not line.endswith(b"\n"):
            raise ChunkedError(f"no chunk size line (got {line[:40]!r})")
        size_text = line.partition(b";")[0].strip()
        if not size_text or size_text.lstrip(b"0123456789abcdefABCDEF"):
            raise ChunkedError(f"bad chunk size line {line[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        left = size
        while left:
            got = reader.readinto(view[:min(left, len(buffer))])
            if not got:
                raise ChunkedError(f"the body ended inside a chunk, {left} of {size} bytes missing")
            left -= got
        received += size
        if reader.read(2) != b"\r\n":
            raise ChunkedError(f"a chunk of {size} bytes is not followed by CRLF")
    for _ in range(1024):  # trailers, up to the empty line
        line = reader.readline(8192)
        if not line.endswith(b"\n"):
            raise ChunkedError("the body ended inside its trailers")
        if line in (b"\r\n", b"\n"):
            return received
    raise ChunkedError("too many trailer lines")


def serve_connection(conn: socket.socket, context: Optional[ssl.SSLContext]) -> None:
    try:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        head = read_head(conn)
        if head is None:
            return
        head, _, rest = head.partition(b"\r\n\r\n")
        length = 0
        expect = False
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
            elif key == b"transfer-encoding":
                chunked = value.strip().lower().rpartition(b",")[2].strip() == b"chunked"
        if expect and not rest:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        status = b"200 OK"
        if chunked:  # Transfer-Encoding wins over Content-Length (RFC 9112, 6.3)
            try:
                received = read_chunked(conn, rest)
                answer = str(received).encode()
            except ChunkedError as exc:
                status, answer = b"400 Bad Request", str(exc).encode()
        else:
            received = len(rest)
            buffer = bytearray(1 << 20)
            while received < length:
                got = conn.recv_into(buffer, min(len(buffer), length - received))
                if not got:
                    break
                received += got
            answer = str(received).encode()
        conn.sendall(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
        )
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


def listen(context: Optional[ssl.SSLContext]) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    thread = threading.Thread(target=accept_loop, args=(listener, context), daemon=True)
    thread.start()
    return listener


def accept_loop(listener: socket.socket, context: Optional[ssl.SSLContext]) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(conn, context), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    http = listen(None)
    https_port = 0
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
        https_port = listen(context).getsockname()[1]
    print(http.getsockname()[1], https_port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
