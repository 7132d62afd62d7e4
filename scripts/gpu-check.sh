#!/usr/bin/env bash
# The CUDA check, in two halves:
#
#   scripts/gpu-check.sh --bundle   # here (Rust + scripts/setup-cuda-build.sh): build the CUDA binary
#   scripts/gpu-check.sh            # on a GPU machine (no Rust needed): run the checks with it
#   scripts/gpu-check.sh --dry-run  # here, no GPU: steps 2-3 with the CPU standing in for CUDA
#                                   # (target/release/ganfold), to check the script itself
#
# --bundle builds `ganfold` with `--features cuda` for CUDA_COMPUTE_CAP (default 80: PTX that the
# driver compiles for any GPU of compute capability 8.0 or later, H100/H200 included),
# strips it and puts it in gpu-check/ (git-ignored) with BUILD.txt and the one CUDA library it
# links, the CUDA 11.8 runtime (libcudart.so.11.0, for candle-kernels' statically built MoE
# kernels; a newer driver runs an older runtime). Everything else cudarc dlopens at first use:
# libcuda.so.1 (the driver), libcublas, libcublasLt, libcurand and libnvrtc under their
# unversioned and versioned names (.so, .so.11, .so.12). The run half puts gpu-check/lib,
# PyTorch's bundled CUDA libraries (site-packages/nvidia/*/lib, torch/lib) and
# /usr/local/cuda/lib64 on LD_LIBRARY_PATH.
#
# The run half takes a few minutes and fails on the first broken check:
#   1. `ganfold bench --parity`: every layer kind (conv, transposed conv, linear, batch norm,
#      activations, losses) forward, gradients and an Adam step on the CPU and on CUDA, within
#      1e-3 (cli/src/parity.rs; the cargo tests cannot run where there is no Rust);
#   2. the first step of every method on mnist-5k on CPU and on CUDA: same losses within 1e-3
#      relative (same seed: weights and noise come from the host RNG, so only arithmetic differs);
#   3. 200 steps of every method on CUDA: finite losses; its checkpoint sampled on CUDA and on
#      the CPU gives the same images (mean |diff| <= 2/255, max <= 32/255 per pixel);
#   4. `ganfold bench --device cuda --reference`: step times against PyTorch on the same GPU.
# Its output is also written to gpu-check/report.txt (and to $OUT when set).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-check

if [[ "${1:-}" == "--bundle" ]]; then
    command -v nvcc >/dev/null || { echo "gpu-check: no nvcc; run scripts/setup-cuda-build.sh first" >&2; exit 1; }
    eval "$(scripts/setup-cuda-build.sh --env)"
    cargo build --release --features cuda -p ganfold-cli
    mkdir -p "$bundle"
    rm -rf "$bundle/lib" "$bundle/ganfold" "$bundle/ganfold.xz"
    mkdir -p "$bundle/lib"
    # Stripped it is ~75 MiB (candle-kernels' PTX and MoE kernels); xz brings it to ~15 MiB, and
    # the run half unpacks it with Python's lzma (no xz needed there).
    strip -o "$bundle/ganfold.partial" target/release/ganfold
    xz -T2 -6 -c "$bundle/ganfold.partial" > "$bundle/ganfold.xz.partial"
    mv "$bundle/ganfold.xz.partial" "$bundle/ganfold.xz"
    ldd "$bundle/ganfold.partial" | awk '/libcudart/ {print $3}' | while read -r lib; do
        cp -L "$lib" "$bundle/lib/$(basename "$lib")"
    done
    rm "$bundle/ganfold.partial"
    {
        echo "commit: $(git rev-parse --short=12 HEAD)$(git diff --quiet || echo +dirty)"
        echo "CUDA_COMPUTE_CAP: $CUDA_COMPUTE_CAP"
        echo "nvcc: $(nvcc --version | tail -1)"
        echo "built: $(date -u +%FT%TZ)"
    } > "$bundle/BUILD.txt"
    size=$(du -cm "$bundle/ganfold.xz" "$bundle/lib" | tail -1 | cut -f1)
    echo "gpu-check: $bundle/ (ganfold.xz and lib/), ${size} MiB; carry '$bundle' to the GPU machine and run scripts/gpu-check.sh"
    [[ $size -le 60 ]] || { echo "gpu-check: the binary is over 60 MiB; it will not fit a 64 MiB carry" >&2; exit 1; }
    exit 0
fi

dry=false
[[ "${1:-}" == "--dry-run" ]] && dry=true
gpu=cuda
bin="$PWD/$bundle/ganfold"
if $dry; then
    gpu=cpu
    bin="$PWD/target/release/ganfold"
fi
if ! $dry && [[ ! -x $bin && -f $bin.xz ]]; then
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$bin.xz" "$bin.partial"
    chmod +x "$bin.partial" && mv "$bin.partial" "$bin"
fi
[[ -x $bin ]] || { echo "gpu-check: $bin is missing; build it with scripts/gpu-check.sh --bundle" >&2; exit 1; }
mkdir -p "$bundle"
report="$bundle/report.txt"
exec > >(tee "$report") 2>&1
if ! $dry; then
    cat "$bundle/BUILD.txt"
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || true
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
    built=$(sed -n 's/^CUDA_COMPUTE_CAP: //p' "$bundle/BUILD.txt")
    if [[ -n $cap && $cap -lt $built ]]; then
        echo "gpu-check: the kernels were built for compute capability $built, this GPU is $cap; rebuild with CUDA_COMPUTE_CAP=$cap" >&2
        exit 1
    fi
