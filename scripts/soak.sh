#!/usr/bin/env bash
# Soak: a long `ganfold train` with the release binary, resident memory sampled along the way.
#   scripts/soak.sh [steps] [sample-seconds] [method]     (defaults: 20000 1 dcgan)
# Writes target/soak/rss.tsv (seconds, VmRSS KiB, last logged step) and prints start, peak and
# end RSS and the wall time. "start" is the first sample after the first logged step, so that
# it measures the trained model's working set, not process start-up.
set -euo pipefail
steps="${1:-20000}"
every="${2:-1}"
method="${3:-dcgan}"
cd "$(dirname "$0")/.."
nice -n 19 cargo build --release -q -p ganfold-cli
out="${SOAK_DIR:-target/soak}"
rm -rf "$out"
mkdir -p "$out"
t0=$(date +%s.%N)
RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}" nice -n 19 target/release/ganfold train "$method" --data ring8 \
    --steps "$steps" -q --out "$out/run" --set checkpoint_every=1000 --set sample_every=5000 &
pid=$!
printf "seconds\trss_kib\tstep\n" >"$out/rss.tsv"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] || break
    step=$( (tail -n 1 "$out/run/metrics.jsonl" 2>/dev/null || true) | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
    printf "%.1f\t%s\t%s\n" "$(echo "$(date +%s.%N) - $t0" | bc)" "$rss" "${step:-0}" >>"$out/rss.tsv"
    sleep "$every"
done
wait "$pid"
wall=$(echo "$(date +%s.%N) - $t0" | bc)
awk -v wall="$wall" -v steps="$steps" 'NR > 1 && $3 > 0 {
        if (!n++) { s = $2; st = $1 }
        if ($2 > p) { p = $2; pt = $1 }
        e = $2; et = $1
    }
    END {
        printf "soak: %d steps in %.0f s; %d samples\n", steps, wall, n
        printf "RSS start %.1f MiB (t=%.0f s), peak %.1f MiB (t=%.0f s), end %.1f MiB (t=%.0f s)\n", s/1024, st, p/1024, pt, e/1024, et
    }' "$out/rss.tsv"
