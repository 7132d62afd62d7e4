//! Convolutions as GEMMs: the CPU kernels behind every conv layer in ganfold.
//!
//! Candle 0.11's CPU transposed convolution and the convolution backward passes are direct
//! loops (`vec_dot_f32`), about 6 % of the machine's GEMM peak. Here the three
//! linear maps of a convolution layer are each one large GEMM over the whole batch plus a
//! cheap gather/scatter:
//!
//! * `conv2d(x, w) -> y`      y = W · cols(x)                     (im2col, GEMM)
//! * `conv_t(y, w) -> x`      x = col2im(Wᵀ · y)                  (GEMM, col2im): the adjoint of
//!   conv2d in x, i.e. the transposed convolution
//! * `wgrad(x, y) -> w`       W = y · cols(x)ᵀ                    (im2col, GEMM): the adjoint in w
//!
//! Each op's backward is written with these same three ops, so gradients of gradients work
//! (with `CANDLE_GRAD_DO_NOT_DETACH=1`). F32 and F64 run here; other dtypes and CUDA use Candle's
//! kernels. Shapes: image x (B, C, H, W), kernel w (O, C, k, k), grid y (B, O, Ho, Wo).

use super::{gemm_into, slice, uninit};
use crate::ConvCfg;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType, bail};
use rayon::prelude::*;

/// 2-D convolution of x (B, Cin, H, W) with w (Cout, Cin, k, k).
pub fn conv2d(x: &Tensor, w: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    if !fast_path(x, w) {
        return x.conv2d(w, cfg.padding, cfg.stride, 1, 1);
    }
    let g = Geom::from_image(x.dims(), w.dims(), cfg)?;
    // Only the weight gradient reads the columns again (a frozen layer keeps none).
    let keep = w.track_op().then(Default::default);
    x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp { g, kind: Kind::Conv, cols: keep })
}

/// Transposed 2-D convolution of x (B, Cin, H, W) with w (Cin, Cout, k, k), PyTorch's layout:
/// the adjoint (in its input) of `conv2d` with the same weight, output (B, Cout, Ho, Wo) with
/// Ho = (H - 1) * stride - 2 * padding + k + output_padding.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    if !fast_path(x, w) {
        return x.conv_transpose2d(w, cfg.padding, cfg.output_padding, cfg.stride, 1);
    }
    let g = transpose_geom(x, w, cfg)?;
    x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp { g, kind: Kind::ConvT, cols: None })
}

/// `conv2d(x, w) + b` per output channel, the bias added inside the op: one graph node, one
/// buffer and one gradient accumulation fewer per layer than a separate bias op.
pub fn conv2d_bias(x: &Tensor, w: &Tensor, b: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    conv2d_bias_act(x, w, b, cfg, None)
}

/// `leaky_relu(conv2d(x, w) + b, slope)` (slope 0: ReLU; `None`: no activation), one op.
pub fn conv2d_bias_act(x: &Tensor, w: &Tensor, b: &Tensor, cfg: ConvCfg, act: Option<f64>) -> Result<Tensor> {
    if act.is_some_and(|a| !(0.0..=1.0).contains(&a)) {
        bail!("conv2d: activation slope {act:?} outside [0, 1]");
    }
    if !fast_path(x, w) || !super::fast(&[x, b]) {
        let y = super::bias_add(&conv2d(x, w, cfg)?, b)?;
        return match act {
            Some(slope) => super::leaky_relu(&y, slope),
            None => Ok(y),
        };
    }
    let g = Geom::from_image(x.dims(), w.dims(), cfg)?;
    let keep = w.track_op().then(Default::default);
    biased(x, w, b, ConvOp { g, kind: Kind::Conv, cols: keep }, act)
}

/// `conv_transpose2d(x, w) + b` per output channel, fused as [`conv2d_bias`].
pub fn conv_transpose2d_bias(x: &Tensor, w: &Tensor, b: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    if !fast_path(x, w) || !super::fast(&[x, b]) {
        return super::bias_add(&conv_transpose2d(x, w, cfg)?, b);
    }
    let g = transpose_geom(x, w, cfg)?;
    biased(x, w, b, ConvOp { g, kind: Kind::ConvT, cols: None }, None)
}

fn biased(x: &Tensor, w: &Tensor, b: &Tensor, op: ConvOp, act: Option<f64>) -> Result<Tensor> {
    let o = if op.kind == Kind::Conv { op.g.o } else { op.g.c };
    if b.dims() != [o] {
        bail!("{}: bias of shape {:?} for {o} output channels", op.name(), b.dims());
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Biased { op, act })
}

/// The geometry of a transposed convolution of x (B, Cin, H, W) with w (Cin, Cout, k, k): that
/// of the conv2d whose adjoint it is.
fn transpose_geom(x: &Tensor, w: &Tensor, cfg: ConvCfg) -> Result<Geom> {
    let (b, ci, h, wd) = x.dims4()?;
    let (wi, co, k, k2) = w.dims4()?;
    if wi != ci || k != k2 {
        bail!("conv_transpose2d: input {:?} and weight {:?} do not match", x.dims(), w.dims());
    }
    let img = |n: usize| {
        (n as isize - 1) * cfg.stride as isize - 2 * cfg.padding as isize + (k + cfg.output_padding) as isize
    };
    let (hi, wi_) = (img(h), img(wd));
    if hi <= 0 || wi_ <= 0 || cfg.output_padding >= cfg.stride.max(1) {
        bail!("conv_transpose2d: impossible output for input {:?}, weight {:?}, {cfg:?}", x.dims(), w.dims());
    }
    // The transposed conv's output is the image of a conv2d with kernel (Cin, Cout, k, k).
    let g = Geom::from_image(&[b, co, hi as usize, wi_ as usize], &[ci, co, k, k], cfg)?;
    if (g.ho, g.wo) != (h, wd) {
        bail!("conv_transpose2d: geometry mismatch for {:?}, {cfg:?}", x.dims());
    }
    Ok(g)
}

/// A Conv or ConvT op with a per-output-channel bias added to its result, then optionally a leaky
/// ReLU (its mask is read back from the output's sign, as in the fused batch norm).
struct Biased {
    op: ConvOp,
    act: Option<f64>,
}

impl candle_core::CustomOp3 for Biased {
    fn name(&self) -> &'static str {
        self.op.name()
    }

    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.op.fwd(s1, l1, s2, l2, Some((s3, l3, self.act)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let masked;
        let grad = match self.act {
            Some(slope) => {
                masked = super::pointwise::leaky_mask(res, &grad.contiguous()?, slope)?;
                &masked
            }
            None => grad,
        };
        let (dx, dw) = self.op.bwd(x, w, res, grad)?;
        let db = if b.track_op() { Some(super::pointwise::channel_sum_of(grad)?) } else { None };
        Ok((dx, dw, db))
    }
}

fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    super::fast(&[x, w]) && x.rank() == 4 && w.rank() == 4
}

/// The geometry shared by a conv2d and its two adjoints.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    ho: usize,
    wo: usize,
    k: usize,
    s: usize,
    p: usize,
}

