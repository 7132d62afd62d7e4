//! The three players: generator G(z), pullback mapping Q(x) and loss network L(x, z).
//!
//! Two families, chosen from the data shape:
//! * images (C x H x W with H, W divisible by 4, e.g. 28x28 MNIST): DCGAN-like conv nets with
//!   strided / fractionally-strided convolutions and BatchNorm before ReLU in G and Q (paper
//!   Sec. 6.1); L has a conv x-branch, an FC z-branch and an FC joint head (Fig. 2), with weight
//!   normalisation and dropout 0.2 in front of its FC layers (Sec. 6);
//! * 2-D points: MLPs of the same structure (our choice; the paper has no toy experiment).

use crate::config::LsalConfig;
use candle_core::{D, DType, Device, Module, Result, Tensor};
use ganfold_core::nn::{self, BatchNorm, ConvCfg, Init, VsPath};
use ganfold_core::{Rng, SampleShape};

/// Leak of L's leaky ReLUs; the paper does not name L's nonlinearity (the authors'
/// `lsal-blocks` scripts use leaky ReLU).
const L_LEAK: f64 = 0.2;

fn maybe_detach(t: &Tensor, frozen: bool) -> Tensor {
    if frozen { t.detach() } else { t.clone() }
}

// ---------------------------------------------------------------------------------------------
// Weight-normalised layers (Salimans & Kingma 2016): w = g * v / ||v|| per output unit.

/// Linear layer with optional weight normalisation; `frozen` evaluates with detached
/// parameters, so that a G/Q loss through L never reaches L's parameters.
#[derive(Clone, Debug)]
pub struct WnLinear {
    pub v: Tensor,
    /// (out,) gains, or `None` without weight norm.
    pub g: Option<Tensor>,
    pub b: Tensor,
}

/// The paper gives no WN init. Ideally g = ||v|| so that w = v at init; our init API fills tensors from
/// distributions, so g starts at E||v|| = std * sqrt(fan_in) instead (same scale, no data-dependent init).
fn wn_gain_init(std: f64, fan_in: usize) -> Init {
    Init::Const(std * (fan_in as f64).sqrt())
}

pub fn wn_linear(inp: usize, out: usize, wn: bool, vs: VsPath) -> Result<WnLinear> {
    let std = 0.02; // DCGAN init N(0, 0.02^2); the paper gives no init.
    let v = vs.var("v", (out, inp), Init::Normal { mean: 0.0, std })?;
    let g = if wn { Some(vs.var("g", out, wn_gain_init(std, inp))?) } else { None };
    let b = vs.var("b", out, Init::Const(0.0))?;
    Ok(WnLinear { v, g, b })
}

impl WnLinear {
    /// The effective weight (out, in).
    pub fn weight(&self, frozen: bool) -> Result<Tensor> {
        let v = maybe_detach(&self.v, frozen);
        match &self.g {
            None => Ok(v),
            Some(g) => {
                let g = maybe_detach(g, frozen);
                // sqrt(x + eps): sqrt's backward at 0 is inf.
                let norm = (v.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
                v.broadcast_mul(&g.unsqueeze(1)?.broadcast_div(&norm)?)
            }
        }
    }

    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        x.matmul(&self.weight(frozen)?.t()?)?.broadcast_add(&maybe_detach(&self.b, frozen))
    }
}

/// Conv layer with optional weight normalisation (norm over in x k x k per output channel).
#[derive(Clone, Debug)]
pub struct WnConv {
    pub v: Tensor,
    pub g: Option<Tensor>,
    pub b: Tensor,
    pub cfg: ConvCfg,
}

pub fn wn_conv(inp: usize, out: usize, k: usize, cfg: ConvCfg, wn: bool, vs: VsPath) -> Result<WnConv> {
    let std = 0.02;
    let v = vs.var("v", (out, inp, k, k), Init::Normal { mean: 0.0, std })?;
    let g = if wn { Some(vs.var("g", out, wn_gain_init(std, inp * k * k))?) } else { None };
    let b = vs.var("b", out, Init::Const(0.0))?;
    Ok(WnConv { v, g, b, cfg })
}

