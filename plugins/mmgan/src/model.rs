//! Networks, chosen from the data shape: MLPs for 2-D points (our choice; the paper has no toy
//! experiment) and the unconditional DCGAN MNIST pair for images (the MNIST branch of
//! `carpedm20/DCGAN-tensorflow`, which the paper forked, with every label concatenation removed,
//! since Alg. 1 uses no labels). The embedding f_D is the discriminator's last hidden layer, the
//! input of its logit layer (the paper takes it "from the last layer of the discriminator"; its
//! Fig. 2 image, which marks the layer, is not available to us).

use anyhow::bail;
use candle_core::{DType, Device, Module, Result, Tensor};
use ganfold_core::nn::{self, BatchNorm, Conv2d, ConvCfg, ConvTranspose2d, Init, Linear, VarStore};
use ganfold_core::{Discriminator, Generator, Rng, SampleShape};

// One generator per run: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum GNet {
    /// z -> hidden -> hidden -> dim, ReLU.
    Mlp { l1: Linear, l2: Linear, l3: Linear },
    /// z -> 1024 -> BN ReLU -> 128 (h/4)(w/4) -> BN ReLU -> ConvT5 s2 128 -> BN ReLU -> ConvT5 s2 c -> tanh.
    Conv {
        fc1: Linear,
        bn1: BatchNorm,
        fc2: Linear,
        bn2: BatchNorm,
        ct1: ConvTranspose2d,
        bn3: BatchNorm,
        ct2: ConvTranspose2d,
        h4: usize,
        w4: usize,
    },
}

pub struct MmGenerator {
    net: GNet,
    z_dim: usize,
    pub vs: VarStore,
}

enum DNet {
    /// dim -> hidden -> hidden (= f_D) -> 1, LReLU(0.2).
    Mlp { l1: Linear, l2: Linear, out: Linear },
    /// Conv5 s2 11 -> LReLU -> Conv5 s2 74 -> BN LReLU -> 1024 -> BN LReLU (= f_D) -> 1.
    Conv { c1: Conv2d, c2: Conv2d, bn2: BatchNorm, fc: Linear, bn3: BatchNorm, out: Linear },
}

pub struct MmDiscriminator {
    net: DNet,
    feat_dim: usize,
    pub vs: VarStore,
}

/// Checks that the image networks fit the data shape.
pub fn check_shape(shape: SampleShape) -> anyhow::Result<()> {
    match shape {
        SampleShape::Points { dim: 0 } => bail!("mmgan: points of dimension 0"),
        SampleShape::Points { .. } => Ok(()),
        SampleShape::Image { h, w, .. } if h % 4 != 0 || w % 4 != 0 || h < 4 || w < 4 => {
            bail!("mmgan: the DCGAN image networks need height and width divisible by 4 (got {h}x{w})")
        }
        SampleShape::Image { .. } => Ok(()),
    }
}

impl MmGenerator {
    pub fn new(shape: SampleShape, z_dim: usize, hidden: usize, device: &Device, rng: Rng) -> anyhow::Result<Self> {
        check_shape(shape)?;
        let vs = VarStore::new(DType::F32, device, rng);
        let net = match shape {
            SampleShape::Points { dim } => GNet::Mlp {
                l1: nn::linear(z_dim, hidden, vs.pp("l1"))?,
                l2: nn::linear(hidden, hidden, vs.pp("l2"))?,
                l3: nn::linear(hidden, dim, vs.pp("l3"))?,
            },
            SampleShape::Image { c, h, w } => {
                let (h4, w4) = (h / 4, w / 4);
                // k5 s2 p2 with output_padding 1 doubles the size, like TF "SAME" in the fork.
                let up = ConvCfg { stride: 2, padding: 2, output_padding: 1 };
                GNet::Conv {
                    fc1: nn::linear_with(z_dim, 1024, true, Init::DCGAN, vs.pp("fc1"))?,
                    bn1: nn::batch_norm(1024, vs.pp("bn1"))?,
                    fc2: nn::linear_with(1024, 128 * h4 * w4, true, Init::DCGAN, vs.pp("fc2"))?,
                    bn2: nn::batch_norm(128 * h4 * w4, vs.pp("bn2"))?,
                    ct1: nn::conv_transpose2d(128, 128, 5, up, true, Init::DCGAN, vs.pp("ct1"))?,
                    bn3: nn::batch_norm(128, vs.pp("bn3"))?,
                    ct2: nn::conv_transpose2d(128, c, 5, up, true, Init::DCGAN, vs.pp("ct2"))?,
                    h4,
                    w4,
                }
            }
        };
        Ok(Self { net, z_dim, vs })
    }