impl Geom {
    fn from_image(x: &[usize], w: &[usize], cfg: ConvCfg) -> Result<Self> {
        let (&[b, c, h, wd], &[o, wc, k, k2]) = (x, w) else {
            bail!("conv2d: expected 4-D input and weight, got {x:?} and {w:?}")
        };
        if wc != c || k != k2 || k == 0 || cfg.stride == 0 {
            bail!("conv2d: input {x:?} and weight {w:?} do not match (stride {})", cfg.stride);
        }
        let (s, p) = (cfg.stride, cfg.padding);
        if h + 2 * p < k || wd + 2 * p < k {
            bail!("conv2d: kernel {k} larger than padded input {x:?}");
        }
        Ok(Self { b, c, h, w: wd, o, ho: (h + 2 * p - k) / s + 1, wo: (wd + 2 * p - k) / s + 1, k, s, p })
    }
    fn kk(&self) -> usize {
        self.c * self.k * self.k
    }
    fn image_shape(&self) -> Shape {
        (self.b, self.c, self.h, self.w).into()
    }
    fn grid_shape(&self) -> Shape {
        (self.b, self.o, self.ho, self.wo).into()
    }
    fn kernel_shape(&self) -> Shape {
        (self.o, self.c, self.k, self.k).into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// (image x, kernel w) -> grid y
    Conv,
    /// (grid y, kernel w) -> image x
    ConvT,
    /// (image x, grid y) -> kernel w
    WGrad,
}

struct ConvOp {
    g: Geom,
    kind: Kind,
    /// Conv: where the forward pass leaves its columns; WGrad: where it takes them from.
    cols: Option<Shared>,
}

type Shared = std::sync::Arc<std::sync::Mutex<Option<Kept>>>;

fn op(a: &Tensor, b: &Tensor, g: Geom, kind: Kind) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, ConvOp { g, kind, cols: None })
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Conv => "ganfold-conv2d",
            Kind::ConvT => "ganfold-conv-transpose2d",
            Kind::WGrad => "ganfold-conv2d-weight-grad",
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.fwd(s1, l1, s2, l2, None)
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.g;
        // Only arguments that carry gradients get one (the first conv on data needs no dx).
        let want = |t: &Tensor, f: &dyn Fn() -> Result<Tensor>| if t.track_op() { f().map(Some) } else { Ok(None) };
        Ok(match self.kind {
            // y = conv(x, w):  dx = conv_t(dy, w),  dw = wgrad(x, dy)
            Kind::Conv => (
                want(a, &|| op(grad, b, g, Kind::ConvT))?,
                want(b, &|| {
                    a.contiguous()?
                        .apply_op2(&grad.contiguous()?, ConvOp { g, kind: Kind::WGrad, cols: self.cols.clone() })
                })?,
            ),
            // x = conv_t(y, w):  dy = conv(dx, w),  dw = wgrad(dx, y); both need the columns of
            // dx, so the first leaves them for the second.
            Kind::ConvT => {
                let cols: Option<Shared> = Some(Default::default());
                let with = |x: &Tensor, y: &Tensor, kind| {
                    x.contiguous()?.apply_op2(&y.contiguous()?, ConvOp { g, kind, cols: cols.clone() })
                };
                (want(a, &|| with(grad, b, Kind::Conv))?, want(b, &|| with(grad, a, Kind::WGrad))?)
            }
            // w = wgrad(x, y):  dx = conv_t(y, dw),  dy = conv(x, dw)
            Kind::WGrad => (want(a, &|| op(b, grad, g, Kind::ConvT))?, want(b, &|| op(a, grad, g, Kind::Conv))?),
        })
    }
}

impl ConvOp {
    /// The forward pass, with the output's per-channel bias and activation (`Biased`) applied
    /// while the result is written, not in a pass of their own.
    fn fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        epi: Option<(&CpuStorage, &Layout, Option<f64>)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let (sa, sb) = match self.kind {
            Kind::Conv => (g.image_shape(), g.kernel_shape()),
            Kind::ConvT => (g.grid_shape(), g.kernel_shape()),
            Kind::WGrad => (g.image_shape(), g.grid_shape()),
        };
        if l1.shape() != &sa || l2.shape() != &sb {
            bail!("{}: got {:?} and {:?}, expected {sa:?} and {sb:?}", self.name(), l1.dims(), l2.dims());
        }
        macro_rules! go {
            ($a:expr, $b:expr, $v:ident, $bias:expr) => {{
                let epi = match $bias {
                    Some((CpuStorage::$v(bias), bl, act)) => Some(Epilogue { bias: slice(bias, bl)?, act }),
                    Some(_) => bail!("{}: the bias must have the input's dtype", self.name()),
                    None => None,
                };
                let out = super::profile::timed(self.name(), || run(self, slice($a, l1)?, slice($b, l2)?, epi))?;
                Ok((CpuStorage::$v(out.0), out.1))
            }};
        }
        match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => go!(a, b, F32, epi),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => go!(a, b, F64, epi),
            _ => bail!("{}: only f32 and f64 (both operands alike)", self.name()),
        }
    }
}

/// Per-output-channel bias, then an optional leaky-ReLU slope, applied as the output is written.
#[derive(Clone, Copy)]
struct Epilogue<'a, T> {
    bias: &'a [T],
    act: Option<f64>,
}

impl<T: WithDType> Epilogue<'_, T> {
    /// row = act(row + bias[c]), in place.
    #[inline]
    fn apply(epi: Option<Self>, c: usize, row: &mut [T]) {
        match epi {
            None => {}
            Some(Epilogue { bias, act: None }) => {
                let v = bias[c];
                row.iter_mut().for_each(|d| *d += v);
            }
            Some(Epilogue { bias, act: Some(slope) }) => {
                let (v, a) = (bias[c], T::from_f64(slope));
                row.iter_mut().for_each(|d| {
                    let t = *d + v;
                    *d = t * if t > T::zero() { T::one() } else { a };
                });
            }
        }
    }

    /// dst = act(src + bias[c]).
    #[inline]
    fn write(epi: Option<Self>, c: usize, dst: &mut [T], src: &[T]) {
        match epi {
            None => dst.copy_from_slice(src),
            Some(Epilogue { bias, act: None }) => {
                let v = bias[c];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + v);
            }
            Some(Epilogue { bias, act: Some(slope) }) => {
                let (v, a) = (bias[c], T::from_f64(slope));
                dst.iter_mut().zip(src).for_each(|(d, &s)| {
                    let t = s + v;
                    *d = t * if t > T::zero() { T::one() } else { a };
                });
            }
        }
    }
}

