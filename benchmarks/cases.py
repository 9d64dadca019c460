"""The benchmark cases, shared by the pytest-benchmark files and run_all.py.

Every case is a zero-argument callable; a contender's name says whose code
it runs.  Peers come from the ``bench`` extra.  Nothing here touches the
network.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Dict

import poster.encode
from poster import _backend

BOUNDARY = "0123456789abcdef0123456789abcdef"
BLOCKSIZE = 64 * 1024
BIG_FILE_SIZE = 256 * 1024 * 1024
MEMORY_FILE_SIZE = 1024 * 1024 * 1024
SMALL_FIELDS = [(f"field{i}", f"value number {i}") for i in range(20_000)]

# A pure-Python install: "ours" is the fallback too.
IMPLS = {"python": "python", "cython": "cython" if "cython" in _backend.AVAILABLE else "python"}

Case = Callable[[], object]


# -- files -------------------------------------------------------------------


def data_dir() -> Path:
    """Where the big files live; POSTER_BENCH_DIR overrides the temp directory."""
    path = Path(os.environ.get("POSTER_BENCH_DIR") or Path(tempfile.gettempdir()) / "poster-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def big_file(size: int = BIG_FILE_SIZE, name: str = "big") -> Path:
    """A file of ``size`` random-looking bytes without the boundary, in the page cache."""
    path = data_dir() / f"{name}-{size}.bin"
    if not path.exists() or path.stat().st_size != size:
        chunk = hashlib.shake_256(name.encode()).digest(1024 * 1024)
        with open(path, "wb") as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
            f.write(chunk[: size % len(chunk)])
    with open(path, "rb") as f:  # read once so it is in the page cache
        while f.read(1 << 24):
            pass
    return path


# -- one big file, hashed ------------------------------------------------------------


def bare_sha256(path: Path) -> Case:
    """The floor of a digest: hashlib.sha256 of the file read in 1 MiB blocks."""

    def run():
        hasher = hashlib.sha256()
        buffer = memoryview(mmap.mmap(-1, 1 << 20))
        with open(path, "rb", buffering=0) as f:
            while True:
                count = f.readinto(buffer)
                if not count:
                    return hasher.hexdigest()
                hasher.update(buffer[:count])

    return run


def poster_digest(path: Path, backend: str) -> Case:
    """Encoding the file with ``digest="sha256"``: read, scanned and hashed once."""
    impl = IMPLS[backend]

    def run():
        _backend.select(impl)
        param = poster.encode.MultipartParam.from_file("file", str(path))
        datagen, _ = poster.encode.multipart_encode(
            [param], boundary=BOUNDARY, blocksize=BLOCKSIZE, digest="sha256"
        )
        for _block in datagen:
            pass
        return datagen.digests[0][1]

    return run


def digest_cases(path: Path) -> Dict[str, Case]:
    return {"poster (cython)": poster_digest(path, "cython"), "bare sha256": bare_sha256(path)}


# -- one big file ----------------------------------------------------------------


def bare_readinto(path: Path) -> Case:
    """The floor: readinto one reused buffer, nothing else.

    The buffer starts on a page boundary (anonymous memory): a bytearray can
    start just past one, where some CPUs copy from the page cache 4 times
    slower, which would make the floor look low.
    """

    def run():
        buffer = memoryview(mmap.mmap(-1, BLOCKSIZE))
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass

    return run


def poster_bigfile(path: Path, backend: str) -> Case:
    impl = IMPLS[backend]

    def run():
        _backend.select(impl)
        with open(path, "rb") as f:
            param = poster.encode.MultipartParam("file", fileobj=f, filename=path.name)
            datagen, _ = poster.encode.multipart_encode([param], boundary=BOUNDARY, blocksize=BLOCKSIZE)
            for _block in datagen:
                pass

    return run


def httpx_bigfile(path: Path) -> Case:
    from httpx._multipart import MultipartStream

    def run():
        with open(path, "rb") as f:
            stream = MultipartStream(data={}, files={"file": (path.name, f)}, boundary=BOUNDARY.encode())
            for _block in stream:
                pass

    return run


def toolbelt_bigfile(path: Path) -> Case:
    from requests_toolbelt import MultipartEncoder

    def run():
        with open(path, "rb") as f:
            encoder = MultipartEncoder({"file": (path.name, f, "application/octet-stream")}, boundary=BOUNDARY)
            while encoder.read(BLOCKSIZE):
                pass

    return run


class _Sink:
    """What aiohttp writes a payload to: counts and drops the bytes."""

    def __init__(self):
        self.size = 0

    async def write(self, data):
        self.size += len(data)


def aiohttp_bigfile(path: Path) -> Case:
    import aiohttp

    def run():
        async def encode():
            with open(path, "rb") as f:
                form = aiohttp.FormData()
                form.add_field("file", f, filename=path.name)
                await form().write(_Sink())

        asyncio.run(encode())

    return run


def bigfile_cases(path: Path) -> Dict[str, Case]:
    return {
        "poster (cython)": poster_bigfile(path, "cython"),
        "bare readinto": bare_readinto(path),
        "poster (python)": poster_bigfile(path, "python"),
        "httpx": httpx_bigfile(path),
        "requests-toolbelt": toolbelt_bigfile(path),
        "aiohttp": aiohttp_bigfile(path),
    }


# -- many small fields -------------------------------------------------------------


def poster_fields(backend: str) -> Case:
    impl = IMPLS[backend]

    def run():
        _backend.select(impl)
        datagen, _ = poster.encode.multipart_encode(SMALL_FIELDS, boundary=BOUNDARY)
        return b"".join(datagen)

    return run


def httpx_fields() -> Case:
    from httpx._multipart import MultipartStream

    def run():
        return b"".join(MultipartStream(data=dict(SMALL_FIELDS), files={}, boundary=BOUNDARY.encode()))

    return run


def urllib3_fields() -> Case:
    import urllib3

    def run():
        return urllib3.encode_multipart_formdata(SMALL_FIELDS, boundary=BOUNDARY)[0]

    return run


def toolbelt_fields() -> Case:
    from requests_toolbelt import MultipartEncoder

    def run():
        return MultipartEncoder(SMALL_FIELDS, boundary=BOUNDARY).to_string()

    return run


def aiohttp_fields() -> Case:
    import aiohttp

    def run():
        form = aiohttp.FormData(SMALL_FIELDS, default_to_multipart=True)
        return asyncio.run(form().as_bytes())

    return run


def fields_cases() -> Dict[str, Case]:
    return {
        "poster (cython)": poster_fields("cython"),
        "poster (python)": poster_fields("python"),
        "httpx": httpx_fields(),
        "urllib3": urllib3_fields(),
        "requests-toolbelt": toolbelt_fields(),
        "aiohttp": aiohttp_fields(),
    }


# -- two threads -------------------------------------------------------------------


def threaded_bigfiles(paths, backend: str = "cython") -> Case:
    """Encode each of ``paths`` in its own thread, all at once."""
    runs = [poster_bigfile(path, backend) for path in paths]

    def run():
        threads = [threading.Thread(target=one) for one in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return run


# -- memory ----------------------------------------------------------------------

_MEMORY_PROBE = """
import sys
import poster.encode
from poster import _backend
_backend.select(sys.argv[2])

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

with open(sys.argv[1], "rb") as f:
    param = poster.encode.MultipartParam("file", fileobj=f, filename="big.bin")
    datagen, headers = poster.encode.multipart_encode([param], boundary=sys.argv[3])
    first = next(datagen)  # everything is set up: measure from here
    # Reset the peak to the current RSS (Linux >= 4.0), so neither the
    # imports nor the parent process (ru_maxrss survives exec) count.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = status("VmRSS")
    size = len(first) + sum(len(block) for block in datagen)
after = status("VmHWM")
assert size == int(headers["Content-Length"])
print(after - before)
"""


def peak_rss_growth_kib(path: Path, backend: str) -> int:
    """Peak RSS growth (KiB) of a fresh process while it encodes ``path`` (Linux)."""
    backend = IMPLS[backend]
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path), backend, BOUNDARY],
        check=True, capture_output=True, text=True,
    )
    return int(result.stdout.strip())

