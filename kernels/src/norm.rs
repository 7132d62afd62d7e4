//! Training-mode batch normalisation as one fused op with the closed-form backward
//! (Ioffe & Szegedy 2015, eq. in Sec. 3), instead of about ten broadcast ops and strided
//! reductions in Candle.

use super::{Timer, bcs, fast, second_order, slice};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType, bail};

/// Per-channel batch mean and biased variance of x (B, C, ...), as constants (no gradient),
/// in x's dtype. Two passes (mean, then centred squares) accumulated in f64.
pub fn batch_moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, c, s) = bcs(x.dims())?;
    if !matches!(x.device(), candle_core::Device::Cpu) {
        // On a GPU the same two passes stay on the device (a host copy per layer would stall it).
        let dt = x.dtype();
        let x = x.detach().to_dtype(candle_core::DType::F64)?.reshape((b, c, s))?;
        let mean = x.mean_keepdim(2)?.mean_keepdim(0)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
        return Ok((mean.flatten_all()?.to_dtype(dt)?, var.flatten_all()?.to_dtype(dt)?));
    }
    let x = x.detach().contiguous()?.to_device(&candle_core::Device::Cpu)?;
    let (mean, var) = match x.dtype() {
        candle_core::DType::F64 => moments(&x.flatten_all()?.to_vec1::<f64>()?, b, c, s),
        _ => moments(&x.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?, b, c, s),
    };
    let t = |v: Vec<f64>| Tensor::from_vec(v, c, &candle_core::Device::Cpu)?.to_dtype(x.dtype());
    Ok((t(mean)?, t(var)?))
}

fn moments<T: WithDType>(x: &[T], b: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (b * s) as f64;
    let mean: Vec<f64> = super::channel_sum(x, (b, c, s)).into_iter().map(|v| v / n).collect();
    let var = super::channel_dot(x, x, &mean, &mean, (b, c, s));
    (mean, var.into_iter().map(|v| v / n).collect())
}

/// gamma · (x − mean) / sqrt(var + eps) + beta with the batch's per-channel mean and biased
/// variance, gradients flowing through the statistics, followed by a leaky ReLU of slope `act`
/// when given (0: ReLU) in the same pass; also returns (mean, var) as constants. `None` when the
/// fused CPU kernel does not apply (another device or dtype, or second-order gradients
/// requested): compose Candle's ops.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Option<f64>,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    if !fast(&[x, gamma, beta]) || second_order() {
        return Ok(None);
    }
    let c = x.dim(1)?;
    if gamma.dims() != [c] || beta.dims() != [c] || eps <= 0.0 || act.is_some_and(|a| !(0.0..=1.0).contains(&a)) {
        bail!(
            "batch_norm: gamma {:?}, beta {:?}, eps {eps}, activation slope {act:?} for input {:?}",
            gamma.dims(),
            beta.dims(),
            x.dims()
        );
    }
    let moments = std::sync::Arc::new(std::sync::Mutex::new(None));
    let y = x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BatchNorm { eps, act, moments: moments.clone() },
    )?;
    let Some((mean, var)) = moments.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        bail!("batch_norm: the fused kernel left no statistics");
    };
    let t = |v: Vec<f64>| Tensor::from_vec(v, c, x.device())?.to_dtype(x.dtype());
    Ok(Some((y, t(mean)?, t(var)?)))
}

struct BatchNorm {
    eps: f64,
    /// Leaky-ReLU slope applied to the output (the activation that follows most BN layers, fused:
    /// one graph node, pass and buffer fewer; its mask is read back from the output's sign).
    act: Option<f64>,
    /// The forward pass's (mean, var), reused by the backward pass (saves two passes over x).
    moments: std::sync::Arc<std::sync::Mutex<Option<Moments>>>,
}

type Moments = (Vec<f64>, Vec<f64>);