fn run<T: WithDType>(op: &ConvOp, a: &[T], b: &[T], epi: Option<Epilogue<T>>) -> Result<(Vec<T>, Shape)> {
    let g = &op.g;
    let (kk, p) = (g.kk(), g.ho * g.wo);
    let (n, pm) = (g.b * p, g.pixel_major());
    // One GEMM over the whole batch (N = B·Ho·Wo columns) packs the weight once; the reorderings
    // it needs are of the grid, the small tensor. Columns are pixel-major for batches of 16 and
    // more (see `Geom::pixel_major`), batch-major below.
    // Temporaries are fresh allocations; a scratch pool measured slower. The binary keeps freed
    // memory committed (cli `keep_freed_memory`), so these are not page-faulted in every step.
    match op.kind {
        Kind::Conv if g.per_item() => {
            // Large output planes from few taps (a first layer on images: K = 16, P = 196): one
            // small GEMM per batch item straight into its output plane, the columns in L1,
            // instead of a batch-wide column matrix and a (O, B, P) -> (B, O, P) swap. Its weight
            // gradient builds the (small) columns again.
            let (hp, wp) = g.padded();
            let xp = pad(g, a);
            let mut y = uninit(g.b * g.o * p);
            let item = |cols: &mut Vec<T>, (bi, y): (usize, &mut [T])| {
                for (r, row) in cols.chunks_exact_mut(p).enumerate() {
                    let (c, kh, kw) = (r / (g.k * g.k), r / g.k % g.k, r % g.k);
                    window(g, &xp[(bi * g.c + c) * hp * wp..][..hp * wp], kh, kw, row);
                }
                super::serial_gemm(|| gemm_into(y, p, g.o, p, kk, b, (kk, 1), cols, (p, 1), false));
                if epi.is_some() {
                    for (o, row) in y.chunks_exact_mut(p).enumerate() {
                        Epilogue::apply(epi, o, row);
                    }
                }
            };
            super::profile::timed("  conv per item", || {
                y.par_chunks_mut(g.o * p).enumerate().for_each_init(|| uninit(kk * p), item)
            });
            Ok((y, g.grid_shape()))
        }
        Kind::ConvT if g.per_item() => {
            // The same layers' adjoint (a last layer to images, or the first layer's input
            // gradient): per batch item, cols (K, P) = Wᵀ · y_b read straight from the grid, then
            // added into the item's padded planes. Neither the (B, O, P) -> (O, P, B) transpose
            // of the grid nor a batch-wide column matrix: 0.37-0.72 -> 0.22-0.27 ms on the 64->1 layer.
            // (An AVX-512 kernel of our own instead of `gemm` for these small products measured
            // no faster in the step: reading the grid bounds them.)
            let (hp, wp) = g.padded();
            let mut x = uninit(g.b * g.c * g.h * g.w);
            let item = |(cols, acc): &mut (Vec<T>, Vec<T>), (bi, xb): (usize, &mut [T])| {
                cols.resize(kk * p, T::zero());
                super::serial_gemm(|| {
                    gemm_into(cols, p, kk, p, g.o, b, (1, kk), &a[bi * g.o * p..][..g.o * p], (p, 1), false)
                });
                acc.clear();
                acc.resize(g.c * hp * wp, T::zero());
                for (r, row) in cols.chunks_exact(p).enumerate() {
                    let (c, kh, kw) = (r / (g.k * g.k), r / g.k % g.k, r % g.k);
                    window_add(g, &mut acc[c * hp * wp..][..hp * wp], kh, kw, row);
                }
                for (cr, dst) in xb.chunks_exact_mut(g.w).enumerate() {
                    let (c, r) = (cr / g.h, cr % g.h);
                    Epilogue::write(epi, c, dst, &acc[c * hp * wp + (r + g.p) * wp + g.p..][..g.w]);
                }
            };
            super::profile::timed("  convT per item", || {
                x.par_chunks_mut(g.c * g.h * g.w).enumerate().for_each_init(Default::default, item)
            });
            Ok((x, g.image_shape()))
        }
        Kind::WGrad if g.per_item() => {
            // W (O, K) = Σ_b dY_b (O, P) · cols_bᵀ (P, K), dY_b read straight from the grid and
            // cols_b built in L1. Items are summed in fixed chunks, then the chunks in order:
            // the same bits for any thread count.
            const CHUNK: usize = 8;
            let (hp, wp) = g.padded();
            let xp = pad(g, a);
            drop(op.cols.as_ref().and_then(|c| c.lock().unwrap_or_else(|e| e.into_inner()).take()));
            let chunk = |cols: &mut Vec<T>, c0: usize| -> Vec<T> {
                let mut w = uninit(g.o * kk);
                cols.resize(kk * p, T::zero());
                for bi in c0..(c0 + CHUNK).min(g.b) {
                    for (r, row) in cols.chunks_exact_mut(p).enumerate() {
                        let (c, kh, kw) = (r / (g.k * g.k), r / g.k % g.k, r % g.k);
                        window(g, &xp[(bi * g.c + c) * hp * wp..][..hp * wp], kh, kw, row);
                    }
                    super::serial_gemm(|| {
                        gemm_into(&mut w, kk, g.o, kk, p, &b[bi * g.o * p..][..g.o * p], (p, 1), cols, (1, p), bi > c0)
                    });
                }
                w
            };
            let parts: Vec<Vec<T>> = super::profile::timed("  wgrad per item", || {
                (0..g.b).into_par_iter().step_by(CHUNK).map_init(Vec::new, chunk).collect()
            });
            let mut parts = parts.into_iter();
            let mut w = parts.next().expect("a batch has at least one item");
            for part in parts {
                w.iter_mut().zip(part).for_each(|(d, v)| *d += v);
            }
            Ok((w, g.kernel_shape()))
        }
        Kind::Conv => {
            // Without columns where the AVX-512 kernel runs (faster than im2col + gemm); the
            // weight gradient then copies its columns from the transposed image kept here.
            if let Some((y, xt)) = super::profile::timed("  conv implicit", || conv_implicit(g, a, b, epi)) {
                if let Some(c) = &op.cols {
                    *c.lock().unwrap_or_else(|e| e.into_inner()) = Some(Kept::Image(Cols::from(xt)));
                }
                return Ok((y, g.grid_shape()));
            }
            // Yt (O, N) = W (O, K) · cols (K, N), then back to the grid (B, O, P).
            let cols = super::profile::timed("  im2col", || if pm { im2col_pm(g, a) } else { im2col(g, a) });
            let mut yt = uninit(g.o * n);
            super::profile::timed("  gemm conv", || {
                gemm_into(&mut yt, n, g.o, n, kk, b, (kk, 1), &cols, (n, 1), false)
            });
            if let Some(c) = &op.cols {
                *c.lock().unwrap_or_else(|e| e.into_inner()) = Some(Kept::Columns(Cols::from(cols)));
            }
            let y = super::profile::timed("  to grid", || {
                if pm {
                    from_pixel_major(&yt, (g.o, p), (p * g.b, g.b), epi)
                } else {
                    swap_outer(&yt, g.o, g.b, p, epi)
                }
            });
            Ok((y, g.grid_shape()))
        }
        Kind::ConvT => {
            if let Some(x) = super::profile::timed("  convT implicit", || conv_t_implicit(g, a, b, epi)) {
                return Ok((x, g.image_shape()));
            }
            // cols (K, N) = Wᵀ (K, O) · Yt (O, N), then scatter-add the patches into the image.
            let yt = super::profile::timed("  from grid", || grid_rows(g, a));
            let mut cols = uninit(kk * n);
            super::profile::timed("  gemm convT", || {
                gemm_into(&mut cols, n, kk, n, g.o, b, (1, kk), &yt, (n, 1), false)
            });
            Ok((
                super::profile::timed("  col2im", || if pm { col2im_pm(g, &cols, epi) } else { col2im(g, &cols, epi) }),
                g.image_shape(),
            ))
        }
        Kind::WGrad => {
            // W (O, K) = Yt (O, N) · colsᵀ (N, K).
            let cached = op.cols.as_ref().and_then(|c| c.lock().unwrap_or_else(|e| e.into_inner()).take());
            let cols = match cached {
                Some(Kept::Columns(c)) => c.into_vec::<T>(),
                Some(Kept::Image(xt)) => {
                    xt.into_vec::<T>().map(|xt| super::profile::timed("  im2col", || im2col_pm_from(g, &xt)))
                }
                None => None,
            };
            let cols = cols.unwrap_or_else(|| {
                super::profile::timed("  im2col wg", || if pm { im2col_pm(g, a) } else { im2col(g, a) })
            });
            let yt = super::profile::timed("  from grid", || grid_rows(g, b));
            let mut w = uninit(g.o * kk);
            super::profile::timed("  gemm wgrad", || {
                gemm_into(&mut w, kk, g.o, kk, n, &yt, (n, 1), &cols, (1, n), false)
            });
            Ok((w, g.kernel_shape()))
        }
    }
}

/// A grid (B, O, P) as the GEMM's O rows of N columns, in the geometry's column order.
fn grid_rows<T: WithDType>(g: &Geom, y: &[T]) -> Vec<T> {
    let p = g.ho * g.wo;
    if g.pixel_major() { to_pixel_major(y, g.b, g.o, p) } else { swap_outer(y, g.b, g.o, p, None) }
}

/// (A, B, P) -> (B, A, P): swaps the two outer dims of a dense 3-D array (A: channels, for the
/// epilogue).
fn swap_outer<T: WithDType>(x: &[T], a: usize, b: usize, p: usize, epi: Option<Epilogue<T>>) -> Vec<T> {
    let mut out = uninit(x.len());
    let rows = |(j, row): (usize, &mut [T])| {
        for i in 0..a {
            Epilogue::write(epi, i, &mut row[i * p..(i + 1) * p], &x[(i * b + j) * p..(i * b + j + 1) * p]);
        }
    };
    if x.len() < super::PAR_MIN {
        out.chunks_mut(a * p).enumerate().for_each(rows);
    } else {
        out.par_chunks_mut(a * p).enumerate().for_each(rows);
    }
    out
}

/// What one conv2d forward pass keeps for its weight gradient: its columns, or (implicit
/// forward) the image transposed to (C, pixel, B), from which the columns are copied without
/// transposing again.
enum Kept {
    Columns(Cols),
    Image(Cols),
}

/// A buffer of the op's dtype, type-erased.
enum Cols {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Cols {
    fn from<T: WithDType>(v: Vec<T>) -> Self {
        let any: Box<dyn std::any::Any> = Box::new(v);
        match any.downcast::<Vec<f32>>() {
            Ok(v) => Cols::F32(*v),
            Err(any) => Cols::F64(*any.downcast::<Vec<f64>>().expect("conv kernels run on f32 or f64")),
        }
    }
    fn into_vec<T: WithDType>(self) -> Option<Vec<T>> {
        let any: Box<dyn std::any::Any> = match self {
            Cols::F32(v) => Box::new(v),
            Cols::F64(v) => Box::new(v),
        };
        any.downcast::<Vec<T>>().ok().map(|v| *v)
    }
}

impl Geom {
    /// Large planes from few taps (K·P columns fit in L1, P ≥ 64): the three products run per
    /// batch item, straight on the (B, ·, P) layouts.
    fn per_item(&self) -> bool {
        let p = self.ho * self.wo;
        p >= 64 && self.kk() * p <= 1 << 15
    }
    /// Padded plane size: the image with `p` zeros on every side.
    fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.p, self.w + 2 * self.p)
    }
}

