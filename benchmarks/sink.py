"""A loopback HTTP sink for the upload benchmarks: it reads bodies and discards them.

Run as its own process: ``python sink.py [--certfile F --keyfile K] [--keep-alive]``.
It prints ``<http port> <https port>`` (the latter 0 without a certificate)
on one line, then serves until killed.  Every request body is read to its
``Content-Length``, or to its last chunk when it comes with
``Transfer-Encoding: chunked`` (``Expect: 100-continue`` is answered at once),
and thrown away; the answer is ``200`` with the number of body bytes received
(for a chunked body, the bytes of its chunks' data, without the framing), and
the connection is closed.  A chunked body that is not framed as RFC 9112 says
is answered ``400``.

With ``--keep-alive`` a connection serves one request after another (HTTP/1.1
persistent connections; a body may also be chunked) until the client closes
it: what the many-small-uploads benchmarks need.
"""

from __future__ import annotations

import argparse
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


class ChunkedError(ValueError):
    """A chunked body that is not framed as it should be."""


class _Unread:
    """What came in and was not parsed yet: ``buffer[start:end]``, refilled by ``recv_into``."""

    def __init__(self, conn: socket.socket, rest: bytes) -> None:
        self.conn = conn
        self.buffer = bytearray(max(1 << 20, 2 * len(rest)))
        self.view = memoryview(self.buffer)
        self.buffer[:len(rest)] = rest
        self.start = 0
        self.end = len(rest)

    def fill(self) -> None:
        """Receive more, after what is unparsed (moved to the front first)."""
        left = self.end - self.start
        if left and self.start:
            self.buffer[:left] = self.view[self.start:self.end]
        self.start, self.end = 0, left
        if left == len(self.buffer):
            raise ChunkedError("a line longer than the sink's buffer")
        got = self.conn.recv_into(self.view[left:])
        if not got:
            raise ChunkedError("the body ended before its last chunk")
        self.end += got

    def line(self, limit: int) -> bytes:
        """The next line, its CRLF included."""
        while True:
            newline = self.buffer.find(b"\n", self.start, self.end)
            if newline >= 0:
                line = bytes(self.view[self.start:newline + 1])
                self.start = newline + 1
                return line
            if self.end - self.start > limit:
                raise ChunkedError(f"a line longer than {limit} bytes")
            self.fill()

    def skip(self, count: int) -> int:
        """Pass over up to ``count`` bytes (at least one); return how many."""
        if self.start == self.end:
            self.start = self.end = 0
            self.fill()
        taken = min(count, self.end - self.start)
        self.start += taken
        return taken


def read_chunked(conn: socket.socket, rest: bytes) -> int:
    """Read a chunked body to its end (trailers included); return its data bytes.

    The body is received into one reused 1 MiB buffer and parsed where it
    lies: a size line is found with ``find``, a chunk's data is passed over
    by moving an offset, so every byte is copied once (by ``recv_into``)
    and a 64 KiB chunk costs a few Python operations.
    """
    unread = _Unread(conn, rest)
    received = 0
    while True:
        line = unread.line(4096)
        size_text = line.partition(b";")[0].strip()
        if not size_text or size_text.lstrip(b"0123456789abcdefABCDEF"):
            raise ChunkedError(f"bad chunk size line {line[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        left = size
        while left:
            left -= unread.skip(left)
        received += size
        while unread.end - unread.start < 2:
            unread.fill()
        if unread.view[unread.start:unread.start + 2] != b"\r\n":
            raise ChunkedError(f"a chunk of {size} bytes is not followed by CRLF")
        unread.start += 2
    for _ in range(1024):  # trailers, up to the empty line
        if unread.line(8192) in (b"\r\n", b"\n"):
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


class _Connection:
    """A persistent connection's bytes: what was received and not used yet."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.data = bytearray()
        self.buffer = memoryview(bytearray(1 << 20))

    def fill(self) -> bool:
        block = self.conn.recv(1 << 18)
        self.data += block
        return bool(block)

    def line(self) -> Optional[bytes]:
        while (end := self.data.find(b"\r\n")) < 0:
            if not self.fill():
                return None
        line = bytes(self.data[:end])
        del self.data[: end + 2]
        return line

    def skip(self, count: int) -> int:
        """Drop ``count`` bytes of body; the number dropped (fewer at EOF)."""
        taken = min(count, len(self.data))
        del self.data[:taken]
        buffer = self.buffer
        while taken < count:
            got = self.conn.recv_into(buffer, min(len(buffer), count - taken))
            if not got:
                break
            taken += got
        return taken


def serve_persistent(conn: socket.socket, context: Optional[ssl.SSLContext]) -> None:
    try:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = _Connection(conn)
        while True:
            while (end := stream.data.find(b"\r\n\r\n")) < 0:
                if not stream.fill():
                    return
            head = bytes(stream.data[:end])
            del stream.data[: end + 4]
            length, chunked, expect = 0, False, False
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif key == b"expect" and value.strip().lower() == b"100-continue":
                    expect = True
            if expect and not stream.data:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if chunked:
                received = 0
                while True:
                    size_line = stream.line()
                    if size_line is None:
                        return
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        while stream.line():  # trailers, up to the empty line
                            pass
                        break
                    received += stream.skip(size)
                    stream.skip(2)
            else:
                received = stream.skip(length)
                if received < length:
                    return
            answer = str(received).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(answer), answer))
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


SERVE = serve_connection


def listen(context: Optional[ssl.SSLContext]) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    thread = threading.Thread(target=accept_loop, args=(listener, context), daemon=True)
    thread.start()
    return listener


def accept_loop(listener: socket.socket, context: Optional[ssl.SSLContext]) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=SERVE, args=(conn, context), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--keep-alive", action="store_true", help="serve many requests per connection")
    args = parser.parse_args()
    global SERVE
    if args.keep_alive:
        SERVE = serve_persistent
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
