//! Parameters and layers.
//!
//! A layer is a plain struct built by a free function (`linear(in, out, vs)`), as in candle-nn,
//! with one difference: parameters are initialised from ganfold's seeded [`Rng`], held by a
//! [`VarStore`] (one per network, so each optimizer owns exactly its network's variables).
//! BatchNorm is our own so that a method can reuse the clean batch's statistics in
//! finite-difference passes (LGAN) and so that running statistics are saved with the weights.

use crate::rng::Rng;
use candle_core::{D, DType, Device, Module, Result, Shape, Tensor, Var};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Const(f64),
    Normal { mean: f64, std: f64 },
    Uniform { lo: f64, hi: f64 },
}

impl Init {
    /// PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    pub fn torch_default(fan_in: usize) -> Self {
        let b = 1.0 / (fan_in.max(1) as f64).sqrt();
        Init::Uniform { lo: -b, hi: b }
    }
    /// DCGAN (Radford et al. 2016): weights N(0, 0.02).
    pub const DCGAN: Init = Init::Normal { mean: 0.0, std: 0.02 };
}

struct Entry {
    var: Var,
    trainable: bool,
}

struct StoreInner {
    vars: BTreeMap<String, Entry>,
    rng: Rng,
}

/// Named variables of one network (weights and BatchNorm running statistics).
#[derive(Clone)]
pub struct VarStore {
    inner: Arc<Mutex<StoreInner>>,
    dtype: DType,
    device: Device,
}

impl VarStore {
    /// `rng` initialises the parameters, in creation order.
    pub fn new(dtype: DType, device: &Device, rng: Rng) -> Self {
        let inner = StoreInner { vars: BTreeMap::new(), rng };
        Self { inner: Arc::new(Mutex::new(inner)), dtype, device: device.clone() }
    }

    pub fn root(&self) -> VsPath {
        VsPath { store: self.clone(), prefix: String::new() }
    }

    pub fn pp(&self, name: &str) -> VsPath {
        self.root().pp(name)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Trainable variables, sorted by name (the optimizer's view).
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.lock().vars.iter().filter(|(_, e)| e.trainable).map(|(k, e)| (k.clone(), e.var.clone())).collect()
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.trainable_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Every variable (trainable or buffer), as tensors that share storage with the variables.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.lock().vars.iter().map(|(k, e)| (k.clone(), e.var.as_tensor().clone())).collect()
    }

    /// Copies `tensors[prefix + name]` into each variable. Every variable must be present with
    /// the same shape and dtype; the error names the tensor.
    pub fn load(&self, tensors: &BTreeMap<String, Tensor>, prefix: &str) -> anyhow::Result<()> {
        let inner = self.lock();
        for (name, e) in inner.vars.iter() {
            let key = format!("{prefix}{name}");
            let t = tensors.get(&key).ok_or_else(|| anyhow::anyhow!("tensor `{key}` is missing"))?;
            if t.dims() != e.var.dims() {
                anyhow::bail!("tensor `{key}` has shape {:?}, the model expects {:?}", t.dims(), e.var.dims());
            }
            // No silent casts: an integer or other-precision tensor means the file is not this model's.
            if t.dtype() != e.var.dtype() {
                anyhow::bail!("tensor `{key}` has dtype {:?}, the model expects {:?}", t.dtype(), e.var.dtype());
            }
            let t = t.to_device(e.var.device())?;
            e.var.set(&t)?;
        }
        Ok(())
    }

    /// Every variable with its name and whether it is trainable, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var, bool)> {
        self.lock().vars.iter().map(|(k, e)| (k.clone(), e.var.clone(), e.trainable)).collect()
    }

    /// Sets the variable `name` (same shape and dtype) to `t`, e.g. after a data-dependent init.
    pub fn set(&self, name: &str, t: &Tensor) -> anyhow::Result<()> {
        let inner = self.lock();
        let e = inner.vars.get(name).ok_or_else(|| anyhow::anyhow!("no variable `{name}`"))?;
        if t.dims() != e.var.dims() {
            anyhow::bail!("variable `{name}` has shape {:?}, got {:?}", e.var.dims(), t.dims());
        }
        e.var.set(&t.to_dtype(e.var.dtype())?)?;
        Ok(())
    }

    /// Copies every variable's value from `other` (same names and shapes), e.g. for EMA weights.
    pub fn copy_from(&self, other: &VarStore) -> anyhow::Result<()> {
        self.load(&other.tensors(), "")
    }

