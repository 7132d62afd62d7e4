//! The LSAL objectives as pure functions of tensors, so that tests can call them
//! on hand-built inputs. The networks live in [`crate::model`], the step in [`crate::method`].

use candle_core::{D, Result, Tensor};

/// The cost family of Sec. 3.2, C_eta(a) = max(a, eta a), valid for eta <= 1:
/// C[a] = a for a >= 0 and C[a] >= a everywhere. eta = 0 is the hinge (LS-GAN),
/// eta = 1 the identity (WGAN-like), eta = -1 the absolute value.
pub fn cost(a: &Tensor, eta: f64) -> Result<Tensor> {
    if eta > 1.0 || !eta.is_finite() {
        candle_core::bail!("cost slope eta must be <= 1 (Sec. 3.2), got {eta}")
    }
    a.maximum(&(a * eta)?)
}

/// Per-sample L1 distance, summed over every non-batch dim. Shape (B,). The paper does not say sum
/// or mean; the authors' code (`maple-research-lab/lsal-blocks`) sums, and mu/nu are tuned for that.
pub fn l1_per_sample(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.abs()?.flatten_from(1)?.sum(1)
}

/// The two margins of one batch of pairs, and their weighted sum; all (B,) and detached
/// (G and Q are fixed while L learns, Sec. 3.2).
pub struct Margins {
    /// Unweighted ambient margin ||x - G(z)||_1.
    pub ambient: Tensor,
    /// Unweighted manifold margin ||Q(x) - z||_1.
    pub manifold: Tensor,
    /// Delta = mu * ambient + nu * manifold.
    pub delta: Tensor,
}

/// Eq. (1): Delta_{mu,nu}(x, z) = mu ||x - G(z)||_1 + nu ||Q(x) - z||_1.
/// Note the manifold term compares Q(x) with z, not with Q(G(z)).
pub fn margins(x: &Tensor, x_fake: &Tensor, z_hat: &Tensor, z: &Tensor, mu: f64, nu: f64) -> Result<Margins> {
    let ambient = l1_per_sample(&x.detach(), &x_fake.detach())?;
    let manifold = l1_per_sample(&z_hat.detach(), &z.detach())?;
    let delta = ((&ambient * mu)? + (&manifold * nu)?)?;
    Ok(Margins { ambient, manifold, delta })
}

/// Objective (I): S = mean_i C[Delta_i + L(x_i, Q(x_i)) - L(G(z_i), z_i)], minimised over L.
pub fn loss_l(delta: &Tensor, l_real: &Tensor, l_fake: &Tensor, eta: f64) -> Result<Tensor> {
    cost(&((delta + l_real)? - l_fake)?, eta)?.mean_all()
}

/// L's Lipschitz condition in the margin's metric d((x, z), (x', z')) = mu ||x - x'||_1 + nu ||z - z'||_1,
/// checked along the two legs from each real pair p = (x, Q(x)) to its fake pair p' = (G(z), z)
/// through the corner c = (x, z): only the code changes on the first leg, only the image on the
/// second, so |s(c) - s(p)| <= nu ||Q(x) - z||_1 and |s(p') - s(c)| <= mu ||x - G(z)||_1. By the
/// triangle inequality the two imply s(p') - s(p) <= Delta: L cannot separate a real and a fake
/// pair by more than their margin (the condition of Theorem 1's proof), and it cannot spend the
/// manifold margin on image differences, so the only way to reach Delta is to tell Q's codes
/// from the prior's. Returns mean_i [relu(|s(c) - s(p)| - nu m_z)^2 + relu(|s(p') - s(c)| - mu m_x)^2]
/// for scores `s` (B,).
pub fn margin_lipschitz_penalty(
    s_real: &Tensor,
    s_corner: &Tensor,
    s_fake: &Tensor,
    m: &Margins,
    mu: f64,
    nu: f64,
) -> Result<Tensor> {
    let excess =
        |a: &Tensor, b: &Tensor, bound: &Tensor| -> Result<Tensor> { ((a - b)?.abs()? - bound)?.relu()?.sqr() };
    let z_leg = excess(s_corner, s_real, &(&m.manifold * nu)?)?;
    let x_leg = excess(s_fake, s_corner, &(&m.ambient * mu)?)?;
    (z_leg + x_leg)?.mean_all()
}

/// Objectives (II) and (III) as one minimisation over G and Q (as the authors'
/// `lsal-blocks` code does: one loss for encoder and decoder together):
/// mean_i L(G(z_i), z_i) - mean_i L(x_i, Q(x_i)); G minimises T, Q maximises R.
pub fn loss_gq(l_real: &Tensor, l_fake: &Tensor) -> Result<Tensor> {
    l_fake.mean_all()? - l_real.mean_all()?
}

