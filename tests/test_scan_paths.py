"""Every code path of the compiled boundary scan against a plain reference.

``src/_fastencode_scan.h`` finds a delimiter after a CR or a LF in four
ways: AVX-512 and AVX2 (chosen at run time), SSE2 (x86-64 without either)
and memchr (every other CPU, and the last few offsets on x86-64).  A
machine runs one of the first three for most offsets, so here a small C
program includes the header four times over, each time with the faster
paths switched off in turn, and compares each with a byte-by-byte
reference on random content built to hold line breaks, near misses and
delimiters at every distance from the ends.  Each run says which path it
took, and one the CPU has must be the one taken.
"""

import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile

import pytest

from helpers import c_compiler

HEADER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

PROGRAM = r"""
#ifdef POSTER_TEST_MEMCHR
#undef __SSE2__
#endif
#include "_fastencode_scan.h"
#include <stdio.h>
#include <stdlib.h>

static unsigned long long state = 88172645463325252ULL;
static unsigned int next(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (unsigned int)(state >> 11);
}

/* The first i with data[i] CR or LF and data[i+1 : i+plen] == pattern[1:plen]. */
static Py_ssize_t reference(const unsigned char *data, Py_ssize_t n,
                            const unsigned char *pattern, Py_ssize_t plen) {
    for (Py_ssize_t i = 0; i + plen <= n; i++)
        if ((data[i] == '\n' || data[i] == '\r') && memcmp(data + i + 1, pattern + 1, plen - 1) == 0)
            return i;
    return -1;
}

int main(int argc, char **argv) {
    static unsigned char buffer[4096 + 64];
    const unsigned char near[] = "\n\r-ab\t\x0b\x0c";
    long rounds = atol(argv[1]);
    const char *path = "memchr";
    poster_scan_init();
#if (defined(POSTER_TEST_SSE2) || defined(POSTER_TEST_AVX2)) && defined(POSTER_SCAN_AVX512)
    poster_have_avx512 = 0;
#endif
#if defined(POSTER_TEST_SSE2) && defined(POSTER_SCAN_AVX2)
    poster_have_avx2 = 0;
#endif
#ifdef POSTER_SCAN_SSE2
    path = "sse2";
#endif
#ifdef POSTER_SCAN_AVX2
    if (poster_have_avx2)
        path = "avx2";
#endif
#ifdef POSTER_SCAN_AVX512
    if (poster_have_avx512)
        path = "avx512";
#endif
    for (long round = 0; round < rounds; round++) {
        unsigned char pattern[48];
        Py_ssize_t plen = 2 + next() % 40, n = next() % 1200, shift = next() % 64;
        unsigned char *data = buffer + shift;
        pattern[0] = '\n';
        for (Py_ssize_t k = 1; k < plen; k++)
            pattern[k] = next() % 4 ? '-' : near[next() % 5];
        for (Py_ssize_t k = 0; k < n; k++)
            data[k] = next() % 3 ? near[next() % 8] : (unsigned char)next();
        /* A few copies of the delimiter (whole, or all but its last byte),
         * after a CR, a LF or another byte. */
        for (int copies = next() % 4; copies > 0 && n >= plen; copies--) {
            Py_ssize_t at = next() % (n - plen + 1), len = next() % 4 ? plen : plen - 1;
            memcpy(data + at, pattern, len);
            data[at] = near[next() % 8];
        }
        Py_ssize_t expected = reference(data, n, pattern, plen);
        Py_ssize_t found = poster_find(data, n, pattern, plen);
        if (found != expected) {
            printf("round %ld: n=%zd plen=%zd shift=%zd: found %zd, expected %zd\n",
                   round, n, plen, shift, found, expected);
            return 1;
        }
    }
    printf("ok %s\n", path);
    return 0;
}
"""


@pytest.fixture(scope="module")
def build():
    """Builds the program with the compiler that builds the extension; yields a
    function that builds one variant and returns its path."""
    compiler = c_compiler("the scan test")
    folder = tempfile.mkdtemp(prefix="poster-scan-")
    source = os.path.join(folder, "scan.c")
    with open(source, "w") as f:
        f.write(PROGRAM)

    def variant(name, defines):
        program = os.path.join(folder, name)
        subprocess.run(compiler + ["-O1", "-I", HEADER_DIR, "-I", sysconfig.get_paths()["include"],
                                   *defines, "-o", program, source],
                       check=True, capture_output=True)
        return program

    yield variant
    shutil.rmtree(folder)


def cpu_flags():
    """The flags of this CPU (Linux), or None where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def best_path(flags, allowed):
    """The path an x86-64 CPU with ``flags`` takes among ``allowed``, best first."""
    wants = {"avx512": {"avx512f", "avx512bw"}, "avx2": {"avx2"}, "sse2": set()}
    return next(path for path in allowed if wants[path] <= flags)


@pytest.mark.parametrize("name, defines, allowed", [
    ("default", [], ["avx512", "avx2", "sse2"]),
    ("avx2", ["-DPOSTER_TEST_AVX2"], ["avx2", "sse2"]),
    ("sse2", ["-DPOSTER_TEST_SSE2"], ["sse2"]),
    ("memchr", ["-DPOSTER_TEST_MEMCHR"], ["memchr"]),
])
def test_every_scan_path_finds_what_the_reference_finds(build, name, defines, allowed):
    result = subprocess.run([build(name, defines), "100000"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    verdict, path = result.stdout.split()
    assert verdict == "ok"
    flags = cpu_flags()
    if platform.machine() in ("x86_64", "AMD64") and flags is not None and name != "memchr":
        assert path == best_path(flags, allowed)
    else:
        assert path in allowed + ["memchr"]
