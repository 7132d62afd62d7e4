//! The networks several papers share, chosen from the data shape in one place ([`Arch`]).
//!
//! The DCGAN pair for 28x28 images, the baseline every paper is compared against and
//! LCC-GAN's GAN players (the sizes of the PyTorch reference step `scripts/bench/reference.py`):
//! G: z -> Linear(nz, 2ngf*7*7) + BN + ReLU -> ConvT(2ngf -> ngf, 4, 2, 1) + BN + ReLU
//!      -> ConvT(ngf -> C, 4, 2, 1) + tanh
//! D: Conv(C -> ndf, 4, 2, 1) + LReLU(0.2) -> Conv(ndf -> 2ndf, 4, 2, 1) + BN + LReLU(0.2)
//!      -> Linear(2ndf*7*7 -> 1)
//! Weights N(0, 0.02), BN gamma N(1, 0.02) (Radford et al. 2016). For 2-D points: MLPs with
//! two hidden layers.

use crate::data::SampleShape;
use crate::nn::{self, BatchNorm, ConvCfg, Init, Linear, VsPath};
use candle_core::{Module, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The `arch` config key: which family of networks to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchChoice {
    /// Conv nets for images they fit, MLPs for points.
    #[default]
    Auto,
    Conv,
    Mlp,
}

/// Which image sizes a method's conv nets take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvFit {
    /// Exactly 28x28 (the DCGAN pair above).
    Only28,
    /// Height and width multiples of 4 and at least 8 (two stride-2 stages).
    MultipleOf4,
}

impl ConvFit {
    fn accepts(self, h: usize, w: usize) -> bool {
        match self {
            ConvFit::Only28 => h == 28 && w == 28,
            ConvFit::MultipleOf4 => h.is_multiple_of(4) && w.is_multiple_of(4) && h >= 8 && w >= 8,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            ConvFit::Only28 => "28x28 images",
            ConvFit::MultipleOf4 => "images whose height and width are multiples of 4, at least 8",
        }
    }
}

/// The network family for a data shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Conv {
        c: usize,
        h: usize,
        w: usize,
    },
    /// An MLP on the flattened sample of `dim` values.
    Mlp {
        dim: usize,
    },
}

impl Arch {
    /// The one rule every plugin uses: `auto` builds conv nets for images that `fit` takes and
    /// MLPs for points; `conv` insists on conv nets; `mlp` flattens anything. `method` names the
    /// caller in the error.
    pub fn choose(choice: ArchChoice, shape: SampleShape, fit: ConvFit, method: &str) -> anyhow::Result<Self> {
        match (choice, shape) {
            (ArchChoice::Mlp, s) | (ArchChoice::Auto, s @ SampleShape::Points { .. }) => {
                Ok(Arch::Mlp { dim: s.numel() })
            }
            (_, SampleShape::Image { c, h, w }) if fit.accepts(h, w) => Ok(Arch::Conv { c, h, w }),
            (_, s) => anyhow::bail!(
                "{method}: the conv networks are for {}, dataset holds {s} (set arch = \"mlp\" for MLPs)",
                fit.describe()
            ),
        }
    }

    pub fn is_conv(self) -> bool {
        matches!(self, Arch::Conv { .. })
    }
}

pub struct ConvGenerator {
    fc: Linear,
    bn0: BatchNorm,
    up1: nn::ConvTranspose2d,
    bn1: BatchNorm,
    up2: nn::ConvTranspose2d,
    ngf: usize,
}

/// (B, nz) -> (B, channels, 28, 28) in [-1, 1].
pub fn conv_generator(nz: usize, ngf: usize, channels: usize, vs: VsPath) -> Result<ConvGenerator> {
    let s2 = ConvCfg::new(2, 1);
    Ok(ConvGenerator {
        fc: nn::linear_with(nz, 2 * ngf * 49, true, Init::DCGAN, vs.pp("fc"))?,
        bn0: nn::batch_norm(2 * ngf * 49, vs.pp("bn0"))?,
        up1: nn::conv_transpose2d(2 * ngf, ngf, 4, s2, true, Init::DCGAN, vs.pp("up1"))?,
        bn1: nn::batch_norm(ngf, vs.pp("bn1"))?,
        up2: nn::conv_transpose2d(ngf, channels, 4, s2, true, Init::DCGAN, vs.pp("up2"))?,
        ngf,
    })
}