/// mean |a - b| over every element: the latent-regression term (a = Q(G(z)), b = z) and the
/// reconstruction term (a = G(Q(x)), b = x), neither of them in the paper.
pub fn mean_abs_error(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.abs()?.mean_all()
}

/// AGE's estimate of KL(Q's codes || N(0, I)) from a batch (Ulyanov et al., AAAI 2018, Sec. 3):
/// each of the d code dimensions is fitted by a Gaussian N(m_j, s_j^2) (batch mean, biased
/// variance), and the closed-form KL to N(0, 1), 0.5 (m_j^2 + s_j^2 - 1) - log s_j, is averaged
/// over the d dimensions. 0 exactly when every dimension has mean 0 and variance 1. `codes` (B, d).
pub fn code_prior_kl(codes: &Tensor) -> Result<Tensor> {
    let m = codes.mean_keepdim(0)?;
    let var = (codes.broadcast_sub(&m)?.sqr()?.mean(0)? + 1e-8)?;
    let m = m.squeeze(0)?;
    let kl = ((((m.sqr()? + &var)? - 1.0)? - var.log()?)? * 0.5)?;
    kl.mean_all()
}

/// logsumexp([0, a_1..a_K]) per row of (B, K) activations: the "1 + sum" denominator of Sec. 5.
fn lse_with_zero(a: &Tensor) -> Result<Tensor> {
    let zero = a.narrow(1, 0, 1)?.zeros_like()?;
    ganfold_core::loss::log_sum_exp(&Tensor::cat(&[&zero, a], 1)?)
}

/// Sec. 5: L(x, z, y) = -log(exp(a_y) / (1 + sum_k exp(a_k))) = lse([0, a]) - a_y. `y` (B,) u32. Shape (B,).
pub fn class_loss(a: &Tensor, y: &Tensor) -> Result<Tensor> {
    let ay = a.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?;
    lse_with_zero(a)? - ay
}

/// Eq. (10): L_u(x, z) = min_y L(x, z, y) = lse([0, a]) - max_k a_k (>= 0). Shape (B,).
pub fn unlabelled_loss(a: &Tensor) -> Result<Tensor> {
    lse_with_zero(a)? - a.max(D::Minus1)?
}

/// Eq. (7): y* = argmin_y L(x, Q(x), y) = argmax_k a_k.
pub fn predict(a: &Tensor) -> Result<Tensor> {
    a.argmax(D::Minus1)
}

/// The loss network's outputs on one SSL step (all (B, K) activations).
pub struct SslActs<'a> {
    /// Labelled pairs: a(x_l, Q(x_l)) and a(G(z_l), z_l), labels y_l.
    pub real_l: &'a Tensor,
    pub fake_l: &'a Tensor,
    pub y_l: &'a Tensor,
    /// Unlabelled pairs: a(x_u, Q(x_u)) and a(G(z_u), z_u).
    pub real_u: &'a Tensor,
    pub fake_u: &'a Tensor,
}

/// Eq. (8)-(10): S = S_l + lambda S_u (lambda weights only the unlabelled term, no extra
/// cross-entropy) with
/// S_l = mean_l C[Delta_l + L(x_l, Q(x_l), y_l) - L(G(z_l), z_l, y_l)] (the fake is scored
/// under its paired real sample's label, as Eq. 9 literally writes) and
/// S_u = mean_u C[Delta_u + L_u(x_u, Q(x_u)) - L_u(G(z_u), z_u)] (the paper's `y` argument
/// to L_u in S_u is read as a typo: L_u takes no label).
pub fn ssl_loss_l(a: &SslActs, delta_l: &Tensor, delta_u: &Tensor, lambda: f64, eta: f64) -> Result<Tensor> {
    let s_l = loss_l(delta_l, &class_loss(a.real_l, a.y_l)?, &class_loss(a.fake_l, a.y_l)?, eta)?;
    let s_u = loss_l(delta_u, &unlabelled_loss(a.real_u)?, &unlabelled_loss(a.fake_u)?, eta)?;
    s_l + (s_u * lambda)?
}

/// Sec. 5.3, minimised over G and Q. The paper writes R over labelled data only; we add the
/// unlabelled L_u term, since a few labels alone would starve Q:
/// T - R = mean_z [L_u(G(z), z) + L(G(z), z, y~)] - mean_u L_u(x_u, Q(x_u)) - mean_l L(x_l, Q(x_l), y_l),
/// where the T average runs over the unlabelled batch's fakes and `y_tilde` ~ P_Y.
pub fn ssl_loss_gq(a: &SslActs, y_tilde: &Tensor) -> Result<Tensor> {
    let t = (unlabelled_loss(a.fake_u)? + class_loss(a.fake_u, y_tilde)?)?.mean_all()?;
    let r = (unlabelled_loss(a.real_u)?.mean_all()? + class_loss(a.real_l, a.y_l)?.mean_all()?)?;
    t - r
}
