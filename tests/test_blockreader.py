"""BlockReader: blocks are correct whatever the consumer keeps or lets go."""

import hashlib
import io
import os

import pytest


@pytest.fixture
def content(tmp_path):
    data = os.urandom(1_000_003)
    path = tmp_path / "blocks.bin"
    path.write_bytes(data)
    return path, data


def _blocks(backend, fileobj, size):
    reader = backend.BlockReader()
    while True:
        block = reader.read(fileobj, size)
        if not block:
            return
        yield block


@pytest.mark.parametrize("size", [1, 4096, 65536, 2_000_000])
def test_blocks_let_go_at_once(backend, content, size):
    path, data = content
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in _blocks(backend, f, size):
            sha.update(block)
    assert sha.hexdigest() == hashlib.sha256(data).hexdigest()


def test_blocks_kept_are_never_written_again(backend, content):
    path, data = content
    with open(path, "rb") as f:
        kept = list(_blocks(backend, f, 65536))
    assert b"".join(kept) == data
    assert all(len(block) == 65536 for block in kept[:-1])


def test_a_view_held_on_a_block_keeps_it(backend, content):
    path, data = content
    views = []
    with open(path, "rb") as f:
        for index, block in enumerate(_blocks(backend, f, 4096)):
            if index % 3 == 0:
                views.append((index, memoryview(block)))
    for index, view in views:
        assert view.tobytes() == data[index * 4096:(index + 1) * 4096]


def test_same_bytes_as_a_fresh_reader(backend, content):
    path, data = content
    reader = backend.BlockReader()
    with open(path, "rb") as a, open(path, "rb") as b:
        for size in (1, 7, 4096, 65536, 65536, 65536, 10):
            assert reader.read(a, size) == backend.BlockReader().read(b, size)
    assert reader.read(io.BytesIO(b"abc"), 0) == b""
    with pytest.raises(TypeError):
        reader.read(io.BytesIO(b"abc"), "3")


class KeepsItsView:
    """A reader that keeps a slice of the buffer it was given, and writes later."""

    def __init__(self):
        self.kept = None
        self.calls = 0

    def readinto(self, buffer):
        if self.calls == 2:
            return 0
        self.calls += 1
        buffer[:] = b"A" * len(buffer)
        if self.kept is None:
            self.kept = buffer[:]
        return len(buffer)


def test_a_reader_that_keeps_its_view_cannot_change_a_block(backend):
    reader = KeepsItsView()
    block = backend.BlockReader().read(reader, 16)
    reader.kept[:4] = b"ZZZZ"
    assert block == b"A" * 16


def test_read_returning_a_bytes_subclass(backend):
    class Chunk(bytes):
        pass

    class Reader:
        def read(self, size):
            return Chunk(b"x" * size)

    assert backend.BlockReader().read(Reader(), 4) == b"xxxx"
    assert type(backend.BlockReader().read(Reader(), 4)) is bytes
    buffer = bytearray(3)
    assert backend.readinto_exact(Reader(), buffer) == 3 and buffer == b"xxx"
