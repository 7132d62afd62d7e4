#!/usr/bin/env bash
# Training throughput inside a notebook kernel against `ganfold train`, one after the other on an
# otherwise idle machine: the same method, data, steps and logging, both through the shared trainer.
# The notebook side is a one-cell notebook executed by the `ganfold` kernel, so it runs with the
# kernel's dependency profile (notebooks/kernel/cargo-config.toml) and the prelude's process tuning.
#
#   scripts/bench-notebook.sh [METHOD] [DATA] [STEPS]    # default: lgan mnist-5k 100
#
# Needs scripts/setup-notebooks.sh once. Prints steps per second of both and their ratio; the
# trainer's own clock (summary.json's wall_seconds) is used, so data loading and the kernel's
# compile time do not count.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
method="${1:-lgan}" data="${2:-mnist-5k}" steps="${3:-100}"
log_every=$(( steps / 50 > 1 ? steps / 50 : 1 ))
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -x .venv-nb/bin/jupyter-nbconvert ] || { echo "bench-notebook: run scripts/setup-notebooks.sh first" >&2; exit 1; }

cargo build -q --release -p ganfold-cli
target/release/ganfold train "$method" --data "$data" --steps "$steps" --set "train.log_every=$log_every" \
  --out "$work/cli" -q

.venv-nb/bin/python - "$ROOT" "$work" "$method" "$data" "$steps" <<'PY'
import sys, nbformat
root, work, method, data, steps = sys.argv[1:]
nb = nbformat.v4.new_notebook()
nb.metadata["kernelspec"] = {"name": "ganfold", "display_name": "Rust (ganfold)", "language": "rust"}
nb.cells = [
    nbformat.v4.new_code_cell(':dep ganfold-notebook = { path = "%s/notebook" }' % root),
    nbformat.v4.new_code_cell(
        'use ganfold_notebook::*;\nlet run = train("nb", "%s", "%s", %s, &[])?;\nrun.summary.steps' % (method, data, steps)
    ),
]
nbformat.write(nb, "%s/bench.ipynb" % work)
PY
GANFOLD_NB_RUNS="$work/runs" .venv-nb/bin/jupyter-nbconvert --to notebook --execute --log-level=WARN \
  --ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=ganfold --output-dir "$work" "$work/bench.ipynb"

.venv-nb/bin/python - "$work" "$method" "$data" "$steps" <<'PY'
import json, sys
work, method, data, steps = sys.argv[1:]
cli = json.load(open("%s/cli/summary.json" % work))
nb = json.load(open("%s/runs/nb/summary.json" % work))
rate = lambda s: s["steps_this_run"] / s["wall_seconds"]
print("%s on %s, %s steps (trainer clock, summary.json)" % (method, data, steps))
print("  ganfold train (release):  %6.2f steps/s  (%.1f s)" % (rate(cli), cli["wall_seconds"]))
print("  notebook kernel:          %6.2f steps/s  (%.1f s)" % (rate(nb), nb["wall_seconds"]))
print("  notebook / CLI:           %6.3f" % (rate(nb) / rate(cli)))
PY