fi
libs=$(python3 - <<'EOF'
import glob, os, site
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib"))) + glob.glob(os.path.join(sp, "torch", "lib"))
print(":".join(d for d in dirs if os.path.isdir(d)))
EOF
)
export LD_LIBRARY_PATH="$PWD/$bundle/lib:${libs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export GANFOLD_DATA_DIR="$PWD/datasets"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - t0 )) s)"; }

if ! $dry; then
    step "1. layer parity, CPU against CUDA"
    "$bin" bench --device cuda --parity --steps 1 --methods dcgan
fi

# Settings that let a method's stages fit in 200 steps (lccgan: autoencoder and LCC fit first).
extra() {
    case $1 in
        lccgan) echo "--set ae_steps=100 --set lcc_rounds=3 --set lcc_points=1000 --set eval_samples=0" ;;
    esac
}
# The first-step check of lccgan takes one step of each stage (autoencoder, LCC init, one LCC
# round, the first GAN step).
first() {
    case $1 in
        lccgan) echo "--steps 4 --set ae_steps=1 --set lcc_rounds=1 --set lcc_points=256 --set eval_samples=0" ;;
        *) echo "--steps 1" ;;
    esac
}
methods=$("$bin" list | awk '{print $1}')
[[ -n $methods ]] || { echo "gpu-check: no methods registered" >&2; exit 1; }

step "2. first step, CPU against CUDA"
for m in $methods; do
    for side in cpu gpu; do
        dev=cpu
        [[ $side == gpu ]] && dev=$gpu
        # shellcheck disable=SC2046
        "$bin" train "$m" --data mnist-5k --seed 0 --device $dev --out "$work/first-$m-$side" -q \
            --set log_every=1 $(first "$m")
    done
    python3 - "$work/first-$m-cpu/metrics.jsonl" "$work/first-$m-gpu/metrics.jsonl" "$m" <<'EOF'
import json, math, sys
rows_a, rows_b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
bad, n = [], 0
for a, b in zip(rows_a, rows_b):
    for k, x in a.items():
        y = b.get(k)
        if isinstance(x, (int, float)) and not isinstance(x, bool) and k not in ("step", "wall", "seconds", "time"):
            n += 1
            if y is None or not math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-4):
                bad.append(f"step {a.get('step')} {k}: cpu {x} cuda {y}")
if len(rows_a) != len(rows_b) or n == 0:
    bad.append(f"{len(rows_a)} and {len(rows_b)} logged steps")
print(f"{sys.argv[3]}: " + (f"same first-step statistics ({n} values)" if not bad else "; ".join(bad)))
sys.exit(1 if bad else 0)
EOF
done

step "3. 200 steps of every method on CUDA; its checkpoint sampled on CUDA and on the CPU"
for m in $methods; do
    run="$work/run-$m"
    # shellcheck disable=SC2046
    "$bin" train "$m" --data mnist-5k --steps 200 --seed 0 --device $gpu --out "$run" -q $(extra "$m")
    "$bin" sample --run "$run" -n 64 --seed 1 --device $gpu --out "$work/$m-cuda.png" >/dev/null
    "$bin" sample --run "$run" -n 64 --seed 1 --device cpu --out "$work/$m-cpu.png" >/dev/null
    python3 - "$run/metrics.jsonl" "$work/$m-cuda.png" "$work/$m-cpu.png" "$m" <<'EOF'
import json, math, struct, sys, zlib

def png_pixels(path):
    """8-bit, non-interlaced PNG (what ganfold writes) to a flat list of samples, stdlib only."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w, h, ch = 8, b"", 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, f"{path}: bit depth {depth}"
            ch = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, out, prev = zlib.decompress(idat), w * ch, [], [0] * (w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return (w, h), out

metrics, cuda_png, cpu_png, m = sys.argv[1:]
rows = [json.loads(l) for l in open(metrics)]
vals = [v for r in rows for k, v in r.items() if isinstance(v, float)]
finite = all(math.isfinite(v) for v in vals)
(s1, a), (s2, b) = png_pixels(cuda_png), png_pixels(cpu_png)
assert s1 == s2, (s1, s2)
diff = [abs(x - y) for x, y in zip(a, b)]
mean, worst = sum(diff) / len(diff) / 255, max(diff) / 255
ok = finite and rows[-1].get("step", 0) >= 199 and mean <= 2 / 255 and worst <= 32 / 255
print(f"{m}: {len(rows)} logged steps, losses finite: {finite}; samples CUDA vs CPU: mean |diff| {mean:.2e}, max {worst:.2e}" + ("" if ok else "  FAILED"))
sys.exit(0 if ok else 1)
EOF
done

if ! $dry; then
    step "4. step times against PyTorch on the same GPU"
    python3 -m venv --system-site-packages .venv-bench
    "$bin" bench --device cuda --reference --venv .venv-bench
fi
step "gpu-check: every check passed$($dry && echo " (dry run: the CPU stood in for CUDA)")"
if [[ -n "${OUT:-}" ]]; then cp "$report" "$OUT/gpu-check-report.txt"; fi