    fn create(&self, path: String, shape: Shape, init: Init, trainable: bool) -> Result<Var> {
        let mut inner = self.lock();
        if let Some(e) = inner.vars.get(&path) {
            if e.var.shape() != &shape {
                candle_core::bail!("variable `{path}` exists with shape {:?}, requested {:?}", e.var.dims(), shape)
            }
            return Ok(e.var.clone());
        }
        // Sizes come from configs, which are untrusted: refuse, before allocating, a variable
        // whose element count overflows or that (with its f64 initial values) does not fit in
        // the memory left (which the variables made before have already taken).
        let n = shape.dims().iter().try_fold(1u128, |a, &d| a.checked_mul(d as u128)).unwrap_or(u128::MAX);
        let bytes = n.saturating_mul(8 + self.dtype.size_in_bytes() as u128);
        crate::limits::check_alloc(&format!("network parameter `{path}` of shape {:?}", shape.dims()), bytes)
            .map_err(|e| candle_core::Error::Msg(format!("{e}; choose smaller widths in the config")))?;
        let n = n as usize;
        let data: Vec<f64> = match init {
            Init::Const(c) => vec![c; n],
            Init::Normal { mean, std } => (0..n).map(|_| mean + std * inner.rng.normal()).collect(),
            Init::Uniform { lo, hi } => (0..n).map(|_| lo + (hi - lo) * inner.rng.uniform()).collect(),
        };
        let t = Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        inner.vars.insert(path, Entry { var: var.clone(), trainable });
        Ok(var)
    }
}

/// A position in a [`VarStore`]'s name tree (`vs.pp("enc").pp("conv1")`).
#[derive(Clone)]
pub struct VsPath {
    store: VarStore,
    prefix: String,
}

impl VsPath {
    pub fn pp(&self, name: &str) -> VsPath {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        VsPath { store: self.store.clone(), prefix }
    }

    /// The full name of the variable `name` under this path.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// A trainable parameter (created on first use, returned as is afterwards).
    pub fn var<S: Into<Shape>>(&self, name: &str, shape: S, init: Init) -> Result<Tensor> {
        Ok(self.store.create(self.path(name), shape.into(), init, true)?.as_tensor().clone())
    }

    /// A non-trainable buffer (e.g. BatchNorm running statistics), saved with the weights.
    pub fn buffer<S: Into<Shape>>(&self, name: &str, shape: S, init: Init) -> Result<Var> {
        self.store.create(self.path(name), shape.into(), init, false)
    }

    pub fn device(&self) -> &Device {
        &self.store.device
    }

    pub fn dtype(&self) -> DType {
        self.store.dtype
    }
}

// ---------------------------------------------------------------------------------------------
// Layers

thread_local! {
    static FROZEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every layer's parameters taken as constants: the graph it builds still carries
/// gradients to its inputs, but none to the parameters, so the backward pass skips their
/// products. For one network's loss through the other (G's loss through D), whose parameter
/// gradients the update would discard (PyTorch computes them and throws them away).
pub fn frozen<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FROZEN.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FROZEN.with(|c| c.replace(true)));
    f()
}

/// Whether Candle keeps gradients of gradients on this thread. Candle detaches every gradient it
/// propagates unless `CANDLE_GRAD_DO_NOT_DETACH` was set when the thread ran its first backward
/// pass (it reads the variable once per thread), and a detached chain drops only part of a
/// second-order term, silently. So this is measured, not read from the environment: on
/// f(x) = x⁴ at x = 1 the full second derivative is 12, the detached one 4.
pub fn second_order_enabled() -> bool {
    let probe = || -> Result<f64> {
        let x = Var::new(1f64, &Device::Cpu)?;
        let g = x.as_tensor().sqr()?.sqr()?.backward()?;
        let Some(dx) = g.get(x.as_tensor()) else { return Ok(0.0) };
        match dx.backward()?.get(x.as_tensor()) {
            Some(d2) => d2.to_scalar::<f64>(),
            None => Ok(0.0),
        }
    };
    probe().is_ok_and(|d2| (d2 - 12.0).abs() < 1e-9)
}

