//! Training-mode batch normalisation as one fused op with the closed-form backward
//! (Ioffe & Szegedy 2015, eq. in Sec. 3), instead of about ten broadcast ops and strided
//! reductions in Candle.

use super::pointwise::channel_sums;
use super::{PAR_MIN, Timer, bcs, fast, second_order, slice, uninit};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType, bail};
use rayon::prelude::*;

/// Per-channel batch mean and biased variance of x (B, C, ...), as constants (no gradient),
/// in x's dtype. Two passes (mean, then centred squares) accumulated in f64.
pub fn batch_moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, c, s) = bcs(x.dims())?;
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
    let mean: Vec<f64> = channel_sums(x, b, c, s).into_iter().map(|v| v / n).collect();
    let sq = |bi: usize| -> Vec<f64> {
        (0..c)
            .map(|ci| {
                let m = mean[ci];
                x[(bi * c + ci) * s..][..s].iter().map(|v| (v.to_f64() - m).powi(2)).sum()
            })
            .collect()
    };
    let var = super::sum_rows(b, x.len(), c, sq);
    (mean, var.into_iter().map(|v| v / n).collect())
}

/// gamma · (x − mean) / sqrt(var + eps) + beta with the batch's per-channel mean and biased
/// variance, gradients flowing through the statistics. `None` when the fused CPU kernel does not
/// apply (another device or dtype, or second-order gradients requested): compose Candle's ops.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Option<Tensor>> {
    if !fast(&[x, gamma, beta]) || second_order() {
        return Ok(None);
    }
    let c = x.dim(1)?;
    if gamma.dims() != [c] || beta.dims() != [c] || eps <= 0.0 {
        bail!("batch_norm: gamma {:?}, beta {:?}, eps {eps} for input {:?}", gamma.dims(), beta.dims(), x.dims());
    }
    Ok(Some(x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, BatchNorm { eps })?))
}

struct BatchNorm {
    eps: f64,
}

/// Per channel: scale = gamma / sqrt(var + eps), shift = beta − mean · scale, so y = x·scale + shift.
fn normalise<T: WithDType>(x: &[T], gamma: &[T], beta: &[T], eps: f64, (b, c, s): (usize, usize, usize)) -> Vec<T> {
    let (mean, var) = moments(x, b, c, s);
    let scale: Vec<f64> = (0..c).map(|i| gamma[i].to_f64() / (var[i] + eps).sqrt()).collect();
    let shift: Vec<T> = (0..c).map(|i| T::from_f64(beta[i].to_f64() - mean[i] * scale[i])).collect();
    let scale: Vec<T> = scale.into_iter().map(T::from_f64).collect();
    let mut y = uninit(x.len());
    let rows = |(r, (y, x)): (usize, (&mut [T], &[T]))| {
        let (a, o) = (scale[r % c], shift[r % c]);
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * a + o);
    };
    if x.len() < PAR_MIN {
        y.chunks_mut(s).zip(x.chunks(s)).enumerate().for_each(rows);
    } else {
        y.par_chunks_mut(s).zip(x.par_chunks(s)).enumerate().for_each(rows);
    }
    y
}

/// dx = gamma·inv/N · (N·dy − Σdy − x̂·Σ(dy·x̂)), dgamma = Σ(dy·x̂), dbeta = Σdy (sums per channel).
fn backward<T: WithDType>(x: &[T], gamma: &[T], dy: &[T], eps: f64, (b, c, s): (usize, usize, usize)) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (mean, var) = moments(x, b, c, s);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let sum_dy = channel_sums(dy, b, c, s);
    let part = |bi: usize| -> Vec<f64> {
        (0..c)
            .map(|ci| {
                let o = (bi * c + ci) * s;
                x[o..o + s].iter().zip(&dy[o..o + s]).map(|(x, d)| (x.to_f64() - mean[ci]) * d.to_f64()).sum::<f64>() * inv[ci]
            })
            .collect()
    };
    let sum_dy_xhat = super::sum_rows(b, x.len(), c, part);
    let n = (b * s) as f64;
    // dx = k1·dy + k2·x + k3 per channel, with x̂ = (x − mean)·inv expanded.
    let coef: Vec<(T, T, T)> = (0..c)
        .map(|i| {
            let g = gamma[i].to_f64() * inv[i];
            let k2 = -g * inv[i] * sum_dy_xhat[i] / n;
            let k3 = -g * sum_dy[i] / n - k2 * mean[i];
            (T::from_f64(g), T::from_f64(k2), T::from_f64(k3))
        })
        .collect();
    let mut dx = uninit(x.len());
    let rows = |(r, (out, (x, dy))): (usize, (&mut [T], (&[T], &[T])))| {
        let (k1, k2, k3) = coef[r % c];
        out.iter_mut().zip(x.iter().zip(dy)).for_each(|(o, (&x, &d))| *o = d * k1 + x * k2 + k3);
    };
    if x.len() < PAR_MIN {
        dx.chunks_mut(s).zip(x.chunks(s).zip(dy.chunks(s))).enumerate().for_each(rows);
    } else {
        dx.par_chunks_mut(s).zip(x.par_chunks(s).zip(dy.par_chunks(s))).enumerate().for_each(rows);
    }
    let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
    (dx, cast(sum_dy_xhat), cast(sum_dy))
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "ganfold-batch-norm"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = bcs(l1.dims())?;
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-batch-norm"));
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(b)) => {
                CpuStorage::F32(normalise(slice(x, l1)?, slice(g, l2)?, slice(b, l3)?, self.eps, d))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(b)) => {
                CpuStorage::F64(normalise(slice(x, l1)?, slice(g, l2)?, slice(b, l3)?, self.eps, d))
            }
            _ => bail!("ganfold-batch-norm: only f32 and f64, alike"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, gamma: &Tensor, _beta: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = bcs(x.dims())?;
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-batch-norm-backward"));
        let grad = grad.contiguous()?;
        let (x, gamma) = (x.contiguous()?, gamma.contiguous()?);
        let dev = x.device().clone();
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = gamma.storage_and_layout();
        let (ds, dl) = grad.storage_and_layout();
        use candle_core::Storage::Cpu;
        let (dx, dg, db) = match (&*xs, &*gs, &*ds) {
            (Cpu(CpuStorage::F32(x)), Cpu(CpuStorage::F32(g)), Cpu(CpuStorage::F32(dy))) => {
                let (dx, dg, db) = backward(slice(x, xl)?, slice(g, gl)?, slice(dy, dl)?, self.eps, d);
                (Tensor::from_vec(dx, grad.shape(), &dev)?, Tensor::from_vec(dg, d.1, &dev)?, Tensor::from_vec(db, d.1, &dev)?)
            }
            (Cpu(CpuStorage::F64(x)), Cpu(CpuStorage::F64(g)), Cpu(CpuStorage::F64(dy))) => {
                let (dx, dg, db) = backward(slice(x, xl)?, slice(g, gl)?, slice(dy, dl)?, self.eps, d);
                (Tensor::from_vec(dx, grad.shape(), &dev)?, Tensor::from_vec(dg, d.1, &dev)?, Tensor::from_vec(db, d.1, &dev)?)
            }
            _ => bail!("ganfold-batch-norm: backward needs CPU f32 or f64 tensors, alike"),
        };
        Ok((Some(dx), Some(dg), Some(db)))
    }
}
