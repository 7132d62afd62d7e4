//! Spherical manifolds of embeddings (paper Sec. III-IV), moving averages (Alg. 1 lines 7-10)
//! and the correlation regularizer R_G (Eq. 9). Dtype-generic: training runs in f32, the unit
//! tests in f64.
//!
//! Square roots are `sqrt(x + eps) - sqrt(eps)` ([`safe_sqrt`]; the backward of a plain sqrt
//! is infinite at 0, and the paper gives no eps): exactly 0 at
//! x = 0 and a finite gradient for eps > 0; eps = 0 gives the exact values the tests check.

use candle_core::{DType, Result, Tensor};

/// A kernel K(a, b) = <phi(a), phi(b)> (paper Eq. 7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// a^T b (paper Sec. IV).
    Linear,
    /// exp(-||a-b||^2 / den), den = 2 sigma^2 (paper "RBF"/"Gaussian").
    Rbf { den: f64 },
    /// exp(-||a-b|| / den), den = 2 sigma^2. The paper never defines "EXP";
    /// our reading is the usual exponential (Laplacian) kernel, bounded like RBF.
    Exp { den: f64 },
    /// (a^T b + c0)^p. Mentioned by the paper, unused in its experiments; used by the
    /// kernel-trick unit test (kernel form = explicit feature map).
    Poly { c0: f64, p: u32 },
}

/// Where the sphere lives: the feature space itself (Eq. 5) or a kernel space (Eq. 8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Space {
    Plain,
    Kernel(Kernel),
}

/// sqrt(x + eps) - sqrt(eps): exactly 0 at x = 0, with a finite gradient there for eps > 0.
pub fn safe_sqrt(x: &Tensor, eps: f64) -> Result<Tensor> {
    if eps == 0.0 { x.sqrt() } else { (x + eps)?.sqrt()? - eps.sqrt() }
}

/// ||s_i - c||^2 for c (1, d) and s (n, d), shape (n). Computed as a
/// broadcast difference, never as ||a||^2 + ||b||^2 - 2ab (no cancellation below 0).
pub fn sq_dist_to(c: &Tensor, s: &Tensor) -> Result<Tensor> {
    s.broadcast_sub(c)?.sqr()?.sum(1)
}

fn int_pow(x: &Tensor, p: u32) -> Result<Tensor> {
    let mut out = x.clone();
    for _ in 1..p {
        out = (&out * x)?;
    }
    Ok(out)
}

impl Kernel {
    /// K(c, s_i) for c (1, d) and s (n, d), shape (n).
    pub fn against(&self, c: &Tensor, s: &Tensor, eps: f64) -> Result<Tensor> {
        match *self {
            Kernel::Linear => s.matmul(&c.t()?)?.squeeze(1),
            Kernel::Rbf { den } => sq_dist_to(c, s)?.affine(-1.0 / den, 0.0)?.exp(),
            Kernel::Exp { den } => safe_sqrt(&sq_dist_to(c, s)?, eps)?.affine(-1.0 / den, 0.0)?.exp(),
            Kernel::Poly { c0, p } => int_pow(&(s.matmul(&c.t()?)?.squeeze(1)? + c0)?, p.max(1)),
        }
    }

    /// K(s_i, s_i), shape (n). Set to exactly 1 for RBF/EXP (no eps-shifted distance).
    pub fn diag(&self, s: &Tensor) -> Result<Tensor> {
        match *self {
            Kernel::Linear => s.sqr()?.sum(1),
            Kernel::Rbf { .. } | Kernel::Exp { .. } => Tensor::ones(s.dim(0)?, s.dtype(), s.device()),
            Kernel::Poly { c0, p } => int_pow(&(s.sqr()?.sum(1)? + c0)?, p.max(1)),
        }
    }
}

/// Eq. (3): the centroid, (1, d).
pub fn center(s: &Tensor) -> Result<Tensor> {
    s.mean_keepdim(0)
}

/// The radius of `s` (n, d) about `c` (1, d), a scalar.
/// Plain: Eq. (4), the mean distance, unsquared (Prop. 2 calls the radius "the mean distance
/// from the centroid"). Kernel: Eq. (7), the mean squared distance
/// ||phi(c) - phi(s_i)||^2 = K(c,c) - 2K(c,s_i) + K(s_i,s_i), with phi(c) the image of the
/// input-space centroid (Eq. 7 uses K(c, .) with c from Eq. 3), not the RKHS mean.
pub fn radius(space: Space, s: &Tensor, c: &Tensor, eps: f64) -> Result<Tensor> {
    match space {
        Space::Plain => safe_sqrt(&sq_dist_to(c, s)?, eps)?.mean(0),
        Space::Kernel(k) => {
            let kcs = k.against(c, s, eps)?;
            let t = (k.diag(s)?.broadcast_add(&k.diag(c)?)? - (kcs * 2.0)?)?;
            t.mean(0)
        }
    }
}

