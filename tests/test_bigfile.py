"""A 3 GiB file (sparse) encodes in constant memory with the right length."""


import pytest

from poster.encode import MultipartParam, multipart_encode

SIZE = 3 * 1024 ** 3


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def sparse_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "sparse.bin"
    with open(path, "wb") as f:
        f.write(b"head")
        f.truncate(SIZE)
        f.seek(SIZE - 4)
        f.write(b"tail")
    yield path
    path.unlink()


@pytest.mark.slow
def test_sparse_3gib_file_constant_memory(sparse_file):
    param = MultipartParam.from_file("big", sparse_file)
    datagen, headers = multipart_encode([("before", "x"), param, ("after", "y")])
    expected = int(headers["Content-Length"])
    assert expected > SIZE

    baseline = _rss_bytes()
    peak = baseline
    total = 0
    first = last = b""
    for index, block in enumerate(datagen):
        total += len(block)
        if index < 3:
            first += block
        last = (last + block)[-200:]
        if index % 512 == 0:
            peak = max(peak, _rss_bytes())
    assert total == expected == len(datagen)
    assert b"\r\n\r\nhead" in first
    assert b"tail\r\n--" in last
    assert peak - baseline < 16 * 1024 * 1024, f"RSS grew by {(peak - baseline) / 2**20:.1f} MiB"
