#!/usr/bin/env bash
# Reproduces the 2-D table in plugins/mmgan/README.md (release build; one run at a time).
# Usage: scripts/mmgan-measure.sh [STEPS] [SEEDS...]   (README: 3000 steps, seeds 0 1 2)
set -euo pipefail
S=${1:-3000}; shift || true; SEEDS=${*:-0 1 2}
B=target/release/examples/mmgan_measure
cargo build --release -p ganfold-mmgan --example mmgan_measure
mkdir -p runs/mmgan-measure
for seed in $SEEDS; do
  for data in ring8 grid25; do
    $B --data $data --steps $S --seed $seed --out runs/mmgan-measure/$data-gan-s$seed --set objective=gan
    $B --data $data --steps $S --seed $seed --out runs/mmgan-measure/$data-rbf-s$seed --set d_maximizes_rg=false
    $B --data $data --steps $S --seed $seed --out runs/mmgan-measure/$data-rbf-norg-s$seed --set beta=0
    $B --data $data --steps $S --seed $seed --out runs/mmgan-measure/$data-rbf-literal-s$seed --set d_maximizes_rg=true
    $B --method dcgan --data $data --steps $S --seed $seed --out runs/mmgan-measure/$data-dcgan-s$seed --set nz=16
  done
done
# Each run prints `RESULT {...}` and writes runs/mmgan-measure/<run>/measure.json.
