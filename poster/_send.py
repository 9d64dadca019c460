"""Putting bytes on a socket, and reading a head from one: what
:meth:`MultipartBody.write_to`, :mod:`poster.streaminghttp` and
:mod:`poster.receiver` share.

Over a plain TCP socket, file content can go out with ``os.sendfile``
(zero-copy, from the page cache); over TLS and other streams it goes through
``sendall``.
"""

from __future__ import annotations

import io
import mmap
import os
import select
import socket
import sys
import time
from typing import Any, Optional

__all__ = ["SEND_WINDOW", "is_plain_socket", "sendfile_all", "read_buffer", "DeadlineReader"]

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


class DeadlineReader(io.RawIOBase):
    """A socket read through its raw file, no read waiting past :attr:`deadline`.

    While :attr:`deadline` (a :func:`time.monotonic` moment) is set, a peer
    that trickles a head a byte at a time cannot hold the reader longer
    (``TimeoutError(late)``); each read also waits at most the socket's own
    timeout.  ``prefix``, bytes taken from the socket already, is given back
    first.  The raw file keeps the socket open while it is read, even after
    its owner closed it.
    """

    def __init__(self, sock: Any, deadline: Optional[float], late: str, prefix: bytes = b"") -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._prefix = prefix
        self._late = late
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Optional[int]:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        if self.deadline is None:
            result: Optional[int] = self._raw.readinto(buffer)
            return result
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(self._late)
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining if previous is None else min(remaining, previous))
        try:
            result = self._raw.readinto(buffer)
            return result
        finally:
            self._sock.settimeout(previous)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
