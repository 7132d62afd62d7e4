//! Configuration of `ganfold train lccgan` (keys of the `[method]` table).

use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LccganConfig {
    /// Number of local bases per sample = the size of z = the paper's "input dimension" d.
    /// Default 5: the paper's MNIST comparison (Fig. 4b).
    pub latent_dim: usize,
    /// Number of bases M: 128, the authors' code default (the paper gives none).
    pub bases: usize,
    /// Autoencoder latent size dB (the generator's input size): 100, the authors' code.
    pub ae_latent_dim: usize,
    /// `paper` (faithful), `affine` / `convex` (our ablations of the coefficients of Sec. 4.3:
    /// summing to one, or inside the convex hull), and three controls that test whether a gain
    /// comes from the learned manifold: `random_bases` (the paper's sampler on random bases of
    /// the learned bases' norms), `mog` (no AE/LCC stages; z from a mixture of M Gaussians in d
    /// dimensions) and `gaussian` (no AE/LCC stages; z ~ N(0, I_d), the vanilla baseline with the
    /// very same networks).
    pub sampler: String,
    /// Standard deviation of each `mog` component; the M means are drawn once from U(-1, 1)^d
    /// (DeLiGAN's initialisation, Gurumurthy et al., CVPR 2017, Sec. 3; here fixed, not learned).
    pub mog_sigma: f64,
    /// A run directory whose stages 1-2 (autoencoder, embeddings, bases) this run adopts
    /// instead of training its own: its GAN starts at step 0. Lets a sweep fit the bases once
    /// (paper Alg. 1 line 2 learns them once for every d). Empty: train them here.
    pub init_from: String,
    /// Scale s of the `affine` ablation.
    pub affine_scale: f64,
    /// Temperature tau of the `convex` ablation.
    pub convex_tau: f64,
    /// Stage 1: autoencoder training steps (one batch each).
    pub ae_steps: usize,
    /// Adam of the autoencoder: lr 1e-4 and betas (0.5, 0.999), the authors' code.
    pub opt_ae: AdamConfig,
    /// `l1` (the authors' code) or `mse`.
    pub ae_loss: String,
    /// Stage 2: LCC alternations; the stage takes `lcc_rounds + 1` steps (encode + k-means init,
    /// then one coding+basis alternation per step; the kNN table is built on the last).
    pub lcc_rounds: usize,
    /// Stop alternating when J's relative decrease falls below this (our tolerance; the paper gives no solver details).
    pub lcc_tol: f64,
    /// Embeddings used to fit the bases (N_fit, at most 20000 to bound the solver's cost), a seeded subset.
    pub lcc_points: usize,
    /// Each point is coded on its K nearest bases (K = min(M, 32), independent of d: the paper learns
    /// the bases once, Alg. 1 line 2, for every d).
    pub knn_k: usize,
    /// Locality weight mu = mu_times_m / M (mu = 2/M, equivalent to the authors' code; eq. 2's
    /// Lipschitz constants L_h, L_G are unknown).
    pub mu_times_m: f64,
    /// Basis-norm weight lambda (0: eq. 2 has no such term; the authors' code has one).
    pub lambda: f64,
    /// ADMM iteration cap per point (our cap on the per-point solver; the paper gives no solver details).
    pub admm_iters: usize,
    /// Lloyd iterations after k-means++ seeding (our choice, in the usual 10-20 range).
    pub kmeans_iters: usize,
    /// Generator / discriminator widths (conv: channels of the first/last layer; MLP: hidden).
    pub ngf: usize,
    pub ndf: usize,
    /// Hidden width of the MLP networks used for 2-D point data.
    pub hidden: usize,
    /// Adam of G and of D: lr 2e-4 (paper Sec. 6); betas (0.5, 0.999), DCGAN's (the paper gives
    /// none).
    pub opt_g: AdamConfig,
    pub opt_d: AdamConfig,
    /// `non_saturating` (the authors' code and DCGAN: the saturating loss gives G vanishing
    /// gradients early on) or `saturating` (Alg. 1 line 8 literally).
    pub g_loss: String,
    /// Reuse the D step's fake batch for the G step (code) instead of a fresh LCC sample
    /// (Alg. 1 line 7, the default).
    pub reuse_fake_for_g: bool,
    /// Generated samples for the end-of-run proxy metrics (`evaluate`).
    pub eval_samples: usize,
}

impl Default for LccganConfig {
    fn default() -> Self {
        Self {
            latent_dim: 5,
            bases: 128,
            ae_latent_dim: 100,
            sampler: "paper".into(),
            mog_sigma: 0.2,
            init_from: String::new(),
            affine_scale: 1.0,
            convex_tau: 1.0,
            ae_steps: 1000,
            opt_ae: AdamConfig::dcgan(1e-4),
            ae_loss: "l1".into(),
            lcc_rounds: 20,
            lcc_tol: 1e-5,
            lcc_points: 5000,
            knn_k: 32,
            mu_times_m: 2.0,
            lambda: 0.0,
            admm_iters: 200,
            kmeans_iters: 15,
            ngf: 64,
            ndf: 64,
            hidden: 128,
            opt_g: AdamConfig::dcgan(2e-4),
            opt_d: AdamConfig::dcgan(2e-4),
            g_loss: "non_saturating".into(),
            reuse_fake_for_g: false,
            eval_samples: 1000,
        }
    }
}

