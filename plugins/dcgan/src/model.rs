//! The DCGAN networks every paper is compared against, plus MLPs for 2-D toys.
//!
//! 28x28 (as `shared/bench/torch_dcgan28.py`):
//! G: z -> Linear(nz, 2ngf*7*7) + BN + ReLU -> ConvT(2ngf -> ngf, 4, 2, 1) + BN + ReLU
//!      -> ConvT(ngf -> C, 4, 2, 1) + tanh
//! D: Conv(C -> ndf, 4, 2, 1) + LReLU(0.2) -> Conv(ndf -> 2ndf, 4, 2, 1) + BN + LReLU(0.2)
//!      -> Linear(2ndf*7*7 -> 1)
//! Weights N(0, 0.02), BN gamma N(1, 0.02) (Radford et al. 2016).

use candle_core::{Module, Result, Tensor};
use ganfold_core::nn::{self, BatchNorm, ConvCfg, Init, Linear, VsPath};

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
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Gen::Conv(g) => g.forward_t(z, train),
            Gen::Mlp(g) => g.forward_t(z, train),
        }
    }
}

impl Disc {
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
