#!/usr/bin/env bash
# Sets up the notebooks on this machine, once:
#
#   scripts/setup-notebooks.sh              # then: .venv-nb/bin/jupyter lab notebooks/
#   scripts/setup-notebooks.sh --headless   # no JupyterLab: what scripts/run-notebooks.sh needs
#
# 1. evcxr_jupyter 0.22.0, the Rust kernel, by `cargo install` (the longest step; see below).
# 2. .venv-nb: a Python venv with the Jupyter execution stack, jupytext (each .ipynb is paired
#    with its text source in notebooks/src/, and JupyterLab keeps both in step when you save),
#    and JupyterLab unless --headless.
# 3. The `ganfold` kernel ("Rust (ganfold)"), which every notebook names: evcxr started by
#    scripts/evcxr-kernel.sh, with a build directory under target/evcxr that outlives the kernel
#    and the dependency profile of notebooks/kernel/cargo-config.toml.
#
# Times on this project's 2-core machine are in notebooks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
lab=1
case "${1:-}" in
  --headless) lab=0 ;;
  "") ;;
  *) echo "usage: scripts/setup-notebooks.sh [--headless]" >&2; exit 2 ;;
esac
t0=$(date +%s)
since() { echo "$(( $(date +%s) - t0 )) s"; }

# evcxr_jupyter has no --version; cargo's install list records it.
if ! command -v evcxr_jupyter >/dev/null 2>&1 || ! cargo install --list | grep -q '^evcxr_jupyter v0\.22\.0'; then
  echo "== installing evcxr_jupyter 0.22.0 (cargo install, a few minutes)"
  # The notebooks' own code is compiled by cargo with the kernel profile, not by this build.
  # opt-level 1 instead of release's 3 cuts the install time (rust-analyzer's crates dominate
  # it); 0 would halve it again but makes the kernel's per-cell analysis ~4x slower
  # (notebooks/README.md).
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked evcxr_jupyter --version 0.22.0
  echo "== evcxr_jupyter installed ($(since))"
fi

pins=(nbclient==0.11.0 nbconvert==7.17.2 nbformat==5.11.1 jupyter_client==8.10.0 jupyter_core jupytext==1.19.7)
[ "$lab" = 1 ] && pins+=(jupyterlab==4.6.6)
have() { .venv-nb/bin/python -c "import $1" 2>/dev/null; }
if [ ! -x .venv-nb/bin/jupyter-nbconvert ] || [ ! -x .venv-nb/bin/jupytext ] || { [ "$lab" = 1 ] && ! have jupyterlab; }; then
  echo "== .venv-nb: Jupyter execution stack, jupytext$([ "$lab" = 1 ] && echo ", JupyterLab")"
  [ -x .venv-nb/bin/python ] || python3 -m venv .venv-nb
  .venv-nb/bin/pip install -q --disable-pip-version-check "${pins[@]}"
  echo "== .venv-nb ready ($(since))"
fi

# The `ganfold` kernel, next to the `rust` one evcxr registers (its logos are reused).
evcxr_jupyter --install >/dev/null
data_dir="$(.venv-nb/bin/jupyter --data-dir)"
kdir="$data_dir/kernels/ganfold"
mkdir -p "$kdir"
for f in logo-32x32.png logo-64x64.png; do
  [ -f "$data_dir/kernels/rust/$f" ] && cp "$data_dir/kernels/rust/$f" "$kdir/"
done
cat > "$kdir/kernel.json.tmp" <<JSON
{
  "argv": ["$ROOT/scripts/evcxr-kernel.sh", "--control_file", "{connection_file}"],
  "display_name": "Rust (ganfold)",
  "language": "rust",
  "interrupt_mode": "message"
}
JSON
mv "$kdir/kernel.json.tmp" "$kdir/kernel.json"
echo "== kernel \`ganfold\` registered in $kdir; set up in $(since)"
[ "$lab" = 1 ] && echo "== open the notebooks with: .venv-nb/bin/jupyter lab notebooks/"
exit 0