impl LccganConfig {
    /// Whether G is fed from LCC bases (every sampler but `gaussian` and `mog`).
    pub fn uses_lcc(&self) -> bool {
        !["gaussian", "mog"].contains(&self.sampler.as_str())
    }

    /// Steps taken by stages 1 and 2 (0 without LCC, or when they come from `init_from`).
    pub fn pre_gan_steps(&self) -> usize {
        if self.uses_lcc() && self.init_from.is_empty() { self.ae_steps + self.lcc_rounds + 1 } else { 0 }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        const SAMPLERS: [&str; 6] = ["paper", "affine", "convex", "random_bases", "mog", "gaussian"];
        if !SAMPLERS.contains(&self.sampler.as_str()) {
            bail!("lccgan: sampler must be one of {}, got `{}`", SAMPLERS.join(", "), self.sampler);
        }
        if self.sampler == "mog" && (self.bases == 0 || !(self.mog_sigma.is_finite() && self.mog_sigma > 0.0)) {
            bail!("lccgan: mog needs bases (its component count) >= 1 and mog_sigma > 0");
        }
        if !self.init_from.is_empty() && self.init_from.trim().is_empty() {
            bail!("lccgan: init_from is blank; name a run directory whose stages 1-2 are done (or leave it empty)");
        }
        if self.latent_dim == 0 {
            bail!("lccgan: d (number of local bases) must be at least 1");
        }
        if self.uses_lcc() {
            if self.bases < 2 {
                bail!("lccgan: bases (M) must be at least 2, got {}", self.bases);
            }
            if self.latent_dim > self.bases {
                bail!(
                    "lccgan: latent_dim = {} local bases cannot exceed the number of bases M = {}",
                    self.latent_dim,
                    self.bases
                );
            }
            if self.lcc_points < self.bases {
                bail!(
                    "lccgan: lcc_points ({}) must be at least the number of bases M ({})",
                    self.lcc_points,
                    self.bases
                );
            }
            if self.knn_k == 0 || self.lcc_rounds == 0 || self.admm_iters == 0 {
                bail!("lccgan: knn_k, lcc_rounds and admm_iters must be at least 1");
            }
        }
        if self.ae_latent_dim == 0 || self.ngf == 0 || self.ndf == 0 || self.hidden == 0 {
            bail!("lccgan: ae_latent_dim, ngf, ndf and hidden must be at least 1");
        }
        for (k, v) in [("mu_times_m", self.mu_times_m), ("lambda", self.lambda), ("lcc_tol", self.lcc_tol)] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("lccgan: {k} must be finite and >= 0, got {v}");
            }
        }
        if !(self.affine_scale.is_finite() && self.convex_tau.is_finite() && self.convex_tau > 0.0) {
            bail!("lccgan: affine_scale must be finite and convex_tau > 0");
        }
        if !["l1", "mse"].contains(&self.ae_loss.as_str()) {
            bail!("lccgan: ae_loss must be l1 or mse, got `{}`", self.ae_loss);
        }
        if !["non_saturating", "saturating"].contains(&self.g_loss.as_str()) {
            bail!("lccgan: g_loss must be non_saturating or saturating, got `{}`", self.g_loss);
        }
        self.opt_g.validate("lccgan `opt_g`")?;
        self.opt_d.validate("lccgan `opt_d`")?;
        self.opt_ae.validate("lccgan `opt_ae`")
    }
}

/// Key names of earlier versions, still accepted (`MethodEntry::renamed_keys`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("d", "latent_dim"),
    ("latent", "ae_latent_dim"),
    ("lr_g", "opt_g.lr"),
    ("lr_d", "opt_d.lr"),
    ("ae_lr", "opt_ae.lr"),
    ("beta1", "opt_g.beta1"),
    ("beta1", "opt_d.beta1"),
    ("beta1", "opt_ae.beta1"),
    ("beta2", "opt_g.beta2"),
    ("beta2", "opt_d.beta2"),
    ("beta2", "opt_ae.beta2"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_rejected() {
        let c = LccganConfig::default();
        c.validate().unwrap();
        assert_eq!((c.opt_g.lr, c.opt_g.beta1, c.opt_g.beta2), (2e-4, 0.5, 0.999));
        assert_eq!(c.opt_g.weight_decay, 0.0);
        let bad = |f: fn(&mut LccganConfig)| {
            let mut c = LccganConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.latent_dim = 200).contains("cannot exceed"));
        assert!(bad(|c| c.opt_g.lr = -1.0).contains("opt_g"));
        assert!(bad(|c| c.sampler = "x".into()).contains("sampler"));
        assert!(bad(|c| c.mu_times_m = f64::NAN).contains("mu_times_m"));
        assert!(bad(|c| c.init_from = " ".into()).contains("init_from"));
        assert!(bad(|c| (c.sampler, c.mog_sigma) = ("mog".into(), 0.0)).contains("mog_sigma"));
        // Adopted stages 1-2 take no steps of this run.
        let c = LccganConfig { init_from: "runs/x".into(), ..Default::default() };
        assert_eq!(c.pre_gan_steps(), 0);
        // The gaussian baseline ignores the LCC keys.
        let mut g = LccganConfig { sampler: "gaussian".into(), latent_dim: 100, ..Default::default() };
        g.validate().unwrap();
        g.bases = 1;
        g.validate().unwrap();
        assert_eq!(g.pre_gan_steps(), 0);
    }
}
