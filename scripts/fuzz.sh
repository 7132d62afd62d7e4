#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets) for a bounded time, one after another, niced.
#   scripts/fuzz.sh [seconds-per-target]        (default 60)
#   FUZZ_TARGETS="idx config" scripts/fuzz.sh 300
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Each target starts from fuzz/seeds/<target> plus what earlier runs found (fuzz/corpus, not
# checked in). A crash is saved under fuzz/artifacts/<target>/; copy it into
# fuzz/regressions/<target>/ once fixed, and `cargo test -p ganfold-tests` replays it forever.
set -uo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/../fuzz"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
targets="${FUZZ_TARGETS:-idx config checkpoint manifest}"
# -timeout is generous: under nice 19 on a loaded 2-core machine a process can stall for tens of
# seconds, which libFuzzer reports as a (false) timeout.
# No sanitizer: the code under test is safe Rust, where a bug shows as a panic (debug assertions
# and overflow checks are on); ASan would halve the executions per second.
flags=(-s none)
nice -n 19 cargo +nightly fuzz build "${flags[@]}" || exit 1
mkdir -p logs
failed=()
for t in $targets; do
    mkdir -p "corpus/$t"
    cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null
    echo "== $t: ${secs} s"
    RAYON_NUM_THREADS=1 nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=16384 -rss_limit_mb=4096 -timeout=120 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    rc=$?
    grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb|cov: .*ft:" "logs/$t.log" | tail -n 3
    echo "   corpus: $(ls "corpus/$t" | wc -l) inputs; exit $rc"
    [ $rc -eq 0 ] || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "CRASHES in: ${failed[*]} (see fuzz/logs/<target>.log and fuzz/artifacts/)" >&2
    exit 1
fi
echo "no crashes"
