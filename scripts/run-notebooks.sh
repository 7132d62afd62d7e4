#!/usr/bin/env bash
# Executes every notebook headless, as CI does; any cell error fails the script.
#
#   scripts/run-notebooks.sh                      # every notebooks/*.ipynb, the full runs
#   GANFOLD_NB_STEPS=20 scripts/run-notebooks.sh  # short runs (CI)
#   scripts/run-notebooks.sh notebooks/01-lgan.ipynb
#
# Sets up what is missing first (scripts/setup-notebooks.sh --headless: evcxr_jupyter, the
# .venv-nb execution stack, the `ganfold` kernel). The kernel keeps its compiled dependencies in
# target/evcxr between runs: the first run compiles them (minutes), later runs reuse them.
# Executed notebooks (with their outputs) go to target/nb/; `--commit` copies them over the
# committed notebooks/*.ipynb (after a full run, so that readers see its pictures).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
commit=0
if [ "${1:-}" = --commit ]; then commit=1; shift; fi
if [ "$commit" = 1 ] && [ -n "${GANFOLD_NB_STEPS:-}" ]; then
  echo "run-notebooks: --commit keeps the outputs of full runs only; unset GANFOLD_NB_STEPS" >&2
  exit 2
fi

scripts/setup-notebooks.sh --headless
# The committed notebooks must hold their sources' cells (notebooks/src/*.rs): no drift, the
# sources' code cells rustfmt-clean, and (unless they are about to be replaced) a full run's
# pictures and no error.
if [ "$commit" = 1 ]; then
  .venv-nb/bin/python scripts/check-notebooks.py --no-outputs
else
  .venv-nb/bin/python scripts/check-notebooks.py
fi

export GANFOLD_NB_RUNS="${GANFOLD_NB_RUNS:-$ROOT/target/nb-runs}"
# The pretrained notebook installs the shipped models into this cache (not the user's).
export HF_HUB_CACHE="${HF_HUB_CACHE:-$ROOT/target/nb-hf-cache}"
mkdir -p "$GANFOLD_NB_RUNS" target/nb

if [ $# -gt 0 ]; then nbs=("$@"); else nbs=(notebooks/*.ipynb); fi
echo "== executing ${#nbs[@]} notebooks (GANFOLD_NB_STEPS=${GANFOLD_NB_STEPS:-unset, full runs})"
total_start=$(date +%s)
for nb in "${nbs[@]}"; do
  .venv-nb/bin/python - "$nb" <<'PY'
import sys, nbformat
nbformat.validate(nbformat.read(sys.argv[1], as_version=4))
PY
  start=$(date +%s)
  .venv-nb/bin/jupyter-nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
    --ExecutePreprocessor.kernel_name=ganfold --output-dir target/nb "$nb"
  echo "== $nb: $(( $(date +%s) - start )) s"
done
# Every executed notebook must show pictures and hold no error output.
executed=()
for nb in "${nbs[@]}"; do executed+=("target/nb/$(basename "$nb")"); done
.venv-nb/bin/python scripts/check-notebooks.py --executed "${executed[@]}"
echo "== all notebooks executed in $(( $(date +%s) - total_start )) s; outputs in target/nb/"
if [ "$commit" = 1 ]; then
  for nb in "${nbs[@]}"; do cp "target/nb/$(basename "$nb")" "$nb"; done
  echo "== copied the executed notebooks over ${nbs[*]}"
  .venv-nb/bin/python scripts/check-notebooks.py
fi
