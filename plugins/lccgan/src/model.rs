//! Networks: the autoencoder (stage 1) and the GAN players (stage 3).
//!
//! Images (1x28x28 or Cx28x28) use DCGAN-style conv nets; 2-D point data uses MLPs (chosen
//! automatically, see [`Arch::choose`]). The paper gives no AE architecture; following the
//! authors' code (guoyongcs/LCCGAN), the encoder is the
//! discriminator's body with a dB-dim head and the decoder has the generator's architecture;
//! the decoder is not reused as the generator (G is trained from scratch).
//!
//! On images the GAN players are the foundation's DCGAN networks (`ganfold_core::nets`), so
//! LCC-GAN and the DCGAN baseline share G and D; the autoencoder uses the conv nets below.
//! Deviation: the paper builds 64x64 DCGANs with He init (paper, experimental setup); MNIST here is 28x28 and the
//! init is DCGAN's N(0, 0.02).

use candle_core::{Module, Result, Tensor};
use ganfold_core::nets::Arch;
use ganfold_core::nn::{self, BatchNorm, ConvCfg, Init, VsPath};

/// Generator / decoder: (B, nz) -> (B, C, 28, 28) in [-1, 1] (tanh), or (B, dim) for points.
pub enum GenNet {
    /// The foundation's DCGAN generator (stage 3 on images: the same G as `ganfold train dcgan`).
    Dcgan {
        nz: usize,
        net: ganfold_core::nets::ConvGenerator,
    },
    Conv {
        nz: usize,
        ct1: nn::ConvTranspose2d,
        bn1: BatchNorm,
        ct2: nn::ConvTranspose2d,
        bn2: BatchNorm,
        ct3: nn::ConvTranspose2d,
    },
    Mlp {
        nz: usize,
        l1: nn::Linear,
        l2: nn::Linear,
        l3: nn::Linear,
    },
}

impl GenNet {
    /// `width`: ngf (conv: 4*ngf -> 2*ngf channels) or the MLP hidden size.
    pub fn new(arch: Arch, nz: usize, width: usize, vs: VsPath) -> Result<Self> {
        Ok(match arch {
            Arch::Conv { c, .. } => GenNet::Conv {
                nz,
                // (nz,1,1) -> (4ngf,7,7) -> (2ngf,14,14) -> (c,28,28)
                ct1: nn::conv_transpose2d(nz, 4 * width, 7, ConvCfg::new(1, 0), false, Init::DCGAN, vs.pp("ct1"))?,
                bn1: nn::batch_norm(4 * width, vs.pp("bn1"))?,
                ct2: nn::conv_transpose2d(
                    4 * width,
                    2 * width,
                    4,
                    ConvCfg::new(2, 1),
                    false,
                    Init::DCGAN,
                    vs.pp("ct2"),
                )?,
                bn2: nn::batch_norm(2 * width, vs.pp("bn2"))?,
                ct3: nn::conv_transpose2d(2 * width, c, 4, ConvCfg::new(2, 1), false, Init::DCGAN, vs.pp("ct3"))?,
            },
            Arch::Mlp { dim } => GenNet::Mlp {
                nz,
                l1: nn::linear(nz, width, vs.pp("l1"))?,
                l2: nn::linear(width, width, vs.pp("l2"))?,
                l3: nn::linear(width, dim, vs.pp("l3"))?,
            },
        })
    }

    /// The GAN's generator: the DCGAN baseline's network on images, the MLP on points.
    pub fn gan(arch: Arch, nz: usize, width: usize, vs: VsPath) -> Result<Self> {
        match arch {
            Arch::Conv { c, .. } => {
                Ok(GenNet::Dcgan { nz, net: ganfold_core::nets::conv_generator(nz, width, c, vs)? })
            }
            Arch::Mlp { .. } => Self::new(arch, nz, width, vs),
        }
    }

    pub fn nz(&self) -> usize {
        match self {
            GenNet::Conv { nz, .. } | GenNet::Mlp { nz, .. } | GenNet::Dcgan { nz, .. } => *nz,
        }
    }

    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            GenNet::Conv { nz, ct1, bn1, ct2, bn2, ct3 } => {
                let x = z.reshape((z.dim(0)?, *nz, 1, 1))?;
                let x = bn1.forward_act(&ct1.forward(&x)?, train, 0.0)?;
                let x = bn2.forward_act(&ct2.forward(&x)?, train, 0.0)?;
                ct3.forward(&x)?.tanh()
            }
            GenNet::Mlp { l1, l2, l3, .. } => l3.forward(&nn::relu(&l2.forward(&nn::relu(&l1.forward(z)?)?)?)?),
            GenNet::Dcgan { net, .. } => net.forward_t(z, train),
        }
    }
}