/// dst (Ho·Wo) = the window of kernel tap (kh, kw) in one padded plane: dst[oh, ow] =
/// plane[oh·s + kh, ow·s + kw]. Row by row with the stride a constant for s = 1, 2 (strided
/// loads without index tables or bounds checks).
#[inline]
fn window<T: Copy>(g: &Geom, plane: &[T], kh: usize, kw: usize, dst: &mut [T]) {
    let (_, wp) = g.padded();
    for (oh, d) in dst.chunks_exact_mut(g.wo).enumerate() {
        let src = &plane[(oh * g.s + kh) * wp + kw..];
        match g.s {
            1 => d.copy_from_slice(&src[..g.wo]),
            2 => strided::<T, 2>(d, src),
            s => d.iter_mut().enumerate().for_each(|(i, d)| *d = src[i * s]),
        }
    }
}

#[inline(always)]
fn strided<T: Copy, const S: usize>(dst: &mut [T], src: &[T]) {
    let src = &src[..(dst.len() - 1) * S + 1];
    for i in 0..dst.len() {
        dst[i] = src[i * S];
    }
}

/// The adjoint of [`window`]: plane[oh·s + kh, ow·s + kw] += src[oh, ow].
#[inline]
fn window_add<T: WithDType>(g: &Geom, plane: &mut [T], kh: usize, kw: usize, src: &[T]) {
    let (_, wp) = g.padded();
    for (oh, v) in src.chunks_exact(g.wo).enumerate() {
        let dst = &mut plane[(oh * g.s + kh) * wp + kw..];
        match g.s {
            1 => dst[..g.wo].iter_mut().zip(v).for_each(|(d, &v)| *d += v),
            2 => {
                let (dst, v) = (&mut dst[..(g.wo - 1) * 2 + 1], &v[..g.wo]);
                for i in 0..g.wo {
                    dst[i * 2] += v[i];
                }
            }
            s => v.iter().enumerate().for_each(|(i, &v)| dst[i * s] += v),
        }
    }
}

/// x (B, C, H, W) with `p` zeros around every plane (x itself when p = 0).
fn pad<'a, T: WithDType>(g: &Geom, x: &'a [T]) -> std::borrow::Cow<'a, [T]> {
    if g.p == 0 {
        return x.into();
    }
    let (hp, wp) = g.padded();
    let mut out = uninit(g.b * g.c * hp * wp);
    let plane = |(out, x): (&mut [T], &[T])| {
        out[..g.p * wp].fill(T::zero());
        out[(g.p + g.h) * wp..].fill(T::zero());
        for (r, src) in x.chunks_exact(g.w).enumerate() {
            let row = &mut out[(r + g.p) * wp..][..wp];
            row[..g.p].fill(T::zero());
            row[g.p..g.p + g.w].copy_from_slice(src);
            row[g.p + g.w..].fill(T::zero());
        }
    };
    if out.len() < super::PAR_MIN {
        out.chunks_mut(hp * wp).zip(x.chunks(g.h * g.w)).for_each(plane);
    } else {
        out.par_chunks_mut(hp * wp).zip(x.par_chunks(g.h * g.w)).for_each(plane);
    }
    out.into()
}

/// cols (C·k·k, B·Ho·Wo): row (c, kh, kw), column (b, oh, ow) holds
/// x[b, c, oh·s − p + kh, ow·s − p + kw] (0 in the padding).
fn im2col<T: WithDType>(g: &Geom, x: &[T]) -> Vec<T> {
    let (p, n, kk2) = (g.ho * g.wo, g.b * g.ho * g.wo, g.k * g.k);
    let (hp, wp) = g.padded();
    let xp = pad(g, x);
    let mut cols = uninit(g.kk() * n);
    let row = |(r, row): (usize, &mut [T])| {
        for (b, out) in row.chunks_exact_mut(p).enumerate() {
            window(g, &xp[(b * g.c + r / kk2) * hp * wp..][..hp * wp], r % kk2 / g.k, r % g.k, out);
        }
    };
    if cols.len() < super::PAR_MIN {
        cols.chunks_mut(n).enumerate().for_each(row);
    } else {
        cols.par_chunks_mut(n).enumerate().for_each(row);
    }
    cols
}

/// The adjoint of [`im2col`]: adds every column entry back into the image position it came
/// from. Parallel over image planes, so no two threads write the same element.
fn col2im<T: WithDType>(g: &Geom, cols: &[T], epi: Option<Epilogue<T>>) -> Vec<T> {
    let (p, n, kk2) = (g.ho * g.wo, g.b * g.ho * g.wo, g.k * g.k);
    let (hp, wp) = g.padded();
    let mut x = uninit(g.b * g.c * g.h * g.w);
    let plane = |acc: &mut Vec<T>, (bc, plane): (usize, &mut [T])| {
        let (b, c) = (bc / g.c, bc % g.c);
        acc.clear();
        acc.resize(hp * wp, T::zero());
        for tap in 0..kk2 {
            window_add(g, acc, tap / g.k, tap % g.k, &cols[(c * kk2 + tap) * n + b * p..][..p]);
        }
        for (r, dst) in plane.chunks_exact_mut(g.w).enumerate() {
            Epilogue::write(epi, c, dst, &acc[(r + g.p) * wp + g.p..][..g.w]);
        }
    };
    if x.len() < super::PAR_MIN {
        let mut acc = Vec::new();
        x.chunks_mut(g.h * g.w).enumerate().for_each(|a| plane(&mut acc, a));
    } else {
        x.par_chunks_mut(g.h * g.w).enumerate().for_each_init(Vec::new, plane);
    }
    x
}

impl Geom {
    /// Whether the column matrices order their N = B·Ho·Wo columns pixel-major, (oh, ow, b):
    /// im2col and col2im then move whole runs of B values (a memcpy, a vector add) instead of
    /// Ho rows of Wo strided values each (3-4x faster for B = 64, 7x7 grids), at the price of
    /// a transpose instead of a block swap of the grid. For batches that fill a vector.
    fn pixel_major(&self) -> bool {
        self.b >= 16
    }
}

/// dst[j·ds + i] = src[i·ss + j] for i < rows, j < cols: a strided matrix transpose, in 4x4
/// SSE tiles for f32 (scalar strided stores ran at 6-8 cycles per element).
pub(super) fn transpose<T: WithDType>(src: &[T], ss: usize, dst: &mut [T], ds: usize, rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src.len() >= (rows - 1) * ss + cols && dst.len() >= (cols - 1) * ds + rows);
    let (mut r4, mut c4) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        (r4, c4) = (rows / 4 * 4, cols / 4 * 4);
        // SAFETY: T is f32 (same layout); every tile lies inside the extents asserted above.
        unsafe { transpose4_f32(src.as_ptr().cast(), ss, dst.as_mut_ptr().cast(), ds, r4, c4) };
    }
    for i in 0..rows {
        let row = &src[i * ss..][..cols];
        let from = if i < r4 { c4 } else { 0 };
        for j in from..cols {
            dst[j * ds + i] = row[j];
        }
    }
}

