//! Networks: the local generator G(x, z) (encoder of x, coordinates added, decoder) and the
//! discriminator / (K+1)-class classifier, each sized for 28x28 images or for 2-D points.

use candle_core::{Module, Result, Tensor};
use ganfold_core::nn::{self, BatchNorm, Conv2d, ConvCfg, ConvTranspose2d, Init, Linear, VarStore};
use ganfold_core::{LocalGenerator, SampleShape};

/// Checks that LGAN's networks fit the data and says what to do otherwise.
pub fn check_shape(shape: SampleShape) -> anyhow::Result<()> {
    match shape {
        SampleShape::Image { c, h, w } if h == 28 && w == 28 && c >= 1 => Ok(()),
        SampleShape::Image { c, h, w } => {
            anyhow::bail!("lgan: the conv networks are sized for 28x28 images (MNIST-like), got {c}x{h}x{w}")
        }
        SampleShape::Points { dim } if dim >= 1 => Ok(()),
        SampleShape::Points { .. } => anyhow::bail!("lgan: points must have at least one dimension"),
    }
}

enum GenNet {
    /// 28x28: conv 4x4 s2 (->14), conv 4x4 s2 (->7), FC -> N | + z | LReLU, FC -> 2ngf*7*7,
    /// convT 4x4 s2 (->14), convT 4x4 s2 (->28), tanh. The paper's shape (Sec. 5.1: "a CNN to map
    /// x to a feature vector added with a noise vector of the same dimension ... then a
    /// deconvolutional network"), sized down for 28x28 and a 2-core CPU.
    Conv {
        e1: Conv2d,
        e2: Conv2d,
        efc: Linear,
        dfc: Linear,
        d1: ConvTranspose2d,
        d2: ConvTranspose2d,
        ngf: usize,
        /// Learnable per-coordinate gain and shift of the standardised code (`code_affine`).
        affine: Option<(Tensor, Tensor)>,
    },
    /// Points: MLP dim -> h -> N | + z | LReLU, N -> h -> h -> dim (no output squashing).
    Mlp { e1: Linear, e2: Linear, d1: Linear, d2: Linear, d3: Linear },
}

/// The local generator G(x, z).
///
/// Deviation: no BatchNorm in G (the authors' code has BN on both halves). Batch-coupled
/// normalisation makes the finite-difference Jacobian wrong by an O(1) term (shifting every row
/// of the `+delta` batch moves the batch mean, and that shift does not vanish as delta -> 0), and the
/// `LocalGenerator` contract evaluates G on arbitrary batches; without BN every sample's output
/// depends on that sample only, so `G(x, ±delta e_j)` differences are exact derivatives of one chart.
pub struct LocalGen {
    net: GenNet,
    n: usize,
    /// Footnote 3: G(x, z) = x + B(x, z) - B(x, 0), so G(x, 0) = x exactly.
    exact_locality: bool,
}

/// How G is built beyond its widths.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    /// Initial gain of a learnable per-coordinate affine map after the code's standardisation
    /// (`None`: standardised code only).
    pub code_gain: Option<f64>,
    pub exact_locality: bool,
}

