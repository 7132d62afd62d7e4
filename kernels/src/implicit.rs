//! Convolutions without column matrices (f32, AVX-512, pixel-major columns, batches a
//! multiple of 32): the transposed convolution with its col2im fused into the GEMM
//! ([`fill_channels`]), and the forward convolution reading its K rows from the image in place
//! ([`conv_forward`]).
//!
//! `conv_t` is cols (K, N) = Wᵀ (K, O) · Yt (O, N) followed by a scatter-add of cols into the
//! image. Here each 8 x 32 tile of cols (8 taps of one channel, 32 batch items of one output
//! pixel) is added into the image as it leaves the registers, so the column matrix (K x N:
//! 12.8 MB on the DCGAN's 64 <-> 128 layers, written by the GEMM and read back by col2im) is
//! never formed. Our own micro-kernel: `gemm` has no hook for a tile epilogue.
//!
//! Work is split by input channel: a channel's K rows scatter only into its own planes, so the
//! threads never add into the same element, and the per-channel sums keep one fixed order
//! (same input, same bits, whatever the scheduling).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of Wᵀ per tile (taps).
const MR: usize = 8;
/// Columns per tile: 32 batch items of one output pixel (two 16-lane registers).
pub(super) const NR: usize = 32;

/// Whether this CPU runs the fused kernel.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX512: OnceLock<bool> = OnceLock::new();
        *AVX512.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Yt in the kernel's layout: for each block of 32 batch items `bh` and output pixel q, the O
/// rows of 32 values, [bh][q][o][l] = y[(32·bh + l, o, q)], from the grid y (B, O, P). One
/// transpose per (bh, o), the same reordering `grid_rows` does, into the packed layout.
pub(super) fn pack_grid(y: &[f32], b: usize, o: usize, p: usize) -> Vec<f32> {
    use rayon::prelude::*;
    debug_assert!(b.is_multiple_of(NR) && y.len() == b * o * p);
    let mut packed = super::uninit(y.len());
    packed.par_chunks_mut(p * o * NR).enumerate().for_each(|(bh, chunk)| {
        for oi in 0..o {
            super::conv::transpose(&y[(bh * NR * o + oi) * p..], o * p, &mut chunk[oi * NR..], o * NR, NR, p);
        }
    });
    packed
}

/// Wᵀ rows `k0..k0 + rows` (rows <= tiles·MR) as `tiles` panels [o][MR], zero-padded.
fn pack_taps(w: &[f32], o: usize, kk: usize, k0: usize, rows: usize, out: &mut Vec<f32>) {
    let tiles = rows.div_ceil(MR);
    out.clear();
    out.resize(tiles * o * MR, 0.0);
    for t in 0..tiles {
        for oi in 0..o {
            let n = MR.min(rows - t * MR);
            out[(t * o + oi) * MR..][..n].copy_from_slice(&w[oi * kk + k0 + t * MR..][..n]);
        }
    }
}

/// The part of cols = Wᵀ · Yt that lands in input channels `c0 .. c0 + cn`, added into `acc`
/// (cn channels x H·W pixels x B items, pixel-major) straight from the tiles.
///
/// `w`: (O, K) with K = C·k², `packed`: [`pack_grid`], `source(q, tap)`: the input pixel the
/// tap of output pixel q reaches (None in the padding). Each 32-column panel of Yt is loaded
/// once for all of the group's taps (kept in L1), so a group of channels reads Yt once.
#[allow(clippy::too_many_arguments)]
pub(super) fn fill_channels(
    (c0, cn): (usize, usize),
    (o, kk, kk2, hw): (usize, usize, usize, usize),
    (b, p): (usize, usize),
    w: &[f32],
    packed: &[f32],
    source: impl Fn(usize, usize) -> Option<usize>,
    acc: &mut [f32],
    taps: &mut Vec<f32>,
) {
    let rows = cn * kk2;
    assert!(available() && b.is_multiple_of(NR) && packed.len() == b * o * p && acc.len() == cn * hw * b);
    pack_taps(w, o, kk, c0 * kk2, rows, taps);
    // Row r of the group is tap r % kk2 of channel r / kk2; the divisions are done once here,
    // the input pixels once per output pixel (not per tile row).
    let row_at: Vec<(usize, usize)> = (0..rows).map(|r| (r / kk2 * hw, r % kk2)).collect();
    let mut src = vec![None; kk2];
    for q in 0..p {
        for (tap, s) in src.iter_mut().enumerate() {
            *s = source(q, tap);
        }
        for bh in 0..b / NR {
            let cols = &packed[(bh * p + q) * o * NR..][..o * NR];
            for (t, tile_rows) in row_at.chunks(MR).enumerate() {
                let mut offs = [usize::MAX; MR];
                for (off, &(plane, tap)) in offs.iter_mut().zip(tile_rows) {
                    if let Some(i) = src[tap] {
                        *off = (plane + i) * b + bh * NR;
                        assert!(*off + NR <= acc.len());
                    }
                }
                let panel = &taps[t * o * MR..][..o * MR];
                // SAFETY: `available()` checked AVX-512; the panels hold o·MR and o·NR values and
                // every offset used has NR values of `acc` after it (asserted above).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    tile(o, panel.as_ptr(), cols.as_ptr(), acc.as_mut_ptr(), &offs)
                };
            }
        }
    }
}