impl WnConv {
    pub fn weight(&self, frozen: bool) -> Result<Tensor> {
        let v = maybe_detach(&self.v, frozen);
        match &self.g {
            None => Ok(v),
            Some(g) => {
                let g = maybe_detach(g, frozen);
                let norm = (v.sqr()?.sum_keepdim((1, 2, 3))? + 1e-12)?.sqrt()?;
                v.broadcast_mul(&g.reshape((g.dim(0)?, 1, 1, 1))?.broadcast_div(&norm)?)
            }
        }
    }

    pub fn forward(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let y = ganfold_core::nn::conv2d_by(x, &self.weight(frozen)?, self.cfg)?;
        let b = maybe_detach(&self.b, frozen);
        y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)
    }
}

// ---------------------------------------------------------------------------------------------
// Generator and pullback mapping

/// Whether the networks are the conv family (images) or MLPs (points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Conv { c: usize, h: usize, w: usize },
    Mlp { dim: usize },
}

impl Arch {
    /// Picks the family from the data shape; images need H and W divisible by 4 (two stride-2 stages).
    pub fn for_shape(shape: SampleShape) -> anyhow::Result<Self> {
        match shape {
            SampleShape::Image { c, h, w } => {
                if h % 4 != 0 || w % 4 != 0 || h < 8 || w < 8 {
                    anyhow::bail!(
                        "lsal: the conv networks halve the image twice, so height and width must be multiples \
                         of 4 and at least 8; got {shape}"
                    );
                }
                Ok(Arch::Conv { c, h, w })
            }
            SampleShape::Points { dim } => Ok(Arch::Mlp { dim }),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Arch::Conv { c, h, w } => format!("DCGAN-like conv nets for {c}x{h}x{w} images"),
            Arch::Mlp { dim } => format!("MLPs for {dim}-D points"),
        }
    }
}

/// G: Z -> X.
pub enum Gen {
    /// fc -> (2w, H/4, W/4), BN, ReLU, convT s2 -> (w, H/2, W/2), BN, ReLU, convT s2 -> (C, H, W), tanh.
    /// Deviation: tanh instead of the sigmoid of the authors' `lsal-blocks` scripts, because
    /// ganfold's images are in [-1, 1].
    Conv {
        fc: nn::Linear,
        bn0: BatchNorm,
        up1: nn::ConvTranspose2d,
        bn1: BatchNorm,
        up2: nn::ConvTranspose2d,
        c0: usize,
        h4: usize,
        w4: usize,
    },
    /// z -> h -> h -> dim with BN before ReLU, linear output.
    Mlp { l1: nn::Linear, bn1: BatchNorm, l2: nn::Linear, bn2: BatchNorm, out: nn::Linear },
}

pub fn generator(arch: Arch, dz: usize, cfg: &LsalConfig, vs: VsPath) -> Result<Gen> {
    let up = ConvCfg { stride: 2, padding: 1, output_padding: 0 };
    match arch {
        Arch::Conv { c, h, w } => {
            let c0 = 2 * cfg.width;
            let (h4, w4) = (h / 4, w / 4);
            Ok(Gen::Conv {
                fc: nn::linear_with(dz, c0 * h4 * w4, false, Init::DCGAN, vs.pp("fc"))?,
                bn0: nn::batch_norm(c0 * h4 * w4, vs.pp("bn0"))?,
                up1: nn::conv_transpose2d(c0, cfg.width, 4, up, false, Init::DCGAN, vs.pp("up1"))?,
                bn1: nn::batch_norm(cfg.width, vs.pp("bn1"))?,
                up2: nn::conv_transpose2d(cfg.width, c, 4, up, true, Init::DCGAN, vs.pp("up2"))?,
                c0,
                h4,
                w4,
            })
        }
        Arch::Mlp { dim } => Ok(Gen::Mlp {
            l1: nn::linear(dz, cfg.hidden, vs.pp("l1"))?,
            bn1: nn::batch_norm(cfg.hidden, vs.pp("bn1"))?,
            l2: nn::linear(cfg.hidden, cfg.hidden, vs.pp("l2"))?,
            bn2: nn::batch_norm(cfg.hidden, vs.pp("bn2"))?,
            out: nn::linear(cfg.hidden, dim, vs.pp("out"))?,
        }),
    }
}

