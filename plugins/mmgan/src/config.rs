//! MMGAN configuration (`[method]` table of `ganfold train mmgan`).

use anyhow::bail;
use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

/// Which manifold the embeddings are summarised by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelKind {
    /// No kernel: Eq. (5), radius = mean distance (Eq. 4), unsquared center distance.
    Plain,
    /// Eq. (8) with K(a, b) = a^T b (unbounded: D, which maximises the term, can scale its features).
    Linear,
    /// Eq. (8) with K(a, b) = exp(-||a-b||^2 / (2 sigma^2)).
    Rbf,
    /// Eq. (8) with K(a, b) = exp(-||a-b|| / (2 sigma^2)) (the paper never defines
    /// "EXP"; we read it as the usual exponential/Laplacian kernel).
    Exp,
}

/// What the two players minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The paper: L_G^final (Eq. 10) for G, L_orig - L_G^final for D.
    Mmgan,
    /// Baseline on the same networks (a standard GAN, as the paper compares with DCGAN): BCE for
    /// D, non-saturating -log D(G(z)) for G.
    Gan,
}

/// How the discriminator sees the real and the generated batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DBatch {
    /// One forward pass over `[real; fake]`: BatchNorm statistics are shared by both halves.
    Joint,
    /// Two passes, each BatchNorm normalising its own batch (as in
    /// `carpedm20/DCGAN-tensorflow`, the code the paper forked).
    Separate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmganConfig {
    /// `mmgan` (the paper) or `gan` (standard GAN on the same networks, the baseline).
    pub objective: Objective,
    /// Manifold space: `plain` (Eq. 5) or a kernel for Eq. (8): `linear`, `rbf`, `exp`.
    pub kernel: KernelKind,
    /// Weight of the radius term in Eq. (8) (unused in plain mode: Eq. 5 has none).
    pub alpha: f64,
    /// Weight of the correlation regularizer R_G (Eq. 9/10); 0 = the "No R_G" ablation.
    pub beta: f64,
    /// EMA decay of centers and radii (Alg. 1 lines 7-10); 0 = pure mini-batch matching.
    pub delta: f64,
    /// Kernel bandwidth sigma for rbf/exp; 0 = median heuristic (the paper gives no bandwidth).
    pub sigma: f64,
    /// `false` (default): R_G in G's objective only, as Sec. V introduces it "at the stage of
    /// training the generator". `true`: Eq. (10) read literally, D's loss L_orig - L_G^final
    /// contains -beta R_G, so D maximises R_G; kept as an ablation, since R_G is invariant to
    /// per-row shifts and scales and D reaches its ceiling sqrt(n(n-1)) without looking at the
    /// input, where G's R_G gradient vanishes (measured: `plugins/mmgan/README.md`).
    pub d_maximizes_rg: bool,
    /// Row-centre the features before correlating (Pearson, as the paper says "correlation");
    /// false = cosine.
    pub corr_center: bool,
    /// Generator steps per discriminator step (Alg. 1 = 1; the DCGAN fork runs 2).
    pub g_steps_per_iter: usize,
    /// eps inside square roots (f32 training; a plain sqrt has an infinite gradient at 0).
    pub eps: f64,
    /// Adam of G and of D.
    pub opt_g: AdamConfig,
    pub opt_d: AdamConfig,
    /// Size of the noise z; 0 = automatic (16 for 2-D points, our choice; 100 for images, as in
    /// `carpedm20/DCGAN-tensorflow`). The paper gives none.
    pub latent_dim: usize,
    /// Hidden width of the 2-D MLPs (128, our choice). Keep the features d = hidden >= n + 1:
    /// centred rows span d - 1 dimensions, so with n > d - 1 R_G cannot reach 0.
    pub hidden: usize,
    /// `joint` or `separate` BatchNorm batches in D (only the image D has BatchNorm).
    /// Deviation from the DCGAN fork's separate real and fake passes (`separate`): f_D is
    /// BN -> LReLU, and a BN that normalises
    /// each batch on its own gives every batch the same pre-activation mean (beta) and variance
    /// (gamma^2) per feature, whatever G draws, so the center and radius terms carry almost no
    /// signal about the fake batch (measured on MNIST: `plugins/mmgan/README.md`). `joint` keeps the
    /// architecture and computes one set of statistics over `[real; fake]`.
    pub d_batch: DBatch,
}

