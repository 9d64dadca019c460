"""A loopback HTTP sink for the upload benchmarks: it reads bodies and discards them.

Run as its own process: ``python sink.py [--certfile F --keyfile K]``.  It
prints ``<http port> <https port>`` (the latter 0 without a certificate) on
one line, then serves until killed.  Every request body is read to its
``Content-Length`` (``Expect: 100-continue`` is answered at once) and thrown
away; the answer is ``200`` with the number of body bytes received, and the
connection is closed.
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
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
        if expect and not rest:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        received = len(rest)
        buffer = bytearray(1 << 20)
        while received < length:
            got = conn.recv_into(buffer, min(len(buffer), length - received))
            if not got:
                break
            received += got
        answer = str(received).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
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
