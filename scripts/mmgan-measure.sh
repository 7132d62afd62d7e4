#!/usr/bin/env bash
# Reproduces the table in plugins/mmgan/README.md (release build, one run at a time).
# Usage: scripts/mmgan-measure.sh [STEPS_TOY] [STEPS_MNIST] [SEEDS...]
set -euo pipefail
TOY=${1:-3000}; IMG=${2:-600}; shift 2 || true; SEEDS=${*:-0}
B=target/release/examples/mmgan_measure
cargo build --release -p ganfold-mmgan --example mmgan_measure
mkdir -p runs/mmgan-measure
for seed in $SEEDS; do
  for data in ring8 grid25; do
    $B --data $data --steps $TOY --seed $seed --out runs/mmgan-measure/$data-gan-$seed --set objective=gan
    $B --data $data --steps $TOY --seed $seed --out runs/mmgan-measure/$data-rbf-$seed
    $B --data $data --steps $TOY --seed $seed --out runs/mmgan-measure/$data-rbf-norg-$seed --set beta=0
  done
done
for v in "gan:--set objective=gan" "rbf:" "rbf-norg:--set beta=0"; do
  $B --data mnist-5k --steps $IMG --seed 0 --out runs/mmgan-measure/mnist-${v%%:*}-0 ${v#*:}
done