impl ConvGenerator {
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let b = z.dim(0)?;
        let h = self.bn0.forward_act(&self.fc.forward(z)?, train, 0.0)?.reshape((b, 2 * self.ngf, 7, 7))?;
        let h = self.bn1.forward_act(&self.up1.forward(&h)?, train, 0.0)?;
        self.up2.forward(&h)?.tanh()
    }
}

pub struct ConvDiscriminator {
    c1: nn::Conv2d,
    c2: nn::Conv2d,
    bn2: BatchNorm,
    fc: Linear,
}

/// (B, channels, 28, 28) -> logits (B, 1); features (B, 2ndf*49).
pub fn conv_discriminator(ndf: usize, channels: usize, vs: VsPath) -> Result<ConvDiscriminator> {
    let s2 = ConvCfg::new(2, 1);
    Ok(ConvDiscriminator {
        c1: nn::conv2d(channels, ndf, 4, s2, true, Init::DCGAN, vs.pp("c1"))?,
        c2: nn::conv2d(ndf, 2 * ndf, 4, s2, true, Init::DCGAN, vs.pp("c2"))?,
        bn2: nn::batch_norm(2 * ndf, vs.pp("bn2"))?,
        fc: nn::linear_with(2 * ndf * 49, 1, true, Init::DCGAN, vs.pp("fc"))?,
    })
}

impl ConvDiscriminator {
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.c1.forward_act(x, 0.2)?;
        let h = self.bn2.forward_act(&self.c2.forward(&h)?, train, 0.2)?;
        h.flatten_from(1)
    }
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.fc.forward(&self.features_t(x, train)?)
    }
    /// Logits from [`features_t`](Self::features_t).
    pub fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.fc.forward(features)
    }
}

/// Two-hidden-layer MLP generator (the 2-D toy benchmarks: ReLU, width 128); output reshaped
/// to `out_shape`, tanh only for images.
pub struct MlpGenerator {
    l1: Linear,
    l2: Linear,
    l3: Linear,
    out_shape: Vec<usize>,
    tanh: bool,
}

pub fn mlp_generator(nz: usize, hidden: usize, out_shape: &[usize], tanh: bool, vs: VsPath) -> Result<MlpGenerator> {
    let out: usize = out_shape.iter().product();
    Ok(MlpGenerator {
        l1: nn::linear(nz, hidden, vs.pp("l1"))?,
        l2: nn::linear(hidden, hidden, vs.pp("l2"))?,
        l3: nn::linear(hidden, out, vs.pp("l3"))?,
        out_shape: out_shape.to_vec(),
        tanh,
    })
}

impl MlpGenerator {
    pub fn forward_t(&self, z: &Tensor, _train: bool) -> Result<Tensor> {
        let h = nn::relu(&self.l2.forward(&nn::relu(&self.l1.forward(z)?)?)?)?;
        let y = self.l3.forward(&h)?;
        let y = if self.tanh { y.tanh()? } else { y };
        let mut dims = vec![z.dim(0)?];
        dims.extend(&self.out_shape);
        y.reshape(dims)
    }
}

/// Two-hidden-layer MLP discriminator with LeakyReLU(0.2); features = last hidden layer.
pub struct MlpDiscriminator {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

pub fn mlp_discriminator(inp: usize, hidden: usize, vs: VsPath) -> Result<MlpDiscriminator> {
    Ok(MlpDiscriminator {
        l1: nn::linear(inp, hidden, vs.pp("l1"))?,
        l2: nn::linear(hidden, hidden, vs.pp("l2"))?,
        l3: nn::linear(hidden, 1, vs.pp("l3"))?,
    })
}

impl MlpDiscriminator {
    pub fn features_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let x = x.flatten_from(1)?;
        nn::leaky_relu(&self.l2.forward(&nn::leaky_relu(&self.l1.forward(&x)?, 0.2)?)?, 0.2)
    }
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.l3.forward(&self.features_t(x, train)?)
    }
    pub fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.l3.forward(features)
    }
}

/// Either architecture behind one interface.
pub enum Gen {
    Conv(ConvGenerator),
    Mlp(MlpGenerator),
}

pub enum Disc {
    Conv(ConvDiscriminator),
    Mlp(MlpDiscriminator),
}