/// Centre and radius of the mini-batch manifold (radius about the batch's own
/// centroid, as Alg. 1's l_{Y_mini} suggests; the paper does not say).
pub fn batch_stats(space: Space, s: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let c = center(s)?;
    let l = radius(space, s, &c, eps)?;
    Ok((c, l))
}

/// The center term: ||c_Y - c_X|| (Eq. 5, unsquared) or ||phi(c_Y) - phi(c_X)||^2 =
/// K(c_Y,c_Y) - 2K(c_Y,c_X) + K(c_X,c_X) (Eq. 8, squared). A scalar.
pub fn center_term(space: Space, c_y: &Tensor, c_x: &Tensor, eps: f64) -> Result<Tensor> {
    match space {
        Space::Plain => safe_sqrt(&(c_y - c_x)?.sqr()?.sum_all()?, eps),
        Space::Kernel(k) => {
            let t = ((k.diag(c_y)? + k.diag(c_x)?)? - (k.against(c_y, c_x, eps)? * 2.0)?)?;
            t.squeeze(0)
        }
    }
}

/// The manifold-matching loss L_G (Eq. 5) or L_G^K (Eq. 8) from centres and radii.
/// Plain mode has no alpha (Eq. 5). The |.| on Eq. (8)'s radius term is not legible in
/// our copy of the paper; we use it, as Eq. (5) and Def. 1 do (without it G could inflate its radius).
pub fn manifold_loss(
    space: Space,
    alpha: f64,
    c_y: &Tensor,
    l_y: &Tensor,
    c_x: &Tensor,
    l_x: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let ct = center_term(space, c_y, c_x, eps)?;
    let rd = (l_y - l_x)?.abs()?;
    match space {
        Space::Plain => ct + rd,
        Space::Kernel(_) => ct + (rd * alpha)?,
    }
}

/// One EMA update (Alg. 1 lines 7-10): `delta * old + (1 - delta) * new`, or `new` itself on the
/// first batch (the paper gives no initialisation; a zero start would shrink the first
/// ~1/(1 - delta) steps towards 0). The stored value is a constant (detached); the current batch
/// keeps its graph, so d new / d batch = (1 - delta) I (else G would get no manifold gradient).
pub fn ema(old: Option<&Tensor>, new: &Tensor, delta: f64) -> Result<Tensor> {
    match old {
        None => Ok(new.clone()),
        Some(o) => (o.detach() * delta)? + (new * (1.0 - delta))?,
    }
}

/// The n x n correlation matrix A_S of the rows of `s` (n, d) (Eq. 9): each row centred
/// over its d coordinates when `centered` (Pearson, since the paper says "correlation"), scaled
/// by sqrt(||u||^2 + eps).
pub fn correlation_matrix(s: &Tensor, centered: bool, eps: f64) -> Result<Tensor> {
    let u = if centered { s.broadcast_sub(&s.mean_keepdim(1)?)? } else { s.clone() };
    let norm = (u.sqr()?.sum_keepdim(1)? + eps)?.sqrt()?;
    let shat = u.broadcast_div(&norm)?;
    shat.matmul(&shat.t()?)
}

/// Eq. (9): R_G = ||I - A_S||_F, not squared (as Eq. 9 prints it), via [`safe_sqrt`].
pub fn correlation_penalty(s: &Tensor, centered: bool, eps: f64) -> Result<Tensor> {
    let n = s.dim(0)?;
    let a = correlation_matrix(s, centered, eps)?;
    let i = Tensor::eye(n, s.dtype(), s.device())?;
    safe_sqrt(&(i - a)?.sqr()?.sum_all()?, eps)
}

/// Median of the pairwise distances (squared if `squared`) over distinct pairs of the rows of
/// `y` and `x` together (the paper gives no bandwidth; RBF uses squared distances, EXP plain
/// ones, so K = e^-1 at the median pair). Computed
/// on the host from detached values; treated as a constant for gradients.
pub fn median_pairwise(y: &Tensor, x: &Tensor, squared: bool) -> Result<f64> {
    let all = Tensor::cat(&[y.detach(), x.detach()], 0)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let mut d = Vec::with_capacity(all.len() * all.len().saturating_sub(1) / 2);
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            let s: f64 = all[i].iter().zip(&all[j]).map(|(a, b)| (a - b) * (a - b)).sum();
            d.push(if squared { s } else { s.sqrt() });
        }
    }
    if d.is_empty() {
        return Ok(0.0);
    }
    d.sort_by(|a, b| a.total_cmp(b));
    let m = d.len();
    Ok(if m % 2 == 1 { d[m / 2] } else { 0.5 * (d[m / 2 - 1] + d[m / 2]) })
}