impl Gen {
    pub fn forward(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Gen::Conv { fc, bn0, up1, bn1, up2, c0, h4, w4 } => {
                let x = bn0.forward_act(&fc.forward(z)?, train, 0.0)?;
                let x = x.reshape((z.dim(0)?, *c0, *h4, *w4))?;
                let x = bn1.forward_act(&up1.forward(&x)?, train, 0.0)?;
                up2.forward(&x)?.tanh()
            }
            Gen::Mlp { l1, bn1, l2, bn2, out } => {
                let x = bn1.forward_act(&l1.forward(z)?, train, 0.0)?;
                let x = bn2.forward_act(&l2.forward(&x)?, train, 0.0)?;
                out.forward(&x)
            }
        }
    }
}

/// Q: X -> Z, deterministic as the paper writes Q(x), or Gaussian as the authors' code
/// (`GaussianConditional`: the last layer gives a mean and a log standard deviation, and training
/// draws z_hat = mean + exp(log_std) eps; evaluation uses the mean).
pub struct Encoder {
    net: Enc,
    dz: usize,
    gaussian: bool,
}

pub enum Enc {
    /// conv s2 -> (w, H/2, W/2), BN, ReLU, conv s2 -> (2w, H/4, W/4), BN, ReLU, fc -> d_z.
    Conv {
        c1: nn::Conv2d,
        bn1: BatchNorm,
        c2: nn::Conv2d,
        bn2: BatchNorm,
        fc: nn::Linear,
    },
    Mlp {
        l1: nn::Linear,
        bn1: BatchNorm,
        l2: nn::Linear,
        bn2: BatchNorm,
        out: nn::Linear,
    },
}

pub fn encoder(arch: Arch, dz: usize, cfg: &LsalConfig, vs: VsPath) -> Result<Encoder> {
    let gaussian = cfg.encoder == crate::config::EncoderKind::Gaussian;
    let out = if gaussian { 2 * dz } else { dz };
    Ok(Encoder { net: encoder_net(arch, out, cfg, vs)?, dz, gaussian })
}

fn encoder_net(arch: Arch, dz: usize, cfg: &LsalConfig, vs: VsPath) -> Result<Enc> {
    let down = ConvCfg::new(2, 1);
    match arch {
        Arch::Conv { c, h, w } => Ok(Enc::Conv {
            c1: nn::conv2d(c, cfg.width, 4, down, false, Init::DCGAN, vs.pp("c1"))?,
            bn1: nn::batch_norm(cfg.width, vs.pp("bn1"))?,
            c2: nn::conv2d(cfg.width, 2 * cfg.width, 4, down, false, Init::DCGAN, vs.pp("c2"))?,
            bn2: nn::batch_norm(2 * cfg.width, vs.pp("bn2"))?,
            fc: nn::linear_with(2 * cfg.width * (h / 4) * (w / 4), dz, true, Init::DCGAN, vs.pp("fc"))?,
        }),
        Arch::Mlp { dim } => Ok(Enc::Mlp {
            l1: nn::linear(dim, cfg.hidden, vs.pp("l1"))?,
            bn1: nn::batch_norm(cfg.hidden, vs.pp("bn1"))?,
            l2: nn::linear(cfg.hidden, cfg.hidden, vs.pp("l2"))?,
            bn2: nn::batch_norm(cfg.hidden, vs.pp("bn2"))?,
            out: nn::linear(cfg.hidden, dz, vs.pp("out"))?,
        }),
    }
}

impl Encoder {
    /// The code of `x`: the mean (evaluation, or a deterministic Q) or, for the Gaussian Q in
    /// training, a draw from N(mean, exp(log_std)^2) with noise from `rng`.
    pub fn forward(&self, x: &Tensor, train: bool, rng: Option<&mut Rng>) -> Result<Tensor> {
        let out = self.net.forward(x, train)?;
        if !self.gaussian {
            return Ok(out);
        }
        let mean = out.narrow(1, 0, self.dz)?;
        match (train, rng) {
            (true, Some(rng)) => {
                // Clamped as a guard against overflow in exp; the authors' code does not clamp.
                let log_std = out.narrow(1, self.dz, self.dz)?.clamp(-8.0, 4.0)?;
                let eps = rng.randn(mean.shape(), 0.0, 1.0, mean.device())?.to_dtype(mean.dtype())?;
                mean + (log_std.exp()? * eps)?
            }
            // A column slice is strided; CUDA's matmul and conv kernels want contiguous input.
            _ => mean.contiguous(),
        }
    }
}