/// The 4x4 tiles of [`transpose`] over rows < r4, cols < c4 (multiples of 4).
///
/// # Safety
/// src must hold (r4 - 1)·ss + c4 floats and dst (c4 - 1)·ds + r4.
#[cfg(target_arch = "x86_64")]
unsafe fn transpose4_f32(src: *const f32, ss: usize, dst: *mut f32, ds: usize, r4: usize, c4: usize) {
    use std::arch::x86_64::*;
    for i in (0..r4).step_by(4) {
        for j in (0..c4).step_by(4) {
            // SAFETY: rows i..i+4, columns j..j+4 are inside both matrices (caller's extents).
            unsafe {
                let p = src.add(i * ss + j);
                let (r0, r1, r2, r3) = (
                    _mm_loadu_ps(p),
                    _mm_loadu_ps(p.add(ss)),
                    _mm_loadu_ps(p.add(2 * ss)),
                    _mm_loadu_ps(p.add(3 * ss)),
                );
                let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpackhi_ps(r0, r1));
                let (t2, t3) = (_mm_unpacklo_ps(r2, r3), _mm_unpackhi_ps(r2, r3));
                let q = dst.add(j * ds + i);
                _mm_storeu_ps(q, _mm_movelh_ps(t0, t2));
                _mm_storeu_ps(q.add(ds), _mm_movehl_ps(t2, t0));
                _mm_storeu_ps(q.add(2 * ds), _mm_movelh_ps(t1, t3));
                _mm_storeu_ps(q.add(3 * ds), _mm_movehl_ps(t3, t1));
            }
        }
    }
}

/// (B, O, P) -> (O, P, B): the grid as GEMM rows in pixel-major column order.
fn to_pixel_major<T: WithDType>(x: &[T], b: usize, o: usize, p: usize) -> Vec<T> {
    to_pixel_major_padded(x, b, o, p, 0)
}

/// [`to_pixel_major`] followed by `extra` zeros.
fn to_pixel_major_padded<T: WithDType>(x: &[T], b: usize, o: usize, p: usize, extra: usize) -> Vec<T> {
    let mut out = uninit(x.len() + extra);
    out[x.len()..].fill(T::zero());
    let row = |(oi, row): (usize, &mut [T])| transpose(&x[oi * p..], o * p, row, b, b, p);
    if x.len() < super::PAR_MIN {
        out[..x.len()].chunks_mut(p * b).enumerate().for_each(row);
    } else {
        out[..x.len()].par_chunks_mut(p * b).enumerate().for_each(row);
    }
    out
}

/// (O, P, B) or (P, O, B) -> (B, O, P), element (o, q, b) of `yt` at o·so + q·sq + b (strides
/// `(so, sq)`); the epilogue applied per output channel o; items in blocks of 16.
fn from_pixel_major<T: WithDType>(
    yt: &[T],
    (o, p): (usize, usize),
    (so, sq): (usize, usize),
    epi: Option<Epilogue<T>>,
) -> Vec<T> {
    const BLOCK: usize = 16;
    let mut out = uninit(yt.len());
    let block = |(blk, items): (usize, &mut [T])| {
        let nb = items.len() / (o * p);
        for oi in 0..o {
            transpose(&yt[oi * so + blk * BLOCK..], sq, &mut items[oi * p..], o * p, p, nb);
        }
        if epi.is_some() {
            for (i, row) in items.chunks_exact_mut(p).enumerate() {
                Epilogue::apply(epi, i % o, row);
            }
        }
    };
    if yt.len() < super::PAR_MIN {
        out.chunks_mut(BLOCK * o * p).enumerate().for_each(block);
    } else {
        out.par_chunks_mut(BLOCK * o * p).enumerate().for_each(block);
    }
    out
}

/// The input pixel under kernel tap (kh, kw) at output position (oh, ow), if not in the padding.
#[inline]
fn source_pixel(g: &Geom, oh: usize, ow: usize, kh: usize, kw: usize) -> Option<usize> {
    let (y, x) = ((oh * g.s + kh).checked_sub(g.p)?, (ow * g.s + kw).checked_sub(g.p)?);
    (y < g.h && x < g.w).then_some(y * g.w + x)
}

/// [`im2col`] with pixel-major columns: row (c, kh, kw), column (oh, ow, b). Each channel is
/// first transposed to (pixel, b), so every (tap, output pixel) entry is one run of B values,
/// copied (or zero-filled in the padding) at once.
fn im2col_pm<T: WithDType>(g: &Geom, x: &[T]) -> Vec<T> {
    let (n, kk2, bsz, hw) = (g.b * g.ho * g.wo, g.k * g.k, g.b, g.h * g.w);
    let mut cols = uninit(g.kk() * n);
    let channel = |xt: &mut Vec<T>, (c, rows): (usize, &mut [T])| {
        xt.resize(hw * bsz, T::zero());
        transpose(&x[c * hw..], g.c * hw, xt, bsz, bsz, hw);
        channel_cols(g, xt, rows);
    };
    if cols.len() < super::PAR_MIN {
        let mut xt = Vec::new();
        cols.chunks_mut(kk2 * n).enumerate().for_each(|a| channel(&mut xt, a));
    } else {
        cols.par_chunks_mut(kk2 * n).enumerate().for_each_init(Vec::new, channel);
    }
    cols
}

/// [`im2col_pm`] from the image already transposed to (C, pixel, B).
fn im2col_pm_from<T: WithDType>(g: &Geom, xt: &[T]) -> Vec<T> {
    let (n, kk2, plane) = (g.b * g.ho * g.wo, g.k * g.k, g.h * g.w * g.b);
    let mut cols = uninit(g.kk() * n);
    cols.par_chunks_mut(kk2 * n).enumerate().for_each(|(c, rows)| channel_cols(g, &xt[c * plane..][..plane], rows));
    cols
}

/// One channel's k² rows of pixel-major columns from its (pixel, B) transpose: a run of B
/// values per (tap, output pixel), zeros in the padding.
fn channel_cols<T: WithDType>(g: &Geom, xt: &[T], rows: &mut [T]) {
    let (n, bsz) = (g.b * g.ho * g.wo, g.b);
    for (tap, row) in rows.chunks_exact_mut(n).enumerate() {
        for (q, run) in row.chunks_exact_mut(bsz).enumerate() {
            match source_pixel(g, q / g.wo, q % g.wo, tap / g.k, tap % g.k) {
                Some(i) => run.copy_from_slice(&xt[i * bsz..][..bsz]),
                None => run.fill(T::zero()),
            }
        }
    }
}

/// [`col2im`] for pixel-major columns: per channel, the taps are added into a (pixel, b)
/// accumulator in runs of B values, then transposed into the channel's B planes.
fn col2im_pm<T: WithDType>(g: &Geom, cols: &[T], epi: Option<Epilogue<T>>) -> Vec<T> {
    let (n, kk2, bsz) = (g.b * g.ho * g.wo, g.k * g.k, g.b);
    accumulate_pm(g, 1, epi, |c, _, acc: &mut [T], _: &mut Vec<f32>| {
        for tap in 0..kk2 {
            let row = &cols[(c * kk2 + tap) * n..][..n];
            for (q, run) in row.chunks_exact(bsz).enumerate() {
                if let Some(i) = source_pixel(g, q / g.wo, q % g.wo, tap / g.k, tap % g.k) {
                    acc[i * bsz..][..bsz].iter_mut().zip(run).for_each(|(d, &v)| *d += v);
                }
            }
        }
    })
}

/// The image (B, C, H, W) from (pixel, b) accumulators, `group` channels at a time:
/// `fill(c0, cn, acc, scratch)` adds the contributions to channels c0 .. c0 + cn into their
/// zeroed accumulators, which are then transposed into each channel's B planes with the
/// epilogue applied. Groups run in parallel.
fn accumulate_pm<T: WithDType>(
    g: &Geom,
    group: usize,
    epi: Option<Epilogue<T>>,
    fill: impl Fn(usize, usize, &mut [T], &mut Vec<f32>) + Sync,
) -> Vec<T> {
    let (bsz, hw) = (g.b, g.h * g.w);
    let mut x = uninit(g.b * g.c * hw);
    let dst = SyncPtr(x.as_mut_ptr());
    let task = |(acc, planes, scratch): &mut (Vec<T>, Vec<T>, Vec<f32>), c0: usize| {
        let cn = group.min(g.c - c0);
        acc.clear();
        acc.resize(cn * hw * bsz, T::zero());
        fill(c0, cn, acc, scratch);
        planes.resize(bsz * hw, T::zero());
        for (ci, acc) in acc.chunks_exact(hw * bsz).enumerate() {
            let c = c0 + ci;
            transpose(acc, bsz, planes, hw, hw, bsz);
            for (bi, plane) in planes.chunks_exact_mut(hw).enumerate() {
                Epilogue::apply(epi, c, plane);
                // SAFETY: plane (bi, c) lies inside x, and channel c's planes are written by
                // this task only.
                unsafe { std::ptr::copy_nonoverlapping(plane.as_ptr(), dst.at((bi * g.c + c) * hw), hw) };
            }
        }
    };
    if x.len() < super::PAR_MIN {
        let mut bufs = Default::default();
        (0..g.c).step_by(group).for_each(|c0| task(&mut bufs, c0));
    } else {
        (0..g.c).into_par_iter().step_by(group).for_each_init(Default::default, task);
    }
    x
}

