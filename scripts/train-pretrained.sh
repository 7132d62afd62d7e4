#!/usr/bin/env bash
# Re-creates pretrained/: trains each method on ring8 with the release CLI, then packs each run
# as a Hub model repository (manifest with sha256 of every file). One run at a time.
#   scripts/train-pretrained.sh            # all five
#   scripts/train-pretrained.sh lgan       # one
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
G=target/release/ganfold
declare -A ARGS=(
  [dcgan]="--steps 10000"
  [lgan]="--steps 10000 --set coords=1 --set eta=1 --set lr_d=2e-4"
  [lccgan]="--steps 6506 --set latent=8 --set bases=32 --set lcc_points=2000 --set hidden=128 --set lr_g=1e-3 --set lr_d=1e-3 --set d=1 --set ae_steps=500 --set ae_loss=mse --set ae_lr=1e-3 --set lcc_rounds=5"
  [lsal]="--steps 6000"
  [mmgan]="--steps 10000"
)
methods=("$@"); [ ${#methods[@]} -gt 0 ] || methods=(dcgan lgan lccgan lsal mmgan)
for m in "${methods[@]}"; do
  run=runs/pretrained/$m-ring8
  rm -rf "$run" "pretrained/$m-ring8"
  # shellcheck disable=SC2086
  RAYON_NUM_THREADS=1 $G train "$m" --data ring8 --seed 0 --batch-size 64 --set train.log_every=50 --set train.checkpoint_every=100000 ${ARGS[$m]} --out "$run" -q
  $G hub pack "$run" --id "ganfold/$m-ring8" --out "pretrained/$m-ring8"
done
du -sh pretrained