/// Turns second-order gradients on for the whole process, for a binary whose method always needs
/// them: sets `CANDLE_GRAD_DO_NOT_DETACH=1`, which Candle and ganfold's kernels then read.
///
/// # Safety
/// Call it first thing in `main`, before any other thread exists (it sets an environment
/// variable, [`std::env::set_var`]) and before any backward pass or kernel call.
pub unsafe fn enable_second_order() {
    // SAFETY: the caller guarantees no other thread runs (see above).
    unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
}

/// An error unless [`second_order_enabled`]: for a method whose loss differentiates a gradient
/// (a gradient penalty), called when it is built to train, so it never trains with the
/// penalty half dropped.
pub fn require_second_order(what: &str) -> anyhow::Result<()> {
    if !second_order_enabled() {
        anyhow::bail!(
            "{what} needs gradients of gradients, which Candle drops in this process: start it with \
             CANDLE_GRAD_DO_NOT_DETACH=1 in the environment, or call ganfold_core::nn::enable_second_order() as the first \
             line of the binary's main (docs/DEVELOPING.md)"
        );
    }
    Ok(())
}

/// A layer's parameter as used in a forward pass (detached inside [`frozen`]); layers outside
/// this module use it for their own parameters.
pub fn param(t: &Tensor) -> Tensor {
    if FROZEN.with(|c| c.get()) { t.detach() } else { t.clone() }
}

/// y = x W^T + b, with x of shape (B, in).
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(b) if x.rank() == 2 => ganfold_kernels::linear(x, &param(&self.weight), &param(b)),
            _ => add_channel_bias(x.contiguous()?.matmul(&param(&self.weight).t()?)?, self.bias.as_ref()),
        }
    }
}

/// PyTorch-initialised linear layer.
pub fn linear(inp: usize, out: usize, vs: VsPath) -> Result<Linear> {
    linear_with(inp, out, true, Init::torch_default(inp), vs)
}

/// Linear layer with an explicit weight init (bias, if any, starts at 0).
pub fn linear_with(inp: usize, out: usize, bias: bool, init: Init, vs: VsPath) -> Result<Linear> {
    let weight = vs.var("weight", (out, inp), init)?;
    let bias = if bias {
        let binit = match init {
            Init::Uniform { .. } => Init::torch_default(inp),
            _ => Init::Const(0.0),
        };
        Some(vs.var("bias", out, binit)?)
    } else {
        None
    };
    Ok(Linear { weight, bias })
}

pub use ganfold_kernels::ConvCfg;

/// A convolution by a weight the caller computes (weight normalisation, for instance), through
/// the same kernels as [`Conv2d`]. The weight is used as given, also inside [`frozen`].
pub fn conv2d_by(x: &Tensor, weight: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    ganfold_kernels::conv2d(x, weight, cfg)
}

/// 2-D convolution, weight (out, in, k, k).
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub cfg: ConvCfg,
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(b) => ganfold_kernels::conv2d_bias(x, &param(&self.weight), &param(b), self.cfg),
            None => ganfold_kernels::conv2d(x, &param(&self.weight), self.cfg),
        }
    }
}

impl Conv2d {
    /// leaky_relu(forward(x), slope), slope 0 for ReLU: one fused op on CPU.
    pub fn forward_act(&self, x: &Tensor, slope: f64) -> Result<Tensor> {
        match &self.bias {
            Some(b) => ganfold_kernels::conv2d_bias_act(x, &param(&self.weight), &param(b), self.cfg, Some(slope)),
            None => leaky_relu(&self.forward(x)?, slope),
        }
    }
}

pub fn conv2d(inp: usize, out: usize, k: usize, cfg: ConvCfg, bias: bool, init: Init, vs: VsPath) -> Result<Conv2d> {
    let weight = vs.var("weight", (out, inp, k, k), init)?;
    let bias = if bias { Some(vs.var("bias", out, bias_init(init, inp * k * k))?) } else { None };
    Ok(Conv2d { weight, bias, cfg })
}

/// Transposed 2-D convolution, weight (in, out, k, k) as in PyTorch.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub cfg: ConvCfg,
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(b) => ganfold_kernels::conv_transpose2d_bias(x, &param(&self.weight), &param(b), self.cfg),
            None => ganfold_kernels::conv_transpose2d(x, &param(&self.weight), self.cfg),
        }
    }
}