/// Per channel: scale = gamma / sqrt(var + eps), shift = beta − mean · scale, so y = x·scale + shift.
fn normalise<T: WithDType>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    act: Option<f64>,
    (b, c, s): (usize, usize, usize),
) -> (Vec<T>, Moments) {
    let (mean, var) = moments(x, b, c, s);
    let scale: Vec<f64> = (0..c).map(|i| gamma[i].to_f64() / (var[i] + eps).sqrt()).collect();
    let shift: Vec<T> = (0..c).map(|i| T::from_f64(beta[i].to_f64() - mean[i] * scale[i])).collect();
    let scale: Vec<T> = scale.into_iter().map(T::from_f64).collect();
    (super::channel_affine(x, &scale, None, &shift, (b, c, s), act), (mean, var))
}

/// dx = gamma·inv/N · (N·dy − Σdy − x̂·Σ(dy·x̂)), dgamma = Σ(dy·x̂), dbeta = Σdy (sums per channel).
/// dx = gamma·inv/N · (N·dy − Σdy − x̂·Σ(dy·x̂)), dgamma = Σ(dy·x̂), dbeta = Σdy (sums per channel),
/// where dy is `grad` taken back through the fused activation first (mask read from the output
/// `res`). Two passes: the masked gradient and both sums together, then dx.
#[allow(clippy::too_many_arguments)]
fn backward<T: WithDType>(
    x: &[T],
    gamma: &[T],
    grad: &[T],
    act: Option<(&[T], f64)>,
    eps: f64,
    (b, c, s): (usize, usize, usize),
    cached: Option<Moments>,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (mean, var) = cached.unwrap_or_else(|| moments(x, b, c, s));
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (dy, sum_dy, sum_dy_xc) = grad_sums(x, grad, act, &mean, (b, c, s));
    let sum_dy_xhat: Vec<f64> = sum_dy_xc.iter().zip(&inv).map(|(v, i)| v * i).collect();
    let n = (b * s) as f64;
    // dx = k1·dy + k2·x + k3 per channel, with x̂ = (x − mean)·inv expanded.
    let k1: Vec<f64> = (0..c).map(|i| gamma[i].to_f64() * inv[i]).collect();
    let k2: Vec<f64> = (0..c).map(|i| -k1[i] * inv[i] * sum_dy_xhat[i] / n).collect();
    let k3: Vec<f64> = (0..c).map(|i| -k1[i] * sum_dy[i] / n - k2[i] * mean[i]).collect();
    let cast = |v: &[f64]| v.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
    let dx = super::channel_affine(&dy, &cast(&k1), Some((x, &cast(&k2))), &cast(&k3), (b, c, s), None);
    (dx, cast(&sum_dy_xhat), cast(&sum_dy))
}

