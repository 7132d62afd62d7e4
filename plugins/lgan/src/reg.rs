//! The locality + orthonormality regularizer Omega_G of eq. (3), registered as `lgan-local`,
//! and the finite-difference Jacobian of a local chart (the paper only says "by backpropagation";
//! differences in z avoid second-order gradients, which Candle drops by default).

use candle_core::{DType, Tensor};
use ganfold_core::{LocalGenerator, RegContext, Regularizer, Rng};
use serde::{Deserialize, Serialize};

/// How the squared norms of eq. (3) are normalised (the paper does not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// `Mean` for images, `Sum` for points.
    Auto,
    /// Paper-literal: ||G(x,0) - x||^2 and ||J^T J - I||_F^2, averaged over the batch.
    Sum,
    /// Divided by D (locality) and by s^2 (orthonormality), so a 784-pixel sum does not swamp
    /// the adversarial term (our choice for images).
    Mean,
}

impl Reduction {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "sum" => Ok(Self::Sum),
            "mean" => Ok(Self::Mean),
            _ => anyhow::bail!("lgan: `reduction` must be `auto`, `sum` or `mean`, got `{s}`"),
        }
    }
    pub fn resolve(self, x: &Tensor) -> Self {
        match self {
            Self::Auto if x.rank() > 2 => Self::Mean,
            Self::Auto => Self::Sum,
            r => r,
        }
    }
}

/// Which norm eq. (3) uses for its two terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distance {
    /// The paper's eq. (3): squared L2 norm of G(x,0) - x and squared Frobenius norm of
    /// J^T J - I, reduced by [`Reduction`].
    Squared,
    /// The authors' code: mean absolute error of G(x,0) - x (over pixels) and of J^T J - I (over
    /// its entries). Unlike the squared norm, its pull on J^T J does not vanish near I and does
    /// not explode at the tangent speeds G starts with.
    Abs,
}

impl Distance {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "squared" => Ok(Self::Squared),
            "abs" => Ok(Self::Abs),
            _ => anyhow::bail!(
                "lgan: `distance` must be `squared` (the paper's eq. 3) or `abs` (the authors' code), got `{s}`"
            ),
        }
    }
}

/// Central finite-difference Jacobian rows of the chart at z = 0 for the coordinates `coords`:
/// `J[b, i, :] = (G(x_b, +delta e_j) - G(x_b, -delta e_j)) / (2 delta)`, j = coords[i]; shape
/// (B, s, D). Both signs go through G in one batch of 2*B*s rows (G must be batch-independent).
pub fn fd_jacobian(
    g: &dyn LocalGenerator,
    x: &Tensor,
    coords: &[usize],
    delta: f64,
    train: bool,
) -> anyhow::Result<Tensor> {
    let n = g.coord_dim();
    let b = x.dim(0)?;
    let s = coords.len();
    if s == 0 {
        anyhow::bail!("fd_jacobian: no coordinates requested");
    }
    if let Some(&j) = coords.iter().find(|&&j| j >= n) {
        anyhow::bail!("fd_jacobian: coordinate {j} out of range for a chart with {n} coordinates");
    }
    // Rows b*s + i carry +delta e_{coords[i]} (first half) and -delta e_{coords[i]} (second half).
    let mut zp = vec![0f64; 2 * b * s * n];
    for r in 0..b * s {
        let j = coords[r % s];
        zp[r * n + j] = delta;
        zp[(b * s + r) * n + j] = -delta;
    }
    let z = Tensor::from_vec(zp, (2 * b * s, n), x.device())?.to_dtype(x.dtype())?;
    let mut rep = vec![b, s];
    rep.extend_from_slice(&x.dims()[1..]);
    let mut flat = vec![b * s];
    flat.extend_from_slice(&x.dims()[1..]);
    let xr = x.unsqueeze(1)?.broadcast_as(rep)?.reshape(flat)?;
    let xr = Tensor::cat(&[&xr, &xr], 0)?;
    let out = g.forward_local(&xr, &z, train)?.flatten_from(1)?;
    let d = out.dim(1)?;
    let plus = out.narrow(0, 0, b * s)?;
    let minus = out.narrow(0, b * s, b * s)?;
    Ok(((plus - minus)? / (2.0 * delta))?.reshape((b, s, d))?)
}

/// Gram matrices J_S^T J_S of the rows from [`fd_jacobian`]: (B, s, s).
pub fn gram(j: &Tensor) -> candle_core::Result<Tensor> {
    j.matmul(&j.transpose(1, 2)?.contiguous()?)
}

/// The two terms of eq. (3), unweighted, averaged over the batch.
pub struct LocalTerms {
    /// ||G(x,0) - x||^2 (per element under `Mean`).
    pub locality: Tensor,
    /// ||J_S^T J_S - I_s||_F^2 (divided by s^2 under `Mean`).
    pub orth: Tensor,
}

/// Omega_G(x) = mu ||G(x,0) - x||^2 + eta ||J_x^T J_x - I_N||^2 (eq. 3), with J restricted to a
/// random subset S of coordinates, drawn once per minibatch and shared by the batch (paper
/// Sec. 5.3 "ten coordinates were randomly chosen", both authors' codes).
///
/// Squared Frobenius norm as the paper writes (eq. 3), where the authors' codes
/// use mean absolute errors.
#[derive(Clone, Debug)]
pub struct LganLocal {
    pub mu: f64,
    pub eta: f64,
    pub subset: usize,
    pub delta: f64,
    pub reduction: Reduction,
    pub distance: Distance,
}

