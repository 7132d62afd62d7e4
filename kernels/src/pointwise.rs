//! Per-channel bias and (leaky) ReLU as single passes with hand-written backward ops.
//!
//! Candle's `broadcast_add` backward reduces over dims 0, 2, 3 with a per-element divmod loop,
//! and `maximum(x, a x)` costs four temporaries; both showed up as a fifth of the DCGAN step.

use super::{PAR_MIN, Timer, bcs, fast, slice, uninit};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType, bail};
use rayon::prelude::*;

/// x + b along dim 1: x (B, C, ...) and b (C).
pub fn bias_add(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    if b.dims() != [c] {
        bail!("bias_add: bias of shape {:?} for input {:?} (expected [{c}])", b.dims(), x.dims());
    }
    if !fast(&[x, b]) {
        let mut s = vec![1; x.rank()];
        s[1] = c;
        return x.broadcast_add(&b.reshape(s)?);
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
}

/// max(x, slope x) for slope in [0, 1].
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&slope) {
        bail!("leaky_relu: slope {slope} outside [0, 1]");
    }
    if !fast(&[x]) {
        return if slope == 0.0 { x.relu() } else { x.maximum(&(x * slope)?) };
    }
    x.contiguous()?.apply_op1(Leaky { slope })
}

/// max(x, 0); its derivative is taken as 0 at 0 (as PyTorch).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    leaky_relu(x, 0.0)
}

fn par_map<T: WithDType>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = uninit(x.len());
    if x.len() < super::PAR_MIN {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    } else {
        out.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)));
    }
    out
}

fn par_zip<T: WithDType>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = uninit(a.len());
    let run = |o: &mut [T], a: &[T], b: &[T]| o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = f(a, b));
    if a.len() < PAR_MIN {
        run(&mut out, a, b);
    } else {
        out.par_chunks_mut(1 << 14)
            .zip(a.par_chunks(1 << 14).zip(b.par_chunks(1 << 14)))
            .for_each(|(o, (a, b))| run(o, a, b));
    }
    out
}

macro_rules! float_dispatch {
    ($name:expr, $s:expr, $l:expr, |$v:ident| $body:expr) => {
        match $s {
            CpuStorage::F32(v) => {
                let $v = slice(v, $l)?;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(v) => {
                let $v = slice(v, $l)?;
                CpuStorage::F64($body)
            }
            _ => bail!("{}: only f32 and f64", $name),
        }
    };
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "ganfold-bias-add"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-bias-add"));
        let d = bcs(l1.dims())?;
        fn add<T: WithDType>(x: &[T], b: &[T], d: (usize, usize, usize)) -> Vec<T> {
            super::channel_affine(x, &vec![T::one(); d.1], None, b, d, None)
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(b)) => CpuStorage::F32(add(slice(x, l1)?, slice(b, l2)?, d)),
            (CpuStorage::F64(x), CpuStorage::F64(b)) => CpuStorage::F64(add(slice(x, l1)?, slice(b, l2)?, d)),
            _ => bail!("ganfold-bias-add: only f32 and f64, alike"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, _x: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = if b.track_op() { Some(grad.contiguous()?.apply_op1(ChannelSum)?) } else { None };
        Ok((Some(grad.clone()), db))
    }
}

/// Σ over every dim but 1: (B, C, ...) -> (C). Accumulates in f64.
struct ChannelSum;

/// The bias gradient of (B, C, ...) output gradients, as a differentiable op.
pub(super) fn channel_sum_of(grad: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op1(ChannelSum)
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "ganfold-channel-sum"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-channel-sum"));
        let d = bcs(l.dims())?;
        let out = float_dispatch!(self.name(), s, l, |x| super::channel_sum(x, d)
            .into_iter()
            .map(WithDType::from_f64)
            .collect());
        Ok((out, Shape::from(d.1)))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let mut s = vec![1; x.rank()];
        s[1] = x.dim(1)?;
        Ok(Some(grad.reshape(s)?.broadcast_as(x.shape())?.contiguous()?))
    }
}

/// g where x > 0, slope·g elsewhere (the leaky ReLU's backward), as a differentiable op.
pub(super) fn leaky_mask(x: &Tensor, g: &Tensor, slope: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(g, LeakyMask { slope })
}

struct Leaky {
    slope: f64,
}

impl CustomOp1 for Leaky {
    fn name(&self) -> &'static str {
        "ganfold-leaky-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-leaky-relu"));
        fn f<T: WithDType>(x: &[T], slope: f64) -> Vec<T> {
            // A select of the factor, not of the result: branch-free, so it vectorises (a branch
            // on the sign mispredicts half the time on activations: 2.1 ms -> 0.1 ms measured).
            let a = T::from_f64(slope);
            par_map(x, move |v| v * if v > T::zero() { T::one() } else { a })
        }
        Ok((float_dispatch!(self.name(), s, l, |x| f(x, self.slope)), l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2(&grad.contiguous()?, LeakyMask { slope: self.slope })?))
    }
}

/// g where x > 0, slope·g elsewhere: the leaky ReLU's derivative applied to g. Linear in g, and
/// its derivative in x is 0 almost everywhere, so its own backward is itself in g and zeros in x.
struct LeakyMask {
    slope: f64,
}

impl CustomOp2 for LeakyMask {
    fn name(&self) -> &'static str {
        "ganfold-leaky-relu-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _t = super::profile::enabled().then(|| Timer::new("ganfold-leaky-relu-grad"));
        fn f<T: WithDType>(x: &[T], g: &[T], slope: f64) -> Vec<T> {
            let a = T::from_f64(slope);
            par_zip(x, g, move |x, g| g * if x > T::zero() { T::one() } else { a })
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(f(slice(x, l1)?, slice(g, l2)?, self.slope)),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(f(slice(x, l1)?, slice(g, l2)?, self.slope)),
            _ => bail!("ganfold-leaky-relu-grad: only f32 and f64, alike"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _g: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A tracked x (the mask of a gradient penalty's second backward pass) needs a gradient
        // of its own, even a zero one: Candle panics on a tracked node that receives none.
        let dx = if x.track_op() { Some(x.zeros_like()?) } else { None };
        Ok((dx, Some(x.apply_op2(&grad.contiguous()?, LeakyMask { slope: self.slope })?)))
    }
}
