#!/usr/bin/env bash
# Run the fuzz harnesses under fuzz/ for a bounded number of inputs each.
#
#   scripts/fuzz.sh            # 20 000 inputs per harness (what CI runs)
#   scripts/fuzz.sh 5000000    # a long run
#
# Each harness starts from its seed corpus in fuzz/corpus/<harness>/ (copied,
# so the repository is not written to). A crash or divergence is saved under
# fuzz/crashes/; copy it into fuzz/corpus/<harness>/ and
# tests/test_fuzz_regressions.py replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p fuzz/crashes
for harness in scanner headers bodies; do
    cp -r "fuzz/corpus/$harness" "$work/$harness"
    echo "fuzz_$harness: $runs inputs"
    python "fuzz/fuzz_$harness.py" -runs="$runs" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="fuzz/crashes/$harness-" "$work/$harness" 2>&1 |
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|ERROR|Traceback|AssertionError|.*Error)' || true
    test "${PIPESTATUS[0]}" -eq 0
done