impl ganfold_core::Generator for GenNet {
    fn latent_dim(&self) -> usize {
        self.nz()
    }
    fn generate(&self, z: &Tensor) -> Result<Tensor> {
        self.forward_t(z, false)
    }
}

/// Discriminator / encoder: (B, ...) -> (B, out) (logits for D, the embedding for the encoder).
pub enum DiscNet {
    /// The foundation's DCGAN discriminator (stage 3 on images).
    Dcgan(ganfold_core::nets::ConvDiscriminator),
    Conv {
        c1: nn::Conv2d,
        c2: nn::Conv2d,
        bn2: BatchNorm,
        c3: nn::Conv2d,
    },
    Mlp {
        l1: nn::Linear,
        l2: nn::Linear,
        l3: nn::Linear,
    },
}

impl DiscNet {
    pub fn new(arch: Arch, out: usize, width: usize, vs: VsPath) -> Result<Self> {
        Ok(match arch {
            Arch::Conv { c, .. } => DiscNet::Conv {
                // (c,28,28) -> (ndf,14,14) -> (2ndf,7,7) -> (out,1,1)
                c1: nn::conv2d(c, width, 4, ConvCfg::new(2, 1), false, Init::DCGAN, vs.pp("c1"))?,
                c2: nn::conv2d(width, 2 * width, 4, ConvCfg::new(2, 1), false, Init::DCGAN, vs.pp("c2"))?,
                bn2: nn::batch_norm(2 * width, vs.pp("bn2"))?,
                c3: nn::conv2d(2 * width, out, 7, ConvCfg::new(1, 0), true, Init::DCGAN, vs.pp("c3"))?,
            },
            Arch::Mlp { dim } => DiscNet::Mlp {
                l1: nn::linear(dim, width, vs.pp("l1"))?,
                l2: nn::linear(width, width, vs.pp("l2"))?,
                l3: nn::linear(width, out, vs.pp("l3"))?,
            },
        })
    }

    /// The GAN's discriminator: the DCGAN baseline's network on images, the MLP on points.
    pub fn gan(arch: Arch, width: usize, vs: VsPath) -> Result<Self> {
        match arch {
            Arch::Conv { c, .. } => Ok(DiscNet::Dcgan(ganfold_core::nets::conv_discriminator(width, c, vs)?)),
            Arch::Mlp { .. } => Self::new(arch, 1, width, vs),
        }
    }

    /// The last hidden layer, flattened.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            DiscNet::Conv { c1, c2, bn2, .. } => {
                let h = c1.forward_act(x, 0.2)?;
                nn::leaky_relu(&bn2.forward_t(&c2.forward(&h)?, train)?, 0.2)
            }
            DiscNet::Mlp { l1, l2, .. } => {
                let h = nn::leaky_relu(&l1.forward(x)?, 0.2)?;
                nn::leaky_relu(&l2.forward(&h)?, 0.2)
            }
            DiscNet::Dcgan(net) => net.features_t(x, train),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let f = self.features_t(x, train)?;
        match self {
            DiscNet::Conv { c3, .. } => c3.forward(&f)?.flatten_from(1),
            DiscNet::Mlp { l3, .. } => l3.forward(&f),
            DiscNet::Dcgan(net) => net.head(&f),
        }
    }
}

impl ganfold_core::Discriminator for DiscNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        DiscNet::forward_t(self, x, train)
    }
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        DiscNet::features_t(self, x, train)?.flatten_from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use ganfold_core::Rng;
    use ganfold_core::nn::VarStore;

    /// Shapes and output range of the networks.
    #[test]
    fn shapes_and_range() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let arch = Arch::Conv { c: 1, h: 28, w: 28 };
        let vs = VarStore::new(DType::F32, &dev, Rng::new(0));
        let g = GenNet::new(arch, 7, 4, vs.pp("g"))?;
        let d = DiscNet::new(arch, 1, 4, vs.pp("d"))?;
        let e = DiscNet::new(arch, 7, 4, vs.pp("e"))?;
        let z = Rng::new(1).randn((3, 7), 0.0, 3.0, &dev)?;
        let x = g.forward_t(&z, true)?;
        assert_eq!(x.dims(), &[3, 1, 28, 28]);
        let m = x.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(m <= 1.0);
        assert_eq!(d.forward_t(&x, true)?.dims(), &[3, 1]);
        let gd = GenNet::gan(arch, 7, 4, vs.pp("gg"))?;
        let dd = DiscNet::gan(arch, 4, vs.pp("dd"))?;
        assert_eq!(dd.forward_t(&gd.forward_t(&z, true)?, true)?.dims(), &[3, 1]);
        assert_eq!(e.forward_t(&x, false)?.dims(), &[3, 7]);
        Ok(())
    }
}
