"""poster's stat and fstat when the C library misbehaves as real systems do.

A file given by its path is measured (``stat``) when its param is made and
known again (``fstat``) when a body opens it; the compiled twin makes those
calls itself.  Here a small library preloaded into a child process makes
them slow (a hung network file system), fail once (``EIO``, ``EACCES``, or
``EINTR``: a signal during a FUSE call) or return device numbers with the
top bit set (64-bit ``dev_t``, as FreeBSD's ZFS gives), and each backend
must behave as ``os.stat`` and ``os.fstat`` do: other threads run
meanwhile, a failure raises the same exception (an interrupted ``fstat``
is tried again), and the numbers are those ``os.stat`` gives.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from poster import _backend

from helpers import c_compiler

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* Each variable names a file as "device:inode".
   POSTER_SHIM_SLOW: stat and fstat of it take 0.3 s.
   POSTER_SHIM_FAIL_STAT, POSTER_SHIM_FAIL_FSTAT: the first stat (fstat) of
   it fails with errno POSTER_SHIM_ERRNO, and POSTER_SHIM_MARK is created.
   POSTER_SHIM_HIGH_DEV: its device number comes back with bit 63 set. */
static int names(const char *variable, const struct stat *st) {
    const char *value = getenv(variable);
    char mine[64];
    if (!value)
        return 0;
    snprintf(mine, sizeof mine, "%llu:%llu",
             (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
    return strcmp(value, mine) == 0;
}

static int adjust(struct stat *st, const char *fail_variable, int *failed) {
    if (names("POSTER_SHIM_SLOW", st))
        usleep(300000);
    if (!*failed && names(fail_variable, st)) {
        const char *mark = getenv("POSTER_SHIM_MARK");
        *failed = 1;
        if (mark)
            close(open(mark, O_WRONLY | O_CREAT, 0600));
        errno = atoi(getenv("POSTER_SHIM_ERRNO"));
        return -1;
    }
    if (names("POSTER_SHIM_HIGH_DEV", st))
        st->st_dev = (dev_t)((unsigned long long)st->st_dev | 0x8000000000000000ULL);
    return 0;
}

int stat(const char *path, struct stat *st) {
    static int (*real)(const char *, struct stat *);
    static int failed;
    if (!real) real = (int (*)(const char *, struct stat *))dlsym(RTLD_NEXT, "stat");
    int result = real(path, st);
    return result == 0 ? adjust(st, "POSTER_SHIM_FAIL_STAT", &failed) : result;
}
int stat64(const char *path, struct stat64 *st) { return stat(path, (struct stat *)st); }

int fstat(int fd, struct stat *st) {
    static int (*real)(int, struct stat *);
    static int failed;
    if (!real) real = (int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat");
    int result = real(fd, st);
    return result == 0 ? adjust(st, "POSTER_SHIM_FAIL_FSTAT", &failed) : result;
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
elif case == "fail":
    # One failed stat (or fstat): what os.stat (os.fstat) raises, or for an
    # interrupted fstat the body, as os.fstat tries again.
    try:
        param = MultipartParam.from_file("f", path)
        out["body"] = b"".join(multipart_encode([param], "XX")[0]).decode("latin-1")
    except OSError as exc:
        out["error"] = [type(exc).__name__, exc.errno, exc.filename, str(exc)]
elif case == "high dev":
    out["ours"] = _backend.impl.measure_file(path)
    out["reference"] = _fastencode_py.measure_file(path)
    param = MultipartParam.from_file("f", path)
    out["sent"] = {}
    for other in _backend.AVAILABLE:  # made with one backend, sent with each
        _backend.select(other)
        out["sent"][other] = len(b"".join(multipart_encode([param], "XX")[0]))
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
def shim():
    """The preload library, built with the compiler that builds the extension,
    in a folder of its own (LD_PRELOAD cannot name a path with a space)."""
    compiler = c_compiler("the preload library")
    folder = tempfile.mkdtemp(prefix="poster-shim-")
    assert not any(char.isspace() for char in folder), folder
    source, library = os.path.join(folder, "shim.c"), os.path.join(folder, "shim.so")
    with open(source, "w") as f:
        f.write(SHIM)
    subprocess.run(compiler + ["-shared", "-fPIC", "-O1", "-o", library, source, "-ldl"],
                   check=True, capture_output=True)
    yield library
    shutil.rmtree(folder)


def file_name(path):
    """How the shim names the file at ``path``."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def run_child(shim, case, path, **env):
    """CHILD's answer for ``case`` on the backend in use, the shim preloaded."""
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD", ""), shim]))  # after ASan's
    environ = dict(os.environ, LD_PRELOAD=preload, **{key: str(value) for key, value in env.items()})
    # Run from the file's folder: ``-c`` puts the working directory first on
    # sys.path, and a checkout's own poster/ (not built) would shadow the
    # installed one.
    result = subprocess.run([sys.executable, "-c", CHILD, _backend.current(), case, str(path)],
                            capture_output=True, text=True, env=environ, timeout=60, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_other_threads_run_while_a_file_is_measured_and_opened(shim, tmp_path):
    path = tmp_path / "slow.bin"
    path.write_bytes(b"x" * 1000)
    out = run_child(shim, "slow", path, POSTER_SHIM_SLOW=file_name(path))
    assert out["sent"] > 1000
    for step in ("measure", "send"):
        seconds, ticks = out[step]
        assert seconds >= 0.25, (step, out)  # the shim's delay took effect
        assert ticks >= 20, (step, out)  # the ticker kept running: the GIL was free


@pytest.mark.parametrize("call, error, expected", [
    ("STAT", errno.EIO, ["OSError", errno.EIO, "path", "[Errno 5] Input/output error: 'path'"]),
    ("STAT", errno.EACCES, ["PermissionError", errno.EACCES, "path", "[Errno 13] Permission denied: 'path'"]),
    ("STAT", errno.EINTR, ["InterruptedError", errno.EINTR, "path", "[Errno 4] Interrupted system call: 'path'"]),
    ("FSTAT", errno.EIO, ["OSError", errno.EIO, None, "[Errno 5] Input/output error"]),
    ("FSTAT", errno.EINTR, None),  # tried again, as os.fstat does: the body goes out
])
def test_a_failed_stat_or_fstat_raises_what_os_stat_raises(shim, tmp_path, call, error, expected):
    path = tmp_path / "f.bin"
    path.write_bytes(b"content")
    mark = tmp_path / "failed"
    out = run_child(shim, "fail", path, POSTER_SHIM_MARK=mark, POSTER_SHIM_ERRNO=error,
                    **{f"POSTER_SHIM_FAIL_{call}": file_name(path)})
    assert mark.exists()  # the shim made the call fail
    if expected is None:
        assert "\r\n\r\ncontent\r\n--XX--\r\n" in out["body"]
    else:
        expected = [str(path) if item == "path" else item for item in expected]
        expected[3] = expected[3].replace("'path'", repr(str(path)))
        assert out["error"] == expected


def test_device_numbers_past_63_bits_are_those_of_os_stat(shim, tmp_path):
    path = tmp_path / "dev.bin"
    path.write_bytes(b"abc")
    out = run_child(shim, "high dev", path, POSTER_SHIM_HIGH_DEV=file_name(path))
    assert out["ours"] == out["reference"]
    assert out["ours"][0] != os.stat(path).st_dev  # the shim took effect
    assert set(out["sent"].values()) == {out["sent"][_backend.current()]} and out["sent"][_backend.current()] > 3
    assert set(out["sent"]) == set(_backend.AVAILABLE)
    assert "its size changed from 3 to 7 bytes" in out["changed"]
