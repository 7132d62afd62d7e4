//! Adam (Kingma & Ba 2015) whose moments can be saved.
//!
//! Candle's `AdamW` keeps its moments private (candle PR #3819), so a resumed run would restart
//! Adam cold and diverge from the uninterrupted one. This Adam keeps `m`, `v` and `t` where a
//! checkpoint can reach them. On CPU each update is three fused in-place passes (no temporary
//! tensors); on other devices it falls back to Candle tensor ops.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Adam hyper-parameters, a nested table of a method's config (`[method.opt_g]`).
/// `weight_decay` is decoupled (AdamW); 0 gives plain Adam.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// The DCGAN setting (Radford et al. 2016): lr 2e-4, betas (0.5, 0.999).
    pub fn dcgan(lr: f64) -> Self {
        Self { lr, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }

    pub fn validate(&self, what: &str) -> anyhow::Result<()> {
        let ok = |x: f64| x.is_finite();
        if !(ok(self.lr) && self.lr > 0.0) {
            anyhow::bail!("{what}: learning rate must be positive and finite, got {}", self.lr);
        }
        for (n, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                anyhow::bail!("{what}: {n} must be in [0, 1), got {b}");
            }
        }
        if !(ok(self.eps) && self.eps > 0.0 && ok(self.weight_decay) && self.weight_decay >= 0.0) {
            anyhow::bail!("{what}: eps must be > 0 and weight_decay >= 0");
        }
        Ok(())
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

pub struct Adam {
    slots: Vec<Slot>,
    pub cfg: AdamConfig,
    t: u64,
}

/// What a checkpoint stores for an [`Adam`].
pub struct AdamState {
    pub t: u64,
    /// `"m.<param>"` and `"v.<param>"` moments.
    pub tensors: BTreeMap<String, Tensor>,
}

impl Adam {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        // The two moments of every parameter, refused before allocating when they cannot fit.
        let bytes: u128 = vars.iter().map(|(_, v)| 2 * (v.elem_count() * v.dtype().size_in_bytes()) as u128).sum();
        crate::limits::check_alloc(&format!("Adam's moments of {} parameters", vars.len()), bytes)
            .map_err(|e| candle_core::Error::Msg(format!("{e}; choose smaller widths in the config")))?;
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { slots, cfg, t: 0 })
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Backward pass of `loss` and one update of this optimizer's variables only.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = ganfold_kernels::profile::timed("backward (whole pass)", || loss.backward())?;
        ganfold_kernels::profile::timed("adam update", || self.step(&grads))
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for s in &self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            let g = g.contiguous()?;
            if s.var.device().is_cpu() {
                s.m.inplace_op2(&g, &Moment { beta: c.beta1, square: false })?;
                s.v.inplace_op2(&g, &Moment { beta: c.beta2, square: true })?;
                let upd = Update { lr: c.lr, bc1, bc2, eps: c.eps, wd: c.weight_decay };
                s.var.inplace_op3(s.m.as_tensor(), s.v.as_tensor(), &upd)?;
            } else {
                let m = ((s.m.as_tensor() * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                let v = ((s.v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                let step = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
                let mut w = s.var.as_tensor().clone();
                if c.weight_decay > 0.0 {
                    w = (&w * (1.0 - c.lr * c.weight_decay))?;
                }
                let w = (w - (step * c.lr)?)?;
                s.m.set(&m)?;
                s.v.set(&v)?;
                s.var.set(&w)?;
            }
        }
        Ok(())
    }

    pub fn state(&self) -> AdamState {
        let mut tensors = BTreeMap::new();
        for s in &self.slots {
            tensors.insert(format!("m.{}", s.name), s.m.as_tensor().clone());
            tensors.insert(format!("v.{}", s.name), s.v.as_tensor().clone());
        }
        AdamState { t: self.t, tensors }
    }

    /// Restores moments saved by [`Adam::state`] under `prefix`; every moment must be present.
    pub fn load(&mut self, t: u64, tensors: &BTreeMap<String, Tensor>, prefix: &str) -> anyhow::Result<()> {
        // Far beyond any run, and below it the bias corrections 1 - beta^t and t + 1 are exact.
        if t > 1 << 53 {
            anyhow::bail!("optimizer step count {t} is out of range (at most 2^53)");
        }
        for s in &self.slots {
            for (kind, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("{prefix}{kind}.{}", s.name);
                let src = tensors.get(&key).ok_or_else(|| anyhow::anyhow!("optimizer tensor `{key}` is missing"))?;
                if src.dims() != var.dims() {
                    anyhow::bail!("optimizer tensor `{key}` has shape {:?}, expected {:?}", src.dims(), var.dims());
                }
                if src.dtype() != var.dtype() {
                    anyhow::bail!("optimizer tensor `{key}` has dtype {:?}, expected {:?}", src.dtype(), var.dtype());
                }
                var.set(&src.to_device(var.device())?)?;
            }
        }
        self.t = t;
        Ok(())
    }
}

fn slice_f<'a, T>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("adam: non-contiguous tensor"),
    }
}

