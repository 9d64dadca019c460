"""poster's stat and fstat when the C library misbehaves as real systems do.

A file given by its path is measured (``stat``) when its param is made and
known again (``fstat``) when a body opens it; the compiled twin makes those
calls itself.  Here a small library preloaded into a child process makes
them slow (a hung network file system), interrupted (``EINTR``, a signal
during a FUSE call) or return device numbers with the top bit set (64-bit
``dev_t``, as FreeBSD's ZFS gives), and each backend must behave as
``os.stat`` and ``os.fstat`` do: other threads run meanwhile, an
interrupted call is retried, and the numbers are those ``os.stat`` gives.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from poster import _backend

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* POSTER_SHIM_SLOW_INO: stat and fstat of that inode take 0.3 s.
   POSTER_SHIM_EINTR_INO: the first fstat of that inode fails with EINTR.
   POSTER_SHIM_HIGH_DEV: that device number comes back with bit 63 set. */
static unsigned long long env_number(const char *name) {
    const char *value = getenv(name);
    return value ? strtoull(value, NULL, 10) : 0;
}

static int adjust(struct stat *st, int is_fstat) {
    static int interrupted;
    unsigned long long ino = (unsigned long long)st->st_ino;
    if (env_number("POSTER_SHIM_SLOW_INO") == ino)
        usleep(300000);
    if (is_fstat && env_number("POSTER_SHIM_EINTR_INO") == ino && !interrupted) {
        interrupted = 1;
        errno = EINTR;
        return -1;
    }
    if (env_number("POSTER_SHIM_HIGH_DEV") == (unsigned long long)st->st_dev)
        st->st_dev = (dev_t)((unsigned long long)st->st_dev | 0x8000000000000000ULL);
    return 0;
}

int stat(const char *path, struct stat *st) {
    static int (*real)(const char *, struct stat *);
    if (!real) real = (int (*)(const char *, struct stat *))dlsym(RTLD_NEXT, "stat");
    int result = real(path, st);
    return result == 0 ? adjust(st, 0) : result;
}
int stat64(const char *path, struct stat64 *st) { return stat(path, (struct stat *)st); }

int fstat(int fd, struct stat *st) {
    static int (*real)(int, struct stat *);
    if (!real) real = (int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat");
    int result = real(fd, st);
    return result == 0 ? adjust(st, 1) : result;
}
int fstat64(int fd, struct stat64 *st) { return fstat(fd, (struct stat *)st); }
"""

CHILD = r"""
import json, os, sys, threading, time
from poster import _backend, _fastencode_py
from poster.encode import MultipartParam, multipart_encode
from poster.errors import SourceChangedError

backend, case, path = sys.argv[1:4]
_backend.select(backend)
out = {}
if case == "slow":
    ticks, stop = [0], threading.Event()

    def tick():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    started, before = time.monotonic(), ticks[0]
    param = MultipartParam.from_file("f", path)
    out["measure"] = (time.monotonic() - started, ticks[0] - before)
    started, before = time.monotonic(), ticks[0]
    out["sent"] = len(b"".join(multipart_encode([param], "XX")[0]))
    out["send"] = (time.monotonic() - started, ticks[0] - before)
    stop.set()
    thread.join()
elif case == "eintr":
    param = MultipartParam.from_file("f", path)
    out["body"] = b"".join(multipart_encode([param], "XX")[0]).decode("latin-1")
elif case == "high dev":
    out["ours"] = _backend.impl.measure_file(path)
    out["reference"] = _fastencode_py.measure_file(path)
    param = MultipartParam.from_file("f", path)
    other = "python" if backend == "cython" else backend
    _backend.select(other)  # made with one backend, sent with the other
    out["sent"] = len(b"".join(multipart_encode([param], "XX")[0]))
    _backend.select(backend)
    with open(path, "ab") as f:
        f.write(b"more")
    try:
        b"".join(multipart_encode([param], "XX")[0])
    except SourceChangedError as exc:
        out["changed"] = str(exc)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    """The preload library, built with the compiler that builds the extension."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) to build the preload library with")
    folder = tmp_path_factory.mktemp("shim")
    (folder / "shim.c").write_text(SHIM)
    library = folder / "shim.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(folder / "shim.c"), "-ldl"],
                   check=True, capture_output=True)
    return library


def run_child(shim, case, path, **env):
    """CHILD's answer for ``case`` on the backend in use, the shim preloaded."""
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD", ""), str(shim)]))  # after ASan's
    environ = dict(os.environ, LD_PRELOAD=preload, **{key: str(value) for key, value in env.items()})
    result = subprocess.run([sys.executable, "-c", CHILD, _backend.current(), case, str(path)],
                            capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_other_threads_run_while_a_file_is_measured_and_opened(shim, tmp_path):
    path = tmp_path / "slow.bin"
    path.write_bytes(b"x" * 1000)
    out = run_child(shim, "slow", path, POSTER_SHIM_SLOW_INO=os.stat(path).st_ino)
    assert out["sent"] > 1000
    for step in ("measure", "send"):
        seconds, ticks = out[step]
        assert seconds >= 0.25, (step, out)  # the shim's delay took effect
        assert ticks >= 20, (step, out)  # the ticker kept running: the GIL was free


def test_an_interrupted_fstat_is_retried(shim, tmp_path):
    path = tmp_path / "eintr.bin"
    path.write_bytes(b"content")
    out = run_child(shim, "eintr", path, POSTER_SHIM_EINTR_INO=os.stat(path).st_ino)
    assert "\r\n\r\ncontent\r\n--XX--\r\n" in out["body"]


def test_device_numbers_past_63_bits_are_those_of_os_stat(shim, tmp_path):
    path = tmp_path / "dev.bin"
    path.write_bytes(b"abc")
    out = run_child(shim, "high dev", path, POSTER_SHIM_HIGH_DEV=os.stat(path).st_dev)
    assert out["ours"] == out["reference"]
    assert out["ours"][0] != os.stat(path).st_dev  # the shim took effect
    assert out["sent"] > 3
    assert "its size changed from 3 to 7 bytes" in out["changed"]