/// The transposed convolution without a column matrix (`implicit`): f32 on AVX-512, pixel-major
/// batches that are a multiple of 32, and enough channels to keep every thread busy; None
/// where it does not apply.
fn conv_t_implicit<T: WithDType>(g: &Geom, y: &[T], w: &[T], epi: Option<Epilogue<T>>) -> Option<Vec<T>> {
    let usable = g.pixel_major()
        && g.b.is_multiple_of(super::implicit::NR)
        && g.c >= 2 * rayon::current_num_threads()
        && super::implicit::available()
        && super::switches().implicit;
    let (y, w) = (as_f32(y)?, as_f32(w)?);
    if !usable {
        return None;
    }
    let (p, kk2) = (g.ho * g.wo, g.k * g.k);
    let packed = super::profile::timed("  from grid", || super::implicit::pack_grid(y, g.b, g.o, p));
    // Groups of channels share each load of Yt; 8 keeps a group's accumulators (8 x 50 KB on
    // the DCGAN's 14x14 planes) in L2 and leaves several groups per thread.
    let group = 8.min(g.c.div_ceil(2 * rayon::current_num_threads()));
    Some(accumulate_pm(g, group, epi, |c0, cn, acc: &mut [T], taps| {
        let acc = as_f32_mut(acc).expect("T is f32 here");
        let source = |q: usize, tap: usize| source_pixel(g, q / g.wo, q % g.wo, tap / g.k, tap % g.k);
        super::implicit::fill_channels(
            (c0, cn),
            (g.o, g.kk(), kk2, g.h * g.w),
            (g.b, p),
            w,
            &packed,
            source,
            acc,
            taps,
        );
    }))
}

/// The convolution without a column matrix (`implicit::conv_forward`): f32 on AVX-512,
/// pixel-major batches that are a multiple of 32, output channels a multiple of 8, and 8 output
/// pixels per thread (they are the unit of parallel work: LCC-GAN's 7x7 -> 1x1 layer ran on one
/// thread and made its autoencoder step 86 -> 93 ms); None where it does not apply.
fn conv_implicit<T: WithDType>(g: &Geom, x: &[T], w: &[T], epi: Option<Epilogue<T>>) -> Option<(Vec<T>, Vec<T>)> {
    let usable = g.pixel_major()
        && g.b.is_multiple_of(super::implicit::NR)
        && g.o.is_multiple_of(8)
        && g.ho * g.wo >= 8 * rayon::current_num_threads()
        && super::implicit::available()
        && super::switches().implicit;
    if !usable {
        return None;
    }
    let (p, hw, zero) = (g.ho * g.wo, g.h * g.w, g.b * g.c * g.h * g.w);
    let xt = super::profile::timed("  from grid", || to_pixel_major_padded(x, g.b, g.c, hw, g.b));
    let source = |q: usize, tap: usize| source_pixel(g, q / g.wo, q % g.wo, tap / g.k, tap % g.k);
    let yt =
        super::implicit::conv_forward(as_f32(&xt)?, zero, as_f32(w)?, (g.o, g.kk(), g.k * g.k, hw), (g.b, p), source);
    let y = super::profile::timed("  to grid", || {
        from_pixel_major(retype::<f32, T>(&yt).expect("T is f32 here"), (g.o, p), (g.b, g.o * g.b), epi)
    });
    Some((y, xt))
}

fn retype<A: 'static, B: 'static>(x: &[A]) -> Option<&[B]> {
    // SAFETY: A and B are the same type (same type id), so the slice is reinterpreted as itself.
    (std::any::TypeId::of::<A>() == std::any::TypeId::of::<B>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) })
}

fn as_f32<T: WithDType>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32 (same type id), so the slice is reinterpreted as itself.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) })
}

fn as_f32_mut<T: WithDType>(x: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: as `as_f32`.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) })
}