fn slice_f_mut<'a, T>(v: &'a mut [T], l: &Layout) -> Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("adam: non-contiguous tensor"),
    }
}

/// Element-wise passes over parameters this large are split over the thread pool (MMGAN's
/// 6.4M-weight layer took 22 ms per step in three serial passes).
const PAR_MIN: usize = 1 << 15;
const PAR_CHUNK: usize = 1 << 14;

/// d[i] <- f(d[i], s[i]), in parallel for large arrays.
fn par_zip<T: Copy + Send + Sync>(d: &mut [T], s: &[T], f: impl Fn(&mut T, T) + Sync + Send) {
    if d.len() < PAR_MIN {
        d.iter_mut().zip(s).for_each(|(d, &s)| f(d, s));
    } else {
        d.par_chunks_mut(PAR_CHUNK)
            .zip(s.par_chunks(PAR_CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| f(d, s)));
    }
}

/// m <- beta m + (1 - beta) g   (or g^2 for the second moment), in place.
struct Moment {
    beta: f64,
    square: bool,
}

impl candle_core::InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }
    fn cpu_fwd(&self, dst: &mut CpuStorage, dl: &Layout, src: &CpuStorage, sl: &Layout) -> Result<()> {
        macro_rules! go {
            ($d:expr, $s:expr, $t:ty) => {{
                let d = slice_f_mut($d, dl)?;
                let s = slice_f($s, sl)?;
                let (b, a) = (self.beta as $t, (1.0 - self.beta) as $t);
                if self.square {
                    par_zip(d, s, move |m, g| *m = b * *m + a * g * g);
                } else {
                    par_zip(d, s, move |m, g| *m = b * *m + a * g);
                }
            }};
        }
        match (dst, src) {
            (CpuStorage::F32(d), CpuStorage::F32(s)) => go!(d, s, f32),
            (CpuStorage::F64(d), CpuStorage::F64(s)) => go!(d, s, f64),
            (d, _) => {
                let _ = d;
                candle_core::bail!("adam: only f32 and f64 parameters are supported")
            }
        }
        Ok(())
    }
}

/// w <- w (1 - lr wd) - lr * (m / bc1) / (sqrt(v / bc2) + eps), in place.
struct Update {
    lr: f64,
    bc1: f64,
    bc2: f64,
    eps: f64,
    wd: f64,
}