pub fn conv_transpose2d(
    inp: usize,
    out: usize,
    k: usize,
    cfg: ConvCfg,
    bias: bool,
    init: Init,
    vs: VsPath,
) -> Result<ConvTranspose2d> {
    let weight = vs.var("weight", (inp, out, k, k), init)?;
    // PyTorch's fan-in convention for transposed convs: weight.dim(1) * k * k.
    let bias = if bias { Some(vs.var("bias", out, bias_init(init, out * k * k))?) } else { None };
    Ok(ConvTranspose2d { weight, bias, cfg })
}

fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => ganfold_kernels::bias_add(&y, &param(b)),
        None => Ok(y),
    }
}

fn bias_init(w: Init, fan_in: usize) -> Init {
    match w {
        Init::Uniform { .. } => Init::torch_default(fan_in),
        _ => Init::Const(0.0),
    }
}

/// Batch statistics of one normalisation pass, per feature/channel.
#[derive(Clone, Debug)]
pub struct BnStats {
    pub mean: Tensor,
    pub var: Tensor,
}

/// Batch normalisation over dim 1 of (B, C) or (B, C, H, W) inputs (Ioffe & Szegedy 2015),
/// with PyTorch's conventions: biased variance to normalise, unbiased for the running
/// estimate, momentum 0.1, eps 1e-5; gamma initialised N(1, 0.02) as in DCGAN.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: Option<Tensor>,
    pub beta: Option<Tensor>,
    pub running_mean: Var,
    pub running_var: Var,
    pub momentum: f64,
    pub eps: f64,
}

pub fn batch_norm(c: usize, vs: VsPath) -> Result<BatchNorm> {
    batch_norm_with(c, true, Init::Normal { mean: 1.0, std: 0.02 }, vs)
}

pub fn batch_norm_with(c: usize, affine: bool, gamma_init: Init, vs: VsPath) -> Result<BatchNorm> {
    let (gamma, beta) = if affine {
        (Some(vs.var("weight", c, gamma_init)?), Some(vs.var("bias", c, Init::Const(0.0))?))
    } else {
        (None, None)
    };
    let running_mean = vs.buffer("running_mean", c, Init::Const(0.0))?;
    let running_var = vs.buffer("running_var", c, Init::Const(1.0))?;
    Ok(BatchNorm { gamma, beta, running_mean, running_var, momentum: 0.1, eps: 1e-5 })
}

impl BatchNorm {
    fn bshape(x: &Tensor) -> Result<Vec<usize>> {
        let mut s = vec![1; x.rank()];
        s[1] = x.dim(1)?;
        Ok(s)
    }

    /// The reduction dims: all but the channel dim.
    fn reduce(x: &Tensor) -> Result<(Tensor, usize)> {
        // (B, C, ...) -> (C, B * rest) so a single mean over the last dim gives per-channel stats.
        let c = x.dim(1)?;
        let xt = x.transpose(0, 1)?.contiguous()?.reshape((c, ()))?;
        let n = xt.dim(1)?;
        Ok((xt, n))
    }

    /// Batch statistics of `x` (no running-stat update).
    pub fn batch_stats(&self, x: &Tensor) -> Result<BnStats> {
        let (xt, _) = Self::reduce(x)?;
        let mean = xt.mean(D::Minus1)?;
        let var = xt.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.mean(D::Minus1)?;
        Ok(BnStats { mean, var })
    }

    /// Normalise with given statistics (the clean batch's, in finite-difference passes).
    pub fn forward_with_stats(&self, x: &Tensor, st: &BnStats) -> Result<Tensor> {
        let s = Self::bshape(x)?;
        let mean = st.mean.reshape(s.as_slice())?;
        let inv = (st.var.reshape(s.as_slice())? + self.eps)?.sqrt()?.recip()?;
        let mut y = x.broadcast_sub(&mean)?.broadcast_mul(&inv)?;
        if let Some(g) = &self.gamma {
            y = y.broadcast_mul(&param(g).reshape(s.as_slice())?)?;
        }
        if let Some(b) = &self.beta {
            y = y.broadcast_add(&param(b).reshape(s.as_slice())?)?;
        }
        Ok(y)
    }

    /// Training-mode pass: normalise with batch statistics, update the running estimates,
    /// and return the statistics so paired passes (finite differences) can reuse them. The
    /// returned statistics are constants; the gradient of `y` flows through the batch statistics
    /// as usual. On CPU this is one fused op (`ganfold_kernels::batch_norm_train`).
    pub fn forward_train(&self, x: &Tensor) -> Result<(Tensor, BnStats)> {
        self.forward_train_act(x, None)
    }

