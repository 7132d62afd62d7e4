//! WGAN-GP configuration. Defaults: Gulrajani et al. 2017, Algorithm 1 (lambda 10, n_critic 5,
//! Adam lr 1e-4, betas (0, 0.9)); the networks are ganfold's 28x28 DCGAN generator and a critic
//! of the same shape without batch norm (Sec. 4: a penalised critic must not normalise over the
//! batch, the penalty is per sample).

use ganfold_core::nets::ArchChoice;
use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WganGpConfig {
    /// Size of the noise z.
    pub latent_dim: usize,
    /// Generator base width.
    pub ngf: usize,
    /// Critic base width.
    pub ndf: usize,
    /// `auto` (conv nets for 28x28 images, MLPs for points), `conv` or `mlp`.
    pub arch: ArchChoice,
    /// Hidden width of the MLP variant.
    pub hidden: usize,
    /// Weight of the gradient penalty (lambda, Eq. 3).
    pub lambda: f64,
    /// Critic updates per generator update, each on its own real batch (Algorithm 1).
    pub n_critic: usize,
    pub opt_g: AdamConfig,
    pub opt_d: AdamConfig,
}

impl Default for WganGpConfig {
    fn default() -> Self {
        let adam = AdamConfig { lr: 1e-4, beta1: 0.0, beta2: 0.9, eps: 1e-8, weight_decay: 0.0 };
        Self {
            latent_dim: 100,
            ngf: 64,
            ndf: 64,
            arch: ArchChoice::Auto,
            hidden: 128,
            lambda: 10.0,
            n_critic: 5,
            opt_g: adam,
            opt_d: adam,
        }
    }
}

impl WganGpConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (k, v) in [("latent_dim", self.latent_dim), ("ngf", self.ngf), ("ndf", self.ndf), ("hidden", self.hidden)] {
            if v == 0 {
                anyhow::bail!("wgan-gp: `{k}` must be at least 1");
            }
        }
        if !(1..=100).contains(&self.n_critic) {
            anyhow::bail!("wgan-gp: `n_critic` must be between 1 and 100, got {}", self.n_critic);
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            anyhow::bail!("wgan-gp: `lambda` must be finite and non-negative, got {}", self.lambda);
        }
        self.opt_g.validate("wgan-gp `opt_g`")?;
        self.opt_d.validate("wgan-gp `opt_d`")
    }
}