impl Enc {
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Enc::Conv { c1, bn1, c2, bn2, fc } => {
                let h = bn1.forward_act(&c1.forward(x)?, train, 0.0)?;
                let h = bn2.forward_act(&c2.forward(&h)?, train, 0.0)?;
                fc.forward(&h.flatten_from(1)?)
            }
            Enc::Mlp { l1, bn1, l2, bn2, out } => {
                let h = bn1.forward_act(&l1.forward(x)?, train, 0.0)?;
                let h = bn2.forward_act(&l2.forward(&h)?, train, 0.0)?;
                out.forward(&h)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loss network L(x, z) (Fig. 2)

/// x -> (conv net | fc) -> n features; z -> fc -> fc -> m features; concat -> `joint_layers`
/// hidden fc layers (leaky ReLU or maxout) -> fc -> out (1 output, or K for the semi-supervised
/// L(x, z, y)). No BatchNorm: WN plus dropout (paper Sec. 6).
pub struct LossNet {
    convs: Vec<WnConv>,
    /// Shape (C, H, W) of each conv layer's input, in forward order (for the dropout masks).
    conv_inputs: Vec<(usize, usize, usize)>,
    /// Drop probability on the image and on every conv layer's input (the authors' code).
    pub conv_dropout: f64,
    x_fc: WnLinear,
    z_fc: Vec<WnLinear>,
    /// The joint head: hidden layers (each `maxout` x j wide before its maxout), then the output.
    head: Vec<WnLinear>,
    maxout: usize,
    /// Input width of each FC layer, in forward order (for the dropout masks).
    fc_inputs: Vec<usize>,
    pub dropout: f64,
    pub out_dim: usize,
}

pub fn loss_net(arch: Arch, dz: usize, out_dim: usize, cfg: &LsalConfig, vs: VsPath) -> Result<LossNet> {
    let wn = cfg.weight_norm;
    let down = ConvCfg::new(2, 1);
    let (convs, conv_inputs, x_in, n, m, j) = match arch {
        // Fig. 2 caption: "All convolution layers have a stride of two".
        Arch::Conv { c, h, w } => {
            let convs = vec![
                wn_conv(c, cfg.width, 4, down, wn, vs.pp("xc1"))?,
                wn_conv(cfg.width, 2 * cfg.width, 4, down, wn, vs.pp("xc2"))?,
            ];
            let inputs = vec![(c, h, w), (cfg.width, h / 2, w / 2)];
            (convs, inputs, 2 * cfg.width * (h / 4) * (w / 4), 256, 128, 256)
        }
        Arch::Mlp { dim } => (vec![], vec![], dim, cfg.hidden, cfg.hidden, cfg.hidden),
    };
    let layers = cfg.joint_layers;
    let x_fc = wn_linear(x_in, n, wn, vs.pp("xfc"))?;
    let z_fc = vec![wn_linear(dz, m, wn, vs.pp("zfc1"))?, wn_linear(m, m, wn, vs.pp("zfc2"))?];
    // Layer k's input: the concatenation for the first, j for the others (and for the output).
    let mut head = vec![];
    let mut fc_inputs = vec![x_in, dz, m];
    for k in 0..layers {
        let inp = if k == 0 { n + m } else { j };
        head.push(wn_linear(inp, j * cfg.joint_maxout, wn, vs.pp(&format!("jfc{}", k + 1)))?);
        fc_inputs.push(inp);
    }
    head.push(wn_linear(j, out_dim, wn, vs.pp(&format!("jfc{}", layers + 1)))?);
    fc_inputs.push(j);
    Ok(LossNet {
        convs,
        conv_inputs,
        conv_dropout: cfg.conv_dropout,
        x_fc,
        z_fc,
        head,
        maxout: cfg.joint_maxout,
        fc_inputs,
        dropout: cfg.dropout,
        out_dim,
    })
}

/// Dropout masks for one L forward (already scaled by 1/(1-p)): one per FC layer and one per
/// conv layer's input (the image first). Drawn once per step and shared by the L-update and
/// G/Q-update passes, which then see the same network (the authors' `lsal-blocks` code runs a
/// single forward for both updates).
pub struct Masks {
    pub fc: Vec<Tensor>,
    pub conv: Vec<Tensor>,
}

impl Masks {
    /// The same masks for `k` stacked copies of the batch (rows i, b + i, 2b + i, ... share one mask).
    pub fn repeat(&self, k: usize) -> Result<Masks> {
        let rep = |v: &[Tensor]| -> Result<Vec<Tensor>> { v.iter().map(|t| Tensor::cat(&vec![t; k], 0)).collect() };
        Ok(Masks { fc: rep(&self.fc)?, conv: rep(&self.conv)? })
    }
}

/// An inverted-dropout mask of `shape`: 0 with probability p, else 1 / (1 - p).
fn mask(shape: &[usize], p: f64, rng: &mut Rng, dtype: DType, dev: &Device) -> Result<Tensor> {
    let u = rng.rand(shape, 0.0, 1.0, dev)?;
    u.ge(p)?.to_dtype(dtype)? * (1.0 / (1.0 - p))
}

impl LossNet {
    /// Draws the masks for a forward on `b` rows (inverted dropout, keep with prob 1 - p).
    pub fn draw_masks(&self, b: usize, rng: &mut Rng, dtype: DType, dev: &Device) -> Result<Option<Masks>> {
        if self.dropout <= 0.0 && self.conv_dropout <= 0.0 {
            return Ok(None);
        }
        let mut fc = vec![];
        if self.dropout > 0.0 {
            for &d in &self.fc_inputs {
                fc.push(mask(&[b, d], self.dropout, rng, dtype, dev)?);
            }
        }
        let mut conv = vec![];
        if self.conv_dropout > 0.0 {
            for &(c, h, w) in &self.conv_inputs {
                conv.push(mask(&[b, c, h, w], self.conv_dropout, rng, dtype, dev)?);
            }
        }
        Ok(Some(Masks { fc, conv }))
    }

    /// L(x, z): (B, out_dim). `masks`: dropout (training) or `None` (evaluation).
    /// `frozen`: evaluate with detached parameters (the G/Q pass).
    pub fn forward(&self, x: &Tensor, z: &Tensor, masks: Option<&Masks>, frozen: bool) -> Result<Tensor> {
        let drop = |t: Tensor, i: usize| -> Result<Tensor> {
            match masks.and_then(|m| m.fc.get(i)) {
                Some(m) => t.mul(m),
                None => Ok(t),
            }
        };
        let mut h = x.clone();
        for (i, c) in self.convs.iter().enumerate() {
            if let Some(m) = masks.and_then(|m| m.conv.get(i)) {
                h = h.mul(m)?;
            }
            h = nn::leaky_relu(&c.forward(&h, frozen)?, L_LEAK)?;
        }
        let h = h.flatten_from(1)?;
        let hx = nn::leaky_relu(&self.x_fc.forward(&drop(h, 0)?, frozen)?, L_LEAK)?;
        let hz = nn::leaky_relu(&self.z_fc[0].forward(&drop(z.clone(), 1)?, frozen)?, L_LEAK)?;
        let hz = nn::leaky_relu(&self.z_fc[1].forward(&drop(hz, 2)?, frozen)?, L_LEAK)?;
        let mut j = Tensor::cat(&[hx, hz], D::Minus1)?;
        let (hidden, out) = self.head.split_at(self.head.len() - 1);
        for (k, layer) in hidden.iter().enumerate() {
            let a = layer.forward(&drop(j, 3 + k)?, frozen)?;
            j = if self.maxout > 1 {
                let (b, w) = a.dims2()?;
                a.reshape((b, w / self.maxout, self.maxout))?.max(D::Minus1)?
            } else {
                nn::leaky_relu(&a, L_LEAK)?
            };
        }
        // Linear output: L is a real-valued loss (no ReLU or sigmoid, as in the authors' code).
        out[0].forward(&drop(j, 3 + hidden.len())?, frozen)
    }
}
