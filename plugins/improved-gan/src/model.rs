//! The generator of the authors' MNIST code: z ~ U(0, 1)^100 -> dense 500 + batch norm
//! (a learnt shift, no gain) + softplus -> the same again -> a weight-normalised dense layer to the
//! image with a sigmoid; images in [0, 1], mapped to ganfold's [-1, 1].

use candle_core::{Module, Result, Tensor};
use ganfold_core::Generator;
use ganfold_core::nn::{self, BatchNorm, Init, Linear, VsPath};
use ganfold_core::ssl::WnDense;

pub struct FmGen {
    hidden: Vec<(Linear, BatchNorm, Tensor)>,
    out: WnDense,
    latent: usize,
    dims: Vec<usize>,
    image: bool,
}

/// Lasagne's default dense-layer init (Glorot uniform).
fn glorot(inp: usize, out: usize) -> Init {
    let a = (6.0 / (inp + out) as f64).sqrt();
    Init::Uniform { lo: -a, hi: a }
}

impl FmGen {
    /// `dims`: the sample shape, (C, H, W) for images (a sigmoid output) or (dim,) for points (a
    /// linear output, our choice: the authors generate images only).
    pub fn new(latent: usize, width: usize, dims: &[usize], vs: VsPath) -> Result<Self> {
        let image = dims.len() == 3;
        let numel: usize = dims.iter().product();
        let mut hidden = vec![];
        let mut i = latent;
        for l in 0..2 {
            let p = vs.pp(&format!("h{l}"));
            let lin = nn::linear_with(i, width, false, glorot(i, width), p.pp("lin"))?;
            let bn = nn::batch_norm_with(width, false, Init::Const(1.0), p.pp("bn"))?;
            let shift = p.var("shift", width, Init::Const(0.0))?;
            hidden.push((lin, bn, shift));
            i = width;
        }
        let out = WnDense::with_init(i, numel, true, glorot(i, numel), vs.pp("out"))?;
        Ok(Self { hidden, out, latent, dims: dims.to_vec(), image })
    }

    /// Images in [-1, 1], (B, C, H, W); `train` uses the batch's statistics (and updates the
    /// running ones), as the authors always do when generating.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = z.clone();
        for (lin, bn, shift) in &self.hidden {
            let a = bn.forward_t(&lin.forward(&h)?, train)?.broadcast_add(&nn::param(shift))?;
            h = ganfold_core::loss::softplus(&a)?;
        }
        // 2 sigmoid(a) - 1 = tanh(a / 2): the authors' [0, 1] image on ganfold's [-1, 1] scale.
        let a = self.out.forward(&h)?;
        let x = if self.image { (a * 0.5)?.tanh()? } else { a };
        let mut shape = vec![z.dim(0)?];
        shape.extend_from_slice(&self.dims);
        x.reshape(shape)
    }
}

impl Generator for FmGen {
    fn latent_dim(&self) -> usize {
        self.latent
    }
    fn generate(&self, z: &Tensor) -> Result<Tensor> {
        self.forward_t(z, false)
    }
}
