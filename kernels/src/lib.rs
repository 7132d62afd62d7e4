//! # ganfold-kernels
//!
//! Tensor operations whose CPU implementation ganfold controls. `ganfold_core::nn`'s layers
//! call these instead of Candle's methods, so every plugin gets the fast kernels without calling
//! them itself. On CPU, for f32 and f64, each op is a Candle `CustomOp` with its own backward:
//! convolutions as GEMMs over the whole batch ([`conv2d`], ...), per-channel bias, (leaky) ReLU
//! and training-mode batch normalisation as single passes without Candle's broadcast and strided
//! reductions, which dominated the profile of the DCGAN step. Elsewhere (CUDA, other dtypes) the
//! same functions compose Candle's ops. On AVX-512 CPUs the transposed convolution fuses its
//! col2im into the GEMM, and the forward convolution reads the image in place (`implicit`).
//!
//! The environment switches are read once, on first use ([`switches`]):
//! - `GANFOLD_KERNELS=candle`: Candle's ops everywhere (before/after comparisons, bisecting a
//!   numerical difference);
//! - `GANFOLD_IMPLICIT=0`: no implicit (column-free) convolutions, column matrix + GEMM instead;
//! - `GANFOLD_PROFILE=1`: per-kernel wall time ([`profile`], printed by `ganfold bench`);
//! - `CANDLE_GRAD_DO_NOT_DETACH` (Candle's own, same parsing): second-order gradients asked for.

mod conv;
mod implicit;
mod linear;
mod norm;
mod pointwise;
pub mod runtime;
#[cfg(test)]
mod test_rng;

pub use conv::{conv_transpose2d, conv_transpose2d_bias, conv2d, conv2d_bias, conv2d_bias_act};
pub use linear::linear;
pub use norm::{batch_moments, batch_norm_train};
pub use pointwise::{bias_add, leaky_relu, relu};

use candle_core::{DType, DeviceLocation, Error, Layout, Result, Tensor, WithDType};

/// The environment switches, read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switches {
    /// `GANFOLD_KERNELS=candle`: Candle's own ops everywhere.
    pub candle_only: bool,
    /// Implicit (column-free) convolutions allowed; `GANFOLD_IMPLICIT=0` turns them off.
    pub implicit: bool,
    /// `GANFOLD_PROFILE=1`: collect per-kernel wall time.
    pub profile: bool,
    /// Gradients of gradients asked for (`CANDLE_GRAD_DO_NOT_DETACH`). Ops whose fused backward
    /// is not itself differentiable (batch norm) then compose Candle's ops instead, so
    /// second-order terms are never silently dropped.
    pub second_order: bool,
}

impl Switches {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok();
        Self {
            candle_only: var("GANFOLD_KERNELS").is_some_and(|v| v == "candle"),
            implicit: var("GANFOLD_IMPLICIT").is_none_or(|v| v != "0"),
            profile: var("GANFOLD_PROFILE").is_some_and(|v| v == "1"),
            second_order: var("CANDLE_GRAD_DO_NOT_DETACH").is_some_and(|s| !s.is_empty() && s != "0"),
        }
    }
}

/// The switches of this process (read from the environment on the first call).
pub fn switches() -> &'static Switches {
    static S: std::sync::OnceLock<Switches> = std::sync::OnceLock::new();
    S.get_or_init(Switches::from_env)
}

/// `GANFOLD_KERNELS=candle` forces Candle's own kernels.
pub fn candle_kernels_forced() -> bool {
    switches().candle_only
}

/// Whether gradients of gradients were asked for ([`Switches::second_order`]).
pub fn second_order() -> bool {
    switches().second_order
}

/// Convolution hyper-parameters (square kernels).
#[derive(Clone, Copy, Debug)]
pub struct ConvCfg {
    pub stride: usize,
    pub padding: usize,
    /// Only used by transposed convolutions.
    pub output_padding: usize,
}

impl ConvCfg {
    pub const fn new(stride: usize, padding: usize) -> Self {
        Self { stride, padding, output_padding: 0 }
    }
}

