//! LGAN configuration. Defaults are the paper's where it states a value (Sec. 5.1, errata 1-3 of
//! the spec), the spec's [REC] otherwise; each default says which.

use serde::{Deserialize, Serialize};

/// `[method]` table of an `lgan` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LganConfig {
    /// `gen` (Sec. 3.4, adversarial generation) or `ssl` (Sec. 4, (K+1)-class classifier).
    pub mode: String,
    /// Number of local coordinates N; 0 = automatic: 10 for images ([CODE-GEN] MNIST `--nz 10`;
    /// the paper does not state N for MNIST), 1 for 2-D points (a curve through each point).
    pub coords: usize,
    /// Generator width (28x28 conv nets) or hidden width (MLPs on points). Spec [REC] for a
    /// 2-core CPU: 32 (the authors' 64 costs 4x per pass, and an LGAN step makes 2*B*s extra passes).
    pub ngf: usize,
    /// Discriminator / classifier width (same CPU reasoning as `ngf`).
    pub ndf: usize,
    /// Adam learning rate of D / the classifier: paper Sec. 5.1, 5e-5 (errata 1: also for SSL).
    pub lr_d: f64,
    /// Adam learning rate of G: paper Sec. 5.1, 1e-3.
    pub lr_g: f64,
    /// Adam beta1 / beta2: 0.5 / 0.999 ([CODE-GEN], [CODE-SSL]; not in the paper).
    pub beta1: f64,
    pub beta2: f64,
    /// Locality weight mu of eq. (3). Not given in the paper ("validation set"); spec A3 [REC]
    /// grid start: 10 for images (mean-per-pixel reduction), 1 for points (sum reduction).
    /// A negative value selects that automatic choice.
    pub mu: f64,
    /// Orthonormality weight eta of eq. (3). Spec A3 [REC]: 1 (negative = automatic, also 1).
    pub eta: f64,
    /// `auto` (mean per element for images, sum for points: spec A1), `sum` or `mean`.
    pub reduction: String,
    /// |S|, coordinates per minibatch for the finite-difference Jacobian. Paper Sec. 5.3: ten;
    /// Deviation [REC, CPU]: 4 (min(4, N)), since the cost is 2*B*|S| generator passes.
    pub jac_subset: usize,
    /// Finite-difference step in z. Spec §3 [REC] for f32: 1e-2 (authors' code 1e-4).
    pub fd_delta: f64,
    /// P_Z = (1 - p_zero) N(0, z_std^2 I) + p_zero delta_0: paper Sec. 5.1, p_zero 0.1, std 1.
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
    /// SSL: number of labelled images (balanced over the classes).
    pub labels: usize,
    /// SSL: weight of the manifold (Laplace-Beltrami) penalty R on the unlabelled batch (eq. 8
    /// has weight 1; errata 5). 0 switches it off (the "no manifold penalty" baseline).
    pub lambda: f64,
    /// SSL: weight of the unlabelled/fake GAN terms of eq. (8): paper 1.
    pub w_unl: f64,
}

impl Default for LganConfig {
    fn default() -> Self {
        Self {
            mode: "gen".into(),
            coords: 0,
            ngf: 32,
            ndf: 32,
            lr_d: 5e-5,
            lr_g: 1e-3,
            beta1: 0.5,
            beta2: 0.999,
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
            lambda: 1.0,
            w_unl: 1.0,
        }
    }
}

/// Whether the SSL mode is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Gen,
    Ssl,
}

impl LganConfig {
    pub fn mode(&self) -> anyhow::Result<Mode> {
        match self.mode.as_str() {
            "gen" => Ok(Mode::Gen),
            "ssl" => Ok(Mode::Ssl),
            m => anyhow::bail!("lgan: mode must be `gen` or `ssl`, got `{m}`"),
        }
    }

    /// Rejects impossible values with a message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.mode()?;
        let pos = |k: &str, v: f64| -> anyhow::Result<()> {
            if !(v.is_finite() && v > 0.0) {
                anyhow::bail!("lgan: `{k}` must be positive and finite, got {v}");
            }
            Ok(())
        };
        pos("lr_d", self.lr_d)?;
        pos("lr_g", self.lr_g)?;
        pos("fd_delta", self.fd_delta)?;
        pos("z_std", self.z_std)?;
        for (k, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                anyhow::bail!("lgan: `{k}` must be in [0, 1), got {b}");
            }
        }
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