/// The convolution without a column matrix: for each output pixel q, Yt[q][o][..B] =
/// Σ_k W[o][k] · xt[offs(q, k) ..][..B], layout (P, O, B). `xt` is the image as (C, pixel, B)
/// followed by B zeros at `zero`, the row every tap in the padding reads; `source(q, tap)` as
/// in [`fill_channels`]. The K rows of each 8 x 32 tile are read in place (one run of 32 items
/// per row), so nothing of size K x N is written: im2col's 12.8 MB and the GEMM's packing of
/// it on the DCGAN's 64 -> 128 layer. Output pixels run in parallel and each tile is summed in
/// one order (same bits on every run).
pub(super) fn conv_forward(
    xt: &[f32],
    zero: usize,
    w: &[f32],
    (o, kk, kk2, hw): (usize, usize, usize, usize),
    (b, p): (usize, usize),
    source: impl Fn(usize, usize) -> Option<usize> + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    assert!(
        available()
            && b.is_multiple_of(NR)
            && o.is_multiple_of(MR)
            && w.len() == o * kk
            && xt.len() >= zero + b
            && zero >= kk / kk2 * hw * b
    );
    // W as o/8 panels [k][8] (the broadcast operand).
    let mut panels = super::uninit(o * kk);
    for (t, panel) in panels.chunks_exact_mut(kk * MR).enumerate() {
        for (k, row) in panel.chunks_exact_mut(MR).enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = w[(t * MR + r) * kk + k];
            }
        }
    }
    let mut yt: Vec<f32> = super::uninit(p * o * b);
    yt.par_chunks_mut(o * b).enumerate().for_each_init(Vec::new, |offs, (q, out)| {
        offs.clear();
        offs.extend((0..kk).map(|k| source(q, k % kk2).map_or(zero, |i| (k / kk2 * hw + i) * b)));
        for bh in 0..b / NR {
            for (t, panel) in panels.chunks_exact(kk * MR).enumerate() {
                // SAFETY: AVX-512 checked; every offset + bh·NR has NR values of xt after it
                // (rows inside the image, or the zero row of b values), the panel holds kk·MR
                // values and the tile's MR rows of NR values lie inside `out` (o·b values).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    gather_tile(
                        kk,
                        panel.as_ptr(),
                        xt.as_ptr(),
                        offs.as_ptr(),
                        bh * NR,
                        out.as_mut_ptr().add(t * MR * b + bh * NR),
                        b,
                    )
                };
            }
        }
    });
    yt
}

/// dst[r·ds ..][..32] = Σ_j a[j][r] · src[offs[j] + col ..][..32], r < 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_tile(
    k: usize,
    a: *const f32,
    src: *const f32,
    offs: *const usize,
    col: usize,
    dst: *mut f32,
    ds: usize,
) {
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    for j in 0..k {
        // SAFETY (whole function): the caller guarantees k offsets, k·MR values at a, NR
        // values at src + offs[j] + col, and MR rows of NR values at dst, ds apart.
        unsafe {
            let row = src.add(*offs.add(j) + col);
            let (b0, b1) = (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(16)));
            for r in 0..MR {
                let av = _mm512_set1_ps(*a.add(j * MR + r));
                lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
            }
        }
    }
    for r in 0..MR {
        unsafe {
            _mm512_storeu_ps(dst.add(r * ds), lo[r]);
            _mm512_storeu_ps(dst.add(r * ds + 16), hi[r]);
        }
    }
}

/// acc[offs[r] .. + 32] += Σ_j a[j][r] · b[j][..32] for each tap row r with an offset.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile(o: usize, a: *const f32, b: *const f32, acc: *mut f32, offs: &[usize; MR]) {
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    for j in 0..o {
        // SAFETY (whole function): the caller guarantees o·MR values at a, o·NR at b, and NR
        // at acc + offs[r] for every offset other than usize::MAX.
        unsafe {
            let (b0, b1) = (_mm512_loadu_ps(b.add(j * NR)), _mm512_loadu_ps(b.add(j * NR + 16)));
            for r in 0..MR {
                let av = _mm512_set1_ps(*a.add(j * MR + r));
                lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
            }
        }
    }
    for r in 0..MR {
        if offs[r] != usize::MAX {
            unsafe {
                let d = acc.add(offs[r]);
                _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), lo[r]));
                _mm512_storeu_ps(d.add(16), _mm512_add_ps(_mm512_loadu_ps(d.add(16)), hi[r]));
            }
        }
    }
}