/// The dispatch rule of every op here: whether the fused CPU kernels serve tensors of `dtype`
/// on `location`. Only CPU f32 and f64 are fused; everything else (CUDA, Metal, other dtypes)
/// composes Candle's ops, which have kernels on every device, so no CPU-only op is reachable
/// from a CUDA step (`tests/dispatch.rs` checks each op's call site against this rule).
pub fn fused(location: DeviceLocation, dtype: DType) -> bool {
    !candle_kernels_forced() && matches!(location, DeviceLocation::Cpu) && matches!(dtype, DType::F32 | DType::F64)
}

/// True when the fused CPU kernels apply to all of `ts` ([`fused`], one dtype).
fn fast(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.dtype() == ts[0].dtype() && fused(t.device().location(), t.dtype()))
}

/// The contiguous elements of a CPU storage slice described by `l`.
fn slice<'a, T>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => Err(Error::RequiresContiguous { op: "ganfold-op" }.bt()),
    }
}

/// (B, C, S): batch, channel (dim 1) and the product of the remaining dims.
fn bcs(dims: &[usize]) -> Result<(usize, usize, usize)> {
    if dims.len() < 2 {
        candle_core::bail!("expected a (B, C, ...) tensor, got shape {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Σ_b f(b) of per-batch-row vectors of length `c`, rows computed in parallel for large inputs
/// and always added in index order, so results do not depend on thread scheduling (same seed,
/// same run).
fn sum_rows(b: usize, numel: usize, c: usize, f: impl Fn(usize) -> Vec<f64> + Sync + Send) -> Vec<f64> {
    use rayon::prelude::*;
    let rows: Vec<Vec<f64>> =
        if numel < PAR_MIN { (0..b).map(f).collect() } else { (0..b).into_par_iter().map(f).collect() };
    let mut acc = vec![0.0; c];
    for r in rows {
        acc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
    }
    acc
}

/// Σ f(x_i) in f64 over 8 interleaved accumulators combined in a fixed order: vectorises (one
/// serial f64 chain ran at a third of memory speed) and gives the same result on every run.
#[inline]
fn lane_sum<T: WithDType>(x: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for j in 0..8 {
            acc[j] += f(c[j]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Σ f(x_i, y_i), as [`lane_sum`].
#[inline]
fn lane_sum2<T: WithDType>(x: &[T], y: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f64; 8];
    let (cx, cy) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f64 = cx.remainder().iter().zip(cy.remainder()).map(|(&a, &b)| f(a, b)).sum();
    for (a, b) in cx.zip(cy) {
        for j in 0..8 {
            acc[j] += f(a[j], b[j]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Per channel, Σ over batch and space of (x − mx[c])·(y − my[c]), in f64 and a fixed order.
/// With `s == 1` (the (B, C) output of a linear layer) a row is summed across channels at once.
fn channel_dot<T: WithDType>(x: &[T], y: &[T], mx: &[f64], my: &[f64], (b, c, s): (usize, usize, usize)) -> Vec<f64> {
    let row = |bi: usize| -> Vec<f64> {
        let (xr, yr) = (&x[bi * c * s..][..c * s], &y[bi * c * s..][..c * s]);
        if s == 1 {
            (0..c).map(|i| (xr[i].to_f64() - mx[i]) * (yr[i].to_f64() - my[i])).collect()
        } else {
            (0..c)
                .map(|i| {
                    lane_sum2(&xr[i * s..][..s], &yr[i * s..][..s], |a, b| (a.to_f64() - mx[i]) * (b.to_f64() - my[i]))
                })
                .collect()
        }
    };
    sum_rows(b, x.len(), c, row)
}

/// Per channel, Σ over batch and space of x, in f64 and a fixed order.
fn channel_sum<T: WithDType>(x: &[T], (b, c, s): (usize, usize, usize)) -> Vec<f64> {
    let row = |bi: usize| -> Vec<f64> {
        let xr = &x[bi * c * s..][..c * s];
        if s == 1 {
            xr.iter().map(|v| v.to_f64()).collect()
        } else {
            (0..c).map(|i| lane_sum(&xr[i * s..][..s], |v| v.to_f64())).collect()
        }
    };
    sum_rows(b, x.len(), c, row)
}

/// out = x·a[c] + y·k[c] + o[c] per channel (y and k optional), over (B, C, S) arrays; with
/// `act` (only without y), a leaky ReLU of that slope in the same pass (after batch norm).
fn channel_affine<T: WithDType>(
    x: &[T],
    a: &[T],
    y: Option<(&[T], &[T])>,
    o: &[T],
    (_, c, s): (usize, usize, usize),
    act: Option<f64>,
) -> Vec<T> {
    let mut out = uninit(x.len());
    let slope = T::from_f64(act.unwrap_or(1.0));
    let leaky = move |t: T| t * if t > T::zero() { T::one() } else { slope };
    let row = |(bi, out): (usize, &mut [T])| {
        let xr = &x[bi * c * s..][..c * s];
        match (y, s) {
            (None, 1) if act.is_some() => {
                out.iter_mut().zip(xr).zip(a.iter().zip(o)).for_each(|((d, &x), (&a, &o))| *d = leaky(x * a + o))
            }
            (None, _) if act.is_some() => {
                out.chunks_mut(s).zip(xr.chunks(s)).zip(a.iter().zip(o)).for_each(|((d, x), (&a, &o))| {
                    d.iter_mut().zip(x).for_each(|(d, &x)| *d = leaky(x * a + o));
                })
            }
            (None, 1) => out.iter_mut().zip(xr).zip(a.iter().zip(o)).for_each(|((d, &x), (&a, &o))| *d = x * a + o),
            (Some((y, k)), 1) => {
                let yr = &y[bi * c..][..c];
                out.iter_mut()
                    .zip(xr.iter().zip(yr))
                    .zip(a.iter().zip(k).zip(o))
                    .for_each(|((d, (&x, &y)), ((&a, &k), &o))| *d = x * a + y * k + o)
            }
            (None, _) => out.chunks_mut(s).zip(xr.chunks(s)).zip(a.iter().zip(o)).for_each(|((d, x), (&a, &o))| {
                d.iter_mut().zip(x).for_each(|(d, &x)| *d = x * a + o);
            }),
            (Some((y, k)), _) => {
                let yr = &y[bi * c * s..][..c * s];
                out.chunks_mut(s).zip(xr.chunks(s).zip(yr.chunks(s))).zip(a.iter().zip(k).zip(o)).for_each(
                    |((d, (x, y)), ((&a, &k), &o))| {
                        d.iter_mut().zip(x.iter().zip(y)).for_each(|(d, (&x, &y))| *d = x * a + y * k + o);
                    },
                )
            }
        }
    };
    use rayon::prelude::*;
    if x.len() < PAR_MIN || c * s == 0 {
        out.chunks_mut(c * s).enumerate().for_each(row);
    } else {
        out.par_chunks_mut(c * s).enumerate().for_each(row);
    }
    out
}

/// dst (m, n; row stride `ds`) (+)= lhs (m, k) · rhs (k, n); strides are (row, column) in
/// elements. Split over the thread pool it runs in.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: WithDType>(
    dst: &mut [T],
    ds: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: &[T],
    ls: (usize, usize),
    rhs: &[T],
    rs: (usize, usize),
    accumulate: bool,
) {
    assert!(m > 0 && n > 0 && k > 0 && ds >= n);
    assert!(
        dst.len() >= (m - 1) * ds + n
            && lhs.len() > (m - 1) * ls.0 + (k - 1) * ls.1
            && rhs.len() > (k - 1) * rs.0 + (n - 1) * rs.1
    );
    // Inside a parallel loop over batch items (`SERIAL_GEMM`) each GEMM stays on its thread.
    let threads = if SERIAL_GEMM.with(|c| c.get()) { 1 } else { rayon::current_num_threads() };
    let par =
        if threads > 1 && m * n * k > 1 << 15 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserted extents put every element the GEMM touches inside the three slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ds as isize,
            accumulate,
            lhs.as_ptr(),
            ls.1 as isize,
            ls.0 as isize,
            rhs.as_ptr(),
            rs.1 as isize,
            rs.0 as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

thread_local! {
    /// Set while a kernel runs one small GEMM per batch item in parallel.
    static SERIAL_GEMM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`gemm_into`] single-threaded on this thread.
fn serial_gemm<R>(f: impl FnOnce() -> R) -> R {
    SERIAL_GEMM.with(|c| c.set(true));
    let r = f();
    SERIAL_GEMM.with(|c| c.set(false));
    r
}

/// A buffer every element of which is written before it is read (GEMM output with
/// `read_dst = false`, element-wise outputs).
pub(crate) fn uninit<T: WithDType>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32/f64 have no invalid bit patterns, and callers overwrite all n elements before
    // reading any (gemm_into with accumulate = false writes the whole m x n destination).
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(n)
    };
    v
}

/// Work below this many elements stays on the calling thread (rayon's overhead dominates).
const PAR_MIN: usize = 1 << 15;

/// Per-kernel wall time, collected when `GANFOLD_PROFILE=1` (printed by `ganfold bench`).
pub mod profile {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Instant;

    static TABLE: Mutex<BTreeMap<&'static str, (u64, f64)>> = Mutex::new(BTreeMap::new());

    pub fn enabled() -> bool {
        super::switches().profile
    }

    /// Runs `f`, adding its wall time to `name` when profiling.
    pub fn timed<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
        if !enabled() {
            return f();
        }
        let t = Instant::now();
        let r = f();
        add(name, t.elapsed().as_secs_f64());
        r
    }

    pub fn add(name: &'static str, seconds: f64) {
        let mut tab = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let e = tab.entry(name).or_default();
        e.0 += 1;
        e.1 += seconds;
    }

    /// (name, calls, seconds), and clears the table.
    pub fn take() -> Vec<(&'static str, u64, f64)> {
        let mut tab = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let v = tab.iter().map(|(k, (n, s))| (*k, *n, *s)).collect();
        tab.clear();
        v
    }
}

/// Adds its lifetime to the profile under `name` (for kernels with early returns).
struct Timer(&'static str, std::time::Instant);

impl Timer {
    fn new(name: &'static str) -> Self {
        Timer(name, std::time::Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        profile::add(self.0, self.1.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    //! The fused pointwise and batch-norm ops against Candle's composed ops (values and
    //! gradients) and against central differences (f64, eps 1e-5).
    use super::*;
    use crate::test_rng::Rng;
    use candle_core::Device;
    use candle_core::Var;

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Checks d<r, f(args)>/d args against central differences at a few coordinates of each arg.
    fn fd_check(args: &[Var], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) -> Result<()> {
        let eps = 1e-5;
        let ts: Vec<Tensor> = args.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&ts)?;
        let r = Rng::new(9).randn(out.dims(), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
        let loss = |ts: &[Tensor]| -> Result<f64> { (f(ts)? * &r)?.sum_all()?.to_scalar::<f64>() };
        let grads = (out * &r)?.sum_all()?.backward()?;
        for (i, v) in args.iter().enumerate() {
            let an =
                grads.get(v.as_tensor()).expect("gradient reaches every argument").flatten_all()?.to_vec1::<f64>()?;
            let base = v.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            for j in (0..base.len()).step_by(base.len() / 11 + 1) {
                let at = |d: f64| -> Result<f64> {
                    let mut b = base.clone();
                    b[j] += d;
                    let mut ts2 = ts.clone();
                    ts2[i] = Tensor::from_vec(b, v.dims(), &Device::Cpu)?;
                    loss(&ts2)
                };
                let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
                assert!(
                    (fd - an[j]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "arg {i} element {j}: fd {fd} vs analytic {}",
                    an[j]
                );
            }
        }
        Ok(())
    }

    fn var(rng: &mut Rng, shape: &[usize], mean: f64) -> Result<Var> {
        Var::from_tensor(&rng.randn(shape, mean, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?)
    }

    #[test]
    fn bias_add_and_leaky_relu_match_candle_and_differences() -> Result<()> {
        let mut rng = Rng::new(1);
        for shape in [vec![5, 3], vec![4, 3, 5, 6], vec![64, 32, 9, 9], vec![64, 600]] {
            let x = var(&mut rng, &shape, 0.0)?;
            let b = var(&mut rng, &[shape[1]], 0.0)?;
            let mut s = vec![1; shape.len()];
            s[1] = shape[1];
            let ours = bias_add(&x, &b)?;
            assert!(max_diff(&ours, &x.broadcast_add(&b.reshape(s)?)?) < 1e-12);
            for slope in [0.0, 0.2] {
                let ours = leaky_relu(&x, slope)?;
                assert!(max_diff(&ours, &x.maximum(&(x.as_tensor() * slope)?)?) < 1e-12);
            }
            if shape[0] < 64 {
                fd_check(&[x.clone(), b.clone()], &|t| leaky_relu(&bias_add(&t[0], &t[1])?, 0.2))?;
            }
        }
        Ok(())
    }

    #[test]
    fn batch_norm_matches_composed_ops_and_differences() -> Result<()> {
        let mut rng = Rng::new(2);
        for shape in [vec![6, 4], vec![5, 3, 4, 4], vec![64, 16, 14, 14], vec![64, 600]] {
            let c = shape[1];
            let x = var(&mut rng, &shape, 0.5)?;
            let gamma = var(&mut rng, &[c], 1.0)?;
            let beta = var(&mut rng, &[c], 0.0)?;
            for act in [None, Some(0.0), Some(0.2)] {
                let fused = |t: &[Tensor]| -> Result<Tensor> {
                    Ok(batch_norm_train(&t[0], &t[1], &t[2], 1e-5, act)?.expect("CPU f64 takes the fused path").0)
                };
                // Composed reference: statistics over all dims but 1, in the graph, then Candle's
                // leaky ReLU.
                let composed = |t: &[Tensor]| -> Result<Tensor> {
                    let mut dims: Vec<usize> = (0..t[0].rank()).filter(|&d| d != 1).collect();
                    dims.reverse();
                    let mut s = vec![1; t[0].rank()];
                    s[1] = c;
                    let mut mean = t[0].clone();
                    for &d in &dims {
                        mean = mean.mean_keepdim(d)?;
                    }
                    let cen = t[0].broadcast_sub(&mean)?;
                    let mut var = cen.sqr()?;
                    for &d in &dims {
                        var = var.mean_keepdim(d)?;
                    }
                    let y = cen
                        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
                        .broadcast_mul(&t[1].reshape(s.clone())?)?
                        .broadcast_add(&t[2].reshape(s)?)?;
                    match act {
                        Some(a) => y.maximum(&(&y * a)?),
                        None => Ok(y),
                    }
                };
                let args = [x.clone(), gamma.clone(), beta.clone()];
                let ts: Vec<Tensor> = args.iter().map(|v| v.as_tensor().clone()).collect();
                let (yf, yc) = (fused(&ts)?, composed(&ts)?);
                assert!(max_diff(&yf, &yc) < 1e-10);
                let r = rng.randn(shape.as_slice(), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
                let (gf, gc) = ((yf * &r)?.sum_all()?.backward()?, (yc * &r)?.sum_all()?.backward()?);
                for v in &args {
                    assert!(
                        max_diff(gf.get(v.as_tensor()).unwrap(), gc.get(v.as_tensor()).unwrap()) < 1e-9,
                        "{shape:?} act {act:?}"
                    );
                }
                if shape[0] < 64 {
                    fd_check(&args, &fused)?;
                }
            }
            let (m, v) = batch_moments(x.as_tensor())?;
            assert_eq!(m.dims(), [c]);
            assert!(v.to_vec1::<f64>()?.iter().all(|&v| v > 0.0));
        }
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(bias_add(&x, &Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap()).is_err());
        assert!(leaky_relu(&x, 1.5).is_err());
        let g = Tensor::ones(2, DType::F32, &Device::Cpu).unwrap();
        assert!(batch_norm_train(&x, &g, &g, 1e-5, None).is_err());
        let g3 = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
        assert!(batch_norm_train(&x, &g3, &g3, 1e-5, Some(-0.1)).is_err());
        assert!(batch_moments(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()).is_err());
    }
}