impl LocalGen {
    /// Builds G with `n` coordinates and width `ngf` in `vs` (dtype from the store).
    pub fn new(shape: SampleShape, n: usize, ngf: usize, opts: GenOptions, vs: &VarStore) -> anyhow::Result<Self> {
        check_shape(shape)?;
        if n == 0 {
            anyhow::bail!("lgan: the number of local coordinates must be at least 1");
        }
        let net = match shape {
            SampleShape::Image { c, .. } => {
                let f = 2 * ngf * 49;
                // No BN, so PyTorch's default init (not DCGAN's N(0, 0.02), which needs BN to keep
                // activations from vanishing).
                let conv = |i, o, name: &str| {
                    nn::conv2d(i, o, 4, ConvCfg::new(2, 1), true, Init::torch_default(i * 16), vs.pp(name))
                };
                let convt = |i, o, name: &str| {
                    nn::conv_transpose2d(i, o, 4, ConvCfg::new(2, 1), true, Init::torch_default(o * 16), vs.pp(name))
                };
                GenNet::Conv {
                    e1: conv(c, ngf, "enc1")?,
                    e2: conv(ngf, 2 * ngf, "enc2")?,
                    efc: nn::linear(f, n, vs.pp("enc_fc"))?,
                    dfc: nn::linear(n, f, vs.pp("dec_fc"))?,
                    d1: convt(2 * ngf, ngf, "dec1")?,
                    d2: convt(ngf, c, "dec2")?,
                    ngf,
                    // Created after every layer, so the layers' initial weights do not depend on it.
                    affine: match opts.code_gain {
                        Some(g) => Some((
                            vs.pp("code").var("gain", n, Init::Const(g))?,
                            vs.pp("code").var("shift", n, Init::Const(0.0))?,
                        )),
                        None => None,
                    },
                }
            }
            SampleShape::Points { dim } => GenNet::Mlp {
                e1: nn::linear(dim, ngf, vs.pp("enc1"))?,
                e2: nn::linear(ngf, n, vs.pp("enc2"))?,
                d1: nn::linear(n, ngf, vs.pp("dec1"))?,
                d2: nn::linear(ngf, ngf, vs.pp("dec2"))?,
                d3: nn::linear(ngf, dim, vs.pp("dec3"))?,
            },
        };
        Ok(Self { net, n, exact_locality: opts.exact_locality })
    }

    /// The encoder's feature vector h(x), (B, N).
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        match &self.net {
            GenNet::Conv { e1, e2, efc, affine, .. } => {
                let h = e1.forward_act(x, 0.2)?;
                let h = e2.forward_act(&h, 0.2)?;
                let h = efc.forward(&h.flatten_from(1)?)?;
                // Deviation: the authors' encoder ends in an affine batch norm, which puts h(x)
                // on the scale of z ~ N(0, I) with a learnable gain and shift. We standardise
                // each sample's code over its N coordinates instead (batch-independent, so
                // finite differences stay exact), then apply the same learnable per-coordinate
                // gain and shift. Without the gain every code has norm sqrt(N): with unit-speed
                // tangents two chart centres can then be only a few units apart, less than
                // two MNIST digits are, and G collapses to one image (experiments/lgan-defaults.toml).
                let m = h.mean_keepdim(1)?;
                let c = h.broadcast_sub(&m)?;
                let v = c.sqr()?.mean_keepdim(1)?;
                let c = c.broadcast_div(&(v + 1e-5)?.sqrt()?)?;
                match affine {
                    Some((gain, shift)) => c.broadcast_mul(gain)?.broadcast_add(shift),
                    None => Ok(c),
                }
            }
            GenNet::Mlp { e1, e2, .. } => e2.forward(&nn::leaky_relu(&e1.forward(x)?, 0.2)?),
        }
    }

    /// The decoder applied to h(x) + z.
    pub fn decode(&self, code: &Tensor) -> Result<Tensor> {
        let h = nn::leaky_relu(code, 0.2)?;
        match &self.net {
            GenNet::Conv { dfc, d1, d2, ngf, .. } => {
                let b = h.dim(0)?;
                let h = nn::relu(&dfc.forward(&h)?)?.reshape((b, 2 * ngf, 7, 7))?;
                let h = nn::relu(&d1.forward(&h)?)?;
                d2.forward(&h)?.tanh()
            }
            GenNet::Mlp { d1, d2, d3, .. } => {
                let h = nn::relu(&d1.forward(&h)?)?;
                let h = nn::relu(&d2.forward(&h)?)?;
                d3.forward(&h)
            }
        }
    }
}

impl LocalGenerator for LocalGen {
    fn coord_dim(&self) -> usize {
        self.n
    }