    /// G(z); `train` selects batch statistics in BatchNorm.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        match &self.net {
            GNet::Mlp { l1, l2, l3 } => l3.forward(&nn::relu(&l2.forward(&nn::relu(&l1.forward(z)?)?)?)?),
            GNet::Conv { fc1, bn1, fc2, bn2, ct1, bn3, ct2, h4, w4 } => {
                let b = z.dim(0)?;
                let x = bn1.forward_act(&fc1.forward(z)?, train, 0.0)?;
                let x = bn2.forward_act(&fc2.forward(&x)?, train, 0.0)?;
                let x = x.reshape((b, 128, *h4, *w4))?;
                let x = bn3.forward_act(&ct1.forward(&x)?, train, 0.0)?;
                // Deviation from the fork (sigmoid on [0,1] MNIST): tanh, ganfold images are in [-1,1].
                ct2.forward(&x)?.tanh()
            }
        }
    }
}

impl Generator for MmGenerator {
    fn latent_dim(&self) -> usize {
        self.z_dim
    }
    fn generate(&self, z: &Tensor) -> Result<Tensor> {
        self.forward_t(z, false)
    }
}

impl MmDiscriminator {
    pub fn new(shape: SampleShape, hidden: usize, device: &Device, rng: Rng) -> anyhow::Result<Self> {
        check_shape(shape)?;
        let vs = VarStore::new(DType::F32, device, rng);
        let (net, feat_dim) = match shape {
            SampleShape::Points { dim } => (
                DNet::Mlp {
                    l1: nn::linear(dim, hidden, vs.pp("l1"))?,
                    l2: nn::linear(hidden, hidden, vs.pp("l2"))?,
                    out: nn::linear(hidden, 1, vs.pp("out"))?,
                },
                hidden,
            ),
            SampleShape::Image { c, h, w } => {
                let down = ConvCfg::new(2, 2);
                // ceil(ceil(h/2)/2) = h/4 for h divisible by 4.
                let flat = 74 * (h / 4) * (w / 4);
                (
                    DNet::Conv {
                        c1: nn::conv2d(c, 11, 5, down, true, Init::DCGAN, vs.pp("c1"))?,
                        c2: nn::conv2d(11, 74, 5, down, true, Init::DCGAN, vs.pp("c2"))?,
                        bn2: nn::batch_norm(74, vs.pp("bn2"))?,
                        fc: nn::linear_with(flat, 1024, true, Init::DCGAN, vs.pp("fc"))?,
                        bn3: nn::batch_norm(1024, vs.pp("bn3"))?,
                        out: nn::linear_with(1024, 1, true, Init::DCGAN, vs.pp("out"))?,
                    },
                    1024,
                )
            }
        };
        Ok(Self { net, feat_dim, vs })
    }

    /// Dimension d of the embedding f_D.
    pub fn feat_dim(&self) -> usize {
        self.feat_dim
    }

    /// (logits (B, 1), embedding f_D (B, d)).
    pub fn forward_feat(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (f, out) = match &self.net {
            DNet::Mlp { l1, l2, out } => {
                let h = nn::leaky_relu(&l1.forward(x)?, 0.2)?;
                (nn::leaky_relu(&l2.forward(&h)?, 0.2)?, out)
            }
            DNet::Conv { c1, c2, bn2, fc, bn3, out } => {
                let h = c1.forward_act(x, 0.2)?;
                let h = bn2.forward_act(&c2.forward(&h)?, train, 0.2)?;
                let h = h.flatten_from(1)?;
                (bn3.forward_act(&fc.forward(&h)?, train, 0.2)?, out)
            }
        };
        Ok((out.forward(&f)?, f))
    }
}

impl Discriminator for MmDiscriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_feat(x, train)?.0)
    }
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_feat(x, train)?.1)
    }
}