impl candle_core::InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adam-update"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        macro_rules! go {
            ($w:expr, $m:expr, $v:expr, $t:ty) => {{
                let w = slice_f_mut($w, dl)?;
                let m = slice_f($m, ml)?;
                let v = slice_f($v, vl)?;
                let (lr, ibc1, ibc2, eps) =
                    (self.lr as $t, (1.0 / self.bc1) as $t, (1.0 / self.bc2) as $t, self.eps as $t);
                let decay = (1.0 - self.lr * self.wd) as $t;
                if w.len() != m.len() || w.len() != v.len() {
                    candle_core::bail!("adam: parameter and moments differ in size");
                }
                let run = move |w: &mut [$t], m: &[$t], v: &[$t]| {
                    for i in 0..w.len() {
                        w[i] = w[i] * decay - lr * (m[i] * ibc1) / ((v[i] * ibc2).sqrt() + eps);
                    }
                };
                if w.len() < PAR_MIN {
                    run(w, m, v);
                } else {
                    w.par_chunks_mut(PAR_CHUNK)
                        .zip(m.par_chunks(PAR_CHUNK).zip(v.par_chunks(PAR_CHUNK)))
                        .for_each(|(w, (m, v))| run(w, m, v));
                }
            }};
        }
        match (dst, m, v) {
            (CpuStorage::F32(w), CpuStorage::F32(m), CpuStorage::F32(v)) => go!(w, m, v, f32),
            (CpuStorage::F64(w), CpuStorage::F64(m), CpuStorage::F64(v)) => go!(w, m, v, f64),
            (d, _, _) => {
                let _ = d;
                candle_core::bail!("adam: only f32 and f64 parameters are supported")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A parameter large enough for the parallel passes (f32, 100k elements, two steps with
    /// weight decay) against the update written out per element.
    #[test]
    fn large_parameters_match_the_formula() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let n = 100_000;
        let w0: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w = Var::from_vec(w0.clone(), n, &dev)?;
        let cfg = AdamConfig { lr: 0.01, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg)?;
        let (mut e, mut m, mut v) = (w0, vec![0f32; n], vec![0f32; n]);
        for t in 1..=2 {
            // loss = sum(w^3) / 3  ->  grad = w^2
            let g: Vec<f32> = e.iter().map(|w| w * w).collect();
            opt.backward_step(&(w.as_tensor().powf(3.0)?.sum_all()? / 3.0)?)?;
            let (bc1, bc2) = (1.0 - 0.5f64.powi(t), 1.0 - 0.999f64.powi(t));
            for i in 0..n {
                m[i] = 0.5 * m[i] + 0.5 * g[i];
                v[i] = 0.999 * v[i] + (1.0 - 0.999) * g[i] * g[i];
                e[i] = e[i] * (1.0 - 0.01 * 0.1)
                    - 0.01 * (m[i] * (1.0 / bc1) as f32) / ((v[i] * (1.0 / bc2) as f32).sqrt() + 1e-8);
            }
        }
        let got = w.as_tensor().to_vec1::<f32>()?;
        let worst = got.iter().zip(&e).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "largest difference {worst}");
        Ok(())
    }

    /// One Adam step by hand: with m0 = v0 = 0 the first update is -lr * sign(g) (up to eps).
    #[test]
    fn matches_hand_computed_steps() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![1.0f64, -2.0, 0.5], 3, &dev)?;
        let cfg = AdamConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg)?;
        // loss = sum(w^2) / 2  ->  grad = w
        let mut expect = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = (vec![0.0f64; 3], vec![0.0f64; 3]);
        for t in 1..=3 {
            let loss = (w.as_tensor().sqr()?.sum_all()? * 0.5)?;
            opt.backward_step(&loss)?;
            for i in 0..3 {
                let g = expect[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                expect[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
            let got = w.as_tensor().to_vec1::<f64>()?;
            for i in 0..3 {
                assert!((got[i] - expect[i]).abs() < 1e-12, "t={t} i={i}: {} vs {}", got[i], expect[i]);
            }
        }
        assert_eq!(opt.steps(), 3);
        // A saved step count that would wrap is refused.
        let saved: BTreeMap<String, Tensor> =
            opt.state().tensors.into_iter().map(|(k, t)| (k, t.copy().unwrap())).collect();
        let e = opt.load(u64::MAX, &saved, "").unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        opt.load(3, &saved, "")?;
        Ok(())
    }

    #[test]
    fn state_roundtrip_continues_identically() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let run = |split: Option<usize>| -> anyhow::Result<Vec<f32>> {
            let w = Var::from_vec(vec![0.3f32, -1.0, 2.0, 0.1], (2, 2), &dev)?;
            let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::dcgan(0.05))?;
            for i in 0..6 {
                if Some(i) == split {
                    let st = opt.state();
                    let map: BTreeMap<_, _> = st.tensors.into_iter().map(|(k, t)| (k, t.copy().unwrap())).collect();
                    let w2 = Var::from_tensor(&w.as_tensor().copy()?)?;
                    let mut opt2 = Adam::new(vec![("w".into(), w2.clone())], AdamConfig::dcgan(0.05))?;
                    opt2.load(st.t, &map, "")?;
                    w.set(w2.as_tensor())?;
                    opt = opt2;
                    opt.slots[0].var = w.clone();
                }
                let loss = (w.as_tensor().powf(3.0)?.sum_all()? + w.as_tensor().sum_all()?)?;
                opt.backward_step(&loss)?;
            }
            Ok(w.as_tensor().flatten_all()?.to_vec1()?)
        };
        assert_eq!(run(None)?, run(Some(3))?);
        Ok(())
    }
}