impl LganLocal {
    /// The draw of S: min(subset, N) distinct coordinates, sorted.
    pub fn draw_subset(&self, n: usize, rng: &mut Rng) -> Vec<usize> {
        let mut s = rng.choose_distinct(n, self.subset.min(n));
        s.sort_unstable();
        s
    }

    /// Both terms at the real batch `x` (draws S from `rng`); skips the Jacobian when eta = 0.
    pub fn terms(&self, g: &dyn LocalGenerator, x: &Tensor, rng: &mut Rng, train: bool) -> anyhow::Result<LocalTerms> {
        let red = self.reduction.resolve(x);
        let b = x.dim(0)?;
        let n = g.coord_dim();
        let z0 = Tensor::zeros((b, n), x.dtype(), x.device())?;
        let g0 = g.forward_local(x, &z0, train)?;
        let d = x.elem_count() / b.max(1);
        let locality = match self.distance {
            Distance::Abs => (g0 - x)?.abs()?.mean_all()?,
            Distance::Squared => {
                let l = (g0 - x)?.sqr()?.flatten_from(1)?.sum(1)?.mean_all()?;
                if red == Reduction::Mean { (l / d as f64)? } else { l }
            }
        };
        let orth = if self.eta == 0.0 {
            Tensor::zeros((), x.dtype(), x.device())?
        } else {
            let coords = self.draw_subset(n, rng);
            let s = coords.len();
            let j = fd_jacobian(g, x, &coords, self.delta, train)?;
            let eye = Tensor::eye(s, DType::F64, x.device())?.to_dtype(x.dtype())?;
            let dev = gram(&j)?.broadcast_sub(&eye)?;
            match self.distance {
                Distance::Abs => dev.abs()?.mean_all()?,
                Distance::Squared => {
                    let o = dev.sqr()?.flatten_from(1)?.sum(1)?.mean_all()?;
                    if red == Reduction::Mean { (o / (s * s) as f64)? } else { o }
                }
            }
        };
        Ok(LocalTerms { locality, orth })
    }

    /// mu * locality + eta * orth.
    pub fn value(&self, t: &LocalTerms) -> candle_core::Result<Tensor> {
        (&t.locality * self.mu)? + (&t.orth * self.eta)?
    }
}

impl Regularizer for LganLocal {
    fn name(&self) -> &str {
        "lgan-local"
    }

    fn penalty(&self, cx: &mut RegContext<'_>) -> anyhow::Result<Tensor> {
        let Some(g) = cx.local else {
            anyhow::bail!(
                "regularizer `lgan-local` needs a local generator G(x, z) (RegContext.local is None): \
                 attach it only to a method with a local generator, such as `lgan`"
            )
        };
        let t = self.terms(g, cx.real, cx.rng, true)?;
        Ok(self.value(&t)?)
    }
}

/// `[[regularizers]]` table of `lgan-local`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LganLocalConfig {
    /// Locality weight mu (our starting point: 10 for images with `mean` reduction; the paper gives none).
    pub mu: f64,
    /// Orthonormality weight eta (our starting point: 1; the paper gives none).
    pub eta: f64,
    /// |S| coordinates per minibatch (paper: ten; 4 here, each costs 2B generator passes on CPU).
    pub subset: usize,
    /// Finite-difference step in z (1e-2 for f32 training; the authors' code uses 1e-4).
    pub delta: f64,
    /// `auto`, `sum` or `mean` (see [`Reduction`]).
    pub reduction: String,
    /// `squared` (the paper's eq. 3) or `abs` (the authors' code).
    pub distance: String,
}

impl Default for LganLocalConfig {
    fn default() -> Self {
        Self { mu: 10.0, eta: 1.0, subset: 4, delta: 1e-2, reduction: "auto".into(), distance: "squared".into() }
    }
}

/// Registry constructor.
pub fn build(table: &toml::Table) -> anyhow::Result<Box<dyn Regularizer>> {
    let c: LganLocalConfig = ganfold_core::config::parse(table, "regularizer lgan-local")?;
    Ok(Box::new(from_config(&c)?))
}

/// Validates and builds.
pub fn from_config(c: &LganLocalConfig) -> anyhow::Result<LganLocal> {
    for (k, v) in [("mu", c.mu), ("eta", c.eta)] {
        if !(v.is_finite() && v >= 0.0) {
            anyhow::bail!("lgan-local: `{k}` must be >= 0, got {v}");
        }
    }
    if !(c.delta.is_finite() && c.delta > 0.0) {
        anyhow::bail!("lgan-local: `delta` must be positive, got {}", c.delta);
    }
    if c.subset == 0 {
        anyhow::bail!("lgan-local: `subset` must be at least 1");
    }
    Ok(LganLocal {
        mu: c.mu,
        eta: c.eta,
        subset: c.subset,
        delta: c.delta,
        reduction: Reduction::parse(&c.reduction)?,
        distance: Distance::parse(&c.distance)?,
    })
}
