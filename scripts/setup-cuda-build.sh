#!/usr/bin/env bash
# Installs what `cargo build --release --features cuda` needs on a Debian bookworm machine
# without a GPU: Debian's CUDA 11.8 toolkit (nvcc, cudart, cuBLAS, cuRAND headers; the
# `nvidia-cuda-toolkit` package of the non-free component, ~1.5 GiB of downloads, 6 GiB
# installed) and the host compiler it supports (gcc 11; CUDA 11.8 refuses gcc 12).
#
#   scripts/setup-cuda-build.sh            # install (root or sudo), then print the exports
#   eval "$(scripts/setup-cuda-build.sh --env)"
#   cargo build --release --features cuda
#
# Candle's kernel build (candle-kernels, via cudaforge) asks `nvidia-smi` for the GPU's compute
# capability; a machine without a GPU must say it: CUDA_COMPUTE_CAP, default 80. The kernels are
# PTX, which the driver compiles for the GPU it finds at first use, and PTX of one compute
# capability runs on that one and every later one: 80 serves A100 (8.0), L4/RTX 40xx (8.9) and
# H100/H200 (9.0). 90 itself cannot be built with CUDA 11.8: cudaforge turns it into `90a`,
# which nvcc 11.8 rejects ("Unsupported gpu architecture 'compute_90a'"; 90a needs CUDA 12).
set -euo pipefail

cap="${CUDA_COMPUTE_CAP:-80}"
env_lines() {
    echo "export CUDA_COMPUTE_CAP=$cap"
    echo "export NVCC_CCBIN=/usr/bin/g++-11"
    echo "export CUDA_ROOT=/usr"
}
if [[ "${1:-}" == "--env" ]]; then
    env_lines
    exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup-cuda-build: run as root (or install sudo)" >&2; exit 1; }
    sudo=sudo
fi
. /etc/os-release
if [[ "${VERSION_CODENAME:-}" != bookworm ]]; then
    echo "setup-cuda-build: written for Debian bookworm, this is ${PRETTY_NAME:-unknown}; install CUDA >= 11.8 and gcc <= 11 yourself, then: eval \"\$($0 --env)\"" >&2
    exit 1
fi

start=$(date +%s)
before=$(df -k --output=avail / | tail -1)
# The toolkit lives in `non-free` (and pulls from `contrib`): add both components to the
# deb822 source of the main archive, once.
src=/etc/apt/sources.list.d/debian.sources
if [[ -f $src ]] && ! grep -q "non-free" "$src"; then
    $sudo sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' "$src"
fi
if [[ ! -f $src ]] && ! grep -qs "non-free" /etc/apt/sources.list; then
    echo "deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware" |
        $sudo tee /etc/apt/sources.list.d/ganfold-cuda.list >/dev/null
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    nvidia-cuda-toolkit gcc-11 g++-11 >/dev/null
nvcc --version | tail -2
after=$(df -k --output=avail / | tail -1)
echo "setup-cuda-build: done in $(( $(date +%s) - start )) s, $(( (before - after) / 1024 )) MiB of disk"
echo "setup-cuda-build: now run"
env_lines | sed 's/^/  /'
echo "  cargo build --release --features cuda"
