#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30) and reports executions and
# findings. Needs the nightly toolchain; installs cargo-fuzz when missing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Seeds are committed in fuzz/seeds/<target>; the growing corpus lives in fuzz/corpus/<target>
# (not committed). A finding is written to fuzz/artifacts/<target>/ and makes the script exit 1:
# reproduce it with `cargo +nightly fuzz run <target> <file>` and turn it into a test.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(geometry differential case_file)

rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log=$(mktemp)
    echo "=== $t: ${seconds}s"
    # -timeout: an input that runs 10 s counts as a hang (a finding).
    if cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -max_len=16384 -print_final_stats=1 \
        >"$log" 2>&1; then
        result="no findings"
    else
        result="FINDING (see fuzz/artifacts/$t)"
        status=1
        tail -n 40 "$log"
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(ls "fuzz/corpus/$t" | wc -l)
    echo "$t: $execs executions in ${seconds}s, corpus $corpus inputs: $result"
    rm -f "$log"
done
exit $status
