#!/usr/bin/env bash
# Behaviour unchanged? Trains every method (and each SSL mode) for 200 steps on ring8 and mnist-5k
# with two ganfold binaries, then compares their metrics.jsonl byte for byte, and samples each
# checkpoint the first binary wrote with both binaries (the second must load the first's
# checkpoints and draw the same images).
#
#   cargo build --release && cp target/release/ganfold /tmp/ganfold-new
#   git stash / checkout the base, build, cp target/release/ganfold /tmp/ganfold-old
#   scripts/behaviour-check.sh /tmp/ganfold-old /tmp/ganfold-new [OUT_DIR]
#
# About 10 minutes on 2 cores. Exit status 1 if any run differs.
set -euo pipefail
old=$1
new=$2
out=${3:-$(mktemp -d)}
steps=200

runs=(
  "dcgan ring8"
  "lgan ring8"
  "lgan ring8 --set mode=ssl"
  "lccgan ring8 --set ae_steps=100 --set lcc_rounds=5"
  "lsal ring8"
  "lsal ring8 --set mode=ssl --set labels=96"
  "mmgan ring8"
  "dcgan mnist-5k"
  "lgan mnist-5k"
  "lgan mnist-5k --set mode=ssl"
  "lccgan mnist-5k --set ae_steps=100 --set lcc_rounds=5"
  "lsal mnist-5k"
  "lsal mnist-5k --set mode=ssl"
  "mmgan mnist-5k"
)

status=0
for r in "${runs[@]}"; do
  read -r method data rest <<<"$r"
  tag=$(echo "$method-$data $rest" | tr -c 'A-Za-z0-9_.\n-' '_' | sed 's/_*$//')
  for side in old new; do
    bin=${!side}
    rm -rf "$out/$side/$tag"
    # shellcheck disable=SC2086
    "$bin" train "$method" --data "$data" --steps $steps --seed 0 --out "$out/$side/$tag" -q $rest
  done
  verdict=same
  cmp -s "$out/old/$tag/metrics.jsonl" "$out/new/$tag/metrics.jsonl" || { verdict=DIFFERENT; status=1; }
  for side in old new; do
    bin=${!side}
    "$bin" sample --run "$out/old/$tag" -n 16 --seed 5 --out "$out/$tag-$side-loads-old.png" >/dev/null
  done
  loads=same
  cmp -s "$out/$tag-old-loads-old.png" "$out/$tag-new-loads-old.png" || { loads=DIFFERENT; status=1; }
  echo "$tag: metrics.jsonl $verdict; old checkpoint sampled by both binaries: $loads"
done
echo "runs in $out"
exit $status
