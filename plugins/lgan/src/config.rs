//! LGAN configuration. Defaults are the paper's where it states a value (Sec. 5.1), the
//! authors' code (Localized-GAN) or our choice otherwise; each default says which and why.

use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

/// `[method]` table of an `lgan` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LganConfig {
    /// `gen` (Sec. 3.4, adversarial generation) or `ssl` (Sec. 4, (K+1)-class classifier).
    pub mode: Mode,
    /// Number of local coordinates N = the size of z; 0 = automatic: 10 for images (the authors'
    /// generation code runs MNIST with `--nz 10`; the paper does not state N for MNIST), 1 for
    /// 2-D points (a curve through each point).
    pub latent_dim: usize,
    /// Generator width (28x28 conv nets) or hidden width (MLPs on points). Our choice for a
    /// 2-core CPU: 32 (the authors' 64 costs 4x per pass, and an LGAN step makes 2*B*s extra passes).
    pub ngf: usize,
    /// Discriminator width of the generation mode (same CPU reasoning as `ngf`).
    pub ndf: usize,
    /// Adam of the generation mode's D: lr 5e-5 (paper Sec. 5.1). Betas 0.5 / 0.999: the
    /// authors' code (not in the paper).
    pub opt_d: AdamConfig,
    /// Adam of G: lr 1e-3 (paper Sec. 5.1), betas as for D.
    pub opt_g: AdamConfig,
    /// Locality weight mu of eq. (3). Not given in the paper ("validation set"); our grid
    /// start: 10 for images (mean-per-pixel reduction), 1 for points (sum reduction).
    /// A negative value selects that automatic choice.
    pub mu: f64,
    /// Orthonormality weight eta of eq. (3). Our choice: 1 (negative = automatic, also 1).
    pub eta: f64,
    /// `auto` (mean per element for images, so that mu and eta do not scale with the 784 pixels;
    /// sum for points), `sum` or `mean`. Eq. (3) does not say how the norms are reduced.
    pub reduction: String,
    /// |S|, coordinates per minibatch for the finite-difference Jacobian. Paper Sec. 5.3: ten;
    /// Deviation (our choice for a 2-core CPU): 4 (min(4, N)), since the cost is 2*B*|S|
    /// generator passes.
    pub jac_subset: usize,
    /// Finite-difference step in z. Our choice for f32 training: 1e-2 (the authors' code uses
    /// 1e-4, and 0.1 in its second SSL phase; with 1e-4, f32 rounding of G's outputs costs about
    /// 1e-3 of relative error in each central difference).
    pub fd_delta: f64,
    /// P_Z = (1 - p_zero) N(0, z_std^2 I) + p_zero delta_0: paper Sec. 5.1, p_zero 0.1, std 1.
    /// Generation only: in SSL mode z ~ N(0, z_std^2 I), since with exact locality G(x, 0) = x and
    /// the atom would label real images fake (the authors' SSL code never sets z to 0).
    pub p_zero: f64,
    pub z_std: f64,
    /// Real images kept for `sample()` (charts are centred at real points).
    pub pool: usize,
    /// `squared`: eq. (3) as the paper writes it (squared norms, reduced by `reduction`);
    /// `abs`: the authors' code (mean absolute errors of both terms).
    pub distance: String,
    /// A learnable per-coordinate gain and shift after the encoder's standardisation (the
    /// authors' encoder ends in an affine batch norm); 28x28 images only. Default on: the
    /// authors' choice, and the configuration measured in `experiments/lgan-defaults.toml`.
    pub code_affine: bool,
    /// Initial value of that gain (batch norm's: 1).
    pub code_gain: f64,
    /// Paper footnote 3: G(x, z) = x + B(x, z) - B(x, 0), so that G(x, 0) = x exactly. Default
    /// on, measured in `experiments/lgan-defaults.toml` (validation digits of mnist-val): the
    /// penalty form with eta = 1 makes G(x, 0) one image for every x (class agreement 0.10);
    /// exact locality keeps x with near-orthonormal tangents (JᵀJ condition about 2), though its
    /// tangents are nearly the same at every x (tangent overlap 0.98); eta = 0 or the authors'
    /// abs norms follow x with x-dependent but ill-conditioned tangents (condition about 157).
    pub exact_locality: bool,
    /// SSL: number of labelled images (balanced over the classes): 100, the paper's MNIST-sized
    /// setting and Improved-GAN's.
    pub labels: usize,
    /// SSL: validation images held out of the labelled draw (every setting is chosen on them,
    /// never on the test set): 1,000.
    pub val: usize,
    /// SSL: hidden widths of the classifier. Deviation (Sec. 5.2 uses Conv-Small, built for 32x32
    /// colour images and dropout): for 28x28 digits, Improved-GAN's MNIST classifier
    /// (`ganfold_core::ssl::NoisyMlp`: weight norm, Gaussian noise on the input and every hidden
    /// layer), the network LGAN's paper compares with; its noise is shared between the paired
    /// finite-difference passes of the manifold penalty. 1000-500-250-250-250.
    pub widths: Vec<usize>,
    /// SSL: Adam of the classifier: lr 3e-3, beta1 0.5, eps 1e-4, Improved-GAN's for this
    /// classifier (the paper gives no learning rate for SSL).
    pub opt_c: AdamConfig,
    /// SSL: rate of the moving average of the classifier's weights that is tested (the authors'
    /// SSL code tests an average too): 1e-3, as the `improved-gan` method.
    pub ema_rate: f64,
    /// SSL: training images of the classifier's data-dependent initialisation: 500.
    pub init_batch: usize,
    /// SSL: steps between validation measurements; 0 = once per epoch.
    pub eval_every: usize,
    /// SSL: weight of the manifold (Laplace-Beltrami) penalty R on the unlabelled batch (eq. 8
    /// has weight 1 and takes it over all x ~ P_X; the unlabelled batch already holds the
    /// labelled images, so no separate labelled term). 0 switches it off (the "no
    /// manifold penalty" baseline).
    pub lambda: f64,
    /// SSL: weight of the unlabelled/fake GAN terms of eq. (8): paper 1.
    pub w_unl: f64,
    /// Registered penalties added to G's loss, e.g. `[{ name = "mmgan-correlation", weight = 1.0 }]`
    /// or a second `lgan-local` with other weights; they see G's chart (`RegContext.local`), the
    /// real batch, the generated batch and D's features of it.
    pub regularizers: Vec<toml::Table>,
}

