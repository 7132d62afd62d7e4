//! DCGAN configuration. Defaults: Radford, Metz, Chintala, ICLR 2016 (lr 2e-4, beta1 0.5,
//! z of size 100), at the sizes of the PyTorch reference step in `scripts/bench/reference.py`.

use ganfold_core::nets::ArchChoice;
use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcganConfig {
    /// Size of the noise z (DCGAN: 100).
    pub latent_dim: usize,
    /// Generator base width (the reference step: 64).
    pub ngf: usize,
    /// Discriminator base width (the reference step: 64).
    pub ndf: usize,
    /// `auto` (conv nets for 28x28 images, MLPs for points), `conv` or `mlp`.
    pub arch: ArchChoice,
    /// Hidden width of the MLP variant (the 2-D toy benchmarks use 128).
    pub hidden: usize,
    /// Adam of G and of D (DCGAN: lr 2e-4, betas (0.5, 0.999)).
    pub opt_g: AdamConfig,
    pub opt_d: AdamConfig,
    /// Penalties added to the generator loss: `[{ name = "mmgan-correlation", weight = 1.0 }]`.
    pub regularizers: Vec<toml::Table>,
}

impl Default for DcganConfig {
    fn default() -> Self {
        Self {
            latent_dim: 100,
            ngf: 64,
            ndf: 64,
            arch: ArchChoice::Auto,
            hidden: 128,
            opt_g: AdamConfig::dcgan(2e-4),
            opt_d: AdamConfig::dcgan(2e-4),
            regularizers: vec![],
        }
    }
}

impl DcganConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (k, v) in [("latent_dim", self.latent_dim), ("ngf", self.ngf), ("ndf", self.ndf), ("hidden", self.hidden)] {
            if v == 0 {
                anyhow::bail!("dcgan: `{k}` must be at least 1");
            }
        }
        self.opt_g.validate("dcgan `opt_g`")?;
        self.opt_d.validate("dcgan `opt_d`")
    }
}

/// Key names of earlier versions, still accepted (`MethodEntry::renamed_keys`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("nz", "latent_dim"),
    ("lr_g", "opt_g.lr"),
    ("lr_d", "opt_d.lr"),
    ("beta1", "opt_g.beta1"),
    ("beta1", "opt_d.beta1"),
    ("beta2", "opt_g.beta2"),
    ("beta2", "opt_d.beta2"),
];