/// A raw pointer that threads writing disjoint elements may share.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: only used for writes to disjoint elements, joined before the buffer is read.
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// # Safety
    /// `i` must be inside the buffer the pointer came from.
    unsafe fn at(self, i: usize) -> *mut T {
        unsafe { self.0.add(i) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;
    use candle_core::{DType, Device};

    fn cfgs() -> Vec<(ConvCfg, usize, usize)> {
        // (cfg, k, spatial)
        vec![
            (ConvCfg::new(2, 1), 4, 7),
            (ConvCfg::new(1, 0), 3, 5),
            (ConvCfg::new(1, 1), 3, 6),
            (ConvCfg::new(2, 0), 3, 7),
            (ConvCfg { stride: 2, padding: 1, output_padding: 1 }, 3, 4),
        ]
    }

    /// Every geometry with a small batch (batch-major columns) and a batch of 16 and more
    /// (pixel-major columns: `Geom::pixel_major`).
    fn cfgs_batches() -> Vec<(ConvCfg, usize, usize, usize)> {
        [2, 16].into_iter().flat_map(|nb| cfgs().into_iter().map(move |(c, k, hw)| (c, k, hw, nb))).collect()
    }

    /// The f32 transpose (4x4 SSE tiles plus scalar edges) against its definition, on sizes
    /// that are not multiples of 4 and strides wider than the matrices.
    #[test]
    fn transpose_matches_definition() {
        for (rows, cols) in [(1, 1), (3, 5), (4, 4), (9, 14), (17, 49)] {
            let (ss, ds) = (cols + 3, rows + 2);
            let src: Vec<f32> = (0..rows * ss).map(|i| i as f32 * 0.5 - 7.0).collect();
            let mut dst = vec![f32::NAN; cols * ds];
            transpose(&src, ss, &mut dst, ds, rows, cols);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(dst[j * ds + i], src[i * ss + j], "({rows}x{cols}) at ({i}, {j})");
                }
            }
            let untouched = (0..cols).flat_map(|j| (rows..ds).map(move |i| j * ds + i)).filter(|&k| k < dst.len());
            assert!(untouched.into_iter().all(|k| dst[k].is_nan()), "({rows}x{cols}) wrote outside the matrix");
        }
    }

    fn close(a: &Tensor, b: &Tensor, tol: f64) -> Result<()> {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        assert!(d < tol, "max difference {d}");
        Ok(())
    }

    /// The implicit transposed convolution (f32, AVX-512, batches that are multiples of 32)
    /// against Candle: values with the fused bias, and the gradients of the conv2d whose input
    /// gradient it is; k = 3 gives tiles that straddle two channels' taps. Where the CPU lacks
    /// AVX-512 this compares the fallback, which the other tests cover too.
    #[test]
    fn implicit_transpose_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(11);
        for (cfg, k, hw) in cfgs() {
            for nb in [32, 64] {
                let x = rng.randn((nb, 6, hw, hw + 1), 0.0, 1.0, &dev)?;
                let wt = rng.randn((6, 8, k, k), 0.0, 1.0, &dev)?;
                let bias = rng.randn(8, 0.0, 1.0, &dev)?;
                let ours = conv_transpose2d_bias(&x, &wt, &bias, cfg)?;
                let theirs = x
                    .conv_transpose2d(&wt, cfg.padding, cfg.output_padding, cfg.stride, 1)?
                    .broadcast_add(&bias.reshape((1, 8, 1, 1))?)?;
                close(&ours, &theirs, 1e-4)?;
                if cfg.output_padding == 0 {
                    // conv2d's input gradient is the transposed convolution of the output's (on the
                    // input size that the transposed convolution above produced, so sizes match).
                    let (h2, w2) = (ours.dim(2)?, ours.dim(3)?);
                    let xv = candle_core::Var::from_tensor(&rng.randn((nb, 8, h2, w2), 0.0, 1.0, &dev)?)?;
                    let w = rng.randn((6, 8, k, k), 0.0, 1.0, &dev)?;
                    let yo = conv2d(&xv, &w, cfg)?;
                    let r = rng.randn(yo.dims(), 0.0, 1.0, &dev)?;
                    let go = (&yo * &r)?.sum_all()?.backward()?;
                    let gt = (xv.conv2d(&w, cfg.padding, cfg.stride, 1, 1)? * &r)?.sum_all()?.backward()?;
                    close(go.get(xv.as_tensor()).unwrap(), gt.get(xv.as_tensor()).unwrap(), 1e-4)?;
                }
            }
        }
        Ok(())
    }

    /// The convolution without a column matrix (f32, AVX-512, batches of 32k) against Candle:
    /// values with the fused bias and activation through the public op, the kernel called
    /// directly (so the test fails if the path is not taken), and the weight gradient from the
    /// transposed image the forward pass keeps. K = 6·k² rows: with k = 3, tiles straddle
    /// channels.
    #[test]
    fn implicit_conv_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(12);
        for (cfg, k, hw) in cfgs().into_iter().filter(|c| c.0.output_padding == 0) {
            for nb in [32, 64] {
                // Sizes a stride divides exactly (Candle's input gradient drops the remainder).
                let fit = |n: usize| (n - 1) * cfg.stride + k - 2 * cfg.padding;
                let x = candle_core::Var::from_tensor(&rng.randn((nb, 6, fit(hw), fit(hw + 1)), 0.0, 1.0, &dev)?)?;
                let w = candle_core::Var::from_tensor(&rng.randn((16, 6, k, k), 0.0, 1.0, &dev)?)?;
                let bias = candle_core::Var::from_tensor(&rng.randn(16, 0.0, 1.0, &dev)?)?;
                let ours = conv2d_bias_act(&x, &w, &bias, cfg, Some(0.2))?;
                let y = x.conv2d(&w, cfg.padding, cfg.stride, 1, 1)?;
                let yb = y.broadcast_add(&bias.reshape((1, 16, 1, 1))?)?;
                let theirs = yb.maximum(&(&yb * 0.2)?)?;
                close(&ours, &theirs, 1e-4)?;
                let r = rng.randn(ours.dims(), 0.0, 1.0, &dev)?;
                let (ga, gb) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
                for v in [&x, &w, &bias] {
                    close(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 2e-3)?;
                }
                if super::super::implicit::available() {
                    let g = Geom::from_image(x.dims(), w.dims(), cfg)?;
                    let (xs, ws) = (x.flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?);
                    let direct = conv_implicit(&g, &xs, &ws, None).expect("the implicit path applies").0;
                    close(&Tensor::from_vec(direct, g.grid_shape(), &dev)?, &y, 1e-4)?;
                }
            }
        }
        Ok(())
    }

    #[test]
    fn conv_and_transpose_match_candle() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(1);
        for (cfg, k, hw, nb) in cfgs_batches() {
            for dtype in [DType::F32, DType::F64] {
                let x = rng.randn((nb + 1, 2, hw, hw + 1), 0.0, 1.0, &dev)?.to_dtype(dtype)?;
                let w = rng.randn((4, 2, k, k), 0.0, 1.0, &dev)?.to_dtype(dtype)?;
                let tol = if dtype == DType::F32 { 1e-4 } else { 1e-10 };
                if cfg.output_padding == 0 {
                    close(&conv2d(&x, &w, cfg)?, &x.conv2d(&w, cfg.padding, cfg.stride, 1, 1)?, tol)?;
                }
                let wt = rng.randn((2, 4, k, k), 0.0, 1.0, &dev)?.to_dtype(dtype)?;
                let ours = conv_transpose2d(&x, &wt, cfg)?;
                let theirs = x.conv_transpose2d(&wt, cfg.padding, cfg.output_padding, cfg.stride, 1)?;
                close(&ours, &theirs, tol)?;
            }
        }
        Ok(())
    }

    /// Central differences (f64, eps 1e-5) of L = <r, op(a, b)> against the backward pass,
    /// for both ops and both arguments; then the same for L = <r2, d<r, conv(x, w)>/dx>, a
    /// gradient of a gradient, which goes through the weight-gradient op's own backward.
    #[test]
    fn gradients_match_finite_differences() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(2);
        let eps = 1e-5;
        for (cfg, k, hw, nb) in cfgs_batches() {
            for transpose in [false, true] {
                let x =
                    candle_core::Var::from_tensor(&rng.randn((nb, 2, hw, hw), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)?;
                let w = candle_core::Var::from_tensor(&rng.randn((2, 3, k, k), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)?;
                if !transpose && cfg.output_padding > 0 {
                    continue;
                }
                let f = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
                    if transpose {
                        conv_transpose2d(x, w, cfg)
                    } else {
                        conv2d(x, &w.transpose(0, 1)?.contiguous()?, cfg)
                    }
                };
                let r = rng.randn(f(x.as_tensor(), w.as_tensor())?.dims(), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
                let loss = |x: &Tensor, w: &Tensor| -> Result<f64> { (f(x, w)? * &r)?.sum_all()?.to_scalar::<f64>() };
                let grads = (f(x.as_tensor(), w.as_tensor())? * &r)?.sum_all()?.backward()?;
                for v in [&x, &w] {
                    let an = grads.get(v.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
                    let base = v.as_tensor().flatten_all()?.to_vec1::<f64>()?;
                    for i in (0..base.len()).step_by(base.len() / 13 + 1) {
                        let mut plus = base.clone();
                        plus[i] += eps;
                        let mut minus = base.clone();
                        minus[i] -= eps;
                        let (tp, tm) =
                            (Tensor::from_vec(plus, v.dims(), &dev)?, Tensor::from_vec(minus, v.dims(), &dev)?);
                        let fd = if std::ptr::eq(v, &x) {
                            (loss(&tp, w.as_tensor())? - loss(&tm, w.as_tensor())?) / (2.0 * eps)
                        } else {
                            (loss(x.as_tensor(), &tp)? - loss(x.as_tensor(), &tm)?) / (2.0 * eps)
                        };
                        assert!(
                            (fd - an[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                            "{cfg:?} transpose={transpose}: fd {fd} vs {}",
                            an[i]
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Sizes above the parallel threshold (batches split over threads, cached columns), f32,
    /// forward and both gradients against Candle's kernels.
    #[test]
    fn parallel_paths_match_candle() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(4);
        let cfg = ConvCfg::new(2, 1);
        let x = candle_core::Var::from_tensor(&rng.randn((16, 16, 14, 14), 0.0, 1.0, &dev)?)?;
        let w = candle_core::Var::from_tensor(&rng.randn((32, 16, 4, 4), 0.0, 0.1, &dev)?)?;
        let r = rng.randn((16, 32, 7, 7), 0.0, 1.0, &dev)?;
        let ours = conv2d(&x, &w, cfg)?;
        let theirs = x.conv2d(&w, 1, 2, 1, 1)?;
        close(&ours, &theirs, 1e-3)?;
        let (ga, gb) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
        for v in [&x, &w] {
            close(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 1e-2)?;
        }
        let y = candle_core::Var::from_tensor(&rng.randn((16, 32, 7, 7), 0.0, 1.0, &dev)?)?;
        let wt = candle_core::Var::from_tensor(&rng.randn((32, 16, 4, 4), 0.0, 0.1, &dev)?)?;
        let ours = conv_transpose2d(&y, &wt, cfg)?;
        let theirs = y.conv_transpose2d(&wt, 1, 0, 2, 1)?;
        close(&ours, &theirs, 1e-3)?;
        let r = rng.randn((16, 16, 14, 14), 0.0, 1.0, &dev)?;
        let (ga, gb) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
        for v in [&y, &wt] {
            close(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 1e-2)?;
        }
        Ok(())
    }

    /// The fused-bias ops (and the conv's fused activation) against Candle's conv plus a broadcast
    /// bias and leaky ReLU (values and the gradients of x, w and b, f64), and the bias gradient
    /// against central differences.
    #[test]
    fn fused_bias_matches_candle_and_differences() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(5);
        for (cfg, k, hw, nb) in cfgs_batches() {
            for (transpose, act) in [(false, None), (false, Some(0.0)), (false, Some(0.2)), (true, None)] {
                if !transpose && cfg.output_padding > 0 {
                    continue;
                }
                let v = |rng: &mut Rng, s: &[usize]| -> Result<candle_core::Var> {
                    candle_core::Var::from_tensor(&rng.randn(s, 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)
                };
                let (x, w, b) = (v(&mut rng, &[nb, 3, hw, hw])?, v(&mut rng, &[3, 4, k, k])?, v(&mut rng, &[4])?);
                let ours = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<Tensor> {
                    if transpose {
                        conv_transpose2d_bias(x, w, b, cfg)
                    } else {
                        conv2d_bias_act(x, &w.transpose(0, 1)?.contiguous()?, b, cfg, act)
                    }
                };
                let theirs = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<Tensor> {
                    let y = if transpose {
                        x.conv_transpose2d(w, cfg.padding, cfg.output_padding, cfg.stride, 1)?
                    } else {
                        x.conv2d(&w.transpose(0, 1)?.contiguous()?, cfg.padding, cfg.stride, 1, 1)?
                    };
                    let y = y.broadcast_add(&b.reshape((1, 4, 1, 1))?)?;
                    match act {
                        Some(a) => y.maximum(&(&y * a)?),
                        None => Ok(y),
                    }
                };
                let (yo, yt) = (ours(&x, &w, &b)?, theirs(&x, &w, &b)?);
                close(&yo, &yt, 1e-10)?;
                let r = rng.randn(yo.dims(), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
                let (go, gt) = ((&yo * &r)?.sum_all()?.backward()?, (&yt * &r)?.sum_all()?.backward()?);
                for p in [&x, &w, &b] {
                    close(go.get(p.as_tensor()).unwrap(), gt.get(p.as_tensor()).unwrap(), 1e-9)?;
                }
                let db = go.get(b.as_tensor()).unwrap().to_vec1::<f64>()?;
                for (i, &an) in db.iter().enumerate() {
                    let at = |d: f64| -> Result<f64> {
                        let mut bv = b.as_tensor().to_vec1::<f64>()?;
                        bv[i] += d;
                        (ours(&x, &w, &Tensor::new(bv, &dev)?)? * &r)?.sum_all()?.to_scalar::<f64>()
                    };
                    let fd = (at(1e-5)? - at(-1e-5)?) / 2e-5;
                    assert!((fd - an).abs() < 1e-6 * (1.0 + fd.abs()), "bias {i}: fd {fd} vs {an}");
                }
            }
        }
        let x = Tensor::zeros((1, 2, 5, 5), DType::F32, &dev)?;
        let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &dev)?;
        assert!(conv2d_bias(&x, &w, &Tensor::zeros(3, DType::F32, &dev)?, ConvCfg::new(1, 0)).is_err());
        assert!(conv2d_bias_act(&x, &w, &Tensor::zeros(4, DType::F32, &dev)?, ConvCfg::new(1, 0), Some(2.0)).is_err());
        Ok(())
    }

    /// A first layer on images (1 channel, 28x28: the per-item GEMM path) with a fused bias and
    /// activation, forward and all gradients against Candle's kernels.
    #[test]
    fn per_item_path_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(6);
        let cfg = ConvCfg::new(2, 1);
        let x = candle_core::Var::from_tensor(&rng.randn((8, 1, 28, 28), 0.0, 1.0, &dev)?)?;
        let w = candle_core::Var::from_tensor(&rng.randn((16, 1, 4, 4), 0.0, 0.3, &dev)?)?;
        let b = candle_core::Var::from_tensor(&rng.randn(16, 0.0, 0.3, &dev)?)?;
        let ours = conv2d_bias_act(&x, &w, &b, cfg, Some(0.2))?;
        let y = x.conv2d(&w, 1, 2, 1, 1)?.broadcast_add(&b.reshape((1, 16, 1, 1))?)?;
        let theirs = y.maximum(&(&y * 0.2)?)?;
        close(&ours, &theirs, 1e-4)?;
        let r = rng.randn((8, 16, 14, 14), 0.0, 1.0, &dev)?;
        let (ga, gb) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
        for v in [&x, &w, &b] {
            close(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 1e-3)?;
        }
        Ok(())
    }

    #[test]
    fn weight_gradient_op_has_exact_adjoints() -> Result<()> {
        // <r, wgrad(x, y)> = <y, conv(x, r)> = <x, conv_t(y, r)> for all x, y, r.
        let dev = Device::Cpu;
        let mut rng = Rng::new(3);
        let cfg = ConvCfg::new(2, 1);
        let dot = |a: &Tensor, b: &Tensor| -> Result<f64> { (a * b)?.sum_all()?.to_scalar::<f64>() };
        // A small layer (batch-major columns), and a few-tap layer whose products run per item
        // (batch 11: weight-gradient chunks of 8 and 3 items).
        for (xs, ws, per_item) in [([2, 3, 7, 7], [4, 3, 4, 4], false), ([11, 2, 16, 16], [3, 2, 4, 4], true)] {
            let g = Geom::from_image(&xs, &ws, cfg)?;
            assert_eq!(g.per_item(), per_item);
            let x = rng.randn(&xs[..], 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
            let y = rng.randn(g.grid_shape(), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
            let r = rng.randn(&ws[..], 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
            let a = dot(&r, &op(&x, &y, g, Kind::WGrad)?)?;
            let b = dot(&y, &op(&x, &r, g, Kind::Conv)?)?;
            let c = dot(&x, &op(&y, &r, g, Kind::ConvT)?)?;
            let tol = 1e-9 * a.abs().max(1.0);
            assert!((a - b).abs() < tol && (a - c).abs() < tol, "{xs:?}: {a} {b} {c}");
        }
        Ok(())
    }

    #[test]
    fn few_tap_layers_match_candle() -> Result<()> {
        // Conv, transposed conv (bias fused) and all gradients of the per-item paths, batch 20
        // (weight-gradient chunks of 8, 8 and 4 items), against Candle.
        let dev = Device::Cpu;
        let mut rng = Rng::new(8);
        let cfg = ConvCfg::new(2, 1);
        assert!(Geom::from_image(&[20, 2, 28, 28], &[6, 2, 4, 4], cfg)?.per_item());
        let x = candle_core::Var::from_tensor(&rng.randn((20, 2, 28, 28), 0.0, 1.0, &dev)?)?;
        let w = candle_core::Var::from_tensor(&rng.randn((6, 2, 4, 4), 0.0, 0.3, &dev)?)?;
        let b = candle_core::Var::from_tensor(&rng.randn(6, 0.0, 0.3, &dev)?)?;
        let ours = conv2d_bias(&x, &w, &b, cfg)?;
        let theirs = x.conv2d(&w, 1, 2, 1, 1)?.broadcast_add(&b.reshape((1, 6, 1, 1))?)?;
        close(&ours, &theirs, 1e-4)?;
        let r = rng.randn((20, 6, 14, 14), 0.0, 1.0, &dev)?;
        let (ga, gb) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
        for v in [&x, &w, &b] {
            close(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 1e-3)?;
        }
        // conv_t: grid (20, 6, 14, 14) -> image (20, 2, 28, 28), weight (6, 2, 4, 4).
        let y = candle_core::Var::from_tensor(&rng.randn((20, 6, 14, 14), 0.0, 1.0, &dev)?)?;
        let c = candle_core::Var::from_tensor(&rng.randn(2, 0.0, 0.3, &dev)?)?;
        let ours = conv_transpose2d_bias(&y, &w, &c, cfg)?;
        let theirs = y.conv_transpose2d(&w, 1, 0, 2, 1)?.broadcast_add(&c.reshape((1, 2, 1, 1))?)?;
        close(&ours, &theirs, 1e-4)?;
        let r = rng.randn((20, 2, 28, 28), 0.0, 1.0, &dev)?;
        let (ga, gb) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
        for v in [&y, &w, &c] {
            close(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 1e-3)?;
        }
        Ok(())
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 5, 5), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &dev).unwrap();
        assert!(conv2d(&x, &w, ConvCfg::new(1, 0)).is_err());
        let w = Tensor::zeros((4, 2, 7, 7), DType::F32, &dev).unwrap();
        assert!(conv2d(&x, &w, ConvCfg::new(1, 0)).is_err());
    }
}