impl Default for MmganConfig {
    fn default() -> Self {
        Self {
            objective: Objective::Mmgan,
            // Paper Fig. 3(b) (MNIST) and Table I's best MNIST entry use RBF.
            kernel: KernelKind::Rbf,
            // alpha = 1.0 in every captioned run (paper Fig. 3).
            alpha: 1.0,
            // Chosen by a sweep, not the paper's 1.0 (Fig. 3(b),(d)): with R_G in G's objective,
            // beta in {0.01, 0.03, 0.1, 1} covered 917, 908, 915, 905 of stacked MNIST's 1000
            // modes (3 seeds, results/mmgan-stacked-mnist, no test digits), and on ring8 beta 0.01
            // kept 7.0 of 8 modes against 2.3 at beta 1 (results/mmgan-ring8): R_G, an unsquared
            // Frobenius norm up to sqrt(n(n-1)), outweighs the manifold term (at most 2 + 2 alpha).
            beta: 0.01,
            // "0.9 or greater" (paper Sec. IV); we take the smallest, 0.9.
            delta: 0.9,
            // The paper gives no bandwidth: median heuristic.
            sigma: 0.0,
            // Sec. V: R_G is a term of G's objective.
            d_maximizes_rg: false,
            // Pearson: the paper says "correlation".
            corr_center: true,
            // Alg. 1: 1:1.
            g_steps_per_iter: 1,
            // Not in the paper: 1e-6 for f32 training.
            eps: 1e-6,
            // Not in the paper; `carpedm20/DCGAN-tensorflow`, which it forked: Adam lr 2e-4,
            // beta1 0.5 (beta2 0.999 TF default).
            opt_g: AdamConfig::dcgan(2e-4),
            opt_d: AdamConfig::dcgan(2e-4),
            latent_dim: 0,
            hidden: 128,
            d_batch: DBatch::Joint,
        }
    }
}

impl MmganConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let nonneg = |k: &str, v: f64| -> anyhow::Result<()> {
            if !v.is_finite() || v < 0.0 {
                bail!("mmgan: `{k}` must be a finite number >= 0 (got {v})");
            }
            Ok(())
        };
        nonneg("alpha", self.alpha)?;
        nonneg("beta", self.beta)?;
        nonneg("sigma", self.sigma)?;
        nonneg("eps", self.eps)?;
        if !(0.0..1.0).contains(&self.delta) {
            bail!("mmgan: `delta` must lie in [0, 1) (got {}); the paper uses 0.9 or greater", self.delta);
        }
        self.opt_g.validate("mmgan `opt_g`")?;
        self.opt_d.validate("mmgan `opt_d`")?;
        if self.g_steps_per_iter == 0 {
            bail!("mmgan: `g_steps_per_iter` must be at least 1");
        }
        if self.hidden == 0 {
            bail!("mmgan: `hidden` must be at least 1");
        }
        if self.eps == 0.0 {
            bail!("mmgan: `eps` must be > 0 in training (sqrt backward at 0 is infinite)");
        }
        Ok(())
    }
}

/// Key names of earlier versions, still accepted (`MethodEntry::renamed_keys`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("z_dim", "latent_dim"),
    ("lr_g", "opt_g.lr"),
    ("lr_d", "opt_d.lr"),
    ("beta1", "opt_g.beta1"),
    ("beta1", "opt_d.beta1"),
    ("beta2", "opt_g.beta2"),
    ("beta2", "opt_d.beta2"),
];