impl Gen {
    /// The DCGAN generator for `arch` (a [`Arch::Conv`] must be 28x28), else an MLP of width
    /// `hidden` whose output takes `shape` (tanh for images).
    pub fn new(arch: Arch, shape: SampleShape, nz: usize, ngf: usize, hidden: usize, vs: VsPath) -> Result<Self> {
        Ok(match arch {
            Arch::Conv { c, .. } => Gen::Conv(conv_generator(nz, ngf, c, vs)?),
            Arch::Mlp { .. } => Gen::Mlp(mlp_generator(nz, hidden, &shape.dims(), shape.is_image(), vs)?),
        })
    }
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Gen::Conv(g) => g.forward_t(z, train),
            Gen::Mlp(g) => g.forward_t(z, train),
        }
    }
}

impl Disc {
    /// The DCGAN discriminator for `arch` (a [`Arch::Conv`] must be 28x28), else an MLP of
    /// width `hidden`.
    pub fn new(arch: Arch, ndf: usize, hidden: usize, vs: VsPath) -> Result<Self> {
        Ok(match arch {
            Arch::Conv { c, .. } => Disc::Conv(conv_discriminator(ndf, c, vs)?),
            Arch::Mlp { dim } => Disc::Mlp(mlp_discriminator(dim, hidden, vs)?),
        })
    }
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Disc::Conv(d) => d.forward_t(x, train),
            Disc::Mlp(d) => d.forward_t(x, train),
        }
    }
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Disc::Conv(d) => d.features_t(x, train),
            Disc::Mlp(d) => d.features_t(x, train),
        }
    }
    pub fn head(&self, features: &Tensor) -> Result<Tensor> {
        match self {
            Disc::Conv(d) => d.head(features),
            Disc::Mlp(d) => d.head(features),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::VarStore;
    use crate::rng::Rng;
    use candle_core::{DType, Device};

    #[test]
    fn one_rule_picks_the_networks_from_the_shape() {
        let img = SampleShape::Image { c: 3, h: 28, w: 28 };
        let big = SampleShape::Image { c: 1, h: 32, w: 32 };
        let pts = SampleShape::Points { dim: 2 };
        let only28 = |c, s| Arch::choose(c, s, ConvFit::Only28, "t");
        assert_eq!(only28(ArchChoice::Auto, img).unwrap(), Arch::Conv { c: 3, h: 28, w: 28 });
        assert_eq!(only28(ArchChoice::Auto, pts).unwrap(), Arch::Mlp { dim: 2 });
        assert_eq!(only28(ArchChoice::Mlp, img).unwrap(), Arch::Mlp { dim: 3 * 28 * 28 });
        let e = only28(ArchChoice::Auto, big).unwrap_err().to_string();
        assert!(e.contains("t: the conv networks are for 28x28 images") && e.contains("arch = \"mlp\""), "{e}");
        assert!(only28(ArchChoice::Conv, pts).is_err());
        let m4 = Arch::choose(ArchChoice::Conv, big, ConvFit::MultipleOf4, "t").unwrap();
        assert_eq!(m4, Arch::Conv { c: 1, h: 32, w: 32 });
        assert!(
            Arch::choose(ArchChoice::Auto, SampleShape::Image { c: 1, h: 30, w: 30 }, ConvFit::MultipleOf4, "t")
                .is_err()
        );
    }

    #[test]
    fn the_config_spelling_of_arch() {
        #[derive(Deserialize)]
        struct C {
            arch: ArchChoice,
        }
        let c: C = toml::from_str("arch = \"mlp\"").unwrap();
        assert_eq!(c.arch, ArchChoice::Mlp);
        assert!(toml::from_str::<C>("arch = \"cnn\"").is_err());
    }

    #[test]
    fn shapes_of_both_families() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        for (shape, out) in [
            (SampleShape::Image { c: 1, h: 28, w: 28 }, vec![5, 1, 28, 28]),
            (SampleShape::Points { dim: 2 }, vec![5, 2]),
        ] {
            let arch = Arch::choose(ArchChoice::Auto, shape, ConvFit::Only28, "t")?;
            let vs = VarStore::new(DType::F32, &dev, Rng::new(0));
            let g = Gen::new(arch, shape, 8, 4, 16, vs.root().pp("g"))?;
            let d = Disc::new(arch, 4, 16, vs.root().pp("d"))?;
            let x = g.forward_t(&Rng::new(1).randn((5, 8), 0.0, 1.0, &dev)?, true)?;
            assert_eq!(x.dims(), out.as_slice());
            assert_eq!(d.forward_t(&x, true)?.dims(), &[5, 1]);
            let f = d.features_t(&x, false)?;
            assert_eq!(d.head(&f)?.dims(), &[5, 1]);
        }
        Ok(())
    }
}