    /// Paper Sec. 5.1: "feature vector added with a noise vector of the same dimension", so z is
    /// added to an N-dim encoder output (the authors' SSL code concatenates instead).
    fn forward_local(&self, x: &Tensor, z: &Tensor, _train: bool) -> Result<Tensor> {
        let h = self.encode(x)?;
        let out = self.decode(&(&h + z.to_dtype(x.dtype())?)?)?;
        if self.exact_locality {
            // Footnote 3: G(x, z) = x + B(x, z) - B(x, 0); G(x, 0) = x holds exactly, and the
            // tangents are B's.
            (out - self.decode(&h)?)? + x
        } else {
            Ok(out)
        }
    }
}

enum CriticNet {
    /// 28x28: conv 4x4 s2 (->14) LReLU, conv 4x4 s2 (->7) BN LReLU, conv 3x3 s2 (->4) BN LReLU.
    Conv { c1: Conv2d, c2: Conv2d, c3: Conv2d, bn2: BatchNorm, bn3: BatchNorm },
    /// Points: dim -> h -> h, LReLU.
    Mlp { l1: Linear, l2: Linear },
}

/// The discriminator of the generation mode: one real/fake logit, DCGAN layout with BN (the
/// paper's "same discriminator network as in DCGAN"). The SSL classifier is
/// `ganfold_core::ssl::NoisyMlp` (see `LganConfig::widths`).
pub struct Critic {
    net: CriticNet,
    head: Linear,
}

impl Critic {
    pub fn new(shape: SampleShape, ndf: usize, vs: &VarStore) -> anyhow::Result<Self> {
        check_shape(shape)?;
        let net = match shape {
            SampleShape::Image { c, .. } => CriticNet::Conv {
                c1: nn::conv2d(c, ndf, 4, ConvCfg::new(2, 1), false, Init::DCGAN, vs.pp("c1"))?,
                c2: nn::conv2d(ndf, 2 * ndf, 4, ConvCfg::new(2, 1), false, Init::DCGAN, vs.pp("c2"))?,
                c3: nn::conv2d(2 * ndf, 4 * ndf, 3, ConvCfg::new(2, 1), false, Init::DCGAN, vs.pp("c3"))?,
                bn2: nn::batch_norm(2 * ndf, vs.pp("bn2"))?,
                bn3: nn::batch_norm(4 * ndf, vs.pp("bn3"))?,
            },
            SampleShape::Points { dim } => {
                CriticNet::Mlp { l1: nn::linear(dim, ndf, vs.pp("l1"))?, l2: nn::linear(ndf, ndf, vs.pp("l2"))? }
            }
        };
        let feat = match &net {
            CriticNet::Conv { .. } => 4 * ndf * 16,
            CriticNet::Mlp { .. } => ndf,
        };
        let head = nn::linear_with(feat, 1, true, Init::DCGAN, vs.pp("head"))?;
        Ok(Self { net, head })
    }

    /// Features psi(x), (B, F): the flattened last block.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match &self.net {
            CriticNet::Conv { c1, c2, c3, bn2, bn3 } => {
                let h = c1.forward_act(x, 0.2)?;
                let h = bn2.forward_t(&c2.forward(&h)?, train)?;
                let h = bn3.forward_t(&c3.forward(&nn::leaky_relu(&h, 0.2)?)?, train)?;
                nn::leaky_relu(&h, 0.2)?.flatten_from(1)
            }
            CriticNet::Mlp { l1, l2 } => {
                let h = nn::leaky_relu(&l1.forward(x)?, 0.2)?;
                nn::leaky_relu(&l2.forward(&h)?, 0.2)
            }
        }
    }

    /// Logits, (B, 1).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.head.forward(&self.features_t(x, train)?)
    }
}

impl ganfold_core::Discriminator for Critic {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Critic::forward_t(self, x, train)
    }
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Critic::features_t(self, x, train)
    }
}
