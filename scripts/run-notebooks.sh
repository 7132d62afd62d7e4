#!/usr/bin/env bash
# Executes every notebook headless, as CI does; any cell error fails the script.
#
#   scripts/run-notebooks.sh                      # every notebooks/*.ipynb, the full runs
#   GANFOLD_NB_STEPS=20 scripts/run-notebooks.sh  # short runs (CI)
#   scripts/run-notebooks.sh notebooks/01-lgan.ipynb
#
# Installs what is missing first: evcxr_jupyter 0.22.0 (cargo install, about 6 min once per
# machine), a small Python venv in .venv-nb with the Jupyter execution stack and jupytext (about 20 s), and the
# `rust` kernel registration. Executed notebooks (with their outputs) go to target/nb/.
# EVCXR_TMPDIR (default target/evcxr) keeps evcxr's compiled dependencies between runs: the first
# run compiles them (minutes), later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"

# (evcxr_jupyter has no --version; cargo's install list records it.)
if ! command -v evcxr_jupyter >/dev/null 2>&1 || ! cargo install --list | grep -q '^evcxr_jupyter v0\.22\.0'; then
  echo "== installing evcxr_jupyter 0.22.0 (about 6 minutes, once per machine)"
  cargo install --locked evcxr_jupyter --version 0.22.0
fi
if [ ! -x .venv-nb/bin/jupyter-nbconvert ] || [ ! -x .venv-nb/bin/jupytext ]; then
  echo "== creating .venv-nb (Jupyter execution stack, jupytext)"
  python3 -m venv .venv-nb
  .venv-nb/bin/pip install -q --disable-pip-version-check \
    nbclient==0.11.0 nbconvert==7.17.2 nbformat==5.11.1 jupyter_client==8.10.0 jupyter_core jupytext==1.19.7
fi
# The committed notebooks must hold their sources' cells (notebooks/src/*.rs): no drift.
.venv-nb/bin/python scripts/check-notebooks.py
evcxr_jupyter --install >/dev/null

export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$ROOT/target/evcxr}"
export GANFOLD_NB_RUNS="${GANFOLD_NB_RUNS:-$ROOT/target/nb-runs}"
# The pretrained notebook installs the shipped models into this cache (not the user's).
export HF_HUB_CACHE="${HF_HUB_CACHE:-$ROOT/target/nb-hf-cache}"
mkdir -p "$EVCXR_TMPDIR" "$GANFOLD_NB_RUNS" target/nb

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
    --ExecutePreprocessor.kernel_name=rust --output-dir target/nb "$nb"
  echo "== $nb: $(( $(date +%s) - start )) s"
done
# Every executed notebook must show pictures and hold no error output.
.venv-nb/bin/python - target/nb "${nbs[@]}" <<'PY'
import os, sys, nbformat
out, nbs = sys.argv[1], sys.argv[2:]
bad = False
for nb in nbs:
    ex = nbformat.read(os.path.join(out, os.path.basename(nb)), as_version=4)
    outs = [o for c in ex.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = sum("image/png" in o.get("data", {}) for o in outs)
    errors = [o for o in outs if o.get("output_type") == "error"]
    print(f"{os.path.basename(nb)}: {images} inline images, {len(errors)} errors")
    if images == 0 or errors:
        bad = True
sys.exit(1 if bad else 0)
PY
echo "== all notebooks executed in $(( $(date +%s) - total_start )) s; outputs in target/nb/"