/// dy = grad through the activation (a copy of grad without one), and per channel Σdy and
/// Σ(x − mean)·dy, in one pass; sums in f64, added in batch order (same result on every run).
fn grad_sums<T: WithDType>(
    x: &[T],
    grad: &[T],
    act: Option<(&[T], f64)>,
    mean: &[f64],
    (_, c, s): (usize, usize, usize),
) -> (Vec<T>, Vec<f64>, Vec<f64>) {
    use rayon::prelude::*;
    let mut dy = super::uninit(grad.len());
    let row = |(bi, dy): (usize, &mut [T])| -> Vec<f64> {
        let o = bi * c * s;
        let (xr, gr) = (&x[o..o + c * s], &grad[o..o + c * s]);
        match act {
            Some((res, slope)) => {
                let (rr, a) = (&res[o..o + c * s], T::from_f64(slope));
                dy.iter_mut()
                    .zip(gr.iter().zip(rr))
                    .for_each(|(d, (&g, &r))| *d = g * if r > T::zero() { T::one() } else { a });
            }
            None => dy.copy_from_slice(gr),
        }
        let mut sums = vec![0.0; 2 * c];
        if s == 1 {
            // (B, C) rows (after a linear layer): one element per channel, summed across the row.
            let (sd, sx) = sums.split_at_mut(c);
            sd.iter_mut().zip(dy.iter()).for_each(|(a, d)| *a = d.to_f64());
            sx.iter_mut()
                .zip(xr.iter().zip(dy.iter()).zip(mean))
                .for_each(|(a, ((x, d), m))| *a = (x.to_f64() - m) * d.to_f64());
            return sums;
        }
        for ci in 0..c {
            let (xs, ds) = (&xr[ci * s..][..s], &dy[ci * s..][..s]);
            let m = mean[ci];
            sums[ci] = super::lane_sum(ds, |v| v.to_f64());
            sums[c + ci] = super::lane_sum2(xs, ds, |x, d| (x.to_f64() - m) * d.to_f64());
        }
        sums
    };
    let rows: Vec<Vec<f64>> = if grad.len() < super::PAR_MIN || c * s == 0 {
        dy.chunks_mut((c * s).max(1)).enumerate().map(row).collect()
    } else {
        dy.par_chunks_mut(c * s).enumerate().map(row).collect()
    };
    let mut acc = vec![0.0; 2 * c];
    for r in rows {
        acc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
    }
    let dot = acc.split_off(c);
    (dy, acc, dot)
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "ganfold-batch-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = bcs(l1.dims())?;
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-batch-norm"));
        let (out, m) = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(b)) => {
                let (y, m) = normalise(slice(x, l1)?, slice(g, l2)?, slice(b, l3)?, self.eps, self.act, d);
                (CpuStorage::F32(y), m)
            }
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(b)) => {
                let (y, m) = normalise(slice(x, l1)?, slice(g, l2)?, slice(b, l3)?, self.eps, self.act, d);
                (CpuStorage::F64(y), m)
            }
            _ => bail!("ganfold-batch-norm: only f32 and f64, alike"),
        };
        *self.moments.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = bcs(x.dims())?;
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-batch-norm-backward"));
        let grad = grad.contiguous()?;
        let (x, gamma, res) = (x.contiguous()?, gamma.contiguous()?, res.contiguous()?);
        let dev = x.device().clone();
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = gamma.storage_and_layout();
        let (ds, dl) = grad.storage_and_layout();
        let (rs, rl) = res.storage_and_layout();
        let cached = self.moments.lock().unwrap_or_else(|e| e.into_inner()).clone();
        use candle_core::Storage::Cpu;
        // Through the activation first: the output is positive exactly where its input is.
        macro_rules! go {
            ($x:expr, $g:expr, $dy:expr, $r:expr) => {{
                let act = match self.act {
                    Some(slope) => Some((slice($r, rl)?, slope)),
                    None => None,
                };
                let (dx, dg, db) =
                    backward(slice($x, xl)?, slice($g, gl)?, slice($dy, dl)?, act, self.eps, d, cached.clone());
                (
                    Tensor::from_vec(dx, grad.shape(), &dev)?,
                    Tensor::from_vec(dg, d.1, &dev)?,
                    Tensor::from_vec(db, d.1, &dev)?,
                )
            }};
        }
        let (dx, dg, db) = match (&*xs, &*gs, &*ds, &*rs) {
            (Cpu(CpuStorage::F32(x)), Cpu(CpuStorage::F32(g)), Cpu(CpuStorage::F32(dy)), Cpu(CpuStorage::F32(r))) => {
                go!(x, g, dy, r)
            }
            (Cpu(CpuStorage::F64(x)), Cpu(CpuStorage::F64(g)), Cpu(CpuStorage::F64(dy)), Cpu(CpuStorage::F64(r))) => {
                go!(x, g, dy, r)
            }
            _ => bail!("ganfold-batch-norm: backward needs CPU f32 or f64 tensors, alike"),
        };
        Ok((Some(dx), Some(dg), Some(db)))
    }
}
