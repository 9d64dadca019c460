#!/usr/bin/env bash
# Build poster._fastencode with AddressSanitizer and UndefinedBehaviorSanitizer
# and run the whole test suite with the sanitizer runtimes preloaded. Any
# report stops the run with a non-zero exit.
#
#   scripts/asan.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-asan
python3 -m venv --clear "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip

sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
python -m pip install --quiet ".[test]"
CFLAGS="$sanitize -g" LDFLAGS="$sanitize" POSTER_REQUIRE_EXTENSIONS=1 \
    python -m pip install --quiet --no-cache-dir --no-deps --force-reinstall .

asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
# The interpreter itself is not built with the sanitizer: leak reports from it
# are noise, so leak detection is off; everything else aborts.
# A small quarantine keeps freed blocks from piling up in the memory tests.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0:quarantine_size_mb=4"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LD_PRELOAD="$asan $ubsan"
(cd / && python -c "import poster, sys; sys.exit(poster.BACKEND != 'cython')")
pytest -q -p no:cacheprovider "$@"
echo "sanitized test run: no reports"