impl Default for LganConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Gen,
            latent_dim: 0,
            ngf: 32,
            ndf: 32,
            opt_d: AdamConfig { lr: 5e-5, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            opt_g: AdamConfig { lr: 1e-3, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            mu: -1.0,
            eta: -1.0,
            reduction: "auto".into(),
            jac_subset: 4,
            fd_delta: 1e-2,
            p_zero: 0.1,
            z_std: 1.0,
            pool: 1000,
            distance: "squared".into(),
            code_affine: true,
            code_gain: 1.0,
            exact_locality: true,
            labels: 100,
            val: 1000,
            widths: ganfold_core::ssl::IMPROVED_GAN_WIDTHS.to_vec(),
            opt_c: AdamConfig { lr: 3e-3, beta1: 0.5, beta2: 0.999, eps: 1e-4, weight_decay: 0.0 },
            ema_rate: 1e-3,
            init_batch: 500,
            eval_every: 0,
            lambda: 1.0,
            w_unl: 1.0,
            regularizers: vec![],
        }
    }
}

/// Generation or semi-supervised learning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Gen,
    Ssl,
}

/// Key names of earlier versions, still accepted (`MethodEntry::renamed_keys`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("coords", "latent_dim"),
    ("lr_g", "opt_g.lr"),
    ("lr_d", "opt_d.lr"),
    ("beta1", "opt_g.beta1"),
    ("beta1", "opt_d.beta1"),
    ("beta2", "opt_g.beta2"),
    ("beta2", "opt_d.beta2"),
];

impl LganConfig {
    /// The SSL classifier's part of the configuration.
    pub fn ssl(&self) -> ganfold_core::ssl::SslOptions {
        ganfold_core::ssl::SslOptions {
            widths: self.widths.clone(),
            labels: self.labels,
            val: self.val,
            ema_rate: self.ema_rate,
            init_batch: self.init_batch,
            eval_every: self.eval_every,
        }
    }

    /// Rejects impossible values with a message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.opt_d.validate("lgan `opt_d`")?;
        self.opt_g.validate("lgan `opt_g`")?;
        self.opt_c.validate("lgan `opt_c`")?;
        let pos = |k: &str, v: f64| -> anyhow::Result<()> {
            if !(v.is_finite() && v > 0.0) {
                anyhow::bail!("lgan: `{k}` must be positive and finite, got {v}");
            }
            Ok(())
        };
        pos("fd_delta", self.fd_delta)?;
        pos("z_std", self.z_std)?;
        if !(0.0..=1.0).contains(&self.p_zero) {
            anyhow::bail!("lgan: `p_zero` must be in [0, 1], got {}", self.p_zero);
        }
        for (k, v) in [("lambda", self.lambda), ("w_unl", self.w_unl)] {
            if !(v.is_finite() && v >= 0.0) {
                anyhow::bail!("lgan: `{k}` must be >= 0, got {v}");
            }
        }
        for (k, v) in [("mu", self.mu), ("eta", self.eta)] {
            if !v.is_finite() {
                anyhow::bail!("lgan: `{k}` must be finite (negative = automatic), got {v}");
            }
        }
        if self.ngf == 0 || self.ndf == 0 {
            anyhow::bail!("lgan: `ngf` and `ndf` must be at least 1");
        }
        if self.jac_subset == 0 {
            anyhow::bail!("lgan: `jac_subset` must be at least 1 (|S| coordinates per minibatch)");
        }
        if self.pool == 0 {
            anyhow::bail!("lgan: `pool` must be at least 1");
        }
        crate::reg::Reduction::parse(&self.reduction)?;
        crate::reg::Distance::parse(&self.distance)?;
        if !(self.code_gain.is_finite() && self.code_gain > 0.0) {
            anyhow::bail!("lgan: `code_gain` must be positive and finite, got {}", self.code_gain);
        }
        Ok(())
    }
}
