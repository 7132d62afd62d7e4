#!/usr/bin/env bash
# The `ganfold` Jupyter kernel (registered by scripts/setup-notebooks.sh): evcxr_jupyter with a
# build directory that outlives the kernel, so a notebook's `:dep` compiles the prelude once per
# machine instead of once per kernel start.
#
# Each running kernel takes a slot, target/evcxr/slot-N, locked while it runs (two kernels in one
# evcxr build directory would overwrite each other's code). The first free slot is taken, so one
# kernel at a time always reuses slot-0's compiled dependencies; a second kernel at the same time
# compiles its own slot once. target/evcxr/.cargo/config.toml (from notebooks/kernel/) sets the
# dependencies' profile; the slot's Cargo.lock is the workspace's.
#
#   scripts/evcxr-kernel.sh --control_file CONNECTION_FILE   (what Jupyter runs)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
base="${GANFOLD_EVCXR_DIR:-$ROOT/target/evcxr}"
mkdir -p "$base/.cargo"
if ! cmp -s "$ROOT/notebooks/kernel/cargo-config.toml" "$base/.cargo/config.toml"; then
  cp "$ROOT/notebooks/kernel/cargo-config.toml" "$base/.cargo/config.toml.tmp"
  mv "$base/.cargo/config.toml.tmp" "$base/.cargo/config.toml"
fi
export PATH="$HOME/.cargo/bin:$PATH"
for i in $(seq 0 15); do
  exec {lock}>"$base/slot-$i.lock"
  if flock -n "$lock"; then
    # The lock's descriptor stays open in evcxr_jupyter (exec keeps it): the slot is held until
    # the kernel exits.
    export EVCXR_TMPDIR="$base/slot-$i"
    mkdir -p "$EVCXR_TMPDIR"
    # The workspace's lock file: a notebook builds the dependency versions that the CLI and the
    # tests build (evcxr's generated crate would otherwise resolve the newest ones).
    cp "$ROOT/Cargo.lock" "$EVCXR_TMPDIR/Cargo.lock"
    exec evcxr_jupyter "$@"
  fi
  exec {lock}>&-
done
echo "evcxr-kernel: all 16 build slots in $base are taken by running kernels" >&2
exit 1