    /// [`Self::forward_train`] followed by a leaky ReLU of slope `act` (0: ReLU), fused on CPU.
    fn forward_train_act(&self, x: &Tensor, act: Option<f64>) -> Result<(Tensor, BnStats)> {
        let c = x.dim(1)?;
        let g = match &self.gamma {
            Some(g) => param(g),
            None => Tensor::ones(c, x.dtype(), x.device())?,
        };
        let b = match &self.beta {
            Some(b) => param(b),
            None => Tensor::zeros(c, x.dtype(), x.device())?,
        };
        let (y, mean, var) = match ganfold_kernels::batch_norm_train(x, &g, &b, self.eps, act)? {
            Some(fused) => fused,
            None => {
                // Composed path (CUDA, other dtypes, second-order gradients): statistics in the graph.
                let (mean, var) = ganfold_kernels::batch_moments(x)?;
                let y = self.forward_with_stats(x, &self.batch_stats(x)?)?;
                let y = match act {
                    Some(slope) => leaky_relu(&y, slope)?,
                    None => y,
                };
                (y, mean.to_device(x.device())?, var.to_device(x.device())?)
            }
        };
        let n = x.elem_count() / c.max(1);
        let unbiased = if n > 1 { (&var * (n as f64 / (n - 1) as f64))? } else { var.clone() };
        let m = self.momentum;
        let dev = self.running_mean.device();
        let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean.to_device(dev)? * m)?)?;
        let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased.to_device(dev)? * m)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        Ok((y, BnStats { mean, var }))
    }

    /// Inference-mode pass with the running statistics.
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let st = BnStats { mean: self.running_mean.as_tensor().clone(), var: self.running_var.as_tensor().clone() };
        self.forward_with_stats(x, &st)
    }

    /// `train`: batch statistics (and running update); otherwise running statistics.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train { Ok(self.forward_train(x)?.0) } else { self.forward_eval(x) }
    }

    /// leaky_relu(forward_t(x), slope), slope 0 for ReLU: the normalise-then-activate block of
    /// most generators and discriminators, one fused op in training on CPU.
    pub fn forward_act(&self, x: &Tensor, train: bool, slope: f64) -> Result<Tensor> {
        if train { Ok(self.forward_train_act(x, Some(slope))?.0) } else { leaky_relu(&self.forward_eval(x)?, slope) }
    }
}

/// Leaky ReLU, max(x, slope * x) for slope in [0, 1] (fused on CPU: `ganfold_kernels::leaky_relu`).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    ganfold_kernels::leaky_relu(x, slope)
}

