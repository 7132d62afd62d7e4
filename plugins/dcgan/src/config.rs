//! DCGAN configuration. Defaults: Radford, Metz, Chintala, ICLR 2016 (lr 2e-4, beta1 0.5,
//! z of size 100), at the sizes of the PyTorch reference step in `scripts/bench/reference.py`.

use ganfold_core::nets::ArchChoice;
use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcganConfig {
    /// Latent size (DCGAN: 100).
    pub nz: usize,
    /// Generator base width (the reference step: 64).
    pub ngf: usize,
    /// Discriminator base width (the reference step: 64).
    pub ndf: usize,
    /// `auto` (conv nets for 28x28 images, MLPs for points), `conv` or `mlp`.
    pub arch: ArchChoice,
    /// Hidden width of the MLP variant (the 2-D toy benchmarks use 128).
    pub hidden: usize,
    /// Adam learning rates and betas (DCGAN: 2e-4, (0.5, 0.999)).
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Penalties added to the generator loss: `[{ name = "mmgan-correlation", weight = 1.0 }]`.
    pub regularizers: Vec<toml::Table>,
}

impl Default for DcganConfig {
    fn default() -> Self {
        Self {
            nz: 100,
            ngf: 64,
            ndf: 64,
            arch: ArchChoice::Auto,
            hidden: 128,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            regularizers: vec![],
        }
    }
}

impl DcganConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (k, v) in [("nz", self.nz), ("ngf", self.ngf), ("ndf", self.ndf), ("hidden", self.hidden)] {
            if v == 0 {
                anyhow::bail!("dcgan: `{k}` must be at least 1");
            }
        }
        for (name, lr) in [("lr_g", self.lr_g), ("lr_d", self.lr_d)] {
            self.adam(lr).validate(&format!("dcgan `{name}`"))?;
        }
        Ok(())
    }

    /// Adam at learning rate `lr` with the configured betas.
    pub fn adam(&self, lr: f64) -> AdamConfig {
        AdamConfig { lr, beta1: self.beta1, beta2: self.beta2, eps: 1e-8, weight_decay: 0.0 }
    }
}
