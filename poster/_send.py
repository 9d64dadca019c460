"""Putting bytes on a socket: what :meth:`MultipartBody.write_to` and
:mod:`poster.streaminghttp` share.

Over a plain TCP socket, file content can go out with ``os.sendfile``
(zero-copy, from the page cache); over TLS and other streams it goes through
``sendall``.
"""

from __future__ import annotations

import mmap
import os
import select
import socket
import sys
from typing import Any

__all__ = ["SEND_WINDOW", "is_plain_socket", "sendfile_all", "read_buffer"]

#: Size of the blocks in which ``write_to`` moves file content, in bytes.
SEND_WINDOW = 256 * 1024


def is_plain_socket(sock: Any) -> bool:
    """A TCP socket that ``os.sendfile`` can write to (not TLS)."""
    if not hasattr(os, "sendfile") or not isinstance(sock, socket.socket):
        return False
    tls = sys.modules.get("ssl")  # not imported for plain HTTP
    return tls is None or not isinstance(sock, tls.SSLSocket)


def read_buffer(size: int) -> mmap.mmap:
    """A writable buffer of ``size`` bytes for file content to be read into.

    Anonymous memory, so it starts on a page boundary: some CPUs (measured on
    AMD EPYC) copy a read() from the page cache into memory 1 to 31 bytes past
    a page boundary, where a large ``bytearray`` starts, 4 times slower.
    """
    return mmap.mmap(-1, size)


def sendfile_all(sock: Any, fd: int, offset: int, count: int) -> bool:
    """``os.sendfile`` ``count`` bytes of ``fd`` from ``offset`` to ``sock``.

    Honours the socket's timeout for every wait (``TimeoutError``).  Returns
    False when the file ends before ``count`` bytes were sent.
    """
    timeout = sock.gettimeout()
    out = sock.fileno()
    poller = None
    while count > 0:
        try:
            sent = os.sendfile(out, fd, offset, count)
        except BlockingIOError:
            # A socket with a timeout is non-blocking underneath.
            if poller is None:
                poller = select.poll()
                poller.register(out, select.POLLOUT)
            if not poller.poll(None if timeout is None else timeout * 1000):
                raise TimeoutError("timed out") from None
            continue
        if sent == 0:
            return False
        offset += sent
        count -= sent
    return True