/// ReLU, max(x, 0) (fused on CPU: `ganfold_kernels::relu`).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    ganfold_kernels::relu(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the environment says, the probe agrees with it (Candle reads the same variable),
    /// and with second order off a method that needs it gets an error saying how to turn it on.
    /// (The on case, and gradients through every layer with it, are tests/second_order.rs.)
    #[test]
    fn second_order_is_measured_and_required() {
        let on = std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok_and(|s| !s.is_empty() && s != "0");
        assert_eq!(second_order_enabled(), on);
        match require_second_order("a gradient penalty") {
            Ok(()) => assert!(on),
            Err(e) => assert!(!on && e.to_string().contains("CANDLE_GRAD_DO_NOT_DETACH=1"), "{e}"),
        }
    }

    /// Inside `frozen`, a conv/BN/linear stack gives its input the same gradient as outside, and
    /// its parameters none; outside, the parameters get theirs again.
    #[test]
    fn frozen_parameters_get_no_gradient_and_inputs_the_same_one() -> Result<()> {
        let dev = Device::Cpu;
        let vs = VarStore::new(DType::F64, &dev, Rng::new(3));
        let conv = conv2d(2, 4, 4, ConvCfg::new(2, 1), true, Init::Normal { mean: 0.0, std: 0.2 }, vs.pp("c"))?;
        let bn = batch_norm(4, vs.pp("bn"))?;
        let fc = linear(4 * 3 * 3, 1, vs.pp("fc"))?;
        let x = Var::from_tensor(&Rng::new(4).randn((5, 2, 6, 6), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)?;
        let f = || -> Result<Tensor> {
            let h = leaky_relu(&bn.forward_t(&conv.forward(x.as_tensor())?, true)?, 0.2)?;
            fc.forward(&h.flatten_from(1)?)?.sqr()?.sum_all()
        };
        let (free, cold) = (f()?.backward()?, frozen(f)?.backward()?);
        let dx = |g: &candle_core::backprop::GradStore| {
            g.get(x.as_tensor()).expect("input gradient").flatten_all()?.to_vec1::<f64>()
        };
        assert_eq!(dx(&free)?, dx(&cold)?);
        for (name, v) in vs.trainable_vars() {
            assert!(free.get(v.as_tensor()).is_some(), "{name} has a gradient outside frozen");
            assert!(cold.get(v.as_tensor()).is_none(), "{name} has a gradient inside frozen");
        }
        assert!(f()?.backward()?.get(&conv.weight).is_some(), "frozen is scoped");
        Ok(())
    }

    #[test]
    fn seeded_init_is_reproducible_and_named() -> Result<()> {
        let mk = |seed| {
            let vs = VarStore::new(DType::F32, &Device::Cpu, Rng::new(seed));
            linear(3, 2, vs.pp("fc")).unwrap();
            vs
        };
        let (a, b, c) = (mk(1), mk(1), mk(2));
        let ta = a.tensors();
        assert_eq!(ta.keys().cloned().collect::<Vec<_>>(), ["fc.bias", "fc.weight"]);
        assert_eq!(ta["fc.weight"].to_vec2::<f32>()?, b.tensors()["fc.weight"].to_vec2::<f32>()?);
        assert_ne!(ta["fc.weight"].to_vec2::<f32>()?, c.tensors()["fc.weight"].to_vec2::<f32>()?);
        assert_eq!(a.num_params(), 8);
        Ok(())
    }

    #[test]
    fn conv_shapes() -> Result<()> {
        let vs = VarStore::new(DType::F32, &Device::Cpu, Rng::new(0));
        let x = Tensor::zeros((2, 3, 28, 28), DType::F32, &Device::Cpu)?;
        let c = conv2d(3, 5, 4, ConvCfg::new(2, 1), true, Init::DCGAN, vs.pp("c"))?;
        let y = c.forward(&x)?;
        assert_eq!(y.dims(), &[2, 5, 14, 14]);
        let t = conv_transpose2d(5, 4, 4, ConvCfg::new(2, 1), true, Init::DCGAN, vs.pp("t"))?;
        assert_eq!(t.forward(&y)?.dims(), &[2, 4, 28, 28]);
        let t5 = conv_transpose2d(
            5,
            1,
            5,
            ConvCfg { stride: 2, padding: 2, output_padding: 1 },
            false,
            Init::DCGAN,
            vs.pp("t5"),
        )?;
        assert_eq!(t5.forward(&y)?.dims(), &[2, 1, 28, 28]);
        Ok(())
    }

    /// Train mode normalises with batch statistics (biased variance) and moves the running
    /// estimates by momentum 0.1 towards the batch mean and unbiased variance.
    #[test]
    fn batch_norm_statistics() -> Result<()> {
        let vs = VarStore::new(DType::F64, &Device::Cpu, Rng::new(0));
        let bn = batch_norm_with(2, false, Init::Const(1.0), vs.pp("bn"))?;
        let x = Tensor::new(&[[1.0f64, 10.0], [3.0, 10.0], [5.0, 40.0]], &Device::Cpu)?;
        let (y, st) = bn.forward_train(&x)?;
        assert_eq!(st.mean.to_vec1::<f64>()?, vec![3.0, 20.0]);
        let v0 = 8.0 / 3.0;
        let y = y.to_vec2::<f64>()?;
        assert!((y[0][0] - (-2.0 / (v0 + 1e-5f64).sqrt())).abs() < 1e-12);
        let rm = bn.running_mean.as_tensor().to_vec1::<f64>()?;
        let rv = bn.running_var.as_tensor().to_vec1::<f64>()?;
        assert!((rm[0] - 0.3).abs() < 1e-12 && (rm[1] - 2.0).abs() < 1e-12);
        assert!((rv[0] - (0.9 + 0.1 * 4.0)).abs() < 1e-12, "unbiased variance 4 for [1, 3, 5]");
        // Reusing the clean statistics reproduces the clean output exactly.
        let again = bn.forward_with_stats(&x, &st)?.to_vec2::<f64>()?;
        for (a, b) in again.iter().flatten().zip(y.iter().flatten()) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert_eq!(vs.trainable_vars().len(), 0, "running stats are buffers, not parameters");
        Ok(())
    }
}
